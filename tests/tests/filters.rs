//! Row filters (`filter => '...'`) over real connections: which changes are sent, in every
//! mode (plain, several events, batch, durable, include/exclude, partitions), how the
//! filter follows renames and drops, what is refused, and that no input runs other SQL.

use integration_tests::{
    connect_collecting_notices, query_i64, query_texts, sqlstate, Listener, TestDatabase,
};
use serde_json::{json, Value};

const APPOINTMENTS: &str = "
    CREATE TABLE appointments (id int PRIMARY KEY, clinic_id int, status text, canceled boolean);
    INSERT INTO appointments VALUES (1, 7, 'draft', false), (2, 8, 'open', false),
                                    (3, 7, 'open', NULL);";

async fn appointments(name: &str) -> TestDatabase {
    TestDatabase::with_schema(name, APPOINTMENTS).await
}

/// The ids of the next `count` notifications, then silence.
async fn ids(listener: &mut Listener, count: usize) -> Vec<Value> {
    let mut ids = Vec::new();
    for _ in 0..count {
        ids.push(listener.next().await.payload["id"].clone());
    }
    listener.assert_silent().await;
    ids
}

async fn filter_of(db: &TestDatabase, channel: &str) -> Option<String> {
    db.client
        .query_one(
            "SELECT filter FROM column_watches WHERE channel = $1",
            &[&channel],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn only_changes_the_filter_accepts_are_sent_and_null_is_false() {
    let db = appointments("filter_plain").await;
    db.run(
        "SELECT watch_column('appointments', 'canceled', 'canceled_true', filter => 'NEW.canceled')",
    )
    .await;
    let mut listener = db.listen("canceled_true").await;
    // true for 1 and 2; from NULL to false for 3: the column changed, the filter is false.
    db.run("UPDATE appointments SET canceled = (id <> 3)").await;
    assert_eq!(ids(&mut listener, 2).await, [json!(1), json!(2)]);
    // To NULL: the filter is NULL, which counts as false.
    db.run("UPDATE appointments SET canceled = NULL").await;
    listener.assert_silent().await;
    // A change the filter would accept but of no watched column: nothing, as without one.
    db.run("UPDATE appointments SET canceled = true WHERE id = 1; UPDATE appointments SET status = 'x'")
        .await;
    assert_eq!(ids(&mut listener, 1).await, [json!(1)]);
    assert_eq!(
        filter_of(&db, "canceled_true").await.as_deref(),
        Some("new.canceled")
    );

    // NULL means no filter: every change is sent again.
    db.run("SELECT watch_column('appointments', 'canceled', 'canceled_true', filter => NULL)")
        .await;
    assert_eq!(filter_of(&db, "canceled_true").await, None);
    db.run("UPDATE appointments SET canceled = false").await;
    assert_eq!(ids(&mut listener, 3).await.len(), 3);
}

#[tokio::test]
async fn one_filter_serves_every_event_with_the_missing_image_null() {
    let db = appointments("filter_events").await;
    db.run(
        "SELECT watch_columns('appointments', '{status}', 'status',
                              filter => 'NEW.clinic_id = 7 AND OLD.status <> ''draft''',
                              events => '{insert,update,delete}');
         SELECT watch_column('appointments', 'canceled', 'not_was_draft',
                             filter => 'old.status IS DISTINCT FROM ''draft''',
                             events => '{insert,update}');",
    )
    .await;
    assert_eq!(
        filter_of(&db, "status").await.as_deref(),
        Some("((new.clinic_id = 7) AND (old.status <> 'draft'::text))")
    );
    let mut status = db.listen("status").await;
    let mut not_was_draft = db.listen("not_was_draft").await;
    // INSERT: OLD.status is NULL, so `OLD.status <> 'draft'` is NULL: not sent; but
    // `OLD.status IS DISTINCT FROM 'draft'` is true: sent.
    db.run("INSERT INTO appointments VALUES (4, 7, 'open', false)")
        .await;
    status.assert_silent().await;
    let insert = not_was_draft.next().await.payload;
    assert_eq!(
        (insert["op"].clone(), insert["id"].clone()),
        (json!("INSERT"), json!(4))
    );
    // UPDATE: sent only where the old status was not draft and the clinic is 7.
    db.run("UPDATE appointments SET status = 'done'").await;
    assert_eq!(ids(&mut status, 2).await, [json!(3), json!(4)]);
    db.run("UPDATE appointments SET canceled = true").await;
    // Every status is 'done' now; all four changed canceled (3 from NULL).
    assert_eq!(ids(&mut not_was_draft, 4).await.len(), 4);
    // DELETE: NEW.clinic_id is NULL, so the filter is NULL: not sent.
    db.run("DELETE FROM appointments WHERE id = 4").await;
    status.assert_silent().await;
}

#[tokio::test]
async fn batched_watches_filter_each_row_of_the_statement() {
    let db = TestDatabase::with_schema(
        "filter_batch",
        "CREATE TABLE orders (id int PRIMARY KEY, status text, total int);
         INSERT INTO orders SELECT g, 'new', g FROM generate_series(1, 1000) g;
         SELECT watch_column('orders', 'status', 'orders', batch => true,
                             filter => 'new.total % 10 = 0');",
    )
    .await;
    let mut listener = db.listen("orders").await;
    db.run("UPDATE orders SET status = 'paid'").await;
    let mut ids = Vec::new();
    while ids.len() < 100 {
        let batch = listener.next().await.payload;
        for change in batch["changes"].as_array().expect("a batch") {
            ids.push(change["id"].as_i64().unwrap());
        }
    }
    listener.assert_silent().await;
    ids.sort_unstable();
    assert_eq!(ids, (1..=100).map(|n| n * 10).collect::<Vec<i64>>());
}

#[tokio::test]
async fn durable_watches_log_only_the_changes_the_filter_accepts() {
    let db = TestDatabase::with_schema(
        "filter_durable",
        "CREATE TABLE orders (id int PRIMARY KEY, status text, total int);
         INSERT INTO orders SELECT g, 'new', g FROM generate_series(1, 10) g;
         SELECT watch_column('orders', 'total', 'orders', durable => true,
                             filter => 'new.total > 105');
         UPDATE orders SET total = total + 100;",
    )
    .await;
    assert_eq!(
        query_i64(&db.client, "SELECT count(*) FROM column_notify.events").await,
        5
    );
    let totals = query_texts(
        &db.client,
        "SELECT payload->'new'->>'total' FROM column_notify.read_events('billing', 'orders')",
    )
    .await;
    assert_eq!(totals, ["106", "107", "108", "109", "110"]);
}

#[tokio::test]
async fn a_filter_may_use_a_column_the_payload_leaves_out() {
    let db = TestDatabase::with_schema(
        "filter_exclude",
        "CREATE TABLE users (id int PRIMARY KEY, email text, password_hash text, admin boolean);
         INSERT INTO users VALUES (1, 'a@x', 'h1', true), (2, 'b@x', 'h2', false);
         SELECT watch_column('users', 'email', 'admins', exclude => '{password_hash,admin}',
                             filter => 'new.admin');",
    )
    .await;
    let mut listener = db.listen("admins").await;
    db.run("UPDATE users SET email = email || '.org'").await;
    let payload = listener.next().await.payload;
    assert_eq!(payload["new"], json!({"id": 1, "email": "a@x.org"}));
    listener.assert_silent().await;
}

#[tokio::test]
async fn partitions_with_their_own_column_order_are_filtered_by_name() {
    let db = TestDatabase::with_schema(
        "filter_partitions",
        "CREATE TABLE shipments (region text, id int, state text, weight int,
                                 PRIMARY KEY (region, id)) PARTITION BY LIST (region);
         CREATE TABLE shipments_eu PARTITION OF shipments FOR VALUES IN ('eu');
         -- Made apart, with the columns in another order, then attached.
         CREATE TABLE shipments_us (weight int, state text, id int NOT NULL, region text NOT NULL);
         ALTER TABLE shipments ATTACH PARTITION shipments_us FOR VALUES IN ('us');
         INSERT INTO shipments VALUES ('eu', 1, 'packed', 5), ('eu', 2, 'packed', 50),
                                      ('us', 3, 'packed', 5), ('us', 4, 'packed', 50);
         SELECT watch_column('shipments', 'state', 'heavy', filter => 'new.weight >= 10');",
    )
    .await;
    let mut listener = db.listen("heavy").await;
    db.run("UPDATE shipments SET state = 'sent'").await;
    let mut seen = Vec::new();
    for _ in 0..2 {
        let payload = listener.next().await.payload;
        seen.push((payload["partition"].clone(), payload["id"]["id"].clone()));
    }
    listener.assert_silent().await;
    seen.sort_by_key(|(partition, _)| partition.to_string());
    assert_eq!(
        seen,
        [
            (json!("shipments_eu"), json!(2)),
            (json!("shipments_us"), json!(4))
        ]
    );
}

