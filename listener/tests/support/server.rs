//! The server under test: names no other test uses, plain connections (through the crate's
//! `connect_client`) that play the extension's part with `pg_notify`, and the server's
//! restart.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use column_notify_listener::tokio_postgres::Client;
use column_notify_listener::{connect_client, TlsVerification};
use integration_tests::server_url;

/// `DATABASE_URL` with an application name, to find the listener's backend.
pub fn url_named(application_name: &str) -> String {
    let url = server_url();
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}application_name={application_name}")
}

/// A name no other test (or test run) uses.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "cnl_{prefix}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A plain connection for sending notifications and running queries.
pub async fn sender() -> Client {
    connect_client_to(&server_url()).await
}

/// A plain connection to `url`.
pub async fn connect_client_to(url: &str) -> Client {
    connect_client(url, &TlsVerification::default())
        .await
        .expect("a connection")
}

/// `SELECT pg_notify(channel, payload)`, committed.
pub async fn notify(client: &Client, channel: &str, payload: &str) {
    client
        .execute("SELECT pg_notify($1, $2)", &[&channel, &payload])
        .await
        .expect("pg_notify");
}

/// The command that restarts the server, from `PGCN_RESTART_CMD`; `None` (and a message
/// saying the test is skipped) when it is not set.
pub fn restart_command() -> Option<String> {
    let command = std::env::var("PGCN_RESTART_CMD").ok();
    if command.is_none() {
        println!("skipped: set PGCN_RESTART_CMD to a command that restarts the server");
    }
    command
}

/// Runs the restart command, which must succeed; returns how long it took.
pub async fn restart_server(command: String) -> Duration {
    let started = std::time::Instant::now();
    let status = tokio::task::spawn_blocking(move || {
        std::process::Command::new("sh")
            .args(["-c", &command])
            .status()
    })
    .await
    .unwrap()
    .expect("the restart command runs");
    assert!(status.success(), "the restart command failed: {status}");
    started.elapsed()
}
