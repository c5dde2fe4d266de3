//! The crate's error type, and the one-line description of a driver error that it and the
//! connection-loss reports share.

use std::error::Error as _;
use std::time::Duration;

/// Everything that can go wrong when opening a [`Listener`](crate::Listener) or waiting on it.
///
/// Once a listener is connected, a lost connection is not an error: the listener reconnects
/// by itself and reports it as a [`ConnectionEvent`](crate::ConnectionEvent) in the stream.
///
/// ```
/// use column_notify_listener::Error;
///
/// let error = Error::InvalidChannel {
///     channel: String::new(),
///     reason: "it is empty",
/// };
/// assert_eq!(error.to_string(), "invalid channel name \"\": it is empty");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The connection string could not be read (a mistake in the URI or keyword/value
    /// form, an unknown keyword, a service that is not defined, an invalid value).
    #[error("invalid connection string: {0}")]
    InvalidConnectionString(String),

    /// No channel was given to listen to.
    #[error("no channel to listen to")]
    NoChannel,

    /// A channel name that PostgreSQL cannot use.
    #[error("invalid channel name {channel:?}: {reason}")]
    InvalidChannel {
        /// The rejected name.
        channel: String,
        /// Why it was rejected.
        reason: &'static str,
    },

    /// The buffer bound given to the builder is zero.
    #[error("the event buffer must hold at least one event")]
    ZeroBuffer,

    /// The batch size given to a durable consumer is zero or above `i32::MAX`.
    #[error("invalid batch size {0}: a batch holds from 1 to 2147483647 events")]
    InvalidBatchSize(usize),

    /// The TLS settings could not be used (an unreadable certificate file, `verify-full`
    /// without a root certificate), or the server's certificate was refused; the text says
    /// which setting to change.
    #[error("TLS: {0}")]
    Tls(String),

    /// The first connection to the server failed.
    #[error("could not connect: {}", describe(.0))]
    Connect(#[source] tokio_postgres::Error),

    /// The first connection did not complete within the connect timeout.
    #[error("could not connect within {0:?}")]
    ConnectTimeout(Duration),

    /// `LISTEN` failed on the first connection.
    #[error("LISTEN failed: {0}")]
    Listen(String),

    /// A query on a [`connect_client`](crate::connect_client) connection failed.
    #[error("query failed: {}", describe(.0))]
    Query(#[source] tokio_postgres::Error),

    /// No event arrived within the time given to
    /// [`Listener::recv_timeout`](crate::Listener::recv_timeout).
    #[error("no event within {0:?}")]
    Timeout(Duration),

    /// The listener was closed: no more events will come.
    #[error("the listener is closed")]
    Closed,

    /// A relay setting that cannot work (an empty consumer name, a zero window, a name
    /// that cannot be a NATS subject).
    #[error("invalid relay setting: {0}")]
    InvalidRelay(String),

    /// A relayed channel has no durable watch.
    #[error("channel {channel:?} has no durable watch{}", if *.watched { " (its watches are not durable)" } else { "" })]
    NotDurable {
        /// The channel.
        channel: String,
        /// Whether it has watches at all.
        watched: bool,
    },

    /// A WAL consumer's name that cannot name a replication slot, or a slot of that name
    /// that is not the consumer's.
    #[error("invalid WAL consumer {0}")]
    InvalidConsumer(String),

    /// A channel given to a WAL consumer has no WAL watch.
    #[error("channel {channel:?} has no WAL watch{}", if *.watched { " (its watches deliver with NOTIFY)" } else { "" })]
    NotWal {
        /// The channel.
        channel: String,
        /// Whether it has watches at all.
        watched: bool,
    },

    /// The server cannot decode WAL watches' messages.
    #[error("wal_level is {0}: WAL consumers need wal_level = logical")]
    WalLevel(String),

    /// The publication or the replication slot could not be made (a role without
    /// `REPLICATION`, or without `CREATE` on the database for the publication).
    #[error("could not set up the WAL consumer: {0}")]
    Setup(String),

    /// The replication stream could not be opened.
    #[error("replication failed: {0}")]
    Replication(String),

    /// The NATS server could not be reached, or refused a request.
    #[error("NATS: {0}")]
    Nats(String),

    /// The NATS server has no JetStream.
    #[error("JetStream is not available at {0} (start nats-server with -js)")]
    NoJetStream(String),

    /// The stream exists but does not take the relay's subjects.
    #[error("stream {stream} takes subjects {subjects:?}, which do not cover {wanted}")]
    StreamSubjects {
        /// The stream.
        stream: String,
        /// Its subjects.
        subjects: Vec<String>,
        /// The subjects the relay publishes to.
        wanted: String,
    },
}

/// A tokio-postgres error as one line, with its causes (the server's message, the I/O
/// error) which its own `Display` leaves out.
pub(crate) fn describe(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return format!("{}: {} ({})", db.severity(), db.message(), db.code().code());
    }
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
