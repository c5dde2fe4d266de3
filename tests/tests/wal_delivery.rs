//! `watch_column(..., delivery => 'wal')` on a `wal_level = logical` server: each change is
//! a transactional logical message with prefix `pg_column_notify:<channel>` and the payload a
//! NOTIFY watch sends, none for rolled-back work, and no notification; refusals that leave
//! nothing behind; the channel belongs to one role; a hand-made trigger asking for WAL
//! delivery notifies instead. Messages are read with contrib's `test_decoding`.

use integration_tests::{connect_collecting_notices, query_i64, sqlstate, TestDatabase};
use serde_json::{json, Value};

/// A `test_decoding` slot of the test's database (made by `new`, dropped by `drop`).
struct Slot<'a> {
    db: &'a TestDatabase,
    name: String,
}

impl<'a> Slot<'a> {
    async fn new(db: &'a TestDatabase, name: &str) -> Slot<'a> {
        db.run(&format!(
            "SELECT pg_create_logical_replication_slot('{name}', 'test_decoding')"
        ))
        .await;
        Slot {
            db,
            name: name.to_owned(),
        }
    }

    /// The messages decoded since the last call: (prefix, content).
    async fn messages(&self) -> Vec<(String, Value)> {
        let rows = self
            .db
            .client
            .query(
                "SELECT data FROM pg_logical_slot_get_changes($1, NULL, NULL)
                 WHERE data LIKE 'message:%'",
                &[&self.name],
            )
            .await
            .unwrap();
        rows.iter()
            .map(|row| {
                let data: String = row.get(0);
                let rest = data
                    .strip_prefix("message: transactional: 1 prefix: ")
                    .unwrap_or_else(|| panic!("a transactional message: {data}"));
                let (prefix, rest) = rest.split_once(", sz: ").unwrap();
                let content = &rest[rest.find("content:").unwrap() + "content:".len()..];
                (prefix.to_owned(), serde_json::from_str(content).unwrap())
            })
            .collect()
    }

    async fn drop(self) {
        self.db
            .run(&format!("SELECT pg_drop_replication_slot('{}')", self.name))
            .await;
    }
}

/// A database whose writes are flushed at commit, so that a slot decodes them at once.
async fn database(name: &str, schema: &str) -> TestDatabase {
    let db = TestDatabase::with_schema(name, schema).await;
    db.run("SET synchronous_commit = on").await;
    db
}

#[tokio::test]
async fn changes_are_wal_messages_with_the_notify_payload_and_nothing_rolled_back() {
    let db = database(
        "wal_messages",
        "CREATE TABLE a (id int PRIMARY KEY, state text, note text);
         CREATE TABLE parts (id int, region text, state text, PRIMARY KEY (id, region))
             PARTITION BY LIST (region);
         CREATE TABLE parts_eu PARTITION OF parts FOR VALUES IN ('eu');
         SELECT watch_column('a', 'state', 'a_wal', events => '{insert,update,delete}',
                             delivery => 'wal');
         SELECT watch_column('parts', 'state', 'parts_wal', delivery => 'wal');
         INSERT INTO parts VALUES (1, 'eu', 'new');",
    )
    .await;
    let mut listener = db.listen("a_wal").await;
    let slot = Slot::new(&db, "wal_messages").await;
    // One transaction each (a BEGIN would take the statements before it into its block).
    for statement in [
        "INSERT INTO a VALUES (1, 'new', 'x')",
        "UPDATE a SET note = 'y'",
        "BEGIN; UPDATE a SET state = 'gone'; ROLLBACK",
        "BEGIN; UPDATE a SET state = 'kept';
                SAVEPOINT s; UPDATE a SET state = 'undone'; ROLLBACK TO SAVEPOINT s;
         COMMIT",
        "DELETE FROM a",
        "UPDATE parts SET state = 'done'",
    ] {
        db.run(statement).await;
    }
    let messages = slot.messages().await;
    let prefixes: Vec<&str> = messages.iter().map(|(prefix, _)| prefix.as_str()).collect();
    assert_eq!(
        prefixes,
        [
            "pg_column_notify:a_wal",
            "pg_column_notify:a_wal",
            "pg_column_notify:a_wal",
            "pg_column_notify:parts_wal",
        ]
    );
    assert_eq!(
        messages[0].1,
        json!({"op": "INSERT", "schema": "public", "table": "a", "id": 1,
               "changed": ["state"], "old": null,
               "new": {"id": 1, "state": "new", "note": "x"}})
    );
    assert_eq!(messages[1].1["old"]["state"], "new");
    assert_eq!(messages[1].1["new"]["state"], "kept");
    assert_eq!(messages[2].1["op"], "DELETE");
    assert_eq!(messages[3].1["partition"], "parts_eu");
    assert_eq!(messages[3].1["new"]["state"], "done");
    listener.assert_silent().await;

    let delivery: Vec<String> = integration_tests::query_texts(
        &db.client,
        "SELECT channel || ' ' || delivery FROM column_watches ORDER BY channel",
    )
    .await;
    assert_eq!(delivery, ["a_wal wal", "parts_wal wal"]);
    slot.drop().await;
}

#[tokio::test]
async fn refused_deliveries_leave_nothing_behind() {
    let db = database(
        "wal_refusals",
        "CREATE TABLE r (id int PRIMARY KEY, state text)",
    )
    .await;
    let cases = [
        (
            "delivery => 'pigeon'",
            "22023",
            "Delivery is 'notify' (the default) or 'wal'.",
        ),
        ("delivery => NULL", "22004", ""),
        (
            "delivery => 'wal', durable => true",
            "22023",
            "leave durable out",
        ),
        (
            "delivery => 'wal', batch => true",
            "22023",
            "leave batch out",
        ),
        ("delivery => 'WAL'", "22023", "Delivery is"),
    ];
    for (options, code, hint) in cases {
        let error = db
            .error_of(&format!("SELECT watch_column('r', 'state', {options})"))
            .await;
        assert_eq!(sqlstate(&error), code, "{options}");
        let db_error = error.as_db_error().unwrap();
        assert!(
            db_error.hint().unwrap_or("").contains(hint),
            "{options}: {:?}",
            db_error.hint()
        );
        let left = query_i64(
            &db.client,
            "SELECT (SELECT count(*) FROM pg_trigger WHERE tgrelid = 'r'::regclass AND NOT tgisinternal)
                  + (SELECT count(*) FROM column_notify.watches)",
        )
        .await;
        assert_eq!(left, 0, "{options} left something behind");
    }
}

#[tokio::test]
async fn a_wal_channel_belongs_to_the_owner_of_its_tables() {
    let db = database(
        "wal_owner",
        "DROP ROLE IF EXISTS wal_owner_a; DROP ROLE IF EXISTS wal_owner_b;
         CREATE ROLE wal_owner_a; CREATE ROLE wal_owner_b;
         CREATE TABLE mine (id int PRIMARY KEY, v int); ALTER TABLE mine OWNER TO wal_owner_a;
         CREATE TABLE theirs (id int PRIMARY KEY, v int); ALTER TABLE theirs OWNER TO wal_owner_b;
         GRANT CREATE ON SCHEMA public TO wal_owner_a, wal_owner_b;",
    )
    .await;
    db.run("SET ROLE wal_owner_a; SELECT watch_column('mine', 'v', 'orders', delivery => 'wal'); RESET ROLE")
        .await;
    let error = db
        .error_of(
            "SET ROLE wal_owner_b; SELECT watch_column('theirs', 'v', 'orders', delivery => 'wal')",
        )
        .await;
    db.run("RESET ROLE").await;
    assert_eq!(sqlstate(&error), "42501");
    // Another role's durable watch cannot take it either; once the WAL watch goes, it can.
    let error = db
        .error_of(
            "SET ROLE wal_owner_b; SELECT watch_column('theirs', 'v', 'orders', durable => true)",
        )
        .await;
    db.run("RESET ROLE").await;
    assert_eq!(sqlstate(&error), "42501");
    db.run("SELECT unwatch_column('mine', 'v')").await;
    db.run("SET ROLE wal_owner_b; SELECT watch_column('theirs', 'v', 'orders', delivery => 'wal'); RESET ROLE")
        .await;
}

#[tokio::test]
async fn a_hand_made_wal_trigger_notifies_instead_with_a_warning() {
    let db = database(
        "wal_hand_made",
        "CREATE TABLE h (id int PRIMARY KEY, v int);
         INSERT INTO h VALUES (1, 0);
         CREATE TRIGGER forged AFTER UPDATE ON h FOR EACH ROW
             EXECUTE FUNCTION notify_column_changed('orders', 'v', '', 'delivery=\"wal\"');",
    )
    .await;
    let mut listener = db.listen("orders").await;
    let slot = Slot::new(&db, "wal_hand_made").await;
    let (writer, mut notices) = connect_collecting_notices(&db.url).await;
    writer
        .batch_execute("SET synchronous_commit = on; UPDATE h SET v = 1")
        .await
        .unwrap();
    let warning = notices.recv().await.unwrap();
    assert!(warning.contains("is not a WAL watch"), "{warning}");
    assert_eq!(listener.next().await.payload["new"]["v"], 1);
    assert!(slot.messages().await.is_empty());
    slot.drop().await;
}
