//! Writes the notification payload: `id`, `old` and `new` as the reference plpgsql trigger
//! sends them (`row_to_json` renderings), plus the documented metadata keys unless the watch
//! leaves them out (`metadata => false`), and `event_id`, `new_id`, `truncated` where they
//! apply. A payload that
//! would reach PostgreSQL's size limit is reduced instead of failing the write.

use std::ops::Range;

use crate::pg::datum_image::Images;
use crate::row::plan::{ColumnPlan, TriggerPlan};
use crate::row::row_values::RowValues;
use crate::row::scratch::CallScratch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Insert,
    Update,
    Delete,
}

impl Operation {
    /// Which row images the operation has: (old, new).
    pub fn images(self) -> (bool, bool) {
        match self {
            Self::Update => (true, true),
            Self::Insert => (false, true),
            Self::Delete => (true, false),
        }
    }

    /// The `op` member, written as is on every row.
    fn member(self) -> &'static [u8] {
        match self {
            Self::Insert => br#""op":"INSERT""#,
            Self::Update => br#""op":"UPDATE""#,
            Self::Delete => br#""op":"DELETE""#,
        }
    }
}

/// One change to report (the watched columns that changed are in [`TriggerPlan::changed`]).
pub struct Change {
    pub operation: Operation,
    pub has_old: bool,
    pub has_new: bool,
    pub key_changed: bool,
}

/// Renders the full payload of `change` into the plan's buffer (no size limit yet: this is
/// what a durable watch stores); `delivery::deliver` then fits it to a notification.
///
/// # Safety
/// The scratch's `old`/`new` rows must hold the tuples of this trigger call.
pub unsafe fn render(
    plan: &mut TriggerPlan,
    scratch: &mut CallScratch,
    change: &Change,
    event_id: Option<i64>,
) {
    let TriggerPlan {
        metadata,
        table_members,
        columns,
        shown,
        watched,
        key,
        ..
    } = plan;
    let CallScratch {
        changed,
        old,
        new,
        payload,
        old_spans,
        cut_points,
        ..
    } = scratch;
    payload.clear();
    let identity_row = if change.has_old { &*old } else { &*new };

    payload.push(b'{');
    if *metadata {
        payload.extend_from_slice(change.operation.member());
    }
    if let Some(event_id) = event_id {
        push_key(payload, br#""event_id":"#);
        payload.extend_from_slice(itoa::Buffer::new().format(event_id).as_bytes());
    }
    cut_points.operation_end = payload.len();
    if *metadata {
        payload.push(b',');
        payload.extend_from_slice(table_members);
    }
    cut_points.table_end = payload.len();

    push_key(payload, br#""id":"#);
    // SAFETY: the rows hold this call's tuples (the caller's obligation), as below.
    unsafe { push_row_key(payload, columns, key, identity_row) };
    if change.key_changed {
        payload.extend_from_slice(br#","new_id":"#);
        // SAFETY: as above.
        unsafe { push_row_key(payload, columns, key, new) };
    }
    cut_points.identity_end = payload.len();

    if *metadata {
        payload.extend_from_slice(br#","changed":["#);
        for (n, &position) in changed.iter().enumerate() {
            if n > 0 {
                payload.push(b',');
            }
            payload.extend_from_slice(&columns[watched[position].column].name_json);
        }
        payload.push(b']');
    }
    cut_points.changed_end = payload.len();

    payload.extend_from_slice(br#","old":"#);
    old_spans.clear();
    if change.has_old {
        // SAFETY: as above.
        unsafe { push_row(payload, columns, shown, old, Some(old_spans), None) };
    } else {
        payload.extend_from_slice(b"null");
    }
    payload.extend_from_slice(br#","new":"#);
    if change.has_new {
        let reuse = change.has_old.then_some((&*old, old_spans.as_slice()));
        // SAFETY: as above.
        unsafe { push_row(payload, columns, shown, new, None, reuse) };
    } else {
        payload.extend_from_slice(b"null");
    }
    payload.push(b'}');
}

/// Starts a member of the payload object: after a comma, unless it is the first member.
fn push_key(payload: &mut Vec<u8>, key: &[u8]) {
    if payload.len() > 1 {
        payload.push(b',');
    }
    payload.extend_from_slice(key);
}

/// `row_to_json` of a row: its shown columns (all of them unless the watch shapes the
/// payload), in table order. The span of each value is
/// appended to `spans`, when given. With `reuse` (the old row and its spans), a value whose stored
/// image is the old one's is copied from the old rendering instead of rendered again.
unsafe fn push_row(
    out: &mut Vec<u8>,
    columns: &mut [ColumnPlan],
    shown: &[usize],
    row: &RowValues,
    mut spans: Option<&mut Vec<Range<usize>>>,
    reuse: Option<(&RowValues, &[Range<usize>])>,
) {
    out.push(b'{');
    for (n, &position) in shown.iter().enumerate() {
        let column = &mut columns[position];
        if n > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&column.name_json);
        out.push(b':');
        let start = out.len();
        let reusable = reuse.and_then(|(old, old_spans)| {
            let same = match (old.get(column.index), row.get(column.index)) {
                (None, None) => true,
                // SAFETY: both are values of this column, of the storage the plan read for it.
                (Some(a), Some(b)) => (unsafe { column.storage.compare(a, b) }) == Images::Same,
                _ => false,
            };
            same.then(|| old_spans[n].clone())
        });
        match reusable {
            Some(span) => out.extend_from_within(span),
            // SAFETY: the row holds this call's tuple (the caller's obligation).
            None => unsafe { push_value(out, column, row) },
        }
        if let Some(spans) = spans.as_deref_mut() {
            spans.push(start..out.len());
        }
    }
    out.push(b'}');
}

/// The row's key: the value for a one-column key, an object for a composite key, null
/// when the table has no key.
unsafe fn push_row_key(
    out: &mut Vec<u8>,
    columns: &mut [ColumnPlan],
    key: &[usize],
    row: &RowValues,
) {
    match key {
        [] => out.extend_from_slice(b"null"),
        // SAFETY: as in `push_row`.
        [single] => unsafe { push_value(out, &mut columns[*single], row) },
        composite => {
            out.push(b'{');
            for (n, &position) in composite.iter().enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(&columns[position].name_json);
                out.push(b':');
                // SAFETY: as in `push_row`.
                unsafe { push_value(out, &mut columns[position], row) };
            }
            out.push(b'}');
        }
    }
}

unsafe fn push_value(out: &mut Vec<u8>, column: &mut ColumnPlan, row: &RowValues) {
    match row.get(column.index) {
        // SAFETY: a non-null value of the column the encoder was made for.
        Some(value) => unsafe { column.encoder.encode(value, out) },
        None => out.extend_from_slice(b"null"),
    }
}
