//! What a relay tells about itself as it runs: its state (ready, standby, active), each
//! channel's progress (caught up, lag, a restart) and its counters.

use std::fmt;
use std::time::Duration;

/// A state change or a progress report of a [`Relay`](crate::Relay), sent to the channel
/// given to [`RelayBuilder::reports`](crate::RelayBuilder::reports). `Display` gives the
/// line `column-notify relay` prints on stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RelayReport {
    /// Connected to PostgreSQL and NATS; the stream is there (`created`: made now).
    Ready {
        /// The stream's name.
        stream: String,
        /// The subjects the relay publishes to, `<prefix>.>`.
        subjects: String,
        /// Whether the relay created the stream.
        created: bool,
    },
    /// Another relay is active as this consumer: this one waits, and takes over when it ends.
    Standby {
        /// The consumer's name.
        consumer: String,
    },
    /// This relay holds the consumer's lock and publishes.
    Active {
        /// The consumer's name.
        consumer: String,
        /// The channels it relays.
        channels: Vec<String>,
    },
    /// The connection that holds the lock was lost: publishing stopped, and the relay waits
    /// for the lock again.
    LockLost {
        /// What ended the connection.
        error: String,
    },
    /// The stream already held events past the consumer's position (published just before
    /// a crash): the position moved up to them, and they are not published again.
    Resynchronised {
        /// The channel.
        channel: String,
        /// The last event already in the stream.
        event_id: i64,
    },
    /// Every event of the channel's log so far is in the stream.
    CaughtUp {
        /// The channel.
        channel: String,
        /// The last event in the stream.
        event_id: i64,
        /// Events this relay published on the channel since it started.
        relayed: u64,
    },
    /// The stream already held messages of a WAL watch's channel that the consumer's slot
    /// sent again (published just before a crash): they are not published again.
    WalResynchronised {
        /// The channel.
        channel: String,
        /// The first message skipped, as its `Nats-Msg-Id`.
        up_to: String,
    },
    /// Every message the WAL watches' slot held so far is in the stream.
    WalCaughtUp {
        /// The position confirmed to the server.
        confirmed: crate::wal::WalPosition,
        /// Messages this relay published since it started.
        relayed: u64,
    },
    /// Events of the channel's log not yet in the stream.
    Lag {
        /// The channel.
        channel: String,
        /// How many.
        events: i64,
    },
    /// A channel's connections failed; it starts again (from the stream's last message)
    /// after `retry_in`.
    Restarting {
        /// The channel.
        channel: String,
        /// What failed.
        error: String,
        /// The wait before the next start.
        retry_in: Duration,
    },
    /// The relay stopped (interrupted) after the in-flight events were acknowledged.
    Stopped {
        /// Events published since it started, all channels.
        relayed: u64,
    },
}

impl fmt::Display for RelayReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ready {
                stream,
                subjects,
                created,
            } => {
                let how = if *created { "created" } else { "found" };
                write!(f, "connected; stream {stream} {how}, subjects {subjects}")
            }
            Self::Standby { consumer } => write!(
                f,
                "standby: another relay is active as consumer {consumer}; taking over when it ends"
            ),
            Self::Active { consumer, channels } => write!(
                f,
                "active as consumer {consumer} on {}",
                channels.join(", ")
            ),
            Self::LockLost { error } => {
                write!(f, "lost the consumer's lock ({error}); publishing stopped")
            }
            Self::Resynchronised { channel, event_id } => write!(
                f,
                "{channel}: the stream already holds events up to {event_id}; continuing after it"
            ),
            Self::CaughtUp {
                channel,
                event_id,
                relayed,
            } => write!(
                f,
                "{channel}: caught up at event {event_id} ({relayed} relayed)"
            ),
            Self::WalResynchronised { channel, up_to } => write!(
                f,
                "{channel}: the stream already holds {up_to} and what came before; continuing after it"
            ),
            Self::WalCaughtUp { confirmed, relayed } => {
                write!(f, "caught up, confirmed up to {confirmed} ({relayed} relayed)")
            }
            Self::Lag { channel, events } => write!(f, "{channel}: lag {events} events"),
            Self::Restarting {
                channel,
                error,
                retry_in,
            } => write!(f, "{channel}: {error}; reconnecting in {retry_in:.1?}"),
            Self::Stopped { relayed } => write!(f, "stopped after relaying {relayed} event(s)"),
        }
    }
}
