//! A slow consumer over 50,000 events: the listener's memory stays within its documented
//! bound and nothing is lost; then a fast consumer's receive rate. Alone in its test binary
//! so that the process's resident memory is this test's.

use std::time::{Duration, Instant};

use column_notify_listener::tokio_postgres::Client;
use column_notify_listener::{Event, Listener, DEFAULT_BUFFER};
use serde_json::Value;
use support::*;

const EVENTS: i32 = 50_000;
const NOTE: usize = 400;

/// Resident memory of this process, in KiB.
fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .expect("VmRSS in /proc/self/status");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Sends `EVENTS` changes of about 1 KB in one transaction, ids from `first`.
async fn send_batch(sender: &Client, channel: &str, first: i32) {
    sender
        .execute(
            "SELECT count(pg_notify($1, json_build_object(
                'id', i,
                'old', json_build_object('id', i, 'canceled', false, 'note', repeat('n', $3)),
                'new', json_build_object('id', i, 'canceled', true, 'note', repeat('n', $3)),
                'op', 'UPDATE', 'schema', 'public', 'table', 'appointments',
                'changed', json_build_array('canceled'))::text))
             FROM generate_series($2::int, $2::int + $4 - 1) AS i",
            &[&channel, &first, &(NOTE as i32), &EVENTS],
        )
        .await
        .expect("the batch of notifications");
}

/// Receives the next change and checks it is `expected`, in full.
async fn receive(listener: &mut Listener, expected: i32) -> usize {
    match listener
        .recv_timeout(Duration::from_secs(20))
        .await
        .unwrap()
    {
        Event::Change { change, .. } => {
            assert_eq!(change.id, Value::from(expected), "in order, none missing");
            let old = change.old.as_ref().unwrap();
            let new = change.new.as_ref().unwrap();
            assert_eq!(old["canceled"], Value::Bool(false));
            assert_eq!(new["canceled"], Value::Bool(true));
            assert_eq!(new["note"].as_str().unwrap().len(), NOTE);
            serde_json::to_string(&*change).unwrap().len()
        }
        other => panic!("expected change {expected}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_stays_within_the_bound_and_loses_nothing() {
    let channel = unique("memory");
    let mut listener = Listener::builder(server_url())
        .channel(&channel)
        .buffer(DEFAULT_BUFFER)
        .connect()
        .await
        .unwrap();
    let sender = sender().await;

    // The baseline: connected, one change received.
    notify(&sender, &channel, &change_payload(0)).await;
    assert_change(&next_change(&mut listener, &channel).await, 0);
    let baseline = resident_kib();

    send_batch(&sender, &channel, 1).await;
    // The consumer does nothing for a while: the buffer fills, the listener stops reading.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut peak = resident_kib();
    let mut payload_bytes = 0;
    for id in 1..=EVENTS {
        payload_bytes += receive(&mut listener, id).await;
        if id % 100 == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        if id % 500 == 0 {
            peak = peak.max(resident_kib());
        }
    }
    let growth_kib = peak.saturating_sub(baseline);
    let average = payload_bytes / EVENTS as usize;
    // The documented bound: `buffer` events of their payload size, plus a fixed 4 MiB for
    // the connection's read buffer, the allocator and the runtime.
    let bound_kib = (DEFAULT_BUFFER * (average + 256) / 1024 + 4096) as u64;
    println!(
        "slow consumer: {EVENTS} events of ~{average} bytes ({} MiB in all); resident memory \
         grew by {growth_kib} KiB (bound {bound_kib} KiB)",
        payload_bytes / (1024 * 1024)
    );
    assert!(
        growth_kib <= bound_kib,
        "memory grew by {growth_kib} KiB, over the bound of {bound_kib} KiB"
    );

    // A fast consumer: how many events per second arrive.
    let started = Instant::now();
    send_batch(&sender, &channel, EVENTS + 1).await;
    let committed = started.elapsed();
    for id in (EVENTS + 1)..=(2 * EVENTS) {
        receive(&mut listener, id).await;
    }
    let elapsed = started.elapsed();
    let after_commit = elapsed - committed;
    println!(
        "fast consumer: {EVENTS} events received {elapsed:.2?} after the sending statement \
         began, {after_commit:.2?} after its commit: {:.0} events/s end to end, {:.0} events/s \
         from the commit",
        f64::from(EVENTS) / elapsed.as_secs_f64(),
        f64::from(EVENTS) / after_commit.as_secs_f64()
    );
}
