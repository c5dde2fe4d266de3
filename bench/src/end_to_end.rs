//! End to end, from a committed UPDATE to the application: the `column_notify_listener`
//! crate's `Listener` (which decodes every payload into a `Change`) side by side with a
//! baseline, a plain tokio-postgres connection that only reads `AsyncMessage::Notification`
//! (what libpq's `PQnotifies` gives; no parsing while receiving), and between the two the
//! same plain connection parsing each payload into a `serde_json::Value` as it arrives, which
//! tells the cost of JSON from the cost of the crate. And the command-line tool,
//! `column-notify listen` printing JSON lines to a pipe, beside a bare receiver printing each
//! payload to a pipe (`print-notifications`); both are processes the benchmark reads.
//!
//! 1. Throughput, paced by the writer: `--events` changes committed to an appointments table
//!    watched with `watch_column`, `--batch` rows per committed UPDATE; events / time from the
//!    first UPDATE sent to the last event received.
//! 2. Throughput from a backlog: the same changes in one transaction; events / time from the
//!    COMMIT sent to the last event received (what a receiver can take).
//! 3. Latency: single-row UPDATE commits at a steady `--rate` for `--seconds`; each event's
//!    latency is its arrival minus the instant its commit returned to the writer (one
//!    process, one monotonic clock).
//!
//! The receivers take turns (the order rotates each round), each alone with the server, so
//! that on a small machine none measures another's CPU use. Every committed change must
//! arrive exactly once, or the run fails saying what is missing.
//!
//! Usage: end-to-end [--events N] [--batch N] [--runs N] [--rate N] [--seconds N] [--markdown]
//! Needs DATABASE_URL (best a database of its own) with the extension installed, and
//! `column-notify` and `print-notifications` built beside this program.

use std::collections::{HashMap, HashSet};
use std::future::poll_fn;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use column_notify_listener::{Event, Listener};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_postgres::{AsyncMessage, Client, NoTls, Notification, Statement};

use column_notify_bench::{
    connect, database_url, describe, fail, key_of, key_of_payload, median, percentile,
    positive_number, print_table, Key,
};

const TABLE: &str = "bench_e2e_appointments";
const CHANNEL: &str = "bench_e2e_canceled";
/// A receiver that gets no event for this long gives up and reports what is missing.
const IDLE_LIMIT: Duration = Duration::from_secs(10);
/// One committed change of rows `$1` to `$2`: the watched column flips, `version` counts.
const UPDATE: &str = "UPDATE bench_e2e_appointments
    SET canceled = NOT canceled, version = version + 1, updated_at = now()
    WHERE id BETWEEN $1 AND $2 RETURNING id, version";

struct Options {
    events: u64,
    batch: u64,
    runs: usize,
    rate: u64,
    seconds: u64,
    markdown: bool,
}

const USAGE: &str =
    "usage: end-to-end [--events N] [--batch N] [--runs N] [--rate N] [--seconds N] [--markdown]";

fn parse_options() -> Options {
    let mut options = Options {
        events: 20_000,
        batch: 100,
        runs: 3,
        rate: 500,
        seconds: 5,
        markdown: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || positive_number(&mut args, &arg);
        match arg.as_str() {
            "--events" => options.events = value(),
            "--batch" => options.batch = value(),
            "--runs" => options.runs = value() as usize,
            "--rate" => options.rate = value(),
            "--seconds" => options.seconds = value(),
            "--markdown" => options.markdown = true,
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => fail(&format!("unknown argument {other} (see --help)")),
        }
    }
    options
}

/// When the writer sent each row version's UPDATE, and when its commit returned.
type Commits = HashMap<Key, (Instant, Instant)>;

/// One event received: which row version, and when.
struct Arrival {
    key: Key,
    at: Instant,
}

