//! Channels changed on a running listener: `listen` adds one (its notifications arrive from
//! the moment it returns), `unlisten` removes one, a full buffer does not hold them up, and
//! a reconnection listens to the channels as they are now.

use std::time::Duration;

use column_notify_listener::{Error, Event, Listener};
use support::*;

#[tokio::test]
async fn listen_and_unlisten_while_running_and_after_a_reconnection() {
    let first = unique("first");
    let second = unique("second");
    let name = unique("channels_app");
    let (mut listener, sender) =
        reconnecting_listener(url_named(&name), &first, Default::default()).await;

    listener.listen(&second).await.unwrap();
    listener.listen(&second).await.unwrap();
    assert_eq!(listener.channels(), [first.clone(), second.clone()]);
    notify(&sender, &second, &change_payload(2)).await;
    assert_change(&next_change(&mut listener, &second).await, 2);

    listener.unlisten(&first).await.unwrap();
    notify(&sender, &first, &change_payload(3)).await;
    notify(&sender, &second, &change_payload(4)).await;
    // Only the second channel's change comes: the first's was sent after unlisten.
    assert_change(&next_change(&mut listener, &second).await, 4);
    assert!(matches!(
        listener.recv_timeout(Duration::from_millis(300)).await,
        Err(Error::Timeout(_))
    ));

    // After a reconnection the listener listens to what it listens to now.
    sender
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            &[&name],
        )
        .await
        .unwrap();
    expect_gap(&mut listener, Duration::from_secs(10)).await;
    notify(&sender, &first, &change_payload(5)).await;
    notify(&sender, &second, &change_payload(6)).await;
    assert_change(&next_change(&mut listener, &second).await, 6);
    assert_eq!(listener.channels(), [second]);

    let refused = listener.listen(&"x".repeat(64)).await;
    assert!(
        matches!(refused, Err(Error::InvalidChannel { .. })),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_full_buffer_does_not_hold_up_listen() {
    let busy = unique("busy");
    let added = unique("added");
    let mut listener = Listener::builder(server_url())
        .channel(&busy)
        .buffer(2)
        .connect()
        .await
        .unwrap();
    let sender = sender().await;
    for id in 1..=10 {
        notify(&sender, &busy, &change_payload(id)).await;
    }
    // Nothing is read: the buffer is full and the task holds the rest.
    tokio::time::sleep(Duration::from_millis(200)).await;
    tokio::time::timeout(Duration::from_secs(5), listener.listen(&added))
        .await
        .expect("listen answers while the buffer is full")
        .unwrap();
    notify(&sender, &added, &change_payload(11)).await;
    let mut seen = Vec::new();
    while seen.len() < 11 {
        match listener
            .recv_timeout(Duration::from_secs(10))
            .await
            .unwrap()
        {
            Event::Change { change, .. } => seen.push(change.id.as_i64().unwrap()),
            other => panic!("expected changes, got {other:?}"),
        }
    }
    assert_eq!(seen, (1..=11).collect::<Vec<_>>(), "every change, in order");
}