#[tokio::test]
async fn a_renamed_column_is_renamed_in_the_filter() {
    let db = appointments("filter_rename").await;
    db.run(
        "SELECT watch_column('appointments', 'status', 'status', filter => 'new.clinic_id = 7');
         ALTER TABLE appointments RENAME COLUMN clinic_id TO \"Clinic\";",
    )
    .await;
    assert_eq!(
        filter_of(&db, "status").await.as_deref(),
        Some("(new.\"Clinic\" = 7)")
    );
    // Also in a new session, which builds its plan from the trigger's rewritten text.
    let fresh = TestDatabase {
        client: integration_tests::connect(&db.url).await,
        url: db.url.clone(),
    };
    let mut listener = fresh.listen("status").await;
    fresh.run("UPDATE appointments SET status = 'x'").await;
    assert_eq!(ids(&mut listener, 2).await, [json!(1), json!(3)]);
    // A rename of a column the filter does not use leaves it alone.
    fresh
        .run("ALTER TABLE appointments RENAME COLUMN canceled TO cancelled")
        .await;
    assert_eq!(
        filter_of(&fresh, "status").await.as_deref(),
        Some("(new.\"Clinic\" = 7)")
    );
}

#[tokio::test]
async fn dropping_a_column_the_filter_uses_is_refused_without_cascade() {
    let db = appointments("filter_drop").await;
    db.run(
        "SELECT watch_column('appointments', 'status', 'status', filter => 'new.clinic_id = 7')",
    )
    .await;
    let error = db
        .error_of("ALTER TABLE appointments DROP COLUMN clinic_id")
        .await;
    assert_eq!(sqlstate(&error), "2BP01", "{error:?}");
    assert_eq!(
        filter_of(&db, "status").await.as_deref(),
        Some("(new.clinic_id = 7)")
    );

    let (client, mut notices) = connect_collecting_notices(&db.url).await;
    client
        .batch_execute("ALTER TABLE appointments DROP COLUMN clinic_id CASCADE")
        .await
        .unwrap();
    assert_eq!(
        query_i64(&db.client, "SELECT count(*) FROM column_watches").await,
        0,
        "the watch goes with its trigger"
    );
    assert_eq!(
        query_i64(
            &db.client,
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'appointments'::regclass"
        )
        .await,
        0
    );
    let mut said = Vec::new();
    while let Ok(notice) = notices.try_recv() {
        said.push(notice);
    }
    assert!(
        said.iter()
            .any(|notice| notice
                .contains("removed watch column_notify_status of table appointments")),
        "{said:?}"
    );
}

