//! Schema changes, name collisions, odd tables and huge rows: none may leak an excluded
//! column, replace or shadow a watch, corrupt the event log or lose a payload's key.

use integration_tests::{query_i64, sqlstate, TestDatabase};
use serde_json::json;

#[tokio::test]
async fn an_excluded_column_dropped_and_added_again_stays_out() {
    let db = TestDatabase::with_schema(
        "hard_exclude_readded",
        "CREATE TABLE users (id int PRIMARY KEY, email text, password_hash text);
         INSERT INTO users VALUES (1, 'a@example.com', 'h1');
         SELECT watch_column('users', 'email', 'users_email', exclude => '{password_hash}');
         ALTER TABLE users DROP COLUMN password_hash;
         ALTER TABLE users ADD COLUMN password_hash text;
         UPDATE users SET password_hash = 'h2';",
    )
    .await;
    let mut listener = db.listen("users_email").await;
    db.run("UPDATE users SET email = 'b@example.com'").await;
    let payload = listener.next().await.payload;
    assert_eq!(payload["new"], json!({"id": 1, "email": "b@example.com"}));
    assert_eq!(payload["old"].get("password_hash"), None);
}

#[tokio::test]
async fn a_partitions_own_watch_follows_renames_made_on_its_parent() {
    let db = TestDatabase::with_schema(
        "hard_partition_rename",
        "CREATE TABLE accounts (id int PRIMARY KEY, balance int, secret text) PARTITION BY RANGE (id);
         CREATE TABLE accounts_low PARTITION OF accounts FOR VALUES FROM (0) TO (100);
         INSERT INTO accounts VALUES (1, 10, 's');
         SELECT watch_column('accounts_low', 'balance', 'low_balance', exclude => '{secret}');
         ALTER TABLE accounts RENAME COLUMN secret TO hidden;
         ALTER TABLE accounts RENAME COLUMN balance TO amount;",
    )
    .await;
    let mut listener = db.listen("low_balance").await;
    db.run("UPDATE accounts SET amount = 20").await;
    let payload = listener.next().await.payload;
    assert_eq!(payload["new"], json!({"id": 1, "amount": 20}));
    assert_eq!(payload["changed"], json!(["amount"]));
    let row = db
        .client
        .query_one(
            "SELECT columns::text[], exclude_columns::text[] FROM column_watches",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Vec<String>>(0), ["amount"]);
    assert_eq!(row.get::<_, Vec<String>>(1), ["hidden"]);
}

#[tokio::test]
async fn watches_whose_names_would_collide_both_stay() {
    let db = TestDatabase::with_schema(
        "hard_name_collision",
        "CREATE TABLE coll (id int PRIMARY KEY, a_b int, a int, b int);
         INSERT INTO coll VALUES (1, 1, 1, 1);
         SELECT watch_column('coll', 'a_b', 'joined');
         SELECT watch_columns('coll', '{a,b}', 'pair');",
    )
    .await;
    assert_eq!(
        query_i64(&db.client, "SELECT count(*) FROM column_watches").await,
        2
    );
    let mut joined = db.listen("joined").await;
    let mut pair = db.listen("pair").await;
    db.run("UPDATE coll SET a_b = 2, a = 2").await;
    assert_eq!(joined.next().await.payload["changed"], json!(["a_b"]));
    assert_eq!(pair.next().await.payload["changed"], json!(["a"]));
}

