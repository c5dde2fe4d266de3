//! Many writers at once, on separate connections, one listener: every committed change
//! arrives exactly once, the changes of one row arrive in the order they were committed, and
//! the last change of a row shows the row as the table holds it in the end.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use integration_tests::{connect, Received, TestDatabase, Xorshift};
use serde_json::{json, Value};

const ROWS: u64 = 200;
/// A few rows take a quarter of all updates, so writers often wait for each other's row
/// locks and the commit order of one row is decided between connections.
const HOT_ROWS: u64 = 8;
const WRITERS: u64 = 8;
const WRITE_TIME: Duration = Duration::from_secs(3);
const MAX_UPDATES_PER_WRITER: usize = 4_000;
const SEED: u64 = 0x00c0_ffee_2026;

/// One committed update, as its `RETURNING` reported it.
type Commit = (i32, i32);

/// Updates random rows, one autocommitted statement at a time, until the deadline or the
/// maximum count; returns what each statement committed.
async fn write_until(url: String, mut random: Xorshift, deadline: Instant) -> Vec<Commit> {
    let client = connect(&url).await;
    let update = client
        .prepare(
            "UPDATE counters SET value = value + 1, version = version + 1 \
             WHERE id = $1 RETURNING id, version",
        )
        .await
        .expect("preparing the update");
    let mut committed = Vec::new();
    while committed.len() < MAX_UPDATES_PER_WRITER && Instant::now() < deadline {
        let bound = if random.below(4) == 0 { HOT_ROWS } else { ROWS };
        let id = i32::try_from(random.below(bound) + 1).expect("a row id fits in int");
        let row = client
            .query_one(&update, &[&id])
            .await
            .expect("a writer's update");
        committed.push((row.get(0), row.get(1)));
    }
    committed
}

/// Checks one notification and returns what it reports: the row's key, its new version
/// and its new row.
fn reported_change(received: &Received) -> (i32, i32, Value) {
    let payload = &received.payload;
    let new = payload["new"].clone();
    let old = &payload["old"];
    let as_int = |value: &Value| {
        value
            .as_i64()
            .and_then(|number| i32::try_from(number).ok())
            .unwrap_or_else(|| panic!("not an int: {value} in {}", received.raw))
    };
    let id = as_int(&payload["id"]);
    let version = as_int(&new["version"]);
    assert_eq!(payload["op"], json!("UPDATE"), "{}", received.raw);
    assert_eq!(payload["table"], json!("counters"), "{}", received.raw);
    assert_eq!(payload["changed"], json!(["value"]), "{}", received.raw);
    assert_eq!(as_int(&old["id"]), id, "{}", received.raw);
    assert_eq!(as_int(&new["id"]), id, "{}", received.raw);
    assert_eq!(as_int(&old["version"]), version - 1, "{}", received.raw);
    assert_eq!(
        as_int(&new["value"]),
        as_int(&old["value"]) + 1,
        "{}",
        received.raw
    );
    (id, version, new)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_every_commit_arrives_once_in_commit_order() {
    let db = TestDatabase::create("concurrency").await;
    db.run(&format!(
        "CREATE TABLE counters (id int PRIMARY KEY, value int NOT NULL,
                                    version int NOT NULL, note text);
             INSERT INTO counters SELECT g, 0, 0, 'row ' || g FROM generate_series(1, {ROWS}) g;
             SELECT watch_column('counters', 'value', 'counters_value');"
    ))
    .await;
    let mut listener = db.listen("counters_value").await;

    let deadline = Instant::now() + WRITE_TIME;
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let random = Xorshift::new(SEED + writer);
            tokio::spawn(write_until(db.url.clone(), random, deadline))
        })
        .collect();
    let mut committed = Vec::new();
    for writer in writers {
        committed.extend(writer.await.expect("a writer task"));
    }
    let committed_set: BTreeSet<Commit> = committed.iter().copied().collect();
    assert_eq!(
        committed_set.len(),
        committed.len(),
        "two updates reported the same (id, version)"
    );

    // Exactly as many notifications as commits, then nothing more; each waited for in turn.
    let mut versions_by_row: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    let mut last_new_row: BTreeMap<i32, Value> = BTreeMap::new();
    for _ in 0..committed.len() {
        let (id, version, new) = reported_change(&listener.next().await);
        versions_by_row.entry(id).or_default().push(version);
        last_new_row.insert(id, new);
    }
    listener.assert_silent().await;

    let received_set: BTreeSet<Commit> = versions_by_row
        .iter()
        .flat_map(|(id, versions)| versions.iter().map(move |version| (*id, *version)))
        .collect();
    let missing: Vec<_> = committed_set.difference(&received_set).collect();
    let unexpected: Vec<_> = received_set.difference(&committed_set).collect();
    assert!(
        missing.is_empty() && unexpected.is_empty(),
        "missing {missing:?}, unexpected (or duplicated) {unexpected:?}"
    );
    for (id, versions) in &versions_by_row {
        let in_commit_order: Vec<i32> = (1..=versions.len() as i32).collect();
        assert_eq!(
            versions, &in_commit_order,
            "versions of row {id} as received"
        );
    }

    let final_rows = db
        .client
        .query(
            "SELECT id, row_to_json(c)::text FROM counters c ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    for row in final_rows {
        let id: i32 = row.get(0);
        let table_row: Value = serde_json::from_str(&row.get::<_, String>(1)).unwrap();
        match last_new_row.get(&id) {
            Some(last) => assert_eq!(last, &table_row, "last event of row {id}"),
            None => assert_eq!(table_row["version"], json!(0), "row {id} had no event"),
        }
    }
    eprintln!(
        "{} commits by {WRITERS} writers over {} rows, all received once and in order",
        committed.len(),
        versions_by_row.len()
    );
}