#[tokio::test]
async fn bad_filters_are_refused_with_postgresql_sqlstates_and_leave_nothing() {
    let db = appointments("filter_refusals").await;
    for (filter, code) in [
        ("", "22023"),
        ("   ", "22023"),
        ("new.status =", "42601"),
        ("new.nope", "42703"),
        ("status = 'x'", "42702"),
        ("new.clinic_id", "42804"),
        ("new.clinic_id IN (SELECT 7)", "0A000"),
        ("count(*) > 1", "42803"),
        ("row_number() OVER () > 1", "42P20"),
        ("generate_series(1, 2) > 1", "0A000"),
        ("new.xmin = old.xmin", "0A000"),
        ("nonexistent_function(new.id)", "42883"),
        // Not one expression: never a way to run other SQL.
        ("true); DROP TABLE appointments; --", "42601"),
        ("true; DROP TABLE appointments", "42601"),
        ("true FROM pg_class", "42601"),
        ("true, false", "42601"),
        ("true AS label", "42601"),
        ("true UNION SELECT false", "42601"),
        ("true; COMMIT; DROP TABLE appointments", "42601"),
        (
            "pg_catalog.pg_terminate_backend(pg_catalog.pg_backend_pid()) /* */ ) --",
            "42601",
        ),
    ] {
        let error = db
            .client
            .query_one(
                "SELECT watch_column('appointments', 'status', filter => $1)",
                &[&filter],
            )
            .await
            .expect_err(filter);
        assert_eq!(sqlstate(&error), code, "{filter}: {error:?}");
    }
    assert_eq!(
        query_i64(&db.client, "SELECT count(*) FROM column_watches").await,
        0
    );
    assert_eq!(
        query_i64(
            &db.client,
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'appointments'::regclass"
        )
        .await,
        0
    );
    assert_eq!(
        query_i64(&db.client, "SELECT count(*) FROM appointments").await,
        3,
        "the table is still there"
    );
}

