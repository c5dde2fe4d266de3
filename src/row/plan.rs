//! What the trigger works out once about its watch and table and reuses for every row: the
//! channel, the watched and key columns, how each column is compared and rendered, and
//! where durable events go. Built once, never written by a call (its function-manager
//! entries keep their own caches); the per-call buffers are `scratch.rs`'s. The session
//! keeps it from statement to statement (see `plan_cache.rs`).

use std::ffi::{CStr, CString};

use pgrx::prelude::*;
use pgrx::{PgRelation, PgTupleDesc};

use pgrx::PgSqlErrorCode;

use crate::delivery::event_log::EventLog;
use crate::delivery::{notify, wal, Sink};
use crate::errors::{warn_during_write, warn_missing_column, TriggerProtocolError};
use crate::json::encoder::ColumnEncoder;
use crate::json::text as json_text;
use crate::pg::datum_image::Storage;
use crate::pg::internal_sql::with_safe_search_path;
use crate::pg::names::{attribute_name, relation_name, relation_namespace};
use crate::pg::primary_key::primary_key_attnums;
use crate::pg::server_text;
use crate::pg::subtransaction;
use crate::row::change_detection::Equality;
use crate::row::filter::CompiledFilter;
use crate::watch::catalog;
use crate::watch::durable_channels;
use crate::watch::spec::{Delivery, WatchSpec};

/// A watch's row filter as the plan holds it.
pub enum RowFilter {
    Compiled(CompiledFilter),
    /// The filter's text no longer parses (a function it calls was renamed, say): no change
    /// is sent, and the plan said so with a WARNING when it was built.
    Unusable,
}

impl RowFilter {
    /// # Safety
    /// As [`CompiledFilter::accepts`].
    pub unsafe fn accepts(
        &mut self,
        old: Option<&crate::row::row_values::RowValues>,
        new: Option<&crate::row::row_values::RowValues>,
    ) -> bool {
        match self {
            // SAFETY: the caller's obligation.
            Self::Compiled(filter) => unsafe { filter.accepts(old, new) },
            Self::Unusable => false,
        }
    }
}

/// One user column of the table (dropped columns have none).
pub struct ColumnPlan {
    /// Index in the tuple descriptor.
    pub index: usize,
    /// The column name as a JSON string, `"name"`.
    pub name_json: Vec<u8>,
    pub storage: Storage,
    pub encoder: ColumnEncoder,
}

/// A watched column and how to tell whether it changed.
pub struct WatchedColumn {
    /// Position in [`TriggerPlan::columns`].
    pub column: usize,
    pub equality: Equality,
}

pub struct TriggerPlan {
    trigger_oid: pg_sys::Oid,
    relation_oid: pg_sys::Oid,
    pub channel: CString,
    /// Where the payloads go: NOTIFY on the channel, or WAL messages.
    pub sink: Sink,
    /// Whether the payload carries `op`, the table's members and `changed`.
    pub metadata: bool,
    /// `"schema":"…","table":"…"`, rendered once (empty without metadata).
    pub table_members: Vec<u8>,
    pub columns: Vec<ColumnPlan>,
    /// Positions in `columns` of the columns shown in `old` and `new`, in table order.
    pub shown: Vec<usize>,
    pub watched: Vec<WatchedColumn>,
    /// Positions in `columns` of the key, in key order; empty when the table has none.
    pub key: Vec<usize>,
    /// Equality of each key column, to notice a changed key.
    pub key_equality: Vec<Equality>,
    /// For durable watches: where events are appended.
    pub event_log: Option<EventLog>,
    /// Whether changes go into the transaction's batches (`batch=true`).
    pub batched: bool,
    /// The watch's row filter, when it has one.
    pub filter: Option<RowFilter>,
    /// The width of the table's rows (dropped columns included).
    pub width: usize,
    /// Where PostgreSQL allocated what the plan needs (function call information).
    memory_context: pg_sys::MemoryContext,
}

