//! `watch_column`, `unwatch_column`: install and remove the trigger of a watch, and keep the
//! extension's catalog (`column_notify.watches`) in step, in the caller's transaction and
//! with the caller's rights. Every input is checked before anything is changed.

use std::ffi::CStr;

use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, quote_literal, quote_qualified_identifier};
use pgrx::PgRelation;

use crate::errors::WatchError;
use crate::notify::{self, ChannelProblem};
use crate::primary_key::primary_key_attnums;
use crate::trigger_naming::trigger_name_for;

/// Installs (or replaces) the trigger that notifies `channel` when `col` of `tbl` changes,
/// records the watch, and returns the channel. The default channel is
/// `<table>_<column>_changed`.
///
/// Raises: 22004 for a NULL table or column, 42P01 unknown table, 42809 not a table,
/// 42501 not the owner, 42703 unknown column, 0A000 system column, 55000 no primary key,
/// 22023 an empty channel or one of 64 bytes or more.
#[pg_extern(
    sql = "
CREATE FUNCTION watch_column(tbl regclass, col name, channel text DEFAULT NULL) RETURNS text
    VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';
COMMENT ON FUNCTION watch_column(regclass, name, text) IS
    'Notify channel (default <table>_<column>_changed) with {id, old, new} JSON whenever column col of tbl changes';
",
    requires = ["bootstrap"]
)]
fn watch_column(tbl: Option<pg_sys::Oid>, col: Option<&CStr>, channel: Option<&str>) -> String {
    let table = tbl.unwrap_or_else(|| WatchError::NullArgument("tbl").report());
    let column = col.unwrap_or_else(|| WatchError::NullArgument("col").report());
    let column = column.to_string_lossy().into_owned();
    install_watch(table, &[column], channel).unwrap_or_else(|error| error.report())
}

/// Removes the watches of `tbl` that include `col`: their triggers and catalog rows.
/// Returns true when a watch was removed, false (with a NOTICE) when there was none.
///
/// Raises: 22004 for NULL arguments, 42P01 unknown table, 42703 unknown column,
/// 42501 not the owner.
#[pg_extern(
    sql = "
CREATE FUNCTION unwatch_column(tbl regclass, col name) RETURNS boolean
    VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';
COMMENT ON FUNCTION unwatch_column(regclass, name) IS
    'Remove the watches of tbl that include column col (their triggers and catalog rows)';
",
    requires = ["bootstrap"]
)]
fn unwatch_column(tbl: Option<pg_sys::Oid>, col: Option<&CStr>) -> bool {
    let table = tbl.unwrap_or_else(|| WatchError::NullArgument("tbl").report());
    let column = col.unwrap_or_else(|| WatchError::NullArgument("col").report());
    let column = column.to_string_lossy().into_owned();
    remove_watches(table, &column).unwrap_or_else(|error| error.report())
}

/// A table that may be watched, with the facts the DDL needs.
struct WatchedTable {
    oid: pg_sys::Oid,
    schema: String,
    name: String,
}

impl WatchedTable {
    fn qualified(&self) -> String {
        quote_qualified_identifier(self.schema.as_str(), self.name.as_str())
    }

    /// Opens `oid` and checks that it is a table the current role owns.
    fn open(oid: pg_sys::Oid) -> Result<(Self, PgRelation), WatchError> {
        let display = relation_display_name(oid);
        if unsafe {
            !pg_sys::SearchSysCacheExists(
                pg_sys::SysCacheIdentifier::RELOID as i32,
                oid.into(),
                0.into(),
                0.into(),
                0.into(),
            )
        } {
            return Err(WatchError::UnknownRelation { relation: display });
        }
        let kind = unsafe { pg_sys::get_rel_relkind(oid) } as u8;
        if kind != pg_sys::RELKIND_RELATION && kind != pg_sys::RELKIND_PARTITIONED_TABLE {
            return Err(WatchError::NotATable {
                relation: display,
                kind: relkind_name(kind),
            });
        }
        if unsafe { !pg_sys::pg_class_ownercheck(oid, pg_sys::GetUserId()) } {
            return Err(WatchError::NotOwner { table: display });
        }
        // SAFETY: the relation exists; the lock is held until the end of the transaction.
        let relation = unsafe {
            PgRelation::with_lock(oid, pg_sys::ShareRowExclusiveLock as pg_sys::LOCKMODE)
        };
        let table = Self {
            oid,
            schema: relation.namespace().to_owned(),
            name: relation.name().to_owned(),
        };
        Ok((table, relation))
    }

