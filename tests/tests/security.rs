//! Attacks by a hostile role, each reproduced against a real server: none may escalate,
//! read, forge, stall or destroy through the extension.

use integration_tests::{connect, query_i64, sqlstate, TestDatabase};

/// Roles of one test: created anew (roles are cluster-wide, so named after the test).
struct Roles {
    prefix: String,
}

impl Roles {
    async fn create(db: &TestDatabase, test: &str, names: &[&str]) -> Roles {
        let prefix = format!("pgcn_{test}");
        for name in names {
            let role = format!("{prefix}_{name}");
            db.run(&format!("DROP ROLE IF EXISTS {role}; CREATE ROLE {role}"))
                .await;
        }
        // Every role of the test may create tables in public, as before PostgreSQL 15.
        db.run("GRANT CREATE ON SCHEMA public TO PUBLIC").await;
        Roles { prefix }
    }

    fn name(&self, role: &str) -> String {
        format!("{}_{role}", self.prefix)
    }
}

/// A second session of the test's database acting as `role` (SET ROLE, so it works with any
/// server the tests are pointed at).
async fn session_as(db: &TestDatabase, role: &str) -> tokio_postgres::Client {
    let client = connect(&db.url).await;
    client
        .batch_execute(&format!("SET ROLE {role}"))
        .await
        .expect("SET ROLE");
    client
}

/// Plants, as `attacker`, operators and functions in public that record who ran them, for
/// every type pair and function name the extension compares or calls. A call that reaches
/// one of them as another role leaves a row in public.pwned.
async fn plant_hostile_objects(db: &TestDatabase, attacker: &str) {
    db.run("CREATE TABLE public.pwned (victim name); GRANT INSERT ON public.pwned TO PUBLIC")
        .await;
    let session = session_as(db, attacker).await;
    session
        .batch_execute(
            r#"
DO $plant$
DECLARE
    pair text[];
    n integer := 0;
BEGIN
    FOREACH pair SLICE 1 IN ARRAY ARRAY[
        ['oid','oid'], ['regclass','oid'], ['oid','regclass'], ['oid','integer'],
        ['integer','oid'], ['name','name'], ['name','text'], ['text','name'], ['text','text'],
        ['bigint','bigint'], ['bigint','integer'], ['smallint','integer'], ['regclass','regclass'],
        ['name[]','name[]'], ['text[]','text[]']]
    LOOP
        n := n + 1;
        EXECUTE format($f$
            CREATE FUNCTION public.pwn_%s(%s, %s) RETURNS boolean LANGUAGE sql VOLATILE AS $b$
                INSERT INTO public.pwned SELECT current_user;
                SELECT $1::text OPERATOR(pg_catalog.=) $2::text;
            $b$$f$, n, pair[1], pair[2]);
        EXECUTE format('CREATE OPERATOR public.= (LEFTARG = %s, RIGHTARG = %s, FUNCTION = public.pwn_%s)',
                       pair[1], pair[2], n);
        EXECUTE format('CREATE OPERATOR public.< (LEFTARG = %s, RIGHTARG = %s, FUNCTION = public.pwn_%s)',
                       pair[1], pair[2], n);
        EXECUTE format('CREATE OPERATOR public.> (LEFTARG = %s, RIGHTARG = %s, FUNCTION = public.pwn_%s)',
                       pair[1], pair[2], n);
    END LOOP;
END
$plant$;
CREATE FUNCTION public.pg_partition_root(regclass) RETURNS regclass LANGUAGE sql AS
    $b$ INSERT INTO public.pwned SELECT current_user; SELECT $1 $b$;
CREATE FUNCTION public.has_table_privilege(oid, text) RETURNS boolean LANGUAGE sql AS
    $b$ INSERT INTO public.pwned SELECT current_user; SELECT true $b$;
CREATE FUNCTION public.pg_has_role(oid, text) RETURNS boolean LANGUAGE sql AS
    $b$ INSERT INTO public.pwned SELECT current_user; SELECT true $b$;
CREATE FUNCTION public.current_setting(text) RETURNS text LANGUAGE sql AS
    $b$ INSERT INTO public.pwned SELECT current_user; SELECT 'read committed'::text $b$;
CREATE FUNCTION public.cardinality(name[]) RETURNS integer LANGUAGE sql AS
    $b$ INSERT INTO public.pwned SELECT current_user; SELECT 1 $b$;
CREATE FUNCTION public.now() RETURNS timestamptz LANGUAGE sql AS
    $b$ INSERT INTO public.pwned SELECT current_user; SELECT pg_catalog.now() $b$;
CREATE FUNCTION public.pg_get_userbyid(oid) RETURNS name LANGUAGE sql AS
    $b$ INSERT INTO public.pwned SELECT current_user; SELECT 'x'::name $b$;
"#,
        )
        .await
        .expect("planting the hostile objects");
}

