//! A plain text table in psql's aligned style.

use std::fmt;

use column_notify_listener::tokio_postgres::{Client, SimpleQueryMessage};
use column_notify_listener::Error;

use crate::failure::Failure;

/// Column names and rows of text; NULL is shown empty.
#[derive(Debug, Default)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// The rows of `sql` (a query of text columns, run as a simple query).
    pub async fn of_query(client: &Client, sql: &str) -> Result<Table, Failure> {
        let mut table = Table::default();
        for message in client.simple_query(sql).await.map_err(Error::Query)? {
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
        Ok(table)
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let widths: Vec<usize> = self
            .header
            .iter()
            .enumerate()
            .map(|(i, name)| {
                self.rows
                    .iter()
                    .filter_map(|row| row.get(i))
                    .chain([name])
                    .map(|cell| cell.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: &[String]| {
            cells
                .iter()
                .zip(&widths)
                .map(|(cell, width)| format!(" {cell:<width$} "))
                .collect::<Vec<_>>()
                .join("|")
                .trim_end()
                .to_string()
        };
        writeln!(f, "{}", line(&self.header))?;
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(w + 2)).collect();
        writeln!(f, "{}", rule.join("+"))?;
        for row in &self.rows {
            writeln!(f, "{}", line(row))?;
        }
        let count = self.rows.len();
        writeln!(f, "({count} row{})", if count == 1 { "" } else { "s" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_like_psql() {
        let table = Table {
            header: vec!["table".into(), "channel".into()],
            rows: vec![vec!["appointments".into(), "c".into()]],
        };
        assert_eq!(
            table.to_string(),
            " table        | channel\n--------------+---------\n appointments | c\n(1 row)\n"
        );
    }
}
