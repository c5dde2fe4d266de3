//! watch_column / unwatch_column / column_watches over a real connection: what they install,
//! how they refuse bad input (SQLSTATE, nothing left behind), and quoting of every name.

use integration_tests::{sqlstate, TestDatabase};
use serde_json::json;
use tokio_postgres::Client;

async fn watch_count(client: &Client) -> (i64, i64) {
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM column_watches),
                    (SELECT count(*) FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
                      WHERE p.proname = 'notify_column_changed')",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

async fn assert_refused(client: &Client, statement: &str, expected_sqlstate: &str) {
    let error = client
        .batch_execute(statement)
        .await
        .expect_err(&format!("{statement} must fail"));
    assert_eq!(
        sqlstate(&error),
        expected_sqlstate,
        "{statement}: {error:?}"
    );
    assert_eq!(
        watch_count(client).await,
        (0, 0),
        "{statement} left a watch behind"
    );
}

#[tokio::test]
async fn bad_input_is_refused_with_its_sqlstate_and_leaves_nothing() {
    let db = TestDatabase::with_schema(
        "refusals",
        "CREATE TABLE t (id int PRIMARY KEY, a int);
             CREATE TABLE no_key (a int);
             CREATE VIEW v AS SELECT * FROM t;",
    )
    .await;
    let c = &db.client;
    assert_refused(c, "SELECT watch_column('t', 'missing')", "42703").await;
    assert_refused(c, "SELECT watch_column('t', 'ctid')", "0A000").await;
    assert_refused(c, "SELECT watch_column('nowhere', 'a')", "42P01").await;
    assert_refused(c, "SELECT watch_column('v', 'a')", "42809").await;
    assert_refused(c, "SELECT watch_column('no_key', 'a')", "55000").await;
    assert_refused(c, "SELECT watch_column('t', 'a', '')", "22023").await;
    assert_refused(
        c,
        &format!("SELECT watch_column('t', 'a', '{}')", "c".repeat(64)),
        "22023",
    )
    .await;
    assert_refused(c, "SELECT watch_column(NULL, 'a')", "22004").await;
    assert_refused(c, "SELECT watch_column('t', NULL)", "22004").await;
    assert_refused(c, "SELECT unwatch_column('t', 'missing')", "42703").await;
    // Each function names its own argument, and PostgreSQL's way of naming a relation.
    for (statement, message) in [
        (
            "SELECT watch_column('t', NULL)",
            "argument \"col\" must not be null",
        ),
        (
            "SELECT watch_columns('t', ARRAY[NULL]::name[])",
            "argument \"cols\" must not contain NULL",
        ),
        (
            "SELECT watch_column('t', 'missing')",
            "column \"missing\" of relation \"t\" does not exist",
        ),
        (
            "SELECT watch_column('no_key', 'a')",
            "table \"no_key\" has no primary key",
        ),
    ] {
        let error = db.error_of(statement).await;
        assert_eq!(
            error.as_db_error().map(|db| db.message()),
            Some(message),
            "{statement}"
        );
    }

    // 63 bytes is the longest usable channel name.
    let longest = "c".repeat(63);
    let row = c
        .query_one("SELECT watch_column('t', 'a', $1)", &[&longest])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), longest);
}

#[tokio::test]
async fn non_owner_is_refused() {
    let db = TestDatabase::with_schema(
        "non_owner",
        "DROP ROLE IF EXISTS pgcn_stranger;
             CREATE ROLE pgcn_stranger;
             CREATE TABLE t (id int PRIMARY KEY, a int);
             GRANT SELECT, UPDATE, TRIGGER ON t TO pgcn_stranger;",
    )
    .await;
    assert_refused(
        &db.client,
        "SET ROLE pgcn_stranger; SELECT watch_column('t', 'a')",
        "42501",
    )
    .await;
    db.run("RESET ROLE; DROP OWNED BY pgcn_stranger; DROP ROLE pgcn_stranger")
        .await;
}

