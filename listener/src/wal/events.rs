//! What a WAL consumer yields: a message of a WAL watch (its payload as text, where it is
//! in the WAL) or decoded as a [`Change`], or a connection event.

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::change::Change;
use crate::live::ConnectionEvent;

/// A position in the server's write-ahead log (an LSN), shown as PostgreSQL shows it
/// (`0/16B3748`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct WalPosition(pub u64);

impl fmt::Display for WalPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl std::str::FromStr for WalPosition {
    type Err = String;

    /// Parses PostgreSQL's `X/Y` form of an LSN.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || format!("invalid WAL position {text:?} (expected X/Y in hexadecimal)");
        let (high, low) = text.split_once('/').ok_or_else(invalid)?;
        let high = u32::from_str_radix(high, 16).map_err(|_| invalid())?;
        let low = u32::from_str_radix(low, 16).map_err(|_| invalid())?;
        Ok(WalPosition((u64::from(high) << 32) | u64::from(low)))
    }
}

/// One message of a WAL watch, as the replication slot decoded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalMessage {
    /// The channel of the watch that wrote it.
    pub channel: String,
    /// Where the message is in the WAL: unique. Messages come in the order of their
    /// transactions' commits, and by position within a transaction (a transaction that
    /// commits later may have written its message earlier).
    pub position: WalPosition,
    /// Where its transaction's commit ends; acknowledging the last message of a
    /// transaction confirms up to here.
    pub commit_end: WalPosition,
    /// When its transaction committed.
    pub committed_at: SystemTime,
    /// The payload, as NOTIFY would have carried it.
    pub payload: String,
}

/// An event of [`WalConsumer::recv_raw`](crate::WalConsumer::recv_raw).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawWalEvent {
    /// The next message.
    Message(WalMessage),
    /// A connection event. `Reconnected` says `may_have_missed: false`: the slot keeps
    /// every message until it is confirmed, so the consumer resumes where it stopped.
    Connection(ConnectionEvent),
}

/// An event of [`WalConsumer::recv`](crate::WalConsumer::recv).
#[derive(Debug, Clone, PartialEq)]
pub enum WalEvent<T = Value> {
    /// The next change.
    Change {
        /// The change.
        change: Box<Change<T>>,
        /// The message that carried it (its payload included).
        message: WalMessage,
    },
    /// A message whose payload does not decode as a [`Change<T>`]. Acknowledge it like
    /// any other once dealt with.
    InvalidPayload {
        /// The message.
        message: WalMessage,
        /// Why it could not be decoded.
        error: String,
    },
    /// A connection event, as in [`RawWalEvent::Connection`].
    Connection(ConnectionEvent),
}

impl<T: DeserializeOwned> WalEvent<T> {
    /// Decodes a raw WAL event.
    pub fn decode(raw: RawWalEvent) -> Self {
        match raw {
            RawWalEvent::Connection(event) => WalEvent::Connection(event),
            RawWalEvent::Message(message) => match Change::<T>::from_payload(&message.payload) {
                Ok(change) => WalEvent::Change {
                    change: Box::new(change),
                    message,
                },
                Err(error) => WalEvent::InvalidPayload {
                    message,
                    error: error.to_string(),
                },
            },
        }
    }
}

/// PostgreSQL's timestamps count microseconds from 2000-01-01.
pub(super) fn postgres_time(micros: i64) -> SystemTime {
    const POSTGRES_EPOCH: Duration = Duration::from_secs(946_684_800);
    let epoch = SystemTime::UNIX_EPOCH + POSTGRES_EPOCH;
    if micros >= 0 {
        epoch + Duration::from_micros(micros.unsigned_abs())
    } else {
        epoch - Duration::from_micros(micros.unsigned_abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_read_and_print_as_postgres_does() {
        let position: WalPosition = "1/16B3748".parse().unwrap();
        assert_eq!(position, WalPosition((1 << 32) | 0x16B3748));
        assert_eq!(position.to_string(), "1/16B3748");
        assert!("16B3748".parse::<WalPosition>().is_err());
        assert!("x/1".parse::<WalPosition>().is_err());
    }

    #[test]
    fn postgres_time_counts_from_2000() {
        assert_eq!(
            postgres_time(0),
            SystemTime::UNIX_EPOCH + Duration::from_secs(946_684_800)
        );
    }
}
