//! A server without `wal_level = logical` (set with ALTER SYSTEM and a restart, then reset):
//! `watch_column(..., delivery => 'wal')` is refused with a hint, nothing is left behind,
//! and a WAL consumer is refused too. The restart command comes from `PGCN_RESTART_CMD`;
//! without it the test is skipped.

use column_notify_listener::{Error, WalConsumer};
use support::*;

async fn set_wal_level(level: &str, restart: &str) {
    let admin = db_after_restart(&server_url()).await;
    // A server with logical slots does not start below wal_level = logical: their
    // consumers are ended and the slots dropped first.
    admin
        .client
        .batch_execute(
            "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE active",
        )
        .await
        .unwrap();
    for _ in 0..100 {
        let active: i64 = admin
            .client
            .query_one(
                "SELECT count(*) FROM pg_replication_slots WHERE active",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if active == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    for statement in [
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots".to_owned(),
        format!("ALTER SYSTEM SET wal_level = {level}"),
    ] {
        admin.client.batch_execute(&statement).await.unwrap();
    }
    restart_server(restart.to_owned()).await;
}

#[tokio::test]
async fn wal_delivery_is_refused_below_wal_level_logical() {
    let Some(restart) = restart_command() else {
        return;
    };
    set_wal_level("replica", &restart).await;
    // Nothing here may panic before the server is set back.
    let db = DurableDatabase::create("wal_level", 1).await;
    let refused = db
        .client
        .batch_execute("SELECT watch_column('items', 'value', 'v', delivery => 'wal')")
        .await;
    let left = db
        .client
        .query_one(
            "SELECT count(*) FROM column_notify.watches WHERE channel = 'v'",
            &[],
        )
        .await
        .map(|row| row.get::<_, i64>(0));
    let consumer = WalConsumer::builder(&db.url, "reader")
        .channel("items")
        .connect()
        .await
        .map(|_| ());
    set_wal_level("DEFAULT", &restart).await;

    let error = refused.expect_err("refused");
    let db_error = error.as_db_error().unwrap();
    let (code, message, hint) = (db_error.code().code(), db_error.message(), db_error.hint());
    let left = left.unwrap();
    assert_eq!(code, "55000");
    assert_eq!(message, "delivery => 'wal' needs wal_level = logical");
    assert_eq!(
        hint,
        Some(
            "Set wal_level = logical in postgresql.conf and restart the server, or keep \
             delivery => 'notify'."
        )
    );
    assert_eq!(left, 0);
    assert!(
        matches!(&consumer, Err(Error::WalLevel(level)) if level == "replica"),
        "{consumer:?}"
    );
    let admin = db_after_restart(&server_url()).await;
    let level: String = admin
        .client
        .query_one("SHOW wal_level", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(level, "logical");
}
