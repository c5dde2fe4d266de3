//! Reading and pruning the catalog of watches (`column_notify.watches`) for the event
//! triggers; `watch.rs` writes it when watches are installed.

use std::ffi::CStr;

use pgrx::prelude::*;

use crate::events::Events;
use crate::watch::{drop_trigger, WatchedTable};
use crate::watch_spec::WatchSpec;

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
    /// caller removes it).
    pub fn without_column(&self, column: &str) -> StoredWatch {
        self.map_names(|name| (name != column).then(|| name.to_owned()))
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

/// The shape of `column_notify.watches` in the installed version of the extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogLayout {
    Current,
    /// 0.1.0 had no options columns; its `watch_column` still runs against this library
    /// until the database is updated.
    Release0_1,
}

/// Records (or replaces) the catalog row of a watch.
pub fn record(
    table: pg_sys::Oid,
    spec: &WatchSpec,
    events: Events,
    trigger: &str,
    layout: CatalogLayout,
) {
    Spi::run_with_args(
        "DELETE FROM column_notify.watches WHERE table_name = $1::oid AND trigger_name = $2",
        &[table.into(), trigger.into()],
    )
    .expect("replacing the catalog row");
    let common = [
        table.into(),
        spec.columns.clone().into(),
        spec.channel.as_str().into(),
        trigger.into(),
    ];
    let result = match layout {
        CatalogLayout::Release0_1 => Spi::run_with_args(
            "INSERT INTO column_notify.watches (table_name, columns, channel, trigger_name)
             VALUES ($1::oid, $2::name[], $3, $4)",
            &common,
        ),
        CatalogLayout::Current => {
            let options = [
                events.names().into(),
                spec.key.clone().into(),
                spec.include.clone().into(),
                spec.exclude.clone().into(),
                spec.durable.into(),
                spec.metadata.into(),
                spec.batch.into(),
            ];
            Spi::run_with_args(
                "INSERT INTO column_notify.watches
                   (table_name, columns, channel, trigger_name, events, key_columns, include_columns,
                    exclude_columns, durable, metadata, batch)
                 VALUES ($1::oid, $2::name[], $3, $4, $5, $6::name[], $7::name[], $8::name[], $9, $10,
                         $11)",
                &common.into_iter().chain(options).collect::<Vec<_>>(),
            )
        }
    };
    result.expect("recording the watch");
}

/// The watches recorded for `table`.
pub fn watches_of(table: pg_sys::Oid) -> Vec<StoredWatch> {
    Spi::connect(|client| {
        client
            .select(
                "SELECT trigger_name::text, channel, columns::text[], events,
                        key_columns::text[], include_columns::text[], exclude_columns::text[], durable,
                        metadata, batch
                 FROM column_notify.watches WHERE table_name = $1::oid ORDER BY trigger_name",
                None,
                &[table.into()],
            )?
            .map(|row| {
                let events: Vec<String> = row.get(4)?.unwrap_or_default();
                Ok(StoredWatch {
                    trigger: row.get(1)?.unwrap_or_default(),
                    spec: WatchSpec {
                        channel: row.get(2)?.unwrap_or_default(),
                        columns: row.get(3)?.unwrap_or_default(),
                        key: row.get(5)?,
                        include: row.get(6)?,
                        exclude: row.get(7)?,
                        durable: row.get(8)?.unwrap_or(false),
                        metadata: row.get(9)?.unwrap_or(true),
                        batch: row.get(10)?.unwrap_or(false),
                    },
                    events: Events::from_names(&events).unwrap_or_default(),
                })
            })
            .collect::<Result<Vec<_>, pgrx::spi::Error>>()
    })
    .expect("reading the catalog of watches")
}

/// Forgets every watch of a dropped table (its triggers went with it).
pub fn forget_table(table: pg_sys::Oid) {
    Spi::run_with_args(
        "DELETE FROM column_notify.watches WHERE table_name = $1::oid",
        &[table.into()],
    )
    .expect("forgetting the watches of a dropped table");
}

/// Removes one watch: its trigger, when the table is still there, and its catalog row.
pub fn forget_watch(table_oid: pg_sys::Oid, trigger: &str) {
    if let Ok(table) = WatchedTable::open(table_oid) {
        drop_trigger(&table, trigger);
    }
    Spi::run_with_args(
        "DELETE FROM column_notify.watches WHERE table_name = $1::oid AND trigger_name = $2",
        &[table_oid.into(), trigger.into()],
    )
    .expect("forgetting a watch");
}

pub fn table_exists(table: pg_sys::Oid) -> bool {
    !unsafe { pg_sys::get_rel_name(table) }.is_null()
}

pub fn table_display_name(table: pg_sys::Oid) -> String {
    let name = unsafe { pg_sys::get_rel_name(table) };
    if name.is_null() {
        format!("with OID {}", u32::from(table))
    } else {
        unsafe { CStr::from_ptr(name) }
            .to_string_lossy()
            .into_owned()
    }
}
