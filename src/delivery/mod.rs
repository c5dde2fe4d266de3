//! Sending what the trigger rendered: fitted to NOTIFY's limit, as a notification of its
//! own or into a batch of changes, over NOTIFY or into the WAL; and the durable event log.

use std::ffi::CString;

use batch::Batch;
use fit::CutPoints;

pub mod batch;
pub mod event_log;
pub mod fit;
pub mod notify;
pub mod queue_pressure;
pub mod wal;

/// Where a watch's payloads go. Both carry the same payloads, of the same limit, so that a
/// consumer reads them alike.
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
/// `batch`.
pub fn deliver(sink: &Sink, payload: &mut Vec<u8>, cut: CutPoints, batch: Option<&mut Batch>) {
    let limit = match batch {
        Some(_) => Batch::CHANGE_LIMIT,
        None => notify::MAX_PAYLOAD_BYTES,
    };
    fit::fit(payload, cut, limit);
    match batch {
        Some(batch) => batch.add(sink, payload),
        // A change's own payload: its first member follows the opening brace.
        None => sink.send(payload, 1),
    }
}
