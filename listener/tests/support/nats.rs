//! A real `nats-server` of a test's own (a free port, a store folder of its own, JetStream
//! on or off), restartable, stopped when dropped; and reading back what a stream holds.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream;

/// The `nats-server` to run: `NATS_SERVER` (set by `make test`, from scripts/fetch-nats.sh),
/// else the one on the PATH.
fn program() -> String {
    std::env::var("NATS_SERVER").unwrap_or_else(|_| "nats-server".to_owned())
}

/// A running `nats-server`.
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    store: PathBuf,
    jetstream: bool,
}

impl NatsServer {
    /// Starts a server with JetStream, storing in a new folder.
    pub fn start() -> NatsServer {
        Self::start_with(true)
    }

    /// Starts a server without JetStream.
    pub fn start_without_jetstream() -> NatsServer {
        Self::start_with(false)
    }

    fn start_with(jetstream: bool) -> NatsServer {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let store = std::env::temp_dir().join(format!("pgcn-nats-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&store);
        std::fs::create_dir_all(&store).expect("the store folder");
        let mut server = NatsServer {
            child: None,
            port,
            store,
            jetstream,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let mut command = Command::new(program());
        command
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if self.jetstream {
            command.args(["-js", "-sd"]).arg(&self.store);
        }
        let child = command.spawn().unwrap_or_else(|error| {
            panic!(
                "cannot run {} (set NATS_SERVER, or run bash scripts/fetch-nats.sh): {error}",
                program()
            )
        });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Stops the server (SIGTERM, then waits) and starts it again on the same port and
    /// store.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// A JetStream context on a new connection.
    pub async fn jetstream(&self) -> jetstream::Context {
        jetstream::new(
            async_nats::connect(self.url())
                .await
                .expect("connect to nats-server"),
        )
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

/// One message of a stream: its `Nats-Msg-Id` and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEntry {
    pub subject: String,
    pub message_id: String,
    pub body: String,
}

/// Every message the stream holds, in stream order (empty when it does not exist).
pub async fn stream_entries(context: &jetstream::Context, stream: &str) -> Vec<StreamEntry> {
    let Ok(mut stream) = context.get_stream(stream).await else {
        return Vec::new();
    };
    let state = stream.info().await.expect("stream info").state.clone();
    let mut entries = Vec::new();
    for sequence in state.first_sequence..=state.last_sequence {
        if state.messages == 0 {
            break;
        }
        let Ok(message) = stream.get_raw_message(sequence).await else {
            continue; // deleted
        };
        entries.push(StreamEntry {
            subject: message.subject.to_string(),
            message_id: message
                .headers
                .get(async_nats::header::NATS_MESSAGE_ID)
                .map(|id| id.as_str().to_owned())
                .unwrap_or_default(),
            body: String::from_utf8(message.payload.to_vec()).expect("a UTF-8 body"),
        });
    }
    entries
}

/// Waits until the stream holds `count` messages (or more); panics past `within`.
pub async fn wait_for_entries(
    context: &jetstream::Context,
    stream: &str,
    count: usize,
    within: Duration,
) -> Vec<StreamEntry> {
    let deadline = Instant::now() + within;
    loop {
        let held = match context.get_stream(stream).await {
            Ok(mut stream) => stream
                .info()
                .await
                .map(|info| info.state.messages)
                .unwrap_or(0),
            Err(_) => 0,
        };
        if held as usize >= count {
            return stream_entries(context, stream).await;
        }
        assert!(
            Instant::now() < deadline,
            "the stream holds {held} messages, not {count}, after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
