//! The whole server restarted while writers commit to a WAL watch: the consumer reconnects
//! by itself, resumes from its slot and receives every committed change, reporting the
//! reconnection without a gap. The restart command comes from `PGCN_RESTART_CMD`; without
//! it the test is skipped.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use column_notify_listener::{ConnectionEvent, WalConsumer, WalEvent};
use support::*;

const KEYS: i32 = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wal_consumer_loses_nothing_across_a_server_restart() {
    let Some(restart) = restart_command() else {
        return;
    };
    let db = DurableDatabase::create_wal("restart", KEYS).await;
    let mut consumer = WalConsumer::builder(&db.url, "survivor")
        .channel("items")
        .backoff(quick_backoff())
        .connect()
        .await
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writers = tokio::spawn({
        let (url, stop) = (db.url.clone(), Arc::clone(&stop));
        async move { write_concurrently(&url, 2, usize::MAX, KEYS, stop).await }
    });
    let (events, mut received) = tokio::sync::mpsc::unbounded_channel();
    let consuming = tokio::spawn(async move {
        loop {
            let event = consumer.recv().await.expect("no error, only reconnections");
            if let WalEvent::Change { message, .. } = &event {
                consumer.ack(message);
            }
            if events.send(event).is_err() {
                return;
            }
        }
    });

    tokio::time::sleep(Duration::from_millis(700)).await;
    restart_server(restart).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, Ordering::Relaxed);
    writers.await.unwrap();
    let committed = db_after_restart(&db.url).await.committed().await;

    let mut changes = BTreeSet::new();
    let mut connection = Vec::new();
    while changes.len() < committed.len() {
        let event = tokio::time::timeout(Duration::from_secs(30), received.recv())
            .await
            .unwrap_or_else(|_| panic!("{} of {} changes received", changes.len(), committed.len()))
            .unwrap();
        match event {
            WalEvent::Change { change, .. } => {
                let change = item_version(&serde_json::json!({"new": change.new}));
                assert!(committed.contains(&change), "{change:?} was not committed");
                changes.insert(change);
            }
            WalEvent::Connection(event) => connection.push(event),
            WalEvent::InvalidPayload { error, .. } => panic!("{error}"),
        }
    }
    consuming.abort();
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
    assert_eq!(changes, committed);
    db.drop_wal_consumer("survivor").await;
}
