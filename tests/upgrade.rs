//! Upgrading an installed 0.1.0 to the current version keeps its watches working.

use integration_tests::TestDatabase;
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
    assert_eq!(version, "0.2.0");

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
    assert_eq!(upgraded, fresh, "the same member objects either way");
    let columns = "SELECT string_agg(column_name || ' ' || data_type, ', ' ORDER BY column_name)
                   FROM information_schema.columns WHERE table_name IN ('watches', 'column_watches')";
    let upgraded_columns: String = db.client.query_one(columns, &[]).await.unwrap().get(0);
    db.run("DROP EXTENSION pg_column_notify; CREATE EXTENSION pg_column_notify;")
        .await;
    let fresh_columns: String = db.client.query_one(columns, &[]).await.unwrap().get(0);
    assert_eq!(upgraded_columns, fresh_columns);
}
