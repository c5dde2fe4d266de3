//! The consumer's connections: an ordinary one to check the watches and to make the
//! publication and the slot, and the replication stream of the slot (pgwire-replication
//! speaks the replication protocol, which tokio-postgres does not).

use std::collections::HashSet;
use std::time::Duration;

use pgwire_replication::{Lsn, ReplicationClient, ReplicationConfig};
use tokio_postgres::Client;

use super::events::WalPosition;
use crate::backoff::Backoff;
use crate::client::connect_client;
use crate::conninfo::Target;
use crate::error::{describe, Error};
use crate::tls::TlsVerification;

/// The publication the slots decode with: it publishes no table, so the stream carries
/// only logical messages (pgoutput needs a publication even for those).
pub const PUBLICATION: &str = "column_notify_messages";

/// What every slot name of a consumer starts with; the consumer's name follows.
pub const SLOT_PREFIX: &str = "column_notify_";

/// How often the consumer sends the server its confirmed position.
const STATUS_INTERVAL: Duration = Duration::from_millis(500);

/// The slot of consumer `consumer`, or why the name cannot be one: slot names are lower
/// case letters, digits and underscores, shorter than 64 bytes.
pub fn slot_name(consumer: &str) -> Result<String, Error> {
    let valid = !consumer.is_empty()
        && consumer.len() < 64 - SLOT_PREFIX.len()
        && consumer
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_');
    if valid {
        Ok(format!("{SLOT_PREFIX}{consumer}"))
    } else {
        Err(Error::InvalidConsumer(format!(
            "{consumer:?}: a WAL consumer's name is 1 to {} lower case letters, digits and underscores",
            63 - SLOT_PREFIX.len()
        )))
    }
}

/// Where and how the consumer connects.
#[derive(Debug)]
pub(super) struct Connection {
    url: String,
    verification: TlsVerification,
    backoff: Backoff,
    consumer: String,
    slot: String,
    replication: ReplicationConfig,
}

impl Connection {
    pub(super) fn new(
        url: String,
        verification: TlsVerification,
        backoff: Backoff,
        consumer: String,
    ) -> Result<Self, Error> {
        let slot = slot_name(&consumer)?;
        let target = Target::new(&url, &verification)?;
        let info = &target.info;
        // The replication client connects to the first host (its hostaddr when given) and
        // checks the certificate against the host's name.
        let port = info.first_port().map_err(Error::InvalidConnectionString)?;
        let tls = target.tls.replication(info);
        let (host, user, database) = (info.first_address(), info.user(), info.dbname());
        let password = info.password().unwrap_or_default();
        let replication =
            ReplicationConfig::new(host, user, password, database, &slot, PUBLICATION)
                .with_port(port)
                .with_tls(tls)
                .with_status_interval(STATUS_INTERVAL)
                .with_application_name(format!("column-notify {consumer}"));
        Ok(Self {
            url,
            verification,
            backoff,
            consumer,
            slot,
            replication,
        })
    }

    pub(super) fn consumer(&self) -> &str {
        &self.consumer
    }

    pub(super) fn slot(&self) -> &str {
        &self.slot
    }

    pub(super) fn backoff(&self) -> Backoff {
        self.backoff
    }

    /// Checks that the server can decode and that every channel has a WAL watch, then
    /// makes the publication and the slot unless they exist.
    pub(super) async fn prepare(&self, channels: &HashSet<String>) -> Result<(), Error> {
        let client = connect_client(&self.url, &self.verification).await?;
        let wal_level: String = query_one(&client, "SHOW wal_level", &[]).await?;
        if wal_level != "logical" {
            return Err(Error::WalLevel(wal_level));
        }
        for channel in channels {
            check_wal_watch(&client, channel).await?;
        }
        create_unless_exists(
            &client,
            "SELECT pg_catalog.count(*) FROM pg_catalog.pg_publication WHERE pubname = $1",
            &format!("CREATE PUBLICATION {PUBLICATION}"),
            PUBLICATION,
            &[],
        )
        .await?;
        create_unless_exists(
            &client,
            "SELECT pg_catalog.count(*) FROM pg_catalog.pg_replication_slots WHERE slot_name = $1",
            "SELECT pg_catalog.pg_create_logical_replication_slot($1, 'pgoutput')",
            &self.slot,
            &[&self.slot],
        )
        .await?;
        let (plugin, database): (Option<String>, Option<String>) = {
            let row = client
                .query_one(
                    "SELECT s.plugin::text, s.database::text FROM pg_catalog.pg_replication_slots s
                     WHERE s.slot_name = $1",
                    &[&self.slot],
                )
                .await
                .map_err(Error::Query)?;
            (row.get(0), row.get(1))
        };
        let here: String =
            query_one(&client, "SELECT pg_catalog.current_database()::text", &[]).await?;
        if plugin.as_deref() != Some("pgoutput") || database.as_deref() != Some(here.as_str()) {
            return Err(Error::InvalidConsumer(format!(
                "slot {} exists but is not a pgoutput slot of database {here}; drop it or choose another consumer name",
                self.slot
            )));
        }
        Ok(())
    }

