//! Delivery on a live connection: several listeners, foreign payloads, typed rows.

use std::time::Duration;

use column_notify_listener::{Change, Error, Event, Listener, Op, RawEvent};
use serde::Deserialize;
use serde_json::{json, Value};
use support::*;

#[tokio::test]
async fn two_listeners_on_one_channel_both_receive_every_event() {
    let channel = unique("two");
    let mut first = Listener::connect(&server_url(), [&channel]).await.unwrap();
    let mut second = Listener::connect(&server_url(), [&channel]).await.unwrap();
    let sender = sender().await;
    for id in 1..=200 {
        notify(&sender, &channel, &change_payload(id)).await;
    }
    for listener in [&mut first, &mut second] {
        for id in 1..=200 {
            let change = next_change(listener, &channel).await;
            assert_change(&change, id);
        }
    }
}

#[tokio::test]
async fn garbage_payloads_do_not_stop_the_stream() {
    let channel = unique("garbage");
    let mut listener = Listener::connect(&server_url(), [&channel]).await.unwrap();
    let sender = sender().await;
    let garbage = [
        "not json",
        "[1, 2]",
        r#"{"no_id": 1}"#,
        "",
        r#"{"id": 1, "old": 5}"#,
    ];
    for payload in garbage {
        notify(&sender, &channel, payload).await;
    }
    notify(&sender, &channel, &change_payload(7)).await;
    for payload in garbage {
        match next(&mut listener).await {
            Event::InvalidPayload {
                notification,
                error,
            } => {
                assert_eq!(notification.payload, payload);
                assert_eq!(notification.channel, channel);
                assert!(!error.is_empty());
            }
            other => panic!("expected an invalid payload for {payload:?}, got {other:?}"),
        }
    }
    let change = next_change(&mut listener, &channel).await;
    assert_change(&change, 7);
}

#[derive(Debug, Deserialize, PartialEq)]
struct Appointment {
    id: i64,
    canceled: bool,
}

#[tokio::test]
async fn a_batch_is_one_event_per_change_and_keeps_its_order() {
    let channel = unique("batch");
    let mut listener = Listener::connect(&server_url(), [&channel]).await.unwrap();
    let sender = sender().await;
    let changes: Vec<Value> = (1..=5)
        .map(|id| serde_json::from_str(&change_payload(id)).unwrap())
        .chain([json!({"id": 6, "old": "not a row"}), json!({"id": 7})])
        .collect();
    notify(
        &sender,
        &channel,
        &json!({ "changes": changes }).to_string(),
    )
    .await;

    // Two changes as JSON values, then the row type changes halfway through the batch.
    for id in 1..=2 {
        assert_change(&next_change(&mut listener, &channel).await, id);
    }
    let mut listener = listener.typed::<Appointment>();
    for id in 3..=5 {
        match listener
            .recv_timeout(Duration::from_secs(10))
            .await
            .unwrap()
        {
            Event::Change { change, .. } => {
                assert_eq!(change.id, id);
                assert!(change.new.unwrap().canceled);
            }
            other => panic!("expected change {id}, got {other:?}"),
        }
    }
    match listener
        .recv_timeout(Duration::from_secs(10))
        .await
        .unwrap()
    {
        Event::InvalidPayload {
            notification,
            error,
        } => {
            assert_eq!(notification.channel, channel);
            assert!(error.contains("`old`"), "{error}");
        }
        other => panic!("expected the bad element, got {other:?}"),
    }
    match listener
        .recv_timeout(Duration::from_secs(10))
        .await
        .unwrap()
    {
        Event::Change { change, .. } => {
            assert_eq!((change.id, change.old.is_none()), (json!(7), true))
        }
        other => panic!("expected change 7, got {other:?}"),
    }
    assert!(matches!(
        listener.recv_timeout(Duration::from_millis(200)).await,
        Err(Error::Timeout(_))
    ));
}

