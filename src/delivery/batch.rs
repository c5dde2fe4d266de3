//! Batched delivery (`batch => true`): the changes of one trigger call are packed into as
//! few notifications as fit, `{"changes":[<payload>,<payload>,…]}`, each element being the
//! payload the change would have had on its own. NOTIFY pays for every notification (a
//! hash-table entry, a queue entry) besides its bytes, so a large statement costs less.

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
}
