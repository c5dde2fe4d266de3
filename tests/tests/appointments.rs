//! The appointments scenario of the README, over real connections.

use integration_tests::TestDatabase;
use serde_json::json;

const MIGRATION: &str = include_str!("../../appointments_demo/migrations/001_appointments.sql");

async fn cancel(db: &TestDatabase, id: i64) {
    db.client
        .execute(
            "UPDATE appointments SET canceled = true WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn canceling_an_appointment_notifies_with_old_and_new_rows() {
    let db = TestDatabase::create("appointments").await;
    db.client.batch_execute(MIGRATION).await.expect("migration");
    let mut listener = db.listen("appointments_canceled_changed").await;

    let id = integration_tests::query_i64(
        &db.client,
        "INSERT INTO appointments (canceled) VALUES (false) RETURNING id",
    )
    .await;
    listener.assert_silent().await; // watches fire on UPDATE only, by default

    cancel(&db, id).await;
    let received = listener.next().await;

    assert_eq!(received.channel, "appointments_canceled_changed");
    let payload = received.payload;
    assert_eq!(payload["id"], json!(id));
    assert_eq!(payload["old"]["canceled"], json!(false));
    assert_eq!(payload["new"]["canceled"], json!(true));
    assert_eq!(payload["old"]["id"], json!(id));
    assert_eq!(payload["op"], json!("UPDATE"));
    assert_eq!(payload["schema"], json!("public"));
    assert_eq!(payload["table"], json!("appointments"));
    assert_eq!(payload["changed"], json!(["canceled"]));
    let expected_row_keys = ["id", "canceled", "inserted_at", "updated_at"];
    for image in ["old", "new"] {
        let keys: Vec<&str> = payload[image]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys, expected_row_keys,
            "{image} has every column, in table order"
        );
    }

    // Canceling again changes nothing, so nothing is sent.
    cancel(&db, id).await;
    listener.assert_silent().await;
}

#[tokio::test]
async fn the_demo_migration_can_run_twice() {
    let db = TestDatabase::create("appointments_rerun").await;
    db.client.batch_execute(MIGRATION).await.expect("first run");
    db.client
        .batch_execute(MIGRATION)
        .await
        .expect("second run");
    let watches = integration_tests::query_i64(
        &db.client,
        "SELECT count(*) FROM column_watches WHERE table_name = 'appointments'::regclass",
    )
    .await;
    assert_eq!(watches, 1, "watch_column replaces, never duplicates");
    let triggers = integration_tests::query_i64(&db.client, "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'appointments'::regclass AND NOT tgisinternal").await;
    assert_eq!(triggers, 1);
}
