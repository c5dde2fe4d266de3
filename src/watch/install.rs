//! `watch_column`, `watch_columns`, `unwatch_column`: check the table and the watch, then
//! create or drop the watch's trigger (the DDL) and record it in the catalog, in the
//! caller's transaction and with the caller's rights. Every input is checked before
//! anything is changed, so a refused call leaves nothing behind.

use std::ffi::CStr;

use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, quote_literal, quote_qualified_identifier};
use pgrx::PgRelation;

use crate::delivery::notify::{self, ChannelProblem};
use crate::delivery::wal;
use crate::errors::WatchError;
use crate::pg::internal_sql::with_safe_search_path;
use crate::pg::names::{relation_name, relation_namespace};
use crate::pg::primary_key::primary_key_attnums;
use crate::pg::server_text;
use crate::pg::version as pg_version;
use crate::watch::catalog::{self, table_display_name, CatalogLayout};
use crate::watch::durable_channels;
use crate::watch::events::Events;
use crate::watch::filter;
use crate::watch::replacement;
use crate::watch::spec::{Delivery, WatchSpec};
use crate::watch::trigger_naming::{numbered_trigger_name, trigger_name_for};

/// 0.1.0's `watch_column(regclass, name, text)`, kept so that a database still on 0.1.0
/// goes on working with this library until `ALTER EXTENSION pg_column_notify UPDATE`.
#[pg_extern(sql = false)]
fn watch_column(
    tbl: Option<pg_sys::Oid>,
    col: Option<&CStr>,
    channel: Option<&[u8]>,
) -> server_text::ServerText {
    let request = WatchRequest {
        table: tbl,
        columns: Some(vec![col.map(server_text::decode_cstr)]),
        channel: channel.map(server_text::decode),
        events: Some(vec![Some("update".to_owned())]),
        key: None,
        include: None,
        exclude: None,
        durable: Some(false),
        metadata: Some(true),
        batch: Some(false),
        filter: None,
        delivery: Some("notify".to_owned()),
    };
    with_safe_search_path(|| request.install())
        .map(|channel| server_text::returned(&channel))
        .unwrap_or_else(|error| error.report())
}

/// 0.3.0's `column_notify.install_watch` (no filter), kept so that a database still on
/// 0.3.0 goes on working with this library until `ALTER EXTENSION pg_column_notify UPDATE`.
#[pg_extern(sql = false)]
#[allow(clippy::too_many_arguments)] // one per argument of the SQL function
fn install_watch(
    tbl: Option<pg_sys::Oid>,
    cols: Option<Array<&[u8]>>,
    channel: Option<&[u8]>,
    events: Option<Array<&[u8]>>,
    key: Option<Array<&[u8]>>,
    include: Option<Array<&[u8]>>,
    exclude: Option<Array<&[u8]>>,
    durable: Option<bool>,
    metadata: Option<bool>,
    batch: Option<bool>,
) -> server_text::ServerText {
    install_filtered_watch(
        tbl, cols, channel, events, key, include, exclude, durable, metadata, batch, None,
    )
}

/// 0.4.0's `column_notify.install_watch` (no delivery), kept so that a database still on
/// 0.4.0 goes on working with this library until `ALTER EXTENSION pg_column_notify UPDATE`.
#[pg_extern(sql = false)]
#[allow(clippy::too_many_arguments)] // one per argument of the SQL function
fn install_filtered_watch(
    tbl: Option<pg_sys::Oid>,
    cols: Option<Array<&[u8]>>,
    channel: Option<&[u8]>,
    events: Option<Array<&[u8]>>,
    key: Option<Array<&[u8]>>,
    include: Option<Array<&[u8]>>,
    exclude: Option<Array<&[u8]>>,
    durable: Option<bool>,
    metadata: Option<bool>,
    batch: Option<bool>,
    filter: Option<&[u8]>,
) -> server_text::ServerText {
    install_delivered_watch(
        tbl,
        cols,
        channel,
        events,
        key,
        include,
        exclude,
        durable,
        metadata,
        batch,
        filter,
        Some(b"notify"),
    )
}

