//! How a command fails: one line on stderr, and an exit status: 2 for what the command was
//! given (arguments, settings, a setup that cannot work), 1 for what went wrong running it.

use std::fmt;

use column_notify_listener::Error;

/// A failure, shown as one line on stderr.
#[derive(Debug)]
pub struct Failure {
    message: String,
    usage: bool,
}

impl Failure {
    /// Something went wrong while running (exit status 1).
    pub fn new(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            usage: false,
        }
    }

    /// The exit status.
    pub fn status(&self) -> u8 {
        if self.usage {
            2
        } else {
            1
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        let usage = matches!(
            error,
            Error::InvalidConnectionString(_)
                | Error::NoChannel
                | Error::InvalidChannel { .. }
                | Error::ZeroBuffer
                | Error::InvalidBatchSize(_)
                | Error::InvalidRelay(_)
                | Error::NotDurable { .. }
                | Error::NoJetStream(_)
                | Error::StreamSubjects { .. }
                | Error::InvalidConsumer(_)
                | Error::NotWal { .. }
                | Error::WalLevel(_)
        );
        Failure {
            message: error.to_string(),
            usage,
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(error: std::io::Error) -> Self {
        Failure::new(error.to_string())
    }
}
