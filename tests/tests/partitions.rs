//! A partitioned table watched on its parent: every partition notifies (those created or
//! attached after the watch too, a default partition, a partition of a partition), under
//! the parent's name with the partition's name beside it; rows that an UPDATE moves to
//! another partition; unwatching the parent.

use integration_tests::{Listener, TestDatabase};
use serde_json::{json, Value};

/// The partitioned table `measurements` (by list of `region`):
/// - `measurements_eu` for 'eu';
/// - `measurements_us` for 'us', itself partitioned by range of `id`, with the one leaf
///   `"US Low"` (a name that needs quoting);
/// - `measurements_other`, the default partition;
/// - `measurements_asia` for 'asia', a table of its own attached after the watch exists.
///
/// One row in each leaf: (region, id, leaf), with `reading` = 10 × id and `note` = 'row id'.
const ROWS: [(&str, i32, &str); 4] = [
    ("eu", 1, "measurements_eu"),
    ("us", 2, "US Low"),
    ("mars", 3, "measurements_other"),
    ("asia", 4, "measurements_asia"),
];

/// The tables that carry the watch's trigger: the parent and every partition below it,
/// in byte order.
const TRIGGER_TABLES: [&str; 6] = [
    "\"US Low\"",
    "measurements",
    "measurements_asia",
    "measurements_eu",
    "measurements_other",
    "measurements_us",
];

/// The table above, watched on `reading` for `events` (an SQL text[] literal), and a
/// listener on its channel `readings`.
async fn watched_measurements(name: &str, events: &str) -> (TestDatabase, Listener) {
    let db = TestDatabase::create(name).await;
    db.run(&format!(
        "CREATE TABLE measurements (region text NOT NULL, id int NOT NULL, reading int,
                                        note text, PRIMARY KEY (region, id))
                 PARTITION BY LIST (region);
             CREATE TABLE measurements_eu PARTITION OF measurements FOR VALUES IN ('eu');
             CREATE TABLE measurements_us PARTITION OF measurements FOR VALUES IN ('us')
                 PARTITION BY RANGE (id);
             CREATE TABLE \"US Low\" PARTITION OF measurements_us
                 FOR VALUES FROM (MINVALUE) TO (1000);
             CREATE TABLE measurements_other PARTITION OF measurements DEFAULT;
             INSERT INTO measurements VALUES
                 ('eu', 1, 10, 'row 1'), ('us', 2, 20, 'row 2'), ('mars', 3, 30, 'row 3');
             SELECT watch_column('measurements', 'reading', 'readings', events => {events});
             CREATE TABLE measurements_asia (LIKE measurements INCLUDING ALL);
             INSERT INTO measurements_asia VALUES ('asia', 4, 40, 'row 4');
             ALTER TABLE measurements ATTACH PARTITION measurements_asia
                 FOR VALUES IN ('asia');"
    ))
    .await;
    let listener = db.listen("readings").await;
    (db, listener)
}

/// A row of `measurements` as `row_to_json` renders it.
fn row(region: &str, id: i32, reading: i32) -> Value {
    json!({"region": region, "id": id, "reading": reading, "note": format!("row {id}")})
}

/// The payload of a change of `reading` in partition `partition` of `measurements`.
fn payload(op: &str, partition: &str, id: Value, old: Value, new: Value) -> Value {
    json!({
        "op": op,
        "schema": "public",
        "table": "measurements",
        "partition": partition,
        "changed": ["reading"],
        "id": id,
        "old": old,
        "new": new,
    })
}

fn key(region: &str, id: i32) -> Value {
    json!({"region": region, "id": id})
}

/// The one value that `query` returns.
async fn scalar<T>(db: &TestDatabase, query: &str) -> T
where
    T: for<'a> tokio_postgres::types::FromSql<'a>,
{
    db.client
        .query_one(query, &[])
        .await
        .unwrap_or_else(|error| panic!("{query}: {error}"))
        .get(0)
}

/// The tables with the watch's trigger, in byte order.
async fn trigger_tables(db: &TestDatabase) -> Vec<String> {
    scalar(
        db,
        "SELECT coalesce(array_agg(tgrelid::regclass::text ORDER BY tgrelid::regclass::text
                                   COLLATE \"C\"), '{}')
         FROM pg_trigger WHERE tgname = 'column_notify_reading'",
    )
    .await
}

