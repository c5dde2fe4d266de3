//! The durable event log written by the trigger of a durable watch: every event is appended
//! to `column_notify.events` in the writer's transaction, so it commits or rolls back with
//! the change, and readers can replay what they missed.
//!
//! Event ids come from a sequence when the row is written, but transactions commit in
//! another order. So that a reader never moves past an id a running transaction may still
//! commit, each transaction first takes a "fence": a shared advisory lock, visible in
//! `pg_locks`, whose key is a lower bound of every id it will take. `read_events` reads
//! only below the lowest fence (see `sql/api.sql`).

use std::ffi::CStr;

use pgrx::prelude::*;
use pgrx::PgMemoryContexts;

use crate::builtin_functions::builtin;

/// First key of the fence locks (`pg_locks.classid`): "pcnd".
pub const FENCE_CLASS: i32 = 0x7063_6e64;

pub struct EventLog {
    table: pg_sys::Oid,
    sequence: pg_sys::Oid,
    nextval: pg_sys::FmgrInfo,
    fence_lock: pg_sys::FmgrInfo,
    /// The log's indexes, described once per statement (in `memory_context`).
    indexes: Option<Vec<LogIndex>>,
    memory_context: pg_sys::MemoryContext,
}

struct LogIndex {
    oid: pg_sys::Oid,
    info: *mut pg_sys::IndexInfo,
    unique: bool,
}

/// The (top transaction, subtransaction) that last took a fence. A backend runs one
/// transaction at a time, and a fence taken in a subtransaction that rolls back is released
/// with it, so a new subtransaction takes its own.
static mut FENCED: (u64, pg_sys::SubTransactionId) = (0, 0);

impl EventLog {
    /// Finds the log's table and sequence (function entries live in `memory_context`).
    ///
    /// # Safety
    /// Must run inside a transaction.
    pub unsafe fn open(memory_context: pg_sys::MemoryContext) -> Self {
        unsafe {
            let namespace = pg_sys::get_namespace_oid(c"column_notify".as_ptr(), false);
            let table = pg_sys::get_relname_relid(c"events".as_ptr(), namespace);
            let sequence = pg_sys::get_relname_relid(c"event_ids".as_ptr(), namespace);
            if table == pg_sys::InvalidOid || sequence == pg_sys::InvalidOid {
                pgrx::error!(
                    "pg_column_notify: the event log is missing; run ALTER EXTENSION pg_column_notify UPDATE"
                );
            }
            EventLog {
                table,
                sequence,
                nextval: builtin(c"nextval_oid", memory_context),
                fence_lock: builtin(c"pg_advisory_xact_lock_shared_int4", memory_context),
                indexes: None,
                memory_context,
            }
        }
    }

    /// Takes the next event id, after this transaction's fence.
    pub fn next_event_id(&mut self) -> i64 {
        unsafe {
            self.fence();
            let id = pg_sys::FunctionCall1Coll(
                &mut self.nextval,
                pg_sys::InvalidOid,
                self.sequence.into(),
            );
            id.value() as i64
        }
    }

    unsafe fn fence(&mut self) {
        let current = unsafe {
            (
                pg_sys::GetTopFullTransactionId().value,
                pg_sys::GetCurrentSubTransactionId(),
            )
        };
        // SAFETY: a backend is single-threaded.
        if unsafe { FENCED } == current {
            return;
        }
        let next_id = Spi::get_one::<i64>(
            "SELECT CASE WHEN is_called THEN last_value + 1 ELSE 1 END FROM column_notify.event_ids",
        )
        .expect("reading the event id sequence")
        .unwrap_or(1);
        unsafe {
            pg_sys::FunctionCall2Coll(
                &mut self.fence_lock,
                pg_sys::InvalidOid,
                FENCE_CLASS.into(),
                (next_id as u32 as i32).into(),
            );
            FENCED = current;
        }
    }

