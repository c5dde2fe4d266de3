//! watch_columns and the options of a watch, over real connections: several columns,
//! events, keys, types without `=`, payload shaping, oversize rows, refusals and quoting.

use integration_tests::{sqlstate, Listener, TestDatabase};
use serde_json::json;

async fn watch_and_listen(db: &TestDatabase, watch: &str, channel: &str) -> Listener {
    db.client.batch_execute(watch).await.expect("watch");
    db.listen(channel).await
}

#[tokio::test]
async fn several_columns_one_trigger_says_which_changed() {
    let db = TestDatabase::with_schema(
        "several_columns",
        "CREATE TABLE a (id int PRIMARY KEY, status text, due date, note text);
         INSERT INTO a VALUES (1, 'open', '2024-01-01', 'x');",
    )
    .await;
    let mut listener = watch_and_listen(
        &db,
        "SELECT watch_columns('a', '{status,due}', 'a_changed')",
        "a_changed",
    )
    .await;
    let triggers = integration_tests::query_i64(
        &db.client,
        "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'a'::regclass",
    )
    .await;
    assert_eq!(triggers, 1);

    db.run("UPDATE a SET note = 'y'").await;
    listener.assert_silent().await;
    db.run("UPDATE a SET due = '2024-02-01'").await;
    assert_eq!(listener.next().await.payload["changed"], json!(["due"]));
    db.run("UPDATE a SET status = 'done', due = NULL").await;
    assert_eq!(
        listener.next().await.payload["changed"],
        json!(["status", "due"])
    );
}

#[tokio::test]
async fn insert_and_delete_on_request() {
    let db = TestDatabase::with_schema("events", "CREATE TABLE e (id int PRIMARY KEY, state text)")
        .await;
    let mut listener = watch_and_listen(
        &db,
        "SELECT watch_column('e', 'state', 'e', events => '{insert,update,delete}')",
        "e",
    )
    .await;
    db.run(
        "INSERT INTO e VALUES (1, 'new');
             UPDATE e SET state = 'done';
             DELETE FROM e;",
    )
    .await;
    let insert = listener.next().await.payload;
    assert_eq!(
        (insert["op"].clone(), insert["old"].clone()),
        (json!("INSERT"), json!(null))
    );
    assert_eq!(insert["new"], json!({"id": 1, "state": "new"}));
    assert_eq!(listener.next().await.payload["op"], json!("UPDATE"));
    let delete = listener.next().await.payload;
    assert_eq!(
        (delete["op"].clone(), delete["new"].clone()),
        (json!("DELETE"), json!(null))
    );
    assert_eq!(delete["old"], json!({"id": 1, "state": "done"}));

    // The default is update only.
    db.run("SELECT watch_column('e', 'state', 'e')").await;
    db.run("INSERT INTO e VALUES (2, 'x'); DELETE FROM e;")
        .await;
    listener.assert_silent().await;
}

#[tokio::test]
async fn explicit_key_and_changed_keys() {
    let db = TestDatabase::with_schema(
        "keys",
        "CREATE TABLE no_pk (code text UNIQUE NOT NULL, state text);
         INSERT INTO no_pk VALUES ('A1', 'x');
         CREATE TABLE pk (id int PRIMARY KEY, state text);
         INSERT INTO pk VALUES (1, 'x');",
    )
    .await;
    let error = db
        .client
        .batch_execute("SELECT watch_column('no_pk', 'state')")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&error), "55000");

    let mut listener = watch_and_listen(
        &db,
        "SELECT watch_column('no_pk', 'state', 'k', key => '{code}')",
        "k",
    )
    .await;
    db.run("UPDATE no_pk SET state = 'y'").await;
    assert_eq!(listener.next().await.payload["id"], json!("A1"));

    db.run("SELECT watch_columns('pk', '{id,state}', 'k')")
        .await;
    db.run("UPDATE pk SET id = 2").await;
    let payload = listener.next().await.payload;
    assert_eq!(
        (payload["id"].clone(), payload["new_id"].clone()),
        (json!(1), json!(2))
    );
    db.run("UPDATE pk SET state = 'z'").await;
    assert!(
        listener.next().await.payload.get("new_id").is_none(),
        "new_id only when the key changed"
    );
}

#[tokio::test]
async fn types_without_equality_compare_by_value() {
    let db = TestDatabase::with_schema(
        "no_equality",
        "CREATE TABLE t (id int PRIMARY KEY, j json, p point, x xml);
         INSERT INTO t VALUES (1, '{\"a\": 1}', '(1,2)', '<a/>');",
    )
    .await;
    let mut listener =
        watch_and_listen(&db, "SELECT watch_columns('t', '{j,p,x}', 't')", "t").await;
    db.run("UPDATE t SET j = '{\"a\": 1}', p = '(1,2)', x = '<a/>'")
        .await;
    listener.assert_silent().await;
    db.run("UPDATE t SET p = '(3,4)'").await;
    let payload = listener.next().await.payload;
    assert_eq!(payload["changed"], json!(["p"]));
    assert_eq!(payload["new"]["p"], json!("(3,4)"));
    db.run("UPDATE t SET j = NULL").await;
    assert_eq!(listener.next().await.payload["changed"], json!(["j"]));
}

