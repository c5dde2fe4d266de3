//! The durable consumer's second connection, the one that reads the event log and
//! acknowledges: its two statements, and its reconnection (with the crate's backoff, as long
//! as it takes) when the connection is lost.

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row};

use super::events::StoredEvent;
use crate::backoff::{Backoff, Retries};
use crate::client::connect_client;
use crate::error::Error;
use crate::tls::TlsVerification;

/// The next events after what this process already delivered, at most `$5` of them.
/// `read_events` starts after the acknowledged position, so its limit `$3` also covers the
/// events delivered but not yet acknowledged, which the outer filter skips.
const READ_SQL: &str = "SELECT e.event_id, e.payload::text, e.created_at \
     FROM column_notify.read_events($1, $2, $3) AS e WHERE e.event_id > $4 ORDER BY e.event_id LIMIT $5";

const ACK_SQL: &str = "SELECT column_notify.ack_events($1, $2, $3)";

/// The query connection that reads and acknowledges, reopened after a loss.
#[derive(Debug)]
pub(super) struct Reader {
    url: String,
    tls: TlsVerification,
    backoff: Backoff,
    client: Option<Client>,
}

impl Reader {
    /// A reader not connected yet.
    pub(super) fn new(url: String, tls: TlsVerification, backoff: Backoff) -> Self {
        Reader {
            url,
            tls,
            backoff,
            client: None,
        }
    }

    /// Connects; `read_events` needs READ COMMITTED whatever the server's default.
    pub(super) async fn open(&mut self) -> Result<&Client, Error> {
        let client = connect_client(&self.url, &self.tls).await?;
        client
            .batch_execute("SET default_transaction_isolation TO 'read committed'")
            .await
            .map_err(Error::Query)?;
        Ok(self.client.insert(client))
    }

    /// The next events of `consumer` on `channel` after `after` (the last id delivered), at
    /// most `batch` of them; `limit` is `read_events`' own limit (see [`READ_SQL`]).
    pub(super) async fn read(
        &mut self,
        consumer: &str,
        channel: &str,
        limit: i32,
        after: i64,
        batch: i64,
    ) -> Result<Vec<StoredEvent>, Error> {
        let rows = self
            .query(READ_SQL, &[&consumer, &channel, &limit, &after, &batch])
            .await?;
        rows.iter()
            .map(|row| {
                Ok(StoredEvent {
                    event_id: row.try_get(0).map_err(Error::Query)?,
                    payload: row.try_get(1).map_err(Error::Query)?,
                    created_at: row.try_get(2).map_err(Error::Query)?,
                })
            })
            .collect()
    }

    /// Records that `consumer` processed every event on `channel` up to `event_id`; returns
    /// its position (`event_id` when the server returns none).
    pub(super) async fn ack(
        &mut self,
        consumer: &str,
        channel: &str,
        event_id: i64,
    ) -> Result<i64, Error> {
        let rows = self
            .query(ACK_SQL, &[&consumer, &channel, &event_id])
            .await?;
        Ok(rows
            .first()
            .map(|row| row.try_get(0))
            .transpose()
            .map_err(Error::Query)?
            .unwrap_or(event_id))
    }

    /// Runs a query, reconnecting (with backoff, as long as it takes) when the connection
    /// is lost. Both statements are safe to repeat. Other errors are returned.
    async fn query(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, Error> {
        let mut retries = Retries::new(self.backoff);
        loop {
            let client = match self.client.take() {
                Some(client) if !client.is_closed() => client,
                _ => match self.open().await {
                    Ok(_) => self.client.take().expect("just opened"),
                    Err(Error::Connect(_) | Error::Query(_)) => {
                        retries.wait().await;
                        continue;
                    }
                    Err(other) => return Err(other),
                },
            };
            match client.query(sql, params).await {
                Ok(rows) => {
                    self.client = Some(client);
                    return Ok(rows);
                }
                Err(error) if connection_lost(&client, &error) => retries.wait().await,
                Err(error) => {
                    self.client = Some(client);
                    return Err(Error::Query(error));
                }
            }
        }
    }
}

/// Whether `error` means the connection is gone (closed, or the server shutting down or
/// starting up) rather than a mistake in the query.
fn connection_lost(client: &Client, error: &tokio_postgres::Error) -> bool {
    if client.is_closed() || error.is_closed() {
        return true;
    }
    match error.as_db_error() {
        Some(db) => {
            let code = db.code().code();
            code.starts_with("08") || code.starts_with("57P")
        }
        None => true,
    }
}
