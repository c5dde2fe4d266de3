//! `column-notify status`: how full the server's NOTIFY queue is, the sessions that could be
//! keeping it from being cleaned, and how far behind the durable consumers are.

use column_notify_listener::{connect_client, Error, TlsVerification};

use crate::failure::Failure;
use crate::output;
use crate::table::Table;

/// Sessions inside a transaction that do nothing: one of them that ran LISTEN keeps the
/// queue from being cleaned (PostgreSQL shows no session which channels another listens on).
const IDLE_IN_TRANSACTION: &str = "
    SELECT pid, usename AS role, application_name, client_addr,
           date_trunc('second', now() - xact_start) AS in_transaction_for,
           date_trunc('second', now() - state_change) AS idle_for
    FROM pg_catalog.pg_stat_activity
    WHERE state LIKE 'idle in transaction%' AND pid <> pg_catalog.pg_backend_pid()
    ORDER BY xact_start";

pub async fn run(url: &str, tls: &TlsVerification) -> Result<(), Failure> {
    let client = connect_client(url, tls).await?;
    let row = client
        .query_one(
            "SELECT pg_catalog.pg_notification_queue_usage(),
                    pg_catalog.current_setting('pg_column_notify.max_queue_usage', true),
                    pg_catalog.to_regclass('column_notify.event_backlog') IS NOT NULL",
            &[],
        )
        .await
        .map_err(Error::Query)?;
    let usage: f64 = row.get(0);
    let limit: Option<String> = row.get(1);
    let has_backlog: bool = row.get(2);
    // Written at once at the end: a pipe closed early ends the command quietly.
    let mut text = format!(
        "notification queue usage: {:.4}% (watches hold notifications back above {})\n",
        usage * 100.0,
        match limit.as_deref() {
            Some(limit) if !limit.is_empty() => format!("{limit} of it"),
            _ => "pg_column_notify.max_queue_usage, 0.5 of it by default".to_string(),
        }
    );

    let idle = Table::of_query(&client, IDLE_IN_TRANSACTION).await?;
    if idle.rows.is_empty() {
        text.push_str("\nno session is idle in a transaction\n");
    } else {
        text.push_str(&format!(
            "\nsessions idle in a transaction (one that ran LISTEN keeps the queue from being \
             cleaned; end it, or pg_terminate_backend(pid)):\n{idle}"
        ));
    }

    if has_backlog {
        let backlog = Table::of_query(
            &client,
            "SELECT * FROM column_notify.event_backlog ORDER BY channel",
        )
        .await?;
        if backlog.rows.is_empty() {
            text.push_str("\nno durable events waiting\n");
        } else {
            text.push_str(&format!(
                "\ndurable channels (events kept, slowest consumer):\n{backlog}"
            ));
        }
    }
    output::write(&text)?;
    Ok(())
}
