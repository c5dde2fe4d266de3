//! Event triggers that keep watches in step with the schema: a renamed column is renamed in
//! its watches (whose triggers name columns), a dropped column leaves its watches, and a
//! dropped table takes its watches out of the catalog. A renamed column is followed in the
//! tables that inherit it too. An excluded column that is dropped stays in the watch's
//! exclude list, so that a column added later under its name is never sent. A problem here
//! never fails the user's DDL: a watch that cannot follow is removed with a WARNING. A
//! renamed column is renamed in the filters that use it; a dropped trigger (with CASCADE
//! from a column its filter uses, say) takes its watch out of the catalog.

use std::ffi::CStr;

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::{pg_guard, pg_sys, PgLogLevel, PgRelation, PgSqlErrorCode};

use crate::errors::WatchError;
use crate::pg::internal_sql::none_when_no_row;
use crate::pg::server_text;
use crate::pg::v1_call::call_context;
use crate::watch::catalog::{self, StoredWatch};
use crate::watch::durable_channels;
use crate::watch::filter;
use crate::watch::install::{self, WatchedTable};
use crate::watch::spec::WatchSpec;

crate::pg::v1_call::v1_function_info!(pg_finfo_column_notify_follow_renames);
crate::pg::v1_call::v1_function_info!(pg_finfo_column_notify_forget_dropped);
crate::pg::v1_call::v1_function_info!(pg_finfo_column_notify_record_filter_dependencies);

