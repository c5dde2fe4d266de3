//! What the integration tests share: the server's URL, unique channels, a sender
//! connection that plays the extension's part with `pg_notify`, and payloads shaped like the
//! extension's.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use column_notify_listener::tokio_postgres::Client;
use column_notify_listener::{connect_client, Change, Event, Listener, TlsVerification};
use serde_json::{json, Value};

/// The server, from `DATABASE_URL`.
pub fn database_url() -> String {
    std::env::var("DATABASE_URL").expect(
        "DATABASE_URL is not set: point it at a PostgreSQL server \
         (for the project's cluster: DATABASE_URL=$(bash scripts/cluster.sh url))",
    )
}

/// `DATABASE_URL` with an application name, to find the listener's backend.
pub fn url_named(application_name: &str) -> String {
    let url = database_url();
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}application_name={application_name}")
}

/// A name no other test (or test run) uses.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "cnl_{prefix}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A plain connection for sending notifications and running queries.
pub async fn sender() -> Client {
    connect_client_to(&database_url()).await
}

/// A plain connection to `url`.
pub async fn connect_client_to(url: &str) -> Client {
    connect_client(url, &TlsVerification::default())
        .await
        .expect("a connection")
}

/// `SELECT pg_notify(channel, payload)`, committed.
pub async fn notify(client: &Client, channel: &str, payload: &str) {
    client
        .execute("SELECT pg_notify($1, $2)", &[&channel, &payload])
        .await
        .expect("pg_notify");
}

/// The row of appointment `id`.
pub fn row(id: i64, canceled: bool) -> Value {
    json!({"id": id, "canceled": canceled, "starts_at": "2026-01-02T10:00:00"})
}

/// A payload as the extension sends it for appointment `id` being canceled.
pub fn change_payload(id: i64) -> String {
    json!({
        "id": id,
        "old": row(id, false),
        "new": row(id, true),
        "op": "UPDATE",
        "schema": "public",
        "table": "appointments",
        "changed": ["canceled"],
    })
    .to_string()
}

/// Asserts that `change` is the one `change_payload(id)` describes.
pub fn assert_change(change: &Change, id: i64) {
    assert_eq!(change.id, json!(id));
    assert_eq!(change.old, Some(row(id, false)));
    assert_eq!(change.new, Some(row(id, true)));
    assert_eq!(change.table.as_deref(), Some("appointments"));
    assert_eq!(change.changed, ["canceled"]);
}

/// The next event, within 10 s.
pub async fn next(listener: &mut Listener) -> Event {
    listener
        .recv_timeout(Duration::from_secs(10))
        .await
        .expect("an event within 10 s")
}

/// The next event, which must be a change on `channel`.
pub async fn next_change(listener: &mut Listener, channel: &str) -> Change {
    match next(listener).await {
        Event::Change {
            channel: received,
            change,
        } => {
            assert_eq!(received, channel);
            *change
        }
        other => panic!("expected a change, got {other:?}"),
    }
}

/// Skips connection events until `Reconnected`, checking that the gap is reported: first
/// `Lost`, then only failed attempts, then `Reconnected { may_have_missed: true }`.
pub async fn expect_gap(listener: &mut Listener, within: Duration) {
    use column_notify_listener::ConnectionEvent;
    let mut lost = false;
    loop {
        let event = listener
            .recv_timeout(within)
            .await
            .expect("the gap is reported in time");
        match event {
            Event::Connection(ConnectionEvent::Lost { error }) => {
                assert!(!lost, "one loss reported once");
                assert!(!error.is_empty());
                lost = true;
            }
            Event::Connection(ConnectionEvent::ReconnectFailed { attempt, .. }) => {
                assert!(lost, "attempts come after the loss");
                assert!(attempt >= 1);
            }
            Event::Connection(ConnectionEvent::Reconnected {
                may_have_missed,
                attempts,
                ..
            }) => {
                assert!(lost, "the loss is reported before the reconnection");
                assert!(may_have_missed);
                assert!(attempts >= 1);
                return;
            }
            other => panic!("expected connection events, got {other:?}"),
        }
    }
}