#[tokio::test]
async fn payload_shaping_includes_or_excludes_columns() {
    let db = TestDatabase::with_schema(
        "shaping",
        "CREATE TABLE users (id int PRIMARY KEY, email text, plan text, password_hash text);
         INSERT INTO users VALUES (1, 'a@example.com', 'free', 'secret-hash');",
    )
    .await;
    let mut hidden = watch_and_listen(
        &db,
        "SELECT watch_columns('users', '{plan,password_hash}', 'hidden', exclude => '{password_hash}')",
        "hidden",
    )
    .await;
    db.run("UPDATE users SET password_hash = 'new-hash'").await;
    let received = hidden.next().await;
    assert_eq!(received.payload["changed"], json!(["password_hash"]));
    assert_eq!(
        received.payload["new"],
        json!({"id": 1, "email": "a@example.com", "plan": "free"})
    );
    assert!(
        !received.raw.contains("hash\":\""),
        "no hash value in {}",
        received.raw
    );

    db.run("SELECT unwatch_column('users', 'plan')").await;
    let mut shown = watch_and_listen(
        &db,
        "SELECT watch_column('users', 'plan', 'shown', include => '{plan,id}')",
        "shown",
    )
    .await;
    db.run("UPDATE users SET plan = 'pro'").await;
    let payload = shown.next().await.payload;
    assert_eq!(
        payload["old"],
        json!({"id": 1, "plan": "free"}),
        "table order, only included"
    );
    assert_eq!(payload["new"], json!({"id": 1, "plan": "pro"}));
}

