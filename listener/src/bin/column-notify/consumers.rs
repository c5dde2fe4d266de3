//! `column-notify consumers`: each durable consumer's acknowledged position and backlog,
//! and each WAL consumer's replication slot with the WAL it keeps.

use column_notify_listener::{connect_client, Error, TlsVerification, SLOT_PREFIX};

use crate::failure::Failure;
use crate::output;
use crate::table::Table;

/// Durable consumers the role may see (row security of the consumers), with the events
/// after their position that it may read.
const DURABLE: &str = "
    SELECT c.channel, c.consumer, pg_catalog.pg_get_userbyid(c.owner) AS owner,
           c.position AS acknowledged,
           (SELECT pg_catalog.count(*) FROM column_notify.events e
            WHERE e.channel OPERATOR(pg_catalog.=) c.channel
              AND e.event_id OPERATOR(pg_catalog.>) c.position) AS backlog,
           pg_catalog.date_trunc('second', c.acknowledged_at) AS acknowledged_at
    FROM column_notify.consumers c
    ORDER BY c.channel, c.consumer";

/// The slots of WAL consumers (`column_notify_<name>`: the crate's slot names) in this
/// database. The prefix is a constant of letters and underscores, safe as a literal.
fn wal_sql() -> String {
    format!(
        "SELECT pg_catalog.substr(s.slot_name::text, {start}) AS consumer, s.active,
                s.confirmed_flush_lsn AS confirmed,
                pg_catalog.pg_size_pretty(pg_catalog.pg_wal_lsn_diff(
                    pg_catalog.pg_current_wal_lsn(), s.restart_lsn)) AS wal_kept
         FROM pg_catalog.pg_replication_slots s
         WHERE pg_catalog.starts_with(s.slot_name::text, '{SLOT_PREFIX}')
           AND s.database OPERATOR(pg_catalog.=) pg_catalog.current_database()
         ORDER BY 1",
        start = SLOT_PREFIX.len() + 1
    )
}

pub async fn run(url: &str, tls: &TlsVerification, json: bool) -> Result<(), Failure> {
    let client = connect_client(url, tls).await?;
    let installed: bool = client
        .query_one(
            "SELECT pg_catalog.to_regclass('column_notify.consumers') IS NOT NULL",
            &[],
        )
        .await
        .map_err(Error::Query)?
        .get(0);
    if !installed {
        return Err(Failure::new(
            "pg_column_notify is not installed in this database (CREATE EXTENSION pg_column_notify)",
        ));
    }
    if json {
        let sql = format!(
            "SELECT pg_catalog.json_build_object(
                 'durable', (SELECT COALESCE(pg_catalog.json_agg(d), '[]') FROM ({DURABLE}) d),
                 'wal', (SELECT COALESCE(pg_catalog.json_agg(w), '[]') FROM ({wal}) w))::text",
            wal = wal_sql()
        );
        let text: String = client
            .query_one(&sql, &[])
            .await
            .map_err(Error::Query)?
            .get(0);
        output::line(&text)?;
        return Ok(());
    }
    let durable = Table::of_query(&client, DURABLE).await?;
    let wal = Table::of_query(&client, &wal_sql()).await?;
    let section = |table: &Table, title: &str, none: &str| {
        if table.rows.is_empty() {
            format!("{none}\n")
        } else {
            format!("{title}:\n{table}")
        }
    };
    output::write(&format!(
        "{}\n{}",
        section(
            &durable,
            "durable consumers (the last event acknowledged, the events after it)",
            "no durable consumer"
        ),
        section(
            &wal,
            "WAL consumers (replication slots column_notify_<consumer>, the WAL each keeps)",
            "no WAL consumer"
        )
    ))?;
    Ok(())
}
