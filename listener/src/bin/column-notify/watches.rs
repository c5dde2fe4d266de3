//! `column-notify watches`: the column_watches view as a table (or JSON), and the queue
//! usage.

use column_notify_listener::{connect_client, Error, TlsVerification};

use crate::failure::Failure;
use crate::output;
use crate::table::Table;

/// The view as a table and the queue usage, or (`json`) the view's rows as a JSON array.
pub async fn run(url: &str, tls: &TlsVerification, json: bool) -> Result<(), Failure> {
    let client = connect_client(url, tls).await?;
    // The view is in the schema the extension was created in, on the search path or not.
    let view = client
        .query_opt(
            "SELECT pg_catalog.quote_ident(n.nspname) || '.column_watches'
             FROM pg_catalog.pg_extension e
             JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
             WHERE e.extname = 'pg_column_notify'",
            &[],
        )
        .await
        .map_err(Error::Query)?
        .map(|row| row.get::<_, String>(0))
        .ok_or_else(|| {
            Failure::new(
                "pg_column_notify is not installed in this database (CREATE EXTENSION pg_column_notify)",
            )
        })?;
    if json {
        // The view's rows as PostgreSQL's JSON writes them, one array.
        let rows: String = client
            .query_one(
                &format!("SELECT COALESCE(pg_catalog.json_agg(w), '[]')::text FROM {view} w"),
                &[],
            )
            .await
            .map_err(Error::Query)?
            .get(0);
        output::line(&rows)?;
        return Ok(());
    }
    let table = Table::of_query(&client, &format!("SELECT * FROM {view}")).await?;
    let usage: f64 = client
        .query_one("SELECT pg_catalog.pg_notification_queue_usage()", &[])
        .await
        .map_err(Error::Query)?
        .get(0);
    output::write(&format!(
        "{table}\nnotification queue usage: {:.4}%\n",
        usage * 100.0
    ))?;
    Ok(())
}
