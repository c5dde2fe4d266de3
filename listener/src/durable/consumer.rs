//! The durable consumer itself: when to read the log (a notification, a reconnection, the
//! poll interval, a retry for an announced event), and what it yielded and must still be
//! acknowledged.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::time::Duration;

use futures_util::FutureExt;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::time::{sleep_until, Instant};

use super::events::{DurableEvent, RawDurableEvent, StoredEvent};
use super::reader::Reader;
use crate::change::split_batch;
use crate::error::Error;
use crate::live::{ConnectionEvent, RawEvent, RawListener};

/// The first wait before reading again when a notification announced an event that the log
/// did not return yet (its writer was still finishing its commit).
const FIRST_RETRY: Duration = Duration::from_millis(10);

/// The events of a durable watch for a named consumer: everything after the consumer's
/// acknowledged position first, then each change as it commits.
///
/// A durable watch (`watch_column(..., durable => true)`) logs every change in the writer's
/// transaction. The consumer runs `LISTEN` on the channel *first*, then reads the log with
/// `read_events` in batches until it is empty, then reads the next batch whenever a
/// notification arrives, after every reconnection, and every
/// [`poll_interval`](crate::DurableConsumerBuilder::poll_interval) in any case. The notification is
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
/// At most [`batch_size`](crate::DurableConsumerBuilder::batch_size) events are held at once, plus
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

/// Which log a consumer follows and how it reads it, as the builder set it.
#[derive(Debug)]
pub(super) struct Subscription {
    /// The consumer's name.
    pub(super) consumer: String,
    pub(super) channel: String,
    /// The most events read at once.
    pub(super) batch_size: usize,
    /// The longest wait between two reads.
    pub(super) poll_interval: Duration,
}

/// Everything a consumer holds, whatever its row type.
#[derive(Debug)]
struct State {
    listener: RawListener,
    reader: Reader,
    subscription: Subscription,
    /// Stored events read from the log, not yet yielded.
    stored: VecDeque<StoredEvent>,
    /// Connection events not yet yielded.
    connection_events: VecDeque<ConnectionEvent>,
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
    /// A consumer on its two connections, which will read the log first.
    pub(super) fn start(
        listener: RawListener,
        reader: Reader,
        subscription: Subscription,
    ) -> DurableConsumer {
        DurableConsumer {
            state: State {
                listener,
                reader,
                subscription,
                stored: VecDeque::new(),
                connection_events: VecDeque::new(),
                unacknowledged: VecDeque::new(),
                delivered: 0,
                announced: 0,
                read_wanted: true,
                last_read: Instant::now(),
                retry: None,
            },
            rows: PhantomData,
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
        self.state.stored.len()
    }

    /// Whether everything the log held at the last read has been yielded: the read found
    /// fewer than a batch, and nothing read waits to be yielded. False before the first read.
    pub fn caught_up(&self) -> bool {
        self.state.stored.is_empty() && !self.state.read_wanted
    }

    /// The id of the last event yielded, if any.
    pub fn last_delivered(&self) -> Option<i64> {
        (self.state.delivered > 0).then_some(self.state.delivered)
    }

    /// The consumer's name.
    pub fn consumer(&self) -> &str {
        &self.state.subscription.consumer
    }

    /// The channel.
    pub fn channel(&self) -> &str {
        &self.state.subscription.channel
    }

    /// The most events read at once.
    pub fn batch_size(&self) -> usize {
        self.state.subscription.batch_size
    }

    /// Closes both connections (without acknowledging anything). Dropping does the same.
    pub fn close(self) {}
}

impl State {
    async fn recv_raw(&mut self) -> Result<RawDurableEvent, Error> {
        loop {
            if let Some(event) = self.connection_events.pop_front() {
                return Ok(RawDurableEvent::Connection(event));
            }
            if let Some(event) = self.stored.pop_front() {
                self.delivered = event.event_id;
                self.unacknowledged.push_back(event.event_id);
                return Ok(RawDurableEvent::Event(event));
            }
            if self.read_wanted {
                self.read().await?;
                continue;
            }
            let poll_at = self.last_read + self.subscription.poll_interval;
            let wake_at = self.retry.map_or(poll_at, |(at, _)| at.min(poll_at));
            tokio::select! {
                wake_up = self.listener.recv() => {
                    self.take(wake_up)?;
                    // Many notifications are one wake-up: take all that are already here.
                    while let Some(wake_up) = self.listener.recv().now_or_never() {
                        self.take(wake_up)?;
                    }
                }
                () = sleep_until(wake_at) => self.read_wanted = true,
            }
        }
    }

    /// Takes what the listening connection yielded: a notification announces stored events,
    /// a connection event is passed on.
    fn take(&mut self, wake_up: Option<RawEvent>) -> Result<(), Error> {
        match wake_up.ok_or(Error::Closed)? {
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
                self.connection_events.push_back(event);
            }
        }
        Ok(())
    }

    /// Reads the next batch into `stored`.
    #[tracing::instrument(name = "replay", skip_all, fields(
        consumer = %self.subscription.consumer,
        channel = %self.subscription.channel,
        after = self.delivered,
    ))]
    async fn read(&mut self) -> Result<(), Error> {
        let batch = self.subscription.batch_size as i64;
        let limit = i32::try_from(self.subscription.batch_size + self.unacknowledged.len())
            .unwrap_or(i32::MAX);
        let stored = self
            .reader
            .read(
                &self.subscription.consumer,
                &self.subscription.channel,
                limit,
                self.delivered,
                batch,
            )
            .await?;
        self.last_read = Instant::now();
        let full = stored.len() == self.subscription.batch_size;
        tracing::debug!(events = stored.len(), more = full, "read from the log");
        let newest = stored.last().map_or(self.delivered, |event| event.event_id);
        self.stored.extend(stored);
        self.read_wanted = full;
        // A notification can arrive a moment before its writer's fence is gone: read again
        // soon, waiting longer each time, up to the poll interval.
        self.retry = if !full && self.announced > newest {
            let wait = self
                .retry
                .map_or(FIRST_RETRY, |(_, wait)| wait * 2)
                .min(self.subscription.poll_interval);
            Some((self.last_read + wait, wait))
        } else {
            None
        };
        Ok(())
    }

    async fn ack(&mut self, event_id: i64) -> Result<i64, Error> {
        let position = self
            .reader
            .ack(
                &self.subscription.consumer,
                &self.subscription.channel,
                event_id,
            )
            .await?;
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
