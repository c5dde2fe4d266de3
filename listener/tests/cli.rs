//! The `column-notify` command end to end: a real process, a real server.

use std::process::Output;
use std::time::Duration;

use serde_json::{json, Value};
use support::*;

#[tokio::test]
async fn listen_prints_json_lines_and_exits_0_on_sigint() {
    let (first, second) = (unique("cli_a"), unique("cli_b"));
    let (mut child, stdout, stderr) = spawn_piped(
        column_notify!()
            .args(["listen", &first, &second])
            .env("DATABASE_URL", server_url()),
    );
    let connected = stderr.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(
        connected,
        format!("column-notify: connected; listening on {first}, {second}")
    );

    let sender = sender().await;
    notify(&sender, &first, &change_payload(1)).await;
    notify(&sender, &second, "not json").await;
    let received: Vec<Value> = (0..2)
        .map(|_| {
            let line = stdout.recv_timeout(Duration::from_secs(10)).unwrap();
            serde_json::from_str(&line).unwrap()
        })
        .collect();
    let expected: Value = serde_json::from_str(&change_payload(1)).unwrap();
    assert_eq!(received[0]["channel"], json!(first));
    assert_eq!(received[0]["payload"], expected);
    assert_eq!(received[1]["channel"], json!(second));
    assert_eq!(received[1]["payload"], json!("not json"));
    assert!(received[1]["process_id"].as_i64().unwrap() > 0);

    // A batch prints a line per change.
    let batch = format!(
        r#"{{"changes": [{}, {}]}}"#,
        change_payload(2),
        change_payload(3)
    );
    notify(&sender, &first, &batch).await;
    for id in [2, 3] {
        let line: Value =
            serde_json::from_str(&stdout.recv_timeout(Duration::from_secs(10)).unwrap()).unwrap();
        assert_eq!(line["channel"], json!(first));
        assert_eq!(line["payload"]["id"], json!(id));
    }

    signal(&child, "INT");
    let status = wait(&mut child, Duration::from_secs(5));
    assert_eq!(status.code(), Some(0));
    let last = stderr.recv_timeout(Duration::from_secs(1)).unwrap();
    assert_eq!(last, "column-notify: interrupted; exiting");
}

