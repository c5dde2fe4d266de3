//! `pg_dump` of a database with watches, restored with `psql` into an empty database: the
//! restored database lists the same watches, has the same triggers, and every watch sends
//! the same payloads as before (options, quoted names and partitions included).

use std::io::Write;
use std::process::{Command, Stdio};

use integration_tests::{connect, query_texts, server_url, url_for_database, TestDatabase};
use serde_json::{json, Value};
use tokio_postgres::Client;

const TARGET_DATABASE: &str = "pgcn_dump_target";

/// Five watches: a plain one; one with every event, an excluded column and names that need
/// quoting; one over two columns with an explicit key on a table without a primary key; one
/// on a partitioned table; one with a row filter that calls a function of another schema.
const SOURCE_SCHEMA: &str = r#"
    CREATE TABLE items (id int PRIMARY KEY, status text, note text);
    INSERT INTO items VALUES (1, 'open', 'a'), (2, 'open', 'b');
    SELECT watch_column('items', 'status');

    CREATE SCHEMA "Sales Dept";
    CREATE TABLE "Sales Dept"."Order Lines" (
        "order" int, line int, "état" text, secret text, qty int, PRIMARY KEY ("order", line));
    INSERT INTO "Sales Dept"."Order Lines" VALUES (7, 1, 'new', 'first secret', 1);
    SELECT watch_column('"Sales Dept"."Order Lines"', 'état', 'order lines',
                        events => '{insert,update,delete}', exclude => '{secret}');

    CREATE TABLE devices (serial text NOT NULL UNIQUE, firmware text, seen int);
    INSERT INTO devices VALUES ('A-1', '1.0', 0);
    SELECT watch_columns('devices', '{firmware,seen}', 'device_changes', key => '{serial}');

    CREATE TABLE shipments (region text, id int, state text, PRIMARY KEY (region, id))
        PARTITION BY LIST (region);
    CREATE TABLE shipments_eu PARTITION OF shipments FOR VALUES IN ('eu');
    CREATE TABLE shipments_rest PARTITION OF shipments DEFAULT;
    INSERT INTO shipments VALUES ('eu', 1, 'packed'), ('us', 2, 'packed');
    SELECT watch_column('shipments', 'state');

    CREATE SCHEMA rules;
    CREATE FUNCTION rules.is_large(int) RETURNS boolean LANGUAGE sql IMMUTABLE RETURN $1 > 100;
    CREATE TABLE parcels (id int PRIMARY KEY, state text, weight int);
    INSERT INTO parcels VALUES (1, 'packed', 5), (2, 'packed', 500);
    SELECT watch_column('parcels', 'state', 'large_parcels',
                        filter => 'rules.is_large(new.weight) AND old.state = ''packed''');
"#;

/// The rows of a one-column text query, sorted.
async fn text_rows(client: &Client, query: &str) -> Vec<String> {
    let mut rows = query_texts(client, query).await;
    rows.sort();
    rows
}

const WATCHES: &str = "SELECT w::text FROM column_watches w";
const TRIGGERS: &str = "SELECT format('%s %s', tgrelid::regclass, pg_get_triggerdef(oid))
                        FROM pg_trigger WHERE NOT tgisinternal";
const EXTENSION_VERSION: &str =
    "SELECT extversion::text FROM pg_extension WHERE extname = 'pg_column_notify'";

/// Runs a client program, feeding it `input`; panics unless it succeeds without a word on
/// stderr. Returns its stdout.
fn run(program: &str, arguments: &[&str], input: Vec<u8>) -> Vec<u8> {
    let mut child = Command::new(program)
        .args(arguments)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run {program}: {error}"));
    let mut stdin = child.stdin.take().expect("the program's stdin");
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().expect("waiting for the program");
    writer
        .join()
        .expect("the thread that writes the input")
        .unwrap_or_else(|error| panic!("writing to {program}: {error}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.is_empty(),
        "{program} {arguments:?}: {}\n{stderr}",
        output.status
    );
    output.stdout
}

/// Listens on `channel` of `db`, runs `statements`, and checks that exactly `expected`
/// arrives, in that order.
async fn assert_notifies(db: &TestDatabase, channel: &str, statements: &str, expected: &[Value]) {
    let mut listener = db.listen(channel).await;
    db.client
        .batch_execute(statements)
        .await
        .unwrap_or_else(|error| panic!("{statements}: {error}"));
    for want in expected {
        assert_eq!(&listener.next().await.payload, want, "on channel {channel}");
    }
    listener.assert_silent().await;
}

async fn drop_database(admin: &Client, database: &str) {
    let drop = format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)");
    if let Err(error) = admin.batch_execute(&drop).await {
        eprintln!("could not drop {database}: {error}");
    }
}

