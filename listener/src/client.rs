//! An ordinary query connection, with the listener's connection string and TLS rules.

use std::time::Duration;

use tokio_postgres::Client;

use crate::conninfo::Target;
use crate::error::Error;
use crate::tls::TlsVerification;

/// Opens an ordinary connection for queries (to resynchronise after a gap, or to read the
/// watches), with the same connection string and TLS rules as a [`Listener`](crate::Listener).
///
/// A spawned task drives the connection; it closes when the client is dropped. A lost
/// connection shows as an error from the client's next query. Must be called inside a Tokio
/// runtime.
///
/// ```no_run
/// use column_notify_listener::{connect_client, Error, TlsVerification};
///
/// # async fn run() -> Result<(), Error> {
/// let client = connect_client("postgres://postgres@127.0.0.1/postgres", &TlsVerification::default()).await?;
/// let row = client
///     .query_one("SELECT pg_notification_queue_usage()", &[])
///     .await
///     .map_err(Error::Query)?;
/// let usage: f64 = row.get(0);
/// # let _ = usage;
/// # Ok(())
/// # }
/// ```
pub async fn connect_client(url: &str, verification: &TlsVerification) -> Result<Client, Error> {
    let (client, connection) = open(url, verification).await?;
    tokio::spawn(async move {
        // An error ends the connection; the client's next query reports it.
        if let Err(error) = connection.await {
            drop(error);
        }
    });
    Ok(client)
}

/// Connects, with a 10 s timeout unless the connection string sets one; returns the client
/// and the future that drives the connection (it ends, with the reason, when the connection
/// does).
pub(crate) async fn open(
    conninfo: &str,
    verification: &TlsVerification,
) -> Result<
    (
        Client,
        impl std::future::Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
    ),
    Error,
> {
    let mut target = Target::new(conninfo, verification)?;
    if target.pg.get_connect_timeout().is_none() {
        target.pg.connect_timeout(Duration::from_secs(10));
    }
    target
        .pg
        .connect(target.tls.connector()?)
        .await
        .map_err(|error| target.explain(error))
}
