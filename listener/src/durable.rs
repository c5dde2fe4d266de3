//! A durable consumer: the events of a durable watch, read from the server's event log after
//! a named consumer's acknowledged position, woken up by notifications.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::time::{Duration, SystemTime};

use futures_util::FutureExt;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::time::{sleep, sleep_until, Instant};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row};

use crate::backoff::Backoff;
use crate::change::{split_batch, Change};
use crate::client::connect_client;
use crate::error::Error;
use crate::live::{ConnectionEvent, ListenerBuilder, RawEvent, RawListener};
use crate::tls::TlsVerification;

/// The default most events read from the log at once.
pub const DEFAULT_BATCH_SIZE: usize = 1000;

/// The default time after which the log is read even though no notification came.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);

/// The first wait before reading again when a notification announced an event that the log
/// did not return yet (its writer was still finishing its commit).
const FIRST_RETRY: Duration = Duration::from_millis(10);

/// The next events after what this process already delivered, at most `$5` of them.
/// `read_events` starts after the acknowledged position, so its limit `$3` also covers the
/// events delivered but not yet acknowledged, which the outer filter skips.
const READ_SQL: &str = "SELECT e.event_id, e.payload::text, e.created_at \
     FROM read_events($1, $2, $3) AS e WHERE e.event_id > $4 ORDER BY e.event_id LIMIT $5";

const ACK_SQL: &str = "SELECT ack_events($1, $2, $3)";

/// One event of a durable watch, as the event log holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Its id: ids grow in commit order for the changes to one row.
    pub event_id: i64,
    /// The full payload (never truncated, even when the notification was).
    pub payload: String,
    /// When the writer's transaction logged it.
    pub created_at: SystemTime,
}

/// An event of [`DurableConsumer::recv_raw`]: an event of the log with its payload as text,
/// or a connection event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawDurableEvent {
    /// The next event of the log.
    Event(StoredEvent),
    /// A connection event. `Reconnected` says `may_have_missed: false`: the consumer reads
    /// the log after every reconnection, so nothing committed meanwhile is missed.
    Connection(ConnectionEvent),
}

/// An event of [`DurableConsumer::recv`].
#[derive(Debug, Clone, PartialEq)]
pub enum DurableEvent<T = Value> {
    /// The next change of the log; its `event_id` is set.
    Change {
        /// The change.
        change: Box<Change<T>>,
        /// When the writer's transaction logged it.
        created_at: SystemTime,
    },
    /// An event whose payload does not decode as a [`Change<T>`]. Acknowledge it like any
    /// other once dealt with.
    InvalidPayload {
        /// The event as the log holds it.
        event: StoredEvent,
        /// Why it could not be decoded.
        error: String,
    },
    /// A connection event. `Reconnected` says `may_have_missed: false`: the consumer reads
    /// the log after every reconnection, so nothing committed meanwhile is missed.
    Connection(ConnectionEvent),
}

impl<T: DeserializeOwned> DurableEvent<T> {
    /// Decodes a raw durable event.
    ///
    /// ```
    /// use std::time::SystemTime;
    /// use column_notify_listener::{DurableEvent, RawDurableEvent, StoredEvent};
    ///
    /// let raw = RawDurableEvent::Event(StoredEvent {
    ///     event_id: 41,
    ///     payload: r#"{"id": 7, "old": null, "new": {"id": 7}}"#.into(),
    ///     created_at: SystemTime::UNIX_EPOCH,
    /// });
    /// let DurableEvent::Change { change, .. } = DurableEvent::<serde_json::Value>::decode(raw) else {
    ///     panic!("a change");
    /// };
    /// assert_eq!((change.id.as_i64(), change.event_id), (Some(7), Some(41)));
    /// ```
    pub fn decode(raw: RawDurableEvent) -> Self {
        match raw {
            RawDurableEvent::Connection(event) => DurableEvent::Connection(event),
            RawDurableEvent::Event(event) => match Change::<T>::from_payload(&event.payload) {
                Ok(mut change) => {
                    change.event_id = Some(event.event_id);
                    DurableEvent::Change {
                        change: Box::new(change),
                        created_at: event.created_at,
                    }
                }
                Err(error) => DurableEvent::InvalidPayload {
                    event,
                    error: error.to_string(),
                },
            },
        }
    }
}