/// `ddl_command_end` for CREATE TRIGGER: a trigger of `notify_column_changed()` with a
/// filter depends on what its filter uses, however it was made (`watch_column`, by hand, or
/// restored from a dump), as a trigger depends on its WHEN condition. A filter that does not
/// parse fails the CREATE TRIGGER.
///
/// # Safety
/// Called by PostgreSQL's event trigger machinery only.
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn column_notify_record_filter_dependencies(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: PostgreSQL calls this function with its call information (the caller's
    // contract); this checks that an event trigger called it.
    unsafe { event_trigger_data(fcinfo) };
    // Triggers cloned onto partitions depend on their parent's, which holds the filter.
    let created: Vec<(pg_sys::Oid, pg_sys::Oid, Vec<u8>)> = Spi::connect(|client| {
        client
            .select(
                "SELECT t.oid, t.tgrelid, t.tgargs
                 FROM pg_catalog.pg_event_trigger_ddl_commands() c
                 JOIN pg_catalog.pg_trigger t ON t.oid OPERATOR(pg_catalog.=) c.objid
                 WHERE c.object_type OPERATOR(pg_catalog.=) 'trigger'
                   AND t.tgparentid OPERATOR(pg_catalog.=) 0::pg_catalog.oid
                   AND EXISTS (SELECT FROM pg_catalog.pg_depend d
                               JOIN pg_catalog.pg_extension e ON e.oid OPERATOR(pg_catalog.=) d.refobjid
                               WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
                                 AND d.objid OPERATOR(pg_catalog.=) t.tgfoid
                                 AND d.deptype OPERATOR(pg_catalog.=) 'e'
                                 AND e.extname OPERATOR(pg_catalog.=) 'pg_column_notify')",
                None,
                &[],
            )?
            .map(|row| {
                Ok((
                    row.get::<pg_sys::Oid>(1)?.unwrap_or_default(),
                    row.get::<pg_sys::Oid>(2)?.unwrap_or_default(),
                    row.get::<Vec<u8>>(3)?.unwrap_or_default(),
                ))
            })
            .collect::<Result<Vec<_>, pgrx::spi::Error>>()
    })
    .expect("reading the created triggers");
    for (trigger, table, arguments) in created {
        // tgargs holds each argument followed by a NUL.
        let arguments: Vec<String> = arguments
            .split(|byte| *byte == 0)
            .map(server_text::decode)
            .collect();
        let arguments = &arguments[..arguments.len().saturating_sub(1)];
        // Arguments that describe no watch are the trigger's to report when it fires.
        let Ok(WatchSpec {
            filter: Some(filter),
            ..
        }) = WatchSpec::from_arguments(arguments)
        else {
            continue;
        };
        // SAFETY: the trigger's table exists and is locked by the running CREATE TRIGGER.
        let relation = unsafe { PgRelation::open(table) };
        // SAFETY: the relation is open, and `trigger` is a trigger on it.
        unsafe { filter::record_dependencies(relation.as_ptr(), trigger, &filter) }
            .unwrap_or_else(|error| error.report());
    }
    pg_sys::Datum::from(0)
}

/// `ddl_command_end` for ALTER TABLE: follows `RENAME COLUMN old TO new`.
///
/// # Safety
/// Called by PostgreSQL's event trigger machinery only.
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn column_notify_follow_renames(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: PostgreSQL calls this function with its call information (the caller's
    // contract).
    let tree = unsafe { event_trigger_data(fcinfo) }.parsetree;
    // SAFETY: a non-null parse tree is the running command's node, which lives for the call.
    if tree.is_null() || unsafe { (*tree).type_ } != pg_sys::NodeTag::T_RenameStmt {
        return pg_sys::Datum::from(0);
    }
    // SAFETY: a node tagged T_RenameStmt is a RenameStmt.
    let rename = unsafe { &*(tree as *const pg_sys::RenameStmt) };
    if rename.renameType != pg_sys::ObjectType::OBJECT_COLUMN || rename.relation.is_null() {
        return pg_sys::Datum::from(0);
    }
    // The renamed column's table, as the command resolved it (the function runs with
    // its own search_path, so the statement's name cannot be looked up again).
    let table = none_when_no_row(Spi::get_one::<pg_sys::Oid>(
        "SELECT c.objid FROM pg_catalog.pg_event_trigger_ddl_commands() c
         WHERE c.object_type OPERATOR(pg_catalog.=) 'table column'",
    ))
    .expect("reading the renamed column's table")
    .unwrap_or(pg_sys::InvalidOid);
    // SAFETY: a column rename names the old and the new column, NUL-terminated.
    let old = server_text::decode_cstr(unsafe { CStr::from_ptr(rename.subname) });
    // SAFETY: as for `old`.
    let new = server_text::decode_cstr(unsafe { CStr::from_ptr(rename.newname) });
    if table != pg_sys::InvalidOid {
        // The column is renamed in every table that inherits it too (partitions).
        for table in catalog::table_and_descendants(table) {
            for stored in catalog::watches_of(table) {
                match filter_after_rename(table, &stored, &old, &new) {
                    Err(reason) => {
                        remove_watch(table, &stored, PgLogLevel::WARNING, &reason.to_string())
                    }
                    Ok(filter) if filter.is_some() || stored.mentions(&old) => {
                        let mut renamed = stored.with_column_renamed(&old, &new);
                        if filter.is_some() {
                            renamed.spec.filter = filter;
                        }
                        reinstall_or_forget(table, &stored, renamed);
                    }
                    Ok(_) => {}
                }
            }
        }
    }
    pg_sys::Datum::from(0)
}

/// The watch's filter with column `old` of `table` renamed `new`, when the filter uses it.
fn filter_after_rename(
    table: pg_sys::Oid,
    stored: &StoredWatch,
    old: &str,
    new: &str,
) -> Result<Option<String>, WatchError> {
    let Some(text) = &stored.spec.filter else {
        return Ok(None);
    };
    // SAFETY: the renamed table exists and is locked by the running ALTER TABLE.
    let relation = unsafe { PgRelation::open(table) };
    // SAFETY: the relation is open.
    unsafe { filter::renamed_filter(relation.as_ptr(), text, old, new) }
}

/// `sql_drop`: forgets the watches of dropped tables and the dropped columns of watches.
///
/// # Safety
/// Called by PostgreSQL's event trigger machinery only.
#[pg_guard]
#[unsafe(no_mangle)]
pub unsafe extern "C-unwind" fn column_notify_forget_dropped(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    // SAFETY: PostgreSQL calls this function with its call information (the caller's
    // contract); this checks that an event trigger called it.
    unsafe { event_trigger_data(fcinfo) };
    // A dropped trigger's table is found by name: the trigger's row is gone, its table may
    // not be (DROP COLUMN ... CASCADE of a column a filter uses drops the watch's trigger).
    let dropped: Vec<(String, pg_sys::Oid, Option<String>)> = Spi::connect(|client| {
        client
            .select(
                "SELECT d.object_type,
                        CASE WHEN d.object_type OPERATOR(pg_catalog.=) 'trigger'
                             THEN (SELECT c.oid FROM pg_catalog.pg_class c
                                   JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
                                   WHERE n.nspname OPERATOR(pg_catalog.=) d.address_names[1]
                                     AND c.relname OPERATOR(pg_catalog.=) d.address_names[2])
                             ELSE d.objid END,
                        d.address_names[3]
                 FROM pg_catalog.pg_event_trigger_dropped_objects() d
                 WHERE d.object_type IN ('table', 'table column', 'trigger')
                 ORDER BY CASE d.object_type WHEN 'table' THEN 0 WHEN 'trigger' THEN 1 ELSE 2 END",
                None,
                &[],
            )?
            .map(|row| {
                Ok((
                    server_text::text_column(&row, 1)?.unwrap_or_default(),
                    row.get::<pg_sys::Oid>(2)?.unwrap_or_default(),
                    server_text::text_column(&row, 3)?,
                ))
            })
            .collect::<Result<Vec<_>, pgrx::spi::Error>>()
    })
    .expect("reading the dropped objects");
    // Watches of dropped tables go first, then those whose trigger was dropped, then the
    // dropped columns of the watches left.
    for (kind, table, name) in dropped {
        match (kind.as_str(), name) {
            ("table", _) => catalog::forget_table(table),
            ("trigger", Some(trigger)) => forget_watch_of_dropped_trigger(table, &trigger),
            ("table column", Some(column)) => {
                if !catalog::table_exists(table) {
                    continue;
                }
                for stored in catalog::watches_of(table) {
                    if !stored.mentions(&column) {
                        continue;
                    }
                    let remaining = stored.without_column(&column);
                    if remaining.spec.columns.is_empty() {
                        let why = format!("its last watched column \"{column}\" was dropped");
                        remove_watch(table, &stored, PgLogLevel::NOTICE, &why);
                    } else {
                        reinstall_or_forget(table, &stored, remaining);
                    }
                }
            }
            _ => {}
        }
    }
    pg_sys::Datum::from(0)
}

/// A watch whose trigger was dropped (by hand, or with a column or function its filter
/// uses) is gone: its catalog row goes too, with a NOTICE.
fn forget_watch_of_dropped_trigger(table: pg_sys::Oid, trigger: &str) {
    if table == pg_sys::InvalidOid {
        return;
    }
    if let Some(channel) = catalog::forget_watch_row(table, trigger) {
        durable_channels::release_unused(&channel);
        report_removed(
            table,
            trigger,
            PgLogLevel::NOTICE,
            "its trigger was dropped",
        );
    }
}

/// Removes a watch that can no longer follow its table, and says why at `level`.
fn remove_watch(table: pg_sys::Oid, stored: &StoredWatch, level: PgLogLevel, why: &str) {
    report_removed(table, &stored.trigger, level, why);
    install::forget_watch(table, &stored.trigger);
}

/// Says at `level` that the watch of `trigger` on `table` was removed, and why.
fn report_removed(table: pg_sys::Oid, trigger: &str, level: PgLogLevel, why: &str) {
    let message = format!(
        "pg_column_notify: removed watch {trigger} of table {}: {why}",
        catalog::table_display_name(table)
    );
    let code = match level {
        PgLogLevel::WARNING => PgSqlErrorCode::ERRCODE_WARNING,
        _ => PgSqlErrorCode::ERRCODE_SUCCESSFUL_COMPLETION,
    };
    ErrorReport::new(code, server_text::for_message(message), "pg_column_notify").report(level);
}

/// Installs `changed` in place of `stored`, under the same trigger name; when the watch no
/// longer makes sense (no column left, key gone), removes it and says so.
fn reinstall_or_forget(table_oid: pg_sys::Oid, stored: &StoredWatch, changed: StoredWatch) {
    let outcome = WatchedTable::open(table_oid).and_then(|table| {
        table.check_followed_spec(&changed.spec)?;
        Ok(table)
    });
    match outcome {
        Ok(table) => install::create_or_replace_trigger(
            &table,
            &changed.spec,
            changed.events,
            &stored.trigger,
        ),
        Err(reason) => remove_watch(table_oid, stored, PgLogLevel::WARNING, &reason.to_string()),
    }
}

/// The event trigger's data of this call; an error when no event trigger made the call.
///
/// # Safety
/// `fcinfo` must be a call from the function manager; `'a` must not outlive the call.
unsafe fn event_trigger_data<'a>(fcinfo: pg_sys::FunctionCallInfo) -> &'a pg_sys::EventTriggerData {
    // SAFETY: a call from the function manager (the caller's contract); a context tagged
    // T_EventTriggerData is an EventTriggerData.
    unsafe { call_context(fcinfo, pg_sys::NodeTag::T_EventTriggerData) }
        .unwrap_or_else(|| pgrx::error!("pg_column_notify: not called by an event trigger"))
}