#[tokio::test]
async fn watch_lists_replaces_and_unwatches() {
    let db = TestDatabase::create("lifecycle").await;
    let c = &db.client;
    c.batch_execute("CREATE TABLE orders (id int PRIMARY KEY, state text, total int)")
        .await
        .unwrap();

    let channel: String = c
        .query_one("SELECT watch_column('orders', 'state')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        channel, "orders_state_changed",
        "default channel is <table>_<column>_changed"
    );
    let channel: String = c
        .query_one("SELECT watch_column('orders', 'state', 'orders')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(channel, "orders");
    assert_eq!(watch_count(c).await, (1, 1), "watching again replaces");

    let row = c
        .query_one(
            "SELECT table_name::text, columns::text[], channel, trigger_name::text FROM column_watches",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "orders");
    assert_eq!(row.get::<_, Vec<String>>(1), ["state"]);
    assert_eq!(row.get::<_, String>(2), "orders");
    assert_eq!(row.get::<_, String>(3), "column_notify_state");

    let removed: bool = c
        .query_one("SELECT unwatch_column('orders', 'state')", &[])
        .await
        .unwrap()
        .get(0);
    assert!(removed);
    assert_eq!(watch_count(c).await, (0, 0));
    let removed: bool = c
        .query_one("SELECT unwatch_column('orders', 'state')", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!removed, "unwatching what is not watched reports false");
}

#[tokio::test]
async fn names_that_need_quoting_just_work() {
    let db = TestDatabase::create("quoting").await;
    let c = &db.client;
    c.batch_execute(
        r#"CREATE SCHEMA "My ""Schema"" ü";
           CREATE TABLE "My ""Schema"" ü"."Order Lines ""x""" ("Key" int PRIMARY KEY, "état ""q"" col" text);
           INSERT INTO "My ""Schema"" ü"."Order Lines ""x""" VALUES (1, 'a');"#,
    )
    .await
    .unwrap();
    let channel = r#"chan 'quote" ü"#;
    let installed: String = c
        .query_one(
            r#"SELECT watch_column('"My ""Schema"" ü"."Order Lines ""x"""', 'état "q" col', $1)"#,
            &[&channel],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(installed, channel);
    let mut listener = db.listen(channel).await;
    c.batch_execute(r#"UPDATE "My ""Schema"" ü"."Order Lines ""x""" SET "état ""q"" col" = 'b'"#)
        .await
        .unwrap();
    let received = listener.next().await;
    assert_eq!(received.channel, channel);
    assert_eq!(received.payload["id"], json!(1));
    assert_eq!(received.payload["schema"], json!(r#"My "Schema" ü"#));
    assert_eq!(received.payload["table"], json!(r#"Order Lines "x""#));
    assert_eq!(received.payload["new"][r#"état "q" col"#], json!("b"));
}

#[tokio::test]
async fn injection_through_the_channel_is_inert() {
    let db = TestDatabase::create("injection").await;
    let c = &db.client;
    c.batch_execute(
        "CREATE TABLE victim (id int PRIMARY KEY, a int); INSERT INTO victim VALUES (1, 1);",
    )
    .await
    .unwrap();
    let channel = "x'); DROP TABLE victim; --";
    c.query_one("SELECT watch_column('victim', 'a', $1)", &[&channel])
        .await
        .unwrap();
    let mut listener = db.listen(channel).await;
    c.batch_execute("UPDATE victim SET a = 2").await.unwrap();
    assert_eq!(listener.next().await.channel, channel);
    let rows = integration_tests::query_i64(c, "SELECT count(*) FROM victim").await;
    assert_eq!(rows, 1, "the table survived");
}

#[tokio::test]
async fn replacing_a_watch_says_what_changed() {
    let db = TestDatabase::with_schema(
        "replacing",
        "CREATE TABLE orders (id int PRIMARY KEY, state text);
         SELECT watch_column('orders', 'state', 'orders', events => '{insert,update}',
                             durable => true);",
    )
    .await;
    let (client, mut notices) = integration_tests::connect_collecting_notices(&db.url).await;
    // The same columns again, with durable and insert left out: said, not silent.
    client
        .batch_execute("SELECT watch_column('orders', 'state', 'orders', events => '{update}')")
        .await
        .unwrap();
    assert_eq!(
        notices.recv().await.unwrap(),
        "replacing the watch of public.orders (state): events {insert,update} -> {update}, \
         durable true -> false"
    );
    // The same watch again: nothing to say.
    client
        .batch_execute(
            "SELECT watch_column('orders', 'state', 'orders', events => '{update}');
             SELECT watch_column('orders', 'state', 'orders_changes', filter => 'new.id > 1');",
        )
        .await
        .unwrap();
    assert_eq!(
        notices.recv().await.unwrap(),
        "replacing the watch of public.orders (state): channel orders -> orders_changes, \
         filter none -> (new.id > 1)"
    );
    assert!(
        notices.try_recv().is_err(),
        "one notice per change of options"
    );
}
