//! Data access to the catalog of watches (`column_notify.watches`): recording, reading and
//! forgetting rows, and the trigger's look-up of a durable watch. No DDL: the triggers
//! themselves are `install.rs`'s.

use std::ffi::CStr;

use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;

use crate::pg::internal_sql::{as_extension_owner, internal_table, none_when_no_row};
use crate::pg::server_text::{
    self, text_arg, text_array_arg, text_array_column, text_column, ServerText,
};
use crate::watch::durable_channels;
use crate::watch::events::Events;
use crate::watch::spec::{Delivery, WatchSpec};

/// A watch as the catalog records it.
#[derive(Debug, Clone)]
pub struct StoredWatch {
    pub trigger: String,
    pub spec: WatchSpec,
    pub events: Events,
}

impl StoredWatch {
    /// True when `column` plays any part in the watch.
    pub fn mentions(&self, column: &str) -> bool {
        self.spec
            .mentioned_columns()
            .iter()
            .any(|(_, name)| *name == column)
    }

    /// The same watch with `old` called `new` wherever it appears.
    pub fn with_column_renamed(&self, old: &str, new: &str) -> StoredWatch {
        self.map_names(|name| {
            Some(if name == old {
                new.to_owned()
            } else {
                name.to_owned()
            })
        })
    }

    /// The same watch without `column` (an emptied list makes the watch invalid, and the
    /// caller removes it). An excluded column stays excluded: a column added later under
    /// the same name must not be sent.
    pub fn without_column(&self, column: &str) -> StoredWatch {
        let mut watch = self.map_names(|name| (name != column).then(|| name.to_owned()));
        watch.spec.exclude.clone_from(&self.spec.exclude);
        watch
    }

    fn map_names(&self, rename: impl Fn(&str) -> Option<String>) -> StoredWatch {
        let list = |names: &[String]| {
            names
                .iter()
                .filter_map(|name| rename(name))
                .collect::<Vec<_>>()
        };
        let spec = &self.spec;
        StoredWatch {
            trigger: self.trigger.clone(),
            events: self.events,
            spec: WatchSpec {
                columns: list(&spec.columns),
                key: spec.key.as_deref().map(list),
                include: spec.include.as_deref().map(list),
                exclude: spec.exclude.as_deref().map(list),
                ..spec.clone()
            },
        }
    }
}

/// The shape of `column_notify.watches` in the installed version of the extension: a
/// database not yet updated (`ALTER EXTENSION ... UPDATE`) goes on working with this
/// library.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogLayout {
    Current,
    /// 0.1.0 had no options columns.
    Release0_1,
    /// 0.2.0 and 0.3.0 had no filter column.
    Release0_3,
    /// 0.4.0 had no delivery column.
    Release0_4,
}

impl CatalogLayout {
    /// The layout of this database's catalog of watches.
    pub fn installed() -> CatalogLayout {
        let table = internal_table(c"watches");
        let has_column = |column: &CStr| {
            // SAFETY: a catalog lookup by OID and a NUL-terminated name.
            table != pg_sys::InvalidOid
                && unsafe { pg_sys::get_attnum(table, column.as_ptr()) }
                    != pg_sys::InvalidAttrNumber as i16
        };
        if has_column(c"delivery") {
            CatalogLayout::Current
        } else if has_column(c"filter") {
            CatalogLayout::Release0_4
        } else if has_column(c"events") {
            CatalogLayout::Release0_3
        } else {
            CatalogLayout::Release0_1
        }
    }
}

/// Records (or replaces) the catalog row of a watch.
pub fn record(table: pg_sys::Oid, spec: &WatchSpec, events: Events, trigger: &str) {
    Spi::run_with_args(
        "DELETE FROM column_notify.watches WHERE table_name OPERATOR(pg_catalog.=) $1::pg_catalog.oid AND trigger_name OPERATOR(pg_catalog.=) $2",
        &[table.into(), text_arg(trigger)],
    )
    .expect("replacing the catalog row");
    let common = [
        table.into(),
        text_array_arg(Some(&spec.columns)),
        text_arg(&spec.channel),
        text_arg(trigger),
    ];
    let result = match CatalogLayout::installed() {
        CatalogLayout::Release0_1 => Spi::run_with_args(
            "INSERT INTO column_notify.watches (table_name, columns, channel, trigger_name)
             VALUES ($1::pg_catalog.oid, $2::pg_catalog.name[], $3, $4)",
            &common,
        ),
        layout => {
            let options = [
                events.names().into(),
                text_array_arg(spec.key.as_deref()),
                text_array_arg(spec.include.as_deref()),
                text_array_arg(spec.exclude.as_deref()),
                spec.durable.into(),
                spec.metadata.into(),
                spec.batch.into(),
            ];
            let mut arguments: Vec<_> = common.into_iter().chain(options).collect();
            let (filter_column, filter_value) = match layout {
                CatalogLayout::Release0_3 | CatalogLayout::Release0_1 => ("", ""),
                CatalogLayout::Release0_4 | CatalogLayout::Current => {
                    arguments.push(match &spec.filter {
                        Some(filter) => text_arg(filter),
                        None => DatumWithOid::null_oid(pg_sys::TEXTOID),
                    });
                    (", filter", ", $12")
                }
            };
            let (delivery_column, delivery_value) = if layout == CatalogLayout::Current {
                arguments.push(text_arg(spec.delivery.name()));
                (", delivery", ", $13")
            } else {
                ("", "")
            };
            Spi::run_with_args(
                &format!(
                    "INSERT INTO column_notify.watches
                       (table_name, columns, channel, trigger_name, events, key_columns, include_columns,
                        exclude_columns, durable, metadata, batch{filter_column}{delivery_column})
                     VALUES ($1::pg_catalog.oid, $2::pg_catalog.name[], $3, $4, $5, $6::pg_catalog.name[],
                             $7::pg_catalog.name[], $8::pg_catalog.name[], $9, $10, $11{filter_value}{delivery_value})"
                ),
                &arguments,
            )
        }
    };
    result.expect("recording the watch");
}

