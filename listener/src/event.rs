//! What a listener yields: changes, undecodable payloads and connection events.

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::change::{split_batch, Change};

/// A notification exactly as PostgreSQL delivered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The channel it was sent on.
    pub channel: String,
    /// The payload text (empty when the sender gave none).
    pub payload: String,
    /// The process id of the server backend that sent it.
    pub process_id: i32,
}

/// A change in the listener's connection.
///
/// A listener never hides a gap: after a lost connection it reconnects, runs `LISTEN`
/// again, and only then reports [`ConnectionEvent::Reconnected`], so that every
/// notification after that event is received. Notifications sent between
/// [`ConnectionEvent::Lost`] and [`ConnectionEvent::Reconnected`] were not delivered to this
/// listener: resynchronise from the database (or replay a durable watch) when you see it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionEvent {
    /// The connection was lost (closed, or silent past the health check); the listener is
    /// reconnecting.
    Lost {
        /// Why, as one line.
        error: String,
    },
    /// A reconnection attempt failed; the listener retries after `retry_in`.
    ///
    /// These reports are informational: one is skipped when the event buffer is full, so
    /// that a slow consumer never delays the reconnection.
    ReconnectFailed {
        /// The attempt number, from 1.
        attempt: u32,
        /// Why it failed, as one line.
        error: String,
        /// The wait before the next attempt.
        retry_in: Duration,
    },
    /// The listener is connected again and listening on every channel.
    Reconnected {
        /// Always `true` for plain `NOTIFY`: notifications sent while the connection was
        /// down are not delivered.
        may_have_missed: bool,
        /// How many attempts the reconnection took.
        attempts: u32,
        /// How long the listener was not listening, from the loss to the new `LISTEN`.
        downtime: Duration,
    },
}

/// An event of a [`RawListener`](crate::RawListener): a notification with its payload as
/// text, or a connection event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawEvent {
    /// A notification.
    Notification(Notification),
    /// A connection event.
    Connection(ConnectionEvent),
}

/// An event of a [`Listener`](crate::Listener).
///
/// ```
/// use column_notify_listener::{ConnectionEvent, Event};
///
/// fn describe(event: &Event) -> String {
///     match event {
///         Event::Change { channel, change } => format!("{channel}: row {} changed", change.id),
///         Event::InvalidPayload { notification, error } => {
///             format!("{}: not a change ({error})", notification.channel)
///         }
///         Event::Connection(ConnectionEvent::Reconnected { may_have_missed: true, .. }) => {
///             "reconnected: resynchronise".to_string()
///         }
///         Event::Connection(other) => format!("{other:?}"),
///     }
/// }
/// # let _ = describe;
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Event<T = Value> {
    /// A change, decoded from a notification payload.
    Change {
        /// The channel it arrived on.
        channel: String,
        /// The change.
        change: Box<Change<T>>,
    },
    /// A notification whose payload is not a change (someone else sent it, or its rows do
    /// not fit `T`). The stream goes on.
    InvalidPayload {
        /// The notification as it arrived.
        notification: Notification,
        /// Why it could not be decoded.
        error: String,
    },
    /// A connection event.
    Connection(ConnectionEvent),
}

impl<T: DeserializeOwned> Event<T> {
    /// Decodes a raw event: a notification becomes an [`Event::Change`] (one per change,
    /// in order, for a batch of a batched watch), or an [`Event::InvalidPayload`] when its
    /// payload (or an element of its batch) is not a change.
    ///
    /// ```
    /// use column_notify_listener::{Event, Notification, RawEvent};
    ///
    /// let notification = |payload: &str| {
    ///     RawEvent::Notification(Notification {
    ///         channel: "c".into(),
    ///         payload: payload.into(),
    ///         process_id: 1,
    ///     })
    /// };
    /// let events = Event::<serde_json::Value>::decode(notification("garbage"));
    /// assert!(matches!(events[..], [Event::InvalidPayload { .. }]));
    /// let events = Event::<serde_json::Value>::decode(notification(
    ///     r#"{"changes": [{"id": 1, "old": null, "new": {"id": 1}}, {"id": 2}]}"#,
    /// ));
    /// assert_eq!(events.len(), 2);
    /// assert!(matches!(&events[1], Event::Change { change, .. } if change.id == 2));
    /// ```
    pub fn decode(raw: RawEvent) -> Vec<Self> {
        Undecoded::split(raw)
            .into_iter()
            .map(Undecoded::decode)
            .collect()
    }
}

/// One event of a raw event, its change parsed as JSON but not yet typed (so that a
/// listener can hold the rest of a batch and still change its row type).
#[derive(Debug)]
pub(crate) enum Undecoded {
    Connection(ConnectionEvent),
    Change {
        notification: Arc<Notification>,
        change: Value,
    },
    Invalid {
        notification: Notification,
        error: String,
    },
}

impl Undecoded {
    /// The events of a raw event: one per change of a batch, else one.
    pub(crate) fn split(raw: RawEvent) -> Vec<Undecoded> {
        let notification = match raw {
            RawEvent::Connection(event) => return vec![Undecoded::Connection(event)],
            RawEvent::Notification(notification) => notification,
        };
        match serde_json::from_str(&notification.payload) {
            Ok(payload) => {
                let notification = Arc::new(notification);
                split_batch(payload)
                    .into_iter()
                    .map(|change| Undecoded::Change {
                        notification: Arc::clone(&notification),
                        change,
                    })
                    .collect()
            }
            Err(error) => vec![Undecoded::Invalid {
                notification,
                error: error.to_string(),
            }],
        }
    }

    pub(crate) fn decode<T: DeserializeOwned>(self) -> Event<T> {
        match self {
            Undecoded::Connection(event) => Event::Connection(event),
            Undecoded::Change {
                notification,
                change,
            } => match Change::from_value(change) {
                Ok(change) => Event::Change {
                    channel: notification.channel.clone(),
                    change: Box::new(change),
                },
                Err(error) => Event::InvalidPayload {
                    notification: Notification::clone(&notification),
                    error: error.to_string(),
                },
            },
            Undecoded::Invalid {
                notification,
                error,
            } => Event::InvalidPayload {
                notification,
                error,
            },
        }
    }
}
