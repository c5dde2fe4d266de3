//! `column-notify listen items --consumer NAME` on a WAL watch, killed with SIGKILL while
//! four writers commit, then started again under the same name: every committed change is
//! printed, each run in commit order, and the second run prints nothing the slot had
//! confirmed. Then `column-notify drop-consumer` drops the slot.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

use column_notify_listener::WalPosition;
use serde_json::Value;
use support::*;

const KEYS: i32 = 40;
/// The first run is killed once it has printed this many changes.
const KILL_AFTER: usize = 300;

/// (position, commit, (row id, version)) of a printed line.
type Line = (WalPosition, WalPosition, (i32, i32));

fn start_consumer(url: &str) -> (ChildGuard, Receiver<String>, Receiver<String>) {
    let (child, stdout, stderr) = spawn_piped(
        column_notify!()
            .args(["listen", "items", "--consumer", "printer"])
            .args(["--database-url", url]),
    );
    let child = ChildGuard(child);
    let connected = stderr.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(
        connected.contains("reading items as consumer printer (slot column_notify_printer)"),
        "{connected}"
    );
    (child, stdout, stderr)
}

fn parse(line: &str) -> Line {
    let line: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(line["channel"], "items");
    let position = |name: &str| line[name].as_str().unwrap().parse::<WalPosition>().unwrap();
    (
        position("position"),
        position("commit"),
        item_version(&line["payload"]),
    )
}

fn read_until(
    stdout: &Receiver<String>,
    run: &mut Vec<Line>,
    mut done: impl FnMut(&[Line]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done(run) {
        let left = deadline.saturating_duration_since(Instant::now());
        match stdout.recv_timeout(left) {
            Ok(line) => run.push(parse(&line)),
            Err(error) => panic!("{error} after {} lines", run.len()),
        }
    }
}

fn assert_commit_order(run: &[Line]) {
    for pair in run.windows(2) {
        assert!(
            (pair[0].1, pair[0].0) < (pair[1].1, pair[1].0),
            "in commit order: {pair:?}"
        );
    }
}

async fn slot_confirmed(db: &DurableDatabase) -> WalPosition {
    let row = db
        .client
        .query_one(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots
             WHERE slot_name = 'column_notify_printer'",
            &[],
        )
        .await
        .unwrap();
    row.get::<_, String>(0).parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_consumer_resumes_after_what_it_confirmed() {
    let db = DurableDatabase::create_wal("cli", KEYS).await;
    let (first, stdout, _stderr) = start_consumer(&db.url);
    let stop = Arc::new(AtomicBool::new(false));
    let writers = tokio::spawn({
        let (url, stop) = (db.url.clone(), Arc::clone(&stop));
        async move { write_concurrently(&url, 4, 400, KEYS, stop).await }
    });

    let mut first_run = Vec::new();
    read_until(&stdout, &mut first_run, |run| run.len() >= KILL_AFTER);
    let mut first = first;
    signal(&first, "KILL");
    let _ = first.wait();
    // What the slot holds as confirmed once the process is gone.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let confirmed = slot_confirmed(&db).await;
    while let Ok(line) = stdout.try_recv() {
        first_run.push(parse(&line));
    }

    let written = writers.await.unwrap();
    stop.store(true, Ordering::Relaxed);
    let committed = db.committed().await;
    assert!(written
        .committed
        .iter()
        .all(|change| committed.contains(change)));

    let (mut second, stdout, _stderr) = start_consumer(&db.url);
    let mut second_run = Vec::new();
    let first_changes: BTreeSet<(i32, i32)> = first_run.iter().map(|line| line.2).collect();
    read_until(&stdout, &mut second_run, |run| {
        let mut all = first_changes.clone();
        all.extend(run.iter().map(|line| line.2));
        all.len() == committed.len()
    });
    signal(&second, "INT");
    assert!(wait(&mut second, Duration::from_secs(10)).success());

    assert_commit_order(&first_run);
    assert_commit_order(&second_run);
    assert!(confirmed > WalPosition(0));
    for line in &second_run {
        assert!(
            line.1 > confirmed,
            "confirmed at {confirmed}, printed again: {line:?}"
        );
    }
    let mut all = first_changes;
    all.extend(second_run.iter().map(|line| line.2));
    assert_eq!(all, committed, "every committed change, nothing else");
    println!(
        "first run {} lines, second {}, {} changes, confirmed {confirmed}",
        first_run.len(),
        second_run.len(),
        committed.len()
    );

    let dropped = column_notify!()
        .args(["drop-consumer", "printer", "--database-url", &db.url])
        .output()
        .unwrap();
    assert!(dropped.status.success());
    assert_eq!(
        String::from_utf8_lossy(&dropped.stdout),
        "dropped WAL consumer printer (slot column_notify_printer)\n"
    );
    let again = column_notify!()
        .args(["drop-consumer", "printer", "--database-url", &db.url])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&again.stderr),
        "column-notify: error: there is no WAL consumer printer\n"
    );
}
