//! Batched watches (`batch => true`) over real connections: a transaction's changes packed
//! into few notifications, each under PostgreSQL's limit, every committed change once and in
//! order, each element the payload the change would have had alone, nothing of what a
//! (sub)transaction rolled back.

use integration_tests::{query_i64, sqlstate, Listener, Received, TestDatabase};
use serde_json::{json, Value};

/// PostgreSQL refuses a payload of this many bytes or more.
const NOTIFY_LIMIT: usize = 8000;

/// Receives batches until they hold `expected` changes; returns the batches as received and
/// their changes in order. Every batch must be a `{"changes": [...]}` under the limit.
async fn receive_changes(listener: &mut Listener, expected: usize) -> (Vec<Received>, Vec<Value>) {
    let mut batches = Vec::new();
    let mut changes = Vec::new();
    while changes.len() < expected {
        let batch = listener.next().await;
        assert!(batch.raw.len() < NOTIFY_LIMIT, "{} bytes", batch.raw.len());
        let object = batch.payload.as_object().expect("a batch is an object");
        assert_eq!(object.len(), 1, "only \"changes\": {}", batch.raw);
        let elements = object["changes"].as_array().expect("changes is an array");
        assert!(!elements.is_empty(), "no empty batch is sent");
        changes.extend(elements.iter().cloned());
        batches.push(batch);
    }
    assert_eq!(changes.len(), expected, "no change arrives twice");
    listener.assert_silent().await;
    (batches, changes)
}

/// The (integer) keys of the changes, in order.
fn ids_of(changes: &[Value]) -> Vec<i64> {
    changes
        .iter()
        .map(|change| change["id"].as_i64().expect("an integer key"))
        .collect()
}

#[tokio::test]
async fn a_large_update_arrives_in_few_notifications_that_hold_the_reference_payloads() {
    let db = TestDatabase::with_schema(
        "batch_reference",
        "CREATE TABLE appointments (id bigint PRIMARY KEY, canceled boolean, title text,
                                    starts_at timestamptz);
         INSERT INTO appointments
             SELECT g, false, 'appointment ' || g, '2024-05-01 10:00+00'::timestamptz + g * interval '1 hour'
             FROM generate_series(1, 3000) g;
         CREATE FUNCTION reference_notify() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           PERFORM pg_notify('reference', json_build_object(
               'id', OLD.id, 'old', row_to_json(OLD), 'new', row_to_json(NEW))::text);
           RETURN NEW;
         END $$;
         CREATE TRIGGER reference AFTER UPDATE ON appointments FOR EACH ROW
             EXECUTE FUNCTION reference_notify();
         SELECT watch_column('appointments', 'canceled', 'batched', batch => true,
                             metadata => false);",
    )
    .await;
    let mut batched = db.listen("batched").await;
    let mut reference = db.listen("reference").await;
    db.run("UPDATE appointments SET canceled = true WHERE id % 2 = 0")
        .await;
    db.run("UPDATE appointments SET canceled = NOT canceled")
        .await;

    let (batches, changes) = receive_changes(&mut batched, 4500).await;
    assert!(
        batches.len() <= 4500 / 20,
        "{} notifications for 4500 changes",
        batches.len()
    );
    let mut expected = Vec::new();
    while expected.len() < 4500 {
        expected.push(reference.next().await.payload);
    }
    assert_eq!(
        changes, expected,
        "the reference payloads, in the same order"
    );

    // A statement that changes nothing sends nothing.
    db.run("UPDATE appointments SET title = title; DELETE FROM appointments WHERE id < 0")
        .await;
    batched.assert_silent().await;
}

#[tokio::test]
async fn inserts_and_deletes_are_batched_with_their_metadata() {
    let db = TestDatabase::with_schema(
        "batch_insert_delete",
        "CREATE TABLE jobs (id int PRIMARY KEY, state text);
         SELECT watch_column('jobs', 'state', 'jobs', events => '{insert}', batch => true);",
    )
    .await;
    let mut listener = db.listen("jobs").await;
    db.run("INSERT INTO jobs SELECT g, 'queued' FROM generate_series(1, 3) g")
        .await;
    let (_, changes) = receive_changes(&mut listener, 3).await;
    for (n, change) in changes.iter().enumerate() {
        let id = n as i64 + 1;
        assert_eq!(
            *change,
            json!({"op": "INSERT", "schema": "public", "table": "jobs", "changed": ["state"],
                   "id": id, "old": null, "new": {"id": id, "state": "queued"}})
        );
    }

    db.run(
        "SELECT watch_column('jobs', 'state', 'jobs', events => '{delete}', batch => true);
             DELETE FROM jobs WHERE id >= 2;
             INSERT INTO jobs VALUES (9, 'not watched any more');",
    )
    .await;
    let (_, changes) = receive_changes(&mut listener, 2).await;
    let deleted: Vec<(&Value, &Value, &Value)> = changes
        .iter()
        .map(|change| (&change["op"], &change["id"], &change["new"]))
        .collect();
    assert_eq!(
        deleted,
        [
            (&json!("DELETE"), &json!(2), &Value::Null),
            (&json!("DELETE"), &json!(3), &Value::Null)
        ]
    );
}

