//! Payloads shaped like the extension's, for a row of `appointments` being canceled, and the
//! check that a change is the one sent.

use column_notify_listener::Change;
use serde_json::{json, Value};

/// The row of appointment `id`.
pub fn row(id: i64, canceled: bool) -> Value {
    json!({"id": id, "canceled": canceled, "starts_at": "2026-01-02T10:00:00"})
}

/// A payload as the extension sends it for appointment `id` being canceled.
pub fn change_payload(id: i64) -> String {
    json!({
        "id": id,
        "old": row(id, false),
        "new": row(id, true),
        "op": "UPDATE",
        "schema": "public",
        "table": "appointments",
        "changed": ["canceled"],
    })
    .to_string()
}

/// Asserts that `change` is the one `change_payload(id)` describes.
pub fn assert_change(change: &Change, id: i64) {
    assert_eq!(change.id, json!(id));
    assert_eq!(change.old, Some(row(id, false)));
    assert_eq!(change.new, Some(row(id, true)));
    assert_eq!(change.table.as_deref(), Some("appointments"));
    assert_eq!(change.changed, ["canceled"]);
}
