//! A watch through the life of its table: renamed columns and tables, dropped columns and
//! tables, and DROP EXTENSION.

use integration_tests::{query_i64, sqlstate, TestDatabase};
use serde_json::json;
use tokio_postgres::Client;

async fn watched(name: &str) -> TestDatabase {
    let db = TestDatabase::with_schema(
        name,
        "CREATE TABLE orders (id int PRIMARY KEY, state text, total int, secret text);
             INSERT INTO orders VALUES (1, 'open', 10, 's');
             SELECT watch_columns('orders', '{state,total}', 'orders', exclude => '{secret}');",
    )
    .await;
    db
}

async fn watch_columns(client: &Client) -> Vec<Vec<String>> {
    client
        .query(
            "SELECT columns::text[] FROM column_watches ORDER BY trigger_name",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

#[tokio::test]
async fn renamed_column_keeps_notifying_under_its_new_name() {
    let db = watched("rename_column").await;
    let mut listener = db.listen("orders").await;
    db.run(
        "ALTER TABLE orders RENAME COLUMN state TO status;
             ALTER TABLE orders RENAME COLUMN secret TO hidden;",
    )
    .await;
    assert_eq!(watch_columns(&db.client).await, [["status", "total"]]);
    let exclude: Vec<String> = db
        .client
        .query_one("SELECT exclude_columns::text[] FROM column_watches", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(exclude, ["hidden"], "options follow the rename too");

    db.run("UPDATE orders SET status = 'paid'").await;
    let payload = listener.next().await.payload;
    assert_eq!(payload["changed"], json!(["status"]));
    assert_eq!(
        payload["new"],
        json!({"id": 1, "status": "paid", "total": 10})
    );
}

#[tokio::test]
async fn renamed_table_keeps_notifying() {
    let db = watched("rename_table").await;
    let mut listener = db.listen("orders").await;
    db.run("ALTER TABLE orders RENAME TO purchases").await;
    db.run("UPDATE purchases SET total = 11").await;
    let payload = listener.next().await.payload;
    assert_eq!(payload["table"], json!("purchases"));
    let listed: String = db
        .client
        .query_one("SELECT table_name::text FROM column_watches", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(listed, "purchases");
}

#[tokio::test]
async fn dropped_columns_leave_the_watch_and_the_last_one_ends_it() {
    let db = watched("drop_column").await;
    let mut listener = db.listen("orders").await;
    db.run("ALTER TABLE orders DROP COLUMN total").await;
    assert_eq!(watch_columns(&db.client).await, [["state"]]);
    db.run("UPDATE orders SET state = 'paid'").await;
    assert_eq!(listener.next().await.payload["changed"], json!(["state"]));

    db.run("ALTER TABLE orders DROP COLUMN state").await;
    assert!(watch_columns(&db.client).await.is_empty());
    let triggers = integration_tests::query_i64(
        &db.client,
        "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'orders'::regclass",
    )
    .await;
    assert_eq!(triggers, 0);
    db.run("UPDATE orders SET secret = 'x'").await;
    listener.assert_silent().await;
}

#[tokio::test]
async fn dropped_table_leaves_the_catalog() {
    let db = watched("drop_table").await;
    db.run("DROP TABLE orders").await;
    let rows =
        integration_tests::query_i64(&db.client, "SELECT count(*) FROM column_notify.watches")
            .await;
    assert_eq!(rows, 0);
}

#[tokio::test]
async fn drop_extension_refuses_while_watches_exist_and_cascade_removes_them() {
    let db = watched("drop_extension").await;
    let error = db
        .client
        .batch_execute("DROP EXTENSION pg_column_notify")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&error), "2BP01", "dependent_objects_still_exist");
    db.run("DROP EXTENSION pg_column_notify CASCADE").await;
    let triggers = integration_tests::query_i64(
        &db.client,
        "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'orders'::regclass",
    )
    .await;
    assert_eq!(triggers, 0, "CASCADE removed the watch triggers");
    db.run("UPDATE orders SET state = 'x'").await;
}

#[tokio::test]
async fn an_ordinary_table_owner_can_watch_rename_drop_and_read_durable_events() {
    let db = TestDatabase::with_schema("ordinary_owner", "DROP ROLE IF EXISTS pgcn_owner;
             CREATE ROLE pgcn_owner;
             GRANT CREATE ON SCHEMA public TO pgcn_owner;
             SET ROLE pgcn_owner;
             CREATE TABLE orders (id int PRIMARY KEY, state text, secret text);
             INSERT INTO orders VALUES (1, 'new', 's');
             SELECT watch_column('orders', 'state', 'orders', durable => true, exclude => '{secret}');").await;
    let mut listener = db.listen("orders").await;
    db.run(
        "UPDATE orders SET state = 'paid';
             ALTER TABLE orders RENAME COLUMN state TO status;
             UPDATE orders SET status = 'shipped';",
    )
    .await;
    assert_eq!(
        listener.next().await.payload["new"],
        json!({"id": 1, "state": "paid"})
    );
    assert_eq!(
        listener.next().await.payload["new"],
        json!({"id": 1, "status": "shipped"})
    );
    let replayed = query_i64(
        &db.client,
        "SELECT count(*) FROM column_notify.read_events('owner', 'orders')",
    )
    .await;
    assert_eq!(replayed, 2);

    db.run("ALTER TABLE orders DROP COLUMN secret; DROP TABLE orders;")
        .await;
    assert_eq!(
        query_i64(&db.client, "SELECT count(*) FROM column_watches").await,
        0
    );
    let error = db
        .client
        .batch_execute("SELECT column_notify.prune_events()")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&error), "42501", "pruning is for the log's owner");
    db.run("RESET ROLE; DROP OWNED BY pgcn_owner; DROP ROLE pgcn_owner;")
        .await;
}
