//! Who owns a durable channel (`column_notify.durable_channels`): the role whose tables feed
//! it, through durable watches or WAL watches. A watch of another role's table cannot write
//! into it, so no role can forge events into a log, or into the WAL messages, another
//! role's consumers read. A channel's row goes with its last durable
//! watch; its id keys the channel's fence locks (see `event_log.rs`).

use pgrx::prelude::*;

use crate::errors::WatchError;
use crate::pg::internal_sql::{internal_table, none_when_no_row};
use crate::pg::server_text::{decode, text_arg, ServerText};
use crate::watch::catalog::CatalogLayout;

/// Whether the database's extension has durable channels (0.3.0 and later; a database not
/// yet updated keeps working with this library as before).
pub fn installed() -> bool {
    internal_table(c"durable_channels") != pg_sys::InvalidOid
}

/// Makes `channel` a durable channel of `owner`, who owns `table`; refused when it is
/// another role's.
pub fn claim(channel: &str, owner: pg_sys::Oid, table: &str) -> Result<(), WatchError> {
    if !installed() {
        return Ok(());
    }
    Spi::run_with_args(
        "INSERT INTO column_notify.durable_channels (channel, owner) VALUES ($1, $2)
         ON CONFLICT DO NOTHING",
        &[text_arg(channel), owner.into()],
    )
    .expect("claiming the durable channel");
    let current = none_when_no_row(
        Spi::get_two_with_args::<pg_sys::Oid, ServerText>(
            "SELECT d.owner, pg_catalog.pg_get_userbyid(d.owner)::pg_catalog.text
         FROM column_notify.durable_channels d WHERE d.channel OPERATOR(pg_catalog.=) $1",
            &[text_arg(channel)],
        )
        .map(|(owner, name)| owner.map(|owner| (owner, name))),
    )
    .expect("reading the durable channel");
    let (current_owner, owner_name) = match current {
        Some((owner, name)) => (Some(owner), name.map(|name| decode(&name.0))),
        None => (None, None),
    };
    if current_owner == Some(owner) {
        Ok(())
    } else {
        Err(WatchError::DurableChannelTaken {
            channel: channel.to_owned(),
            owner: owner_name.unwrap_or_default(),
            table: table.to_owned(),
        })
    }
}

/// Forgets `channel` as a durable channel when no durable or WAL watch writes to it any
/// more.
pub fn release_unused(channel: &str) {
    if !installed() {
        return;
    }
    let wal = if CatalogLayout::installed() == CatalogLayout::Current {
        " OR w.delivery OPERATOR(pg_catalog.=) 'wal'"
    } else {
        ""
    };
    Spi::run_with_args(
        &format!(
            "DELETE FROM column_notify.durable_channels d
             WHERE d.channel OPERATOR(pg_catalog.=) $1
               AND NOT EXISTS (SELECT FROM column_notify.watches w
                               WHERE w.channel OPERATOR(pg_catalog.=) d.channel
                                 AND (w.durable{wal}))"
        ),
        &[text_arg(channel)],
    )
    .expect("releasing the durable channel");
}