    /// Checks that `column` is a user column of the table.
    fn check_column(&self, column: &str) -> Result<(), WatchError> {
        let name = std::ffi::CString::new(column).map_err(|_| self.unknown_column(column))?;
        let attnum = unsafe { pg_sys::get_attnum(self.oid, name.as_ptr()) };
        if attnum == pg_sys::InvalidAttrNumber as i16 {
            Err(self.unknown_column(column))
        } else if attnum < 0 {
            Err(WatchError::SystemColumn {
                column: column.to_owned(),
            })
        } else {
            Ok(())
        }
    }

    fn unknown_column(&self, column: &str) -> WatchError {
        WatchError::UnknownColumn {
            table: self.qualified(),
            column: column.to_owned(),
        }
    }
}

fn install_watch(
    table_oid: pg_sys::Oid,
    columns: &[String],
    channel: Option<&str>,
) -> Result<String, WatchError> {
    let (table, relation) = WatchedTable::open(table_oid)?;
    for column in columns {
        table.check_column(column)?;
    }
    if unsafe { primary_key_attnums(relation.as_ptr()) }.is_empty() {
        return Err(WatchError::NoPrimaryKey {
            table: table.qualified(),
        });
    }
    let channel = match channel {
        Some(channel) => channel.to_owned(),
        None => format!("{}_{}_changed", table.name, columns.join("_")),
    };
    match notify::check_channel(&channel) {
        Ok(()) => {}
        Err(ChannelProblem::Empty) => return Err(WatchError::EmptyChannel),
        Err(ChannelProblem::TooLong) => {
            let bytes = channel.len();
            return Err(WatchError::ChannelTooLong { channel, bytes });
        }
    }

    let trigger = trigger_name_for(columns);
    let arguments: Vec<String> = std::iter::once(&channel)
        .chain(columns)
        .map(quote_literal)
        .collect();
    let ddl = format!(
        "CREATE OR REPLACE TRIGGER {trigger} AFTER UPDATE ON {table} FOR EACH ROW \
         EXECUTE FUNCTION {function}({arguments})",
        trigger = quote_identifier(&trigger),
        table = table.qualified(),
        function = trigger_function_name(),
        arguments = arguments.join(", "),
    );
    Spi::run(&ddl).expect("creating the watch trigger");
    Spi::run_with_args(
        "DELETE FROM column_notify.watches WHERE table_name = $1::oid AND trigger_name = $2",
        &[table.oid.into(), trigger.as_str().into()],
    )
    .expect("replacing the catalog row");
    Spi::run_with_args(
        "INSERT INTO column_notify.watches (table_name, columns, channel, trigger_name) \
         VALUES ($1::oid, $2::name[], $3, $4)",
        &[
            table.oid.into(),
            columns.to_vec().into(),
            channel.as_str().into(),
            trigger.as_str().into(),
        ],
    )
    .expect("recording the watch");
    Ok(channel)
}

fn remove_watches(table_oid: pg_sys::Oid, column: &str) -> Result<bool, WatchError> {
    let (table, _relation) = WatchedTable::open(table_oid)?;
    table.check_column(column)?;
    let triggers: Vec<String> = Spi::connect_mut(|client| {
        client
            .update(
                "DELETE FROM column_notify.watches WHERE table_name = $1::oid AND $2::name = ANY (columns) \
                 RETURNING trigger_name::text",
                None,
                &[table.oid.into(), column.into()],
            )?
            .map(|row| row.get::<String>(1).map(Option::unwrap_or_default))
            .collect::<Result<Vec<_>, _>>()
    })
    .expect("removing the catalog rows");
    for trigger in &triggers {
        Spi::run(&format!(
            "DROP TRIGGER IF EXISTS {} ON {}",
            quote_identifier(trigger),
            table.qualified()
        ))
        .expect("dropping the watch trigger");
    }
    if triggers.is_empty() {
        pgrx::notice!(
            "column \"{column}\" of {} is not watched",
            table.qualified()
        );
    }
    Ok(!triggers.is_empty())
}

/// `schema.notify_column_changed`, in the schema the extension was installed in.
fn trigger_function_name() -> String {
    let schema = Spi::get_one::<String>(
        "SELECT n.nspname::text FROM pg_catalog.pg_extension e \
         JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace \
         WHERE e.extname = 'pg_column_notify'",
    )
    .expect("looking up the extension's schema")
    .expect("the extension is installed");
    quote_qualified_identifier(schema.as_str(), "notify_column_changed")
}

fn relation_display_name(oid: pg_sys::Oid) -> String {
    let name = unsafe { pg_sys::get_rel_name(oid) };
    if name.is_null() {
        format!("with OID {}", u32::from(oid))
    } else {
        unsafe { CStr::from_ptr(name) }
            .to_string_lossy()
            .into_owned()
    }
}

