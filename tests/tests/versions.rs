//! Behaviour that differs between PostgreSQL majors: generated columns (virtual ones from
//! 18 on), MERGE (15 on), MERGE ... RETURNING and MERGE into a view (17 on), writes through
//! a view. A test whose feature the server lacks says so and passes without checking.

use integration_tests::{query_i64, sqlstate, Received, TestDatabase};
use serde_json::json;
use serde_json::value::RawValue;

/// The server's major version (14, 15, ...).
async fn server_major(db: &TestDatabase) -> i64 {
    query_i64(
        &db.client,
        "SELECT current_setting('server_version_num')::int8 / 10000",
    )
    .await
}

/// Whether the server is at least `major`; prints why the caller stops if not.
async fn needs(db: &TestDatabase, major: i64, feature: &str) -> bool {
    let server = server_major(db).await;
    if server < major {
        eprintln!("not checked: {feature} needs PostgreSQL {major}, the server is {server}");
    }
    server >= major
}

/// The reference trigger of the README (any event), on `table`, sending to `reference`.
fn reference_trigger(table: &str) -> String {
    format!(
        r#"CREATE FUNCTION reference_notify() RETURNS trigger AS $trigger$
           BEGIN
             PERFORM pg_notify('reference',
               json_build_object('op', TG_OP, 'old', row_to_json(OLD), 'new', row_to_json(NEW))::text);
             RETURN NULL;
           END;
           $trigger$ LANGUAGE plpgsql;
           CREATE TRIGGER reference_trigger AFTER INSERT OR UPDATE OR DELETE ON {table}
             FOR EACH ROW EXECUTE FUNCTION reference_notify();"#
    )
}

#[derive(serde::Deserialize)]
struct Rows<'a> {
    #[serde(borrow)]
    old: &'a RawValue,
    #[serde(borrow)]
    new: &'a RawValue,
}

/// Asserts that `ours` carries `old` and `new` byte for byte as the reference trigger does.
fn assert_rows_equal(ours: &Received, reference: &Received) {
    let mine: Rows = serde_json::from_str(&ours.raw).expect("our payload is JSON");
    let theirs: Rows = serde_json::from_str(&reference.raw).expect("reference payload");
    assert_eq!(
        mine.old.get(),
        theirs.old.get(),
        "old differs: {}",
        ours.raw
    );
    assert_eq!(
        mine.new.get(),
        theirs.new.get(),
        "new differs: {}",
        ours.raw
    );
}

#[tokio::test]
async fn generated_columns_are_in_the_payload_as_row_to_json_shows_them() {
    let db = TestDatabase::create("versions_generated").await;
    // Virtual generated columns (PostgreSQL 18's default kind) are NULL in the rows an
    // AFTER trigger gets; the payload must show exactly what row_to_json(NEW) shows.
    let virtual_column = if server_major(&db).await >= 18 {
        ", area_virtual int GENERATED ALWAYS AS (w * h) VIRTUAL"
    } else {
        ""
    };
    db.run(&format!(
        "CREATE TABLE shapes (id int PRIMARY KEY, w int, h int,
             area_stored int GENERATED ALWAYS AS (w * h) STORED{virtual_column});
         INSERT INTO shapes (id, w, h) VALUES (1, 2, 3);
         SELECT watch_column('shapes', 'w', 'ours', events => '{{insert,update,delete}}');
         {}",
        reference_trigger("shapes")
    ))
    .await;
    let mut ours = db.listen("ours").await;
    let mut reference = db.listen("reference").await;
    for statement in [
        "UPDATE shapes SET w = 5",
        "INSERT INTO shapes (id, w, h) VALUES (2, 7, 1)",
        "DELETE FROM shapes WHERE id = 2",
    ] {
        db.run(statement).await;
        assert_rows_equal(&ours.next().await, &reference.next().await);
    }
    let update_row = {
        db.run("UPDATE shapes SET w = 6 WHERE id = 1").await;
        reference.next().await;
        ours.next().await.payload
    };
    assert_eq!(update_row["new"]["area_stored"], json!(18));
    if !virtual_column.is_empty() {
        assert_eq!(update_row["new"]["area_virtual"], json!(null));
    }
}

