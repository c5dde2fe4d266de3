//! Upgrading an installed earlier version to the current one keeps its watches working.

use integration_tests::{query_i64, TestDatabase};
use serde_json::json;

#[tokio::test]
async fn watches_made_with_0_1_0_work_after_alter_extension_update() {
    let db = TestDatabase::with_schema(
        "upgrade",
        "DROP EXTENSION pg_column_notify;
             CREATE EXTENSION pg_column_notify VERSION '0.1.0';
             CREATE TABLE appointments (id int PRIMARY KEY, canceled boolean);
             INSERT INTO appointments VALUES (1, false);
             SELECT watch_column('appointments', 'canceled');",
    )
    .await;
    let mut listener = db.listen("appointments_canceled_changed").await;
    db.run("UPDATE appointments SET canceled = true").await;
    assert_eq!(
        listener.next().await.payload["new"]["canceled"],
        json!(true)
    );

    // Watching the same column again on 0.1.0's catalog replaces the watch, as it did.
    db.run("SELECT watch_column('appointments', 'canceled')")
        .await;

    db.run("ALTER EXTENSION pg_column_notify UPDATE").await;
    let version: String = db
        .client
        .query_one(
            "SELECT extversion FROM pg_extension WHERE extname = 'pg_column_notify'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, "0.5.0");

    db.run("UPDATE appointments SET canceled = false").await;
    assert_eq!(
        listener.next().await.payload["new"]["canceled"],
        json!(false)
    );
    let row = db
        .client
        .query_one("SELECT columns::text[], events FROM column_watches", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, Vec<String>>(0), ["canceled"]);
    assert_eq!(
        row.get::<_, Vec<String>>(1),
        ["update"],
        "old watches get the default events"
    );

    // The new interface works on the upgraded database.
    db.run(
        "SELECT watch_column('appointments', 'canceled', events => '{insert,update}');
             INSERT INTO appointments VALUES (2, true);",
    )
    .await;
    assert_eq!(listener.next().await.payload["op"], json!("INSERT"));
}

#[tokio::test]
async fn upgraded_schema_equals_a_fresh_install() {
    let db = TestDatabase::create("upgrade_schema").await;
    let describe = "SELECT string_agg(pg_describe_object(classid, objid, objsubid), E'\\n'
                                    ORDER BY pg_describe_object(classid, objid, objsubid))
                    FROM pg_depend
                    WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
                      AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_column_notify')";
    let fresh: String = db.client.query_one(describe, &[]).await.unwrap().get(0);
    db.run(
        "DROP EXTENSION pg_column_notify;
             CREATE EXTENSION pg_column_notify VERSION '0.1.0';
             ALTER EXTENSION pg_column_notify UPDATE;",
    )
    .await;
    let upgraded: String = db.client.query_one(describe, &[]).await.unwrap().get(0);
    // An upgraded database also keeps 0.4.0's names of the durable API (a fresh one has only
    // column_notify's); beside them, the same member objects either way.
    // (PostgreSQL 17 and later also list a view's row types as members: not counted.)
    let kept: Vec<&str> = upgraded
        .lines()
        .filter(|object| !fresh.lines().any(|line| line == *object))
        .filter(|object| !object.starts_with("type "))
        .collect();
    assert_eq!(
        kept,
        [
            "function ack_events(text,text,bigint)",
            "function prune_events(interval)",
            "function read_events(text,text,integer)",
            "view event_backlog"
        ]
    );
    assert!(fresh
        .lines()
        .all(|object| upgraded.lines().any(|line| line == object)));
    db.run(
        "ALTER EXTENSION pg_column_notify DROP FUNCTION ack_events(text, text, bigint);
         ALTER EXTENSION pg_column_notify DROP FUNCTION prune_events(interval);
         ALTER EXTENSION pg_column_notify DROP FUNCTION read_events(text, text, integer);
         ALTER EXTENSION pg_column_notify DROP VIEW event_backlog;
         DROP FUNCTION ack_events(text, text, bigint), prune_events(interval),
                       read_events(text, text, integer);
         DROP VIEW event_backlog;",
    )
    .await;
    // Columns, row security, and each function's rights and settings.
    let shape = "SELECT concat_ws(E'\n',
        (SELECT string_agg(table_name || '.' || column_name || ' ' || data_type, ', '
                           ORDER BY table_name, column_name)
         FROM information_schema.columns
         WHERE table_schema = 'column_notify' OR table_name IN ('column_watches', 'event_backlog')),
        (SELECT string_agg(p.polrelid::regclass::text || ' ' || p.polname || ' ' || p.polcmd::text || ' '
                           || coalesce(pg_get_expr(p.polqual, p.polrelid), '') || ' '
                           || coalesce(pg_get_expr(p.polwithcheck, p.polrelid), ''), E'\n'
                           ORDER BY p.polname)
         FROM pg_policy p),
        (SELECT string_agg(c.relname || ' ' || c.relrowsecurity::text, ', ' ORDER BY c.relname)
         FROM pg_class c WHERE c.relnamespace = 'column_notify'::regnamespace AND c.relkind = 'r'),
        (SELECT string_agg(p.oid::regprocedure::text || ' ' || p.prosecdef::text || ' '
                           || coalesce(p.proconfig::text, '-') || ' ' || (SELECT l.lanname::text FROM pg_language l WHERE l.oid = p.prolang), E'\n'
                           ORDER BY p.oid::regprocedure::text)
         FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.deptype = 'e'
         WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_column_notify')))";
    let upgraded_shape: String = db.client.query_one(shape, &[]).await.unwrap().get(0);
    db.run("DROP EXTENSION pg_column_notify; CREATE EXTENSION pg_column_notify;")
        .await;
    let fresh_shape: String = db.client.query_one(shape, &[]).await.unwrap().get(0);
    assert_eq!(upgraded_shape, fresh_shape);
}

#[tokio::test]
async fn durable_watches_made_with_0_2_0_keep_their_events_and_consumers_after_update() {
    let db = TestDatabase::with_schema(
        "upgrade_durable",
        "DROP EXTENSION pg_column_notify;
         CREATE EXTENSION pg_column_notify VERSION '0.2.0';
         CREATE TABLE orders (id int PRIMARY KEY, state text);
         INSERT INTO orders VALUES (1, 'new');
         SELECT watch_column('orders', 'state', 'orders', durable => true);
         UPDATE orders SET state = 'paid';",
    )
    .await;
    // This library writes a 0.2.0 log the way 0.2.0 did, and 0.2.0's read_events reads it.
    let before = query_i64(
        &db.client,
        "SELECT count(*) FROM read_events('billing', 'orders')",
    )
    .await;
    assert_eq!(before, 1);

    db.run("ALTER EXTENSION pg_column_notify UPDATE; UPDATE orders SET state = 'shipped';")
        .await;
    let states = integration_tests::query_texts(
        &db.client,
        "SELECT payload->'new'->>'state' FROM column_notify.read_events('billing', 'orders')",
    )
    .await;
    assert_eq!(states, ["paid", "shipped"]);
    assert_eq!(
        query_i64(
            &db.client,
            "SELECT count(*) FROM column_notify.consumers WHERE owner = (SELECT oid FROM pg_roles WHERE rolname = current_user)"
        )
        .await,
        1,
        "the consumer registered before the update belongs to its first reader"
    );
    assert_eq!(
        query_i64(
            &db.client,
            "SELECT count(*) FROM column_notify.events WHERE table_name = 'orders'::regclass"
        )
        .await,
        2
    );
    // 0.4.0's names still work after the update, through the functions they now call.
    let read = "SELECT count(*) FROM read_events('billing', 'orders', 10)";
    assert_eq!(query_i64(&db.client, read).await, 2);
    assert_eq!(
        query_i64(&db.client, "SELECT count(*) FROM event_backlog").await,
        1
    );
    db.run(
        "SELECT ack_events('billing', 'orders', (SELECT max(event_id) FROM column_notify.events));
         SELECT prune_events();",
    )
    .await;
    assert_eq!(query_i64(&db.client, read).await, 0);
    assert_eq!(
        query_i64(&db.client, "SELECT count(*) FROM column_notify.events").await,
        0
    );
}

#[tokio::test]
async fn watches_made_with_0_3_0_keep_working_and_take_filters_after_update() {
    let db = TestDatabase::with_schema(
        "upgrade_filters",
        "DROP EXTENSION pg_column_notify;
         CREATE EXTENSION pg_column_notify VERSION '0.3.0';
         CREATE TABLE orders (id int PRIMARY KEY, state text, total int);
         INSERT INTO orders VALUES (1, 'new', 10), (2, 'new', 200);
         SELECT watch_column('orders', 'state', 'orders', durable => true);",
    )
    .await;
    let mut listener = db.listen("orders").await;
    // This library keeps 0.3.0's install_watch and catalog working until the update.
    db.run("SELECT watch_column('orders', 'state', 'orders', events => '{update,insert}')")
        .await;
    db.run("UPDATE orders SET state = 'paid' WHERE id = 1")
        .await;
    assert_eq!(listener.next().await.payload["id"], json!(1));

    db.run("ALTER EXTENSION pg_column_notify UPDATE").await;
    db.run(
        "SELECT watch_column('orders', 'state', 'orders', filter => 'new.total > 100');
         UPDATE orders SET state = 'shipped';",
    )
    .await;
    assert_eq!(listener.next().await.payload["id"], json!(2));
    listener.assert_silent().await;
    let filter: String = db
        .client
        .query_one("SELECT filter FROM column_watches", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(filter, "(new.total > 100)");
    // The update installed the event trigger that makes a filter's columns dependencies.
    let error = db.error_of("ALTER TABLE orders DROP COLUMN total").await;
    assert_eq!(integration_tests::sqlstate(&error), "2BP01");
}

#[tokio::test]
async fn watches_made_with_0_4_0_keep_working_and_take_wal_delivery_after_update() {
    let db = TestDatabase::with_schema(
        "upgrade_delivery",
        "DROP EXTENSION pg_column_notify;
         CREATE EXTENSION pg_column_notify VERSION '0.4.0';
         CREATE TABLE orders (id int PRIMARY KEY, state text, total int);
         INSERT INTO orders VALUES (1, 'new', 10), (2, 'new', 200);
         SELECT watch_column('orders', 'state', 'orders', filter => 'new.total > 100');",
    )
    .await;
    let mut listener = db.listen("orders").await;
    // This library keeps 0.4.0's install_watch and catalog working until the update.
    db.run("SELECT watch_column('orders', 'total', 'totals', events => '{update,insert}')")
        .await;
    db.run("UPDATE orders SET state = 'paid'").await;
    assert_eq!(listener.next().await.payload["id"], json!(2));
    listener.assert_silent().await;

    db.run("ALTER EXTENSION pg_column_notify UPDATE").await;
    let deliveries = integration_tests::query_texts(
        &db.client,
        "SELECT channel || ' ' || delivery FROM column_watches ORDER BY channel",
    )
    .await;
    assert_eq!(deliveries, ["orders notify", "totals notify"]);
    db.run(
        "SELECT watch_column('orders', 'state', 'orders', delivery => 'wal');
         UPDATE orders SET state = 'shipped';",
    )
    .await;
    listener.assert_silent().await;
    assert_eq!(
        query_i64(
            &db.client,
            "SELECT count(*) FROM column_watches WHERE delivery = 'wal'"
        )
        .await,
        1
    );
}
