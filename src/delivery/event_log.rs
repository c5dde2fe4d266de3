//! The durable event log written by the trigger of a durable watch: every event is appended
//! to `column_notify.events` in the writer's transaction, so it commits or rolls back with
//! the change, and readers can replay what they missed. Nothing here depends on the
//! writer's privileges on the extension's internals.
//!
//! Event ids come from a sequence when the row is written, but transactions commit in
//! another order. So that a reader never moves past an id a running transaction may still
//! commit, each transaction first takes a "fence" on the channel: a lock visible in
//! `pg_locks`, keyed by the channel's id and an id taken from the sequence before any of its
//! events' ids. `read_events` reads only below the lowest fence of its channel (see
//! `sql/api.sql`). The lock is an advisory lock whose fourth key the SQL advisory lock
//! functions never use, so no role can take (and hold) a fence to stall readers.

use std::ffi::CStr;

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::{PgLogLevel, PgSqlErrorCode};

use crate::pg::memory_context::MemoryContextGuard;

/// The fourth key of the fence locks (`pg_locks.objsubid`); `pg_advisory_lock` and its
/// kin only use 1 and 2. `sql/api.sql` (read_events) uses the same number.
pub const FENCE_LOCK_KIND: u16 = 20035;

/// The first key of the fences of 0.2.0's `read_events` ("pcnd"), with the fourth key
/// `pg_advisory_xact_lock_shared(int4, int4)` sets: a database whose extension is not yet
/// updated to 0.3.0 keeps working with this library, as it did with 0.2.0's.
const RELEASE_0_2_FENCE_CLASS: u32 = 0x7063_6e64;
const RELEASE_0_2_FENCE_KIND: u16 = 2;

/// The columns of `column_notify.events`, in order (0.2.0's log lacks the last).
const LOG_COLUMNS: usize = 6;

// `commands/sequence.h`'s nextval without the privilege check is not among the functions
// pgrx binds.
unsafe extern "C-unwind" {
    fn nextval_internal(relid: pg_sys::Oid, check_permissions: bool) -> i64;
}

pub struct EventLog {
    table: pg_sys::Oid,
    sequence: pg_sys::Oid,
    /// The watched table, recorded with each event: readers must be able to SELECT it.
    watched_table: pg_sys::Oid,
    /// The durable channel's id (`column_notify.durable_channels`), the fence's first key;
    /// `None` in a database still on 0.2.0.
    channel_id: Option<i32>,
    /// The (top transaction, subtransaction) that last took a fence. A fence taken in a
    /// subtransaction that rolls back is released with it, so a new one takes its own.
    fenced: (u64, pg_sys::SubTransactionId),
    /// The log's indexes, described once per statement (in `memory_context`).
    indexes: Option<Vec<LogIndex>>,
    memory_context: pg_sys::MemoryContext,
}

struct LogIndex {
    oid: pg_sys::Oid,
    info: *mut pg_sys::IndexInfo,
    unique: bool,
}

impl EventLog {
    /// Finds the log's table and sequence, for events of `watched_table` on the durable
    /// channel `channel_id` (`None` in a database still on 0.2.0).
    ///
    /// # Safety
    /// Must run inside a transaction; `memory_context` must outlive the log (the
    /// descriptions of the log's indexes are kept in it).
    pub unsafe fn open(
        memory_context: pg_sys::MemoryContext,
        watched_table: pg_sys::Oid,
        channel_id: Option<i32>,
    ) -> Self {
        // SAFETY: catalog lookups by name, inside a transaction (the caller's contract).
        let (table, sequence) = unsafe {
            let namespace = pg_sys::get_namespace_oid(c"column_notify".as_ptr(), false);
            (
                pg_sys::get_relname_relid(c"events".as_ptr(), namespace),
                pg_sys::get_relname_relid(c"event_ids".as_ptr(), namespace),
            )
        };
        if table == pg_sys::InvalidOid || sequence == pg_sys::InvalidOid {
            pgrx::error!(
                "pg_column_notify: the event log is missing; run ALTER EXTENSION pg_column_notify UPDATE"
            );
        }
        EventLog {
            table,
            sequence,
            watched_table,
            channel_id,
            fenced: (0, 0),
            indexes: None,
            memory_context,
        }
    }

    /// Takes the next event id, after this transaction's fence.
    pub fn next_event_id(&mut self) -> i64 {
        // SAFETY: called by the trigger, inside the writer's transaction.
        unsafe { self.fence() };
        // SAFETY: the sequence exists (checked by `open`); no privilege is checked, as the
        // write must not depend on the writer's privileges on the log.
        unsafe { nextval_internal(self.sequence, false) }
    }

