//! How a command fails: one line on stderr.

use std::fmt;

/// A failure, shown as one line on stderr.
#[derive(Debug)]
pub struct Failure(pub String);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<column_notify_listener::Error> for Failure {
    fn from(error: column_notify_listener::Error) -> Self {
        Failure(error.to_string())
    }
}

impl From<std::io::Error> for Failure {
    fn from(error: std::io::Error) -> Self {
        Failure(error.to_string())
    }
}