/// The implementation behind `watch_column` and `watch_columns` (SQL wrappers in
/// `sql/api.sql` that give the arguments their names and defaults). Installs, or replaces,
/// the trigger of the watch, records it, and returns the channel.
#[pg_extern(
    sql = "
CREATE FUNCTION column_notify.install_watch(
    tbl regclass, cols text[], channel text, events text[], key text[], include text[], exclude text[],
    durable boolean, metadata boolean, batch boolean, filter text, delivery text
) RETURNS text VOLATILE PARALLEL UNSAFE LANGUAGE c SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';
",
    requires = ["bootstrap"]
)]
#[allow(clippy::too_many_arguments)] // one per argument of the SQL function
fn install_delivered_watch(
    tbl: Option<pg_sys::Oid>,
    cols: Option<Array<&[u8]>>,
    channel: Option<&[u8]>,
    events: Option<Array<&[u8]>>,
    key: Option<Array<&[u8]>>,
    include: Option<Array<&[u8]>>,
    exclude: Option<Array<&[u8]>>,
    durable: Option<bool>,
    metadata: Option<bool>,
    batch: Option<bool>,
    filter: Option<&[u8]>,
    delivery: Option<&[u8]>,
) -> server_text::ServerText {
    // Text arguments are taken as the database's bytes, whatever its encoding.
    let request = WatchRequest {
        table: tbl,
        columns: decoded_list(cols),
        channel: channel.map(server_text::decode),
        events: decoded_list(events),
        key: decoded_list(key),
        include: decoded_list(include),
        exclude: decoded_list(exclude),
        durable,
        metadata,
        batch,
        filter: filter.map(server_text::decode),
        delivery: delivery.map(server_text::decode),
    };
    with_safe_search_path(|| request.install())
        .map(|channel| server_text::returned(&channel))
        .unwrap_or_else(|error| error.report())
}

/// Removes the watches of `tbl` that include `col`: their triggers and catalog rows.
/// Returns true when a watch was removed, false (with a NOTICE) when there was none.
///
/// Raises: 22004 for NULL arguments, 42P01 unknown table, 42703 unknown column,
/// 42501 not the owner.
#[pg_extern(
    sql = "
CREATE FUNCTION unwatch_column(tbl regclass, col name) RETURNS boolean
    VOLATILE PARALLEL UNSAFE LANGUAGE c SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';
COMMENT ON FUNCTION unwatch_column(regclass, name) IS
    'Remove the watches of tbl that include column col (their triggers and catalog rows)';
",
    requires = ["bootstrap"]
)]
fn unwatch_column(tbl: Option<pg_sys::Oid>, col: Option<&CStr>) -> bool {
    let table = tbl.unwrap_or_else(|| WatchError::NullArgument("tbl").report());
    let column = col.unwrap_or_else(|| WatchError::NullArgument("col").report());
    let column = server_text::decode_cstr(column);
    with_safe_search_path(|| remove_watches(table, &column)).unwrap_or_else(|error| error.report())
}

fn decoded_list(list: Option<Array<&[u8]>>) -> Option<Vec<Option<String>>> {
    list.map(|items| {
        items
            .iter()
            .map(|item| item.map(server_text::decode))
            .collect()
    })
}

/// The arguments of a watch as SQL passed them, before any check.
pub struct WatchRequest {
    pub table: Option<pg_sys::Oid>,
    pub columns: Option<Vec<Option<String>>>,
    pub channel: Option<String>,
    pub events: Option<Vec<Option<String>>>,
    pub key: Option<Vec<Option<String>>>,
    pub include: Option<Vec<Option<String>>>,
    pub exclude: Option<Vec<Option<String>>>,
    pub durable: Option<bool>,
    pub metadata: Option<bool>,
    pub batch: Option<bool>,
    /// The row filter's text as written (NULL: none).
    pub filter: Option<String>,
    /// `notify` or `wal`.
    pub delivery: Option<String>,
}