    /// Takes this transaction's fence on the channel, unless it holds one already.
    ///
    /// # Safety
    /// Must run inside the transaction that writes the events.
    unsafe fn fence(&mut self) {
        // SAFETY: only reads the current transaction's ids (assigning one if needed).
        let current = unsafe {
            (
                pg_sys::GetTopFullTransactionId().value,
                pg_sys::GetCurrentSubTransactionId(),
            )
        };
        if self.fenced == current {
            return;
        }
        // The fence's id is taken before every event id of the transaction, and the lock
        // is taken before any of them: a reader that does not see the lock yet read the
        // sequence before any of these ids existed.
        // SAFETY: as in `next_event_id`.
        let fence_id = unsafe { nextval_internal(self.sequence, false) };
        let (class, kind) = match self.channel_id {
            Some(channel_id) => (channel_id as u32, FENCE_LOCK_KIND),
            None => (RELEASE_0_2_FENCE_CLASS, RELEASE_0_2_FENCE_KIND),
        };
        let tag = pg_sys::LOCKTAG {
            // SAFETY: reads the backend's database, set when it connected.
            locktag_field1: unsafe { pg_sys::MyDatabaseId }.into(),
            locktag_field2: class,
            locktag_field3: fence_id as u32,
            locktag_field4: kind,
            locktag_type: pg_sys::LockTagType::LOCKTAG_ADVISORY as u8,
            locktag_lockmethodid: pg_sys::USER_LOCKMETHOD as u8,
        };
        // SAFETY: a transaction-level lock (released at the end of the transaction, or of
        // the subtransaction if it aborts); shared fences never wait for each other, and
        // nobody else can take this tag.
        unsafe {
            pg_sys::LockAcquire(&tag, pg_sys::ShareLock as pg_sys::LOCKMODE, false, false);
        }
        self.fenced = current;
    }

    /// Appends one event. The table's indexes are maintained here; the log has no
    /// triggers, rules or constraints beyond NOT NULL, which the values always satisfy.
    pub fn append(&mut self, channel: &CStr, event_id: i64, payload: &[u8]) {
        // SAFETY: the log's table exists (checked by `open`); it stays open and locked until
        // it is closed below, so its descriptor is valid.
        let (relation, columns) = unsafe {
            let relation =
                pg_sys::table_open(self.table, pg_sys::RowExclusiveLock as pg_sys::LOCKMODE);
            (relation, (*(*relation).rd_att).natts as usize)
        };
        if columns != LOG_COLUMNS && columns != LOG_COLUMNS - 1 {
            pgrx::error!(
                "pg_column_notify: column_notify.events does not have the columns this version writes; run ALTER EXTENSION pg_column_notify UPDATE"
            );
        }
        // SAFETY: inside the writer's transaction: copies of the texts in the current memory
        // context, the transaction's id and its start time.
        let mut values = unsafe {
            [
                text_datum(channel.to_bytes()),
                event_id.into(),
                pg_sys::Datum::from(pg_sys::GetTopFullTransactionId().value),
                pg_sys::Datum::from(pg_sys::GetCurrentTransactionStartTimestamp()),
                text_datum(payload),
                self.watched_table.into(),
            ]
        };
        let mut nulls = [false; LOG_COLUMNS];
        // heap_form_tuple takes as many values as the descriptor has columns.
        // SAFETY: the relation is open and locked; both arrays have at least as many entries
        // as its descriptor has columns (checked above).
        let tuple = unsafe {
            let tuple = pg_sys::heap_form_tuple(
                (*relation).rd_att,
                values.as_mut_ptr(),
                nulls.as_mut_ptr(),
            );
            pg_sys::simple_heap_insert(relation, tuple);
            tuple
        };
        let memory_context = self.memory_context;
        let indexes = self.indexes.get_or_insert_with(|| {
            // SAFETY: the relation is open and locked; `memory_context` outlives the log (the
            // contract of `open`).
            unsafe { describe_indexes(relation, memory_context) }
        });
        // SAFETY: `tuple` was just inserted into the open relation, whose indexes these are,
        // and `values` are its columns.
        unsafe { insert_index_entries(relation, indexes, tuple, &values) };
        // SAFETY: closes the relation opened above; its lock is kept to the end of the
        // transaction.
        unsafe { pg_sys::table_close(relation, pg_sys::NoLock as pg_sys::LOCKMODE) };
    }
}

