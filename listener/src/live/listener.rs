//! The listeners: a stream of decoded changes, or of raw notifications.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::channels::{check_channel, listen_statement, unlisten_statement, Channels, Request};
use super::events::{Event, RawEvent, Undecoded};
use super::reconnect;
use super::session::Session;
use super::settings::Settings;
use crate::error::Error;

/// Listens to channels and yields every notification as text, with connection events.
///
/// Made by [`ListenerBuilder::connect_raw`](crate::ListenerBuilder::connect_raw) or [`Listener::into_raw`]. It is a
/// [`Stream`] of [`RawEvent`]; dropping it closes the connection.
///
/// ```no_run
/// use column_notify_listener::{Listener, RawEvent};
///
/// # async fn run() -> Result<(), column_notify_listener::Error> {
/// let mut listener = Listener::builder("postgres://postgres@127.0.0.1/postgres")
///     .channel("anything")
///     .connect_raw()
///     .await?;
/// while let Some(event) = listener.recv().await {
///     if let RawEvent::Notification(notification) = event {
///         println!("{}: {}", notification.channel, notification.payload);
///     }
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct RawListener {
    events: mpsc::Receiver<RawEvent>,
    task: JoinHandle<()>,
    channels: Channels,
    requests: mpsc::UnboundedSender<Request>,
    buffer: usize,
}

impl RawListener {
    pub(crate) async fn start(settings: Settings) -> Result<RawListener, Error> {
        let session = Session::open(&settings).await?;
        let (sender, events) = mpsc::channel(settings.buffer);
        let (requests, requested) = mpsc::unbounded_channel();
        let channels = settings.channels.clone();
        let buffer = settings.buffer;
        let task = tokio::spawn(reconnect::supervise(settings, session, sender, requested));
        Ok(RawListener {
            events,
            task,
            channels,
            requests,
            buffer,
        })
    }

    /// The next event; `None` only once the listener's task has ended.
    pub async fn recv(&mut self) -> Option<RawEvent> {
        self.events.recv().await
    }

    /// The next event if one is waiting already, without waiting for one: for a consumer that
    /// works in batches (for example writing output and flushing it when nothing is left).
    pub fn try_recv(&mut self) -> Option<RawEvent> {
        self.events.try_recv().ok()
    }

    /// The next event, or [`Error::Timeout`] when none comes within `timeout`
    /// ([`Error::Closed`] once the listener's task has ended).
    pub async fn recv_timeout(&mut self, timeout: Duration) -> Result<RawEvent, Error> {
        match tokio::time::timeout(timeout, self.events.recv()).await {
            Ok(Some(event)) => Ok(event),
            Ok(None) => Err(Error::Closed),
            Err(_) => Err(Error::Timeout(timeout)),
        }
    }

    /// The channels listened to.
    pub fn channels(&self) -> Vec<String> {
        self.channels.list()
    }

    /// Listens to `channel` too, on this connection and every later one. Returns once the
    /// server listens: notifications sent to `channel` after that are received. While the
    /// connection is down it returns once the next one listens (a loss is reported as
    /// usual); listening again to a channel changes nothing.
    pub async fn listen(&self, channel: &str) -> Result<(), Error> {
        check_channel(channel)?;
        if !self.channels.add(channel) {
            return Ok(());
        }
        let result = self.request(listen_statement(channel)).await;
        if result.is_err() {
            self.channels.remove(channel);
        }
        result
    }

    /// Stops listening to `channel`. Notifications of it already received may still be
    /// yielded; none sent after this returns are.
    pub async fn unlisten(&self, channel: &str) -> Result<(), Error> {
        if !self.channels.remove(channel) {
            return Ok(());
        }
        self.request(unlisten_statement(channel)).await
    }

    /// Runs `sql` on the task's connection; [`Error::Closed`] once the task is gone.
    async fn request(&self, sql: String) -> Result<(), Error> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request { sql, reply })
            .map_err(|_| Error::Closed)?;
        answer.await.map_err(|_| Error::Closed)?
    }

    /// The bound of the event buffer, in events.
    pub fn buffer(&self) -> usize {
        self.buffer
    }

    /// Closes the connection. Dropping the listener does the same.
    pub fn close(self) {}
}

impl Drop for RawListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Stream for RawListener {
    type Item = RawEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<RawEvent>> {
        self.events.poll_recv(cx)
    }
}