/// A backoff for tests: 50 ms doubling to 500 ms.
pub fn quick_backoff() -> column_notify_listener::Backoff {
    column_notify_listener::Backoff::new(Duration::from_millis(50), Duration::from_millis(500))
}

/// The command that restarts the server, from `PGCN_RESTART_CMD`; `None` (and a message
/// saying the test is skipped) when it is not set.
pub fn restart_command() -> Option<String> {
    let command = std::env::var("PGCN_RESTART_CMD").ok();
    if command.is_none() {
        println!("skipped: set PGCN_RESTART_CMD to a command that restarts the server");
    }
    command
}

/// Runs the restart command, which must succeed; returns how long it took.
pub async fn restart_server(command: String) -> Duration {
    let started = std::time::Instant::now();
    let status = tokio::task::spawn_blocking(move || {
        std::process::Command::new("sh")
            .args(["-c", &command])
            .status()
    })
    .await
    .unwrap()
    .expect("the restart command runs");
    assert!(status.success(), "the restart command failed: {status}");
    started.elapsed()
}

/// A listener on `channel` that retries quickly (50 ms doubling to 500 ms), with the
/// given health check, shown working with change 1; and the sender that proved it.
pub async fn reconnecting_listener(
    url: String,
    channel: &str,
    health: column_notify_listener::HealthCheck,
) -> (Listener, Client) {
    let mut listener = Listener::builder(url)
        .channel(channel)
        .health_check(health)
        .backoff(quick_backoff())
        .connect()
        .await
        .unwrap();
    let sender = sender().await;
    notify(&sender, channel, &change_payload(1)).await;
    assert_change(&next_change(&mut listener, channel).await, 1);
    (listener, sender)
}

/// Sends changes `ids` and checks they all arrive, in order.
pub async fn round_trip(
    listener: &mut Listener,
    sender: &Client,
    channel: &str,
    ids: std::ops::RangeInclusive<i64>,
) {
    for id in ids.clone() {
        notify(sender, channel, &change_payload(id)).await;
    }
    for id in ids {
        assert_change(&next_change(listener, channel).await, id);
    }
}

/// The `column-notify` command, without the environment's `DATABASE_URL`.
pub fn command() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_column-notify"));
    command.env_remove("DATABASE_URL");
    command
}

/// The lines a child writes on one of its pipes, until it closes.
pub fn lines(pipe: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    receiver
}

/// Starts `command` with stdout and stderr piped, read line by line.
pub fn spawn_piped(
    command: &mut std::process::Command,
) -> (
    std::process::Child,
    std::sync::mpsc::Receiver<String>,
    std::sync::mpsc::Receiver<String>,
) {
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = lines(child.stdout.take().unwrap());
    let stderr = lines(child.stderr.take().unwrap());
    (child, stdout, stderr)
}

/// Waits for a child to exit; kills it and fails past `within`.
pub fn wait(child: &mut std::process::Child, within: Duration) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("column-notify did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `signal` (`INT`, `TERM`, `KILL`) to a child.
pub fn signal(child: &std::process::Child, signal: &str) {
    let sent = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -{signal}");
}

/// `DATABASE_URL` pointed at another database of the same server.
pub fn url_of_database(name: &str) -> String {
    let url = database_url();
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url.as_str(), String::new()),
    };
    let server = match base.rsplit_once('/') {
        Some((server, _)) if !server.ends_with('/') => server,
        _ => base,
    };
    format!("{server}/{name}{query}")
}

/// A database of its own with the extension and a durable watch: table `items (id int
/// primary key, version int, value text)` with rows 1 to `keys` at version 0, watched on
/// `version` with channel `items`.
pub struct DurableDatabase {
    pub url: String,
    pub client: Client,
}