/// The indexes of the log, with what inserting into them needs.
///
/// # Safety
/// `relation` must be open and locked; `memory_context` must outlive the descriptions.
unsafe fn describe_indexes(
    relation: pg_sys::Relation,
    memory_context: pg_sys::MemoryContext,
) -> Vec<LogIndex> {
    // SAFETY: `relation` is open (the caller's contract); the list is a copy of our own,
    // freed below.
    let list = unsafe { pg_sys::RelationGetIndexList(relation) };
    // SAFETY: a non-null list is a valid List.
    let count = unsafe { list.as_ref() }.map_or(0, |list| list.length);
    let indexes = (0..count)
        .map(|n| {
            // SAFETY: `n` is an index into the list of OIDs, which lives until freed below;
            // the index is opened here and closed below.
            let (oid, index) = unsafe {
                let oid = pg_sys::list_nth_oid(list, n);
                let index = pg_sys::index_open(oid, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
                (oid, index)
            };
            let info = {
                // SAFETY: `memory_context` outlives the descriptions (the caller's
                // contract), and the current context outlives this block.
                let _log_context = unsafe { MemoryContextGuard::switch_to(memory_context) };
                // SAFETY: the index is open.
                unsafe { pg_sys::BuildIndexInfo(index) }
            };
            // SAFETY: the index is open, so its relcache entry is valid until it is closed
            // here (its lock is kept to the end of the transaction).
            let (unique, name) = unsafe {
                let unique = (*(*index).rd_index).indisunique;
                let name = pgrx::name_data_to_str(&(*(*index).rd_rel).relname).to_owned();
                pg_sys::index_close(index, pg_sys::NoLock as pg_sys::LOCKMODE);
                (unique, name)
            };
            // SAFETY: BuildIndexInfo returned a complete IndexInfo, in `memory_context`.
            if !is_plain_column_index(unsafe { &*info }) {
                refuse_index(&name);
            }
            LogIndex { oid, info, unique }
        })
        .collect();
    // SAFETY: the list is our own copy and is not used again.
    unsafe { pg_sys::list_free(list) };
    indexes
}

/// Whether the index is on plain columns only, with no predicate and no exclusion
/// constraint: the only kind this module maintains the way the executor would.
fn is_plain_column_index(info: &pg_sys::IndexInfo) -> bool {
    let width = info.ii_NumIndexAttrs as usize;
    info.ii_Expressions.is_null()
        && info.ii_Predicate.is_null()
        && info.ii_ExclusionOps.is_null()
        && info.ii_IndexAttrNumbers[..width]
            .iter()
            .all(|&attnum| attnum >= 1)
}

/// An index the durable writes cannot maintain is refused, never filled wrongly.
fn refuse_index(name: &str) -> ! {
    ErrorReport::new(
        PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
        format!("pg_column_notify cannot maintain index \"{name}\" of its event log column_notify.events"),
        "pg_column_notify",
    )
    .set_hint(
        "Durable writes maintain plain column indexes of the log only: drop this expression, \
         partial or exclusion index.",
    )
    .report(PgLogLevel::ERROR);
    unreachable!("an ERROR report does not return")
}

/// A text (or json) value of `bytes`, in the current memory context.
///
/// # Safety
/// Must run inside a transaction; the value lives as long as the current memory context.
unsafe fn text_datum(bytes: &[u8]) -> pg_sys::Datum {
    // SAFETY: copies `bytes` into a new text value in the current memory context (the
    // caller's contract).
    unsafe {
        pg_sys::Datum::from(pg_sys::cstring_to_text_with_len(
            bytes.as_ptr().cast(),
            bytes.len() as i32,
        ))
    }
}

/// Inserts the index entries of a new tuple (plain column indexes, as the log has).
///
/// # Safety
/// `relation` must be open and locked, `indexes` its indexes as `describe_indexes` gave
/// them, `tuple` a tuple just inserted into it and `values` that tuple's columns.
unsafe fn insert_index_entries(
    relation: pg_sys::Relation,
    indexes: &[LogIndex],
    tuple: pg_sys::HeapTuple,
    values: &[pg_sys::Datum],
) {
    for log_index in indexes {
        // SAFETY: an index of the open relation (the caller's contract), opened here and
        // closed below.
        let index = unsafe {
            pg_sys::index_open(log_index.oid, pg_sys::RowExclusiveLock as pg_sys::LOCKMODE)
        };
        // SAFETY: made by `describe_indexes` in a context that outlives the log.
        let info = unsafe { &*log_index.info };
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
        // SAFETY: the index is open; the key arrays have its width, and `tuple` was just
        // inserted into `relation` (the caller's contract). Closing keeps the lock to the
        // end of the transaction.
        unsafe {
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
