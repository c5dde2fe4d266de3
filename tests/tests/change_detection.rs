//! When the trigger sends and when it stays silent: NULL-safe change detection, unchanged
//! updates, rolled-back transactions, several rows in one statement.

use integration_tests::TestDatabase;
use serde_json::json;

async fn watched_table(name: &str) -> (TestDatabase, integration_tests::Listener) {
    let db = TestDatabase::with_schema(
        name,
        "CREATE TABLE items (id int PRIMARY KEY, status text, note text);
             INSERT INTO items VALUES (1, NULL, 'a'), (2, 'open', 'b'), (3, 'open', 'c');
             SELECT watch_column('items', 'status', 'items_status');",
    )
    .await;
    let listener = db.listen("items_status").await;
    (db, listener)
}

#[tokio::test]
async fn null_to_value_notifies() {
    let (db, mut listener) = watched_table("null_to_value").await;
    db.client
        .execute("UPDATE items SET status = 'open' WHERE id = 1", &[])
        .await
        .unwrap();
    let payload = listener.next().await.payload;
    assert_eq!(payload["id"], json!(1));
    assert_eq!(payload["old"]["status"], json!(null));
    assert_eq!(payload["new"]["status"], json!("open"));
}

#[tokio::test]
async fn value_to_null_notifies() {
    let (db, mut listener) = watched_table("value_to_null").await;
    db.client
        .execute("UPDATE items SET status = NULL WHERE id = 2", &[])
        .await
        .unwrap();
    let payload = listener.next().await.payload;
    assert_eq!(payload["id"], json!(2));
    assert_eq!(payload["old"]["status"], json!("open"));
    assert_eq!(payload["new"]["status"], json!(null));
}

#[tokio::test]
async fn unchanged_watched_column_sends_nothing() {
    let (db, mut listener) = watched_table("unchanged").await;
    db.run(
        "UPDATE items SET note = 'other' WHERE id = 2;
             UPDATE items SET status = status;
             UPDATE items SET status = NULL WHERE id = 1;",
    )
    .await;
    listener.assert_silent().await;
}

#[tokio::test]
async fn rolled_back_update_sends_nothing() {
    let (db, mut listener) = watched_table("rollback").await;
    db.run("BEGIN; UPDATE items SET status = 'closed' WHERE id = 2; ROLLBACK;")
        .await;
    listener.assert_silent().await;
    // The same change committed afterwards does arrive, so the silence above was real.
    db.client
        .execute("UPDATE items SET status = 'closed' WHERE id = 2", &[])
        .await
        .unwrap();
    assert_eq!(
        listener.next().await.payload["new"]["status"],
        json!("closed")
    );
}

#[tokio::test]
async fn one_statement_over_several_rows_sends_one_event_per_changed_row() {
    let (db, mut listener) = watched_table("several_rows").await;
    db.client
        .execute("UPDATE items SET status = 'closed'", &[])
        .await
        .unwrap();
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(listener.next().await.payload["id"].as_i64().unwrap());
    }
    ids.sort_unstable();
    assert_eq!(ids, [1, 2, 3]);
    listener.assert_silent().await;
}

#[tokio::test]
async fn hand_written_trigger_watching_two_columns() {
    let db = TestDatabase::with_schema(
        "hand_written",
        "CREATE TABLE t (id int PRIMARY KEY, a int, b int, c int);
             INSERT INTO t VALUES (1, 1, 1, 1);
             CREATE TRIGGER t_changed AFTER UPDATE ON t FOR EACH ROW
               EXECUTE FUNCTION notify_column_changed('t_ab', 'a', 'b');",
    )
    .await;
    let mut listener = db.listen("t_ab").await;
    db.client.execute("UPDATE t SET c = 2", &[]).await.unwrap();
    listener.assert_silent().await;
    db.client.execute("UPDATE t SET b = 2", &[]).await.unwrap();
    let payload = listener.next().await.payload;
    assert_eq!(payload["changed"], json!(["b"]));
    assert_eq!(payload["new"]["b"], json!(2));
}

#[tokio::test]
async fn composite_primary_key_is_an_object_in_key_order() {
    let db = TestDatabase::with_schema(
        "composite_key",
        "CREATE TABLE seats (note text, \"Row\" text, seat int, taken boolean,
                                 PRIMARY KEY (seat, \"Row\"));
             INSERT INTO seats VALUES ('x', 'B', 7, false);
             SELECT watch_column('seats', 'taken');",
    )
    .await;
    let mut listener = db.listen("seats_taken_changed").await;
    db.client
        .execute("UPDATE seats SET taken = true", &[])
        .await
        .unwrap();
    let received = listener.next().await;
    assert_eq!(received.payload["id"], json!({"seat": 7, "Row": "B"}));
    assert!(
        received.raw.contains(r#""id":{"seat":7,"Row":"B"}"#),
        "key columns come in key order: {}",
        received.raw
    );
}

#[tokio::test]
async fn primary_key_with_another_name_is_the_id() {
    let db = TestDatabase::with_schema(
        "named_key",
        "CREATE TABLE users (email text PRIMARY KEY, plan text);
             INSERT INTO users VALUES ('a@example.com', 'free');
             SELECT watch_column('users', 'plan');",
    )
    .await;
    let mut listener = db.listen("users_plan_changed").await;
    db.client
        .execute("UPDATE users SET plan = 'pro'", &[])
        .await
        .unwrap();
    assert_eq!(listener.next().await.payload["id"], json!("a@example.com"));
}

#[tokio::test]
async fn statement_level_trigger_with_transition_tables_sends_the_same_payloads() {
    let db = TestDatabase::with_schema(
        "statement_level",
        "CREATE TABLE s (id int PRIMARY KEY, state text, note text);
             INSERT INTO s SELECT g, 'open', 'n' || g FROM generate_series(1, 50) g;
             CREATE TRIGGER by_row AFTER UPDATE ON s FOR EACH ROW
               EXECUTE FUNCTION notify_column_changed('by_row', 'state');
             CREATE TRIGGER by_statement AFTER UPDATE ON s
               REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
               EXECUTE FUNCTION notify_column_changed('by_statement', 'state');",
    )
    .await;
    let mut by_row = db.listen("by_row").await;
    let mut by_statement = db.listen("by_statement").await;
    db.client
        .execute(
            "UPDATE s SET state = CASE WHEN id % 3 = 0 THEN 'open' ELSE 'closed' END",
            &[],
        )
        .await
        .unwrap();
    let mut row_payloads = Vec::new();
    let mut statement_payloads = Vec::new();
    for _ in 0..34 {
        row_payloads.push(by_row.next().await.raw);
        statement_payloads.push(by_statement.next().await.raw);
    }
    by_row.assert_silent().await;
    by_statement.assert_silent().await;
    row_payloads.sort();
    statement_payloads.sort();
    assert_eq!(row_payloads, statement_payloads);
}

#[tokio::test]
async fn statement_level_trigger_without_transition_tables_is_refused() {
    let db = TestDatabase::with_schema(
        "statement_no_tables",
        "CREATE TABLE s (id int PRIMARY KEY, state text);
             INSERT INTO s VALUES (1, 'a');
             CREATE TRIGGER bare AFTER UPDATE ON s FOR EACH STATEMENT
               EXECUTE FUNCTION notify_column_changed('c', 'state');",
    )
    .await;
    let error = db
        .client
        .execute("UPDATE s SET state = 'b'", &[])
        .await
        .unwrap_err();
    assert_eq!(integration_tests::sqlstate(&error), "39P01");
}
