//! `column-notify listen CHANNEL --consumer NAME` killed with SIGKILL while four writers
//! commit 4,000 changes, then started again with the same name: every committed change is
//! printed, in order per row within each run, and only the last batch of the killed run can
//! be printed twice.

use std::collections::{BTreeSet, HashSet};
use std::process::Child;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

const WRITERS: u64 = 4;
const CHANGES_EACH: usize = 1000;
const KEYS: i32 = 40;
const BATCH: usize = 100;
/// The first run is killed once it has printed this many events.
const KILL_AFTER: usize = 600;

/// A consumer process, its stdout lines, and its stderr lines once it said it is connected.
fn start_consumer(url: &str) -> (Child, Receiver<String>, Receiver<String>) {
    let (child, stdout, stderr) = spawn_piped(
        column_notify!()
            .args(["listen", "items", "--consumer", "printer"])
            .args(["--batch-size", &BATCH.to_string(), "--database-url", url]),
    );
    let connected = stderr.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(
        connected.contains("connected; listening on items as consumer printer"),
        "{connected}"
    );
    (child, stdout, stderr)
}

/// (event_id, (row id, version)) of a printed line.
fn parse(line: &str) -> (i64, (i32, i32)) {
    let line: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(line["channel"], "items");
    let event_id = line["event_id"].as_i64().unwrap();
    assert_eq!(line["payload"]["event_id"], event_id, "{line}");
    (event_id, item_version(&line["payload"]))
}

/// Reads printed events into `run` until `done` says so, failing after `within`.
fn read_until(
    stdout: &Receiver<String>,
    run: &mut Vec<(i64, (i32, i32))>,
    within: Duration,
    mut done: impl FnMut(&[(i64, (i32, i32))]) -> bool,
) {
    let deadline = Instant::now() + within;
    while !done(run) {
        let left = deadline.saturating_duration_since(Instant::now());
        match stdout.recv_timeout(left) {
            Ok(line) => run.push(parse(&line)),
            Err(error) => panic!("{error} after {} events", run.len()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_consumer_resumes_and_every_committed_change_is_printed() {
    let started = Instant::now();
    let db = DurableDatabase::create("cli_kill", KEYS).await;
    let (mut first, first_out, _first_err) = start_consumer(&db.url);
    let writers = tokio::spawn({
        let url = db.url.clone();
        async move {
            write_concurrently(
                &url,
                WRITERS,
                CHANGES_EACH,
                KEYS,
                Arc::new(AtomicBool::new(false)),
            )
            .await
        }
    });

    let mut run1 = Vec::new();
    let reading = tokio::task::block_in_place(|| {
        read_until(&first_out, &mut run1, Duration::from_secs(60), |run| {
            run.len() >= KILL_AFTER
        });
        signal(&first, "KILL");
        wait(&mut first, Duration::from_secs(5))
    });
    assert!(!reading.success(), "killed");
    // What the killed run wrote before it died is still in the pipe.
    run1.extend(first_out.iter().map(|line| parse(&line)));
    let total = WRITERS as usize * CHANGES_EACH;
    assert!(
        run1.len() < total,
        "killed in the middle: {} printed",
        run1.len()
    );

    let (mut second, second_out, second_err) = start_consumer(&db.url);
    let written = writers.await.unwrap();
    assert_eq!((written.committed.len(), written.failed), (total, 0));
    let committed = db.committed().await;
    let returned: BTreeSet<(i32, i32)> = written.committed.iter().copied().collect();
    assert_eq!(returned, committed, "RETURNING and the table agree");

    let printed_first: HashSet<(i32, i32)> = run1.iter().map(|(_, change)| *change).collect();
    let mut run2 = Vec::new();
    tokio::task::block_in_place(|| {
        let mut missing: BTreeSet<(i32, i32)> = committed
            .difference(&BTreeSet::from_iter(printed_first.iter().copied()))
            .copied()
            .collect();
        read_until(&second_out, &mut run2, Duration::from_secs(60), |run| {
            if let Some((_, change)) = run.last() {
                missing.remove(change);
            }
            missing.is_empty()
        });
        signal(&second, "TERM");
        assert_eq!(wait(&mut second, Duration::from_secs(5)).code(), Some(0));
    });
    run2.extend(second_out.iter().map(|line| parse(&line)));
    assert_eq!(
        second_err.iter().last().as_deref(),
        Some("column-notify: interrupted; exiting")
    );

    assert_in_order(&run1);
    assert_in_order(&run2);
    let first_ids: HashSet<i64> = run1.iter().map(|(event_id, _)| *event_id).collect();
    let again: Vec<i64> = run2
        .iter()
        .map(|(event_id, _)| *event_id)
        .filter(|id| first_ids.contains(id))
        .collect();
    let tail: Vec<i64> = run1[run1.len() - again.len()..]
        .iter()
        .map(|(event_id, _)| *event_id)
        .collect();
    assert_eq!(again, tail, "only the killed run's last events come again");
    assert!(
        again.len() <= BATCH,
        "{} events printed twice, more than a batch",
        again.len()
    );
    let printed: BTreeSet<(i32, i32)> = run1
        .iter()
        .chain(&run2)
        .map(|(_, change)| *change)
        .collect();
    assert_eq!(
        printed, committed,
        "every committed change printed, nothing else"
    );
    println!(
        "{total} changes by {WRITERS} writers; first run printed {} before SIGKILL, second run \
         {}; printed twice: {}; {:.1?} in all",
        run1.len(),
        run2.len(),
        again.len(),
        started.elapsed()
    );
}