impl WatchRequest {
    /// Checks everything, then installs the watch: under the trigger of the watch of the
    /// same columns, which it replaces, or under a new name no other trigger has.
    pub fn install(self) -> Result<String, WatchError> {
        let (table, spec, events) = self.check()?;
        if spec.durable || spec.delivery == Delivery::Wal {
            durable_channels::claim(&spec.channel, table.owner, &table.qualified())?;
        }
        let replaced = catalog::watch_of_columns(table.oid, &spec.columns);
        let trigger = match &replaced {
            Some((trigger, _)) => trigger.clone(),
            None => unique_trigger_name(table.oid, &spec.columns),
        };
        // A 0.1.0 catalog has no options to compare (nor the columns watches_of reads).
        if replaced.is_some() && CatalogLayout::installed() != CatalogLayout::Release0_1 {
            let old = catalog::watches_of(table.oid)
                .into_iter()
                .find(|stored| stored.trigger == trigger);
            if let Some(old) = old {
                replacement::report(&table.qualified(), &old, &spec, events);
            }
        }
        create_or_replace_trigger(&table, &spec, events, &trigger);
        if let Some((_, channel)) = replaced {
            durable_channels::release_unused(&channel);
        }
        Ok(spec.channel)
    }

    fn check(self) -> Result<(WatchedTable, WatchSpec, Events), WatchError> {
        let table_oid = self.table.ok_or(WatchError::NullArgument("tbl"))?;
        let columns = names("cols", self.columns)?.ok_or(WatchError::NullArgument("cols"))?;
        let events = names("events", self.events)?.ok_or(WatchError::NullArgument("events"))?;
        let table = WatchedTable::open(table_oid)?;
        let channel = match self.channel {
            Some(channel) => channel,
            None => format!("{}_{}_changed", table.name, columns.join("_")),
        };
        let mut spec = WatchSpec {
            channel,
            columns,
            key: names("key", self.key)?,
            include: names("include", self.include)?,
            exclude: names("exclude", self.exclude)?,
            durable: self.durable.ok_or(WatchError::NullArgument("durable"))?,
            metadata: self.metadata.ok_or(WatchError::NullArgument("metadata"))?,
            batch: self.batch.ok_or(WatchError::NullArgument("batch"))?,
            delivery: checked_delivery(self.delivery)?,
            filter: None,
        };
        if spec.delivery == Delivery::Wal && spec.durable {
            return Err(WatchError::DurableOverWal);
        }
        if spec.delivery == Delivery::Wal && spec.batch {
            return Err(WatchError::BatchOverWal);
        }
        table.check_spec(&spec)?;
        spec.filter = self
            .filter
            .map(|filter| table.checked_filter(&filter))
            .transpose()?;
        let events = Events::from_names(&events)?;
        Ok((table, spec, events))
    }
}

/// The delivery mode named; `wal` only where a replication slot can decode its messages.
fn checked_delivery(name: Option<String>) -> Result<Delivery, WatchError> {
    let name = name.ok_or(WatchError::NullArgument("delivery"))?;
    let delivery = Delivery::from_name(&name).ok_or(WatchError::UnknownDelivery { name })?;
    if delivery == Delivery::Wal && !wal::logical_decoding_possible() {
        return Err(WatchError::WalLevelNotLogical);
    }
    Ok(delivery)
}

/// A list argument: NULL stays None; a NULL element is refused.
fn names(
    argument: &'static str,
    list: Option<Vec<Option<String>>>,
) -> Result<Option<Vec<String>>, WatchError> {
    list.map(|items| {
        items
            .into_iter()
            .map(|item| item.ok_or(WatchError::NullElement(argument)))
            .collect()
    })
    .transpose()
}

/// A table that may be watched, with the facts the DDL needs.
pub struct WatchedTable {
    oid: pg_sys::Oid,
    /// The role that owns the table (and so its durable channels).
    owner: pg_sys::Oid,
    schema: String,
    name: String,
    has_primary_key: bool,
}

impl WatchedTable {
    fn qualified(&self) -> String {
        quote_qualified_identifier(self.schema.as_str(), self.name.as_str())
    }

