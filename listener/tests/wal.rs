//! WAL watches (`delivery => 'wal'`) read by `WalConsumer` from a replication slot: every
//! committed change once, in commit order, nothing rolled back (8 concurrent writers with
//! savepoints and rollbacks); consumers of two names independent of each other; what is
//! confirmed is not sent again; refusals; the slot dropped with its consumer.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use column_notify_listener::tokio_postgres::Client;
use column_notify_listener::{
    connect_client, Error, TlsVerification, WalConsumer, WalEvent, WalPosition,
};
use support::*;

const KEYS: i32 = 40;

/// One received change: where it is, where its transaction ends, and (row id, version).
type Received = (WalPosition, WalPosition, (i32, i32));

async fn consumer(db: &DurableDatabase, name: &str) -> WalConsumer {
    WalConsumer::builder(&db.url, name)
        .channel("items")
        .backoff(quick_backoff())
        .connect()
        .await
        .unwrap()
}

/// The next `count` changes, each acknowledged once received when `acknowledge`.
async fn receive(consumer: &mut WalConsumer, count: usize, acknowledge: bool) -> Vec<Received> {
    let mut received = Vec::new();
    while received.len() < count {
        match consumer.recv_timeout(Duration::from_secs(20)).await {
            Ok(WalEvent::Change { change, message }) => {
                assert_eq!(message.channel, "items");
                let new = serde_json::json!({"new": change.new});
                received.push((message.position, message.commit_end, item_version(&new)));
                if acknowledge {
                    consumer.ack(&message);
                }
            }
            other => panic!(
                "expected a change after {} received, got {other:?}",
                received.len()
            ),
        }
    }
    received
}

async fn assert_quiet(consumer: &mut WalConsumer) {
    match consumer.recv_timeout(Duration::from_millis(700)).await {
        Err(Error::Timeout(_)) => {}
        other => panic!("expected nothing more, got {other:?}"),
    }
}

/// Checks that changes come in commit order (positions and commits grow; a transaction's
/// changes together) and each row's versions one after the other.
fn assert_commit_order(received: &[Received]) {
    for pair in received.windows(2) {
        assert!(pair[0].1 <= pair[1].1, "commits in order: {pair:?}");
        if pair[0].1 == pair[1].1 {
            assert!(
                pair[0].0 < pair[1].0,
                "a transaction's changes in order: {pair:?}"
            );
        }
    }
    let mut last = HashMap::new();
    for &(position, _, (id, version)) in received {
        let previous = last.insert(id, version).unwrap_or(0);
        assert_eq!(
            version,
            previous + 1,
            "row {id} at {position}: version after {previous}"
        );
    }
}

/// Transactions that keep one change, roll one back to a savepoint, sometimes keep a third,
/// and one in seven rolled back whole.
async fn write_with_rollbacks(url: String, seed: u64, transactions: usize) {
    let client = connect_client(&url, &TlsVerification::default())
        .await
        .unwrap();
    let mut random = Xorshift::new(seed);
    for round in 0..transactions {
        // Rows locked in increasing order: writers never deadlock.
        let mut ids: Vec<i64> = (0..3)
            .map(|_| random.below(KEYS as u64) as i64 + 1)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let bump = |id: i64| format!("UPDATE items SET version = version + 1 WHERE id = {id};");
        let mut sql = format!("BEGIN; {}", bump(ids[0]));
        if let Some(&rolled_back) = ids.get(1) {
            sql += &format!(
                "SAVEPOINT s; {} ROLLBACK TO SAVEPOINT s;",
                bump(rolled_back)
            );
        }
        if let Some(&kept) = ids.get(2).filter(|_| round % 3 == 0) {
            sql += &bump(kept);
        }
        sql += if round % 7 == 0 {
            "ROLLBACK;"
        } else {
            "COMMIT;"
        };
        client.batch_execute(&sql).await.unwrap();
    }
}

async fn committed_count(client: &Client) -> usize {
    let row = client
        .query_one("SELECT sum(version)::int8 FROM items", &[])
        .await
        .unwrap();
    row.get::<_, i64>(0) as usize
}

