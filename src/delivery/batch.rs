//! Batched delivery (`batch => true`): the changes a transaction makes on a channel are
//! packed into as few notifications as fit, `{"changes":[<payload>,<payload>,…]}`, each
//! element being the payload the change would have had on its own. NOTIFY pays for every
//! notification (a hash-table entry, a queue entry) besides its bytes, and delivers nothing
//! before the commit anyway, so packing a transaction's changes costs a consumer nothing: a
//! one-row statement is sent as a plain watch would send it, and many one-row statements in
//! a transaction share notifications as the rows of one large statement do.
//!
//! A batch fills up in the subtransaction its changes were made in, and is sent as soon as
//! it is full (queued with that subtransaction, as NOTIFY queues) or at commit. A
//! subtransaction that rolls back takes its unsent changes with it; one that commits hands
//! them to its parent.

use std::cell::RefCell;

use pgrx::pg_sys;

use crate::delivery::notify::MAX_PAYLOAD_BYTES;
use crate::delivery::Sink;

const OPENING: &[u8] = br#"{"changes":["#;
const CLOSING_WITHOUT_NUL: &[u8] = b"]}";

/// The notification being filled, reused from call to call.
pub struct Batch {
    text: Vec<u8>,
    changes: usize,
}

impl Batch {
    /// A change's payload must be shorter than this to fit a batch on its own.
    pub const CHANGE_LIMIT: usize = MAX_PAYLOAD_BYTES - OPENING.len() - CLOSING_WITHOUT_NUL.len();

    pub fn new() -> Self {
        Self {
            text: Vec::with_capacity(MAX_PAYLOAD_BYTES + 1),
            changes: 0,
        }
    }

    /// Adds one change (shorter than [`Batch::CHANGE_LIMIT`]), sending the batch so far
    /// first when the change would not fit in it.
    pub fn add(&mut self, sink: &Sink, change: &[u8]) {
        debug_assert!(change.len() < Self::CHANGE_LIMIT);
        let length_with_change = self.text.len() + 1 + change.len() + CLOSING_WITHOUT_NUL.len();
        if self.changes > 0 && length_with_change >= MAX_PAYLOAD_BYTES {
            self.send(sink);
        }
        if self.changes == 0 {
            self.text.clear();
            self.text.extend_from_slice(OPENING);
        } else {
            self.text.push(b',');
        }
        self.text.extend_from_slice(change);
        self.changes += 1;
    }

    /// Appends the changes of `later`, a batch of the same sink filled after this one,
    /// sending this one first when they do not fit together.
    fn absorb(&mut self, sink: &Sink, later: Batch) {
        if later.changes == 0 {
            return;
        }
        let later_changes = &later.text[OPENING.len()..];
        let together = self.text.len() + 1 + later_changes.len() + CLOSING_WITHOUT_NUL.len();
        if self.changes == 0 || together >= MAX_PAYLOAD_BYTES {
            self.send(sink);
            *self = later;
            return;
        }
        self.text.push(b',');
        self.text.extend_from_slice(later_changes);
        self.changes += later.changes;
    }

    /// Sends what the batch holds, if anything.
    pub fn send(&mut self, sink: &Sink) {
        if self.changes == 0 {
            return;
        }
        self.text.extend_from_slice(CLOSING_WITHOUT_NUL);
        // The first change's first member follows its opening brace.
        sink.send(&mut self.text, OPENING.len() + 1);
        self.changes = 0;
    }
}

/// A batch being filled in one subtransaction.
struct OpenBatch {
    sink: Sink,
    subtransaction: pg_sys::SubTransactionId,
    batch: Batch,
}

thread_local! {
    /// This transaction's unsent batches, in the order they were opened. A backend runs one
    /// transaction at a time, on one thread.
    static OPEN: RefCell<Vec<OpenBatch>> = const { RefCell::new(Vec::new()) };
}