#[tokio::test]
async fn the_writers_search_path_never_changes_what_a_filter_means() {
    let db = appointments("filter_search_path").await;
    db.run(
        "CREATE FUNCTION public.is_seven(int) RETURNS boolean LANGUAGE sql IMMUTABLE
             RETURN $1 = 7;
         SELECT watch_column('appointments', 'status', 'sevens',
                             filter => 'public.is_seven(new.clinic_id) AND new.id > 0');
         CREATE SCHEMA evil;
         CREATE FUNCTION evil.always(int, int) RETURNS boolean LANGUAGE sql RETURN true;
         CREATE OPERATOR evil.> (LEFTARG = int, RIGHTARG = int, FUNCTION = evil.always);
         CREATE FUNCTION evil.is_seven(int) RETURNS boolean LANGUAGE sql RETURN true;",
    )
    .await;
    // Names of other schemas are kept qualified; pg_catalog's operator is meant.
    assert_eq!(
        filter_of(&db, "sevens").await.as_deref(),
        Some("(public.is_seven(new.clinic_id) AND (new.id > 0))")
    );
    // An unqualified function of another schema is not found (names resolve in pg_catalog).
    let error = db
        .client
        .query_one(
            "SELECT watch_column('appointments', 'canceled', filter => 'is_seven(new.clinic_id)')",
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&error), "42883");

    let writer = TestDatabase {
        client: integration_tests::connect(&db.url).await,
        url: db.url.clone(),
    };
    let mut listener = writer.listen("sevens").await;
    writer
        .run("SET search_path = evil, pg_catalog; UPDATE public.appointments SET status = 'y'")
        .await;
    assert_eq!(ids(&mut listener, 2).await, [json!(1), json!(3)]);
}

#[tokio::test]
async fn a_filter_that_can_no_longer_be_read_sends_nothing_and_never_fails_the_write() {
    let db = appointments("filter_unusable").await;
    db.run(
        "CREATE FUNCTION public.is_seven(int) RETURNS boolean LANGUAGE sql IMMUTABLE
             RETURN $1 = 7;
         SELECT watch_column('appointments', 'status', 'sevens',
                             filter => 'public.is_seven(new.clinic_id)');
         ALTER FUNCTION public.is_seven(int) RENAME TO is_seven_renamed;",
    )
    .await;
    let (writer, mut notices) = connect_collecting_notices(&db.url).await;
    let mut listener = db.listen("sevens").await;
    writer
        .batch_execute("UPDATE appointments SET status = 'y'")
        .await
        .expect("the write commits");
    listener.assert_silent().await;
    let warning = notices.recv().await.expect("a warning");
    assert!(
        warning.contains(
            "the filter of trigger \"column_notify_status\" on public.appointments cannot be used"
        ),
        "{warning}"
    );
    assert_eq!(
        query_i64(
            &db.client,
            "SELECT count(*) FROM appointments WHERE status = 'y'"
        )
        .await,
        3
    );
}

