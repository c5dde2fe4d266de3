//! NOTIFY queue pressure degrades delivery, never a commit: above
//! `pg_column_notify.max_queue_usage` notifications are held back (set very low here, so the
//! path is tested on every major, whose queue cannot always be made small).

use integration_tests::{connect_collecting_notices, query_i64, TestDatabase};

#[tokio::test]
async fn above_the_queue_limit_writes_commit_and_consumers_learn_what_they_missed() {
    let db = TestDatabase::with_schema(
        "queue_pressure",
        "CREATE TABLE plain (id int PRIMARY KEY, v int);
         CREATE TABLE logged (id int PRIMARY KEY, v int);
         INSERT INTO plain SELECT g, 0 FROM generate_series(1, 1000) g;
         INSERT INTO logged SELECT g, 0 FROM generate_series(1, 1000) g;
         SELECT watch_column('plain', 'v', 'plain_v');
         SELECT watch_column('logged', 'v', 'logged_v', durable => true);",
    )
    .await;
    let mut plain = db.listen("plain_v").await;
    let mut logged = db.listen("logged_v").await;
    let (writer, mut notices) = connect_collecting_notices(&db.url).await;
    writer
        .batch_execute("SET pg_column_notify.max_queue_usage = 0")
        .await
        .unwrap();

    // Twenty 1,000-row updates, alternating the plain and the durable watch: every commit
    // succeeds, and each says what it held back.
    for round in 0..20 {
        let table = if round % 2 == 0 { "plain" } else { "logged" };
        writer
            .batch_execute(&format!("UPDATE {table} SET v = v + 1"))
            .await
            .unwrap_or_else(|error| panic!("round {round}: {error}"));
        let warning = notices.recv().await.expect("a WARNING per transaction");
        assert!(
            warning.contains("held back 1000 notification(s)"),
            "{warning}"
        );
    }
    plain.assert_silent().await;
    logged.assert_silent().await;

    // The durable consumer reads every committed event.
    assert_eq!(
        query_i64(
            &db.client,
            "SELECT count(*) FROM column_notify.read_events('audit', 'logged_v', 100000)"
        )
        .await,
        10_000
    );

    // Once the pressure is gone, the next notification of each channel says how many of
    // its channel's notifications were held back before it.
    writer
        .batch_execute(
            "RESET pg_column_notify.max_queue_usage;
             UPDATE plain SET v = v + 1 WHERE id = 1;
             UPDATE logged SET v = v + 1 WHERE id = 1;",
        )
        .await
        .unwrap();
    let next = plain.next().await;
    assert!(next.raw.starts_with(r#"{"skipped":10000,"#), "{}", next.raw);
    assert_eq!(next.payload["id"], 1);
    let next = logged.next().await;
    assert_eq!(next.payload["skipped"], 10_000);
    // And only that one.
    writer
        .batch_execute("UPDATE plain SET v = v + 1 WHERE id = 2")
        .await
        .unwrap();
    assert_eq!(plain.next().await.payload.get("skipped"), None);
}

#[tokio::test]
async fn a_batch_reports_what_was_held_back_in_its_first_change() {
    let db = TestDatabase::with_schema(
        "queue_pressure_batch",
        "CREATE TABLE t (id int PRIMARY KEY, v int);
         INSERT INTO t SELECT g, 0 FROM generate_series(1, 50) g;
         SELECT watch_column('t', 'v', 't_v', batch => true);",
    )
    .await;
    let mut listener = db.listen("t_v").await;
    // Statements sent together run in one transaction: these are three.
    for statement in [
        "SET pg_column_notify.max_queue_usage = 0; UPDATE t SET v = v + 1",
        "RESET pg_column_notify.max_queue_usage",
        "UPDATE t SET v = v + 1 WHERE id = 7",
    ] {
        db.run(statement).await;
    }
    let next = listener.next().await;
    assert!(
        next.raw.starts_with(r#"{"changes":[{"skipped":1,"#),
        "{}",
        next.raw
    );
}