#[derive(Clone, Copy)]
enum Receiver {
    /// The crate's `Listener`: every payload decoded into a `Change`.
    Crate,
    /// A plain tokio-postgres connection that parses each payload into a `serde_json::Value`
    /// as it arrives: the JSON cost alone, without the crate.
    Parsing,
    /// A plain tokio-postgres connection that only reads the notifications.
    Baseline,
    /// `column-notify listen`, its JSON lines read from a pipe.
    Cli,
    /// `print-notifications`: a plain connection printing each payload, read from a pipe.
    Printing,
}

const RECEIVERS: [Receiver; 5] = [
    Receiver::Crate,
    Receiver::Parsing,
    Receiver::Baseline,
    Receiver::Cli,
    Receiver::Printing,
];
/// The index of the baseline in `RECEIVERS`.
const BASELINE: usize = 2;

impl Receiver {
    fn label(self) -> &'static str {
        match self {
            Receiver::Crate => "column_notify_listener",
            Receiver::Parsing => "tokio-postgres + serde_json",
            Receiver::Baseline => "tokio-postgres (baseline)",
            Receiver::Cli => "column-notify listen, JSON lines to a pipe",
            Receiver::Printing => "tokio-postgres printing each payload to a pipe",
        }
    }

    /// The index in `RECEIVERS` of the bare receiver doing the same work without the crate.
    fn counterpart(self) -> Option<usize> {
        match self {
            Receiver::Crate => Some(1),
            Receiver::Cli => Some(4),
            Receiver::Parsing | Receiver::Baseline | Receiver::Printing => None,
        }
    }

    /// Connects and listens; once this returns, every later commit reaches the receiver.
    async fn listen(self, url: &str, expected: usize) -> Receiving {
        match self {
            Receiver::Crate => listen_with_crate(url, expected).await,
            Receiver::Parsing | Receiver::Baseline => {
                listen_with_tokio_postgres(self, url, expected).await
            }
            Receiver::Cli | Receiver::Printing => listen_with_process(self, url, expected).await,
        }
    }
}

/// A receiver at work: a task that collects `expected` events.
struct Receiving {
    receiver: Receiver,
    task: JoinHandle<Result<Vec<Arrival>, String>>,
    /// A plain connection's client: dropping it would close the connection the task reads.
    client: Option<Client>,
    /// A receiving process, stopped once its events are in.
    process: Option<Child>,
}

impl Receiving {
    async fn finish(self) -> Vec<Arrival> {
        let label = self.receiver.label();
        let arrivals = self
            .task
            .await
            .unwrap_or_else(|error| fail(&format!("{label}: the receiving task failed: {error}")))
            .unwrap_or_else(|error| fail(&format!("{label}: {error}")));
        drop(self.client);
        if let Some(mut process) = self.process {
            let _ = process.kill().await;
        }
        arrivals
    }
}

fn missing(received: usize, expected: usize) -> String {
    format!(
        "only {received} of {expected} committed changes arrived \
         (none for {} s): events were lost",
        IDLE_LIMIT.as_secs()
    )
}

async fn listen_with_crate(url: &str, expected: usize) -> Receiving {
    let mut listener = Listener::connect(url, [CHANNEL])
        .await
        .unwrap_or_else(|error| fail(&format!("the listener cannot start: {error}")));
    let task = tokio::spawn(async move {
        let mut arrivals = Vec::with_capacity(expected);
        while arrivals.len() < expected {
            let event = listener
                .recv_timeout(IDLE_LIMIT)
                .await
                .map_err(|error| format!("{} ({error})", missing(arrivals.len(), expected)))?;
            let at = Instant::now();
            match event {
                Event::Change { change, .. } => {
                    arrivals.push(Arrival {
                        key: key_of(&change.id, change.new.as_ref())?,
                        at,
                    });
                }
                Event::InvalidPayload { error, .. } => {
                    return Err(format!("a payload that is not a change: {error}"));
                }
                Event::Connection(event) => {
                    return Err(format!(
                        "the connection changed ({event:?}): events may be lost"
                    ));
                }
            }
        }
        Ok(arrivals)
    });
    Receiving {
        receiver: Receiver::Crate,
        task,
        client: None,
        process: None,
    }
}