    /// Opens the replication stream of the slot, reporting `confirmed` as processed.
    #[tracing::instrument(name = "stream", skip_all, fields(slot = %self.slot, from = %confirmed))]
    pub(super) async fn stream(&self, confirmed: WalPosition) -> Result<ReplicationClient, Error> {
        let mut config = self.replication.clone();
        if confirmed.0 > 0 {
            config = config.with_ack_lsn(Lsn::from_u64(confirmed.0));
        }
        let mut client = ReplicationClient::connect(config)
            .await
            .map_err(|error| Error::Replication(error.to_string()))?;
        client
            .wait_started()
            .await
            .map_err(|error| Error::Replication(error.to_string()))?;
        tracing::info!("replication started");
        Ok(client)
    }
}

/// Drops the slot of consumer `consumer`. Returns false when there was none.
pub(super) async fn drop_slot(
    url: &str,
    verification: &TlsVerification,
    consumer: &str,
) -> Result<bool, Error> {
    let slot = slot_name(consumer)?;
    let client = connect_client(url, verification).await?;
    let dropped: i64 = query_one(
        &client,
        "SELECT pg_catalog.count(pg_catalog.pg_drop_replication_slot(s.slot_name))
         FROM pg_catalog.pg_replication_slots s WHERE s.slot_name = $1",
        &[&slot],
    )
    .await?;
    Ok(dropped > 0)
}

async fn query_one<T: for<'a> tokio_postgres::types::FromSql<'a>>(
    client: &Client,
    query: &str,
    parameters: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<T, Error> {
    let row = client
        .query_one(query, parameters)
        .await
        .map_err(Error::Query)?;
    Ok(row.get(0))
}

/// Refuses a channel with no WAL watch: a consumer of it would wait forever.
async fn check_wal_watch(client: &Client, channel: &str) -> Result<(), Error> {
    let rows = client
        .query(
            "SELECT w.delivery::text FROM column_notify.watches w WHERE w.channel = $1",
            &[&channel],
        )
        .await;
    let deliveries: Vec<String> = match rows {
        Ok(rows) => rows.iter().map(|row| row.get(0)).collect(),
        // 42703: a version of the extension without WAL delivery.
        Err(error) if error.code().map(|code| code.code()) == Some("42703") => Vec::new(),
        Err(error) => return Err(Error::Query(error)),
    };
    if deliveries.iter().any(|delivery| delivery == "wal") {
        Ok(())
    } else {
        Err(Error::NotWal {
            channel: channel.to_owned(),
            watched: !deliveries.is_empty(),
        })
    }
}

/// Runs `create` (with `parameters`) unless `count` (of `name`) finds the object; another
/// consumer making it at the same moment is no error.
async fn create_unless_exists(
    client: &Client,
    count: &str,
    create: &str,
    name: &str,
    parameters: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<(), Error> {
    let existing: i64 = query_one(client, count, &[&name]).await?;
    if existing > 0 {
        return Ok(());
    }
    match client.execute(create, parameters).await {
        Ok(_) => Ok(()),
        Err(error) if error.code().map(|code| code.code()) == Some("42710") => Ok(()),
        Err(error) => Err(Error::Setup(format!("{name}: {}", describe(&error)))),
    }
}