impl TriggerPlan {
    /// Which trigger, on which table, the plan is for.
    pub fn key(&self) -> (pg_sys::Oid, pg_sys::Oid) {
        (self.trigger_oid, self.relation_oid)
    }

    /// Works out the plan of `trigger` on `relation`. What PostgreSQL allocates for it (function
    /// call information) lives in a memory context of the plan's own, deleted with it.
    ///
    /// # Safety
    /// `trigger` must be a trigger of `relation`, which must be open.
    pub unsafe fn build(trigger: &pg_sys::Trigger, relation: pg_sys::Relation) -> TriggerPlan {
        // Made under the current context, so that it goes with it if the build fails, and
        // moved under the top context once the plan is complete.
        // SAFETY: a new child of the current context, made inside the caller's transaction.
        let memory_context = unsafe {
            pg_sys::AllocSetContextCreateExtended(
                pg_sys::CurrentMemoryContext,
                c"pg_column_notify trigger plan".as_ptr(),
                pg_sys::ALLOCSET_SMALL_MINSIZE as usize,
                pg_sys::ALLOCSET_SMALL_INITSIZE as usize,
                pg_sys::ALLOCSET_SMALL_MAXSIZE as usize,
            )
        };
        // SAFETY: the trigger is the one being fired (the caller's obligation).
        let arguments = unsafe { trigger_arguments(trigger) };
        let spec = WatchSpec::from_arguments(&arguments)
            .unwrap_or_else(|error| TriggerProtocolError::BadArguments(error.to_string()).report());
        let channel = server_text::encode(&spec.channel);
        if notify::check_channel(&channel).is_err() {
            TriggerProtocolError::BadChannel(spec.channel.clone()).report()
        }

        // SAFETY: the relation is open for the whole build (the caller's obligation); `from_pg`
        // only borrows it and does not close it.
        let table = unsafe { PgRelation::from_pg(relation) };
        // SAFETY: an open relation's descriptor lives as long as the relation stays open.
        let descriptor = unsafe { PgTupleDesc::from_pg_unchecked((*relation).rd_att) };
        let mut columns = Vec::with_capacity(descriptor.len());
        for (index, attribute) in descriptor.iter().enumerate() {
            if attribute.attisdropped {
                continue;
            }
            let mut name_json = Vec::new();
            json_text::push_string(&mut name_json, attribute_name(attribute));
            columns.push(ColumnPlan {
                index,
                name_json,
                storage: Storage {
                    by_value: attribute.attbyval,
                    length: attribute.attlen,
                },
                // SAFETY: inside a transaction; the plan's context outlives the encoder (both go with
                // the plan).
                encoder: unsafe { ColumnEncoder::for_type(attribute.atttypid, memory_context) },
            });
        }
        let equality_of = |column: &ColumnPlan| {
            let attribute = descriptor
                .get(column.index)
                .expect("column index is in range");
            // SAFETY: as for the encoders.
            unsafe {
                Equality::for_column(
                    attribute.atttypid,
                    attribute.attcollation,
                    column.storage,
                    memory_context,
                )
            }
        };

        let qualified_name = format!(
            "{}.{}",
            server_text::decode(&relation_namespace(&table)),
            server_text::decode(relation_name(&table))
        );
        let position_of = |name: &[u8]| {
            columns
                .iter()
                .position(|column| descriptor.get(column.index).map(attribute_name) == Some(name))
        };
        // Names the table no longer has are skipped with a WARNING: the write goes on.
        let positions_of = |names: &[String]| -> Vec<usize> {
            names
                .iter()
                .filter_map(|name| {
                    let position = position_of(&server_text::encode(name));
                    if position.is_none() {
                        warn_missing_column(&qualified_name, name);
                    }
                    position
                })
                .collect()
        };
        let watched = positions_of(&spec.columns)
            .into_iter()
            .map(|column| WatchedColumn {
                column,
                equality: equality_of(&columns[column]),
            })
            .collect::<Vec<_>>();

        let key: Vec<usize> = match &spec.key {
            Some(names) => positions_of(names),
            // SAFETY: the relation is open.
            None => unsafe { primary_key_attnums(relation) }
                .into_iter()
                .filter_map(|attnum| columns.iter().position(|c| c.index + 1 == attnum as usize))
                .collect(),
        };
        let shown: Vec<usize> = match (&spec.include, &spec.exclude) {
            (Some(names), _) => {
                let mut included = positions_of(names);
                included.sort_unstable();
                included.dedup();
                included
            }
            (None, Some(names)) => {
                // An excluded name the table lacks is no loss (it may be a dropped column's,
                // kept so that a column added under it stays out).
                let excluded: Vec<usize> = names
                    .iter()
                    .filter_map(|name| position_of(&server_text::encode(name)))
                    .collect();
                (0..columns.len())
                    .filter(|position| !excluded.contains(position))
                    .collect()
            }
            (None, None) => (0..columns.len()).collect(),
        };
        let key_equality = key
            .iter()
            .map(|&column| equality_of(&columns[column]))
            .collect();

        let table_members = if spec.metadata {
            // SAFETY: the relation is open.
            unsafe { table_members(&table) }
        } else {
            Vec::new()
        };

        let event_log = if !spec.durable {
            None
        } else if durable_channels::installed() {
            // SAFETY: inside the trigger's transaction; the plan's context outlives the log.
            durable_channel_of(trigger, &spec.channel, &qualified_name).map(|channel_id| unsafe {
                EventLog::open(memory_context, table.oid(), Some(channel_id))
            })
        } else {
            // SAFETY: as above.
            Some(unsafe { EventLog::open(memory_context, table.oid(), None) })
        };

        let channel = CString::new(channel).expect("a trigger argument has no NUL");
        let sink = match spec.delivery {
            Delivery::Wal if is_wal_watch(trigger, &spec.channel, &qualified_name) => {
                Sink::Wal(wal::prefix_of(&spec.channel))
            }
            _ => Sink::Notify(channel.clone()),
        };

        let filter = spec.filter.as_deref().map(|text| {
            // SAFETY: the relation is open; the plan's context outlives the filter, which
            // the plan releases before deleting the context.
            let compiled = subtransaction::catching(|| unsafe {
                CompiledFilter::compile(relation, text, memory_context)
            });
            compiled.map(RowFilter::Compiled).unwrap_or_else(|failure| {
                warn_unusable_filter(trigger, &qualified_name, &failure.message);
                RowFilter::Unusable
            })
        });

        // SAFETY: the plan is complete: its context now lives until the plan is dropped.
        unsafe { pg_sys::MemoryContextSetParent(memory_context, pg_sys::TopMemoryContext) };
        TriggerPlan {
            trigger_oid: trigger.tgoid,
            relation_oid: table.oid(),
            channel,
            sink,
            metadata: spec.metadata,
            table_members,
            columns,
            shown,
            watched,
            key,
            key_equality,
            event_log,
            batched: spec.batch,
            filter,
            width: descriptor.len(),
            memory_context,
        }
    }
}

