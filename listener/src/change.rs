//! The change a pg_column_notify trigger sends, typed through serde, and the split of a
//! batch's payload into its changes.

use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
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
/// `T` is the row type; it defaults to [`serde_json::Value`], which this crate builds with
/// serde_json's `arbitrary_precision` and `preserve_order`: a row (and `id`) keeps every
/// number exactly, with the digits sent (a `numeric` of any length included; only an
/// exponent is written `e+N` or `e-N`), and its keys in the payload's order. Use your own
/// type to get typed rows:
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
    #[serde(default, deserialize_with = "old_row")]
    pub old: Option<T>,
    /// The row after the change (`None` for a delete, or when the payload was truncated).
    #[serde(default, deserialize_with = "new_row")]
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

fn old_row<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    deserializer.deserialize_any(Row("old", PhantomData))
}

fn new_row<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    deserializer.deserialize_any(Row("new", PhantomData))
}

/// `old` or `new`: a row object, decoded as `T`, or null.
struct Row<T>(&'static str, PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for Row<T> {
    type Value = Option<T>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        write!(formatter, "`{}` to be a row object or null", self.0)
    }

    fn visit_unit<E>(self) -> Result<Option<T>, E> {
        Ok(None)
    }

    fn visit_none<E>(self) -> Result<Option<T>, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<T>, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Option<T>, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map)).map(Some)
    }
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
        // Read straight into the change, in one pass; a struct would also take an array.
        if !payload.trim_start().starts_with('{') {
            let not_json = serde_json::from_str::<IgnoredAny>(payload).err();
            return Err(not_json
                .unwrap_or_else(|| serde::de::Error::custom("the payload is not a JSON object")));
        }
        serde_json::from_str(payload)
    }

    /// Decodes a payload already parsed, such as one element of a batch (see
    /// [`split_batch`]). Fails like [`Change::from_payload`].
    pub fn from_value(value: Value) -> Result<Self, serde_json::Error> {
        // `old` and `new` are checked as rows by their deserializer (`Row`).
        if !value.is_object() {
            return Err(serde::de::Error::custom("the payload is not a JSON object"));
        }
        serde_json::from_value(value)
    }
}

/// The change payloads a notification carries: the payload itself, or, from a batched
/// watch, each of its elements in order.
///
/// A payload is a batch when it is a JSON object whose one key is `changes` and whose
/// `changes` is an array: `{"changes": [<payload>, ...]}`, as a batched watch sends it.
/// Anything else is one payload, including an object that has a `changes` key among other
/// keys, or whose `changes` is not an array. (Of a key given twice, the last counts, as
/// when the payload is parsed into a [`Value`].) [`split_batch_str`] applies the same rule
/// to the payload's text.
///
/// ```
/// use column_notify_listener::split_batch;
/// use serde_json::json;
///
/// let batch = json!({"changes": [{"id": 1}, {"id": 2}]});
/// assert_eq!(split_batch(batch), [json!({"id": 1}), json!({"id": 2})]);
/// assert_eq!(split_batch(json!({"id": 3})), [json!({"id": 3})]);
/// let not_a_batch = json!({"id": 4, "changes": [{"id": 5}]});
/// assert_eq!(split_batch(not_a_batch.clone()), [not_a_batch]);
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