/// Every path of the extension, run by `victim` with public first on its search_path.
async fn run_every_path(db: &TestDatabase, victim: Option<&str>, table: &str) {
    let session = match victim {
        Some(role) => session_as(db, role).await,
        None => connect(&db.url).await,
    };
    let steps = [
        format!("CREATE TABLE {table} (id int PRIMARY KEY, v int, w int) PARTITION BY RANGE (id)"),
        format!("CREATE TABLE {table}_p PARTITION OF {table} FOR VALUES FROM (0) TO (100)"),
        "SET search_path = public, pg_catalog".to_owned(),
        format!("SELECT watch_column('{table}', 'v', durable => true)"),
        format!("SELECT watch_columns('{table}', '{{v,w}}', exclude => '{{w}}')"),
        format!("SELECT watch_column('{table}_p', 'w', batch => true)"),
        format!("INSERT INTO {table} VALUES (1, 1, 1)"),
        format!("UPDATE {table} SET v = v + 1, w = w + 1"),
        "SELECT count(*) FROM column_watches".to_owned(),
        format!("SELECT * FROM column_notify.read_events('audit', '{table}_v_changed')"),
        format!("SELECT column_notify.ack_events('audit', '{table}_v_changed', 1)"),
        "SELECT * FROM column_notify.event_backlog".to_owned(),
        format!("ALTER TABLE {table} RENAME COLUMN w TO w2"),
        format!("ALTER TABLE {table} DROP COLUMN w2"),
        format!("UPDATE {table} SET v = v + 1"),
        format!("SELECT unwatch_column('{table}', 'v')"),
        format!("DROP TABLE {table}"),
    ];
    for step in steps {
        if let Err(error) = session.batch_execute(&step).await {
            panic!("{step}: {error:?}");
        }
    }
    if victim.is_none() {
        session
            .batch_execute("SELECT column_notify.prune_events()")
            .await
            .expect("prune_events");
    }
}