impl DurableDatabase {
    /// Drops `pgcn_durable_<name>` if it exists, and creates it afresh.
    pub async fn create(name: &str, keys: i32) -> DurableDatabase {
        let database = format!("pgcn_durable_{name}");
        let admin = sender().await;
        for statement in [
            format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"),
            format!("CREATE DATABASE {database}"),
        ] {
            admin
                .batch_execute(&statement)
                .await
                .expect("a database of the test's own");
        }
        let url = url_of_database(&database);
        let client = connect_client_to(&url).await;
        client
            .batch_execute(&format!(
                "CREATE EXTENSION pg_column_notify;
                 CREATE TABLE items (id int PRIMARY KEY, version int NOT NULL, value text);
                 INSERT INTO items SELECT g, 0, '' FROM generate_series(1, {keys}) g;
                 SELECT watch_column('items', 'version', 'items', durable => true);"
            ))
            .await
            .expect("the extension and a durable watch");
        DurableDatabase { url, client }
    }

    /// Every change committed so far, as (id, version): all versions up to each row's
    /// current one.
    pub async fn committed(&self) -> std::collections::BTreeSet<(i32, i32)> {
        let rows = self
            .client
            .query("SELECT id, version FROM items", &[])
            .await
            .unwrap();
        rows.iter()
            .flat_map(|row| {
                let id: i32 = row.get(0);
                (1..=row.get::<_, i32>(1)).map(move |version| (id, version))
            })
            .collect()
    }
}

/// What a writer did: the changes it saw commit (RETURNING), and how many statements failed
/// on a lost connection (they may or may not have committed).
#[derive(Debug, Default)]
pub struct Written {
    pub committed: Vec<(i32, i32)>,
    pub failed: usize,
}

/// Commits up to `changes` single-row updates (each increments `version` of a row picked
/// from 1 to `keys`) or until `stop` is set, reconnecting after lost connections.
pub async fn write_changes(
    url: String,
    seed: u64,
    changes: usize,
    keys: i32,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Written {
    let mut written = Written::default();
    let mut client: Option<Client> = None;
    let mut random = seed;
    let mut attempts = 0;
    while attempts < changes && !stop.load(Ordering::Relaxed) {
        let writer = match client.as_ref().filter(|client| !client.is_closed()) {
            Some(writer) => writer,
            None => match connect_client(&url, &TlsVerification::default()).await {
                Ok(connected) => client.insert(connected),
                Err(error) => {
                    assert!(matches!(error, column_notify_listener::Error::Connect(_)));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        random = random
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let id = (random >> 33) as i32 % keys + 1;
        attempts += 1;
        match writer
            .query_one(
                "UPDATE items SET version = version + 1 WHERE id = $1 RETURNING id, version",
                &[&id],
            )
            .await
        {
            Ok(row) => written.committed.push((row.get(0), row.get(1))),
            Err(error) => {
                assert!(
                    writer.is_closed()
                        || error
                            .as_db_error()
                            .is_some_and(|db| db.code().code().starts_with("57P")),
                    "only lost connections may fail: {error}"
                );
                written.failed += 1;
                client = None;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    written
}

/// `writers` concurrent [`write_changes`] of `changes_each`.
pub async fn write_concurrently(
    url: &str,
    writers: u64,
    changes_each: usize,
    keys: i32,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Written {
    let tasks: Vec<_> = (0..writers)
        .map(|seed| {
            tokio::spawn(write_changes(
                url.to_string(),
                seed + 1,
                changes_each,
                keys,
                std::sync::Arc::clone(&stop),
            ))
        })
        .collect();
    let mut all = Written::default();
    for task in tasks {
        let written = task.await.expect("a writer");
        all.committed.extend(written.committed);
        all.failed += written.failed;
    }
    all
}

/// The (id, version) of an `items` change payload.
pub fn item_version(payload: &Value) -> (i32, i32) {
    let new = &payload["new"];
    let field = |name: &str| new[name].as_i64().expect("an int column") as i32;
    (field("id"), field("version"))
}

/// Checks that the changes of one run come in event-id order, without duplicates, and in
/// increasing version order for each row.
pub fn assert_in_order(run: &[(i64, (i32, i32))]) {
    for pair in run.windows(2) {
        assert!(pair[0].0 < pair[1].0, "event ids increase: {pair:?}");
    }
    let mut last = std::collections::HashMap::new();
    for &(event_id, (id, version)) in run {
        let previous = last.insert(id, version).unwrap_or(0);
        assert!(
            version > previous,
            "row {id}: version {version} (event {event_id}) after {previous}"
        );
    }
}
