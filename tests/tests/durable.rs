//! Durable watches over real connections: events logged with the change, replay that never
//! skips an event committed out of order, named consumers, retention.

use integration_tests::{connect, sqlstate, TestDatabase};
use serde_json::{json, Value};
use tokio_postgres::Client;

async fn durable_orders(name: &str) -> TestDatabase {
    let db = TestDatabase::with_schema(
        name,
        "CREATE TABLE orders (id int PRIMARY KEY, state text, body text);
             INSERT INTO orders SELECT g, 'new', '' FROM generate_series(1, 10) g;
             SELECT watch_column('orders', 'state', 'orders', durable => true);",
    )
    .await;
    db
}

/// (event_id, payload) of the next batch of `consumer`.
async fn read(client: &Client, consumer: &str) -> Vec<(i64, Value)> {
    client
        .query(
            "SELECT event_id, payload::text FROM column_notify.read_events($1, 'orders')",
            &[&consumer],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| {
            (
                row.get(0),
                serde_json::from_str(row.get::<_, &str>(1)).unwrap(),
            )
        })
        .collect()
}

fn ids(events: &[(i64, Value)]) -> Vec<i64> {
    events.iter().map(|(id, _)| *id).collect()
}

async fn ack(client: &Client, consumer: &str, up_to: i64) {
    client
        .execute(
            "SELECT column_notify.ack_events($1, 'orders', $2)",
            &[&consumer, &up_to],
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn notification_and_log_carry_the_same_event() {
    let db = durable_orders("durable_basics").await;
    let mut listener = db.listen("orders").await;
    db.run("UPDATE orders SET state = 'paid' WHERE id = 1")
        .await;
    let notified = listener.next().await.payload;
    let logged = read(&db.client, "billing").await;
    assert_eq!(logged.len(), 1);
    assert_eq!(notified["event_id"], json!(logged[0].0));
    assert_eq!(
        notified, logged[0].1,
        "the log holds the payload that was sent"
    );

    // A rolled-back change leaves nothing in the log either.
    db.run("BEGIN; UPDATE orders SET state = 'lost' WHERE id = 2; ROLLBACK;")
        .await;
    ack(&db.client, "billing", logged[0].0).await;
    assert!(read(&db.client, "billing").await.is_empty());
}

#[tokio::test]
async fn an_event_committed_after_a_later_one_is_never_skipped() {
    let db = durable_orders("durable_out_of_order").await;
    let first_writer = connect(&db.url).await;
    let second_writer = connect(&db.url).await;

    // A takes the smaller event id and stays open; B takes the next one and commits.
    first_writer
        .batch_execute("BEGIN; UPDATE orders SET state = 'a' WHERE id = 1;")
        .await
        .unwrap();
    second_writer
        .batch_execute("UPDATE orders SET state = 'b' WHERE id = 2")
        .await
        .unwrap();

    let early = read(&db.client, "consumer").await;
    assert!(
        early.is_empty(),
        "B's event must wait while A may still commit a smaller id: {early:?}"
    );

    first_writer.batch_execute("COMMIT").await.unwrap();
    let events = read(&db.client, "consumer").await;
    assert_eq!(events.len(), 2);
    assert!(events[0].0 < events[1].0);
    assert_eq!(events[0].1["new"]["state"], json!("a"));
    assert_eq!(events[1].1["new"]["state"], json!("b"));
}

#[tokio::test]
async fn a_rolled_back_transaction_does_not_hold_readers_back() {
    let db = durable_orders("durable_rollback_gap").await;
    let writer = connect(&db.url).await;
    writer
        .batch_execute("BEGIN; UPDATE orders SET state = 'x' WHERE id = 1;")
        .await
        .unwrap();
    db.run("UPDATE orders SET state = 'y' WHERE id = 2").await;
    assert!(read(&db.client, "c").await.is_empty());
    writer.batch_execute("ROLLBACK").await.unwrap();
    let events = read(&db.client, "c").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].1["new"]["state"], json!("y"));
}

#[tokio::test]
async fn each_named_consumer_gets_every_event_from_its_own_position() {
    let db = durable_orders("durable_consumers").await;
    db.run("UPDATE orders SET state = 'paid' WHERE id <= 3")
        .await;
    let mailer = read(&db.client, "mailer").await;
    let planner = read(&db.client, "planner").await;
    assert_eq!(ids(&mailer), ids(&planner));
    assert_eq!(mailer.len(), 3);

    ack(&db.client, "mailer", mailer[1].0).await;
    assert_eq!(ids(&read(&db.client, "mailer").await), [mailer[2].0]);
    assert_eq!(
        ids(&read(&db.client, "planner").await),
        ids(&planner),
        "unacknowledged: again"
    );

    // Positions only move forward.
    ack(&db.client, "mailer", 0).await;
    assert_eq!(ids(&read(&db.client, "mailer").await), [mailer[2].0]);
}

