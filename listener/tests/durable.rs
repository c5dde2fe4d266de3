//! The durable consumer against a real durable watch: replay then live changes in event-id
//! order, acknowledgements and what comes again, batches without acknowledgements, an event
//! committed after a later one, payloads too large for a notification.

use std::time::Duration;

use column_notify_listener::{DurableConsumer, DurableEvent, Error, StreamExt};
use serde::Deserialize;
use support::*;

/// A consumer of `items` that reads `batch` events at a time and polls only every minute,
/// so that what it receives in time came through notifications.
async fn consumer(db: &DurableDatabase, name: &str, batch: usize) -> DurableConsumer {
    DurableConsumer::builder(&db.url, name, "items")
        .batch_size(batch)
        .poll_interval(Duration::from_secs(60))
        .connect()
        .await
        .unwrap()
}

/// A database of `keys` rows each changed `times` times, a consumer of it, and the changes
/// it received.
async fn backlog(
    name: &str,
    keys: i32,
    times: usize,
    consumer_name: &str,
    batch: usize,
) -> (DurableDatabase, DurableConsumer, Vec<(i64, (i32, i32))>) {
    let db = DurableDatabase::create(name, keys).await;
    bump_all(&db, times).await;
    let mut consumer = consumer(&db, consumer_name, batch).await;
    let received = receive(&mut consumer, keys as usize * times).await;
    (db, consumer, received)
}

/// Increments the version of every row, `times` times, one statement each.
async fn bump_all(db: &DurableDatabase, times: usize) {
    for _ in 0..times {
        db.client
            .batch_execute("UPDATE items SET version = version + 1")
            .await
            .unwrap();
    }
}

/// The next `count` changes as (event_id, (row id, version)).
async fn receive(consumer: &mut DurableConsumer, count: usize) -> Vec<(i64, (i32, i32))> {
    let mut received = Vec::new();
    while received.len() < count {
        match consumer.recv_timeout(Duration::from_secs(10)).await {
            Ok(DurableEvent::Change { change, .. }) => {
                let new = serde_json::json!({"new": change.new});
                received.push((change.event_id.unwrap(), item_version(&new)));
            }
            other => panic!(
                "expected a change after {} received, got {other:?}",
                received.len()
            ),
        }
    }
    received
}

async fn assert_quiet(consumer: &mut DurableConsumer) {
    match consumer.recv_timeout(Duration::from_millis(300)).await {
        Err(Error::Timeout(_)) => {}
        other => panic!("expected nothing more, got {other:?}"),
    }
}

#[tokio::test]
async fn replays_the_backlog_then_follows_live_changes_in_order() {
    let (db, mut consumer, mut received) = backlog("replay", 5, 50, "replayer", 40).await;
    assert_eq!(consumer.buffered_events(), 0);
    assert_quiet(&mut consumer).await;
    bump_all(&db, 3).await;
    received.extend(receive(&mut consumer, 15).await);
    assert_in_order(&received);
    let expected: Vec<_> = (1..=53)
        .flat_map(|v| (1..=5).map(move |id| (id, v)))
        .collect();
    let mut got: Vec<_> = received.iter().map(|(_, change)| *change).collect();
    got.sort_by_key(|&(id, version)| (version, id));
    assert_eq!(got, expected);
    assert_eq!(consumer.last_delivered(), Some(received.last().unwrap().0));
}

#[tokio::test]
async fn acknowledged_events_are_not_delivered_again_and_the_others_are() {
    let (db, mut first, all) = backlog("ack", 4, 5, "billing", 8).await;
    let position = first.ack(all[11].0).await.unwrap();
    assert_eq!(position, all[11].0);
    assert_eq!(
        first.ack(all[3].0).await.unwrap(),
        position,
        "never backward"
    );
    first.close();

    let mut again = consumer(&db, "billing", 8).await;
    assert_eq!(receive(&mut again, 8).await, all[12..]);
    assert_quiet(&mut again).await;
    assert_eq!(again.ack_delivered().await.unwrap(), Some(all[19].0));
    assert_eq!(again.ack_delivered().await.unwrap(), None);

    let mut other = consumer(&db, "audit", 8).await;
    assert_eq!(
        receive(&mut other, 20).await,
        all,
        "each name has its own position"
    );
}

#[tokio::test]
async fn without_acknowledgements_each_event_still_comes_once() {
    let (db, mut consumer, received) = backlog("no_ack", 7, 5, "forgetful", 10).await;
    assert_in_order(&received);
    assert_quiet(&mut consumer).await;
    bump_all(&db, 1).await;
    assert_in_order(&[received, receive(&mut consumer, 7).await].concat());
    assert_quiet(&mut consumer).await;
}