#[tokio::test]
async fn oversize_changes_are_reduced_inside_their_batch() {
    let db = TestDatabase::with_schema(
        "batch_oversize",
        "CREATE TABLE docs (id int PRIMARY KEY, state text, body text);
         INSERT INTO docs SELECT g, 'draft', CASE WHEN g % 3 = 0 THEN repeat('x', 9000)
                                                  ELSE repeat('y', 2500) END
             FROM generate_series(1, 30) g;
         SELECT watch_column('docs', 'state', 'docs', batch => true);",
    )
    .await;
    let mut listener = db.listen("docs").await;
    db.run("UPDATE docs SET state = 'published'").await;
    let (batches, changes) = receive_changes(&mut listener, 30).await;
    assert!(batches.len() < 30, "small changes share notifications");
    for (n, change) in changes.iter().enumerate() {
        let id = n as i64 + 1;
        assert_eq!(change["id"], json!(id), "in statement order");
        assert_eq!(change["table"], json!("docs"));
        if id % 3 == 0 {
            assert_eq!(change["truncated"], json!(true));
            assert!(change.get("old").is_none() && change.get("new").is_none());
        } else {
            assert_eq!(change["new"]["state"], json!("published"));
            assert_eq!(change["new"]["body"].as_str().map(str::len), Some(2500));
        }
    }
}