#[tokio::test]
async fn retention_removes_only_what_every_consumer_acknowledged_or_what_is_too_old() {
    let db = durable_orders("durable_retention").await;
    db.run("UPDATE orders SET state = 'paid' WHERE id <= 4")
        .await;
    let events = read(&db.client, "fast").await;
    read(&db.client, "slow").await;
    ack(&db.client, "fast", events[3].0).await;
    ack(&db.client, "slow", events[1].0).await;

    let removed =
        integration_tests::query_i64(&db.client, "SELECT column_notify.prune_events()").await;
    assert_eq!(removed, 2, "only what the slowest consumer acknowledged");
    assert_eq!(
        ids(&read(&db.client, "slow").await),
        [events[2].0, events[3].0]
    );
    assert!(read(&db.client, "fast").await.is_empty());

    let kept = integration_tests::query_i64(
        &db.client,
        "SELECT column_notify.prune_events(older_than => interval '1 hour')",
    )
    .await;
    assert_eq!(kept, 0, "recent unacknowledged events stay");
    db.run("UPDATE column_notify.events SET created_at = now() - interval '2 days'")
        .await;
    let aged = integration_tests::query_i64(
        &db.client,
        "SELECT column_notify.prune_events(older_than => interval '1 day')",
    )
    .await;
    assert_eq!(aged, 2);
    let backlog = integration_tests::query_i64(
        &db.client,
        "SELECT count(*) FROM column_notify.event_backlog",
    )
    .await;
    assert_eq!(backlog, 0);
}

#[tokio::test]
async fn oversize_durable_event_notifies_its_id_and_keeps_the_full_payload() {
    let db = durable_orders("durable_oversize").await;
    let mut listener = db.listen("orders").await;
    db.run("UPDATE orders SET state = 'big', body = repeat('x', 20000) WHERE id = 1")
        .await;
    let notified = listener.next().await.payload;
    assert_eq!(notified["truncated"], json!(true));
    let logged = read(&db.client, "c").await;
    assert_eq!(notified["event_id"], json!(logged[0].0));
    assert_eq!(
        logged[0].1["new"]["body"].as_str().map(str::len),
        Some(20000)
    );
}

#[tokio::test]
async fn without_metadata_events_still_carry_their_id() {
    let db = durable_orders("durable_without_metadata").await;
    db.run("SELECT watch_column('orders', 'state', 'orders', durable => true, metadata => false)")
        .await;
    let mut listener = db.listen("orders").await;
    db.run(
        "UPDATE orders SET state = 'paid' WHERE id = 1;
             UPDATE orders SET state = 'big', body = repeat('x', 20000) WHERE id = 2;",
    )
    .await;
    let logged = read(&db.client, "c").await;
    assert_eq!(logged.len(), 2);
    let notified = listener.next().await.payload;
    let mut members: Vec<&str> = notified
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    members.sort_unstable();
    assert_eq!(members, ["event_id", "id", "new", "old"]);
    assert_eq!(notified, logged[0].1);
    assert_eq!(
        listener.next().await.payload,
        json!({"event_id": logged[1].0, "id": 2, "truncated": true})
    );
    assert_eq!(logged[1].1["new"]["state"], json!("big"));
}

#[tokio::test]
async fn read_events_refuses_a_snapshot_that_could_skip_events() {
    let db = durable_orders("durable_isolation").await;
    let error = db
        .client
        .batch_execute(
            "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT * FROM column_notify.read_events('c', 'orders');",
        )
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&error), "25000");
}

#[tokio::test]
async fn safety_rails_of_the_durable_api() {
    let db = durable_orders("durable_rails").await;
    db.run("UPDATE orders SET state = 'paid' WHERE id <= 2")
        .await;
    // Acknowledging past the last event id would skip events not yet written.
    let error = db
        .error_of("SELECT column_notify.ack_events('billing', 'orders', 5)")
        .await;
    assert_eq!(sqlstate(&error), "22023");
    assert_eq!(
        error.as_db_error().unwrap().message(),
        "cannot acknowledge event 5 of channel \"orders\": no event has that id yet"
    );
    let events = read(&db.client, "billing").await;
    assert_eq!(events.len(), 2);
    let last = events[1].0;

    // A channel no durable watch feeds is an error, not a consumer waiting forever.
    let error = db
        .error_of("SELECT * FROM column_notify.read_events('billing', 'ordres')")
        .await;
    assert_eq!(sqlstate(&error), "42704");
    let consumers = integration_tests::query_i64(
        &db.client,
        "SELECT count(*) FROM column_notify.consumers WHERE channel = 'ordres'",
    )
    .await;
    assert_eq!(consumers, 0, "no consumer registered for it");

    // A consumer gone for good is forgotten, and no longer holds the log.
    ack(&db.client, "billing", last).await;
    assert_eq!(read(&db.client, "audit").await.len(), 2);
    let dropped: bool = db
        .client
        .query_one("SELECT column_notify.drop_consumer('audit', 'orders')", &[])
        .await
        .unwrap()
        .get(0);
    assert!(dropped);
    let again: bool = db
        .client
        .query_one("SELECT column_notify.drop_consumer('audit', 'orders')", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!again);
    let pruned =
        integration_tests::query_i64(&db.client, "SELECT column_notify.prune_events()").await;
    assert_eq!(
        pruned, 2,
        "billing acknowledged both; audit no longer holds them"
    );
}