    /// Appends one event. The table's indexes are maintained here; the log has no
    /// triggers, rules or constraints beyond NOT NULL, which the values always satisfy.
    pub fn append(&mut self, channel: &CStr, event_id: i64, payload: &[u8]) {
        unsafe {
            let relation =
                pg_sys::table_open(self.table, pg_sys::RowExclusiveLock as pg_sys::LOCKMODE);
            let mut values = [
                text_datum(channel.to_bytes()),
                event_id.into(),
                pg_sys::Datum::from(pg_sys::GetTopFullTransactionId().value),
                pg_sys::Datum::from(pg_sys::GetCurrentTransactionStartTimestamp()),
                text_datum(payload),
            ];
            let mut nulls = [false; 5];
            debug_assert_eq!((*(*relation).rd_att).natts as usize, values.len());
            let tuple = pg_sys::heap_form_tuple(
                (*relation).rd_att,
                values.as_mut_ptr(),
                nulls.as_mut_ptr(),
            );
            pg_sys::simple_heap_insert(relation, tuple);
            let memory_context = self.memory_context;
            let indexes = self
                .indexes
                .get_or_insert_with(|| describe_indexes(relation, memory_context));
            insert_index_entries(relation, indexes, tuple, &values);
            pg_sys::table_close(relation, pg_sys::NoLock as pg_sys::LOCKMODE);
        }
    }
}

/// The indexes of the log, with what inserting into them needs.
unsafe fn describe_indexes(
    relation: pg_sys::Relation,
    memory_context: pg_sys::MemoryContext,
) -> Vec<LogIndex> {
    unsafe {
        let list = pg_sys::RelationGetIndexList(relation);
        let count = if list.is_null() { 0 } else { (*list).length };
        let indexes = (0..count)
            .map(|n| {
                let oid = pg_sys::list_nth_oid(list, n);
                let index = pg_sys::index_open(oid, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
                let info = PgMemoryContexts::For(memory_context)
                    .switch_to(|_| pg_sys::BuildIndexInfo(index));
                let unique = (*(*index).rd_index).indisunique;
                pg_sys::index_close(index, pg_sys::NoLock as pg_sys::LOCKMODE);
                LogIndex { oid, info, unique }
            })
            .collect();
        pg_sys::list_free(list);
        indexes
    }
}

/// A text (or json) value of `bytes`, in the current memory context.
unsafe fn text_datum(bytes: &[u8]) -> pg_sys::Datum {
    unsafe {
        pg_sys::Datum::from(pg_sys::cstring_to_text_with_len(
            bytes.as_ptr().cast(),
            bytes.len() as i32,
        ))
    }
}

/// Inserts the index entries of a new tuple (plain column indexes, as the log has).
unsafe fn insert_index_entries(
    relation: pg_sys::Relation,
    indexes: &[LogIndex],
    tuple: pg_sys::HeapTuple,
    values: &[pg_sys::Datum],
) {
    for log_index in indexes {
        unsafe {
            let index =
                pg_sys::index_open(log_index.oid, pg_sys::RowExclusiveLock as pg_sys::LOCKMODE);
            let info = &*log_index.info;
            let width = info.ii_NumIndexAttrs as usize;
            let mut key_values: Vec<pg_sys::Datum> = info.ii_IndexAttrNumbers[..width]
                .iter()
                .map(|&attnum| values[attnum as usize - 1])
                .collect();
            let mut key_nulls = vec![false; width];
            let unique = if log_index.unique {
                pg_sys::IndexUniqueCheck::UNIQUE_CHECK_YES
            } else {
                pg_sys::IndexUniqueCheck::UNIQUE_CHECK_NO
            };
            pg_sys::index_insert(
                index,
                key_values.as_mut_ptr(),
                key_nulls.as_mut_ptr(),
                &mut (*tuple).t_self,
                relation,
                unique,
                false,
                log_index.info,
            );
            pg_sys::index_close(index, pg_sys::NoLock as pg_sys::LOCKMODE);
        }
    }
}