#[tokio::test]
async fn a_batched_watch_on_a_partitioned_table_names_the_parent_and_the_partition() {
    let db = TestDatabase::with_schema(
        "batch_partitions",
        "CREATE TABLE readings (region text, id int, value int, PRIMARY KEY (region, id))
             PARTITION BY LIST (region);
         CREATE TABLE readings_eu PARTITION OF readings FOR VALUES IN ('eu');
         CREATE TABLE readings_us PARTITION OF readings FOR VALUES IN ('us');
         INSERT INTO readings VALUES ('eu', 1, 10), ('us', 2, 20), ('eu', 3, 30);
         SELECT watch_column('readings', 'value', 'readings', batch => true);",
    )
    .await;
    let mut listener = db.listen("readings").await;
    db.run("UPDATE readings SET value = value + 1").await;
    let (_, changes) = receive_changes(&mut listener, 3).await;
    let mut seen: Vec<(String, i64)> = changes
        .iter()
        .map(|change| {
            assert_eq!(change["table"], json!("readings"));
            let region = change["id"]["region"].as_str().unwrap();
            assert_eq!(change["partition"], json!(format!("readings_{region}")));
            assert_eq!(
                change["new"]["value"],
                json!(change["old"]["value"].as_i64().unwrap() + 1)
            );
            (
                change["id"]["region"].as_str().unwrap().to_owned(),
                change["id"]["id"].as_i64().unwrap(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("eu".to_owned(), 1),
            ("eu".to_owned(), 3),
            ("us".to_owned(), 2)
        ]
    );
}

#[tokio::test]
async fn durable_batched_changes_carry_the_ids_of_their_logged_events() {
    let db = TestDatabase::with_schema(
        "batch_durable",
        "CREATE TABLE orders (id int PRIMARY KEY, state text);
         INSERT INTO orders SELECT g, 'new' FROM generate_series(1, 50) g;
         SELECT watch_column('orders', 'state', 'orders', durable => true, batch => true);",
    )
    .await;
    let mut listener = db.listen("orders").await;
    db.run("UPDATE orders SET state = 'paid'").await;
    let (_, changes) = receive_changes(&mut listener, 50).await;
    let logged: Vec<Value> = db
        .client
        .query(
            "SELECT payload::text FROM column_notify.read_events('billing', 'orders')",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| serde_json::from_str(row.get::<_, &str>(0)).unwrap())
        .collect();
    assert_eq!(changes, logged, "each element is its logged event");
    assert!(changes.iter().all(|change| change["event_id"].is_i64()));
}

#[tokio::test]
async fn one_batched_watch_takes_several_events_and_a_null_batch_is_refused() {
    let db = TestDatabase::with_schema(
        "batch_events",
        "CREATE TABLE t (id int PRIMARY KEY, a int);
         INSERT INTO t VALUES (1, 0);",
    )
    .await;
    let error = db
        .client
        .batch_execute("SELECT watch_column('t', 'a', batch => NULL)")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&error), "22004");
    let left = query_i64(
        &db.client,
        "SELECT (SELECT count(*) FROM column_watches)
              + (SELECT count(*) FROM pg_trigger WHERE tgrelid = 't'::regclass)",
    )
    .await;
    assert_eq!(left, 0, "no trigger and no catalog row left behind");

    db.run("SELECT watch_column('t', 'a', 't', events => '{insert,update,delete}', batch => true)")
        .await;
    let mut listener = db.listen("t").await;
    db.run("BEGIN; INSERT INTO t VALUES (2, 0); UPDATE t SET a = 1; DELETE FROM t WHERE id = 1; COMMIT")
        .await;
    let (batches, changes) = receive_changes(&mut listener, 4).await;
    assert_eq!(batches.len(), 1, "one transaction, one batch");
    let seen: Vec<(&Value, &Value)> = changes
        .iter()
        .map(|change| (&change["op"], &change["id"]))
        .collect();
    assert_eq!(
        seen,
        [
            (&json!("INSERT"), &json!(2)),
            (&json!("UPDATE"), &json!(1)),
            (&json!("UPDATE"), &json!(2)),
            (&json!("DELETE"), &json!(1)),
        ]
    );

    // Turning batching off replaces the trigger of the watch.
    db.run("SELECT watch_column('t', 'a', 't', events => '{insert,update,delete}')")
        .await;
    let triggers = query_i64(
        &db.client,
        "SELECT count(*) FROM pg_trigger WHERE tgrelid = 't'::regclass AND tgtype & 1 = 1",
    )
    .await;
    assert_eq!(triggers, 1, "one trigger, FOR EACH ROW");
    db.run("UPDATE t SET a = 2").await;
    assert!(listener.next().await.payload.get("changes").is_none());
}

#[tokio::test]
async fn one_row_statements_of_a_transaction_share_their_batches() {
    let db = TestDatabase::with_schema(
        "batch_one_row_statements",
        "CREATE TABLE t (id int PRIMARY KEY, a int);
         INSERT INTO t SELECT g, 0 FROM generate_series(1, 2000) g;
         SELECT watch_column('t', 'a', 't', batch => true, metadata => false);",
    )
    .await;
    let mut listener = db.listen("t").await;
    db.run("DO $$ BEGIN FOR i IN 1..2000 LOOP UPDATE t SET a = i WHERE id = i; END LOOP; END $$")
        .await;
    let (batches, changes) = receive_changes(&mut listener, 2000).await;
    assert!(
        batches.len() <= 2000 / 20,
        "{} notifications",
        batches.len()
    );
    let ids = ids_of(&changes);
    assert_eq!(ids, (1..=2000).collect::<Vec<i64>>(), "in the order made");

    // A one-row statement on its own is a batch of one change.
    db.run("UPDATE t SET a = 0 WHERE id = 7").await;
    let (_, changes) = receive_changes(&mut listener, 1).await;
    assert_eq!(changes[0]["new"], json!({"id": 7, "a": 0}));
}

