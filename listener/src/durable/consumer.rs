//! The durable consumer itself: when to read the log (a notification, a reconnection, the
//! poll interval, a retry for an announced event), and what it yielded and must still be
//! acknowledged.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::time::Duration;

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use std::sync::{Arc, Mutex, PoisonError};

use futures_util::future::BoxFuture;
use futures_util::{FutureExt, Stream};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::Notify;
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
///             if consumer.buffered_events() == 0 {
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
pub struct DurableConsumer<T = Value> {
    /// Here unless a read is under way.
    state: Option<Box<State>>,
    /// A read under way, holding the state: a [`Stream`] poll or a `recv` that was
    /// dropped before it finished. It goes on from where it was at the next call.
    reading: Option<Reading>,
    /// What a read finished with while an acknowledgement waited for it.
    ready: Option<ReadResult>,
    /// The consumer's name, channel and batch size.
    names: Names,
    /// The state's figures as the read under way last left them (it updates them before
    /// each wait), shown while it holds the state.
    shown: Arc<Mutex<Progress>>,
    rows: PhantomData<fn() -> T>,
}

/// A read under way: the future that owns the state until the next event, and the signal
/// that makes it give the state back early (while it waits for the server, so that an
/// acknowledgement never waits for an event to come).
struct Reading {
    interrupt: Arc<Notify>,
    future: BoxFuture<'static, (Box<State>, Option<ReadResult>)>,
}

type ReadResult = Result<RawDurableEvent, Error>;

/// What the accessors show of the state.
#[derive(Debug, Clone, Copy, Default)]
struct Progress {
    buffered: usize,
    caught_up: bool,
    delivered: i64,
}

#[derive(Debug)]
struct Names {
    consumer: String,
    channel: String,
    batch_size: usize,
}

impl<T> std::fmt::Debug for DurableConsumer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableConsumer")
            .field("state", &self.state)
            .field("reading", &self.reading.is_some())
            .field("progress", &self.progress())
            .finish()
    }
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
    /// Where the consumer reads the figures while a read holds the state.
    shown: Arc<Mutex<Progress>>,
}

fn lock(progress: &Mutex<Progress>) -> std::sync::MutexGuard<'_, Progress> {
    // A Progress is whole after any panic: it is written at once.
    progress.lock().unwrap_or_else(PoisonError::into_inner)
}

impl DurableConsumer {
    /// A consumer on its two connections, which will read the log first.
    pub(super) fn start(
        listener: RawListener,
        reader: Reader,
        subscription: Subscription,
    ) -> DurableConsumer {
        let state = Box::new(State {
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
            shown: Arc::default(),
        });
        DurableConsumer {
            names: Names {
                consumer: state.subscription.consumer.clone(),
                channel: state.subscription.channel.clone(),
                batch_size: state.subscription.batch_size,
            },
            shown: Arc::clone(&state.shown),
            state: Some(state),
            reading: None,
            ready: None,
            rows: PhantomData,
        }
    }
}

impl<T: DeserializeOwned> DurableConsumer<T> {
    /// The next event, decoded. Waits as long as it takes; cancel-safe (a read that was
    /// under way goes on at the next call, and no event is lost).
    pub async fn recv(&mut self) -> Result<DurableEvent<T>, Error> {
        self.recv_raw().await.map(DurableEvent::decode)
    }

    /// The next event, or [`Error::Timeout`] when none comes within `timeout`.
    pub async fn recv_timeout(&mut self, timeout: Duration) -> Result<DurableEvent<T>, Error> {
        match tokio::time::timeout(timeout, self.recv_raw()).await {
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
            reading: self.reading,
            ready: self.ready,
            names: self.names,
            shown: self.shown,
            rows: PhantomData,
        }
    }

    /// The next event with its payload as text. Errors are those of a query the server
    /// refused (for example a channel without the extension's functions); lost connections
    /// are reconnected, not returned.
    pub async fn recv_raw(&mut self) -> Result<RawDurableEvent, Error> {
        std::future::poll_fn(|cx| self.poll_raw(cx)).await
    }

    /// Records on the server that every event up to `event_id` is processed, and returns the
    /// consumer's position (positions never move back). Reconnects when needed.
    pub async fn ack(&mut self, event_id: i64) -> Result<i64, Error> {
        let state = self.settled().await;
        state.ack(event_id).await
    }

    /// Acknowledges every event yielded so far; returns the position, or `None` when there
    /// was nothing to acknowledge.
    pub async fn ack_delivered(&mut self) -> Result<Option<i64>, Error> {
        match self.settled().await.unacknowledged.back() {
            Some(&last) => self.ack(last).await.map(Some),
            None => Ok(None),
        }
    }

