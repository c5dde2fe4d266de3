//! The channels of a listener, which it may change while it runs: the list its task
//! LISTENs to on every connection, and the requests that LISTEN or UNLISTEN on the
//! connection of the moment.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

use crate::error::Error;

/// PostgreSQL's identifier limit: names of 64 bytes or more are not channel names.
const NAME_LIMIT: usize = 64;

/// The channels, shared by the listener and its task.
#[derive(Debug, Clone, Default)]
pub(crate) struct Channels(Arc<Mutex<Vec<String>>>);

impl Channels {
    /// The channels of `names`, checked, each once, in order.
    pub(crate) fn new(names: impl IntoIterator<Item = String>) -> Result<Channels, Error> {
        let channels = Channels::default();
        for name in names {
            check_channel(&name)?;
            channels.add(&name);
        }
        Ok(channels)
    }

    pub(crate) fn list(&self) -> Vec<String> {
        self.lock().clone()
    }

    /// The statements that listen to every channel (empty without any).
    pub(crate) fn listen_sql(&self) -> String {
        self.lock()
            .iter()
            .map(|channel| listen_statement(channel))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Adds `channel`; false when it was there already.
    pub(crate) fn add(&self, channel: &str) -> bool {
        let mut list = self.lock();
        if list.iter().any(|listed| listed == channel) {
            return false;
        }
        list.push(channel.to_owned());
        true
    }

    /// Removes `channel`; false when it was not there.
    pub(crate) fn remove(&self, channel: &str) -> bool {
        let mut list = self.lock();
        let before = list.len();
        list.retain(|listed| listed != channel);
        list.len() != before
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        // The list is whole after any panic: each change is one push or retain.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A LISTEN or UNLISTEN for the task to run on its connection, and where to answer.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) sql: String,
    pub(crate) reply: oneshot::Sender<Result<(), Error>>,
}

pub(crate) fn listen_statement(channel: &str) -> String {
    format!("LISTEN {}", quote_identifier(channel))
}

pub(crate) fn unlisten_statement(channel: &str) -> String {
    format!("UNLISTEN {}", quote_identifier(channel))
}

pub(crate) fn check_channel(channel: &str) -> Result<(), Error> {
    let reason = if channel.is_empty() {
        "it is empty"
    } else if channel.len() >= NAME_LIMIT {
        "it is 64 bytes or longer"
    } else if channel.contains('\0') {
        "it contains a NUL character"
    } else {
        return Ok(());
    };
    Err(Error::InvalidChannel {
        channel: channel.to_string(),
        reason,
    })
}

fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_identifier("Mixed \"Case\""), "\"Mixed \"\"Case\"\"\"");
    }

    #[test]
    fn bad_channels_are_refused() {
        assert!(check_channel("").is_err());
        assert!(check_channel(&"x".repeat(64)).is_err());
        assert!(check_channel(&"x".repeat(63)).is_ok());
        assert!(check_channel("a\0b").is_err());
    }

    #[test]
    fn each_channel_once_in_order() {
        let channels = Channels::new(["a", "B", "a"].map(String::from)).unwrap();
        assert_eq!(channels.list(), ["a", "B"]);
        assert_eq!(channels.listen_sql(), "LISTEN \"a\"; LISTEN \"B\"");
        assert!(channels.add("c"));
        assert!(!channels.add("c"));
        assert!(channels.remove("a"));
        assert!(!channels.remove("a"));
        assert_eq!(channels.list(), ["B", "c"]);
    }
}
