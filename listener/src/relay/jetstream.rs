//! The NATS side of the relay: the stream (made when missing, checked when found), the last
//! message of a channel's subject, and a publishing connection that never reconnects, so
//! that what reaches the stream of it is a prefix of what was sent.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::context::{GetStreamErrorKind, PublishAckFuture};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{Config, LastRawMessageErrorKind, StorageType, Stream};
use async_nats::jetstream::{self, ErrorCode};
use bytes::Bytes;

use crate::error::Error;

/// How long a NATS connection attempt or request may take.
const NATS_TIMEOUT: Duration = Duration::from_secs(5);

/// A NATS connection and its JetStream context.
pub(super) struct Nats {
    context: jetstream::Context,
}

impl Nats {
    /// Connects for one run of publishing. The connection is never made again once lost:
    /// publishes queued meanwhile would reach the stream after others that were lost, out of
    /// order. A lost connection fails its pending publishes; the relay starts again.
    pub(super) async fn connect(url: &str) -> Result<Nats, Error> {
        let connected = Arc::new(AtomicBool::new(false));
        let once = Arc::clone(&connected);
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(NATS_TIMEOUT)
            // The first attempt goes at once; a reconnection waits for ever, i.e. never
            // happens (the connection's task then holds what was queued, at most a window).
            .reconnect_delay_callback(move |_| {
                if once.load(Ordering::Relaxed) {
                    Duration::MAX
                } else {
                    Duration::ZERO
                }
            })
            .connect(url)
            .await
            .map_err(|error| Error::Nats(format!("cannot connect to {url}: {error}")))?;
        connected.store(true, Ordering::Relaxed);
        let mut context = jetstream::new(client);
        context.set_timeout(NATS_TIMEOUT);
        Ok(Nats { context })
    }

    /// Refused unless the server has JetStream.
    pub(super) async fn check_jetstream(&self, url: &str) -> Result<(), Error> {
        self.context
            .query_account()
            .await
            .map(drop)
            .map_err(|error| Error::NoJetStream(format!("{url}: {error}")))
    }

    /// The stream `name`, made (file storage, subjects `<prefix>.>`) when missing. A stream
    /// found is used as it is when its subjects cover `<prefix>.>`. Returns it and whether it
    /// was made.
    pub(super) async fn stream(&self, name: &str, prefix: &str) -> Result<(Stream, bool), Error> {
        let wanted = format!("{prefix}.>");
        match self.context.get_stream(name).await {
            Ok(mut stream) => {
                let subjects = stream
                    .info()
                    .await
                    .map_err(|error| Error::Nats(format!("stream {name}: {error}")))?
                    .config
                    .subjects
                    .clone();
                if !subjects.iter().any(|subject| covers(subject, &wanted)) {
                    return Err(Error::StreamSubjects {
                        stream: name.to_owned(),
                        subjects,
                        wanted,
                    });
                }
                Ok((stream, false))
            }
            Err(error) => match error.kind() {
                GetStreamErrorKind::JetStream(inner)
                    if inner.error_code() == ErrorCode::STREAM_NOT_FOUND =>
                {
                    let stream = self
                        .context
                        .create_stream(Config {
                            name: name.to_owned(),
                            subjects: vec![wanted],
                            storage: StorageType::File,
                            ..Config::default()
                        })
                        .await
                        .map_err(|error| {
                            Error::Nats(format!("cannot create stream {name}: {error}"))
                        })?;
                    Ok((stream, true))
                }
                _ => Err(Error::Nats(format!("stream {name}: {error}"))),
            },
        }
    }

    /// The stream sequence and `Nats-Msg-Id` (empty when it has none) of the last message
    /// on `subject`, if any.
    pub(super) async fn last_on_subject(
        &self,
        stream: &Stream,
        subject: &str,
    ) -> Result<Option<(u64, String)>, Error> {
        match stream.get_last_raw_message_by_subject(subject).await {
            Ok(message) => {
                let id = message
                    .headers
                    .get(async_nats::header::NATS_MESSAGE_ID)
                    .map(|id| id.as_str().to_owned())
                    .unwrap_or_default();
                Ok(Some((message.sequence, id)))
            }
            Err(error) => match error.kind() {
                LastRawMessageErrorKind::NoMessageFound => Ok(None),
                _ => Err(Error::Nats(format!("reading {subject}: {error}"))),
            },
        }
    }

    /// Sends one event; the returned future resolves with JetStream's acknowledgement.
    /// `expected_last` (the stream sequence of the subject's last message, 0 for none) makes
    /// JetStream refuse it when another message reached the subject meanwhile.
    pub(super) async fn publish(
        &self,
        subject: &str,
        message_id: &str,
        payload: Bytes,
        expected_last: Option<u64>,
    ) -> Result<PublishAckFuture, Error> {
        let mut message = PublishMessage::build()
            .payload(payload)
            .message_id(message_id);
        if let Some(sequence) = expected_last {
            message = message.expected_last_subject_sequence(sequence);
        }
        self.context
            .send_publish(subject.to_owned(), message)
            .await
            .map_err(|error| Error::Nats(format!("publishing to {subject}: {error}")))
    }
}

/// Whether the stream subject `filter` takes every subject under `wanted` (`<prefix>.>`).
fn covers(filter: &str, wanted: &str) -> bool {
    let filter: Vec<&str> = filter.split('.').collect();
    let wanted: Vec<&str> = wanted.split('.').collect();
    for (position, token) in filter.iter().enumerate() {
        match (*token, wanted.get(position)) {
            (">", Some(_)) => return true,
            (_, Some(&">")) | (_, None) => return false,
            ("*", Some(_)) => continue,
            (token, Some(other)) if token == *other => continue,
            _ => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_stream_subjects_cover_the_prefix() {
        for filter in [">", "column_notify.>", "*.>", "column_notify.>"] {
            assert!(covers(filter, "column_notify.>"), "{filter}");
        }
        assert!(covers("a.>", "a.b.>"));
        assert!(covers("a.*.>", "a.b.>"));
        for filter in [
            "column_notify.*",
            "column_notify",
            "other.>",
            "column_notify.x.>",
            "a.b.>",
        ] {
            assert!(!covers(filter, "column_notify.>"), "{filter}");
        }
    }
}