#[tokio::test]
async fn hostile_operators_and_functions_in_public_never_run_as_another_role() {
    let db = TestDatabase::create("sec_search_path").await;
    let roles = Roles::create(&db, "sp", &["attacker", "owner"]).await;
    let (attacker, owner) = (roles.name("attacker"), roles.name("owner"));
    plant_hostile_objects(&db, &attacker).await;

    run_every_path(&db, None, "by_superuser").await;
    run_every_path(&db, Some(&owner), "by_owner").await;

    let victims: Vec<String> = db
        .client
        .query("SELECT DISTINCT victim::text FROM public.pwned", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(victims.is_empty(), "the attacker's code ran as {victims:?}");
}

/// A durable watch of alice's, with one event, read by alice's consumer.
async fn durable_setup(test: &str) -> (TestDatabase, Roles, tokio_postgres::Client) {
    let db = TestDatabase::create(test).await;
    let roles = Roles::create(&db, test, &["alice", "mallory"]).await;
    let alice = session_as(&db, &roles.name("alice")).await;
    alice
        .batch_execute(
            "CREATE TABLE orders (id int PRIMARY KEY, status text, secret text);
             SELECT watch_column('orders', 'status', 'orders', durable => true);
             INSERT INTO orders VALUES (1, 'new', 's3cret');
             UPDATE orders SET status = 'paid';",
        )
        .await
        .expect("alice's durable watch");
    (db, roles, alice)
}

async fn grant_orders_to_mallory(alice: &tokio_postgres::Client, roles: &Roles) {
    alice
        .batch_execute(&format!(
            "GRANT SELECT ON orders TO {}",
            roles.name("mallory")
        ))
        .await
        .expect("GRANT");
}

async fn read_count(client: &tokio_postgres::Client, consumer: &str, channel: &str) -> i64 {
    query_i64(
        client,
        &format!("SELECT count(*) FROM column_notify.read_events('{consumer}', '{channel}')"),
    )
    .await
}

#[tokio::test]
async fn the_durable_log_is_read_only_by_roles_that_may_select_the_table() {
    let (db, roles, alice) = durable_setup("sec_log_read").await;
    let mallory = session_as(&db, &roles.name("mallory")).await;

    assert_eq!(read_count(&alice, "billing", "orders").await, 1);
    assert_eq!(
        query_i64(&mallory, "SELECT count(*) FROM column_notify.events").await,
        0
    );
    assert_eq!(read_count(&mallory, "spy", "orders").await, 0);
    assert_eq!(
        query_i64(&mallory, "SELECT count(*) FROM column_notify.event_backlog").await,
        0
    );

    grant_orders_to_mallory(&alice, &roles).await;
    assert_eq!(read_count(&mallory, "spy", "orders").await, 1);
}

#[tokio::test]
async fn a_consumer_is_moved_only_by_its_owner() {
    let (db, roles, alice) = durable_setup("sec_consumers").await;
    let mallory = session_as(&db, &roles.name("mallory")).await;
    assert_eq!(read_count(&alice, "billing", "orders").await, 1);

    let refused = mallory
        .query(
            "SELECT column_notify.ack_events('billing', 'orders', 9223372036854775807)",
            &[],
        )
        .await
        .expect_err("acknowledging another role's consumer");
    assert_eq!(sqlstate(&refused), "42501");
    let refused = mallory
        .query(
            "SELECT * FROM column_notify.read_events('billing', 'orders')",
            &[],
        )
        .await
        .expect_err("reading as another role's consumer");
    assert_eq!(sqlstate(&refused), "42501");
    let moved = mallory
        .execute(
            "UPDATE column_notify.consumers SET position = 9223372036854775807",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(moved, 0);
    let deleted = mallory
        .execute("DELETE FROM column_notify.consumers", &[])
        .await
        .unwrap();
    assert_eq!(deleted, 0);

    // alice's consumer still has its event, and pruning keeps it.
    db.run("SELECT column_notify.prune_events()").await;
    assert_eq!(read_count(&alice, "billing", "orders").await, 1);
}

#[tokio::test]
async fn a_consumer_that_cannot_read_a_channel_does_not_pin_its_events() {
    let (db, roles, alice) = durable_setup("sec_pin").await;
    let mallory = session_as(&db, &roles.name("mallory")).await;
    assert_eq!(read_count(&mallory, "pin", "orders").await, 0);
    let last: i64 = alice
        .query_one(
            "SELECT max(event_id) FROM column_notify.read_events('billing', 'orders')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    alice
        .batch_execute(&format!(
            "SELECT column_notify.ack_events('billing', 'orders', {last})"
        ))
        .await
        .unwrap();
    assert_eq!(
        query_i64(&db.client, "SELECT column_notify.prune_events()").await,
        1
    );
}

#[tokio::test]
async fn no_role_can_stall_readers_by_holding_advisory_locks() {
    let (db, roles, alice) = durable_setup("sec_stall").await;
    let mallory = session_as(&db, &roles.name("mallory")).await;
    // The keys of the fences: every class and key a reader's fence query could match.
    mallory
        .batch_execute(
            "BEGIN;
             SELECT pg_advisory_xact_lock_shared(1885564516, k) FROM generate_series(0, 20) k;
             SELECT pg_advisory_xact_lock_shared(c, k) FROM generate_series(0, 5) c, generate_series(0, 20) k;
             SELECT pg_advisory_xact_lock_shared(k::bigint) FROM generate_series(0, 20) k;",
        )
        .await
        .unwrap();
    alice
        .batch_execute("UPDATE orders SET status = 'shipped'")
        .await
        .unwrap();
    assert_eq!(read_count(&alice, "billing", "orders").await, 2);
    mallory.batch_execute("ROLLBACK").await.unwrap();
}

#[tokio::test]
async fn events_enter_a_durable_channel_only_through_its_owners_watches() {
    let (db, roles, alice) = durable_setup("sec_forge").await;
    let mallory = session_as(&db, &roles.name("mallory")).await;

    // A watch of another role's table on the channel is refused, and leaves nothing.
    mallory
        .batch_execute("CREATE TABLE mine (id int PRIMARY KEY, status text)")
        .await
        .unwrap();
    let refused = mallory
        .query(
            "SELECT watch_column('mine', 'status', 'orders', durable => true)",
            &[],
        )
        .await
        .expect_err("a durable watch on another role's channel");
    assert_eq!(sqlstate(&refused), "42501");
    assert_eq!(
        query_i64(
            &db.client,
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'mine'::regclass"
        )
        .await,
        0
    );

    // A hand-made durable trigger, even on a temporary table, logs nothing.
    mallory
        .batch_execute(
            "CREATE TEMP TABLE forged (id int PRIMARY KEY, status text);
             CREATE TRIGGER forge AFTER INSERT ON forged FOR EACH ROW
                 EXECUTE FUNCTION notify_column_changed('orders', 'status', '', 'durable=true');
             INSERT INTO forged VALUES (1, 'refund');",
        )
        .await
        .expect("the forger's own write goes on");
    let refused = mallory
        .query(
            "INSERT INTO column_notify.events VALUES ('orders', 99, '1', now(), '{}', NULL)",
            &[],
        )
        .await
        .expect_err("writing into the log directly");
    assert_eq!(sqlstate(&refused), "42501");
    assert_eq!(read_count(&alice, "billing", "orders").await, 1);
}

#[tokio::test]
async fn column_watches_shows_only_tables_a_role_can_see() {
    let (db, roles, alice) = durable_setup("sec_watches_view").await;
    let mallory = session_as(&db, &roles.name("mallory")).await;
    assert_eq!(
        query_i64(&alice, "SELECT count(*) FROM column_watches").await,
        1
    );
    assert_eq!(
        query_i64(&mallory, "SELECT count(*) FROM column_watches").await,
        0
    );
    grant_orders_to_mallory(&alice, &roles).await;
    assert_eq!(
        query_i64(&mallory, "SELECT count(*) FROM column_watches").await,
        1
    );
}

#[tokio::test]
async fn writes_and_renames_never_depend_on_privileges_on_the_extension() {
    let (db, _roles, alice) = durable_setup("sec_revoked").await;
    db.run(
        "REVOKE ALL ON SEQUENCE column_notify.event_ids FROM PUBLIC;
         REVOKE ALL ON ALL TABLES IN SCHEMA column_notify FROM PUBLIC;
         REVOKE USAGE ON SCHEMA column_notify FROM PUBLIC;",
    )
    .await;
    alice
        .batch_execute(
            "CREATE TABLE plain (id int PRIMARY KEY, a int);
             ALTER TABLE plain RENAME COLUMN a TO b;
             UPDATE orders SET status = 'shipped';
             ALTER TABLE orders RENAME COLUMN status TO state;
             UPDATE orders SET state = 'returned';",
        )
        .await
        .expect("writes and renames of a role without privileges on the extension");
    assert_eq!(
        query_i64(
            &db.client,
            "SELECT count(*) FROM column_notify.events WHERE channel = 'orders'"
        )
        .await,
        3
    );
    assert_eq!(
        query_i64(
            &db.client,
            "SELECT count(*) FROM column_watches WHERE columns = '{state}'"
        )
        .await,
        1
    );

    // Installing a watch does take privileges on the catalog: the error PostgreSQL raises
    // inside the extension reaches the client as it is, without a Rust backtrace.
    let refused = alice
        .query("SELECT watch_column('plain', 'b')", &[])
        .await
        .expect_err("a watch without privileges on the catalog");
    let error = refused.as_db_error().expect("a server error");
    assert_eq!(error.code().code(), "42501");
    assert_eq!(
        error.message(),
        "permission denied for schema column_notify"
    );
    assert_eq!(error.detail(), None);
}
