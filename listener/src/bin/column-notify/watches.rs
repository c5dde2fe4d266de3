//! `column-notify watches`: the column_watches view as a table, and the queue usage.

use column_notify_listener::tokio_postgres::SimpleQueryMessage;
use column_notify_listener::{connect_client, Error, TlsVerification};

use crate::failure::Failure;
use crate::table::Table;

pub async fn run(url: &str, tls: &TlsVerification) -> Result<(), Failure> {
    let client = connect_client(url, tls).await?;
    let view = client
        .query_one("SELECT to_regclass('column_watches')::text", &[])
        .await
        .map_err(Error::Query)?;
    if view.get::<_, Option<String>>(0).is_none() {
        return Err(Failure(
            "this database has no column_watches view: is pg_column_notify installed? \
             (CREATE EXTENSION pg_column_notify)"
                .to_string(),
        ));
    }
    let mut table = Table::default();
    for message in client
        .simple_query("SELECT * FROM column_watches")
        .await
        .map_err(Error::Query)?
    {
        match message {
            SimpleQueryMessage::RowDescription(columns) => {
                table.header = columns.iter().map(|c| c.name().to_string()).collect();
            }
            SimpleQueryMessage::Row(row) => table.rows.push(
                (0..row.len())
                    .map(|i| row.get(i).unwrap_or_default().to_string())
                    .collect(),
            ),
            _ => {}
        }
    }
    print!("{table}");
    let usage: f64 = client
        .query_one("SELECT pg_notification_queue_usage()", &[])
        .await
        .map_err(Error::Query)?
        .get(0);
    println!("\nnotification queue usage: {:.4}%", usage * 100.0);
    Ok(())
}