/// A notification as a plain connection keeps it.
enum Received {
    /// Not parsed yet (the baseline parses after the last event, outside the timing).
    Payload(Notification),
    /// Parsed on arrival.
    Key(Key),
}

async fn listen_with_tokio_postgres(receiver: Receiver, url: &str, expected: usize) -> Receiving {
    let parse_on_arrival = matches!(receiver, Receiver::Parsing);
    let (client, mut connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|error| fail(&format!("cannot connect: {}", describe(&error))));
    // The task drives the connection (so LISTEN below gets its answer) and keeps every
    // notification with its arrival time.
    let task = tokio::spawn(async move {
        let mut received = Vec::with_capacity(expected);
        while received.len() < expected {
            let message =
                tokio::time::timeout(IDLE_LIMIT, poll_fn(|cx| connection.poll_message(cx)))
                    .await
                    .map_err(|_| missing(received.len(), expected))?;
            match message {
                Some(Ok(AsyncMessage::Notification(notification))) => {
                    let kept = if parse_on_arrival {
                        Received::Key(key_of_payload(notification.payload())?)
                    } else {
                        Received::Payload(notification)
                    };
                    received.push((kept, Instant::now()));
                }
                Some(Ok(_)) => {} // a notice
                Some(Err(error)) => {
                    return Err(format!("the connection failed: {}", describe(&error)));
                }
                None => {
                    return Err(format!(
                        "the connection closed after {} events",
                        received.len()
                    ));
                }
            }
        }
        received
            .into_iter()
            .map(|(kept, at)| {
                let key = match kept {
                    Received::Payload(notification) => key_of_payload(notification.payload())?,
                    Received::Key(key) => key,
                };
                Ok(Arrival { key, at })
            })
            .collect()
    });
    client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .await
        .unwrap_or_else(|error| fail(&format!("LISTEN failed: {}", describe(&error))));
    Receiving {
        receiver,
        task,
        client: Some(client),
        process: None,
    }
}

/// A program built beside this one.
fn sibling(name: &str) -> PathBuf {
    let me = std::env::current_exe().unwrap_or_else(|error| fail(&error.to_string()));
    me.with_file_name(name)
}

/// Starts a receiving process and reads its lines as they come (parsed after the last one,
/// outside the timing); returns once the process says it is listening.
async fn listen_with_process(receiver: Receiver, url: &str, expected: usize) -> Receiving {
    let mut command = match receiver {
        Receiver::Cli => {
            let mut command = Command::new(sibling("column-notify"));
            command.args(["--database-url", url, "listen", CHANNEL]);
            command
        }
        _ => {
            let mut command = Command::new(sibling("print-notifications"));
            command.arg(CHANNEL).env("DATABASE_URL", url);
            command
        }
    };
    let mut process = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|error| fail(&format!("{}: {error}", receiver.label())));
    let mut state = BufReader::new(process.stderr.take().expect("piped")).lines();
    loop {
        match state.next_line().await {
            Ok(Some(line)) if line.contains("listening") => break,
            Ok(Some(_)) => {}
            _ => fail(&format!("{}: stopped before listening", receiver.label())),
        }
    }
    let mut lines =
        BufReader::with_capacity(1 << 16, process.stdout.take().expect("piped")).lines();
    let task = tokio::spawn(async move {
        let mut received = Vec::with_capacity(expected);
        while received.len() < expected {
            let line = tokio::time::timeout(IDLE_LIMIT, lines.next_line())
                .await
                .map_err(|_| missing(received.len(), expected))?
                .map_err(|error| format!("reading the receiver's output: {error}"))?
                .ok_or_else(|| format!("the receiver stopped after {} events", received.len()))?;
            received.push((line, Instant::now()));
        }
        received
            .into_iter()
            .map(|(line, at)| {
                let key = match receiver {
                    Receiver::Cli => {
                        let line: Value = serde_json::from_str(&line)
                            .map_err(|error| format!("a line that is not JSON: {error}"))?;
                        key_of(&line["payload"]["id"], line["payload"].get("new"))?
                    }
                    _ => key_of_payload(&line)?,
                };
                Ok(Arrival { key, at })
            })
            .collect()
    });
    Receiving {
        receiver,
        task,
        client: None,
        process: Some(process),
    }
}