/// How many notifications of its channel the server held back before this one, when its
/// NOTIFY queue was nearly full: the `"skipped"` member that pg_column_notify writes first in
/// the payload (in a batch, first in its first change). `None` when there is none.
///
/// ```
/// use column_notify_listener::skipped_before;
///
/// assert_eq!(skipped_before(r#"{"skipped":3,"op":"UPDATE","id":1}"#), Some(3));
/// assert_eq!(skipped_before(r#"{"changes":[{"skipped":2,"id":1},{"id":2}]}"#), Some(2));
/// assert_eq!(skipped_before(r#"{"op":"UPDATE","id":1}"#), None);
/// ```
pub fn skipped_before(payload: &str) -> Option<u64> {
    let rest = payload
        .strip_prefix(r#"{"changes":[{"skipped":"#)
        .or_else(|| payload.strip_prefix(r#"{"skipped":"#))?;
    let digits = rest.find(|c: char| !c.is_ascii_digit())?;
    rest[..digits].parse().ok()
}

fn is_batch(object: &Map<String, Value>) -> bool {
    object.len() == 1 && matches!(object.get("changes"), Some(Value::Array(_)))
}

/// The change payloads of a notification's text, as the JSON texts they are in it: the
/// elements of a batch, else the whole payload (without the whitespace around it).
/// Batches are told apart as by [`split_batch`].
///
/// Nothing is parsed into values, so every number, key order and string escape is kept
/// byte for byte. Fails when the payload is not JSON.
///
/// ```
/// use column_notify_listener::split_batch_str;
///
/// let batch = r#"{"changes": [{"id": 1, "n": 1.50}, {"id": 2}]}"#;
/// assert_eq!(split_batch_str(batch)?, [r#"{"id": 1, "n": 1.50}"#, r#"{"id": 2}"#]);
/// let single = r#" {"id": 3, "changes": [1]} "#;
/// assert_eq!(split_batch_str(single)?, [r#"{"id": 3, "changes": [1]}"#]);
/// assert!(split_batch_str("hello").is_err());
/// # Ok::<(), serde_json::Error>(())
/// ```
pub fn split_batch_str(payload: &str) -> Result<Vec<&str>, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_str(payload);
    let elements = Shape::Batch.deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(match elements {
        Some(elements) => elements.into_iter().map(RawValue::get).collect(),
        None => vec![payload.trim_matches([' ', '\t', '\n', '\r'])],
    })
}

/// What [`split_batch_str`] looks for in a JSON value, which it reads through without
/// building it: the elements of a batch (at the top), or of an array (a batch's `changes`).
/// `None` is anything else.
#[derive(Clone, Copy)]
enum Shape {
    Batch,
    Array,
}

impl<'de> DeserializeSeed<'de> for Shape {
    type Value = Option<Vec<&'de RawValue>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Shape {
    type Value = Option<Vec<&'de RawValue>>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        // Only the last `changes` counts; any other key makes it no batch.
        let (mut changes, mut other_keys) = (None, false);
        while let Some(is_changes) = map.next_key_seed(IsChanges)? {
            if is_changes && matches!(self, Shape::Batch) {
                changes = map.next_value_seed(Shape::Array)?;
            } else {
                other_keys = true;
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(changes.filter(|_| !other_keys))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        match self {
            Shape::Array => {
                let mut elements = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(element) = seq.next_element()? {
                    elements.push(element);
                }
                Ok(Some(elements))
            }
            Shape::Batch => {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(None)
            }
        }
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// An object key, read as whether it is `changes` (without allocating).
struct IsChanges;

impl<'de> DeserializeSeed<'de> for IsChanges {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for IsChanges {
    type Value = bool;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("an object key")
    }

    fn visit_str<E>(self, key: &str) -> Result<bool, E> {
        Ok(key == "changes")
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Payloads and whether each is a batch.
    const PAYLOADS: &[(&str, bool)] = &[
        (r#"{"changes":[{"id":1},{"id":2}]}"#, true),
        (r#"{"changes":[]}"#, true),
        (
            " {\n \"changes\" : [ {\"id\": 1} ,\t{\"id\": 2} ] }\n",
            true,
        ),
        (r#"{"\u0063hanges":[{"id":1}]}"#, true),
        (r#"{"changes":{"id":1},"changes":[{"id":2}]}"#, true),
        (r#"{"changes":[{"id":1}],"changes":null}"#, false),
        (r#"{"id":1,"changes":[{"id":2}],"new":{"id":1}}"#, false),
        (r#"{"changes":[{"id":2}],"table":"t"}"#, false),
        (r#"{"changes":{"changes":[{"id":2}]}}"#, false),
        (r#"{"changes":"[]"}"#, false),
        (r#"{"changes":1e400}"#, false),
        (r#"{"Changes":[{"id":2}]}"#, false),
        (r#"{}"#, false),
        (r#"[{"changes":[{"id":2}]}]"#, false),
        (r#"[[{"id":2}]]"#, false),
        (r#""changes""#, false),
        ("12345678901234567890.123456789", false),
        ("null", false),
        ("true", false),
    ];

    #[test]
    fn text_and_value_tell_batches_apart_alike() {
        for &(payload, is_batch) in PAYLOADS {
            let texts = split_batch_str(payload).unwrap();
            let values = split_batch(serde_json::from_str(payload).unwrap());
            let parsed: Vec<Value> = texts
                .iter()
                .map(|text| serde_json::from_str(text).unwrap())
                .collect();
            assert_eq!(parsed, values, "{payload}");
            if !is_batch {
                assert_eq!(texts, [payload.trim()], "{payload}");
            } else {
                assert!(!texts.iter().any(|text| text.trim() != *text), "{payload}");
            }
        }
    }

    #[test]
    fn batch_elements_are_the_payload_text() {
        let first = r#"{"id":1,"new":{"b":1.10,"a":1E400,"s":"\u00e9\n"}}"#;
        let second = r#"{"id": 2, "new": {"n": 12345678901234567890.123456789}}"#;
        let batch = format!("{{\"changes\":[ {first},\n{second} ]}}");
        assert_eq!(split_batch_str(&batch).unwrap(), [first, second]);
        let single = format!("\t{first}\r\n");
        assert_eq!(split_batch_str(&single).unwrap(), [first]);
    }

    #[test]
    fn text_that_is_not_json_fails() {
        for payload in [
            "",
            "hello",
            r#"{"changes":[{"id":1}]"#,
            r#"{"changes":[{"id":1}]} x"#,
            r#"{"changes":[{"id":01}]}"#,
            "{\"changes\":[\"a\nb\"]}",
        ] {
            assert!(split_batch_str(payload).is_err(), "{payload:?}");
        }
    }

    #[test]
    fn rows_that_are_not_objects_are_refused_from_text_and_from_values() {
        for (payload, row) in [
            (r#"{"id": 1, "old": 5}"#, "`old`"),
            (r#"{"id": 1, "new": "not a row"}"#, "`new`"),
            (r#"{"id": 1, "new": [1]}"#, "`new`"),
        ] {
            let from_text = Change::<Value>::from_payload(payload)
                .unwrap_err()
                .to_string();
            assert!(from_text.contains(row), "{payload}: {from_text}");
            let value: Value = serde_json::from_str(payload).unwrap();
            let from_value = Change::<Value>::from_value(value).unwrap_err().to_string();
            assert!(from_value.contains(row), "{payload}: {from_value}");
        }
        let rows = Change::<Value>::from_payload(r#"{"id": 1, "old": null, "new": {"a": 1}}"#);
        assert_eq!(rows.unwrap().new, Some(serde_json::json!({"a": 1})));
    }
}