#[tokio::test]
async fn typed_rows_and_every_key_of_the_contract() {
    let channel = unique("typed");
    let mut listener = Listener::connect(&server_url(), [&channel])
        .await
        .unwrap()
        .typed::<Appointment>();
    let sender = sender().await;
    // The reference trigger's shape: only id, old and new.
    notify(
        &sender,
        &channel,
        &json!({"id": 1, "old": row(1, false), "new": row(1, true)}).to_string(),
    )
    .await;
    // Everything the extension may add, plus a key from a later version.
    let full = json!({
        "id": {"clinic": 3, "number": 9}, "new_id": {"clinic": 3, "number": 10},
        "old": {"id": 9, "canceled": false}, "new": {"id": 10, "canceled": false},
        "op": "UPDATE", "schema": "booking", "table": "slots", "changed": ["number"],
        "event_id": 42, "added_in_a_later_version": true,
    });
    notify(&sender, &channel, &full.to_string()).await;
    // A reduced payload: no rows.
    let truncated = json!({"id": 5, "op": "DELETE", "truncated": true, "changed": []});
    notify(&sender, &channel, &truncated.to_string()).await;

    let mut changes = Vec::new();
    for _ in 0..3 {
        match listener
            .recv_timeout(Duration::from_secs(10))
            .await
            .unwrap()
        {
            Event::Change { change, .. } => changes.push(*change),
            other => panic!("expected a change, got {other:?}"),
        }
    }
    assert_eq!(changes[0].id, json!(1));
    assert_eq!(
        changes[0].old,
        Some(Appointment {
            id: 1,
            canceled: false
        })
    );
    assert_eq!(
        changes[0].new,
        Some(Appointment {
            id: 1,
            canceled: true
        })
    );
    assert_eq!(changes[0].op, None);

    assert_eq!(changes[1].id, json!({"clinic": 3, "number": 9}));
    assert_eq!(changes[1].new_id, Some(json!({"clinic": 3, "number": 10})));
    assert_eq!(changes[1].key(), r#"{"clinic":3,"number":9}"#);
    assert_eq!(changes[1].op, Some(Op::Update));
    assert_eq!(changes[1].schema.as_deref(), Some("booking"));
    assert_eq!(changes[1].changed, ["number"]);
    assert_eq!(changes[1].event_id, Some(42));
    assert_eq!(
        changes[1].new,
        Some(Appointment {
            id: 10,
            canceled: false
        })
    );

    assert!(changes[2].truncated);
    assert_eq!(changes[2].op, Some(Op::Delete));
    assert_eq!(
        (changes[2].old.as_ref(), changes[2].new.as_ref()),
        (None, None)
    );
}

#[tokio::test]
async fn several_channels_with_names_that_need_quoting() {
    let plain = unique("plain");
    let odd = format!("Odd \"{}\" é", unique("q"));
    let mut listener = Listener::builder(server_url())
        .channels([&plain, &odd])
        .connect()
        .await
        .unwrap();
    assert_eq!(listener.channels(), [plain.clone(), odd.clone()]);
    let sender = sender().await;
    notify(&sender, &odd, &change_payload(1)).await;
    notify(&sender, &plain, &change_payload(2)).await;
    assert_change(&next_change(&mut listener, &odd).await, 1);
    assert_change(&next_change(&mut listener, &plain).await, 2);
}

#[tokio::test]
async fn raw_listener_yields_any_payload_as_text() {
    let channel = unique("raw");
    let mut listener = Listener::builder(server_url())
        .channel(&channel)
        .connect_raw()
        .await
        .unwrap();
    let sender = sender().await;
    notify(&sender, &channel, "plain text, not ours").await;
    match listener
        .recv_timeout(Duration::from_secs(10))
        .await
        .unwrap()
    {
        RawEvent::Notification(notification) => {
            assert_eq!(notification.payload, "plain text, not ours");
            assert!(notification.process_id > 0);
        }
        other => panic!("expected a notification, got {other:?}"),
    }
}

#[tokio::test]
async fn quiet_channels_time_out_and_bad_settings_are_refused() {
    let channel = unique("quiet");
    let mut listener = Listener::connect(&server_url(), [&channel]).await.unwrap();
    let waited = listener.recv_timeout(Duration::from_millis(200)).await;
    assert!(matches!(waited, Err(Error::Timeout(_))), "{waited:?}");

    let long = "x".repeat(64);
    let refused = Listener::connect(&server_url(), [long]).await;
    assert!(matches!(refused, Err(Error::InvalidChannel { .. })));
    let unreachable = Listener::connect("postgres://postgres@127.0.0.1:1/postgres", ["c"]).await;
    assert!(matches!(unreachable, Err(Error::Connect(_))));
    let no_root = format!(
        "{}?sslmode=verify-full&sslrootcert=/nonexistent/ca.crt",
        server_url()
    );
    let tls_refused = Listener::connect(&no_root, ["c"]).await;
    let message = tls_refused.unwrap_err().to_string();
    assert!(
        message.starts_with("TLS: cannot read sslrootcert \"/nonexistent/ca.crt\""),
        "{message}"
    );
}

#[tokio::test]
async fn the_change_type_reads_payloads_directly() {
    let change: Change = Change::from_payload(&change_payload(3)).unwrap();
    assert_change(&change, 3);
}

#[tokio::test]
async fn try_recv_takes_what_is_waiting_and_never_waits() {
    let channel = unique("try_recv");
    let mut listener = Listener::connect(&server_url(), [&channel]).await.unwrap();
    assert!(
        listener.try_recv().is_none(),
        "nothing sent, nothing waiting"
    );
    let sender = sender().await;
    let batch = format!(
        r#"{{"changes":[{},{}]}}"#,
        change_payload(1),
        change_payload(2)
    );
    notify(&sender, &channel, &batch).await;
    notify(&sender, &channel, &change_payload(3)).await;
    assert_change(&next_change(&mut listener, &channel).await, 1);
    // The rest of the batch is waiting already; the next notification soon is.
    let mut ids = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while ids.len() < 2 && std::time::Instant::now() < deadline {
        match listener.try_recv() {
            Some(Event::Change { change, .. }) => ids.push(change.id.as_i64().unwrap()),
            Some(other) => panic!("expected a change, got {other:?}"),
            None => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    assert_eq!(ids, [2, 3]);
    assert!(listener.try_recv().is_none());
}