#[tokio::test]
async fn restored_database_lists_and_runs_the_same_watches() {
    let source = TestDatabase::create("dump_source").await;
    source.client.batch_execute(SOURCE_SCHEMA).await.unwrap();

    let dump = run("pg_dump", &["--no-owner", &source.url], Vec::new());
    let admin = connect(&server_url()).await;
    drop_database(&admin, TARGET_DATABASE).await;
    admin
        .batch_execute(&format!("CREATE DATABASE {TARGET_DATABASE}"))
        .await
        .unwrap();
    let target_url = url_for_database(&server_url(), TARGET_DATABASE);
    run(
        "psql",
        &["-v", "ON_ERROR_STOP=1", "-X", "-q", &target_url],
        dump,
    );
    let target = TestDatabase {
        client: connect(&target_url).await,
        url: target_url,
    };

    for query in [WATCHES, TRIGGERS, EXTENSION_VERSION] {
        let before = text_rows(&source.client, query).await;
        assert_eq!(text_rows(&target.client, query).await, before, "{query}");
    }
    assert_eq!(text_rows(&target.client, WATCHES).await.len(), 5);

    assert_notifies(
        &target,
        "items_status_changed",
        "UPDATE items SET note = 'other' WHERE id = 2;
         UPDATE items SET status = 'closed' WHERE id = 1;",
        &[json!({
            "op": "UPDATE", "schema": "public", "table": "items", "changed": ["status"], "id": 1,
            "old": {"id": 1, "status": "open", "note": "a"},
            "new": {"id": 1, "status": "closed", "note": "a"},
        })],
    )
    .await;

    let line = |line: i32, state: &str, qty: i32| json!({"order": 7, "line": line, "état": state, "qty": qty});
    let order_line = |op: &str, line_no: i32, old: Value, new: Value| {
        json!({
            "op": op, "schema": "Sales Dept", "table": "Order Lines", "changed": ["état"],
            "id": {"order": 7, "line": line_no}, "old": old, "new": new,
        })
    };
    assert_notifies(
        &target,
        "order lines",
        r#"INSERT INTO "Sales Dept"."Order Lines" VALUES (7, 2, 'new', 'second secret', 3);
           UPDATE "Sales Dept"."Order Lines" SET "état" = 'shipped', secret = 'x' WHERE line = 1;
           UPDATE "Sales Dept"."Order Lines" SET secret = 'y', qty = 4 WHERE line = 2;
           DELETE FROM "Sales Dept"."Order Lines" WHERE line = 2;"#,
        &[
            order_line("INSERT", 2, Value::Null, line(2, "new", 3)),
            order_line("UPDATE", 1, line(1, "new", 1), line(1, "shipped", 1)),
            order_line("DELETE", 2, line(2, "new", 4), Value::Null),
        ],
    )
    .await;

    assert_notifies(
        &target,
        "device_changes",
        "UPDATE devices SET seen = 1;",
        &[json!({
            "op": "UPDATE", "schema": "public", "table": "devices", "changed": ["seen"],
            "id": "A-1",
            "old": {"serial": "A-1", "firmware": "1.0", "seen": 0},
            "new": {"serial": "A-1", "firmware": "1.0", "seen": 1},
        })],
    )
    .await;

    assert_notifies(
        &target,
        "shipments_state_changed",
        "UPDATE shipments SET state = 'sent' WHERE id = 2;",
        &[json!({
            "op": "UPDATE", "schema": "public", "table": "shipments",
            "partition": "shipments_rest", "changed": ["state"],
            "id": {"region": "us", "id": 2},
            "old": {"region": "us", "id": 2, "state": "packed"},
            "new": {"region": "us", "id": 2, "state": "sent"},
        })],
    )
    .await;

    assert_notifies(
        &target,
        "large_parcels",
        "UPDATE parcels SET state = 'sent';",
        &[json!({
            "op": "UPDATE", "schema": "public", "table": "parcels", "changed": ["state"],
            "id": 2,
            "old": {"id": 2, "state": "packed", "weight": 500},
            "new": {"id": 2, "state": "sent", "weight": 500},
        })],
    )
    .await;
    // The restored trigger depends on what its filter uses, as the original did.
    for statement in [
        "ALTER TABLE parcels DROP COLUMN weight",
        "DROP FUNCTION rules.is_large(int)",
    ] {
        let error = target.error_of(statement).await;
        assert_eq!(integration_tests::sqlstate(&error), "2BP01", "{statement}");
    }

    // The restored catalog rows name the restored tables: unwatching finds them.
    let removed: bool = target
        .client
        .query_one(
            r#"SELECT unwatch_column('"Sales Dept"."Order Lines"', 'état')"#,
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(removed);
    assert_eq!(text_rows(&target.client, WATCHES).await.len(), 4);

    drop_database(&admin, TARGET_DATABASE).await;
    drop_database(&admin, "pgcn_dump_source").await;
}
