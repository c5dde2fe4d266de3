//! Fitting a rendered payload under NOTIFY's size limit: a payload that would reach it is
//! reduced, never refused, so a notification never fails the write.

/// Where a reduced payload may be cut. The members come in the order they are given up:
/// `old` and `new` first, then `changed`, and the key (`id`, `new_id`) only when it alone
/// cannot fit.
#[derive(Debug, Clone, Copy, Default)]
pub struct CutPoints {
    /// After `op` and `event_id` (just after the opening brace when there are neither).
    pub operation_end: usize,
    /// After `schema`, `table`, `partition`.
    pub table_end: usize,
    /// After `id` (and `new_id`).
    pub identity_end: usize,
    /// After `changed`.
    pub changed_end: usize,
}

/// Makes the rendered payload fit a notification: shorter than `limit` bytes (PostgreSQL's
/// limit, or less when the payload goes into a batch). A payload that would reach it is cut
/// after the last part that fits and marked `"truncated":true`: without `old` and `new`,
/// else also without `changed`; a key too long to fit even alone goes too, and
/// `"id_truncated":true` says so.
pub fn fit(payload: &mut Vec<u8>, cut: CutPoints, limit: usize) {
    const TRUNCATED: &[u8] = b"\"truncated\":true}";
    const ID_TRUNCATED: &[u8] = b"\"truncated\":true,\"id_truncated\":true}";
    // No NUL can be inside: JSON escaping writes control characters as \u00XX, and text
    // values (which verbatim json and type outputs are) never hold a NUL byte.
    debug_assert!(!payload.contains(&0));
    if payload.len() < limit {
        return;
    }
    // The cut keeps at least the opening brace; a comma may precede the marker.
    let fits = |end: usize, marker: &[u8]| end + 1 + marker.len() < limit;
    let (keep, marker) = [
        (cut.changed_end, TRUNCATED),
        (cut.identity_end, TRUNCATED),
        (cut.table_end, ID_TRUNCATED),
    ]
    .into_iter()
    .find(|&(end, marker)| fits(end, marker))
    .unwrap_or((cut.operation_end, ID_TRUNCATED));
    payload.truncate(keep);
    if payload.len() > 1 {
        payload.push(b',');
    }
    payload.extend_from_slice(marker);
}