/// Builds a [`DurableConsumer`]: the URL, the consumer's name, the channel, and optional
/// settings. The connection settings are those of a [`ListenerBuilder`] (backoff, health
/// check, connect timeout, TLS), set through [`connection`](Self::connection); they apply
/// to both of the consumer's connections (the one that listens, the one that reads).
///
/// ```no_run
/// use std::time::Duration;
/// use column_notify_listener::{Backoff, DurableConsumer};
///
/// # async fn run() -> Result<(), column_notify_listener::Error> {
/// let consumer = DurableConsumer::builder("postgres://postgres@127.0.0.1/shop", "billing", "orders")
///     .batch_size(200)
///     .poll_interval(Duration::from_secs(1))
///     .connection(|connection| {
///         connection.backoff(Backoff::new(Duration::from_millis(50), Duration::from_secs(2)))
///     })
///     .connect()
///     .await?;
/// # let _ = consumer;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until connect() is awaited"]
pub struct DurableConsumerBuilder {
    connection: ListenerBuilder,
    consumer: String,
    channel: String,
    batch_size: usize,
    poll_interval: Duration,
}

impl DurableConsumerBuilder {
    /// The most events read from the log at once, and so held in memory (default
    /// [`DEFAULT_BATCH_SIZE`]).
    pub fn batch_size(mut self, events: usize) -> Self {
        self.batch_size = events;
        self
    }

    /// How long the consumer waits for a notification before it reads the log anyway
    /// (default [`DEFAULT_POLL_INTERVAL`]): a safety net, notifications normally wake it.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Changes the connection settings, given as a [`ListenerBuilder`] for the consumer's
    /// URL. Channels added there are ignored: the consumer listens to its own channel only.
    pub fn connection(
        mut self,
        configure: impl FnOnce(ListenerBuilder) -> ListenerBuilder,
    ) -> Self {
        self.connection = configure(self.connection);
        self
    }

    /// Runs `LISTEN` on the channel, then opens the connection that reads the log.
    ///
    /// Fails when the settings are invalid or when these first connections fail; later
    /// losses are reconnected by the consumer itself.
    pub async fn connect(self) -> Result<DurableConsumer, Error> {
        if self.batch_size == 0 || self.batch_size > i32::MAX as usize {
            return Err(Error::InvalidBatchSize(self.batch_size));
        }
        let mut connection = self.connection;
        connection.channels = vec![self.channel.clone()];
        let mut reader = Reader {
            url: connection.url.clone(),
            tls: connection.tls.clone(),
            backoff: connection.backoff,
            client: None,
        };
        // Listening first: a change committed from here on wakes the consumer up.
        let listener = connection.connect_raw().await?;
        reader.open().await?;
        Ok(DurableConsumer {
            state: State {
                listener,
                reader,
                consumer: self.consumer,
                channel: self.channel,
                batch_size: self.batch_size,
                poll_interval: self.poll_interval,
                pending: VecDeque::new(),
                notices: VecDeque::new(),
                unacknowledged: VecDeque::new(),
                delivered: 0,
                announced: 0,
                read_wanted: true,
                last_read: Instant::now(),
                retry: None,
            },
            rows: PhantomData,
        })
    }
}

/// The query connection that reads and acknowledges, reopened after a loss.
#[derive(Debug)]
struct Reader {
    url: String,
    tls: TlsVerification,
    backoff: Backoff,
    client: Option<Client>,
}

