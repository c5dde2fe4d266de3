//! The NATS relay side by side with the durable consumer it reads through, in one run:
//!
//! 1. Throughput from a backlog: `--events` changes of a durable watch committed in one
//!    transaction; the time from the COMMIT to the last event, (a) yielded and acknowledged
//!    by a `DurableConsumer` alone (what the relay reads through: its floor), (b) in the
//!    JetStream stream by the relay (read, published, acknowledged by JetStream, then in
//!    PostgreSQL); seen by a NATS subscriber on the subject, which the server hands each
//!    message as it stores it.
//! 2. Latency: single-row commits at `--rate` for `--seconds`; each event's latency is its
//!    arrival (yielded by the consumer, or at the NATS subscriber) minus the instant its commit
//!    returned to the writer (one process, one monotonic clock).
//!
//! The two take turns, each alone with the servers. The log is emptied before every turn.
//!
//! Usage: relay-bench [--events N] [--runs N] [--rate N] [--seconds N] [--markdown]
//! Needs DATABASE_URL (a database of its own) with the extension installed, and NATS_URL (a
//! nats-server with JetStream).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use column_notify_bench::{
    connect, database_url, describe, fail, key_of_payload, median, percentile, positive_number,
    print_table, Key,
};
use column_notify_listener::{DurableConsumer, RawDurableEvent, Relay};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_postgres::Client;

const TABLE: &str = "bench_relay_items";
const CHANNEL: &str = "bench_relay";
const IDLE_LIMIT: Duration = Duration::from_secs(20);

struct Options {
    events: u64,
    runs: usize,
    rate: u64,
    seconds: u64,
    markdown: bool,
}

fn parse_options() -> Options {
    let mut options = Options {
        events: 20_000,
        runs: 3,
        rate: 500,
        seconds: 5,
        markdown: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = |name: &str| positive_number(&mut args, name);
        match arg.as_str() {
            "--events" => options.events = number("--events"),
            "--runs" => options.runs = number("--runs") as usize,
            "--rate" => options.rate = number("--rate"),
            "--seconds" => options.seconds = number("--seconds"),
            "--markdown" => options.markdown = true,
            _ => fail(
                "usage: relay-bench [--events N] [--runs N] [--rate N] [--seconds N] [--markdown]",
            ),
        }
    }
    options
}

/// Who receives the events.
#[derive(Clone, Copy)]
enum Receiver {
    Consumer,
    Relay,
}

const RECEIVERS: [Receiver; 2] = [Receiver::Consumer, Receiver::Relay];

impl Receiver {
    fn label(self) -> &'static str {
        match self {
            Receiver::Consumer => "DurableConsumer alone (the floor)",
            Receiver::Relay => "column-notify relay into JetStream",
        }
    }
}

/// The key of a change's payload; a payload that is not one ends the run.
fn key_of(payload: &str) -> Key {
    key_of_payload(payload).unwrap_or_else(|error| fail(&error))
}