    /// How many events are read and waiting to be yielded: 0 means the last event yielded
    /// ended a batch, a good moment to [`ack`](Self::ack). While a read is under way (a
    /// stream poll or a `recv` dropped before it finished), this and the other figures are
    /// as that read found them.
    pub fn buffered_events(&self) -> usize {
        self.progress().buffered
    }

    /// Whether everything the log held at the last read has been yielded: the read found
    /// fewer than a batch, and nothing read waits to be yielded. False before the first read.
    pub fn caught_up(&self) -> bool {
        self.progress().caught_up
    }

    /// The id of the last event yielded, if any.
    pub fn last_delivered(&self) -> Option<i64> {
        let delivered = self.progress().delivered;
        (delivered > 0).then_some(delivered)
    }

    /// The consumer's name.
    pub fn consumer(&self) -> &str {
        &self.names.consumer
    }

    /// The channel.
    pub fn channel(&self) -> &str {
        &self.names.channel
    }

    /// The most events read at once.
    pub fn batch_size(&self) -> usize {
        self.names.batch_size
    }

    fn progress(&self) -> Progress {
        self.state
            .as_ref()
            .map_or_else(|| *lock(&self.shown), |state| state.progress())
    }

    /// Goes on with the read under way, if any, or starts one; the state comes back when
    /// it finishes.
    fn poll_raw(&mut self, cx: &mut Context<'_>) -> Poll<Result<RawDurableEvent, Error>> {
        loop {
            if let Some(ready) = self.ready.take() {
                return Poll::Ready(ready);
            }
            let reading = self.reading.get_or_insert_with(|| {
                let mut state = self
                    .state
                    .take()
                    .expect("the state is here while no read is under way");
                let interrupt = Arc::new(Notify::new());
                let signal = Arc::clone(&interrupt);
                let future = async move {
                    let result = state.next_event(&signal).await;
                    (state, result)
                }
                .boxed();
                Reading { interrupt, future }
            });
            let (state, result) = ready!(reading.future.as_mut().poll(cx));
            self.give_back(state, result);
        }
    }

    /// The state, from the read under way if there is one: it is asked to stop waiting,
    /// and an event it had already taken is kept for the next call. Cancel-safe: dropped
    /// meanwhile, the read stays under way (asked to stop) and the next call goes on with it.
    async fn settled(&mut self) -> &mut State {
        if let Some(reading) = self.reading.as_mut() {
            reading.interrupt.notify_one();
            let (state, result) = (&mut reading.future).await;
            self.give_back(state, result);
        }
        self.state
            .as_mut()
            .expect("the state is here once no read is under way")
    }

    fn give_back(&mut self, state: Box<State>, result: Option<ReadResult>) {
        self.reading = None;
        self.state = Some(state);
        self.ready = self.ready.take().or(result);
    }

    /// Closes both connections (without acknowledging anything). Dropping does the same.
    pub fn close(self) {}
}

impl<T: DeserializeOwned> Stream for DurableConsumer<T> {
    type Item = Result<DurableEvent<T>, Error>;

    /// The next event, as [`recv`](DurableConsumer::recv) yields it; the stream ends when
    /// the consumer is closed ([`Error::Closed`]).
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match ready!(self.poll_raw(cx)) {
            Err(Error::Closed) => Poll::Ready(None),
            result => Poll::Ready(Some(result.map(DurableEvent::decode))),
        }
    }
}

impl State {
    fn progress(&self) -> Progress {
        Progress {
            buffered: self.stored.len(),
            caught_up: self.stored.is_empty() && !self.read_wanted,
            delivered: self.delivered,
        }
    }

    /// The next event; `None` when `interrupt` is signalled while it waits for the server.
    async fn next_event(&mut self, interrupt: &Notify) -> Option<ReadResult> {
        loop {
            if let Some(event) = self.connection_events.pop_front() {
                return Some(Ok(RawDurableEvent::Connection(event)));
            }
            if let Some(event) = self.stored.pop_front() {
                self.delivered = event.event_id;
                self.unacknowledged.push_back(event.event_id);
                return Some(Ok(RawDurableEvent::Event(event)));
            }
            if self.read_wanted {
                if let Err(error) = self.read().await {
                    return Some(Err(error));
                }
                continue;
            }
            let poll_at = self.last_read + self.subscription.poll_interval;
            let wake_at = self.retry.map_or(poll_at, |(at, _)| at.min(poll_at));
            // The consumer shows these while this read holds the state.
            *lock(&self.shown) = self.progress();
            tokio::select! {
                wake_up = self.listener.recv() => {
                    let mut taken = self.take(wake_up);
                    // Many notifications are one wake-up: take all that are already here.
                    while let (Ok(()), Some(wake_up)) = (&taken, self.listener.recv().now_or_never()) {
                        taken = self.take(wake_up);
                    }
                    if let Err(error) = taken {
                        return Some(Err(error));
                    }
                }
                () = interrupt.notified() => return None,
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