/// Adds a change (shorter than [`Batch::CHANGE_LIMIT`]) to the batch of `sink` in the
/// current subtransaction, opening one if needed.
pub fn add(sink: &Sink, change: &[u8]) {
    // SAFETY: reads the current subtransaction's id; a trigger runs inside a transaction.
    let subtransaction = unsafe { pg_sys::GetCurrentSubTransactionId() };
    OPEN.with(|open| {
        let mut open = open.borrow_mut();
        // The newest batch of the sink, if it is this subtransaction's: an older one belongs
        // to a parent that is still running, and must not be sent from here.
        let current = open
            .iter()
            .rposition(|open| open.sink == *sink)
            .filter(|&at| open[at].subtransaction == subtransaction);
        let at = current.unwrap_or_else(|| {
            open.push(OpenBatch {
                sink: sink.clone(),
                subtransaction,
                batch: Batch::new(),
            });
            open.len() - 1
        });
        let OpenBatch { sink, batch, .. } = &mut open[at];
        batch.add(sink, change);
    });
}

/// Follows the end of a subtransaction: one that aborts drops the changes it (or a child of
/// it, whose ids are larger) left unsent; one that commits hands them to its parent.
pub fn at_subtransaction_end(
    event: pg_sys::SubXactEvent::Type,
    subtransaction: pg_sys::SubTransactionId,
    parent: pg_sys::SubTransactionId,
) {
    OPEN.with(|open| {
        let mut open = open.borrow_mut();
        match event {
            pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB => {
                open.retain(|open| open.subtransaction < subtransaction);
            }
            pg_sys::SubXactEvent::SUBXACT_EVENT_COMMIT_SUB => {
                for open in open.iter_mut() {
                    if open.subtransaction >= subtransaction {
                        open.subtransaction = parent;
                    }
                }
            }
            _ => {}
        }
    });
}

/// Sends every unsent batch, at commit (before the notifications are queued) and before
/// PREPARE TRANSACTION (which refuses a transaction that notified, as it would after a
/// plain watch's notification). Everything left is the transaction's own by then: the
/// batches that subtransactions filled are joined to the earlier ones of their sink, in
/// order, into as few notifications as fit.
pub fn send_open_batches() {
    let batches = OPEN.with(|open| std::mem::take(&mut *open.borrow_mut()));
    let mut joined: Vec<OpenBatch> = Vec::with_capacity(batches.len());
    for later in batches {
        match joined.iter_mut().find(|earlier| earlier.sink == later.sink) {
            Some(earlier) => earlier.batch.absorb(&earlier.sink, later.batch),
            None => joined.push(later),
        }
    }
    for OpenBatch {
        sink, mut batch, ..
    } in joined
    {
        batch.send(&sink);
    }
}

/// Forgets the unsent batches of a transaction that ended without sending them (an abort).
pub fn drop_open_batches() {
    OPEN.with(|open| open.borrow_mut().clear());
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::*;
    use pgrx::prelude::*;

    #[pg_test]
    fn a_batch_never_reaches_the_limit() {
        // Filling batches with changes of every size up to the largest allowed: whatever
        // is queued must stay under PostgreSQL's limit (Async_Notify raises otherwise).
        let mut batch = Batch::new();
        let sink = Sink::Notify(c"batch_test".into());
        for length in (1..Batch::CHANGE_LIMIT).step_by(97) {
            let change = vec![b'1'; length];
            batch.add(&sink, &change);
            assert!(batch.text.len() + CLOSING_WITHOUT_NUL.len() < MAX_PAYLOAD_BYTES);
        }
        batch.add(&sink, &vec![b'1'; Batch::CHANGE_LIMIT - 1]);
        batch.send(&sink);
        assert_eq!(batch.changes, 0);
    }

    #[pg_test]
    fn joined_batches_never_reach_the_limit() {
        let sink = Sink::Notify(c"batch_test".into());
        for (first, second) in [
            (10, 20),
            (4000, 3900),
            (7000, 10),
            (10, Batch::CHANGE_LIMIT - 1),
        ] {
            let mut earlier = Batch::new();
            earlier.add(&sink, &vec![b'1'; first]);
            let mut later = Batch::new();
            later.add(&sink, &vec![b'2'; second]);
            let fits =
                first + second + 1 + OPENING.len() + CLOSING_WITHOUT_NUL.len() < MAX_PAYLOAD_BYTES;
            earlier.absorb(&sink, later);
            assert!(earlier.text.len() + CLOSING_WITHOUT_NUL.len() < MAX_PAYLOAD_BYTES);
            assert_eq!(
                earlier.changes,
                if fits { 2 } else { 1 },
                "{first} + {second}"
            );
        }
    }
}
