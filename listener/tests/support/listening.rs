//! Waiting on a listener: the next event or change, a reported gap, and a listener that
//! reconnects quickly, shown working.

use std::time::Duration;

use column_notify_listener::tokio_postgres::Client;
use column_notify_listener::{Backoff, Change, ConnectionEvent, Event, HealthCheck, Listener};

use crate::payloads::{assert_change, change_payload};
use crate::server::{notify, sender};

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

/// A backoff for tests: 50 ms doubling to 500 ms.
pub fn quick_backoff() -> Backoff {
    Backoff::new(Duration::from_millis(50), Duration::from_millis(500))
}

/// A listener on `channel` that retries quickly (50 ms doubling to 500 ms), with the
/// given health check, shown working with change 1; and the sender that proved it.
pub async fn reconnecting_listener(
    url: String,
    channel: &str,
    health: HealthCheck,
) -> (Listener, Client) {
    let mut listener = Listener::builder(url)
        .channel(channel)
        .health_check(health)
        .backoff(quick_backoff())
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
