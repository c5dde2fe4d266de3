//! How a durable consumer is made: [`DurableConsumerBuilder`] checks the settings, runs
//! `LISTEN`, then opens the connection that reads the log; [`DurableConsumer::connect`] and
//! [`DurableConsumer::builder`] start from it.

use std::time::Duration;

use super::consumer::{DurableConsumer, Subscription};
use super::reader::Reader;
use crate::error::Error;
use crate::live::ListenerBuilder;

/// The default most events read from the log at once.
pub const DEFAULT_BATCH_SIZE: usize = 1000;

/// The default time after which the log is read even though no notification came.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);

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

/// Builds a [`DurableConsumer`]: the URL, the consumer's name, the channel, and optional
/// settings. The connection settings are those of a [`ListenerBuilder`], set through
/// [`connection`](Self::connection). The consumer has two connections, and they do not use
/// the same ones:
///
/// * the one that listens (the wake-up) uses them all: backoff, health check, connect
///   timeout and TLS;
/// * the one that reads and acknowledges uses the URL, the TLS verification and the
///   backoff only. It has no health check (a lost connection shows as an error of its next
///   query, which then reconnects) and the builder's connect timeout does not apply to it:
///   one attempt may take the URL's `connect_timeout`, or 10 s when the URL sets none.
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
    /// The health check and the connect timeout apply to the listening connection only (see
    /// [`DurableConsumerBuilder`]).
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
        let mut reader = Reader::new(
            connection.url.clone(),
            connection.tls.clone(),
            connection.backoff,
        );
        // Listening first: a change committed from here on wakes the consumer up.
        let listener = connection.connect_raw().await?;
        reader.open().await?;
        let subscription = Subscription {
            consumer: self.consumer,
            channel: self.channel,
            batch_size: self.batch_size,
            poll_interval: self.poll_interval,
        };
        Ok(DurableConsumer::start(listener, reader, subscription))
    }
}