/// The writer's connection and its prepared UPDATE.
struct Writer {
    client: Client,
    update: Statement,
}

impl Writer {
    /// Runs the UPDATE of rows `first..=last`: the row versions it made.
    async fn update(&self, first: u64, last: u64) -> Vec<Key> {
        let rows = self
            .client
            .query(&self.update, &[&(first as i64), &(last as i64)])
            .await
            .unwrap_or_else(|error| fail(&format!("UPDATE failed: {}", describe(&error))));
        rows.iter().map(|row| (row.get(0), row.get(1))).collect()
    }

    /// Commits one change of rows `first..=last` (a statement of its own), notes its
    /// instants, and returns when the commit returned.
    async fn commit(&self, first: u64, last: u64, commits: &mut Commits) -> Instant {
        let sent = Instant::now();
        let keys = self.update(first, last).await;
        let returned = Instant::now();
        commits.extend(keys.into_iter().map(|key| (key, (sent, returned))));
        returned
    }

    /// Changes rows `first..=last` in a transaction, notes the instants of its COMMIT, and
    /// returns when the COMMIT was sent: no event can arrive before.
    async fn commit_at_once(&self, first: u64, last: u64, commits: &mut Commits) -> Instant {
        self.execute("BEGIN").await;
        let keys = self.update(first, last).await;
        let sent = Instant::now();
        self.execute("COMMIT").await;
        let returned = Instant::now();
        commits.extend(keys.into_iter().map(|key| (key, (sent, returned))));
        sent
    }

    async fn execute(&self, sql: &str) {
        self.client
            .batch_execute(sql)
            .await
            .unwrap_or_else(|error| fail(&format!("{sql}: {}", describe(&error))));
    }

    async fn vacuum(&self) {
        self.execute(&format!("VACUUM {TABLE}")).await;
    }
}

/// Fails unless every committed row version arrived exactly once and nothing else did.
fn check_delivery(receiver: Receiver, commits: &Commits, arrivals: &[Arrival]) {
    let label = receiver.label();
    let mut seen = HashSet::with_capacity(arrivals.len());
    for arrival in arrivals {
        if !commits.contains_key(&arrival.key) {
            fail(&format!(
                "{label}: an event for {:?}, which was not committed",
                arrival.key
            ));
        }
        if !seen.insert(arrival.key) {
            fail(&format!(
                "{label}: the event for {:?} arrived twice",
                arrival.key
            ));
        }
    }
    if let Some(lost) = commits.keys().find(|key| !seen.contains(*key)) {
        fail(&format!(
            "{label}: {} of {} committed changes arrived; lost, for one: {lost:?}",
            seen.len(),
            commits.len()
        ));
    }
}

/// `later - earlier` in microseconds, negative when `later` came first.
fn micros_between(earlier: Instant, later: Instant) -> f64 {
    if later >= earlier {
        (later - earlier).as_secs_f64() * 1e6
    } else {
        -(earlier - later).as_secs_f64() * 1e6
    }
}

/// Latencies in microseconds, one of each kind an event.
#[derive(Default)]
struct Latencies {
    /// From the instant the commit returned to the writer.
    after_commit: Vec<f64>,
    /// From the instant the writer sent the UPDATE.
    after_send: Vec<f64>,
}

impl Latencies {
    fn add(&mut self, commits: &Commits, arrivals: &[Arrival]) {
        for arrival in arrivals {
            let (sent, returned) = commits[&arrival.key];
            self.after_commit.push(micros_between(returned, arrival.at));
            self.after_send.push(micros_between(sent, arrival.at));
        }
    }
}