/// The watches recorded for `table`.
pub fn watches_of(table: pg_sys::Oid) -> Vec<StoredWatch> {
    let layout = CatalogLayout::installed();
    let filter = match layout {
        CatalogLayout::Current | CatalogLayout::Release0_4 => "filter",
        _ => "NULL::pg_catalog.text",
    };
    let delivery = match layout {
        CatalogLayout::Current => "delivery",
        _ => "'notify'::pg_catalog.text",
    };
    Spi::connect(|client| {
        client
            .select(
                &format!(
                    "SELECT trigger_name::pg_catalog.text, channel, pg_catalog.to_json(columns)::pg_catalog.text,
                            events, pg_catalog.to_json(key_columns)::pg_catalog.text,
                            pg_catalog.to_json(include_columns)::pg_catalog.text,
                            pg_catalog.to_json(exclude_columns)::pg_catalog.text, durable,
                            metadata, batch, {filter}, {delivery}
                     FROM column_notify.watches WHERE table_name OPERATOR(pg_catalog.=) $1::pg_catalog.oid
                     ORDER BY trigger_name"
                ),
                None,
                &[table.into()],
            )?
            .map(|row| {
                let events: Vec<String> = row.get(4)?.unwrap_or_default();
                Ok(StoredWatch {
                    trigger: text_column(&row, 1)?.unwrap_or_default(),
                    spec: WatchSpec {
                        channel: text_column(&row, 2)?.unwrap_or_default(),
                        columns: text_array_column(&row, 3)?.unwrap_or_default(),
                        key: text_array_column(&row, 5)?,
                        include: text_array_column(&row, 6)?,
                        exclude: text_array_column(&row, 7)?,
                        durable: row.get(8)?.unwrap_or(false),
                        metadata: row.get(9)?.unwrap_or(true),
                        batch: row.get(10)?.unwrap_or(false),
                        filter: text_column(&row, 11)?,
                        delivery: text_column(&row, 12)?
                            .as_deref()
                            .and_then(Delivery::from_name)
                            .unwrap_or_default(),
                    },
                    events: Events::from_names(&events).unwrap_or_default(),
                })
            })
            .collect::<Result<Vec<_>, pgrx::spi::Error>>()
    })
    .expect("reading the catalog of watches")
}

/// The trigger and channel of the watch of `table` on exactly the columns `columns` (in any
/// order), which a new watch of those columns replaces. Reads only what every release's
/// catalog has.
pub fn watch_of_columns(table: pg_sys::Oid, columns: &[String]) -> Option<(String, String)> {
    let sorted = |names: &[String]| {
        let mut names = names.to_vec();
        names.sort_unstable();
        names
    };
    let wanted = sorted(columns);
    let watches: Vec<(String, String, Vec<String>)> = Spi::connect(|client| {
        client
            .select(
                "SELECT trigger_name::pg_catalog.text, channel,
                        pg_catalog.to_json(columns)::pg_catalog.text
                 FROM column_notify.watches
                 WHERE table_name OPERATOR(pg_catalog.=) $1::pg_catalog.oid",
                None,
                &[table.into()],
            )?
            .map(|row| {
                Ok((
                    text_column(&row, 1)?.unwrap_or_default(),
                    text_column(&row, 2)?.unwrap_or_default(),
                    text_array_column(&row, 3)?.unwrap_or_default(),
                ))
            })
            .collect::<Result<Vec<_>, pgrx::spi::Error>>()
    })
    .expect("reading the catalog of watches");
    watches
        .into_iter()
        .find(|(_, _, watched)| sorted(watched) == wanted)
        .map(|(trigger, channel, _)| (trigger, channel))
}

/// Forgets every watch of a dropped table (its triggers went with it).
pub fn forget_table(table: pg_sys::Oid) {
    let channels: Vec<String> = Spi::connect_mut(|client| {
        client
            .update(
                "DELETE FROM column_notify.watches
                 WHERE table_name OPERATOR(pg_catalog.=) $1::pg_catalog.oid RETURNING channel",
                None,
                &[table.into()],
            )?
            .map(|row| text_column(&row, 1).map(Option::unwrap_or_default))
            .collect::<Result<Vec<_>, _>>()
    })
    .expect("forgetting the watches of a dropped table");
    for channel in channels {
        durable_channels::release_unused(&channel);
    }
}

