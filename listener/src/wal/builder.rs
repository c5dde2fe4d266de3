//! How a WAL consumer is made: [`WalConsumerBuilder`] checks the settings, the server and
//! the watches, makes the slot on first use and opens its stream.

use std::collections::HashSet;

use super::connection::{self, Connection};
use super::consumer::WalConsumer;
use super::events::WalPosition;
use crate::backoff::Backoff;
use crate::error::Error;
use crate::tls::TlsVerification;

impl WalConsumer {
    /// Connects as `consumer` to the WAL watches on `channels`, with default settings.
    pub async fn connect<I, S>(url: &str, consumer: &str, channels: I) -> Result<WalConsumer, Error>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        WalConsumer::builder(url, consumer)
            .channels(channels)
            .connect()
            .await
    }

    /// A builder, for the settings beyond the URL and the consumer's name.
    pub fn builder(url: impl Into<String>, consumer: impl Into<String>) -> WalConsumerBuilder {
        WalConsumerBuilder {
            url: url.into(),
            consumer: consumer.into(),
            channels: Vec::new(),
            backoff: Backoff::default(),
            verification: TlsVerification::default(),
        }
    }

    /// Drops consumer `consumer`: its replication slot, and with it the WAL the slot kept.
    /// Returns false when it had none. Fails while the consumer is running.
    pub async fn drop_consumer(
        url: &str,
        consumer: &str,
        verification: &TlsVerification,
    ) -> Result<bool, Error> {
        connection::drop_slot(url, verification, consumer).await
    }
}

/// Builds a [`WalConsumer`]: the URL, the consumer's name (which names its replication
/// slot, `column_notify_<consumer>`), its channels, and optional settings. The role needs
/// the `REPLICATION` attribute, and `CREATE` on the database the first time any consumer
/// runs (for the publication `column_notify_messages`, which publishes no table).
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until connect() is awaited"]
pub struct WalConsumerBuilder {
    url: String,
    consumer: String,
    channels: Vec<String>,
    backoff: Backoff,
    verification: TlsVerification,
}

impl WalConsumerBuilder {
    /// Adds a channel of a WAL watch.
    pub fn channel(mut self, channel: impl Into<String>) -> Self {
        self.channels.push(channel.into());
        self
    }

    /// Adds channels of WAL watches.
    pub fn channels<I, S>(mut self, channels: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.channels.extend(channels.into_iter().map(Into::into));
        self
    }

    /// The waits between reconnection attempts.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// How the server certificate is checked when the connection uses TLS, whatever the
    /// connection string's `sslmode` would check (see [`TlsVerification`]).
    pub fn tls_verification(mut self, verification: TlsVerification) -> Self {
        self.verification = verification;
        self
    }

    /// Checks the settings, the server (`wal_level = logical`) and that every channel has
    /// a WAL watch; makes the publication and the slot if they do not exist, and opens the
    /// stream where the slot's confirmed position is.
    pub async fn connect(self) -> Result<WalConsumer, Error> {
        if self.channels.is_empty() {
            return Err(Error::NoChannel);
        }
        let channels: HashSet<String> = self.channels.into_iter().collect();
        let connection = Connection::new(self.url, self.verification, self.backoff, self.consumer)?;
        connection.prepare(&channels).await?;
        let client = connection.stream(WalPosition::default()).await?;
        Ok(WalConsumer::start(connection, client, channels))
    }
}