/// How a throughput run commits its changes.
#[derive(Clone, Copy)]
enum Pace {
    /// One UPDATE statement (and commit) for each this many rows.
    Batches(u64),
    /// One transaction for them all.
    AtOnce,
}

/// One throughput run of one receiver.
struct Burst {
    /// From the first UPDATE sent to the last commit returned (to the COMMIT sent, at once).
    committing: Duration,
    /// From then to the last event received (zero when the last event came first).
    draining: Duration,
}

/// Commits a change to every row, at `pace`, while one receiver listens.
async fn burst(writer: &Writer, url: &str, receiver: Receiver, events: u64, pace: Pace) -> Burst {
    writer.vacuum().await;
    let receiving = receiver.listen(url, events as usize).await;
    let mut commits = Commits::with_capacity(events as usize);
    let start = Instant::now();
    let committed = match pace {
        Pace::Batches(batch) => {
            let mut last_commit = start;
            for first in (1..=events).step_by(batch as usize) {
                let last = (first + batch - 1).min(events);
                last_commit = writer.commit(first, last, &mut commits).await;
            }
            last_commit
        }
        Pace::AtOnce => writer.commit_at_once(1, events, &mut commits).await,
    };
    let arrivals = receiving.finish().await;
    check_delivery(receiver, &commits, &arrivals);
    let last_event = arrivals
        .iter()
        .map(|arrival| arrival.at)
        .max()
        .unwrap_or(committed);
    Burst {
        committing: committed - start,
        draining: last_event.saturating_duration_since(committed),
    }
}

/// One latency run of one receiver; returns how long the writer took.
async fn steady(
    writer: &Writer,
    url: &str,
    receiver: Receiver,
    options: &Options,
    latencies: &mut Latencies,
) -> Duration {
    writer.vacuum().await;
    let count = options.rate * options.seconds;
    let receiving = receiver.listen(url, count as usize).await;
    let mut commits = Commits::with_capacity(count as usize);
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / options.rate as f64));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let start = Instant::now();
    for n in 0..count {
        ticks.tick().await;
        let id = n % options.events + 1;
        writer.commit(id, id, &mut commits).await;
    }
    let writing = start.elapsed();
    let arrivals = receiving.finish().await;
    check_delivery(receiver, &commits, &arrivals);
    latencies.add(&commits, &arrivals);
    writing
}

async fn prepare(url: &str, options: &Options) -> Writer {
    let client = connect(url).await;
    client
        .batch_execute(&format!(
            "CREATE EXTENSION IF NOT EXISTS pg_column_notify;
             SELECT unwatch_column(to_regclass('{TABLE}'), 'canceled')
                 WHERE to_regclass('{TABLE}') IS NOT NULL;
             DROP TABLE IF EXISTS {TABLE};
             CREATE TABLE {TABLE} (id bigint PRIMARY KEY, canceled boolean NOT NULL, title text,
                 inserted_at timestamptz NOT NULL, updated_at timestamptz NOT NULL,
                 version bigint NOT NULL);
             INSERT INTO {TABLE} SELECT g, false, 'appointment ' || g, now(), now(), 0
                 FROM generate_series(1, {}) g;
             SELECT watch_column('{TABLE}', 'canceled', '{CHANNEL}');
             ANALYZE {TABLE};",
            options.events
        ))
        .await
        .unwrap_or_else(|error| fail(&format!("set-up failed: {}", describe(&error))));
    let update = client
        .prepare(UPDATE)
        .await
        .unwrap_or_else(|error| fail(&format!("preparing the UPDATE: {}", describe(&error))));
    Writer { client, update }
}

/// The receivers' indexes in the order of `round`: the first receiver changes each round.
fn turns(round: usize) -> impl Iterator<Item = usize> {
    (0..RECEIVERS.len()).map(move |offset| (round + offset) % RECEIVERS.len())
}