#[tokio::test]
async fn a_user_trigger_of_the_same_name_is_never_replaced() {
    let db = TestDatabase::with_schema(
        "hard_user_trigger",
        "CREATE TABLE t (id int PRIMARY KEY, a int);
         CREATE FUNCTION mine() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
         CREATE TRIGGER column_notify_a AFTER UPDATE ON t FOR EACH ROW EXECUTE FUNCTION mine();
         SELECT watch_column('t', 'a');",
    )
    .await;
    assert_eq!(
        query_i64(
            &db.client,
            "SELECT count(*) FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
             WHERE t.tgname = 'column_notify_a' AND p.proname = 'mine'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn parent_and_partition_watches_of_one_column_live_side_by_side() {
    let db = TestDatabase::with_schema(
        "hard_partition_collision",
        "CREATE TABLE events (id int PRIMARY KEY, state text) PARTITION BY RANGE (id);
         CREATE TABLE events_a PARTITION OF events FOR VALUES FROM (0) TO (100);
         INSERT INTO events VALUES (1, 'x');
         SELECT watch_column('events_a', 'state', 'partition_state');
         SELECT watch_column('events', 'state', 'parent_state');
         CREATE TABLE events_b PARTITION OF events FOR VALUES FROM (100) TO (200);
         INSERT INTO events VALUES (101, 'x');
         SELECT watch_column('events_b', 'state', 'new_partition_state');",
    )
    .await;
    assert_eq!(
        query_i64(&db.client, "SELECT count(*) FROM column_watches").await,
        3
    );
    let mut partition = db.listen("partition_state").await;
    let mut parent = db.listen("parent_state").await;
    let mut new_partition = db.listen("new_partition_state").await;
    db.run("UPDATE events SET state = 'y'").await;
    assert_eq!(partition.next().await.payload["id"], json!(1));
    let mut ids = vec![
        parent.next().await.payload["id"].clone(),
        parent.next().await.payload["id"].clone(),
    ];
    ids.sort_by_key(|id| id.as_i64());
    assert_eq!(ids, [json!(1), json!(101)]);
    assert_eq!(new_partition.next().await.payload["id"], json!(101));

    db.run("SELECT unwatch_column('events_a', 'state')").await;
    assert_eq!(
        query_i64(
            &db.client,
            "SELECT count(*) FROM column_watches WHERE channel = 'parent_state'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn watching_a_renamed_column_again_replaces_its_watch() {
    let db = TestDatabase::with_schema(
        "hard_rename_rewatch",
        "CREATE TABLE t (id int PRIMARY KEY, x int);
         SELECT watch_column('t', 'x', 'first');
         ALTER TABLE t RENAME COLUMN x TO y;
         SELECT watch_column('t', 'y', 'second');",
    )
    .await;
    assert_eq!(
        query_i64(
            &db.client,
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = 't'::regclass AND NOT tgisinternal"
        )
        .await,
        1
    );
    assert_eq!(
        query_i64(
            &db.client,
            "SELECT count(*) FROM column_watches WHERE channel = 'second'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn temporary_tables_are_refused_and_leave_nothing() {
    let db = TestDatabase::with_schema(
        "hard_temp",
        "CREATE TEMP TABLE scratch (id int PRIMARY KEY, a int)",
    )
    .await;
    let refused = db
        .client
        .query("SELECT watch_column('scratch', 'a')", &[])
        .await
        .expect_err("a temporary table");
    assert_eq!(sqlstate(&refused), "0A000");
    assert_eq!(
        query_i64(&db.client, "SELECT count(*) FROM column_notify.watches").await,
        0
    );
}

#[tokio::test]
async fn event_log_indexes_that_cannot_be_maintained_are_refused_not_corrupted() {
    let db = TestDatabase::with_schema(
        "hard_log_index",
        "CREATE TABLE t (id int PRIMARY KEY, a int);
         INSERT INTO t VALUES (1, 1);
         SELECT watch_column('t', 'a', durable => true);",
    )
    .await;
    for index in [
        "CREATE INDEX events_lower ON column_notify.events (lower(channel))",
        "CREATE INDEX events_partial ON column_notify.events (event_id) WHERE channel = 'none'",
    ] {
        db.run(index).await;
        let refused = db
            .client
            .batch_execute("UPDATE t SET a = a + 1")
            .await
            .expect_err("a durable write with an index the log cannot maintain");
        assert_eq!(sqlstate(&refused), "0A000");
        let message = refused.as_db_error().unwrap().message().to_owned();
        assert!(message.contains("cannot maintain index"), "{message}");
        db.run(
            "DROP INDEX IF EXISTS column_notify.events_lower;
             DROP INDEX IF EXISTS column_notify.events_partial;",
        )
        .await;
    }
    db.run("CREATE INDEX events_by_time ON column_notify.events (created_at, channel)")
        .await;
    db.run("UPDATE t SET a = a + 1").await;
    assert_eq!(
        query_i64(
            &db.client,
            "SELECT count(*) FROM column_notify.events WHERE created_at <= now()"
        )
        .await,
        1
    );
    db.run("SET enable_seqscan = off").await;
    assert_eq!(
        query_i64(
            &db.client,
            "SELECT count(*) FROM column_notify.events WHERE created_at <= now()"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn a_reduced_payload_keeps_its_key() {
    // 300 columns of 60-byte names: `changed` alone is far over the notification limit.
    let columns: Vec<String> = (0..300)
        .map(|n| format!("c{n:03}_{}", "x".repeat(55)))
        .collect();
    let definitions: Vec<String> = columns.iter().map(|c| format!("{c} int")).collect();
    let db = TestDatabase::with_schema(
        "hard_reduced_key",
        &format!(
            "CREATE TABLE wide (id int PRIMARY KEY, {});
             SELECT watch_columns('wide', ARRAY[{}]::name[], 'wide', events => '{{insert}}');",
            definitions.join(", "),
            columns
                .iter()
                .map(|c| format!("'{c}'"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )
    .await;
    let mut listener = db.listen("wide").await;
    db.run("INSERT INTO wide (id) VALUES (42)").await;
    let payload = listener.next().await.payload;
    assert_eq!(payload["id"], json!(42));
    assert_eq!(payload["truncated"], json!(true));
    assert_eq!(payload["op"], json!("INSERT"));
    assert_eq!(payload.get("changed"), None);
}
