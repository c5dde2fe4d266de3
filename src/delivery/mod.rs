//! Sending what the trigger rendered: fitted to NOTIFY's limit, as a notification of its
//! own or into a batch of changes, over NOTIFY or into the WAL; and the durable event log.

use std::ffi::CString;

use batch::Batch;
use fit::CutPoints;
use pgrx::pg_sys;

pub mod batch;
pub mod event_log;
pub mod fit;
pub mod notify;
pub mod queue_pressure;
pub mod wal;

/// Where a watch's payloads go. Both carry the same payloads, of the same limit, so that a
/// consumer reads them alike.
#[derive(Clone, PartialEq, Eq)]
pub enum Sink {
    /// NOTIFY on the channel.
    Notify(CString),
    /// Logical messages with the channel's prefix (see `wal.rs`).
    Wal(CString),
}

impl Sink {
    /// Sends one payload (shorter than NOTIFY's limit); `first_member_at` is where the
    /// first change's first member starts, for NOTIFY's report of held-back notifications.
    pub fn send(&self, payload: &mut Vec<u8>, first_member_at: usize) {
        match self {
            Self::Notify(channel) => notify::send(channel, payload, first_member_at),
            Self::Wal(prefix) => wal::send(prefix, payload),
        }
    }
}

/// Sends a rendered payload: reduced to fit if it must, as a message of its own, or into
/// the transaction's batch of the sink.
pub fn deliver(sink: &Sink, payload: &mut Vec<u8>, cut: CutPoints, batched: bool) {
    let limit = match batched {
        true => Batch::CHANGE_LIMIT,
        false => notify::MAX_PAYLOAD_BYTES,
    };
    fit::fit(payload, cut, limit);
    match batched {
        true => batch::add(sink, payload),
        // A change's own payload: its first member follows the opening brace.
        false => sink.send(payload, 1),
    }
}

/// Registers what follows the ends of transactions; called when the library is loaded, so
/// that a notification pays for neither.
pub fn init() {
    queue_pressure::init();
    // SAFETY: the callbacks live as long as the backend (the library is never unloaded).
    unsafe {
        pg_sys::RegisterXactCallback(Some(at_transaction_end), std::ptr::null_mut());
        pg_sys::RegisterSubXactCallback(Some(at_subtransaction_end), std::ptr::null_mut());
    }
}

/// Batches still open are sent before the commit's notifications are queued, and before
/// the queue's pressure is reported; an abort forgets them.
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn at_transaction_end(
    event: pg_sys::XactEvent::Type,
    _argument: *mut std::ffi::c_void,
) {
    match event {
        pg_sys::XactEvent::XACT_EVENT_PRE_COMMIT | pg_sys::XactEvent::XACT_EVENT_PRE_PREPARE => {
            batch::send_open_batches()
        }
        pg_sys::XactEvent::XACT_EVENT_ABORT => batch::drop_open_batches(),
        _ => {}
    }
    queue_pressure::at_transaction_end(event);
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn at_subtransaction_end(
    event: pg_sys::SubXactEvent::Type,
    subtransaction: pg_sys::SubTransactionId,
    parent: pg_sys::SubTransactionId,
    _argument: *mut std::ffi::c_void,
) {
    batch::at_subtransaction_end(event, subtransaction, parent);
}