#[tokio::test]
async fn oversize_rows_send_a_reduced_payload_and_the_write_commits() {
    let db = TestDatabase::with_schema(
        "oversize",
        "CREATE TABLE docs (id int PRIMARY KEY, state text, body text);
         INSERT INTO docs VALUES (1, 'draft', repeat('x', 20000));
         CREATE TABLE big_keys (k text PRIMARY KEY, state text);
         INSERT INTO big_keys VALUES (repeat('k', 9000), 'a');",
    )
    .await;
    let mut listener = watch_and_listen(
        &db,
        "SELECT watch_column('docs', 'state', 'big'); SELECT watch_column('big_keys', 'state', 'big');",
        "big",
    )
    .await;
    db.run("UPDATE docs SET state = 'published'").await;
    let received = listener.next().await;
    assert!(received.raw.len() < 8000);
    assert_eq!(received.payload["truncated"], json!(true));
    assert_eq!(received.payload["id"], json!(1));
    assert_eq!(received.payload["changed"], json!(["state"]));
    assert!(received.payload.get("old").is_none() && received.payload.get("new").is_none());

    db.run("UPDATE big_keys SET state = 'b'").await;
    let received = listener.next().await;
    assert_eq!(received.payload["truncated"], json!(true));
    assert_eq!(received.payload["table"], json!("big_keys"));
    assert!(
        received.payload.get("id").is_none(),
        "a key this large cannot be sent"
    );

    let states: Vec<String> = db
        .client
        .query(
            "SELECT state FROM docs UNION ALL SELECT state FROM big_keys",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(states, ["published", "b"], "both writes committed");
}

#[tokio::test]
async fn without_metadata_the_payload_is_the_reference_payload() {
    let db = TestDatabase::with_schema(
        "without_metadata",
        r#"CREATE TABLE appointments (id bigint PRIMARY KEY, canceled boolean, title text,
                                      starts_at timestamptz, "Room №" numeric);
           INSERT INTO appointments VALUES (1, false, 'a "quoted" title', '2024-05-01 10:00+02', 1.50);
           CREATE FUNCTION reference_notify() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN
             PERFORM pg_notify('reference', json_build_object(
                 'id', OLD.id, 'old', row_to_json(OLD), 'new', row_to_json(NEW))::text);
             RETURN NEW;
           END $$;
           CREATE TRIGGER reference AFTER UPDATE ON appointments FOR EACH ROW
               EXECUTE FUNCTION reference_notify();
           CREATE TABLE docs (id int PRIMARY KEY, state text, body text);
           INSERT INTO docs VALUES (1, 'draft', repeat('x', 20000));
           CREATE TABLE big_keys (k text PRIMARY KEY, state text);
           INSERT INTO big_keys VALUES (repeat('k', 9000), 'a');"#,
    )
    .await;
    let mut ours = watch_and_listen(
        &db,
        "SELECT watch_column('appointments', 'canceled', 'ours', metadata => false)",
        "ours",
    )
    .await;
    let mut reference = db.listen("reference").await;
    db.run("UPDATE appointments SET canceled = true").await;
    let (ours_received, reference_received) = (ours.next().await, reference.next().await);
    assert_eq!(ours_received.payload, reference_received.payload);
    assert!(
        ours_received.raw.len() < reference_received.raw.len(),
        "{} is not shorter than {}",
        ours_received.raw,
        reference_received.raw
    );
    let listed = integration_tests::query_i64(
        &db.client,
        "SELECT count(*) FROM column_watches WHERE NOT metadata AND channel = 'ours'",
    )
    .await;
    assert_eq!(listed, 1, "column_watches shows the option");

    let mut reduced = watch_and_listen(
        &db,
        "SELECT watch_column('docs', 'state', 'reduced', metadata => false);
         SELECT watch_column('big_keys', 'state', 'reduced', metadata => false);",
        "reduced",
    )
    .await;
    db.run("UPDATE docs SET state = 'published'; UPDATE big_keys SET state = 'b'")
        .await;
    assert_eq!(
        reduced.next().await.payload,
        json!({"id": 1, "truncated": true})
    );
    let received = reduced.next().await;
    assert_eq!(received.raw, r#"{"truncated":true,"id_truncated":true}"#);
}

#[tokio::test]
async fn option_refusals_have_their_sqlstate_and_leave_nothing() {
    let db = TestDatabase::with_schema(
        "option_refusals",
        "CREATE TABLE t (id int PRIMARY KEY, a int, b int);
         ALTER TABLE t DROP COLUMN b;",
    )
    .await;
    let refusals = [
        ("SELECT watch_column('t', 'b')", "42703"),
        ("SELECT watch_column('t', 'xmin')", "0A000"),
        ("SELECT watch_columns('t', '{}')", "22023"),
        ("SELECT watch_columns('t', '{a,a}')", "42701"),
        (
            "SELECT watch_columns('t', ARRAY['a', NULL]::name[])",
            "22004",
        ),
        (
            "SELECT watch_column('t', 'a', events => '{upsert}')",
            "22023",
        ),
        ("SELECT watch_column('t', 'a', events => '{}')", "22023"),
        ("SELECT watch_column('t', 'a', events => NULL)", "22004"),
        ("SELECT watch_column('t', 'a', key => '{nope}')", "42703"),
        ("SELECT watch_column('t', 'a', key => '{}')", "22023"),
        (
            "SELECT watch_column('t', 'a', include => '{a}', exclude => '{id}')",
            "22023",
        ),
        (
            "SELECT watch_column('t', 'a', exclude => '{nope}')",
            "42703",
        ),
        ("SELECT watch_column('t', 'a', metadata => NULL)", "22004"),
    ];
    for (statement, expected) in refusals {
        let error = db.client.batch_execute(statement).await.unwrap_err();
        assert_eq!(sqlstate(&error), expected, "{statement}");
    }
    let left = integration_tests::query_i64(&db.client, "SELECT (SELECT count(*) FROM column_watches) + (SELECT count(*) FROM pg_trigger WHERE tgrelid = 't'::regclass)").await;
    assert_eq!(left, 0, "no trigger and no catalog row left behind");
}

#[tokio::test]
async fn injection_through_every_name_is_inert() {
    let db = TestDatabase::with_schema(
        "injection_names",
        r#"CREATE TABLE victim (id int PRIMARY KEY, "a'); DROP TABLE victim; --" int, "b"")--" int);
           INSERT INTO victim VALUES (1, 1, 1);"#,
    )
    .await;
    let channel = "c'); DROP TABLE victim; --";
    let mut listener = watch_and_listen(
        &db,
        &format!(
            r#"SELECT watch_columns('victim', ARRAY['a''); DROP TABLE victim; --', 'b")--'],
                                    '{}', key => '{{id}}', exclude => ARRAY['b")--'])"#,
            channel.replace('\'', "''")
        ),
        channel,
    )
    .await;
    db.run(r#"UPDATE victim SET "a'); DROP TABLE victim; --" = 2"#)
        .await;
    let payload = listener.next().await.payload;
    assert_eq!(payload["changed"], json!(["a'); DROP TABLE victim; --"]));
    assert_eq!(
        payload["new"],
        json!({"id": 1, "a'); DROP TABLE victim; --": 2})
    );
    let rows = integration_tests::query_i64(&db.client, "SELECT count(*) FROM victim").await;
    assert_eq!(rows, 1, "the table survived");
}
