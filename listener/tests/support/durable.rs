//! A database with a durable (or WAL) watch on `items`, writers that change it concurrently (across
//! lost connections), and the checks on what a consumer received.

use std::sync::atomic::Ordering;
use std::time::Duration;

use column_notify_listener::tokio_postgres::Client;
use column_notify_listener::{connect_client, TlsVerification};
use integration_tests::TestDatabase;
use serde_json::Value;

/// A database of its own with the extension and a durable watch: table `items (id int
/// primary key, version int, value text)` with rows 1 to `keys` at version 0, watched on
/// `version` with channel `items`.
pub struct DurableDatabase {
    pub url: String,
    pub client: Client,
}

impl DurableDatabase {
    /// Drops `pgcn_durable_<name>` if it exists, and creates it afresh (as the integration
    /// tests' [`TestDatabase`] does).
    pub async fn create(name: &str, keys: i32) -> DurableDatabase {
        Self::create_watched(&format!("durable_{name}"), keys, "durable => true").await
    }

    /// The same table with a WAL watch (`delivery => 'wal'`) instead, in `pgcn_wal_<name>`.
    pub async fn create_wal(name: &str, keys: i32) -> DurableDatabase {
        Self::create_watched(&format!("wal_{name}"), keys, "delivery => 'wal'").await
    }

    async fn create_watched(database: &str, keys: i32, options: &str) -> DurableDatabase {
        let TestDatabase { url, client } = TestDatabase::with_schema(
            database,
            &format!(
                "CREATE TABLE items (id int PRIMARY KEY, version int NOT NULL, value text);
                 INSERT INTO items SELECT g, 0, '' FROM generate_series(1, {keys}) g;
                 SELECT watch_column('items', 'version', 'items', {options});"
            ),
        )
        .await;
        DurableDatabase { url, client }
    }

    /// Drops a WAL consumer and its slot once nothing streams from it any more: a slot left
    /// behind would keep the cluster's WAL from being recycled.
    pub async fn drop_wal_consumer(&self, consumer: &str) {
        for _ in 0..100 {
            let dropped = column_notify_listener::WalConsumer::drop_consumer(
                &self.url,
                consumer,
                &TlsVerification::default(),
            )
            .await;
            if dropped.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the slot of consumer {consumer} stayed in use");
    }

    /// Every change committed so far, as (id, version): all versions up to each row's
    /// current one.
    pub async fn committed(&self) -> std::collections::BTreeSet<(i32, i32)> {
        self.committed_in("items").await
    }

    /// [`DurableDatabase::committed`] of another table of the same columns.
    pub async fn committed_in(&self, table: &str) -> std::collections::BTreeSet<(i32, i32)> {
        let rows = self
            .client
            .query(&format!("SELECT id, version FROM {table}"), &[])
            .await
            .unwrap();
        rows.iter()
            .flat_map(|row| {
                let id: i32 = row.get(0);
                (1..=row.get::<_, i32>(1)).map(move |version| (id, version))
            })
            .collect()
    }
}

/// What a writer did: the changes it saw commit (RETURNING), and how many statements failed
/// on a lost connection (they may or may not have committed).
#[derive(Debug, Default)]
pub struct Written {
    pub committed: Vec<(i32, i32)>,
    pub failed: usize,
}

/// Commits up to `changes` single-row updates (each increments `version` of a row picked
/// from 1 to `keys`) or until `stop` is set, reconnecting after lost connections.
pub async fn write_changes(
    url: String,
    seed: u64,
    changes: usize,
    keys: i32,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Written {
    let mut written = Written::default();
    let mut client: Option<Client> = None;
    let mut random = seed;
    let mut attempts = 0;
    while attempts < changes && !stop.load(Ordering::Relaxed) {
        let writer = match client.as_ref().filter(|client| !client.is_closed()) {
            Some(writer) => writer,
            None => match connect_client(&url, &TlsVerification::default()).await {
                Ok(connected) => client.insert(connected),
                Err(error) => {
                    assert!(matches!(error, column_notify_listener::Error::Connect(_)));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        random = random
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let id = (random >> 33) as i32 % keys + 1;
        attempts += 1;
        match writer
            .query_one(
                "UPDATE items SET version = version + 1 WHERE id = $1 RETURNING id, version",
                &[&id],
            )
            .await
        {
            Ok(row) => written.committed.push((row.get(0), row.get(1))),
            Err(error) => {
                assert!(
                    writer.is_closed()
                        || error
                            .as_db_error()
                            .is_some_and(|db| db.code().code().starts_with("57P")),
                    "only lost connections may fail: {error}"
                );
                written.failed += 1;
                client = None;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    written
}

/// `writers` concurrent [`write_changes`] of `changes_each`.
pub async fn write_concurrently(
    url: &str,
    writers: u64,
    changes_each: usize,
    keys: i32,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Written {
    let tasks: Vec<_> = (0..writers)
        .map(|seed| {
            tokio::spawn(write_changes(
                url.to_string(),
                seed + 1,
                changes_each,
                keys,
                std::sync::Arc::clone(&stop),
            ))
        })
        .collect();
    let mut all = Written::default();
    for task in tasks {
        let written = task.await.expect("a writer");
        all.committed.extend(written.committed);
        all.failed += written.failed;
    }
    all
}

/// The (id, version) of an `items` change payload.
pub fn item_version(payload: &Value) -> (i32, i32) {
    let new = &payload["new"];
    let field = |name: &str| new[name].as_i64().expect("an int column") as i32;
    (field("id"), field("version"))
}

/// Checks that the changes of one run come in event-id order, without duplicates, and in
/// increasing version order for each row.
pub fn assert_in_order(run: &[(i64, (i32, i32))]) {
    for pair in run.windows(2) {
        assert!(pair[0].0 < pair[1].0, "event ids increase: {pair:?}");
    }
    let mut last = std::collections::HashMap::new();
    for &(event_id, (id, version)) in run {
        let previous = last.insert(id, version).unwrap_or(0);
        assert!(
            version > previous,
            "row {id}: version {version} (event {event_id}) after {previous}"
        );
    }
}

/// The test's database, reached again once the server accepts connections.
pub async fn db_after_restart(url: &str) -> DurableDatabase {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match column_notify_listener::connect_client(url, &Default::default()).await {
            Ok(client) => {
                return DurableDatabase {
                    url: url.to_string(),
                    client,
                }
            }
            Err(error) if std::time::Instant::now() < deadline => {
                println!("waiting for the server: {error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("the server did not come back: {error}"),
        }
    }
}