    /// Checks that `oid` is a table the current role owns, and locks it until the end of
    /// the transaction (the lock CREATE TRIGGER takes), so nothing changes it between these
    /// checks and the trigger's creation.
    pub fn open(oid: pg_sys::Oid) -> Result<Self, WatchError> {
        let display = table_display_name(oid);
        // SAFETY: a syscache lookup by OID, inside the caller's transaction.
        let exists = unsafe {
            pg_sys::SearchSysCacheExists(
                pg_sys::SysCacheIdentifier::RELOID as i32,
                oid.into(),
                0.into(),
                0.into(),
                0.into(),
            )
        };
        if !exists {
            return Err(WatchError::UnknownRelation { relation: display });
        }
        // SAFETY: a catalog lookup of the relation, which exists.
        let kind = unsafe { pg_sys::get_rel_relkind(oid) } as u8;
        if kind != pg_sys::RELKIND_RELATION && kind != pg_sys::RELKIND_PARTITIONED_TABLE {
            return Err(WatchError::NotATable {
                relation: display,
                kind: relkind_name(kind),
            });
        }
        if !pg_version::current_user_owns_relation(oid) {
            return Err(WatchError::NotOwner { table: display });
        }
        // SAFETY: only compares the OID with the catalogs' range.
        if unsafe { pg_sys::IsCatalogRelationOid(oid) } {
            return Err(WatchError::SystemCatalog { table: display });
        }
        // A temporary table goes at the end of its session without any event trigger
        // firing, so its catalog rows would outlive it.
        // SAFETY: a catalog lookup of the relation, which exists.
        if unsafe { pg_sys::get_rel_persistence(oid) } as u8 == pg_sys::RELPERSISTENCE_TEMP {
            return Err(WatchError::TemporaryTable { table: display });
        }
        // SAFETY: the relation exists and is locked; `PgRelation::open` only reads it and
        // closes it without touching the lock.
        let relation = unsafe {
            pg_sys::LockRelationOid(oid, pg_sys::ShareRowExclusiveLock as pg_sys::LOCKMODE);
            PgRelation::open(oid)
        };
        Ok(Self {
            oid,
            // SAFETY: the relation is open, so its pg_class row is loaded.
            owner: unsafe { (*relation.rd_rel).relowner },
            schema: server_text::decode(&relation_namespace(&relation)),
            name: server_text::decode(relation_name(&relation)),
            // SAFETY: the relation is open.
            has_primary_key: !unsafe { primary_key_attnums(relation.as_ptr()) }.is_empty(),
        })
    }

    /// The filter `text` checked against the table, normalised.
    fn checked_filter(&self, text: &str) -> Result<String, WatchError> {
        let relation = self.relation();
        // SAFETY: the relation is open for the call.
        unsafe { filter::checked(relation.as_ptr(), text) }
    }

    /// The table, open (it is locked since `open`).
    fn relation(&self) -> PgRelation {
        // SAFETY: the relation exists and is locked by this transaction (see `open`).
        unsafe { PgRelation::open(self.oid) }
    }

    /// Checks every column the spec names, the key, the options and the channel.
    pub fn check_spec(&self, spec: &WatchSpec) -> Result<(), WatchError> {
        self.check_spec_with(spec, ExcludedColumns::MustExist)
    }

    /// [`WatchedTable::check_spec`] for a watch that follows a change of the table: an
    /// excluded column that was dropped stays excluded, so that a column added later under
    /// its name is never sent.
    pub fn check_followed_spec(&self, spec: &WatchSpec) -> Result<(), WatchError> {
        self.check_spec_with(spec, ExcludedColumns::MayBeGone)
    }

