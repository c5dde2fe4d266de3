//! Sending what the trigger rendered: fitted to NOTIFY's limit, as a notification of its
//! own or into a batch of changes; and the durable event log.

use std::ffi::CStr;

use batch::Batch;
use fit::CutPoints;

pub mod batch;
pub mod event_log;
pub mod fit;
pub mod notify;
pub mod queue_pressure;

/// Queues a rendered payload: reduced to fit if it must, as a notification of its own on
/// `channel`, or into `batch`.
pub fn deliver(channel: &CStr, payload: &mut Vec<u8>, cut: CutPoints, batch: Option<&mut Batch>) {
    let limit = match batch {
        Some(_) => Batch::CHANGE_LIMIT,
        None => notify::MAX_PAYLOAD_BYTES,
    };
    fit::fit(payload, cut, limit);
    match batch {
        Some(batch) => batch.add(channel, payload),
        // A change's own payload: its first member follows the opening brace.
        None => notify::send(channel, payload, 1),
    }
}
