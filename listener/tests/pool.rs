//! The handler pool on received changes: order kept per key, a slow key does not stall
//! the others, a panicking handler does not stop the pool.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use column_notify_listener::{Change, Event, HandlerPool, Listener};
use serde_json::{json, Value};
use support::*;

const KEYS: i64 = 10;
const PER_KEY: i64 = 30;
const SLOW_KEY: i64 = 0;
const SLOW: Duration = Duration::from_millis(1500);

fn payload(key: i64, sequence: i64) -> String {
    json!({"id": key, "old": {"id": key, "seq": sequence - 1}, "new": {"id": key, "seq": sequence}})
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_is_kept_per_key_and_a_slow_key_does_not_stall_the_others() {
    let channel = unique("pool");
    let mut listener = Listener::connect(&server_url(), [&channel]).await.unwrap();
    let sender = sender().await;
    for sequence in 1..=PER_KEY {
        for key in 0..KEYS {
            notify(&sender, &channel, &payload(key, sequence)).await;
        }
    }

    let handled: Arc<Mutex<Vec<(i64, i64, Instant)>>> = Arc::default();
    let record = Arc::clone(&handled);
    let pool = HandlerPool::new(4, 64, move |change: Change| {
        let record = Arc::clone(&record);
        async move {
            let key = change.id.as_i64().unwrap();
            let sequence = change.new.as_ref().unwrap()["seq"].as_i64().unwrap();
            let pause = if key == SLOW_KEY && sequence == 1 {
                SLOW
            } else {
                Duration::from_millis(1)
            };
            tokio::time::sleep(pause).await;
            record.lock().unwrap().push((key, sequence, Instant::now()));
        }
    });
    let started = Instant::now();
    for _ in 0..KEYS * PER_KEY {
        match listener
            .recv_timeout(Duration::from_secs(10))
            .await
            .unwrap()
        {
            Event::Change { change, .. } => pool.submit(*change).await,
            other => panic!("expected a change, got {other:?}"),
        }
    }
    let stats = pool.finish().await;
    assert_eq!(stats.handled, (KEYS * PER_KEY) as u64);
    assert_eq!(stats.panicked, 0);

    let handled = handled.lock().unwrap();
    for key in 0..KEYS {
        let sequences: Vec<i64> = handled
            .iter()
            .filter(|(k, _, _)| *k == key)
            .map(|(_, s, _)| *s)
            .collect();
        assert_eq!(
            sequences,
            (1..=PER_KEY).collect::<Vec<_>>(),
            "key {key} in order"
        );
    }
    let others_done = handled
        .iter()
        .filter(|(key, _, _)| *key != SLOW_KEY)
        .map(|(_, _, at)| *at - started)
        .max()
        .unwrap();
    assert!(
        others_done < SLOW,
        "the other keys finished after {others_done:?}, not before the slow handler's {SLOW:?}"
    );
}

#[tokio::test]
async fn a_panicking_handler_is_counted_and_the_pool_goes_on() {
    let channel = unique("panic");
    let mut listener = Listener::connect(&server_url(), [&channel]).await.unwrap();
    let sender = sender().await;
    for id in 1..=6 {
        notify(&sender, &channel, &change_payload(id)).await;
    }
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let record = Arc::clone(&seen);
    let pool = HandlerPool::new(2, 2, move |change: Change| {
        let record = Arc::clone(&record);
        async move {
            assert_ne!(change.id, json!(3), "a handler that fails on row 3");
            record.lock().unwrap().push(change.id);
        }
    });
    for id in 1..=6 {
        let change = next_change(&mut listener, &channel).await;
        assert_change(&change, id);
        pool.submit(change).await;
    }
    let stats = pool.finish().await;
    assert_eq!((stats.handled, stats.panicked), (5, 1));
    let mut seen = seen.lock().unwrap().clone();
    seen.sort_by_key(|id| id.as_i64());
    assert_eq!(seen, [1, 2, 4, 5, 6].map(|id| json!(id)));
}
