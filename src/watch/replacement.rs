//! What replacing a watch changes, said with a NOTICE: watching the same columns again with
//! other options replaces the watch, and a silent change (a durable watch turned plain by a
//! call that left `durable` out) would lose its consumers their replay.

use crate::pg::server_text;
use crate::watch::catalog::StoredWatch;
use crate::watch::events::Events;
use crate::watch::spec::WatchSpec;

/// Raises a NOTICE naming each option of `old` that `new` (with `events`) changes; nothing
/// when the watch stays the same.
pub fn report(table: &str, old: &StoredWatch, new: &WatchSpec, events: Events) {
    let changes = changes(old, new, events);
    if changes.is_empty() {
        return;
    }
    pgrx::notice!(
        "{}",
        server_text::for_message(format!(
            "replacing the watch of {table} ({}): {}",
            new.columns.join(", "),
            changes.join(", ")
        ))
    );
}

/// `option before -> after` for each option that differs.
fn changes(old: &StoredWatch, new: &WatchSpec, events: Events) -> Vec<String> {
    let list = |names: &Option<Vec<String>>| match names {
        Some(names) => format!("{{{}}}", names.join(",")),
        None => "none".to_owned(),
    };
    let text = |value: &Option<String>| value.clone().unwrap_or_else(|| "none".to_owned());
    let before = &old.spec;
    let pairs = [
        ("channel", before.channel.clone(), new.channel.clone()),
        (
            "events",
            format!("{{{}}}", old.events.names().join(",")),
            format!("{{{}}}", events.names().join(",")),
        ),
        ("key", list(&before.key), list(&new.key)),
        ("include", list(&before.include), list(&new.include)),
        ("exclude", list(&before.exclude), list(&new.exclude)),
        (
            "durable",
            before.durable.to_string(),
            new.durable.to_string(),
        ),
        (
            "metadata",
            before.metadata.to_string(),
            new.metadata.to_string(),
        ),
        ("batch", before.batch.to_string(), new.batch.to_string()),
        ("filter", text(&before.filter), text(&new.filter)),
        (
            "delivery",
            before.delivery.name().to_owned(),
            new.delivery.name().to_owned(),
        ),
    ];
    pairs
        .into_iter()
        .filter(|(_, before, after)| before != after)
        .map(|(option, before, after)| format!("{option} {before} -> {after}"))
        .collect()
}