impl Drop for TriggerPlan {
    fn drop(&mut self) {
        if let Some(RowFilter::Compiled(filter)) = self.filter.take() {
            // SAFETY: released once, before the context it lives in is deleted.
            unsafe { filter.release() };
        }
        // SAFETY: the context is the plan's own, and nothing else points into it.
        unsafe { pg_sys::MemoryContextDelete(self.memory_context) }
    }
}

/// `"schema":"…","table":"…"`. A row of a partition is reported under the partitioned
/// table at the root of its tree (the one that was watched), with `"partition":"…"`.
///
/// # Safety
/// `table` must be open.
unsafe fn table_members(table: &PgRelation) -> Vec<u8> {
    let mut members = Vec::new();
    let mut push = |key: &[u8], value: &[u8]| {
        if !members.is_empty() {
            members.push(b',');
        }
        json_text::push_key(&mut members, key);
        json_text::push_string(&mut members, value);
    };
    // SAFETY: an open relation's pg_class row is loaded.
    let is_partition = unsafe { (*table.rd_rel).relispartition };
    if !is_partition {
        push(b"schema", &relation_namespace(table));
        push(b"table", relation_name(table));
        return members;
    }
    let root = with_safe_search_path(|| {
        Spi::get_one_with_args::<pg_sys::Oid>(
            "SELECT pg_catalog.pg_partition_root($1)::pg_catalog.oid",
            &[table.oid().into()],
        )
    })
    .ok()
    .flatten()
    .unwrap_or(table.oid());
    // SAFETY: the root of an open partition's tree exists, and is locked by the statement.
    let root = unsafe { PgRelation::open(root) };
    push(b"schema", &relation_namespace(&root));
    push(b"table", relation_name(&root));
    push(b"partition", relation_name(table));
    members
}