#[tokio::test]
async fn rolled_back_changes_never_leave_their_batch() {
    let db = TestDatabase::with_schema(
        "batch_rollbacks",
        "CREATE TABLE t (id int PRIMARY KEY, a int);
         INSERT INTO t SELECT g, 0 FROM generate_series(1, 10) g;
         SELECT watch_column('t', 'a', 't', batch => true);
         -- Fires after the watch's trigger for each row, and fails at id 9: the statement's
         -- changes are then already in the batch.
         CREATE FUNCTION fail_at_nine() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF NEW.id = 9 AND NEW.a = 9 THEN RAISE EXCEPTION 'nine'; END IF;
           RETURN NULL;
         END $$;
         CREATE TRIGGER zz_fail_at_nine AFTER UPDATE ON t FOR EACH ROW
             EXECUTE FUNCTION fail_at_nine();",
    )
    .await;
    let mut listener = db.listen("t").await;
    db.client
        .batch_execute(
            "BEGIN;
         UPDATE t SET a = 1 WHERE id = 1;
         SAVEPOINT s1;
         UPDATE t SET a = 2 WHERE id = 2;
         SAVEPOINT s2;
         UPDATE t SET a = 3 WHERE id = 3;
         RELEASE SAVEPOINT s2;
         ROLLBACK TO SAVEPOINT s1;
         UPDATE t SET a = 4 WHERE id = 4;
         SAVEPOINT s3;
         UPDATE t SET a = 5 WHERE id = 5;
         RELEASE SAVEPOINT s3;
         SAVEPOINT s4;
         UPDATE t SET a = 9 WHERE id >= 6;",
        )
        .await
        .expect_err("the last statement fails at id 9");
    db.run("ROLLBACK TO SAVEPOINT s4; UPDATE t SET a = 6 WHERE id = 6; COMMIT")
        .await;
    let (batches, changes) = receive_changes(&mut listener, 4).await;
    assert_eq!(batches.len(), 1);
    let ids = ids_of(&changes);
    assert_eq!(
        ids,
        [1, 4, 5, 6],
        "what the savepoints rolled back never arrives"
    );

    // A transaction that rolls back sends nothing, and leaves nothing for the next one.
    db.run("BEGIN; UPDATE t SET a = 7 WHERE id = 7; ROLLBACK; UPDATE t SET a = 8 WHERE id = 8")
        .await;
    let (_, changes) = receive_changes(&mut listener, 1).await;
    assert_eq!(changes[0]["id"], json!(8));
}

#[tokio::test]
async fn a_batched_watch_follows_a_renamed_column() {
    let db = TestDatabase::with_schema(
        "batch_rename",
        "CREATE TABLE t (id int PRIMARY KEY, a int);
         INSERT INTO t SELECT g, 0 FROM generate_series(1, 5) g;
         SELECT watch_column('t', 'a', 't', batch => true);
         ALTER TABLE t RENAME COLUMN a TO b;",
    )
    .await;
    let mut listener = db.listen("t").await;
    db.run("UPDATE t SET b = 1").await;
    let (batches, changes) = receive_changes(&mut listener, 5).await;
    assert_eq!(batches.len(), 1);
    assert!(changes
        .iter()
        .all(|change| change["changed"] == json!(["b"])));
    let listed = query_i64(
        &db.client,
        "SELECT count(*) FROM column_watches WHERE batch AND columns = '{b}'",
    )
    .await;
    assert_eq!(listed, 1);
}

#[tokio::test]
async fn a_statement_level_batched_trigger_of_an_earlier_release_goes_on_and_is_replaced() {
    let db = TestDatabase::with_schema(
        "batch_earlier_release",
        "CREATE TABLE t (id int PRIMARY KEY, a int);
         INSERT INTO t SELECT g, 0 FROM generate_series(1, 3) g;
         SELECT watch_column('t', 'a', 't', batch => true);
         -- The trigger earlier releases installed for the same watch.
         CREATE OR REPLACE TRIGGER column_notify_a AFTER UPDATE ON t
             REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
             EXECUTE FUNCTION notify_column_changed('t', 'a', '', 'batch=true');",
    )
    .await;
    let row_triggers = "SELECT count(*) FROM pg_trigger
                        WHERE tgrelid = 't'::regclass AND tgtype & 1 = 1";
    assert_eq!(query_i64(&db.client, row_triggers).await, 0);
    let mut listener = db.listen("t").await;
    db.run("BEGIN; UPDATE t SET a = 1; UPDATE t SET a = 2 WHERE id = 1; COMMIT")
        .await;
    let (batches, changes) = receive_changes(&mut listener, 4).await;
    assert_eq!(
        batches.len(),
        1,
        "its statements' changes share the batch too"
    );
    let ids = ids_of(&changes);
    assert_eq!(ids, [1, 2, 3, 1]);

    db.run("SELECT watch_column('t', 'a', 't', batch => true)")
        .await;
    assert_eq!(
        query_i64(&db.client, row_triggers).await,
        1,
        "FOR EACH ROW now"
    );
    db.run("UPDATE t SET a = 3").await;
    let (_, changes) = receive_changes(&mut listener, 3).await;
    assert!(changes.iter().all(|change| change["new"]["a"] == json!(3)));
}
