//! The whole server restarted while writers commit to a durable watch: the writers retry,
//! the durable consumer reconnects by itself and receives every committed change (nothing
//! lost), reporting the reconnection. The restart command comes from `PGCN_RESTART_CMD`;
//! without it the test is skipped.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use column_notify_listener::{ConnectionEvent, DurableConsumer, DurableEvent};
use support::*;

const KEYS: i32 = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_consumer_loses_nothing_across_a_server_restart() {
    let Some(restart) = restart_command() else {
        return;
    };
    let db = DurableDatabase::create("restart", KEYS).await;
    let mut consumer = DurableConsumer::builder(&db.url, "survivor", "items")
        .batch_size(200)
        .connection(|connection| connection.backoff(quick_backoff()))
        .connect()
        .await
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writers = tokio::spawn({
        let (url, stop) = (db.url.clone(), Arc::clone(&stop));
        async move { write_concurrently(&url, 2, usize::MAX, KEYS, stop).await }
    });

    // The consumer runs on its own, acknowledging each batch, until told to stop.
    let (events, mut received) = tokio::sync::mpsc::unbounded_channel();
    let consuming = tokio::spawn(async move {
        loop {
            let event = consumer.recv().await.expect("no error, only reconnections");
            if let DurableEvent::Change { change, .. } = &event {
                if consumer.buffered_events() == 0 {
                    consumer.ack(change.event_id.unwrap()).await.unwrap();
                }
            }
            if events.send(event).is_err() {
                return;
            }
        }
    });

    tokio::time::sleep(Duration::from_millis(700)).await;
    let restart_took = restart_server(restart).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, Ordering::Relaxed);
    let written = writers.await.unwrap();
    let committed = db_after_restart(&db.url).await.committed().await;
    let returned: BTreeSet<(i32, i32)> = written.committed.iter().copied().collect();
    assert!(returned.is_subset(&committed));

    let mut run = Vec::new();
    let mut connection = Vec::new();
    let mut missing = committed.clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !missing.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, received.recv()).await {
            Ok(Some(DurableEvent::Change { change, .. })) => {
                let change = (
                    change.event_id.unwrap(),
                    item_version(&serde_json::json!({"new": change.new})),
                );
                missing.remove(&change.1);
                run.push(change);
            }
            Ok(Some(DurableEvent::Connection(event))) => connection.push(event),
            Ok(other) => panic!("unexpected {other:?}"),
            Err(_) => panic!(
                "{} committed changes never received; connection events: {connection:?}",
                missing.len()
            ),
        }
    }
    consuming.abort();
    assert_in_order(&run);
    let printed: BTreeSet<(i32, i32)> = run.iter().map(|(_, change)| *change).collect();
    assert_eq!(printed, committed, "every committed change, nothing else");
    assert!(
        matches!(connection.first(), Some(ConnectionEvent::Lost { .. })),
        "{connection:?}"
    );
    assert!(
        connection.iter().any(|event| matches!(
            event,
            ConnectionEvent::Reconnected {
                may_have_missed: false,
                ..
            }
        )),
        "{connection:?}"
    );
    println!(
        "{} changes committed ({} seen by writers, {} statements failed on the restart), all \
         received; restart took {restart_took:.1?}; connection events: {connection:?}",
        committed.len(),
        written.committed.len(),
        written.failed
    );
}