/// The payload of a `listen` line on `channel`, as printed; checks the rest of the line.
fn printed_payload<'a>(line: &'a str, channel: &str) -> &'a str {
    let start = format!(r#"{{"channel":{},"payload":"#, json!(channel));
    let rest = line
        .strip_prefix(&start)
        .unwrap_or_else(|| panic!("{line}"));
    let (payload, end) = rest
        .rsplit_once(r#","process_id":"#)
        .unwrap_or_else(|| panic!("{line}"));
    let process_id: i32 = end.strip_suffix('}').unwrap().parse().unwrap();
    assert!(process_id > 0, "{line}");
    payload
}

#[tokio::test]
async fn listen_prints_each_payload_as_sent() {
    let channel = unique("cli_exact");
    let (mut child, stdout, stderr) = spawn_piped(
        column_notify!()
            .args(["listen", &channel])
            .env("DATABASE_URL", server_url()),
    );
    stderr.recv_timeout(Duration::from_secs(10)).unwrap();

    let zeros = "0".repeat(400);
    let row = format!(
        r#"{{"zeta":1,"amount":12345678901234567890.123456789,"big":1{zeros},"huge":1e400,"price":12.50,"alpha":"\u00e9"}}"#
    );
    let single =
        format!(r#"{{"id":123456789012345678901234567890,"old":null,"new":{row},"table":"t"}}"#);
    // Not a batch: `changes` is one key among others.
    let with_changes_key = r#"{"id":2,"changes":[{"id":3},{"id":4}],"new":{"b":2,"a":1.0}}"#;
    let (first, second) = (
        r#"{"id":5,"new":{"y":0.30000000000000000004,"x":-0}}"#,
        r#"{"id":6,"new":{"n":1E+2}}"#,
    );
    let batch = format!(r#"{{"changes":[{first}, {second}]}}"#);
    // Line breaks between tokens become spaces, so that a line stays a line.
    let spaced = "\n{\"id\": 7,\r\n \"new\": {\"v\": 1.50}}\n";

    let sender = sender().await;
    for payload in [&single, with_changes_key, &batch, spaced] {
        notify(&sender, &channel, payload).await;
    }
    let expected = [
        single.as_str(),
        with_changes_key,
        first,
        second,
        "{\"id\": 7,   \"new\": {\"v\": 1.50}}",
    ];
    for payload in expected {
        let line = stdout.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(printed_payload(&line, &channel), payload);
        serde_json::from_str::<Value>(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    }

    signal(&child, "INT");
    assert_eq!(wait(&mut child, Duration::from_secs(5)).code(), Some(0));
}

fn watches(url: &str) -> Output {
    column_notify!()
        .args(["watches", "--database-url", url])
        .output()
        .unwrap()
}

#[tokio::test]
async fn watches_prints_the_view_as_a_table_and_the_queue_usage() {
    // The extension in a schema of its own, off the search path: the command finds it there.
    let db = TestDatabase::with_schema(
        "cli_watches_schema",
        "DROP EXTENSION pg_column_notify;
         CREATE SCHEMA notify_tools;
         CREATE EXTENSION pg_column_notify SCHEMA notify_tools;
         CREATE TABLE appointments (id int PRIMARY KEY, canceled boolean);
         SELECT notify_tools.watch_column('appointments', 'canceled');",
    )
    .await;
    let shown = watches(&db.url);
    let stdout = String::from_utf8(shown.stdout).unwrap();
    assert_eq!(shown.status.code(), Some(0), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    let header: Vec<&str> = lines[0].split('|').map(str::trim).collect();
    assert_eq!(
        header[..3],
        ["table_name", "columns", "channel"],
        "{stdout}"
    );
    assert!(lines[1].starts_with("-----"), "{stdout}");
    let row: Vec<&str> = lines[2].split('|').map(str::trim).collect();
    assert_eq!(
        row[..3],
        [
            "appointments",
            "{canceled}",
            "appointments_canceled_changed"
        ],
        "{stdout}"
    );
    assert_eq!(lines[3], "(1 row)");
    // The queue is shared by every session of the server: check the form, not the value.
    let usage = lines[5]
        .strip_prefix("notification queue usage: ")
        .and_then(|rest| rest.strip_suffix('%'))
        .and_then(|percent| percent.parse::<f64>().ok());
    assert!(
        usage.is_some_and(|p| (0.0..=100.0).contains(&p)),
        "{stdout}"
    );

    let without =
        TestDatabase::with_schema("cli_watches_none", "DROP EXTENSION pg_column_notify;").await;
    let refused = watches(&without.url);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8(refused.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("pg_column_notify is not installed in this database"),
        "{stderr}"
    );
}

#[tokio::test]
async fn watches_shows_each_watch_with_its_filter() {
    let db = TestDatabase::with_schema(
        "cli_watches_filter",
        "CREATE TABLE appointments (id int PRIMARY KEY, clinic_id int, canceled boolean);
         SELECT watch_column('appointments', 'canceled', 'clinic_7',
                             filter => 'NEW.clinic_id = 7 AND NEW.canceled');",
    )
    .await;
    let output = watches(&db.url);
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    let header: Vec<&str> = lines[0].split('|').map(str::trim).collect();
    let row: Vec<&str> = lines[2].split('|').map(str::trim).collect();
    let filter = header
        .iter()
        .position(|name| *name == "filter")
        .expect("a filter column");
    assert_eq!(
        row[filter], "((new.clinic_id = 7) AND new.canceled)",
        "{stdout}"
    );
    assert_eq!(
        row[header.iter().position(|name| *name == "channel").unwrap()],
        "clinic_7"
    );
}

#[test]
fn help_for_every_command_and_errors_as_one_line() {
    for args in [
        &["--help"][..],
        &["listen", "--help"],
        &["watches", "--help"],
        &["consumers", "--help"],
        &["relay", "--help"],
    ] {
        let output = column_notify!().args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(0), "{args:?}");
        assert!(String::from_utf8(output.stdout)
            .unwrap()
            .contains("Usage: column-notify"));
    }
    let cases: [(&[&str], i32, &str); 9] = [
        (
            &["listen", "c", "-d", "host=db colour=red"],
            2,
            "invalid connection string: invalid connection option \"colour\"",
        ),
        (&["listen", "c", "--buffer", "0"], 2, "--buffer <EVENTS>"),
        (&["listen", "c", "--consumer", ""], 2, "--consumer <NAME>"),
        (&["listen", "c", "--count", "0"], 2, "it must be at least 1"),
        (
            &[
                "drop-consumer",
                "Bad-Name",
                "--database-url",
                "postgres://x@127.0.0.1:1/x",
            ],
            2,
            "invalid WAL consumer \"Bad-Name\"",
        ),
        (
            &[
                "watches",
                "--json",
                "--database-url",
                "postgres://x@127.0.0.1:1/x",
            ],
            1,
            "could not connect",
        ),
        (
            &[
                "listen",
                "c",
                "--database-url",
                "postgres://x@127.0.0.1:1/x",
            ],
            1,
            "could not connect",
        ),
        (
            &[
                "listen",
                "c",
                "--dbname",
                "postgres://db/x?sslmode=sometimes",
            ],
            2,
            "invalid sslmode value: \"sometimes\"",
        ),
        (
            &["listen"],
            2,
            "required arguments were not provided: <CHANNEL>...",
        ),
    ];
    for (args, code, message) in cases {
        let output = column_notify!().args(args).output().unwrap();
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(output.status.code(), Some(code), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("column-notify: error: "), "{stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn status_shows_the_queue_and_the_sessions_idle_in_a_transaction() {
    let stuck = sender().await;
    stuck
        .batch_execute("BEGIN; LISTEN column_notify_status_test; SELECT 1")
        .await
        .unwrap();
    let pid: i32 = stuck
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let output = column_notify!()
        .args(["status", "--database-url", &server_url()])
        .output()
        .unwrap();
    stuck.batch_execute("ROLLBACK").await.unwrap();

    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with("notification queue usage: ") && lines[0].contains("% ("),
        "{stdout}"
    );
    assert!(
        stdout.contains("sessions idle in a transaction"),
        "{stdout}"
    );
    assert!(
        lines
            .iter()
            .any(|line| line.trim_start().starts_with(&format!("{pid} "))),
        "the stuck session {pid} is listed:\n{stdout}"
    );
}

#[tokio::test]
async fn raw_payloads_a_count_json_watches_and_a_closed_pipe() {
    let db = TestDatabase::with_schema(
        "cli_compose",
        "CREATE TABLE a (id int PRIMARY KEY, state text);
         SELECT watch_column('a', 'state', 'a_state');",
    )
    .await;

    // --raw prints each payload as received; --count 2 exits after two.
    let (child, stdout, stderr) = spawn_piped(
        column_notify!()
            .args(["listen", "raw_channel", "--raw", "--count", "2"])
            .args(["--database-url", &db.url]),
    );
    let mut child = ChildGuard(child);
    assert!(stderr
        .recv_timeout(Duration::from_secs(10))
        .unwrap()
        .contains("connected"));
    for payload in [r#"{"id": 1,  "x":1.50}"#, "not json", "third"] {
        notify(&db.client, "raw_channel", payload).await;
    }
    assert_eq!(wait(&mut child, Duration::from_secs(10)).code(), Some(0));
    let printed: Vec<String> = stdout.iter().collect();
    assert_eq!(printed, [r#"{"id": 1,  "x":1.50}"#, "not json"]);

    // watches --json: the view's rows, one JSON array.
    let output = column_notify!()
        .args(["watches", "--json", "--database-url", &db.url])
        .output()
        .unwrap();
    assert!(output.status.success());
    let rows: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1);
    assert_eq!(rows[0]["channel"], json!("a_state"));
    assert_eq!(rows[0]["delivery"], json!("notify"));

    // A reader that closes the pipe at once (`| head -0`): no panic, status 0.
    for command in [&["watches"][..], &["status"]] {
        let mut child = column_notify!()
            .args(command)
            .args(["--database-url", &db.url])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(output.status.code(), Some(0), "{command:?}: {stderr}");
        assert!(stderr.is_empty(), "{command:?}: {stderr}");
    }
}

/// Waits until the session named `application_name` has run LISTEN.
async fn wait_listening(application_name: &str) {
    let client = sender().await;
    for _ in 0..200 {
        let listening = client
            .query(
                "SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND query LIKE 'LISTEN%'",
                &[&application_name],
            )
            .await
            .unwrap();
        if !listening.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{application_name} never listened");
}

/// `listen CHANNEL --count 1` with `flags` and `env`: what it printed on stderr once one
/// notification came.
async fn stderr_of_one_notification(flags: &[&str], env: &[(&str, &str)]) -> Vec<String> {
    let name = unique("verbosity");
    let channel = unique("verbosity_channel");
    let (child, stdout, stderr) = spawn_piped(
        column_notify!()
            .args(flags)
            .args(["listen", &channel, "--count", "1", "-d", &url_named(&name)])
            .envs(env.iter().copied()),
    );
    let mut child = ChildGuard(child);
    wait_listening(&name).await;
    notify(&sender().await, &channel, "{\"id\": 1}").await;
    let line = stdout.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(line.contains(&channel), "{line}");
    assert_eq!(wait(&mut child, Duration::from_secs(10)).code(), Some(0));
    stderr.iter().collect()
}

#[tokio::test]
async fn verbose_shows_the_crates_tracing_and_quiet_only_errors() {
    let plain = stderr_of_one_notification(&[], &[("RUST_LOG", "")]).await;
    assert_eq!(plain.len(), 1, "{plain:?}");
    assert!(
        plain[0].starts_with("column-notify: connected; listening on"),
        "{plain:?}"
    );

    let verbose = stderr_of_one_notification(&["-v"], &[("RUST_LOG", "")]).await;
    assert!(
        verbose
            .iter()
            .any(|line| line.contains(" INFO connect{host=\"127.0.0.1\"")
                && line.ends_with("connected and listening")),
        "{verbose:?}"
    );
    assert!(verbose
        .iter()
        .any(|line| line.starts_with("column-notify: connected")));

    let chosen =
        stderr_of_one_notification(&[], &[("RUST_LOG", "column_notify_listener=info")]).await;
    assert!(
        chosen
            .iter()
            .any(|line| line.contains("connected and listening")),
        "{chosen:?}"
    );

    let quiet = stderr_of_one_notification(&["-q"], &[("RUST_LOG", "")]).await;
    assert_eq!(quiet, Vec::<String>::new());
}
