//! What the integration tests share: the server's URL, unique channels, a sender
//! connection that plays the extension's part with `pg_notify`, and payloads shaped like the
//! extension's.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use column_notify_listener::tokio_postgres::Client;
use column_notify_listener::{connect_client, Change, Event, Listener, TlsVerification};
use serde_json::{json, Value};

/// The server, from `DATABASE_URL`.
pub fn database_url() -> String {
    std::env::var("DATABASE_URL").expect(
        "DATABASE_URL is not set: point it at a PostgreSQL server \
         (for the project's cluster: DATABASE_URL=$(bash scripts/cluster.sh url))",
    )
}

/// `DATABASE_URL` with an application name, to find the listener's backend.
pub fn url_named(application_name: &str) -> String {
    let url = database_url();
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}application_name={application_name}")
}

/// A name no other test (or test run) uses.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "cnl_{prefix}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A plain connection for sending notifications and running queries.
pub async fn sender() -> Client {
    connect_client(&database_url(), &TlsVerification::default())
        .await
        .expect("sender connection")
}

/// `SELECT pg_notify(channel, payload)`, committed.
pub async fn notify(client: &Client, channel: &str, payload: &str) {
    client
        .execute("SELECT pg_notify($1, $2)", &[&channel, &payload])
        .await
        .expect("pg_notify");
}

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

/// The next event, within 10 s.
pub async fn next(listener: &mut Listener) -> Event {
    listener
        .recv_timeout(Duration::from_secs(10))
        .await
        .expect("an event within 10 s")
}

/// The next event, which must be a change on `channel`.
pub async fn next_change(listener: &mut Listener, channel: &str) -> Change {
    match next(listener).await {
        Event::Change {
            channel: received,
            change,
        } => {
            assert_eq!(received, channel);
            *change
        }
        other => panic!("expected a change, got {other:?}"),
    }
}

/// Skips connection events until `Reconnected`, checking that the gap is reported: first
/// `Lost`, then only failed attempts, then `Reconnected { may_have_missed: true }`.
pub async fn expect_gap(listener: &mut Listener, within: Duration) {
    use column_notify_listener::ConnectionEvent;
    let mut lost = false;
    loop {
        let event = listener
            .recv_timeout(within)
            .await
            .expect("the gap is reported in time");
        match event {
            Event::Connection(ConnectionEvent::Lost { error }) => {
                assert!(!lost, "one loss reported once");
                assert!(!error.is_empty());
                lost = true;
            }
            Event::Connection(ConnectionEvent::ReconnectFailed { attempt, .. }) => {
                assert!(lost, "attempts come after the loss");
                assert!(attempt >= 1);
            }
            Event::Connection(ConnectionEvent::Reconnected {
                may_have_missed,
                attempts,
                ..
            }) => {
                assert!(lost, "the loss is reported before the reconnection");
                assert!(may_have_missed);
                assert!(attempts >= 1);
                return;
            }
            other => panic!("expected connection events, got {other:?}"),
        }
    }
}

/// A listener on `channel` that retries quickly (50 ms doubling to 500 ms), with the
/// given health check, shown working with change 1; and the sender that proved it.
pub async fn reconnecting_listener(
    url: String,
    channel: &str,
    health: column_notify_listener::HealthCheck,
) -> (Listener, Client) {
    use column_notify_listener::Backoff;
    let mut listener = Listener::builder(url)
        .channel(channel)
        .health_check(health)
        .backoff(Backoff::new(
            Duration::from_millis(50),
            Duration::from_millis(500),
        ))
        .connect()
        .await
        .unwrap();
    let sender = sender().await;
    notify(&sender, channel, &change_payload(1)).await;
    assert_change(&next_change(&mut listener, channel).await, 1);
    (listener, sender)
}

/// Sends changes `ids` and checks they all arrive, in order.
pub async fn round_trip(
    listener: &mut Listener,
    sender: &Client,
    channel: &str,
    ids: std::ops::RangeInclusive<i64>,
) {
    for id in ids.clone() {
        notify(sender, channel, &change_payload(id)).await;
    }
    for id in ids {
        assert_change(&next_change(listener, channel).await, id);
    }
}