/// `figures[index]` over the baseline's, or "-" on the baseline's own row.
fn versus_baseline(figures: &[f64], index: usize) -> String {
    if index == BASELINE {
        "-".to_owned()
    } else {
        format!("{:.2}", figures[index] / figures[BASELINE])
    }
}

/// The ratio of a receiver's time to its bare counterpart's (the inverse of their rates), round
/// by round (the receivers take turns within a round): "median (lowest–highest)", or "-" for
/// a bare receiver.
fn versus_counterpart_by_round(
    runs: &[Vec<Burst>],
    index: usize,
    timed: &dyn Fn(&Burst) -> Duration,
) -> String {
    let Some(bare) = RECEIVERS[index].counterpart() else {
        return "-".to_owned();
    };
    let mut ratios: Vec<f64> = runs[index]
        .iter()
        .zip(&runs[bare])
        .map(|(ours, theirs)| timed(theirs).as_secs_f64() / timed(ours).as_secs_f64())
        .collect();
    ratios.sort_by(f64::total_cmp);
    match ratios.as_slice() {
        [] => "-".to_owned(),
        [only] => format!("{only:.2}"),
        [low, .., high] => format!("{:.2} ({low:.2}–{high:.2})", ratios[ratios.len() / 2]),
    }
}

/// The median of a figure of the runs of each receiver.
fn medians(runs: &[Vec<Burst>], figure: impl Fn(&Burst) -> Duration) -> Vec<Duration> {
    runs.iter()
        .map(|runs| median(&mut runs.iter().map(&figure).collect::<Vec<_>>()))
        .collect()
}

fn report_throughput(options: &Options, runs: &[Vec<Burst>], pace: Pace) {
    let committing = medians(runs, |run| run.committing);
    let draining = medians(runs, |run| run.draining);
    let timed_of: &dyn Fn(&Burst) -> Duration = match pace {
        Pace::Batches(_) => &|run: &Burst| run.committing + run.draining,
        Pace::AtOnce => &|run: &Burst| run.draining,
    };
    let (timed, title, after) = match pace {
        Pace::Batches(batch) => (
            medians(runs, timed_of),
            format!(
                "Throughput paced by the writer: {} changes committed in UPDATEs of {batch} rows, \
                 median of {} alternating runs (events / time from the first UPDATE sent to the \
                 last event received)",
                options.events, options.runs
            ),
            "last event after last commit",
        ),
        Pace::AtOnce => (
            draining.clone(),
            format!(
                "Throughput draining a backlog: the same {} changes committed in one transaction, \
                 median of {} alternating runs (events / time from the COMMIT sent to the last \
                 event received)",
                options.events, options.runs
            ),
            "last event after COMMIT sent",
        ),
    };
    let per_second = |time: Duration| options.events as f64 / time.as_secs_f64();
    let rates: Vec<f64> = timed.iter().map(|&time| per_second(time)).collect();
    let rows: Vec<Vec<String>> = (0..RECEIVERS.len())
        .map(|i| {
            vec![
                RECEIVERS[i].label().to_owned(),
                format!("{:.0}/s", rates[i]),
                versus_baseline(&rates, i),
                versus_counterpart_by_round(runs, i, timed_of),
                format!("{:.0}/s", per_second(committing[i])),
                format!("{:.1} ms", draining[i].as_secs_f64() * 1e3),
            ]
        })
        .collect();
    let header = [
        "receiver",
        "events/s",
        "/ baseline",
        "/ bare counterpart, round by round: median (range)",
        "writer's rows/s",
        after,
    ];
    print_table(options.markdown, &title, &header, &rows);
}

