//! `column-notify relay` end to end: a real PostgreSQL, a real `nats-server` with JetStream,
//! the relay as a process that is killed and started again. What the stream holds at the end
//! is compared with the durable log: every committed event once, in event-id order, nothing
//! rolled back.

use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use column_notify_listener::tokio_postgres::Client;
use column_notify_listener::{connect_client, TlsVerification};
use support::*;

/// The durable log of `channel`: (event id, payload) in id order.
async fn logged(client: &Client, channel: &str) -> Vec<(i64, String)> {
    client
        .query(
            "SELECT event_id, payload::text FROM column_notify.events
             WHERE channel = $1 ORDER BY event_id",
            &[&channel],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

/// Checks that the stream holds the log of `channel` exactly: each event once, in id order,
/// under `<prefix>.<channel>`, with `Nats-Msg-Id: <channel>:<id>` and the log's payload.
async fn assert_stream_is_the_log(
    client: &Client,
    context: &jetstream::Context,
    stream: &str,
    prefix: &str,
    channel: &str,
) {
    let log = logged(client, channel).await;
    let entries = wait_for_entries(context, stream, log.len(), Duration::from_secs(60)).await;
    let subject = format!("{prefix}.{channel}");
    let relayed: Vec<(String, String)> = entries
        .into_iter()
        .filter(|entry| entry.subject == subject)
        .map(|entry| (entry.message_id, entry.body))
        .collect();
    let expected: Vec<(String, String)> = log
        .into_iter()
        .map(|(event_id, payload)| (format!("{channel}:{event_id}"), payload))
        .collect();
    assert_eq!(relayed.len(), expected.len(), "as many messages as events");
    assert!(
        relayed == expected,
        "the stream holds the log, once, in order"
    );
}

/// Starts `column-notify relay` on `channels`; returns it with its stderr lines.
fn start_relay(
    database: &str,
    nats: &str,
    consumer: &str,
    extra: &[&str],
    channels: &[&str],
) -> (ChildGuard, Receiver<String>) {
    let (child, _stdout, stderr) = spawn_piped(
        column_notify!()
            .arg("relay")
            .args(channels)
            .args(["--consumer", consumer, "--nats-url", nats])
            .args(extra)
            .env("DATABASE_URL", database),
    );
    (ChildGuard(child), stderr)
}

/// The next stderr line containing `text`; panics past `within` or when the relay exits.
fn wait_for_line(stderr: &Receiver<String>, text: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match stderr.recv_timeout(left) {
            Ok(line) if line.contains(text) => return line,
            Ok(_) => {}
            Err(error) => panic!("no stderr line with {text:?} ({error})"),
        }
    }
}

/// Commits `commits` single-row updates of `items` in transactions of their own, rolling
/// back one in four others between them (whose events must never be relayed). A
/// transaction cut by a terminated connection is not counted; the writer reconnects.
async fn write_with_rollbacks(url: String, seed: u64, commits: usize, keys: i32) {
    let mut client = connect_client(&url, &TlsVerification::default())
        .await
        .unwrap();
    let mut random = seed;
    let mut committed = 0;
    while committed < commits {
        random = random
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let id = (random >> 33) as i32 % keys + 1;
        let commit = !(random >> 20).is_multiple_of(4);
        let end = if commit { "COMMIT" } else { "ROLLBACK" };
        let written = client
            .batch_execute(&format!(
                "BEGIN; UPDATE items SET version = version + 1 WHERE id = {id}; {end}"
            ))
            .await;
        match written {
            Ok(()) => {
                committed += usize::from(commit);
                // Paced, so that the relay is disturbed while the writers write.
                if committed.is_multiple_of(10) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            Err(error)
                if client.is_closed()
                    || error
                        .as_db_error()
                        .is_some_and(|db| db.code().code().starts_with("57P")) =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
                client = connect_client(&url, &TlsVerification::default())
                    .await
                    .unwrap();
            }
            Err(error) => panic!("a write failed: {error}"),
        }
    }
}

#[tokio::test]
async fn every_committed_event_once_in_order_through_relay_kills_and_a_broker_restart() {
    let mut nats = NatsServer::start();
    let db = DurableDatabase::create("relay_chaos", 50).await;
    let (mut relay, stderr) = start_relay(&db.url, &nats.url(), "to_nats", &[], &["items"]);
    wait_for_line(&stderr, "caught up at event 0", Duration::from_secs(20));
    // Each relay's stderr is read to the end: a relay must never write to a closed pipe.
    let mut outputs = vec![stderr];

    let writers: Vec<_> = (0..4)
        .map(|seed| tokio::spawn(write_with_rollbacks(db.url.clone(), seed + 1, 1000, 50)))
        .collect();
    // Mid-stream: the relay is SIGKILLed twice and started again, the broker restarted once.
    for round in 0..3 {
        // Disturbed while the writers write: at 800, 1600 and 2400 committed events.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let committed = logged(&db.client, "items").await.len();
            assert!(
                committed < 4000,
                "the writers are still writing at disturbance {round}"
            );
            if committed >= 800 * (round + 1) {
                break;
            }
            assert!(Instant::now() < deadline, "the writers are too slow");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if round < 2 {
            signal(&relay, "KILL");
            wait(&mut relay, Duration::from_secs(5));
            let stderr;
            (relay, stderr) = start_relay(&db.url, &nats.url(), "to_nats", &[], &["items"]);
            outputs.push(stderr);
        } else {
            nats.restart();
        }
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let context = nats.jetstream().await;
    assert_stream_is_the_log(
        &db.client,
        &context,
        "COLUMN_NOTIFY",
        "column_notify",
        "items",
    )
    .await;
    assert_eq!(logged(&db.client, "items").await.len(), 4000);

    signal(&relay, "INT");
    assert_eq!(wait(&mut relay, Duration::from_secs(10)).code(), Some(0));
    drop(outputs);
}

#[tokio::test]
async fn no_duplicate_after_a_crash_between_publish_and_acknowledgement_past_the_window() {
    let nats = NatsServer::start();
    let context = nats.jetstream().await;
    // The operator's stream, with a duplicate window of 1 s: used as it is.
    context
        .create_stream(jetstream::stream::Config {
            name: "SHORT_WINDOW".into(),
            subjects: vec!["short.>".into()],
            duplicate_window: Duration::from_secs(1),
            ..Default::default()
        })
        .await
        .unwrap();
    let db = DurableDatabase::create("relay_window", 5).await;
    db.client
        .batch_execute("UPDATE items SET version = 1")
        .await
        .unwrap();
    let options = ["--stream", "SHORT_WINDOW", "--subject-prefix", "short"];
    let (mut relay, stderr) = start_relay(&db.url, &nats.url(), "short", &options, &["items"]);
    wait_for_line(
        &stderr,
        "stream SHORT_WINDOW found",
        Duration::from_secs(20),
    );
    wait_for_entries(&context, "SHORT_WINDOW", 5, Duration::from_secs(20)).await;
    signal(&relay, "INT");
    assert_eq!(wait(&mut relay, Duration::from_secs(10)).code(), Some(0));

    // Three more events; the first reaches the stream as a relay publishes it, and the
    // relay dies before it acknowledges it in PostgreSQL.
    db.client
        .batch_execute("UPDATE items SET version = 2 WHERE id <= 3")
        .await
        .unwrap();
    let log = logged(&db.client, "items").await;
    let (event_id, payload) = log[5].clone();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", format!("items:{event_id}").as_str());
    context
        .publish_with_headers("short.items", headers, payload.into())
        .await
        .unwrap()
        .await
        .unwrap();
    // Down for longer than the duplicate window: JetStream alone would take it again.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let (mut relay, stderr) = start_relay(&db.url, &nats.url(), "short", &options, &["items"]);
    let line = wait_for_line(&stderr, "already holds", Duration::from_secs(20));
    assert!(line.contains(&format!("up to {event_id}")), "{line}");
    wait_for_line(&stderr, "caught up", Duration::from_secs(20));
    assert_stream_is_the_log(&db.client, &context, "SHORT_WINDOW", "short", "items").await;
    signal(&relay, "TERM");
    assert_eq!(wait(&mut relay, Duration::from_secs(10)).code(), Some(0));
}

#[tokio::test]
async fn a_standby_takes_over_when_the_active_relay_dies_and_never_publishes_beside_it() {
    let nats = NatsServer::start();
    let db = DurableDatabase::create("relay_standby", 20).await;
    let (mut first, first_err) = start_relay(&db.url, &nats.url(), "pair", &[], &["items"]);
    wait_for_line(
        &first_err,
        "active as consumer pair",
        Duration::from_secs(20),
    );
    let (mut second, second_err) = start_relay(&db.url, &nats.url(), "pair", &[], &["items"]);
    wait_for_line(&second_err, "standby", Duration::from_secs(20));

    let writer = tokio::spawn(write_with_rollbacks(db.url.clone(), 7, 1500, 20));
    let context = nats.jetstream().await;
    wait_for_entries(&context, "COLUMN_NOTIFY", 300, Duration::from_secs(60)).await;
    signal(&first, "KILL");
    wait(&mut first, Duration::from_secs(5));
    let started = Instant::now();
    wait_for_line(
        &second_err,
        "active as consumer pair",
        Duration::from_secs(10),
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "taken over within seconds"
    );

    // The first relay comes back as the standby; then every connection of the database is
    // terminated: whichever relay wins the lock publishes, the other waits.
    let (mut first, first_err) = start_relay(&db.url, &nats.url(), "pair", &[], &["items"]);
    wait_for_line(&first_err, "standby", Duration::from_secs(20));
    wait_for_entries(&context, "COLUMN_NOTIFY", 800, Duration::from_secs(60)).await;
    db.client
        .batch_execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()
               AND backend_type = 'client backend'",
        )
        .await
        .unwrap();
    writer.await.unwrap();
    let db_client = connect_client(&db.url, &TlsVerification::default())
        .await
        .unwrap();
    assert_stream_is_the_log(
        &db_client,
        &context,
        "COLUMN_NOTIFY",
        "column_notify",
        "items",
    )
    .await;

    for relay in [&mut first, &mut second] {
        signal(relay, "INT");
        assert_eq!(wait(relay, Duration::from_secs(10)).code(), Some(0));
    }
    drop(first_err);
}

#[tokio::test]
async fn bad_arguments_and_setups_are_refused_with_status_2() {
    let nats = NatsServer::start();
    let plain_nats = NatsServer::start_without_jetstream();
    let db = DurableDatabase::create("relay_refusals", 3).await;
    db.client
        .batch_execute(
            "CREATE TABLE plain (id int PRIMARY KEY, state text);
             SELECT watch_column('plain', 'state', 'not_durable');",
        )
        .await
        .unwrap();
    let context = nats.jetstream().await;
    context
        .create_stream(jetstream::stream::Config {
            name: "ELSEWHERE".into(),
            subjects: vec!["elsewhere.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let jetstream_url = nats.url();
    let plain_url = plain_nats.url();
    let cases: Vec<(Vec<&str>, bool, &str)> = vec![
        (
            vec![
                "items",
                "--consumer",
                "c",
                "--nats-url",
                &jetstream_url,
                "-d",
                "service=nowhere",
            ],
            false,
            "definition of service \"nowhere\" not found",
        ),
        (
            vec!["items", "--nats-url", &jetstream_url],
            true,
            "--consumer <NAME>",
        ),
        (vec!["items", "--consumer", "c"], true, "--nats-url <URL>"),
        (
            vec!["nowhere", "--consumer", "c", "--nats-url", &jetstream_url],
            true,
            "channel \"nowhere\" has no durable watch",
        ),
        (
            vec![
                "not_durable",
                "--consumer",
                "c",
                "--nats-url",
                &jetstream_url,
            ],
            true,
            "(its watches are not durable)",
        ),
        (
            vec!["items", "--consumer", "", "--nats-url", &jetstream_url],
            true,
            "the consumer name is empty",
        ),
        (
            vec!["a b", "--consumer", "c", "--nats-url", &jetstream_url],
            true,
            "cannot be part of a NATS subject",
        ),
        (
            vec!["items", "--consumer", "c", "--nats-url", &plain_url],
            true,
            "JetStream is not available",
        ),
        (
            vec![
                "items",
                "--consumer",
                "c",
                "--nats-url",
                &jetstream_url,
                "--stream",
                "ELSEWHERE",
            ],
            true,
            "do not cover column_notify.>",
        ),
    ];
    for (args, with_database, message) in cases {
        let mut command = column_notify!();
        command.arg("relay").args(&args).env_remove("NATS_URL");
        if with_database {
            command.env("DATABASE_URL", &db.url);
        }
        let output = command.output().unwrap();
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert_eq!(
            stderr.lines().filter(|line| line.contains("error")).count(),
            1,
            "{args:?}: {stderr}"
        );
    }
}
