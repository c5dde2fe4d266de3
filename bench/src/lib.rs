//! Helpers shared by the benchmark binaries: the database connection, error messages that
//! say what the server said, the median and percentiles of timed runs, and their tables.

use std::path::Path;

use serde_json::Value;
use std::time::Duration;

use tokio_postgres::{Client, NoTls};

/// The server's message for a failed statement, not just "db error".
pub fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => error.to_string(),
    }
}

/// Says `<program>: <message>` on stderr and exits with status 2.
pub fn fail(message: &str) -> ! {
    let program = std::env::args().next().unwrap_or_default();
    let program = Path::new(&program)
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or("bench");
    eprintln!("{program}: {message}");
    std::process::exit(2);
}

/// DATABASE_URL; an empty value counts as missing.
pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| fail("DATABASE_URL is not set"))
}

/// A query connection to `url`, its connection driven by a task of its own.
pub async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|error| fail(&format!("cannot connect: {}", describe(&error))));
    tokio::spawn(connection);
    client
}

/// The median of `samples` (sorted in place); the mean of the middle two for an even count.
pub fn median(samples: &mut [Duration]) -> Duration {
    samples.sort_unstable();
    let middle = samples.len() / 2;
    if samples.len() % 2 == 1 {
        samples[middle]
    } else {
        (samples[middle - 1] + samples[middle]) / 2
    }
}

/// The value at percentile `p` of sorted samples (nearest rank).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Prints a table: a title, a header and rows, as markdown or as aligned text.
pub fn print_table(markdown: bool, title: &str, header: &[&str], rows: &[Vec<String>]) {
    if markdown {
        println!("#### {title}\n");
        println!("| {} |", header.join(" | "));
        let align: Vec<&str> = (0..header.len())
            .map(|i| if i == 0 { "---" } else { "---:" })
            .collect();
        println!("| {} |", align.join(" | "));
        for row in rows {
            println!("| {} |", row.join(" | "));
        }
        println!();
        return;
    }
    println!("{title}");
    let header: Vec<String> = header.iter().map(|cell| cell.to_string()).collect();
    let lines: Vec<&Vec<String>> = std::iter::once(&header).chain(rows).collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|column| {
            lines
                .iter()
                .map(|line| line[column].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for line in lines {
        let cells: Vec<String> = line
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (cell, &width))| {
                if i == 0 {
                    format!("{cell:<width$}")
                } else {
                    format!("{cell:>width$}")
                }
            })
            .collect();
        println!("  {}", cells.join("  "));
    }
    println!();
}

/// The positive number that follows option `name` among `args`; fails saying so otherwise.
pub fn positive_number(args: &mut impl Iterator<Item = String>, name: &str) -> u64 {
    args.next()
        .and_then(|value| value.parse().ok())
        .filter(|&value| value > 0)
        .unwrap_or_else(|| fail(&format!("{name} takes a positive number")))
}

/// A change of the benchmarks' tables: the row's id and the version it reached.
pub type Key = (i64, i64);

/// The row version a payload's `id` and `new.version` name.
pub fn key_of(id: &Value, new: Option<&Value>) -> Result<Key, String> {
    let version = new
        .and_then(|row| row.get("version"))
        .and_then(Value::as_i64);
    match (id.as_i64(), version) {
        (Some(id), Some(version)) => Ok((id, version)),
        _ => Err(format!(
            "an event without an id and new.version: id {id}, new {new:?}"
        )),
    }
}

/// The key of a payload, parsed as JSON.
pub fn key_of_payload(payload: &str) -> Result<Key, String> {
    let payload: Value = serde_json::from_str(payload)
        .map_err(|error| format!("a payload that is not JSON: {error}"))?;
    key_of(&payload["id"], payload.get("new"))
}
