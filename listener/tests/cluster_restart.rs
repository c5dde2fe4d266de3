//! The whole server restarted under a listener: the gap is reported, the listener
//! reconnects once the server is back and receives what is committed afterwards.
//! The restart command comes from `PGCN_RESTART_CMD`; without it the test is skipped.

use std::time::Duration;

use column_notify_listener::HealthCheck;
use support::*;

#[tokio::test]
async fn cluster_restart_is_reported_and_reconnected() {
    let Some(restart) = restart_command() else {
        return;
    };
    let channel = unique("restart");
    let (mut listener, _) =
        reconnecting_listener(server_url(), &channel, HealthCheck::default()).await;

    restart_server(restart).await;

    expect_gap(&mut listener, Duration::from_secs(30)).await;
    let sender = sender().await;
    round_trip(&mut listener, &sender, &channel, 2..=3).await;
}