/// A receiver running: its arrivals come through the channel.
struct Receiving {
    arrivals: mpsc::UnboundedReceiver<(Key, Instant)>,
    tasks: Vec<JoinHandle<()>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Receiving {
    async fn start(receiver: Receiver, url: &str, nats: &str, turn: usize) -> Receiving {
        let (sender, arrivals) = mpsc::unbounded_channel();
        let consumer_name = format!("bench_{turn}");
        match receiver {
            Receiver::Consumer => {
                let mut consumer = DurableConsumer::connect(url, consumer_name, CHANNEL)
                    .await
                    .unwrap_or_else(|error| fail(&format!("consumer: {error}")));
                let task = tokio::spawn(async move {
                    loop {
                        let Ok(RawDurableEvent::Event(event)) = consumer.recv_raw().await else {
                            continue;
                        };
                        let _ = sender.send((key_of(&event.payload), Instant::now()));
                        if consumer.buffered_events() == 0
                            && consumer.ack(event.event_id).await.is_err()
                        {
                            return;
                        }
                    }
                });
                Receiving {
                    arrivals,
                    tasks: vec![task],
                    stop: None,
                }
            }
            Receiver::Relay => {
                let prefix = format!("bench_{turn}");
                let client = async_nats::connect(nats)
                    .await
                    .unwrap_or_else(|error| fail(&format!("NATS: {error}")));
                let mut messages = client
                    .subscribe(format!("{prefix}.{CHANNEL}"))
                    .await
                    .unwrap_or_else(|error| fail(&format!("NATS: {error}")));
                let subscriber = tokio::spawn(async move {
                    while let Some(message) = messages.next().await {
                        let payload = String::from_utf8_lossy(&message.payload);
                        let _ = sender.send((key_of(&payload), Instant::now()));
                    }
                });
                let (reports, mut reported) = mpsc::unbounded_channel();
                let relay = Relay::builder(url, consumer_name, [CHANNEL], nats)
                    .stream(format!("BENCH_{turn}"))
                    .subject_prefix(prefix)
                    .reports(reports)
                    .connect()
                    .await
                    .unwrap_or_else(|error| fail(&format!("relay: {error}")));
                let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
                let relaying = tokio::spawn(async move {
                    let _ = relay.run(async { drop(stopped.await) }).await;
                });
                // Publishing starts once the relay is active and caught up with the empty log.
                while let Some(report) = reported.recv().await {
                    if report.to_string().contains("caught up") {
                        break;
                    }
                }
                tokio::spawn(async move { while reported.recv().await.is_some() {} });
                Receiving {
                    arrivals,
                    tasks: vec![subscriber, relaying],
                    stop: Some(stop),
                }
            }
        }
    }

    /// The arrivals of `expected` changes; fails when one is missing.
    async fn collect(&mut self, expected: usize) -> HashMap<Key, Instant> {
        let mut arrived = HashMap::with_capacity(expected);
        while arrived.len() < expected {
            match tokio::time::timeout(IDLE_LIMIT, self.arrivals.recv()).await {
                Ok(Some((key, at))) => {
                    if arrived.insert(key, at).is_some() {
                        fail(&format!("change {key:?} arrived twice"));
                    }
                }
                _ => fail(&format!("{} of {expected} changes arrived", arrived.len())),
            }
        }
        arrived
    }

    async fn finish(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let mut tasks = self.tasks.into_iter();
        if let Some(first) = tasks.next() {
            first.abort();
        }
        for task in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }
}

async fn execute(client: &Client, sql: &str) {
    if let Err(error) = client.batch_execute(sql).await {
        fail(&format!("{sql}: {}", describe(&error)));
    }
}

async fn prepare(client: &Client, rows: u64) {
    execute(
        client,
        &format!(
            "DROP TABLE IF EXISTS {TABLE};
             CREATE TABLE {TABLE} (id int PRIMARY KEY, version int NOT NULL);
             INSERT INTO {TABLE} SELECT g, 0 FROM generate_series(1, {rows}) g;
             SELECT watch_column('{TABLE}', 'version', '{CHANNEL}', durable => true);"
        ),
    )
    .await;
}

/// Empties the log and forgets the consumers, so that each turn starts alike.
async fn reset(client: &Client) {
    execute(
        client,
        "SELECT column_notify.prune_events(interval '0 seconds'); DELETE FROM column_notify.consumers",
    )
    .await;
    execute(client, "VACUUM column_notify.events").await;
}

/// Throughput from a backlog: the time from the COMMIT to the last arrival.
async fn backlog(
    client: &Client,
    url: &str,
    nats: &str,
    receiver: Receiver,
    turn: usize,
    events: u64,
) -> Duration {
    reset(client).await;
    let mut receiving = Receiving::start(receiver, url, nats, turn).await;
    let committed = Instant::now();
    execute(
        client,
        &format!("UPDATE {TABLE} SET version = version + 1 WHERE id <= {events}"),
    )
    .await;
    let arrived = receiving.collect(events as usize).await;
    receiving.finish().await;
    let last = arrived.values().max().copied().unwrap_or(committed);
    last - committed
}

/// Latency: single-row commits at `rate` for `seconds`; each arrival minus its commit.
async fn latency(
    client: &Client,
    url: &str,
    nats: &str,
    receiver: Receiver,
    turn: usize,
    options: &Options,
) -> Vec<f64> {
    reset(client).await;
    let mut receiving = Receiving::start(receiver, url, nats, turn).await;
    let statement = client
        .prepare(&format!(
            "UPDATE {TABLE} SET version = version + 1 WHERE id = $1 RETURNING id, version"
        ))
        .await
        .unwrap_or_else(|error| fail(&describe(&error)));
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / options.rate as f64));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut commits = HashMap::new();
    let end = Instant::now() + Duration::from_secs(options.seconds);
    let mut id = 0;
    while Instant::now() < end {
        ticks.tick().await;
        id = id % options.events as i32 + 1;
        let row = client
            .query_one(&statement, &[&id])
            .await
            .unwrap_or_else(|error| fail(&describe(&error)));
        commits.insert(
            (
                i64::from(row.get::<_, i32>(0)),
                i64::from(row.get::<_, i32>(1)),
            ),
            Instant::now(),
        );
    }
    let arrived = receiving.collect(commits.len()).await;
    receiving.finish().await;
    commits
        .iter()
        .map(|(key, committed)| {
            let at = arrived[key];
            if at >= *committed {
                (at - *committed).as_secs_f64() * 1e6
            } else {
                -((*committed - at).as_secs_f64() * 1e6)
            }
        })
        .collect()
}