fn report_latency(options: &Options, latencies: &mut [Latencies], writing: &[Duration]) {
    let mut p50s = Vec::new();
    let mut rows = Vec::new();
    for (i, (latencies, writing)) in latencies.iter_mut().zip(writing).enumerate() {
        latencies.after_commit.sort_unstable_by(f64::total_cmp);
        latencies.after_send.sort_unstable_by(f64::total_cmp);
        let after_commit = &latencies.after_commit;
        let after_send = &latencies.after_send;
        let p50 = percentile(after_commit, 50.0);
        p50s.push(p50);
        rows.push(vec![
            RECEIVERS[i].label().to_owned(),
            format!("{p50:.0} µs"),
            format!("{:.0} µs", percentile(after_commit, 99.0)),
            format!("{:.0} µs", percentile(after_commit, 100.0)),
            format!("{:.0} µs", percentile(after_send, 50.0)),
            format!("{:.0} µs", percentile(after_send, 99.0)),
            format!("{}", after_commit.len()),
            format!("{:.0}/s", after_commit.len() as f64 / writing.as_secs_f64()),
        ]);
    }
    for (row, p50) in rows.iter_mut().zip(&p50s) {
        row.push(format!("{:+.0} µs", p50 - p50s[BASELINE]));
    }
    let title = format!(
        "Latency: single-row UPDATE commits at {}/s, {} alternating runs of {} s per receiver \
         (event received minus commit returned to the writer, one process and clock; negative \
         when the event came before the writer's answer)",
        options.rate, options.runs, options.seconds
    );
    let header = [
        "receiver",
        "p50",
        "p99",
        "max",
        "p50 from UPDATE sent",
        "p99 from UPDATE sent",
        "events",
        "writer's rate",
        "p50 - baseline's",
    ];
    print_table(options.markdown, &title, &header, &rows);
}

#[tokio::main]
async fn main() {
    let options = parse_options();
    let url = database_url();
    eprintln!(
        "preparing {} appointments rows watched on {CHANNEL}...",
        options.events
    );
    let writer = prepare(&url, &options).await;

    let mut paced: Vec<Vec<Burst>> = RECEIVERS.iter().map(|_| Vec::new()).collect();
    let mut backlog: Vec<Vec<Burst>> = RECEIVERS.iter().map(|_| Vec::new()).collect();
    for round in 0..options.runs {
        for i in turns(round) {
            let receiver = RECEIVERS[i];
            let pace = Pace::Batches(options.batch);
            paced[i].push(burst(&writer, &url, receiver, options.events, pace).await);
            backlog[i].push(burst(&writer, &url, receiver, options.events, Pace::AtOnce).await);
        }
        eprintln!("throughput round {}/{} done", round + 1, options.runs);
    }

    let mut latencies: Vec<Latencies> = RECEIVERS.iter().map(|_| Latencies::default()).collect();
    let mut writing = vec![Duration::ZERO; RECEIVERS.len()];
    for round in 0..options.runs {
        for i in turns(round) {
            writing[i] += steady(&writer, &url, RECEIVERS[i], &options, &mut latencies[i]).await;
        }
        eprintln!("latency round {}/{} done", round + 1, options.runs);
    }

    println!(
        "pg_column_notify end to end: changes of a watched column received by the \
         column_notify_listener crate (payloads decoded into Change), by a plain tokio-postgres \
         connection parsing each payload into a serde_json::Value, and by the same connection \
         only reading the notifications (the baseline); by `column-notify listen` printing JSON \
         lines to a pipe, and by a plain connection printing each payload to a pipe (its bare \
         counterpart). The receivers take turns, each alone with the server, and every \
         committed change is checked to arrive exactly once.\n"
    );
    report_throughput(&options, &paced, Pace::Batches(options.batch));
    report_throughput(&options, &backlog, Pace::AtOnce);
    report_latency(&options, &mut latencies, &writing);

    if let Err(error) = writer
        .client
        .batch_execute(&format!(
            "SELECT unwatch_column('{TABLE}', 'canceled'); DROP TABLE {TABLE}"
        ))
        .await
    {
        eprintln!("could not drop {TABLE}: {}", describe(&error));
    }
}