/// The id of the durable channel a durable trigger writes to. An event enters a durable
/// channel only through a watch that `watch_column` recorded (for a partition, the watch of
/// the partitioned table its trigger was cloned from): a hand-made trigger asking for
/// `durable=true` sends plain notifications, with a WARNING, and logs nothing.
fn durable_channel_of(trigger: &pg_sys::Trigger, channel: &str, table: &str) -> Option<i32> {
    let channel_id = catalog::durable_channel_id(trigger.tgoid, channel);
    if channel_id.is_none() {
        warn_not_recorded(
            trigger,
            table,
            "is not a durable watch; its events are not logged",
            "durable => true",
        );
    }
    channel_id
}

/// Whether a trigger asking for `delivery="wal"` may write WAL messages on its channel: only
/// a WAL watch that `watch_column` recorded (which checked that the channel is its table
/// owner's) may. A hand-made one sends plain notifications, with a WARNING.
fn is_wal_watch(trigger: &pg_sys::Trigger, channel: &str, table: &str) -> bool {
    let recorded = catalog::is_recorded_wal_watch(trigger.tgoid, channel);
    if !recorded {
        warn_not_recorded(
            trigger,
            table,
            "is not a WAL watch; its changes are sent with NOTIFY",
            "delivery => 'wal'",
        );
    }
    recorded
}

/// A trigger asked for what only a recorded watch gets: the write goes on without it.
fn warn_not_recorded(trigger: &pg_sys::Trigger, table: &str, consequence: &str, option: &str) {
    // SAFETY: a trigger's name is a NUL-terminated NameData.
    let name = server_text::decode_cstr(unsafe { CStr::from_ptr(trigger.tgname) });
    warn_during_write(
        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        format!("notify_column_changed: trigger \"{name}\" on {table} {consequence}"),
        &format!("Install such watches with watch_column(..., {option})."),
    );
}

/// A filter that no longer parses sends nothing; the write goes on.
fn warn_unusable_filter(trigger: &pg_sys::Trigger, table: &str, problem: &str) {
    // SAFETY: a trigger's name is a NUL-terminated NameData.
    let name = server_text::decode_cstr(unsafe { CStr::from_ptr(trigger.tgname) });
    warn_during_write(
        PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        format!(
            "notify_column_changed: the filter of trigger \"{name}\" on {table} cannot be used ({problem}); its changes are not sent"
        ),
        "Install the watch again with watch_column(..., filter => ...).",
    );
}

/// The trigger's arguments, decoded.
///
/// # Safety
/// `trigger` must be a trigger as the trigger manager passes it.
unsafe fn trigger_arguments(trigger: &pg_sys::Trigger) -> Vec<String> {
    (0..usize::try_from(trigger.tgnargs).unwrap_or(0))
        // SAFETY: tgargs holds tgnargs NUL-terminated strings.
        .map(|i| server_text::decode_cstr(unsafe { CStr::from_ptr(*trigger.tgargs.add(i)) }))
        .collect()
}
