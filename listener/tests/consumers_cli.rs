//! `column-notify consumers`: a durable consumer's position and backlog, a WAL consumer's
//! slot (connected or not), as a table and as JSON; nothing for a role that does not own
//! them; a database without the extension refused.

use std::time::Duration;

use column_notify_listener::WalConsumer;
use serde_json::{json, Value};
use support::*;

fn consumers(url: &str, json: bool) -> (Option<i32>, String, String) {
    let mut command = column_notify!();
    command.args(["consumers", "-d", url]);
    if json {
        command.arg("--json");
    }
    let output = command.output().unwrap();
    (
        output.status.code(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[tokio::test]
async fn durable_and_wal_consumers_with_their_backlog() {
    let db = DurableDatabase::create("consumers_cli", 5).await;
    db.client
        .batch_execute(
            "CREATE TABLE mirrored (id int PRIMARY KEY, v int);
             SELECT watch_column('mirrored', 'v', 'mirrored', delivery => 'wal');
             UPDATE items SET version = version + 1;
             SELECT count(*) FROM column_notify.read_events('billing', 'items');
             SELECT column_notify.ack_events('billing', 'items',
                 (SELECT min(event_id) + 1 FROM column_notify.events));",
        )
        .await
        .unwrap();
    let (code, stdout, stderr) = consumers(&db.url, false);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("no WAL consumer"), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0],
        "durable consumers (the last event acknowledged, the events after it):"
    );
    let header: Vec<&str> = lines[1].split('|').map(str::trim).collect();
    assert_eq!(
        header,
        [
            "channel",
            "consumer",
            "owner",
            "acknowledged",
            "backlog",
            "acknowledged_at"
        ]
    );
    let row: Vec<&str> = lines[3].split('|').map(str::trim).collect();
    assert_eq!(row[..3], ["items", "billing", "postgres"], "{stdout}");
    assert_eq!(row[4], "3", "5 events, 2 acknowledged: {stdout}");

    let mut wal = WalConsumer::builder(&db.url, "mirror")
        .channel("mirrored")
        .connect()
        .await
        .unwrap();
    let (code, stdout, stderr) = consumers(&db.url, true);
    assert_eq!(code, Some(0), "{stderr}");
    let shown: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(shown["durable"][0]["consumer"], "billing");
    assert_eq!(shown["durable"][0]["backlog"], 3);
    assert_eq!(shown["wal"][0]["consumer"], "mirror");
    assert_eq!(shown["wal"][0]["active"], json!(true));
    let _ = wal.recv_timeout(Duration::from_millis(100)).await;
    wal.close().await;
    assert!(
        WalConsumer::drop_consumer(&db.url, "mirror", &Default::default())
            .await
            .unwrap()
    );

    // Another role sees no consumer of ours.
    db.client
        .batch_execute(
            "DROP ROLE IF EXISTS pgcn_consumers_stranger;
             CREATE ROLE pgcn_consumers_stranger LOGIN;",
        )
        .await
        .unwrap();
    let stranger = db.url.replacen("postgres@", "pgcn_consumers_stranger@", 1);
    let (code, stdout, stderr) = consumers(&stranger, true);
    assert_eq!(code, Some(0), "{stderr}");
    let shown: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(shown["durable"], json!([]), "{stdout}");

    let none =
        TestDatabase::with_schema("consumers_cli_none", "DROP EXTENSION pg_column_notify;").await;
    let (code, _, stderr) = consumers(&none.url, false);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("pg_column_notify is not installed in this database"),
        "{stderr}"
    );
}
