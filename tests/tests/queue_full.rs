//! A listener stuck inside a transaction while the NOTIFY queue fills: every write still
//! commits. On PostgreSQL 17 and later the queue can be made small
//! (`max_notify_queue_pages = 64`, 512 kB); the server is restarted for it, so the test
//! needs PGCN_RESTART_CMD (set by `make test` for the private cluster) and is alone in its
//! file. Elsewhere it says so and checks nothing; `queue_pressure.rs` drives the same path
//! with `pg_column_notify.max_queue_usage` on every major.

use integration_tests::{connect, connect_collecting_notices, query_i64, server_url, TestDatabase};

async fn restart_server() {
    let command = std::env::var("PGCN_RESTART_CMD").expect("checked by the caller");
    let status = tokio::process::Command::new("sh")
        .args(["-c", &command])
        .status()
        .await
        .expect("the restart command runs");
    assert!(status.success(), "the restart command failed: {status}");
}

async fn set_queue_pages(pages: Option<u32>) {
    let admin = connect(&server_url()).await;
    let statement = match pages {
        Some(pages) => format!("ALTER SYSTEM SET max_notify_queue_pages = {pages}"),
        None => "ALTER SYSTEM RESET max_notify_queue_pages".to_owned(),
    };
    admin.batch_execute(&statement).await.expect(&statement);
    drop(admin);
    restart_server().await;
}

#[tokio::test]
async fn a_stuck_listener_never_fails_a_write() {
    let version = query_i64(
        &connect(&server_url()).await,
        "SELECT current_setting('server_version_num')::bigint",
    )
    .await;
    if version < 170_000 || std::env::var("PGCN_RESTART_CMD").is_err() {
        println!("skipped: needs PostgreSQL 17 or later and PGCN_RESTART_CMD (the queue's size is fixed before 17)");
        return;
    }
    set_queue_pages(Some(64)).await;
    let outcome = tokio::spawn(fill_the_queue_under_a_stuck_listener()).await;
    set_queue_pages(None).await;
    if let Err(failure) = outcome {
        std::panic::resume_unwind(failure.into_panic());
    }
}

async fn fill_the_queue_under_a_stuck_listener() {
    let db = TestDatabase::with_schema(
        "queue_full",
        "CREATE TABLE plain (id int PRIMARY KEY, v int, note text);
         CREATE TABLE logged (id int PRIMARY KEY, v int, note text);
         CREATE TABLE reference (id int PRIMARY KEY, v int, note text);
         INSERT INTO plain SELECT g, 0, repeat('x', 400) FROM generate_series(1, 1000) g;
         INSERT INTO logged SELECT * FROM plain;
         INSERT INTO reference SELECT id, v, repeat('x', 700) FROM plain;
         SELECT watch_column('plain', 'v', 'plain_v');
         SELECT watch_column('logged', 'v', 'logged_v', durable => true);
         CREATE FUNCTION reference_notify() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             PERFORM pg_notify('reference_v', row_to_json(NEW)::text);
             RETURN NEW;
         END $$;
         CREATE TRIGGER reference_notify AFTER UPDATE ON reference FOR EACH ROW
             EXECUTE FUNCTION reference_notify();",
    )
    .await;
    let mut plain = db.listen("plain_v").await;
    // The stuck listener: it listens, then stays inside a transaction, so the queue cannot
    // be cleaned past what it has not read.
    let stuck = connect(&db.url).await;
    stuck
        .batch_execute("LISTEN plain_v; LISTEN logged_v; BEGIN; SELECT 1")
        .await
        .unwrap();

    let (writer, mut notices) = connect_collecting_notices(&db.url).await;
    let mut warnings = 0;
    for round in 0..20 {
        let table = if round % 2 == 0 { "plain" } else { "logged" };
        writer
            .batch_execute(&format!("UPDATE {table} SET v = v + 1"))
            .await
            .unwrap_or_else(|error| panic!("round {round} failed: {error}"));
        // PostgreSQL warns too, from half full on ("NOTIFY queue is 50% full").
        while let Ok(warning) = notices.try_recv() {
            assert!(
                warning.contains("held back") || warning.starts_with("NOTIFY queue is"),
                "{warning}"
            );
            warnings += usize::from(warning.contains("held back"));
        }
    }
    assert!(warnings > 0, "the queue's pressure was said");
    // The stuck session ends. PostgreSQL advances the queue's tail only as notifications
    // are written; the queue stood at the extension's ceiling (90%), so it takes the
    // documented nudge: a few pages of notifications on a channel nobody listens to.
    stuck.batch_execute("ROLLBACK").await.unwrap();
    drop(stuck);
    writer
        .batch_execute(
            "SELECT pg_notify('pg_column_notify_cleanup', repeat('x', 7000))
             FROM generate_series(1, 5)",
        )
        .await
        .unwrap();
    let mut usage = 1.0;
    for _ in 0..100 {
        usage = db
            .client
            .query_one("SELECT pg_notification_queue_usage()", &[])
            .await
            .unwrap()
            .get::<_, f64>(0);
        if usage < 0.5 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        usage < 0.5,
        "the queue was cleaned once the stuck session ended: {usage}"
    );
    assert_eq!(
        query_i64(
            &db.client,
            "SELECT count(*) FROM column_notify.read_events('audit', 'logged_v', 100000)"
        )
        .await,
        10_000,
        "every committed durable event is readable"
    );
    // Drain what the live listener got, then the next notification says what it missed.
    while tokio::time::timeout(std::time::Duration::from_millis(500), plain.next())
        .await
        .is_ok()
    {}
    writer
        .batch_execute("UPDATE plain SET v = v + 1 WHERE id = 1")
        .await
        .unwrap();
    let next = plain.next().await;
    assert!(
        next.payload["skipped"].as_u64().unwrap_or(0) > 0,
        "{}",
        next.raw
    );
    // Last (PostgreSQL leaves what a failed commit wrote in the queue, so it stays full
    // until the server restarts): the plpgsql trigger the extension replaces fails at
    // commit on a statement whose notifications the queue cannot hold (1,000 rows of
    // 700 bytes, about 90 pages of 64), where the watches' statements all committed.
    let failed = writer
        .batch_execute("UPDATE reference SET v = v + 1")
        .await
        .expect_err("a plain NOTIFY trigger with a full queue");
    let message = failed.as_db_error().map(|error| error.message().to_owned());
    assert_eq!(
        message.as_deref(),
        Some("too many notifications in the NOTIFY queue"),
        "{failed:?}"
    );
}