#[tokio::test]
async fn an_event_committed_after_a_later_one_comes_first_once_committed() {
    let db = DurableDatabase::create("out_of_order", 2).await;
    let mut consumer = consumer(&db, "ordered", 100).await;
    let early = connect_client_to(&db.url).await;
    // The first writer takes the smaller event id and stays open; the second commits.
    early
        .batch_execute("BEGIN; UPDATE items SET version = version + 1 WHERE id = 1")
        .await
        .unwrap();
    db.client
        .batch_execute("UPDATE items SET version = version + 1 WHERE id = 2")
        .await
        .unwrap();
    assert_quiet(&mut consumer).await;
    early.batch_execute("COMMIT").await.unwrap();
    let received = tokio::time::timeout(Duration::from_secs(2), receive(&mut consumer, 2))
        .await
        .expect("woken by the notification, not by the minute's poll");
    assert_eq!(
        received
            .iter()
            .map(|(_, change)| *change)
            .collect::<Vec<_>>(),
        [(1, 1), (2, 1)]
    );
    assert!(received[0].0 < received[1].0);
}

#[derive(Debug, Deserialize)]
struct Item {
    id: i32,
    version: i32,
    value: String,
}

#[tokio::test]
async fn rows_too_large_for_a_notification_come_in_full_from_the_log() {
    let db = DurableDatabase::create("oversize", 1).await;
    let mut consumer = consumer(&db, "typed", 10).await.typed::<Item>();
    db.client
        .batch_execute("UPDATE items SET version = 1, value = repeat('x', 20000)")
        .await
        .unwrap();
    match consumer
        .recv_timeout(Duration::from_secs(10))
        .await
        .unwrap()
    {
        DurableEvent::Change { change, .. } => {
            assert!(!change.truncated);
            let new = change.new.as_ref().unwrap();
            assert_eq!((new.id, new.version, new.value.len()), (1, 1, 20000));
            assert_eq!(change.old.as_ref().unwrap().version, 0);
        }
        other => panic!("expected the change, got {other:?}"),
    }
}

#[tokio::test]
async fn a_batched_durable_watch_is_followed_live() {
    let db = DurableDatabase::create("batched", 40).await;
    db.client
        .batch_execute(
            "SELECT watch_column('items', 'version', 'items', durable => true, batch => true)",
        )
        .await
        .unwrap();
    let mut consumer = consumer(&db, "batched", 25).await;
    assert_quiet(&mut consumer).await;
    bump_all(&db, 3).await;
    // The consumer polls once a minute: these come in time through the batches' wake-ups.
    let received = receive(&mut consumer, 120).await;
    assert_in_order(&received);
    let expected: Vec<(i32, i32)> = (1..=3)
        .flat_map(|version| (1..=40).map(move |id| (id, version)))
        .collect();
    let got: Vec<(i32, i32)> = received.iter().map(|(_, item)| *item).collect();
    assert_eq!(got, expected);
    assert_quiet(&mut consumer).await;
}

#[tokio::test]
async fn settings_and_server_errors_are_reported() {
    let refused = DurableConsumer::builder(server_url(), "c", "items")
        .batch_size(0)
        .connect()
        .await;
    assert!(matches!(refused, Err(Error::InvalidBatchSize(0))));
    // A database without the extension: the first read says so.
    let mut consumer = DurableConsumer::connect(&server_url(), "c", unique("none"))
        .await
        .unwrap();
    match consumer.recv().await {
        Err(Error::Query(error)) => assert_eq!(
            error.as_db_error().map(|db| db.message()),
            Some("schema \"column_notify\" does not exist"),
            "{error:?}"
        ),
        other => panic!("expected a query error, got {other:?}"),
    }
}

#[tokio::test]
async fn the_consumer_is_a_stream_whose_cancelled_reads_lose_nothing() {
    let db = DurableDatabase::create("stream", 6).await;
    let mut stream = consumer(&db, "streamer", 4).await;
    // Reads cut short while the log is empty (a timeout drops them) go on at the next call.
    for _ in 0..3 {
        let cut = tokio::time::timeout(Duration::from_millis(50), stream.next()).await;
        assert!(cut.is_err(), "{cut:?}");
    }
    bump_all(&db, 2).await;
    let mut received = Vec::new();
    while received.len() < 12 {
        // A timeout that fires mid-read also drops the read: nothing is lost to it.
        let Ok(next) = tokio::time::timeout(Duration::from_millis(1), stream.next()).await else {
            continue;
        };
        match next {
            Some(Ok(DurableEvent::Change { change, .. })) => {
                let event_id = change.event_id.unwrap();
                received.push(event_id);
                if stream.buffered_events() == 0 {
                    assert_eq!(stream.ack(event_id).await.unwrap(), event_id);
                }
            }
            other => panic!("expected a change, got {other:?}"),
        }
    }
    let mut sorted = received.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(received, sorted, "each event once, in id order");
    assert_eq!(stream.last_delivered(), received.last().copied());
    assert_quiet(&mut stream).await;
    // Everything was acknowledged: the next consumer of the name starts after it.
    drop(stream);
    let mut again = consumer(&db, "streamer", 4).await;
    assert_quiet(&mut again).await;
}
