//! `column-notify watches`: the column_watches view as a table, and the queue usage.

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
        return Err(Failure::new(
            "this database has no column_watches view: is pg_column_notify installed? \
             (CREATE EXTENSION pg_column_notify)"
                .to_string(),
        ));
    }
    let table = Table::of_query(&client, "SELECT * FROM column_watches").await?;
    print!("{table}");
    let usage: f64 = client
        .query_one("SELECT pg_notification_queue_usage()", &[])
        .await
        .map_err(Error::Query)?
        .get(0);
    println!("\nnotification queue usage: {:.4}%", usage * 100.0);
    Ok(())
}
