//! `column-notify relay` with WAL watches as the source: two channels read from one slot,
//! writers committing (and rolling back) while the relay is SIGKILLed twice and started
//! again. The stream then holds every committed change exactly once, each channel's in
//! commit order, keyed `Nats-Msg-Id: <channel>:<commit>:<position>`, nothing rolled back.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use column_notify_listener::WalPosition;
use support::*;

const KEYS: i32 = 30;

fn start_relay(database: &str, nats: &str) -> (ChildGuard, std::sync::mpsc::Receiver<String>) {
    let (child, _stdout, stderr) = spawn_piped(
        column_notify!()
            .args(["relay", "items", "others", "--consumer", "wal_to_nats"])
            .args(["--nats-url", nats, "--database-url", database]),
    );
    (ChildGuard(child), stderr)
}

fn wait_for_line(stderr: &std::sync::mpsc::Receiver<String>, text: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match stderr.recv_timeout(left) {
            Ok(line) if line.contains(text) => return line,
            Ok(_) => {}
            Err(error) => panic!("no stderr line with {text:?} ({error})"),
        }
    }
}

/// Commits (and rolls back one in four) single-row updates of `table`, paced (20 ms after
/// every 10 commits).
async fn write(url: String, table: &'static str, seed: u64, commits: usize) {
    let client = column_notify_listener::connect_client(&url, &Default::default())
        .await
        .unwrap();
    let mut random = Xorshift::new(seed);
    let mut committed = 0;
    while committed < commits {
        let id = random.below(KEYS as u64) + 1;
        let commit = random.below(4) != 0;
        let end = if commit { "COMMIT" } else { "ROLLBACK" };
        client
            .batch_execute(&format!(
                "BEGIN; UPDATE {table} SET version = version + 1 WHERE id = {id}; {end}"
            ))
            .await
            .unwrap();
        committed += usize::from(commit);
        if committed % 10 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_watches_relayed_exactly_once_in_commit_order_through_relay_kills() {
    let nats = NatsServer::start();
    let db = DurableDatabase::create_wal("relay", KEYS).await;
    db.client
        .batch_execute(&format!(
            "CREATE TABLE others (id int PRIMARY KEY, version int NOT NULL, value text);
             INSERT INTO others SELECT g, 0, '' FROM generate_series(1, {KEYS}) g;
             SELECT watch_column('others', 'version', 'others', delivery => 'wal');"
        ))
        .await
        .unwrap();
    let (mut relay, stderr) = start_relay(&db.url, &nats.url());
    wait_for_line(&stderr, "caught up");
    let mut outputs = vec![stderr];

    let writers: Vec<_> = [("items", 1), ("items", 2), ("others", 3)]
        .into_iter()
        .map(|(table, seed)| tokio::spawn(write(db.url.clone(), table, seed, 600)))
        .collect();
    let context = nats.jetstream().await;
    for round in 0..2 {
        // Killed mid-stream: at 300 and 700 of the 1,800 changes relayed (the writers may
        // be done by then on a busy machine; the slot still holds the rest).
        wait_for_entries(
            &context,
            "COLUMN_NOTIFY",
            300 + 400 * round,
            Duration::from_secs(60),
        )
        .await;
        signal(&relay, "KILL");
        let _ = relay.wait();
        let (next, stderr) = start_relay(&db.url, &nats.url());
        relay = next;
        outputs.push(stderr);
        println!("relay killed and started again ({round})");
    }
    for writer in writers {
        writer.await.unwrap();
    }

    let expected = db.committed_in("items").await.len() + db.committed_in("others").await.len();
    let entries =
        wait_for_entries(&context, "COLUMN_NOTIFY", expected, Duration::from_secs(60)).await;
    assert_eq!(entries.len(), expected, "each committed change once");
    for (table, subject) in [
        ("items", "column_notify.items"),
        ("others", "column_notify.others"),
    ] {
        let relayed: Vec<_> = entries
            .iter()
            .filter(|entry| entry.subject == subject)
            .collect();
        let orders: Vec<(WalPosition, WalPosition)> = relayed
            .iter()
            .map(|entry| {
                let mut parts = entry.message_id.rsplitn(3, ':');
                let position = parts.next().unwrap().parse().unwrap();
                let commit = parts.next().unwrap().parse().unwrap();
                assert_eq!(parts.next(), Some(table), "{}", entry.message_id);
                (commit, position)
            })
            .collect();
        assert!(
            orders.windows(2).all(|pair| pair[0] < pair[1]),
            "{table}: in commit order, once"
        );
        let changes: BTreeSet<(i32, i32)> = relayed
            .iter()
            .map(|entry| item_version(&serde_json::from_str(&entry.body).unwrap()))
            .collect();
        assert_eq!(changes.len(), relayed.len());
        assert_eq!(
            changes,
            db.committed_in(table).await,
            "{table}: the committed changes"
        );
    }

    signal(&relay, "INT");
    assert_eq!(wait(&mut relay, Duration::from_secs(10)).code(), Some(0));
    drop(outputs);
    db.drop_wal_consumer("wal_to_nats").await;
}

#[tokio::test]
async fn no_duplicate_of_what_the_slot_sends_again_past_the_duplicate_window() {
    let nats = NatsServer::start();
    let context = nats.jetstream().await;
    context
        .create_stream(async_nats::jetstream::stream::Config {
            name: "WAL_WINDOW".into(),
            subjects: vec!["wal_window.>".into()],
            duplicate_window: Duration::from_secs(1),
            ..Default::default()
        })
        .await
        .unwrap();
    let db = DurableDatabase::create_wal("relay_window", 5).await;
    // The consumer's slot, made before the changes; the relay will read as this consumer.
    column_notify_listener::WalConsumer::connect(&db.url, "windowed", ["items"])
        .await
        .unwrap()
        .close()
        .await;
    db.client
        .batch_execute("UPDATE items SET version = 1")
        .await
        .unwrap();
    // What a relay that died after publishing three of them left in the stream: the slot
    // still holds all five, unconfirmed.
    let mut reader = column_notify_listener::WalConsumer::connect(&db.url, "windowed", ["items"])
        .await
        .unwrap();
    for _ in 0..3 {
        let column_notify_listener::RawWalEvent::Message(message) =
            reader.recv_raw().await.unwrap()
        else {
            panic!("a message");
        };
        let mut headers = async_nats::HeaderMap::new();
        let id = format!("items:{}:{}", message.commit_end, message.position);
        headers.insert("Nats-Msg-Id", id.as_str());
        context
            .publish_with_headers("wal_window.items", headers, message.payload.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    reader.close().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let (child, _stdout, stderr) = spawn_piped(
        column_notify!()
            .args([
                "relay",
                "items",
                "--consumer",
                "windowed",
                "--stream",
                "WAL_WINDOW",
            ])
            .args(["--subject-prefix", "wal_window", "--nats-url", &nats.url()])
            .args(["--database-url", &db.url]),
    );
    let mut relay = ChildGuard(child);
    let line = wait_for_line(&stderr, "already holds");
    assert!(
        line.contains("items: the stream already holds items:"),
        "{line}"
    );
    wait_for_line(&stderr, "caught up");
    let entries = stream_entries(&context, "WAL_WINDOW").await;
    let ids: BTreeSet<&str> = entries
        .iter()
        .map(|entry| entry.message_id.as_str())
        .collect();
    assert_eq!(entries.len(), 5, "{entries:?}");
    assert_eq!(ids.len(), 5, "no message twice");
    let versions: BTreeSet<(i32, i32)> = entries
        .iter()
        .map(|entry| item_version(&serde_json::from_str(&entry.body).unwrap()))
        .collect();
    assert_eq!(versions, (1..=5).map(|id| (id, 1)).collect());
    signal(&relay, "INT");
    assert_eq!(wait(&mut relay, Duration::from_secs(10)).code(), Some(0));
    db.drop_wal_consumer("windowed").await;
}
