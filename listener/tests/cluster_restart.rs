//! The whole server restarted under a listener: the gap is reported, the listener
//! reconnects once the server is back and receives what is committed afterwards.
//! The restart command comes from `PGCN_RESTART_CMD`; without it the test is skipped.

mod support;

use std::time::Duration;

use column_notify_listener::HealthCheck;
use support::*;

#[tokio::test]
async fn cluster_restart_is_reported_and_reconnected() {
    let Ok(restart) = std::env::var("PGCN_RESTART_CMD") else {
        println!("skipped: set PGCN_RESTART_CMD to a command that restarts the server");
        return;
    };
    let channel = unique("restart");
    let (mut listener, _) =
        reconnecting_listener(database_url(), &channel, HealthCheck::default()).await;

    let status = tokio::task::spawn_blocking(move || {
        std::process::Command::new("sh")
            .args(["-c", &restart])
            .status()
    })
    .await
    .unwrap()
    .expect("the restart command runs");
    assert!(status.success(), "the restart command failed: {status}");

    expect_gap(&mut listener, Duration::from_secs(30)).await;
    let sender = sender().await;
    round_trip(&mut listener, &sender, &channel, 2..=3).await;
}
