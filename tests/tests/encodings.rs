//! Databases in every kind of server encoding: names, channels and payloads work, writes
//! never fail, and `id`/`old`/`new` are byte for byte what `row_to_json` gives there.

use integration_tests::{query_i64, sqlstate, Listener, TestDatabase};
use tokio_postgres::Client;

/// A fresh database `pgcn_enc_<name>` in `encoding` (C locale, which every encoding takes),
/// with the extension.
async fn database(name: &str, encoding: &str) -> (String, Client) {
    let options = format!("ENCODING '{encoding}' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0");
    let db = TestDatabase::create_with(&format!("enc_{name}"), &options).await;
    (db.url, db.client)
}

async fn run(client: &Client, sql: &str) {
    if let Err(error) = client.batch_execute(sql).await {
        panic!("{sql}\nfailed: {error:?}");
    }
}

/// The same checks in a database whose encoding can hold `column`, `channel`, `value`.
async fn names_and_payloads_work(
    name: &str,
    encoding: &str,
    column: &str,
    channel: &str,
    value: &str,
) {
    let (url, client) = database(name, encoding).await;
    run(
        &client,
        &format!(
            r#"CREATE TABLE people (id int PRIMARY KEY, "{column}" text, v text, "secret_{column}" text);
               INSERT INTO people VALUES (1, '{value}', 'a', 's');
               SELECT watch_column('people', 'v', '{channel}', durable => true,
                                   exclude => ARRAY['secret_{column}']::name[]);
               CREATE TRIGGER by_hand AFTER UPDATE ON people FOR EACH ROW
                   EXECUTE FUNCTION notify_column_changed('{channel}_hand', '{column}');"#
        ),
    )
    .await;
    let mut watched = Listener::start(&url, channel).await;
    let mut by_hand = Listener::start(&url, &format!("{channel}_hand")).await;
    run(
        &client,
        &format!(r#"UPDATE people SET v = 'b{value}', "{column}" = '{value}2'"#),
    )
    .await;

    let received = watched.next().await;
    assert_eq!(received.channel, channel);
    let new_row: String = client
        .query_one(
            &format!(
                r#"SELECT row_to_json(r)::text FROM (SELECT id, "{column}", v FROM people) r"#
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        received.raw.contains(&format!(r#""new":{new_row}"#)),
        "{} does not hold {new_row}",
        received.raw
    );
    assert_eq!(received.payload["changed"], serde_json::json!(["v"]));
    assert_eq!(by_hand.next().await.channel, format!("{channel}_hand"));

    // The log holds exactly row_to_json's bytes, compared in the database itself.
    assert_eq!(
        query_i64(
            &client,
            &format!(
                r#"SELECT count(*) FROM column_notify.events e
                   WHERE e.channel = '{channel}'
                     AND (e.payload->'new')::text =
                         (SELECT row_to_json(r)::text FROM (SELECT id, "{column}", v FROM people) r)"#
            )
        )
        .await,
        1
    );

    // The catalog keeps the names; renames follow them.
    run(
        &client,
        &format!(r#"ALTER TABLE people RENAME COLUMN "secret_{column}" TO "hidden_{column}""#),
    )
    .await;
    let excluded: String = client
        .query_one("SELECT exclude_columns::text FROM column_watches", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(excluded, format!("{{hidden_{column}}}"));
    run(&client, "UPDATE people SET v = 'c'").await;
    let received = watched.next().await;
    assert!(received.payload["new"]
        .get(format!("hidden_{column}"))
        .is_none());

    // Errors name what is wrong, as PostgreSQL's own do, with no backtrace.
    let refused = client
        .query(&format!("SELECT watch_column('people', '{column}x')"), &[])
        .await
        .expect_err("an unknown column");
    assert_eq!(sqlstate(&refused), "42703");
    assert_eq!(refused.as_db_error().unwrap().detail(), None);
}

#[tokio::test]
async fn utf8_databases_take_any_name() {
    names_and_payloads_work(
        "utf8",
        "UTF8",
        "prénom_名前",
        "canal_é_チャンネル",
        "Zoë 名",
    )
    .await;
}

#[tokio::test]
async fn latin1_databases_take_their_names() {
    names_and_payloads_work("latin1", "LATIN1", "prénom", "canal_é", "Zoë").await;
}

#[tokio::test]
async fn euc_jp_databases_take_their_names() {
    names_and_payloads_work("euc_jp", "EUC_JP", "名前", "チャンネル", "山田").await;
}

/// SQL_ASCII stores bytes that need not be UTF-8, which no UTF-8 client can read back:
/// everything is checked inside the database.
#[tokio::test]
async fn sql_ascii_databases_with_bytes_that_are_not_utf8_never_fail_a_write() {
    let (_url, client) = database("sql_ascii", "SQL_ASCII").await;
    run(
        &client,
        r#"DO $$
           BEGIN
               EXECUTE format('CREATE TABLE people (id int PRIMARY KEY, %I text, v text)', E'pr\xe9nom');
               EXECUTE format('INSERT INTO people VALUES (1, %L, %L)', E'Zo\xeb', 'a');
               EXECUTE format('CREATE TABLE vault (id int PRIMARY KEY, v text, %I text)', E'secret_\xe9');
           END $$;
           SELECT 1 FROM watch_column('people', 'v', E'canal_\xe9', durable => true);
           SELECT 1 FROM watch_column('vault', 'v', 'vault', exclude => ARRAY[E'secret_\xe9']::name[]);
           CREATE FUNCTION hand_made() RETURNS void LANGUAGE plpgsql AS $$
           BEGIN
               EXECUTE format('CREATE TRIGGER by_hand AFTER UPDATE ON people FOR EACH ROW
                               EXECUTE FUNCTION notify_column_changed(%L, %L, %L, %L)',
                              E'hand_\xe9', E'pr\xe9nom', '', 'durable=true');
           END $$;
           SELECT hand_made();
           UPDATE people SET v = E'b\xe9';"#,
    )
    .await;
    // The event is row_to_json's bytes, on the channel's bytes.
    assert_eq!(
        query_i64(
            &client,
            r#"SELECT count(*) FROM column_notify.events e
               WHERE e.channel = E'canal_\xe9'
                 AND (e.payload->'new')::text = (SELECT row_to_json(p)::text FROM people p)"#
        )
        .await,
        1
    );
    assert_eq!(
        query_i64(
            &client,
            r#"SELECT count(*) FROM column_watches
               WHERE channel = E'canal_\xe9' OR exclude_columns = ARRAY[E'secret_\xe9']::name[]"#
        )
        .await,
        2
    );
    // A write of the column a hand-made trigger names goes through.
    run(
        &client,
        r#"DO $$ BEGIN EXECUTE format('UPDATE people SET %I = %L', E'pr\xe9nom', E'Zo\xeb2'); END $$;"#,
    )
    .await;
}