async fn slot_confirmed(client: &Client, slot: &str) -> Option<WalPosition> {
    let row = client
        .query_one(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .ok()?;
    row.get::<_, Option<String>>(0)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_writers_with_rollbacks_every_committed_change_once_in_commit_order() {
    let db = DurableDatabase::create_wal("writers", KEYS).await;
    let mut consumer = consumer(&db, "writers").await;
    let writers: Vec<_> = (1..=8)
        .map(|seed| tokio::spawn(write_with_rollbacks(db.url.clone(), seed, 60)))
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let committed = db.committed().await;
    let received = receive(&mut consumer, committed.len(), true).await;
    assert_quiet(&mut consumer).await;

    assert_commit_order(&received);
    let changes: Vec<(i32, i32)> = received.iter().map(|r| r.2).collect();
    let unique: BTreeSet<(i32, i32)> = changes.iter().copied().collect();
    assert_eq!(unique.len(), changes.len(), "no change twice");
    assert_eq!(unique, committed, "exactly the committed changes");
    assert!(committed.len() > 300, "{} changes", committed.len());
}

#[tokio::test]
async fn two_consumers_read_independently_and_what_is_confirmed_is_not_sent_again() {
    let db = DurableDatabase::create_wal("two", KEYS).await;
    let mut first = consumer(&db, "first").await;
    let mut second = consumer(&db, "second").await;
    db.client
        .batch_execute("UPDATE items SET version = version + 1 WHERE id <= 10")
        .await
        .unwrap();
    let by_first = receive(&mut first, 10, true).await;
    let by_second = receive(&mut second, 10, false).await;
    assert_eq!(by_first, by_second, "the same messages, for each name");
    // One transaction: one commit for all ten.
    assert!(by_first.iter().all(|r| r.1 == by_first[0].1));
    assert_eq!(first.confirmed(), by_first[0].1);

    // The confirmation reaches the server with the next status update.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        slot_confirmed(&db.client, first.slot()).await,
        Some(by_first[0].1)
    );
    first.close().await;
    second.close().await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Again under the same names: the first resumes after what it confirmed, the second
    // gets again what it never acknowledged.
    let mut first = consumer(&db, "first").await;
    let mut second = consumer(&db, "second").await;
    assert_eq!(receive(&mut second, 10, true).await, by_second);
    assert_quiet(&mut first).await;
    db.client
        .batch_execute("UPDATE items SET version = version + 1 WHERE id = 1")
        .await
        .unwrap();
    let next = receive(&mut first, 1, true).await;
    assert_eq!(next[0].2, (1, 2));
    assert_eq!(receive(&mut second, 1, true).await, next);
    first.close().await;
    second.close().await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Dropping a consumer drops its slot, and only its own.
    let tls = TlsVerification::default();
    assert!(WalConsumer::drop_consumer(&db.url, "first", &tls)
        .await
        .unwrap());
    assert_eq!(
        slot_confirmed(&db.client, "column_notify_first").await,
        None
    );
    assert!(slot_confirmed(&db.client, "column_notify_second")
        .await
        .is_some());
    assert!(!WalConsumer::drop_consumer(&db.url, "first", &tls)
        .await
        .unwrap());
    assert!(WalConsumer::drop_consumer(&db.url, "second", &tls)
        .await
        .unwrap());
}

#[tokio::test]
async fn rolled_back_changes_and_other_channels_are_never_seen() {
    let db = DurableDatabase::create_wal("others", KEYS).await;
    db.client
        .batch_execute(
            "CREATE TABLE other (id int PRIMARY KEY, v int);
             INSERT INTO other VALUES (1, 0);
             SELECT watch_column('other', 'v', 'other', delivery => 'wal');",
        )
        .await
        .unwrap();
    let mut consumer = consumer(&db, "picky").await;
    db.client
        .batch_execute(
            "BEGIN; UPDATE items SET version = 1 WHERE id = 1; ROLLBACK;
             UPDATE other SET v = 1;
             SELECT pg_logical_emit_message(true, 'pg_column_notify:elsewhere', '{}');
             SELECT pg_logical_emit_message(false, 'pg_column_notify:items', '{\"id\":0}');
             UPDATE items SET version = 1 WHERE id = 2;",
        )
        .await
        .unwrap();
    let received = receive(&mut consumer, 1, true).await;
    assert_eq!(received[0].2, (2, 1));
    assert_quiet(&mut consumer).await;
    consumer.close().await;
}

#[tokio::test]
async fn consumers_of_what_is_not_a_wal_watch_are_refused() {
    let db = DurableDatabase::create("not_wal", 1).await;
    let refused = |builder: column_notify_listener::WalConsumerBuilder| async move {
        builder.connect().await.expect_err("refused")
    };
    let error = refused(WalConsumer::builder(&db.url, "reader").channel("items")).await;
    assert!(
        matches!(&error, Error::NotWal { channel, watched: true } if channel == "items"),
        "{error}"
    );
    let error = refused(WalConsumer::builder(&db.url, "reader").channel("nothing")).await;
    assert!(
        matches!(error, Error::NotWal { watched: false, .. }),
        "{error}"
    );
    for name in ["", "Upper", "with-dash", &"x".repeat(50)] {
        let error = refused(WalConsumer::builder(&db.url, name).channel("items")).await;
        assert!(
            matches!(error, Error::InvalidConsumer(_)),
            "{name:?}: {error}"
        );
    }
    let error = refused(WalConsumer::builder(&db.url, "reader")).await;
    assert!(matches!(error, Error::NoChannel), "{error}");
    // Nothing was made for refused consumers.
    let slots = db
        .client
        .query_one(
            "SELECT count(*) FROM pg_replication_slots WHERE database = current_database()",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(slots.get::<_, i64>(0), 0);
}

#[tokio::test]
async fn a_backlog_waits_in_the_slot_while_no_consumer_runs() {
    let db = DurableDatabase::create_wal("backlog", KEYS).await;
    // The first run makes the slot; the changes after it wait there.
    consumer(&db, "later").await.close().await;
    for _ in 0..5 {
        db.client
            .batch_execute("UPDATE items SET version = version + 1")
            .await
            .unwrap();
    }
    let count = committed_count(&db.client).await;
    let mut consumer = consumer(&db, "later").await;
    let received = receive(&mut consumer, count, true).await;
    assert_commit_order(&received);
    assert_quiet(&mut consumer).await;
    consumer.close().await;
}
