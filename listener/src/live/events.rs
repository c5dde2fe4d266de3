//! What a listener yields (changes, undecodable payloads and connection events), the
//! notifications they come from, and how a notification is split and decoded into them.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::change::{skipped_before, split_batch_str, Change};

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
    /// The server held back `count` notifications of `channel` before the one that follows
    /// this event, because its NOTIFY queue was nearly full (a listener stuck inside a
    /// transaction keeps it from being cleaned; see `pg_column_notify.max_queue_usage`).
    /// Like a reconnection, it is a gap: resynchronise, or replay a durable watch.
    NotificationsSkipped {
        /// The channel whose notifications were held back.
        channel: String,
        /// How many.
        count: u64,
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

/// Where the changes of a payload are: the whole payload, or each element of a batch. Only
/// a payload whose first key may be `changes` is read through to tell (a batch has no other
/// key); any other is one change, which decoding checks.
fn change_texts(payload: &str) -> Result<Vec<Range<usize>>, serde_json::Error> {
    if !may_be_batch(payload) {
        return Ok(std::iter::once(0..payload.len()).collect());
    }
    let start = payload.as_ptr() as usize;
    Ok(split_batch_str(payload)?
        .into_iter()
        .map(|text| {
            let offset = text.as_ptr() as usize - start;
            offset..offset + text.len()
        })
        .collect())
}

/// Whether the payload is an object whose first key is, or may be, `changes` (one with an
/// escape in it might spell it).
fn may_be_batch(payload: &str) -> bool {
    let Some(rest) = payload.trim_start().strip_prefix('{') else {
        return false;
    };
    let Some(key) = rest.trim_start().strip_prefix('"') else {
        return false;
    };
    match key.find(['"', '\\']) {
        Some(end) => key[end..].starts_with('\\') || &key[..end] == "changes",
        None => false,
    }
}

/// One event of a raw event, its change found in the payload but not yet decoded (so that
/// a listener can hold the rest of a batch and still change its row type). A change is
/// decoded straight from its text, in one pass.
#[derive(Debug)]
pub(crate) enum Undecoded {
    Connection(ConnectionEvent),
    Change {
        notification: Arc<Notification>,
        /// Where the change is in the payload: all of it, or one element of a batch.
        text: Range<usize>,
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
        let gap = skipped_before(&notification.payload).map(|count| {
            Undecoded::Connection(ConnectionEvent::NotificationsSkipped {
                channel: notification.channel.clone(),
                count,
            })
        });
        match change_texts(&notification.payload) {
            Ok(texts) => {
                let notification = Arc::new(notification);
                let changes = texts.into_iter().map(|text| Undecoded::Change {
                    notification: Arc::clone(&notification),
                    text,
                });
                gap.into_iter().chain(changes).collect()
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
            Undecoded::Change { notification, text } => {
                match Change::from_payload(&notification.payload[text]) {
                    Ok(change) => Event::Change {
                        channel: notification.channel.clone(),
                        change: Box::new(change),
                    },
                    Err(error) => Event::InvalidPayload {
                        notification: Notification::clone(&notification),
                        error: error.to_string(),
                    },
                }
            }
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

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::Value;

    use super::*;

    fn notification(payload: &str) -> RawEvent {
        RawEvent::Notification(Notification {
            channel: "c".into(),
            payload: payload.into(),
            process_id: 1,
        })
    }

    fn changes<T: DeserializeOwned + std::fmt::Debug>(payload: &str) -> Vec<Change<T>> {
        Event::<T>::decode(notification(payload))
            .into_iter()
            .map(|event| match event {
                Event::Change { change, .. } => *change,
                other => panic!("expected a change, got {other:?}"),
            })
            .collect()
    }

    /// 10^400, as `row_to_json` writes a `numeric` that large: digits, no exponent.
    fn ten_to_the_400() -> String {
        format!("1{}", "0".repeat(400))
    }

    #[test]
    fn numbers_are_kept_exactly() {
        let big = ten_to_the_400();
        let new = format!(
            r#"{{"amount":12345678901234567890.123456789,"big":{big},"huge":1e+400,"tiny":-1.5e-400,"price":12.50}}"#
        );
        let payload = format!(r#"{{"id":123456789012345678901234567890,"old":null,"new":{new}}}"#);
        let [change] = <[Change; 1]>::try_from(changes::<Value>(&payload)).unwrap();
        assert_eq!(change.id.to_string(), "123456789012345678901234567890");
        assert_eq!(change.key(), "123456789012345678901234567890");
        let row = change.new.unwrap();
        assert_eq!(row["amount"].to_string(), "12345678901234567890.123456789");
        assert_eq!(row["big"].to_string(), big);
        assert_eq!(row["huge"].to_string(), "1e+400");
        assert_eq!(row["tiny"].to_string(), "-1.5e-400");
        assert_eq!(row["price"].to_string(), "12.50");
        assert_eq!(row.to_string(), new);

        // The same number in another spelling of its exponent: its exponent is written
        // `e+` or `e-`, its digits kept.
        let [change] = <[Change; 1]>::try_from(changes::<Value>(
            r#"{"id":1,"new":{"a":1E400,"b":2.50E-7,"c":-3e+0}}"#,
        ))
        .unwrap();
        assert_eq!(
            change.new.unwrap().to_string(),
            r#"{"a":1e+400,"b":2.50e-7,"c":-3e+0}"#
        );
    }

    #[test]
    fn rows_keep_the_payload_key_order() {
        let old = r#"{"zeta":1,"id":7,"Alpha":"a","beta":[3,2,1],"nested":{"z":1,"a":2}}"#;
        let new = r#"{"zeta":2,"id":7,"Alpha":"b","beta":[1],"nested":{"z":3,"a":4}}"#;
        let payload = format!(r#"{{"id":7,"old":{old},"new":{new},"table":"t"}}"#);
        let [change] = <[Change; 1]>::try_from(changes::<Value>(&payload)).unwrap();
        let old_row = change.old.unwrap();
        let keys: Vec<&str> = old_row
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["zeta", "id", "Alpha", "beta", "nested"]);
        assert_eq!(old_row.to_string(), old);
        assert_eq!(change.new.unwrap().to_string(), new);
    }

    #[test]
    fn typed_rows_still_read_numbers() {
        #[derive(Debug, Deserialize)]
        struct Row {
            id: i64,
            price: f64,
            amount: f64,
        }
        let payload = r#"{"id":1,"old":null,"new":{"id":1,"price":12.50,"amount":12345678901234567890.123456789}}"#;
        let [change] = <[Change<Row>; 1]>::try_from(changes::<Row>(payload)).unwrap();
        let row = change.new.unwrap();
        assert_eq!(row.id, 1);
        assert_eq!(row.price, 12.5);
        assert_eq!(row.amount, 12345678901234567890.123456789);
    }

    #[test]
    fn batch_elements_keep_numbers_and_key_order() {
        let first = r#"{"id":1,"old":null,"new":{"b":1.10,"a":99999999999999999999999}}"#;
        let second = r#"{"id":2,"old":null,"new":{"d":0.30000000000000000004,"c":1}}"#;
        let decoded = changes::<Value>(&format!(r#"{{"changes":[{first},{second}]}}"#));
        let rows: Vec<String> = decoded
            .iter()
            .map(|change| change.new.as_ref().unwrap().to_string())
            .collect();
        assert_eq!(
            rows,
            [
                r#"{"b":1.10,"a":99999999999999999999999}"#,
                r#"{"d":0.30000000000000000004,"c":1}"#
            ]
        );
    }

    #[test]
    fn only_an_object_whose_one_key_is_changes_is_a_batch() {
        // A change with a `changes` key among others is one change.
        let decoded = changes::<Value>(r#"{"id":1,"changes":[{"id":2},{"id":3}],"new":{"id":1}}"#);
        assert_eq!(decoded.len(), 1);
        assert_eq!(decoded[0].id, 1);
        // So is any other object with more keys than `changes`, or whose `changes` is no
        // array: each is one payload, here not a change.
        for payload in [
            r#"{"changes":[{"id":2}],"table":"t"}"#,
            r#"{"table":"t","changes":[{"id":2}]}"#,
            r#"{"changes":{"id":2}}"#,
            r#"{"changes":null}"#,
            r#"[{"changes":[{"id":2}]}]"#,
        ] {
            let events = Event::<Value>::decode(notification(payload));
            assert!(
                matches!(events[..], [Event::InvalidPayload { .. }]),
                "{payload}: {events:?}"
            );
        }
        // A batch: the one key `changes`, an array (empty or not).
        assert_eq!(
            changes::<Value>(r#"{"changes":[{"id":2},{"id":3}]}"#).len(),
            2
        );
        assert_eq!(changes::<Value>(r#" { "changes" : [ ] } "#).len(), 0);
    }

    #[test]
    fn held_back_notifications_come_as_a_gap_before_the_change() {
        for payload in [
            r#"{"skipped":12,"op":"UPDATE","id":1,"old":null,"new":null}"#,
            r#"{"changes":[{"skipped":12,"op":"UPDATE","id":1,"old":null,"new":null}]}"#,
        ] {
            let events = Event::<Value>::decode(notification(payload));
            match &events[..] {
                [Event::Connection(ConnectionEvent::NotificationsSkipped { channel, count }), Event::Change { .. }] =>
                {
                    assert_eq!((channel.as_str(), *count), ("c", 12));
                }
                other => panic!("{payload}: {other:?}"),
            }
        }
        assert_eq!(
            Event::<Value>::decode(notification(r#"{"op":"UPDATE","id":1}"#)).len(),
            1
        );
    }
}