    fn check_spec_with(
        &self,
        spec: &WatchSpec,
        excluded: ExcludedColumns,
    ) -> Result<(), WatchError> {
        if spec.columns.is_empty() {
            return Err(WatchError::EmptyList("cols"));
        }
        for (role, names) in [("key", &spec.key), ("include", &spec.include)] {
            if names.as_ref().is_some_and(Vec::is_empty) {
                return Err(WatchError::EmptyList(role));
            }
        }
        if spec.include.is_some() && spec.exclude.is_some() {
            return Err(WatchError::ConflictingOptions("include", "exclude"));
        }
        for (role, column) in spec.mentioned_columns() {
            let gone_is_fine = role == "exclude" && excluded == ExcludedColumns::MayBeGone;
            let attnum = match self.check_column(column) {
                Err(WatchError::UnknownColumn { .. }) if gone_is_fine => continue,
                checked => checked?,
            };
            // A watched or key column must be in the row the trigger gets; shown or hidden
            // columns may be virtual (the payload shows them as row_to_json does).
            if matches!(role, "column" | "key")
                && pg_version::is_virtual_generated_column(self.oid, attnum)
            {
                return Err(WatchError::VirtualGeneratedColumn {
                    column: column.to_owned(),
                });
            }
        }
        if let Some(duplicate) = first_duplicate(&spec.columns) {
            return Err(WatchError::DuplicateColumn {
                column: duplicate.to_owned(),
            });
        }
        if spec.key.is_none() && !self.has_primary_key {
            return Err(WatchError::NoPrimaryKey {
                table: self.name.clone(),
            });
        }
        let channel = server_text::encode(&spec.channel);
        match notify::check_channel(&channel) {
            Ok(()) => Ok(()),
            Err(ChannelProblem::Empty) => Err(WatchError::EmptyChannel),
            Err(ChannelProblem::TooLong) => Err(WatchError::ChannelTooLong {
                channel: spec.channel.clone(),
                bytes: channel.len(),
            }),
        }
    }

    /// Checks that `column` is a user column of the table; returns its number.
    fn check_column(&self, column: &str) -> Result<pg_sys::AttrNumber, WatchError> {
        if column.contains('\0') {
            return Err(self.unknown_column(column));
        }
        let name = server_text::encode_cstring(column);
        // SAFETY: a catalog lookup by the table's OID and a NUL-terminated name.
        let attnum = unsafe { pg_sys::get_attnum(self.oid, name.as_ptr()) };
        if attnum == pg_sys::InvalidAttrNumber as i16 {
            Err(self.unknown_column(column))
        } else if attnum < 0 {
            Err(WatchError::SystemColumn {
                column: column.to_owned(),
            })
        } else {
            Ok(attnum)
        }
    }