/// Removes the catalog row of one watch; returns its channel.
pub fn forget_watch_row(table: pg_sys::Oid, trigger: &str) -> Option<String> {
    none_when_no_row(Spi::get_one_with_args::<ServerText>(
        "DELETE FROM column_notify.watches
         WHERE table_name OPERATOR(pg_catalog.=) $1::pg_catalog.oid
           AND trigger_name OPERATOR(pg_catalog.=) $2
         RETURNING channel",
        &[table.into(), text_arg(trigger)],
    ))
    .expect("forgetting a watch")
    .map(|channel| server_text::decode(&channel.0))
}

/// The id of durable channel `channel` when trigger `trigger` is (or was cloned onto a
/// partition from) the trigger of a durable watch on that channel recorded in the catalog.
/// Read as the extension's owner: a writer needs no privilege on the catalog.
pub fn durable_channel_id(trigger: pg_sys::Oid, channel: &str) -> Option<i32> {
    let query = recorded_watch_query(
        "d.id",
        "JOIN column_notify.durable_channels d ON d.channel OPERATOR(pg_catalog.=) w.channel",
        "w.durable",
    );
    let found = as_extension_owner(|| {
        Spi::get_one_with_args::<i32>(&query, &[trigger.into(), text_arg(channel)])
    });
    none_when_no_row(found).expect("reading the catalog of watches")
}

/// Whether trigger `trigger` is (or was cloned onto a partition from) the trigger of a WAL
/// watch on `channel` recorded in the catalog.
pub fn is_recorded_wal_watch(trigger: pg_sys::Oid, channel: &str) -> bool {
    if CatalogLayout::installed() != CatalogLayout::Current {
        return false;
    }
    let query = recorded_watch_query("true", "", "w.delivery OPERATOR(pg_catalog.=) 'wal'");
    let found = as_extension_owner(|| {
        Spi::get_one_with_args::<bool>(&query, &[trigger.into(), text_arg(channel)])
    });
    none_when_no_row(found)
        .expect("reading the catalog of watches")
        .unwrap_or(false)
}

/// A query of `selected` from the catalog row of the watch whose trigger is `$1` (or the
/// trigger of the partitioned table it was cloned from), on channel `$2`, where `condition`.
fn recorded_watch_query(selected: &str, join: &str, condition: &str) -> String {
    format!(
        "WITH RECURSIVE lineage AS (
             SELECT t.tgrelid, t.tgname, t.tgparentid FROM pg_catalog.pg_trigger t
             WHERE t.oid OPERATOR(pg_catalog.=) $1
           UNION ALL
             SELECT t.tgrelid, t.tgname, t.tgparentid FROM pg_catalog.pg_trigger t, lineage
             WHERE t.oid OPERATOR(pg_catalog.=) lineage.tgparentid)
         SELECT {selected} FROM lineage
         JOIN column_notify.watches w
           ON w.table_name::pg_catalog.oid OPERATOR(pg_catalog.=) lineage.tgrelid
          AND w.trigger_name OPERATOR(pg_catalog.=) lineage.tgname
         {join}
         WHERE lineage.tgparentid OPERATOR(pg_catalog.=) 0::pg_catalog.oid
           AND {condition} AND w.channel OPERATOR(pg_catalog.=) $2"
    )
}

/// `table` and every table that inherits from it, at any depth (partitions included).
pub fn table_and_descendants(table: pg_sys::Oid) -> Vec<pg_sys::Oid> {
    Spi::connect(|client| {
        client
            .select(
                "WITH RECURSIVE tree(relid) AS (
                     SELECT $1::pg_catalog.oid
                   UNION
                     SELECT i.inhrelid FROM pg_catalog.pg_inherits i, tree
                     WHERE i.inhparent OPERATOR(pg_catalog.=) tree.relid)
                 SELECT relid FROM tree",
                None,
                &[table.into()],
            )?
            .map(|row| row.get::<pg_sys::Oid>(1).map(Option::unwrap_or_default))
            .collect::<Result<Vec<_>, _>>()
    })
    .expect("reading the tables that inherit from a table")
}

pub fn table_exists(table: pg_sys::Oid) -> bool {
    // SAFETY: a catalog lookup by OID; an unknown one gives null.
    !unsafe { pg_sys::get_rel_name(table) }.is_null()
}

pub fn table_display_name(table: pg_sys::Oid) -> String {
    // SAFETY: a catalog lookup by OID; an unknown one gives null.
    let name = unsafe { pg_sys::get_rel_name(table) };
    if name.is_null() {
        format!("with OID {}", u32::from(table))
    } else {
        // SAFETY: a non-null result is a new NUL-terminated copy of the name.
        server_text::decode_cstr(unsafe { CStr::from_ptr(name) })
    }
}