#[tokio::test]
async fn a_virtual_generated_column_cannot_be_watched_or_be_the_key() {
    let db = TestDatabase::create("versions_virtual").await;
    if !needs(&db, 18, "virtual generated columns").await {
        return;
    }
    db.run(
        "CREATE TABLE shapes (id int PRIMARY KEY, w int, h int,
             area int GENERATED ALWAYS AS (w * h) VIRTUAL);",
    )
    .await;
    for call in [
        "SELECT watch_column('shapes', 'area')",
        "SELECT watch_column('shapes', 'w', key => '{area}')",
        "SELECT watch_columns('shapes', '{w,area}')",
    ] {
        let error = db.client.batch_execute(call).await.expect_err(call);
        assert_eq!(sqlstate(&error), "0A000", "{call}: {error:?}");
    }
    assert_eq!(
        query_i64(&db.client, "SELECT count(*) FROM column_watches").await,
        0,
        "a refused call leaves nothing behind"
    );
    // Hiding it, or naming it among the columns shown, is fine.
    db.run(
        "SELECT watch_column('shapes', 'w', 'hidden', exclude => '{area}');
         SELECT watch_column('shapes', 'h', 'shown', include => '{id,area}');",
    )
    .await;
}

#[tokio::test]
async fn merge_notifies_its_updates_inserts_and_deletes() {
    let db = TestDatabase::create("versions_merge").await;
    if !needs(&db, 15, "MERGE").await {
        return;
    }
    db.run(&format!(
        "CREATE TABLE stock (id int PRIMARY KEY, qty int);
         INSERT INTO stock VALUES (1, 10), (2, 20);
         CREATE TABLE delivery (id int, qty int);
         INSERT INTO delivery VALUES (1, 5), (2, -20), (3, 7);
         SELECT watch_column('stock', 'qty', 'ours', events => '{{insert,update,delete}}');
         {}",
        reference_trigger("stock")
    ))
    .await;
    let mut ours = db.listen("ours").await;
    let mut reference = db.listen("reference").await;
    db.run(
        "MERGE INTO stock s USING delivery d ON s.id = d.id
           WHEN MATCHED AND s.qty + d.qty = 0 THEN DELETE
           WHEN MATCHED THEN UPDATE SET qty = s.qty + d.qty
           WHEN NOT MATCHED THEN INSERT VALUES (d.id, d.qty)",
    )
    .await;
    let mut ops = Vec::new();
    for _ in 0..3 {
        let (mine, theirs) = (ours.next().await, reference.next().await);
        assert_eq!(mine.payload["op"], theirs.payload["op"]);
        assert_rows_equal(&mine, &theirs);
        ops.push(mine.payload["op"].as_str().unwrap().to_owned());
    }
    ops.sort();
    assert_eq!(ops, ["DELETE", "INSERT", "UPDATE"]);
    ours.assert_silent().await;
}

#[tokio::test]
async fn merge_returning_and_merge_into_a_view_notify() {
    let db = TestDatabase::create("versions_merge_view").await;
    db.run(
        "CREATE TABLE stock (id int PRIMARY KEY, qty int);
         INSERT INTO stock VALUES (1, 10);
         CREATE VIEW stock_view AS SELECT id, qty FROM stock;
         SELECT watch_column('stock', 'qty', 'ours', events => '{insert,update}');",
    )
    .await;
    let mut ours = db.listen("ours").await;

    // Writing through an automatically updatable view fires the table's triggers.
    db.run("UPDATE stock_view SET qty = 11 WHERE id = 1").await;
    assert_eq!(ours.next().await.payload["new"]["qty"], json!(11));

    if !needs(&db, 17, "MERGE ... RETURNING and MERGE into a view").await {
        return;
    }
    let returned = db
        .client
        .query(
            "MERGE INTO stock s USING (VALUES (1, 12), (2, 1)) AS d(id, qty) ON s.id = d.id
               WHEN MATCHED THEN UPDATE SET qty = d.qty
               WHEN NOT MATCHED THEN INSERT VALUES (d.id, d.qty)
             RETURNING merge_action(), s.id",
            &[],
        )
        .await
        .expect("MERGE ... RETURNING");
    assert_eq!(returned.len(), 2);
    let mut seen = [ours.next().await.payload, ours.next().await.payload];
    seen.sort_by_key(|payload| payload["id"].as_i64());
    assert_eq!(
        (&seen[0]["op"], &seen[0]["new"]["qty"]),
        (&json!("UPDATE"), &json!(12))
    );
    assert_eq!(
        (&seen[1]["op"], &seen[1]["new"]["qty"]),
        (&json!("INSERT"), &json!(1))
    );

    db.run(
        "MERGE INTO stock_view v USING (VALUES (1, 13)) AS d(id, qty) ON v.id = d.id
           WHEN MATCHED THEN UPDATE SET qty = d.qty",
    )
    .await;
    let through_view = ours.next().await.payload;
    assert_eq!(
        (&through_view["op"], &through_view["new"]["qty"]),
        (&json!("UPDATE"), &json!(13))
    );
    ours.assert_silent().await;
}
