//! `column-notify watches`: the column_watches view as a table (or JSON), and the queue
//! usage.

use column_notify_listener::{connect_client, Error, TlsVerification};

use crate::failure::Failure;
use crate::output;
use crate::table::Table;

/// The view as a table and the queue usage, or (`json`) the view's rows as a JSON array.
pub async fn run(url: &str, tls: &TlsVerification, json: bool) -> Result<(), Failure> {
    let client = connect_client(url, tls).await?;
    let view = client
        .query_one("SELECT to_regclass('column_watches')::text", &[])
        .await
        .map_err(Error::Query)?;
    if view.get::<_, Option<String>>(0).is_none() {
        return Err(Failure::new(
            "this database has no column_watches view: is pg_column_notify installed? \
             (CREATE EXTENSION pg_column_notify)"
                .to_string(),
        ));
    }
    if json {
        // The view's rows as PostgreSQL's JSON writes them, one array.
        let rows: String = client
            .query_one(
                "SELECT COALESCE(json_agg(w), '[]')::text FROM column_watches w",
                &[],
            )
            .await
            .map_err(Error::Query)?
            .get(0);
        output::line(&rows)?;
        return Ok(());
    }
    let table = Table::of_query(&client, "SELECT * FROM column_watches").await?;
    let usage: f64 = client
        .query_one("SELECT pg_notification_queue_usage()", &[])
        .await
        .map_err(Error::Query)?
        .get(0);
    output::write(&format!(
        "{table}\nnotification queue usage: {:.4}%\n",
        usage * 100.0
    ))?;
    Ok(())
}
