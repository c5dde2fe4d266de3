//! Shared set-up for the integration tests (and, through listener_test_support, the
//! listener's): the server's URL, a fresh database with the extension per test, and a second
//! connection that LISTENs and collects what arrives.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Client, NoTls};

/// How long a test waits for a notification that must arrive.
pub const ARRIVAL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a test waits to be sure that nothing arrives.
pub const SILENCE: Duration = Duration::from_millis(500);

/// The server under test: `DATABASE_URL` (set by `make test` and by
/// `scripts/with-database.sh`).
pub fn server_url() -> String {
    std::env::var("DATABASE_URL").expect(
        "DATABASE_URL must name the PostgreSQL server to test against \
         (make test sets it; so does bash scripts/with-database.sh COMMAND)",
    )
}

/// Replaces the database name of a `postgres://` URL.
pub fn url_for_database(url: &str, database: &str) -> String {
    let (before_query, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let scheme_end = before_query.find("://").map_or(0, |at| at + 3);
    let base = match before_query[scheme_end..].find('/') {
        Some(slash) => &before_query[..scheme_end + slash],
        None => before_query,
    };
    format!("{base}/{database}{query}")
}

/// Opens a connection whose driver runs in the background; its notifications are dropped.
pub async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|error| panic!("cannot connect to {url}: {error}"));
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            eprintln!("a test connection ended: {error}");
        }
    });
    client
}

/// Opens a connection whose notices (NOTICE, WARNING) are collected, as their messages.
pub async fn connect_collecting_notices(url: &str) -> (Client, mpsc::UnboundedReceiver<String>) {
    let (client, mut connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|error| panic!("cannot connect to {url}: {error}"));
    let (sender, notices) = mpsc::unbounded_channel();
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    tokio::spawn(async move {
        while let Some(Ok(message)) = messages.next().await {
            if let AsyncMessage::Notice(notice) = message {
                let _ = sender.send(notice.message().to_owned());
            }
        }
    });
    (client, notices)
}

/// A database of its own for one test, with the extension created in it.
pub struct TestDatabase {
    pub url: String,
    pub client: Client,
}

impl TestDatabase {
    /// Creates (anew) the database `pgcn_<name>` and the extension in it. It is left in
    /// place afterwards, so a failed test can be looked at; the next run replaces it.
    pub async fn create(name: &str) -> TestDatabase {
        Self::create_with(name, "").await
    }

    /// [`TestDatabase::create`] with `options` for CREATE DATABASE (an encoding, say).
    pub async fn create_with(name: &str, options: &str) -> TestDatabase {
        let database = format!("pgcn_{name}");
        let admin = connect(&server_url()).await;
        // A database with replication slots cannot be dropped: those of a previous run go
        // first (their consumers, if still running, are ended).
        admin
            .execute(
                "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots
                 WHERE database = $1 AND active",
                &[&database],
            )
            .await
            .expect("ending the consumers of the previous test database");
        for _ in 0..50 {
            let active = admin
                .query_one(
                    "SELECT count(*) FROM pg_replication_slots WHERE database = $1 AND active",
                    &[&database],
                )
                .await
                .expect("counting the active slots");
            if active.get::<_, i64>(0) == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        admin
            .execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
                 WHERE database = $1",
                &[&database],
            )
            .await
            .expect("dropping the slots of the previous test database");
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
            .await
            .expect("dropping the previous test database");
        admin
            .batch_execute(&format!("CREATE DATABASE {database} {options}"))
            .await
            .expect("creating the test database");
        let url = url_for_database(&server_url(), &database);
        let client = connect(&url).await;
        client
            .batch_execute("CREATE EXTENSION pg_column_notify")
            .await
            .expect("CREATE EXTENSION pg_column_notify (is it installed? run make install)");
        TestDatabase { url, client }
    }

    /// [`TestDatabase::create`], then runs `schema` (statements separated by `;`) in it.
    pub async fn with_schema(name: &str, schema: &str) -> TestDatabase {
        let db = TestDatabase::create(name).await;
        db.client
            .batch_execute(schema)
            .await
            .unwrap_or_else(|error| panic!("schema of {name}: {error}"));
        db
    }

    /// Runs `sql` (one or more statements) on the test's connection; panics with the
    /// server's message if it fails.
    pub async fn run(&self, sql: &str) {
        if let Err(error) = self.client.batch_execute(sql).await {
            panic!("{sql}\nfailed: {error:?}");
        }
    }

    /// The error of `sql`, which must fail; panics when it succeeds.
    pub async fn error_of(&self, sql: &str) -> tokio_postgres::Error {
        match self.client.batch_execute(sql).await {
            Ok(()) => panic!("{sql}\nsucceeded, but must fail"),
            Err(error) => error,
        }
    }

    /// A second, listening connection on `channel`.
    pub async fn listen(&self, channel: &str) -> Listener {
        Listener::start(&self.url, channel).await
    }
}

/// One notification as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub channel: String,
    pub payload: serde_json::Value,
    pub raw: String,
}

/// A connection that ran `LISTEN` and queues every notification it receives.
pub struct Listener {
    _client: Client,
    received: mpsc::UnboundedReceiver<Received>,
}

impl Listener {
    pub async fn start(url: &str, channel: &str) -> Listener {
        let (client, mut connection) = tokio_postgres::connect(url, NoTls)
            .await
            .expect("listener connection");
        let (sender, received) = mpsc::unbounded_channel();
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        tokio::spawn(async move {
            while let Some(Ok(message)) = messages.next().await {
                if let AsyncMessage::Notification(notification) = message {
                    let raw = notification.payload().to_owned();
                    let payload = serde_json::from_str(&raw).unwrap_or(serde_json::Value::Null);
                    let channel = notification.channel().to_owned();
                    if sender
                        .send(Received {
                            channel,
                            payload,
                            raw,
                        })
                        .is_err()
                    {
                        break;
                    }
                }
            }
        });
        let listen = format!("LISTEN \"{}\"", channel.replace('"', "\"\""));
        client.batch_execute(&listen).await.expect("LISTEN");
        Listener {
            _client: client,
            received,
        }
    }

    /// The next notification; panics when none arrives in time.
    pub async fn next(&mut self) -> Received {
        tokio::time::timeout(ARRIVAL_TIMEOUT, self.received.recv())
            .await
            .expect("no notification arrived in time")
            .expect("listener connection ended")
    }

    /// Asserts that nothing arrives for a while.
    pub async fn assert_silent(&mut self) {
        if let Ok(Some(unexpected)) = tokio::time::timeout(SILENCE, self.received.recv()).await {
            panic!("expected no notification, got {}", unexpected.raw);
        }
    }
}

/// The SQLSTATE of a failed statement.
pub fn sqlstate(error: &tokio_postgres::Error) -> String {
    error
        .code()
        .map(|code| code.code().to_owned())
        .unwrap_or_else(|| panic!("not a server error: {error}"))
}

/// A small deterministic random generator, so a failing run can be repeated exactly.
pub struct Xorshift(u64);

impl Xorshift {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in `0..bound`.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }
}

/// The one bigint a query returns (a count, mostly).
pub async fn query_i64(client: &Client, sql: &str) -> i64 {
    client
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|error| panic!("{sql}: {error}"))
        .get(0)
}

/// The first column of every row a query returns, as text, in the query's order.
pub async fn query_texts(client: &Client, sql: &str) -> Vec<String> {
    client
        .query(sql, &[])
        .await
        .unwrap_or_else(|error| panic!("{sql}: {error}"))
        .iter()
        .map(|row| row.get(0))
        .collect()
}