#[tokio::test]
async fn every_partition_reports_the_parent_and_its_own_name() {
    let (db, mut listener) = watched_measurements("partition_updates", "'{update}'").await;
    db.client
        .execute("UPDATE measurements SET reading = reading + 1", &[])
        .await
        .unwrap();
    let mut received = Vec::new();
    for _ in ROWS {
        received.push(listener.next().await.payload);
    }
    listener.assert_silent().await;
    received.sort_by_key(|payload| payload["id"]["id"].as_i64());
    let expected: Vec<Value> = ROWS
        .iter()
        .map(|&(region, id, partition)| {
            let old = row(region, id, 10 * id);
            let new = row(region, id, 10 * id + 1);
            payload("UPDATE", partition, key(region, id), old, new)
        })
        .collect();
    assert_eq!(received, expected);
}

/// PostgreSQL runs an UPDATE that moves a row to another partition as a DELETE from the old
/// partition and an INSERT into the new one: row-level UPDATE triggers do not fire for it
/// (PostgreSQL 15 fires only foreign-key triggers as an update on the root). So a watch on
/// `update` alone sends nothing for the move, even when the same statement changes the
/// watched column; the row's later updates are reported from its new partition.
#[tokio::test]
async fn update_only_watch_sends_nothing_for_a_row_moved_to_another_partition() {
    let (db, mut listener) = watched_measurements("partition_move_update", "'{update}'").await;
    db.client
        .execute(
            "UPDATE measurements SET region = 'eu', reading = 99 WHERE id = 2",
            &[],
        )
        .await
        .unwrap();
    listener.assert_silent().await;
    let partition: String = scalar(
        &db,
        "SELECT tableoid::regclass::text FROM measurements WHERE id = 2",
    )
    .await;
    assert_eq!(partition, "measurements_eu", "the row did move");

    db.client
        .execute("UPDATE measurements SET reading = 100 WHERE id = 2", &[])
        .await
        .unwrap();
    let old = row("eu", 2, 99);
    let new = row("eu", 2, 100);
    let expected = payload("UPDATE", "measurements_eu", key("eu", 2), old, new);
    assert_eq!(listener.next().await.payload, expected);
}

/// With `delete` and `insert` watched too, the move arrives as the DELETE of the old row
/// from its old partition (under its old key), then the INSERT of the new row into the new
/// partition (under its new key), and no UPDATE.
#[tokio::test]
async fn watch_on_delete_and_insert_sees_a_moved_row_leave_and_arrive() {
    let (db, mut listener) =
        watched_measurements("partition_move_all", "'{insert,update,delete}'").await;
    db.client
        .execute(
            "UPDATE measurements SET region = 'asia', reading = 11 WHERE id = 1",
            &[],
        )
        .await
        .unwrap();
    let old = row("eu", 1, 10);
    let left = payload("DELETE", "measurements_eu", key("eu", 1), old, Value::Null);
    assert_eq!(listener.next().await.payload, left);
    let new = row("asia", 1, 11);
    let arrived = payload(
        "INSERT",
        "measurements_asia",
        key("asia", 1),
        Value::Null,
        new,
    );
    assert_eq!(listener.next().await.payload, arrived);
    listener.assert_silent().await;
}

#[tokio::test]
async fn unwatching_the_parent_removes_the_trigger_of_every_partition() {
    let (db, mut listener) = watched_measurements("partition_unwatch", "'{update}'").await;
    assert_eq!(trigger_tables(&db).await, TRIGGER_TABLES);

    let removed: bool = scalar(&db, "SELECT unwatch_column('measurements', 'reading')").await;
    assert!(removed);
    assert_eq!(trigger_tables(&db).await, Vec::<String>::new());
    let watches: i64 = scalar(&db, "SELECT count(*) FROM column_watches").await;
    assert_eq!(watches, 0);

    db.client
        .execute("UPDATE measurements SET reading = reading + 1", &[])
        .await
        .unwrap();
    listener.assert_silent().await;
}
