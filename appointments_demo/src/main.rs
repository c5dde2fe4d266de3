//! The appointments example end to end: a process that must react when an appointment is
//! canceled, without the code that cancels it calling that process.
//!
//! It applies the migration (table and watch), listens with the `column_notify_listener`
//! crate, creates an appointment, cancels it, and prints the change PostgreSQL delivers.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use column_notify_listener::{connect_client, Change, Event, Listener, TlsVerification};
use serde::{Deserialize, Serialize};

const CHANNEL: &str = "appointments_canceled_changed";
const MIGRATION: &str = include_str!("../migrations/001_appointments.sql");
const WAIT: Duration = Duration::from_secs(10);

/// A row of the appointments table, as the payload carries it.
#[derive(Debug, Serialize, Deserialize)]
struct Appointment {
    id: i64,
    canceled: bool,
    inserted_at: String,
    updated_at: String,
}

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

    let writer = connect_client(&url, &TlsVerification::default())
        .await
        .map_err(|error| format!("cannot connect to {url}: {error}"))?;
    writer
        .batch_execute(MIGRATION)
        .await
        .map_err(|error| format!("migration failed: {error}"))?;

    let mut listener = Listener::connect(&url, [CHANNEL])
        .await
        .map_err(|error| format!("cannot listen: {error}"))?
        .typed::<Appointment>();
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

    let change = wait_for_appointment(&mut listener, id).await?;
    println!("Received a notification for appointment {id}");
    let pretty = serde_json::to_string_pretty(&change).expect("a change serialises");
    println!("{pretty}");
    Ok(())
}

/// Waits for the change of appointment `id`, skipping changes to other appointments.
async fn wait_for_appointment(
    listener: &mut Listener<Appointment>,
    id: i64,
) -> Result<Change<Appointment>, String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match listener.recv_timeout(left).await {
            Ok(Event::Change { change, .. }) if change.id == serde_json::json!(id) => {
                return Ok(*change)
            }
            Ok(Event::Change { .. }) => {} // another appointment, changed by someone else
            Ok(Event::InvalidPayload { error, .. }) => eprintln!("ignored a payload: {error}"),
            Ok(Event::Connection(event)) => eprintln!("connection: {event:?}"),
            Err(error) => {
                return Err(format!(
                    "no notification for appointment {id} on {CHANNEL} within {} seconds ({error})",
                    WAIT.as_secs()
                ))
            }
        }
    }
}
