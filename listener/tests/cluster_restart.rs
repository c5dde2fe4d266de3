//! The whole server restarted under a listener: the gap is reported, the listener
//! reconnects once the server is back and receives what is committed afterwards.
//! The restart command comes from `PGCN_RESTART_CMD`; without it the test is skipped.

mod support;

use std::time::Duration;

use column_notify_listener::{Backoff, Listener};
use support::*;

#[tokio::test]
async fn cluster_restart_is_reported_and_reconnected() {
    let Ok(restart) = std::env::var("PGCN_RESTART_CMD") else {
        println!("skipped: set PGCN_RESTART_CMD to a command that restarts the server");
        return;
    };
    let channel = unique("restart");
    let mut listener = Listener::builder(database_url())
        .channel(&channel)
        .backoff(Backoff::new(
            Duration::from_millis(50),
            Duration::from_millis(500),
        ))
        .connect()
        .await
        .unwrap();
    let sender = sender().await;
    notify(&sender, &channel, &change_payload(1)).await;
    assert_change(&next_change(&mut listener, &channel).await, 1);

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
    let sender = support::sender().await;
    for id in 2..=3 {
        notify(&sender, &channel, &change_payload(id)).await;
    }
    for id in 2..=3 {
        assert_change(&next_change(&mut listener, &channel).await, id);
    }
}
