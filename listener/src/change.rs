//! The change a pg_column_notify trigger sends, typed through serde.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The operation that produced a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Op {
    /// A row was inserted.
    Insert,
    /// A row was updated.
    Update,
    /// A row was deleted.
    Delete,
}

/// One change notification: the row's key, its old and new values, and metadata.
///
/// Only `id` is required in the payload. `old` and `new` are the rows as `row_to_json` gives
/// them (absent when the payload was `truncated` for size). The metadata keys are optional, so
/// payloads of the plain `{"id", "old", "new"}` shape decode too, and unknown keys are ignored.
///
/// `T` is the row type; it defaults to [`serde_json::Value`]. Use your own type to get typed
/// rows:
///
/// ```
/// use column_notify_listener::{Change, Op};
/// use serde::Deserialize;
///
/// #[derive(Debug, Deserialize)]
/// struct Appointment {
///     id: i64,
///     canceled: bool,
/// }
///
/// let payload = r#"{"id": 1, "op": "UPDATE", "schema": "public", "table": "appointments",
///     "changed": ["canceled"],
///     "old": {"id": 1, "canceled": false}, "new": {"id": 1, "canceled": true}}"#;
/// let change: Change<Appointment> = Change::from_payload(payload)?;
/// assert_eq!(change.id, 1);
/// assert_eq!(change.op, Some(Op::Update));
/// assert!(!change.old.unwrap().canceled);
/// assert!(change.new.unwrap().canceled);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "T: DeserializeOwned", serialize = "T: Serialize"))]
pub struct Change<T = Value> {
    /// The row's key before the change: a scalar for a one-column key, an object for a
    /// composite key.
    pub id: Value,
    /// The row before the change (`None` for an insert, or when the payload was truncated).
    #[serde(default)]
    pub old: Option<T>,
    /// The row after the change (`None` for a delete, or when the payload was truncated).
    #[serde(default)]
    pub new: Option<T>,
    /// The operation, when the sender says it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<Op>,
    /// The table's schema, when the sender says it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// The table's name, when the sender says it (for a row of a partition: the partitioned
    /// table at the root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// The partition the row lives in, for a row of a partitioned table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// The watched columns that changed (empty when the sender does not say).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<String>,
    /// True when the payload was reduced to fit PostgreSQL's size limit: `old` and `new`
    /// are then absent and the rows must be read from the database.
    #[serde(default, skip_serializing_if = "is_false")]
    pub truncated: bool,
    /// The new key, when the change modified the key itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_id: Option<Value>,
    /// The durable event id, for watches with durable delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<i64>,
}

fn is_false(value: &bool) -> bool {
    !*value
}

impl<T: DeserializeOwned> Change<T> {
    /// Decodes a notification payload.
    ///
    /// Fails when the payload is not a JSON object with an `id`, when `old` or `new` is
    /// neither an object nor null, or when they do not fit `T`.
    ///
    /// ```
    /// use column_notify_listener::Change;
    ///
    /// let change: Change = Change::from_payload(r#"{"id": 7, "old": null, "new": {"id": 7}}"#)?;
    /// assert_eq!(change.id, 7);
    /// assert!(change.old.is_none());
    /// assert!(Change::<serde_json::Value>::from_payload("not json").is_err());
    /// assert!(Change::<serde_json::Value>::from_payload("[7, null, null]").is_err());
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn from_payload(payload: &str) -> Result<Self, serde_json::Error> {
        Self::from_value(serde_json::from_str(payload)?)
    }

    /// Decodes a payload already parsed, such as one element of a batch (see
    /// [`split_batch`]). Fails like [`Change::from_payload`].
    pub fn from_value(value: Value) -> Result<Self, serde_json::Error> {
        let Value::Object(object) = &value else {
            return Err(serde::de::Error::custom("the payload is not a JSON object"));
        };
        for row in ["old", "new"] {
            if !matches!(object.get(row), None | Some(Value::Null | Value::Object(_))) {
                return Err(serde::de::Error::custom(format_args!(
                    "`{row}` is neither a row object nor null"
                )));
            }
        }
        serde_json::from_value(value)
    }
}

/// The change payloads a notification carries: the payload itself, or, from a batched
/// watch (`{"changes": [...]}`), each of its elements in order.
///
/// ```
/// use column_notify_listener::split_batch;
/// use serde_json::json;
///
/// let batch = json!({"changes": [{"id": 1}, {"id": 2}]});
/// assert_eq!(split_batch(batch), [json!({"id": 1}), json!({"id": 2})]);
/// assert_eq!(split_batch(json!({"id": 3})), [json!({"id": 3})]);
/// ```
pub fn split_batch(payload: Value) -> Vec<Value> {
    match payload {
        Value::Object(object) if is_batch(&object) => match object.into_iter().next() {
            Some((_, Value::Array(changes))) => changes,
            _ => unreachable!("a batch has one member, an array"),
        },
        single => vec![single],
    }
}

fn is_batch(object: &Map<String, Value>) -> bool {
    object.len() == 1 && matches!(object.get("changes"), Some(Value::Array(_)))
}

impl<T> Change<T> {
    /// The key that identifies the row in order-keeping processing: `id`, as compact JSON.
    ///
    /// ```
    /// use column_notify_listener::Change;
    ///
    /// let change: Change = Change::from_payload(r#"{"id": {"a": 1, "b": "x"}}"#)?;
    /// assert_eq!(change.key(), r#"{"a":1,"b":"x"}"#);
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn key(&self) -> String {
        self.id.to_string()
    }
}
