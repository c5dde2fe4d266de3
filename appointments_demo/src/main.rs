//! The appointments example end to end: a process that must react when an appointment is
//! canceled, without the code that cancels it calling that process.
//!
//! It applies the migration (table and watch), listens on its own connection, creates an
//! appointment, cancels it, and prints the notification that PostgreSQL delivers.

use std::process::ExitCode;
use std::time::Duration;

use futures_util::StreamExt;
use tokio_postgres::{AsyncMessage, NoTls};

const CHANNEL: &str = "appointments_canceled_changed";
const MIGRATION: &str = include_str!("../migrations/001_appointments.sql");
const WAIT: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("appointments_demo: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let url = std::env::var("DATABASE_URL")
        .map_err(|_| "DATABASE_URL is not set (make demo sets it)".to_owned())?;

    let (writer, connection) = tokio_postgres::connect(&url, NoTls)
        .await
        .map_err(|error| format!("cannot connect to {url}: {error}"))?;
    tokio::spawn(connection);
    writer
        .batch_execute(MIGRATION)
        .await
        .map_err(|error| format!("migration failed: {error}"))?;

    let (listener, mut listener_connection) = tokio_postgres::connect(&url, NoTls)
        .await
        .map_err(|error| format!("cannot open the listening connection: {error}"))?;
    let (sender, mut notifications) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages =
            futures_util::stream::poll_fn(move |cx| listener_connection.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let AsyncMessage::Notification(notification) = message {
                let _ = sender.send(notification);
            }
        }
    });
    listener
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .await
        .map_err(|error| format!("LISTEN failed: {error}"))?;
    println!("Listening on channel {CHANNEL}");

    let row = writer
        .query_one(
            "INSERT INTO appointments (canceled) VALUES (false) RETURNING id",
            &[],
        )
        .await
        .map_err(|error| format!("cannot create an appointment: {error}"))?;
    let id: i64 = row.get(0);
    println!("Created appointment {id}");
    writer
        .execute(
            "UPDATE appointments SET canceled = true, updated_at = now() WHERE id = $1",
            &[&id],
        )
        .await
        .map_err(|error| format!("cannot cancel the appointment: {error}"))?;
    println!("Canceled appointment {id}");

    loop {
        let notification = tokio::time::timeout(WAIT, notifications.recv())
            .await
            .map_err(|_| {
                format!(
                    "no notification on {CHANNEL} within {} seconds",
                    WAIT.as_secs()
                )
            })?
            .ok_or("the listening connection closed")?;
        let payload: serde_json::Value =
            serde_json::from_str(notification.payload()).map_err(|error| {
                format!(
                    "the payload is not JSON ({error}): {}",
                    notification.payload()
                )
            })?;
        if payload["id"] != serde_json::json!(id) {
            continue; // a change to another appointment, made by someone else
        }
        println!("Received a notification for appointment {id}");
        let pretty = serde_json::to_string_pretty(&payload).expect("a JSON value serialises");
        println!("{pretty}");
        return Ok(());
    }
}