#[tokio::test]
async fn an_error_the_filter_raises_fails_the_write_as_a_when_condition_does() {
    let db = appointments("filter_raises").await;
    db.run(
        "SELECT watch_column('appointments', 'status', 'ratio', filter => '100 / new.clinic_id > 1')",
    )
    .await;
    let error = db
        .error_of("UPDATE appointments SET status = 'x', clinic_id = 0 WHERE id = 1")
        .await;
    assert_eq!(sqlstate(&error), "22012", "{error:?}");
    // The same session goes on working, with the same plan.
    let mut listener = db.listen("ratio").await;
    db.run("UPDATE appointments SET status = 'y' WHERE id = 2")
        .await;
    assert_eq!(ids(&mut listener, 1).await, [json!(2)]);
}

#[tokio::test]
async fn a_hand_made_trigger_takes_a_filter_argument_checked_when_it_is_created() {
    let db = appointments("filter_by_hand").await;
    db.run(
        r#"CREATE TRIGGER sevens AFTER UPDATE ON appointments FOR EACH ROW
               EXECUTE FUNCTION notify_column_changed('sevens', 'status', '',
                                                      'filter="new.clinic_id = 7"')"#,
    )
    .await;
    let mut listener = db.listen("sevens").await;
    db.run("UPDATE appointments SET status = 'x'").await;
    assert_eq!(ids(&mut listener, 2).await, [json!(1), json!(3)]);
    // It depends on the filter's columns as a watch's trigger does.
    let error = db
        .error_of("ALTER TABLE appointments DROP COLUMN clinic_id")
        .await;
    assert_eq!(sqlstate(&error), "2BP01", "{error:?}");

    let error = db
        .error_of(
            r#"CREATE TRIGGER broken AFTER UPDATE ON appointments FOR EACH ROW
                   EXECUTE FUNCTION notify_column_changed('broken', 'status', '',
                                                          'filter="new.nope"')"#,
        )
        .await;
    assert_eq!(sqlstate(&error), "42703", "{error:?}");
    assert_eq!(
        query_i64(
            &db.client,
            "SELECT count(*) FROM pg_trigger WHERE tgname = 'broken'"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn filters_with_names_beyond_ascii_in_a_latin1_database_and_whole_rows() {
    let db = TestDatabase::create_with(
        "filter_latin1",
        "ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0",
    )
    .await;
    db.run(
        r#"CREATE TABLE "Gäste" (id int PRIMARY KEY, "prénom" text, n int);
           INSERT INTO "Gäste" VALUES (1, 'é', 1), (2, 'x', 2);
           SELECT watch_column('"Gäste"', 'n', 'gäste',
                               filter => 'new."prénom" = ''é'' AND new IS DISTINCT FROM old');"#,
    )
    .await;
    assert_eq!(
        filter_of(&db, "gäste").await.as_deref(),
        Some(r#"((new."prénom" = 'é'::text) AND (new.* IS DISTINCT FROM old.*))"#)
    );
    let mut listener = db.listen("gäste").await;
    db.run(r#"UPDATE "Gäste" SET n = n + 1"#).await;
    assert_eq!(ids(&mut listener, 1).await, [json!(1)]);
    db.run(r#"ALTER TABLE "Gäste" RENAME COLUMN "prénom" TO "Prénom""#)
        .await;
    assert_eq!(
        filter_of(&db, "gäste").await.as_deref(),
        Some(r#"((new."Prénom" = 'é'::text) AND (new.* IS DISTINCT FROM old.*))"#)
    );
    db.run(r#"UPDATE "Gäste" SET n = n + 1"#).await;
    assert_eq!(ids(&mut listener, 1).await, [json!(1)]);
}