/// Listens to channels and yields [`Event`]s: changes decoded as [`Change<T>`](crate::Change),
/// payloads that are not changes, and connection events.
///
/// It is a [`Stream`]; [`recv`](Listener::recv) and [`recv_timeout`](Listener::recv_timeout)
/// are there for simple loops. `T`, the row type, defaults to [`serde_json::Value`]; change it
/// with [`typed`](Listener::typed).
///
/// ```no_run
/// use std::time::Duration;
/// use column_notify_listener::{ConnectionEvent, Event, Listener};
///
/// # async fn run() -> Result<(), column_notify_listener::Error> {
/// let mut listener = Listener::connect(
///     "postgres://postgres@127.0.0.1/postgres",
///     ["appointments_canceled_changed"],
/// )
/// .await?;
/// loop {
///     match listener.recv_timeout(Duration::from_secs(30)).await {
///         Ok(Event::Change { change, .. }) => println!("{} -> {:?}", change.id, change.new),
///         Ok(Event::Connection(ConnectionEvent::Reconnected { .. })) => {
///             println!("events may have been missed: reload the state");
///         }
///         Ok(other) => println!("{other:?}"),
///         Err(column_notify_listener::Error::Timeout(_)) => println!("quiet"),
///         Err(error) => return Err(error),
///     }
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct Listener<T = Value> {
    raw: RawListener,
    /// The rest of a batch whose first change was yielded.
    pending: VecDeque<Undecoded>,
    rows: PhantomData<fn() -> T>,
}

impl Listener {
    pub(crate) fn from_raw(raw: RawListener) -> Listener {
        Listener {
            raw,
            pending: VecDeque::new(),
            rows: PhantomData,
        }
    }
}

impl<T: DeserializeOwned> Listener<T> {
    /// The next event; `None` only once the listener's task has ended.
    pub async fn recv(&mut self) -> Option<Event<T>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event.decode());
            }
            self.pending
                .extend(Undecoded::split(self.raw.recv().await?));
        }
    }

    /// The next event if one is waiting already, without waiting for one.
    pub fn try_recv(&mut self) -> Option<Event<T>> {
        if self.pending.is_empty() {
            self.pending.extend(Undecoded::split(self.raw.try_recv()?));
        }
        self.pending.pop_front().map(Undecoded::decode)
    }

    /// The next event, or [`Error::Timeout`] when none comes within `timeout`
    /// ([`Error::Closed`] once the listener's task has ended).
    pub async fn recv_timeout(&mut self, timeout: Duration) -> Result<Event<T>, Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(event.decode());
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let raw = self
                .raw
                .recv_timeout(left)
                .await
                .map_err(|error| match error {
                    Error::Timeout(_) => Error::Timeout(timeout),
                    other => other,
                })?;
            self.pending.extend(Undecoded::split(raw));
        }
    }
}

impl<T> Listener<T> {
    /// The same listener, decoding rows as `U`; a payload whose rows do not decode is an
    /// [`Event::InvalidPayload`], never dropped. The README's `appointments` table:
    ///
    /// ```no_run
    /// use column_notify_listener::{Event, Listener, StreamExt};
    ///
    /// #[derive(serde::Deserialize)]
    /// struct Appointment {
    ///     id: i64,
    ///     canceled: bool,
    ///     inserted_at: String,
    ///     updated_at: String,
    /// }
    ///
    /// # async fn run() -> Result<(), column_notify_listener::Error> {
    /// let mut listener = Listener::connect("postgres:///app", ["appointments_canceled_changed"])
    ///     .await?
    ///     .typed::<Appointment>();
    /// while let Some(event) = listener.next().await {
    ///     match event {
    ///         Event::Change { change, .. } => {
    ///             let was_canceled = change.old.as_ref().is_some_and(|old| old.canceled);
    ///             let canceled = change.new.as_ref().is_some_and(|new| new.canceled);
    ///             if canceled && !was_canceled {
    ///                 println!("appointment {} canceled", change.id);
    ///             }
    ///         }
    ///         Event::InvalidPayload { notification, error } => {
    ///             eprintln!("undecodable payload on {}: {error}", notification.channel)
    ///         }
    ///         Event::Connection(event) => eprintln!("{event:?}"),
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn typed<U>(self) -> Listener<U> {
        Listener {
            raw: self.raw,
            pending: self.pending,
            rows: PhantomData,
        }
    }

    /// The raw listener underneath (payloads as text). The changes of a batch not yet
    /// yielded are dropped with this listener.
    pub fn into_raw(self) -> RawListener {
        self.raw
    }

    /// The channels listened to.
    pub fn channels(&self) -> Vec<String> {
        self.raw.channels()
    }

    /// Listens to `channel` too: see [`RawListener::listen`].
    pub async fn listen(&self, channel: &str) -> Result<(), Error> {
        self.raw.listen(channel).await
    }

    /// Stops listening to `channel`: see [`RawListener::unlisten`].
    pub async fn unlisten(&self, channel: &str) -> Result<(), Error> {
        self.raw.unlisten(channel).await
    }

    /// The bound of the event buffer, in events.
    pub fn buffer(&self) -> usize {
        self.raw.buffer()
    }

    /// Closes the connection. Dropping the listener does the same.
    pub fn close(self) {}
}

impl<T: DeserializeOwned> Stream for Listener<T> {
    type Item = Event<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event<T>>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Poll::Ready(Some(event.decode()));
            }
            match Pin::new(&mut self.raw).poll_next(cx) {
                Poll::Ready(Some(raw)) => self.pending.extend(Undecoded::split(raw)),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