impl Reader {
    /// Connects; `read_events` needs READ COMMITTED whatever the server's default.
    async fn open(&mut self) -> Result<&Client, Error> {
        let client = connect_client(&self.url, &self.tls).await?;
        client
            .batch_execute("SET default_transaction_isolation TO 'read committed'")
            .await
            .map_err(Error::Query)?;
        Ok(self.client.insert(client))
    }

    /// Runs a query, reconnecting (with backoff, as long as it takes) when the connection
    /// is lost. Both statements are safe to repeat. Other errors are returned.
    async fn query(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, Error> {
        let mut attempts = 0;
        loop {
            let client = match self.client.take() {
                Some(client) if !client.is_closed() => client,
                _ => match self.open().await {
                    Ok(_) => self.client.take().expect("just opened"),
                    Err(Error::Connect(_) | Error::Query(_)) => {
                        attempts += 1;
                        sleep(self.backoff.delay(attempts)).await;
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
                Err(error) if connection_lost(&client, &error) => {
                    attempts += 1;
                    sleep(self.backoff.delay(attempts)).await;
                }
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

/// The events of a durable watch for a named consumer: everything after the consumer's
/// acknowledged position first, then each change as it commits.
///
/// A durable watch (`watch_column(..., durable => true)`) logs every change in the writer's
/// transaction. The consumer runs `LISTEN` on the channel *first*, then reads the log with
/// `read_events` in batches until it is empty, then reads the next batch whenever a
/// notification arrives, after every reconnection, and every
/// [`poll_interval`](DurableConsumerBuilder::poll_interval) in any case. The notification is
/// only a wake-up: rows always come from the log, so a truncated payload costs nothing.
///
/// # Delivery guarantee: at least once, in order
///
/// * Events come in event-id order, which is commit order for the changes to one row. The
///   log never hands out an event while a transaction that may still commit a smaller id
///   is running, so none is skipped.
/// * Within one `DurableConsumer`, an event is yielded once, acknowledged or not.
/// * [`ack`](DurableConsumer::ack) records on the server that every event up to an id is
///   processed. A new consumer with the same name starts after that position: events that
///   were yielded but not acknowledged when a process died **come again**. Handle events
///   idempotently (or in the same transaction as the acknowledgement).
///
/// # Memory
///
/// At most [`batch_size`](DurableConsumerBuilder::batch_size) events are held at once, plus
/// the id (8 bytes) of each event yielded but not yet acknowledged. `read_events` starts
/// after the acknowledged position, so each read also goes past the unacknowledged events on
/// the server: acknowledge regularly (after each batch, see
/// [`buffered`](DurableConsumer::buffered)).
///
/// ```no_run
/// use column_notify_listener::{DurableConsumer, DurableEvent};
///
/// # async fn run() -> Result<(), column_notify_listener::Error> {
/// let mut consumer =
///     DurableConsumer::connect("postgres://postgres@127.0.0.1/shop", "billing", "orders").await?;
/// loop {
///     match consumer.recv().await? {
///         DurableEvent::Change { change, .. } => {
///             let event_id = change.event_id.expect("durable events have an id");
///             println!("order {} is now {:?}", change.id, change.new);
///             if consumer.buffered() == 0 {
///                 consumer.ack(event_id).await?; // the batch is processed
///             }
///         }
///         DurableEvent::InvalidPayload { event, error } => {
///             eprintln!("event {} is not a change: {error}", event.event_id);
///         }
///         DurableEvent::Connection(event) => eprintln!("{event:?}"),
///     }
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct DurableConsumer<T = Value> {
    state: State,
    rows: PhantomData<fn() -> T>,
}

/// Everything a consumer holds, whatever its row type.
#[derive(Debug)]
struct State {
    listener: RawListener,
    reader: Reader,
    consumer: String,
    channel: String,
    batch_size: usize,
    poll_interval: Duration,
    /// Events read, not yet yielded.
    pending: VecDeque<StoredEvent>,
    /// Connection events not yet yielded.
    notices: VecDeque<ConnectionEvent>,
    /// Ids yielded and not yet acknowledged, in order.
    unacknowledged: VecDeque<i64>,
    /// The last id yielded (0 before the first).
    delivered: i64,
    /// The largest id a notification announced.
    announced: i64,
    /// Whether the log must be read before waiting.
    read_wanted: bool,
    last_read: Instant,
    /// When to read again for an announced event the log did not return yet, and the wait
    /// that led there.
    retry: Option<(Instant, Duration)>,
}

impl DurableConsumer {
    /// Connects as `consumer` to the durable watch on `channel`, with default settings.
    pub async fn connect(
        url: &str,
        consumer: impl Into<String>,
        channel: impl Into<String>,
    ) -> Result<DurableConsumer, Error> {
        DurableConsumer::builder(url, consumer, channel)
            .connect()
            .await
    }

    /// A builder, for the settings beyond the URL, consumer and channel.
    pub fn builder(
        url: impl Into<String>,
        consumer: impl Into<String>,
        channel: impl Into<String>,
    ) -> DurableConsumerBuilder {
        DurableConsumerBuilder {
            connection: ListenerBuilder::new(url),
            consumer: consumer.into(),
            channel: channel.into(),
            batch_size: DEFAULT_BATCH_SIZE,
            poll_interval: DEFAULT_POLL_INTERVAL,
        }
    }
}

impl<T: DeserializeOwned> DurableConsumer<T> {
    /// The next event, decoded. Waits as long as it takes; cancel-safe (an event is lost to
    /// no one when the future is dropped).
    pub async fn recv(&mut self) -> Result<DurableEvent<T>, Error> {
        self.state.recv_raw().await.map(DurableEvent::decode)
    }

    /// The next event, or [`Error::Timeout`] when none comes within `timeout`.
    pub async fn recv_timeout(&mut self, timeout: Duration) -> Result<DurableEvent<T>, Error> {
        match tokio::time::timeout(timeout, self.state.recv_raw()).await {
            Ok(event) => event.map(DurableEvent::decode),
            Err(_) => Err(Error::Timeout(timeout)),
        }
    }
}

impl<T> DurableConsumer<T> {
    /// The same consumer, decoding rows as `U`.
    pub fn typed<U>(self) -> DurableConsumer<U> {
        DurableConsumer {
            state: self.state,
            rows: PhantomData,
        }
    }

    /// The next event with its payload as text. Errors are those of a query the server
    /// refused (for example a channel without the extension's functions); lost connections
    /// are reconnected, not returned.
    pub async fn recv_raw(&mut self) -> Result<RawDurableEvent, Error> {
        self.state.recv_raw().await
    }

    /// Records on the server that every event up to `event_id` is processed, and returns the
    /// consumer's position (positions never move back). Reconnects when needed.
    pub async fn ack(&mut self, event_id: i64) -> Result<i64, Error> {
        self.state.ack(event_id).await
    }

    /// Acknowledges every event yielded so far; returns the position, or `None` when there
    /// was nothing to acknowledge.
    pub async fn ack_delivered(&mut self) -> Result<Option<i64>, Error> {
        match self.state.unacknowledged.back() {
            Some(&last) => self.state.ack(last).await.map(Some),
            None => Ok(None),
        }
    }

    /// How many events are read and waiting to be yielded: 0 means the last event yielded
    /// ended a batch, a good moment to [`ack`](Self::ack).
    pub fn buffered(&self) -> usize {
        self.state.pending.len()
    }

    /// The id of the last event yielded, if any.
    pub fn last_delivered(&self) -> Option<i64> {
        (self.state.delivered > 0).then_some(self.state.delivered)
    }

    /// The consumer's name.
    pub fn consumer(&self) -> &str {
        &self.state.consumer
    }

    /// The channel.
    pub fn channel(&self) -> &str {
        &self.state.channel
    }

    /// The most events read at once.
    pub fn batch_size(&self) -> usize {
        self.state.batch_size
    }

    /// Closes both connections (without acknowledging anything). Dropping does the same.
    pub fn close(self) {}
}

impl State {
    async fn recv_raw(&mut self) -> Result<RawDurableEvent, Error> {
        loop {
            if let Some(event) = self.notices.pop_front() {
                return Ok(RawDurableEvent::Connection(event));
            }
            if let Some(event) = self.pending.pop_front() {
                self.delivered = event.event_id;
                self.unacknowledged.push_back(event.event_id);
                return Ok(RawDurableEvent::Event(event));
            }
            if self.read_wanted {
                self.read().await?;
                continue;
            }
            let poll_at = self.last_read + self.poll_interval;
            let wake_at = self.retry.map_or(poll_at, |(at, _)| at.min(poll_at));
            tokio::select! {
                event = self.listener.recv() => {
                    self.take(event)?;
                    // Many notifications are one wake-up: take all that are already here.
                    while let Some(event) = self.listener.recv().now_or_never() {
                        self.take(event)?;
                    }
                }
                () = sleep_until(wake_at) => self.read_wanted = true,
            }
        }
    }

    fn take(&mut self, event: Option<RawEvent>) -> Result<(), Error> {
        match event.ok_or(Error::Closed)? {
            RawEvent::Notification(notification) => {
                // The highest event id announced (a batch announces one per change).
                let announced = serde_json::from_str::<Value>(&notification.payload)
                    .map(split_batch)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|change| change.get("event_id")?.as_i64())
                    .max();
                self.announced = self.announced.max(announced.unwrap_or(0));
                self.read_wanted = true;
            }
            RawEvent::Connection(event) => {
                let event = match event {
                    ConnectionEvent::Reconnected {
                        attempts, downtime, ..
                    } => {
                        self.read_wanted = true;
                        ConnectionEvent::Reconnected {
                            may_have_missed: false,
                            attempts,
                            downtime,
                        }
                    }
                    other => other,
                };
                self.notices.push_back(event);
            }
        }
        Ok(())
    }

    /// Reads the next batch into `pending`.
    async fn read(&mut self) -> Result<(), Error> {
        let batch = self.batch_size as i64;
        let limit = i32::try_from(self.batch_size + self.unacknowledged.len()).unwrap_or(i32::MAX);
        let rows = self
            .reader
            .query(
                READ_SQL,
                &[
                    &self.consumer,
                    &self.channel,
                    &limit,
                    &self.delivered,
                    &batch,
                ],
            )
            .await?;
        self.last_read = Instant::now();
        let full = rows.len() == self.batch_size;
        let mut newest = self.delivered;
        for row in rows {
            let event = StoredEvent {
                event_id: row.try_get(0).map_err(Error::Query)?,
                payload: row.try_get(1).map_err(Error::Query)?,
                created_at: row.try_get(2).map_err(Error::Query)?,
            };
            newest = event.event_id;
            self.pending.push_back(event);
        }
        self.read_wanted = full;
        // A notification can arrive a moment before its writer's fence is gone: read again
        // soon, waiting longer each time, up to the poll interval.
        self.retry = if !full && self.announced > newest {
            let wait = self
                .retry
                .map_or(FIRST_RETRY, |(_, wait)| wait * 2)
                .min(self.poll_interval);
            Some((self.last_read + wait, wait))
        } else {
            None
        };
        Ok(())
    }

    async fn ack(&mut self, event_id: i64) -> Result<i64, Error> {
        let rows = self
            .reader
            .query(ACK_SQL, &[&self.consumer, &self.channel, &event_id])
            .await?;
        let position: i64 = rows
            .first()
            .map(|row| row.try_get(0))
            .transpose()
            .map_err(Error::Query)?
            .unwrap_or(event_id);
        while self
            .unacknowledged
            .front()
            .is_some_and(|&id| id <= position)
        {
            self.unacknowledged.pop_front();
        }
        Ok(position)
    }
}
