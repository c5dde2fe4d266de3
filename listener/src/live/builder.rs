//! How a listener is made: [`ListenerBuilder`] checks the URL, the channels and the settings
//! into [`Settings`], and [`Listener::connect`] and [`Listener::builder`] start from it.

use std::time::Duration;

use super::channels::Channels;
use super::listener::{Listener, RawListener};
use super::settings::{HealthCheck, Settings};
use crate::backoff::Backoff;
use crate::conninfo::Target;
use crate::error::Error;
use crate::tls::TlsVerification;

/// The default bound of the event buffer, in events.
pub const DEFAULT_BUFFER: usize = 1024;

impl Listener {
    /// Connects to `url` and listens to `channels`, with the default settings.
    pub async fn connect<I, S>(url: &str, channels: I) -> Result<Listener, Error>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Listener::builder(url).channels(channels).connect().await
    }

    /// A builder, for the settings beyond the URL and channels.
    pub fn builder(url: impl Into<String>) -> ListenerBuilder {
        ListenerBuilder::new(url)
    }
}

/// Builds a [`Listener`]: the URL, the channels, and optional settings.
///
/// ```no_run
/// use std::time::Duration;
/// use column_notify_listener::{Backoff, HealthCheck, Listener};
///
/// # async fn run() -> Result<(), column_notify_listener::Error> {
/// let listener = Listener::builder("postgres://postgres@127.0.0.1:5432/postgres")
///     .channel("appointments_canceled_changed")
///     .channel("appointments_starts_at_changed")
///     .buffer(4096)
///     .backoff(Backoff::new(Duration::from_millis(50), Duration::from_secs(5)))
///     .health_check(HealthCheck::new(Duration::from_secs(5), Duration::from_secs(2)))
///     .connect()
///     .await?;
/// # let _ = listener;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until connect() is awaited"]
pub struct ListenerBuilder {
    pub(crate) url: String,
    pub(crate) channels: Vec<String>,
    buffer: usize,
    pub(crate) backoff: Backoff,
    health: HealthCheck,
    connect_timeout: Duration,
    pub(crate) tls: TlsVerification,
}

impl ListenerBuilder {
    pub(crate) fn new(url: impl Into<String>) -> Self {
        ListenerBuilder {
            url: url.into(),
            channels: Vec::new(),
            buffer: DEFAULT_BUFFER,
            backoff: Backoff::default(),
            health: HealthCheck::default(),
            connect_timeout: Duration::from_secs(10),
            tls: TlsVerification::default(),
        }
    }

    /// Adds a channel to listen to. Names are used exactly as given (case and all), as
    /// `pg_notify` uses them.
    pub fn channel(mut self, channel: impl Into<String>) -> Self {
        self.channels.push(channel.into());
        self
    }

    /// Adds several channels.
    pub fn channels<I, S>(mut self, channels: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.channels.extend(channels.into_iter().map(Into::into));
        self
    }

    /// The most events held between the connection and the consumer (default
    /// [`DEFAULT_BUFFER`]). When it is full the listener stops reading from the server, which
    /// keeps the notifications in its queue: see the crate documentation on backpressure.
    pub fn buffer(mut self, events: usize) -> Self {
        self.buffer = events;
        self
    }

    /// The waits between reconnection attempts.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// How a silent dead connection is detected.
    pub fn health_check(mut self, health: HealthCheck) -> Self {
        self.health = health;
        self
    }

    /// The time one connection attempt (connect and `LISTEN`) may take (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How the server certificate is checked when the connection uses TLS, whatever the
    /// connection string's `sslmode` would check (see [`TlsVerification`]).
    pub fn tls(mut self, verification: TlsVerification) -> Self {
        self.tls = verification;
        self
    }

    /// Connects, runs `LISTEN` on every channel, and returns the listener of changes.
    ///
    /// Fails when the URL or a channel is invalid, or when this first connection fails;
    /// later losses are reconnected by the listener itself.
    pub async fn connect(self) -> Result<Listener, Error> {
        Ok(Listener::from_raw(self.connect_raw().await?))
    }

    /// Like [`connect`](Self::connect), but the listener yields raw notifications (any
    /// payload, as text) instead of decoded changes.
    pub async fn connect_raw(self) -> Result<RawListener, Error> {
        RawListener::start(self.settings()?).await
    }

    fn settings(self) -> Result<Settings, Error> {
        if self.buffer == 0 {
            return Err(Error::ZeroBuffer);
        }
        let channels = Channels::new(self.channels)?;
        if channels.list().is_empty() {
            return Err(Error::NoChannel);
        }
        let mut target = Target::new(&self.url, &self.tls)?;
        if target.pg.get_application_name().is_none() {
            target.pg.application_name("column_notify_listener");
        }
        Ok(Settings {
            tls: target.tls.connector()?,
            target,
            channels,
            buffer: self.buffer,
            backoff: self.backoff,
            health: self.health,
            connect_timeout: self.connect_timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_need_a_channel_and_a_buffer() {
        let url = "postgres://u@localhost/db";
        assert!(matches!(
            ListenerBuilder::new(url).settings(),
            Err(Error::NoChannel)
        ));
        assert!(matches!(
            ListenerBuilder::new(url).channel("c").buffer(0).settings(),
            Err(Error::ZeroBuffer)
        ));
        let settings = ListenerBuilder::new(url)
            .channels(["a", "B", "a"])
            .settings()
            .unwrap();
        assert_eq!(settings.channels.list(), ["a", "B"]);
    }

    #[test]
    fn a_bad_url_is_refused() {
        let result = ListenerBuilder::new("postgres://u@h/db?nonsense=1")
            .channel("c")
            .settings();
        assert!(matches!(result, Err(Error::InvalidConnectionString(_))));
    }
}
