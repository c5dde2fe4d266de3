//! The consumers of the appointments example in other languages (`examples/python` with
//! psycopg 3, `examples/node` with `pg` from npm) against a real server: each prints one line
//! per change for every payload shape the README documents (a single change, a batch, a
//! truncated change, an insert, a delete) and skips a payload that is not a change. Both
//! print the same lines. `scripts/setup.sh` installs their dependencies.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use integration_tests::TestDatabase;

const CHANNEL: &str = "appointments_canceled_changed";

/// The lines the changes below print, in order.
const EXPECTED: [&str; 7] = [
    "appointment 1 inserted, canceled=false",
    "appointment 2 inserted, canceled=false",
    "appointment 1 canceled: false -> true",
    // The batch, in the heap's order: row 2, then row 1's version of the first update.
    "appointment 2 canceled: false -> true",
    "appointment 1 canceled: true -> false",
    "appointment 2 changed (payload truncated: reload the row)",
    "appointment 1 deleted",
];

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// A consumer process, killed when dropped, with its stdout and stderr lines.
struct Consumer {
    child: Child,
    stdout: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lines(pipe: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    receiver
}

fn start(program: &str, script: &Path, url: &str) -> Consumer {
    let mut child = Command::new(program)
        .arg(script)
        .args(["--count", &EXPECTED.len().to_string()])
        .env("DATABASE_URL", url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("{program} {}: {error}", script.display()));
    let consumer = Consumer {
        stdout: lines(child.stdout.take().unwrap()),
        stderr: lines(child.stderr.take().unwrap()),
        child,
    };
    let first = consumer
        .stderr
        .recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("{} did not start (run scripts/setup.sh)", script.display()));
    assert_eq!(
        first,
        format!("listening on {CHANNEL}"),
        "{}",
        script.display()
    );
    consumer
}

#[tokio::test]
async fn python_and_node_consumers_handle_every_payload_shape() {
    let db = TestDatabase::with_schema(
        "other_languages",
        // The appointments table, a watch of every event, and a batched watch of the notes
        // on the same channel; notes of 9,000 characters make a payload too large.
        &format!(
            "CREATE TABLE appointments (id bigint PRIMARY KEY, canceled boolean NOT NULL DEFAULT false,
                                        notes text);
             SELECT watch_column('appointments', 'canceled', '{CHANNEL}',
                                 events => '{{insert,update,delete}}');"
        ),
    )
    .await;
    let python = start("python3", &examples().join("python/consumer.py"), &db.url);
    let node = start("node", &examples().join("node/consumer.js"), &db.url);

    for statement in [
        "INSERT INTO appointments (id) VALUES (1), (2)",
        &format!("NOTIFY {CHANNEL}, 'not a change'"),
        "UPDATE appointments SET canceled = true WHERE id = 1",
        // One statement, two changes, in one batch of a watch of its own.
        &format!(
            "SELECT watch_column('appointments', 'canceled', '{CHANNEL}', batch => true,
                                 events => '{{update}}', key => '{{id}}')"
        ),
        "UPDATE appointments SET canceled = NOT canceled",
        &format!("SELECT watch_column('appointments', 'canceled', '{CHANNEL}', events => '{{insert,update,delete}}')"),
        "UPDATE appointments SET canceled = false, notes = repeat('x', 9000) WHERE id = 2",
        "DELETE FROM appointments WHERE id = 1",
    ] {
        db.run(statement).await;
    }

    for (name, consumer) in [("python", python), ("node", node)] {
        let printed: Vec<String> = (0..EXPECTED.len())
            .map(|n| {
                consumer
                    .stdout
                    .recv_timeout(Duration::from_secs(20))
                    .unwrap_or_else(|_| panic!("{name}: line {n} did not come"))
            })
            .collect();
        assert_eq!(printed, EXPECTED, "{name}");
        let skipped = consumer
            .stderr
            .recv_timeout(Duration::from_secs(5))
            .unwrap();
        assert_eq!(
            skipped,
            "ignored a payload that is not a change: 'not a change'"
                .replace('\'', if name == "node" { "\"" } else { "'" }),
            "{name}"
        );
        let mut consumer = consumer;
        let status = consumer.child.wait().unwrap();
        assert!(status.success(), "{name} exits 0 after --count lines");
    }
}