    fn unknown_column(&self, column: &str) -> WatchError {
        // As PostgreSQL names a relation in its errors: the name alone, in quotes.
        WatchError::UnknownColumn {
            table: self.name.clone(),
            column: column.to_owned(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExcludedColumns {
    MustExist,
    MayBeGone,
}

fn first_duplicate(names: &[String]) -> Option<&str> {
    names
        .iter()
        .enumerate()
        .find(|(at, name)| names[..*at].contains(name))
        .map(|(_, name)| name.as_str())
}

/// Creates or replaces the trigger `trigger` for `spec` and records the watch.
pub fn create_or_replace_trigger(
    table: &WatchedTable,
    spec: &WatchSpec,
    events: Events,
    trigger: &str,
) {
    let arguments: Vec<String> = spec.to_arguments().iter().map(quote_literal).collect();
    let ddl = format!(
        "CREATE OR REPLACE TRIGGER {trigger} AFTER {events} ON {table} \
         FOR EACH ROW EXECUTE FUNCTION {function}({arguments})",
        trigger = quote_identifier(trigger),
        events = events.sql(),
        table = table.qualified(),
        function = trigger_function_name(),
        arguments = arguments.join(", "),
    );
    // The event trigger on CREATE TRIGGER makes it depend on what its filter uses.
    server_text::run(&ddl);
    catalog::record(table.oid, spec, events, trigger);
}

fn remove_watches(table_oid: pg_sys::Oid, column: &str) -> Result<bool, WatchError> {
    let table = WatchedTable::open(table_oid)?;
    table.check_column(column)?;
    let triggers: Vec<(String, String)> = Spi::connect_mut(|client| {
        client
            .update(
                "DELETE FROM column_notify.watches
                 WHERE table_name OPERATOR(pg_catalog.=) $1::pg_catalog.oid
                   AND $2::pg_catalog.name OPERATOR(pg_catalog.=) ANY (columns)
                 RETURNING trigger_name::pg_catalog.text, channel",
                None,
                &[table.oid.into(), server_text::text_arg(column)],
            )?
            .map(|row| {
                Ok((
                    server_text::text_column(&row, 1)?.unwrap_or_default(),
                    server_text::text_column(&row, 2)?.unwrap_or_default(),
                ))
            })
            .collect::<Result<Vec<_>, pgrx::spi::Error>>()
    })
    .expect("removing the catalog rows");
    for (trigger, channel) in &triggers {
        drop_trigger(&table, trigger);
        durable_channels::release_unused(channel);
    }
    if triggers.is_empty() {
        pgrx::notice!(
            "{}",
            server_text::for_message(format!(
                "column \"{column}\" of {} is not watched",
                table.qualified()
            ))
        );
    }
    Ok(!triggers.is_empty())
}

/// A name for a new watch's trigger on `table`: `column_notify_<columns>`, with a number
/// after it when a trigger of that name is on the table, on a partitioned table above it
/// or on a partition below it (where PostgreSQL clones a partitioned table's triggers), so
/// that no watch ever replaces or shadows another trigger.
fn unique_trigger_name(table: pg_sys::Oid, columns: &[String]) -> String {
    let taken: Vec<String> = Spi::connect(|client| {
        client
            .select(
                "SELECT t.tgname::pg_catalog.text FROM pg_catalog.pg_trigger t
                 WHERE t.tgrelid OPERATOR(pg_catalog.=) $1
                    OR t.tgrelid IN (SELECT a::pg_catalog.oid FROM pg_catalog.pg_partition_ancestors($1) a)
                    OR t.tgrelid IN (SELECT p.relid::pg_catalog.oid FROM pg_catalog.pg_partition_tree($1) p)",
                None,
                &[table.into()],
            )?
            .map(|row| server_text::text_column(&row, 1).map(Option::unwrap_or_default))
            .collect::<Result<Vec<_>, _>>()
    })
    .expect("reading the table's trigger names");
    let base = trigger_name_for(columns);
    (1..)
        .map(|n| numbered_trigger_name(&base, n))
        .find(|name| !taken.contains(name))
        .expect("some number gives a free name")
}

/// Removes one watch: its trigger, when the table is still there, and its catalog row.
/// The row goes first: dropping the trigger then finds no watch of it to forget.
pub fn forget_watch(table_oid: pg_sys::Oid, trigger: &str) {
    if let Some(channel) = catalog::forget_watch_row(table_oid, trigger) {
        durable_channels::release_unused(&channel);
    }
    if let Ok(table) = WatchedTable::open(table_oid) {
        drop_trigger(&table, trigger);
    }
}

pub fn drop_trigger(table: &WatchedTable, trigger: &str) {
    server_text::run(&format!(
        "DROP TRIGGER IF EXISTS {} ON {}",
        quote_identifier(trigger),
        table.qualified()
    ));
}

/// `schema.notify_column_changed`, in the schema the extension was installed in.
fn trigger_function_name() -> String {
    let schema = Spi::get_one::<server_text::ServerText>(
        "SELECT n.nspname::pg_catalog.text FROM pg_catalog.pg_extension e \
         JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace \
         WHERE e.extname OPERATOR(pg_catalog.=) 'pg_column_notify'",
    )
    .expect("looking up the extension's schema")
    .map(|schema| server_text::decode(&schema.0))
    .expect("the extension is installed");
    quote_qualified_identifier(schema.as_str(), "notify_column_changed")
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

    #[pg_test(error = "column \"nope\" of relation \"t\" does not exist")]
    fn unknown_column_is_refused() {
        setup();
        Spi::run("SELECT watch_column('t', 'nope')").unwrap();
    }

    #[pg_test(error = "table \"no_key\" has no primary key")]
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
        error = "notify_column_changed() has bad trigger arguments: a channel and at least one column are required"
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
