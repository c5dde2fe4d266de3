//! A session keeps the trigger's plans from statement to statement; every change to the
//! catalog or the session that bears on a payload must show in the next notification, on
//! the same connection.

use integration_tests::{Listener, TestDatabase};
use serde_json::{json, Value};

/// Runs `sql` on the session, then returns the next notification's payload.
async fn after(db: &TestDatabase, listener: &mut Listener, sql: &str) -> Value {
    db.run(sql).await;
    listener.next().await.payload
}

#[tokio::test]
async fn kept_plans_follow_changes_to_the_table_the_watch_and_the_schema() {
    let db = TestDatabase::with_schema(
        "session_plans",
        "CREATE SCHEMA clinic;
         CREATE TABLE clinic.slots (id int PRIMARY KEY, state text, note text);
         INSERT INTO clinic.slots VALUES (1, 'a', 'n');
         SELECT watch_column('clinic.slots', 'state', 'first');",
    )
    .await;
    let mut first = db.listen("first").await;
    let payload = after(&db, &mut first, "UPDATE clinic.slots SET state = 'b'").await;
    assert_eq!(payload["new"], json!({"id": 1, "state": "b", "note": "n"}));

    let payload = after(
        &db,
        &mut first,
        "ALTER TABLE clinic.slots ADD COLUMN room int DEFAULT 7;
         UPDATE clinic.slots SET state = 'c'",
    )
    .await;
    assert_eq!(
        payload["new"],
        json!({"id": 1, "state": "c", "note": "n", "room": 7})
    );

    let payload = after(
        &db,
        &mut first,
        "ALTER TABLE clinic.slots DROP COLUMN note;
         ALTER TABLE clinic.slots ALTER COLUMN room TYPE text;
         UPDATE clinic.slots SET state = 'd'",
    )
    .await;
    assert_eq!(payload["new"], json!({"id": 1, "state": "d", "room": "7"}));

    let payload = after(
        &db,
        &mut first,
        "ALTER SCHEMA clinic RENAME TO practice;
         UPDATE practice.slots SET state = 'e'",
    )
    .await;
    assert_eq!(
        (&payload["schema"], &payload["table"]),
        (&json!("practice"), &json!("slots"))
    );

    // The same trigger, replaced with other arguments: the new channel and options apply.
    let mut second = db.listen("second").await;
    let payload = after(
        &db,
        &mut second,
        "SELECT watch_column('practice.slots', 'state', 'second', metadata => false);
         UPDATE practice.slots SET state = 'f'",
    )
    .await;
    assert_eq!(
        payload,
        json!({"id": 1, "old": {"id": 1, "state": "e", "room": "7"},
                               "new": {"id": 1, "state": "f", "room": "7"}})
    );
    first.assert_silent().await;
}

#[tokio::test]
async fn kept_plans_follow_the_session_time_zone_and_types() {
    let db = TestDatabase::with_schema(
        "session_plans_types",
        "CREATE TYPE mood AS ENUM ('calm');
         CREATE TABLE visits (id int PRIMARY KEY, at timestamptz, mood mood);
         INSERT INTO visits VALUES (1, '2024-05-01 10:00:00+00', 'calm');
         SELECT watch_column('visits', 'mood', 'visits');",
    )
    .await;
    let mut listener = db.listen("visits").await;
    db.run("SET TIME ZONE 'UTC'; UPDATE visits SET mood = 'calm'")
        .await;
    // A new enum value is usable once committed: its own statement.
    db.run("ALTER TYPE mood ADD VALUE 'tense'").await;
    let payload = after(&db, &mut listener, "UPDATE visits SET mood = 'tense'").await;
    assert_eq!(payload["new"]["at"], json!("2024-05-01T10:00:00+00:00"));
    assert_eq!(payload["new"]["mood"], json!("tense"));

    for (zone, rendered) in [
        ("Asia/Kolkata", "2024-05-01T15:30:00+05:30"),
        ("America/New_York", "2024-05-01T06:00:00-04:00"),
    ] {
        let payload = after(
            &db,
            &mut listener,
            &format!(
                "SET TIME ZONE '{zone}';
                 UPDATE visits SET mood = CASE mood WHEN 'calm' THEN 'tense' ELSE 'calm' END::mood"
            ),
        )
        .await;
        assert_eq!(payload["new"]["at"], json!(rendered), "{zone}");
    }
}