#[tokio::main]
async fn main() {
    let options = parse_options();
    let url = database_url();
    let nats = std::env::var("NATS_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| fail("NATS_URL is not set (a nats-server with JetStream)"));
    let client = connect(&url).await;
    eprintln!(
        "preparing {} rows watched durably on {CHANNEL}...",
        options.events
    );
    prepare(&client, options.events).await;

    let mut turn = 0;
    let mut drains: Vec<Vec<Duration>> = vec![Vec::new(); RECEIVERS.len()];
    let mut latencies: Vec<Vec<f64>> = vec![Vec::new(); RECEIVERS.len()];
    for round in 0..options.runs {
        for offset in 0..RECEIVERS.len() {
            let i = (round + offset) % RECEIVERS.len();
            turn += 1;
            drains[i].push(backlog(&client, &url, &nats, RECEIVERS[i], turn, options.events).await);
            turn += 1;
            latencies[i].extend(latency(&client, &url, &nats, RECEIVERS[i], turn, &options).await);
        }
        eprintln!("round {}/{} done", round + 1, options.runs);
    }

    println!(
        "The NATS relay side by side with the DurableConsumer it reads through: the same \
         durable watch, the receivers taking turns, the log emptied before each turn, every \
         committed change checked to arrive exactly once.\n"
    );
    let rates: Vec<f64> = drains
        .iter_mut()
        .map(|runs| options.events as f64 / median(runs).as_secs_f64())
        .collect();
    let rows: Vec<Vec<String>> = RECEIVERS
        .iter()
        .enumerate()
        .map(|(i, receiver)| {
            vec![
                receiver.label().to_owned(),
                format!("{:.0}/s", rates[i]),
                format!("{:.2}", rates[i] / rates[0]),
            ]
        })
        .collect();
    print_table(
        options.markdown,
        &format!(
            "Throughput draining a backlog: {} changes committed in one transaction, median of {} \
             alternating runs (events / time from the COMMIT to the last event yielded, or in \
             the stream)",
            options.events, options.runs
        ),
        &["receiver", "events/s", "/ consumer alone"],
        &rows,
    );
    let rows: Vec<Vec<String>> = RECEIVERS
        .iter()
        .zip(latencies.iter_mut())
        .map(|(receiver, samples)| {
            samples.sort_unstable_by(f64::total_cmp);
            vec![
                receiver.label().to_owned(),
                format!("{:.0} µs", percentile(samples, 50.0)),
                format!("{:.0} µs", percentile(samples, 99.0)),
                format!("{}", samples.len()),
            ]
        })
        .collect();
    print_table(
        options.markdown,
        &format!(
            "Latency: single-row commits at {}/s for {} s per turn, {} turns each (event yielded, \
             or in the stream, minus commit returned to the writer)",
            options.rate, options.seconds, options.runs
        ),
        &["receiver", "p50", "p99", "events"],
        &rows,
    );
    execute(
        &client,
        &format!("SELECT unwatch_column('{TABLE}', 'version'); DROP TABLE {TABLE}"),
    )
    .await;
}
