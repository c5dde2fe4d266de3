//! What a durable consumer yields: a stored event (an entry of the server's event log,
//! [`StoredEvent`]) as text or decoded as a [`Change`], or a connection event.

use std::time::SystemTime;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::change::Change;
use crate::live::ConnectionEvent;

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

/// An event of [`DurableConsumer::recv_raw`](crate::DurableConsumer::recv_raw): an event of the log with its payload as text,
/// or a connection event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawDurableEvent {
    /// The next event of the log.
    Event(StoredEvent),
    /// A connection event. `Reconnected` says `may_have_missed: false`: the consumer reads
    /// the log after every reconnection, so nothing committed meanwhile is missed.
    Connection(ConnectionEvent),
}

/// An event of [`DurableConsumer::recv`](crate::DurableConsumer::recv).
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