fn relkind_name(kind: u8) -> &'static str {
    match kind {
        pg_sys::RELKIND_VIEW => "view",
        pg_sys::RELKIND_MATVIEW => "materialized view",
        pg_sys::RELKIND_FOREIGN_TABLE => "foreign table",
        pg_sys::RELKIND_SEQUENCE => "sequence",
        pg_sys::RELKIND_INDEX | pg_sys::RELKIND_PARTITIONED_INDEX => "index",
        pg_sys::RELKIND_COMPOSITE_TYPE => "composite type",
        pg_sys::RELKIND_TOASTVALUE => "TOAST table",
        _ => "relation of another kind",
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    fn setup() {
        Spi::run("CREATE TABLE t (id int PRIMARY KEY, a int, b text); CREATE TABLE no_key (a int)")
            .unwrap();
    }

    fn count(query: &str) -> i64 {
        Spi::get_one::<i64>(query).unwrap().unwrap()
    }

    #[pg_test]
    fn watch_column_installs_trigger_and_catalog_row() {
        setup();
        let channel = Spi::get_one::<String>("SELECT watch_column('t', 'a')").unwrap();
        assert_eq!(channel.as_deref(), Some("t_a_changed"));
        assert_eq!(
            count("SELECT count(*) FROM column_watches WHERE channel = 't_a_changed'"),
            1
        );
        assert_eq!(
            count("SELECT count(*) FROM pg_trigger WHERE tgrelid = 't'::regclass AND tgname = 'column_notify_a'"),
            1
        );
        // The trigger fires without error on a real change (delivery is tested elsewhere:
        // NOTIFY is only sent at commit, and this test's transaction is rolled back).
        Spi::run("INSERT INTO t VALUES (1, 1, 'x'); UPDATE t SET a = 2").unwrap();
    }

    #[pg_test]
    fn watching_twice_replaces() {
        setup();
        Spi::run("SELECT watch_column('t', 'a'); SELECT watch_column('t', 'a', 'other')").unwrap();
        assert_eq!(count("SELECT count(*) FROM column_watches"), 1);
        assert_eq!(
            Spi::get_one::<String>("SELECT channel FROM column_watches")
                .unwrap()
                .as_deref(),
            Some("other")
        );
    }

    #[pg_test]
    fn unwatch_removes_trigger_and_row() {
        setup();
        Spi::run("SELECT watch_column('t', 'a')").unwrap();
        assert_eq!(
            Spi::get_one::<bool>("SELECT unwatch_column('t', 'a')").unwrap(),
            Some(true)
        );
        assert_eq!(count("SELECT count(*) FROM column_watches"), 0);
        assert_eq!(
            count("SELECT count(*) FROM pg_trigger WHERE tgrelid = 't'::regclass"),
            0
        );
    }

    #[pg_test(error = "column \"nope\" of relation public.t does not exist")]
    fn unknown_column_is_refused() {
        setup();
        Spi::run("SELECT watch_column('t', 'nope')").unwrap();
    }

    #[pg_test(error = "table public.no_key has no primary key")]
    fn table_without_key_is_refused() {
        setup();
        Spi::run("SELECT watch_column('no_key', 'a')").unwrap();
    }

    #[pg_test(error = "channel name must not be empty")]
    fn empty_channel_is_refused() {
        setup();
        Spi::run("SELECT watch_column('t', 'a', '')").unwrap();
    }

    #[pg_test(error = "cannot watch system column \"xmin\"")]
    fn system_column_is_refused() {
        setup();
        Spi::run("SELECT watch_column('t', 'xmin')").unwrap();
    }

    #[pg_test(
        error = "notify_column_changed() needs a channel and at least one column as trigger arguments"
    )]
    fn trigger_without_arguments_is_a_protocol_error() {
        setup();
        Spi::run(
            "CREATE TRIGGER bare AFTER UPDATE ON t FOR EACH ROW EXECUTE FUNCTION notify_column_changed();
             INSERT INTO t VALUES (1, 1, 'x'); UPDATE t SET a = 2",
        )
        .unwrap();
    }

    #[pg_test]
    fn oversize_payload_does_not_fail_the_write() {
        setup();
        Spi::run(
            "SELECT watch_column('t', 'a');
             INSERT INTO t VALUES (1, 1, repeat('x', 20000));
             UPDATE t SET a = 2",
        )
        .unwrap();
        assert_eq!(count("SELECT a::bigint FROM t"), 2);
    }
}
