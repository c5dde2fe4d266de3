//! One active relay per consumer: the active relay holds, on a connection of its own, a
//! session-level advisory lock per channel, keyed by the consumer's name and the channel. A
//! second relay of the same consumer waits for the locks as a standby. When the holder's
//! connection ends (its process died, its backend was terminated, the server restarted),
//! PostgreSQL releases the locks and the standby takes them; the former holder sees its
//! connection end and stops publishing.

use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::{sleep, timeout};
use tokio_postgres::Client;

use crate::backoff::{Backoff, Retries};
use crate::client::open;
use crate::error::{describe, Error};
use crate::tls::TlsVerification;

/// How often the holder checks that its connection still answers (a connection that died
/// silently would otherwise hold no lock while the relay goes on).
const HEALTH_INTERVAL: Duration = Duration::from_secs(2);
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

/// The locks' first key: the consumer, within a namespace of the relay's own.
const LOCK_SQL: &str =
    "SELECT pg_catalog.pg_advisory_lock(pg_catalog.hashtext('pg_column_notify relay ' || $1), \
     pg_catalog.hashtext($2))";
const TRY_LOCK_SQL: &str =
    "SELECT pg_catalog.pg_try_advisory_lock(pg_catalog.hashtext('pg_column_notify relay ' || $1), \
     pg_catalog.hashtext($2))";

/// The connection that holds the consumer's locks.
pub(super) struct Leadership {
    client: Client,
    ended: oneshot::Receiver<String>,
}

impl Leadership {
    /// Connects and takes the lock of every channel (in name order, so that two relays never
    /// each hold some). Waits as long as another relay holds one; `on_standby` is called
    /// once when it does. Reconnects with `backoff` when the connection fails meanwhile.
    pub(super) async fn acquire(
        url: &str,
        verification: &TlsVerification,
        backoff: Backoff,
        consumer: &str,
        channels: &[String],
        mut on_standby: impl FnMut(),
    ) -> Leadership {
        let mut channels = channels.to_vec();
        channels.sort();
        let mut retries = Retries::new(backoff);
        let mut told = false;
        loop {
            let attempt = async {
                let mut leadership = Leadership::connect(url, verification).await?;
                for channel in &channels {
                    let free: bool = leadership
                        .client
                        .query_one(TRY_LOCK_SQL, &[&consumer, channel])
                        .await
                        .map_err(Error::Query)?
                        .get(0);
                    if !free {
                        if !told {
                            on_standby();
                            told = true;
                        }
                        // Waits for the holder to end; the connection's loss ends the wait.
                        let parameters: [&(dyn tokio_postgres::types::ToSql + Sync); 2] =
                            [&consumer, channel];
                        tokio::select! {
                            locked = leadership.client.query_one(LOCK_SQL, &parameters) => {
                                locked.map_err(Error::Query)?;
                            }
                            ended = &mut leadership.ended => {
                                drop(ended);
                                return Err(Error::Closed);
                            }
                        }
                    }
                }
                Ok::<_, Error>(leadership)
            };
            match attempt.await {
                Ok(leadership) => return leadership,
                Err(_) => retries.wait().await,
            }
        }
    }

    async fn connect(url: &str, verification: &TlsVerification) -> Result<Leadership, Error> {
        let (client, connection) = open(url, verification).await?;
        let (sender, ended) = oneshot::channel();
        tokio::spawn(async move {
            let why = match connection.await {
                Ok(()) => "the connection was closed".to_owned(),
                Err(error) => describe(&error),
            };
            let _ = sender.send(why);
        });
        Ok(Leadership { client, ended })
    }

    /// Resolves, with the reason, when the connection that holds the locks is gone (or no
    /// longer answers): the locks are then released, or about to be.
    pub(super) async fn lost(&mut self) -> String {
        loop {
            tokio::select! {
                ended = &mut self.ended => {
                    return ended.unwrap_or_else(|_| "the connection ended".to_owned());
                }
                () = sleep(HEALTH_INTERVAL) => {
                    match timeout(HEALTH_TIMEOUT, self.client.simple_query("")).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(error)) => return describe(&error),
                        Err(_) => return format!("no answer within {HEALTH_TIMEOUT:?}"),
                    }
                }
            }
        }
    }

    /// How many events of `channel` come after `consumer`'s position (None when the query
    /// fails; the next check will tell).
    pub(super) async fn lag(&self, consumer: &str, channel: &str) -> Option<i64> {
        self.client
            .query_one(
                "SELECT pg_catalog.count(*) FROM column_notify.events e
                 WHERE e.channel OPERATOR(pg_catalog.=) $2
                   AND e.event_id OPERATOR(pg_catalog.>) COALESCE(
                       (SELECT c.position FROM column_notify.consumers c
                        WHERE c.consumer OPERATOR(pg_catalog.=) $1
                          AND c.channel OPERATOR(pg_catalog.=) $2), 0)",
                &[&consumer, &channel],
            )
            .await
            .ok()
            .map(|row| row.get(0))
    }
}
