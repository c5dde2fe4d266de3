//! The relay of WAL watches: one replication stream (the consumer's slot) for every channel.
//! A run connects to NATS, finds the last message the stream holds for each channel, then
//! reads the slot and publishes each message not yet in the stream, acknowledging in the
//! consumer only what JetStream acknowledged. Messages are keyed by their place in commit
//! order (`Nats-Msg-Id: <channel>:<commit>:<position>`), so what the slot sends again after
//! a crash is recognised and skipped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::Either;
use futures_util::stream::FuturesOrdered;
use futures_util::StreamExt;
use tokio::sync::watch;

use super::builder::Settings;
use super::channel::{restart_after, stop_requested};
use super::jetstream::Nats;
use super::report::RelayReport;
use crate::backoff::Retries;
use crate::error::Error;
use crate::wal::{RawWalEvent, WalConsumer, WalMessage, WalPosition};

/// How long the relay waits for a message, with nothing in flight, before it reports that
/// it caught up.
const CATCH_UP_WAIT: Duration = Duration::from_millis(200);

/// Where a message is in the order of delivery: its commit, then its own position.
type Order = (WalPosition, WalPosition);

/// The `Nats-Msg-Id` of a WAL message.
pub(super) fn message_id(message: &WalMessage) -> String {
    format!(
        "{}:{}:{}",
        message.channel, message.commit_end, message.position
    )
}

/// The order a `Nats-Msg-Id` of [`message_id`]'s form names.
pub(super) fn order_of(message_id: &str) -> Option<Order> {
    let mut parts = message_id.rsplitn(3, ':');
    let position = parts.next()?.parse().ok()?;
    let commit = parts.next()?.parse().ok()?;
    parts.next()?;
    Some((commit, position))
}

/// What the WAL relay's runs share with the relay.
pub(super) struct WalRelay {
    pub(super) settings: Arc<Settings>,
    pub(super) stop: watch::Receiver<bool>,
    pub(super) relayed: Arc<AtomicU64>,
}

impl WalRelay {
    /// Relays until told to stop.
    pub(super) async fn run(mut self) {
        let mut retries = Retries::new(self.settings.backoff);
        let mut relayed_here = 0u64;
        let label = self.settings.channels.join(",");
        loop {
            let at_start = relayed_here;
            match self.run_once(&mut relayed_here).await {
                Ok(()) => return,
                Err(error) => {
                    let progressed = relayed_here > at_start;
                    if !restart_after(
                        &self.settings,
                        &mut self.stop,
                        &mut retries,
                        &label,
                        error,
                        progressed,
                    )
                    .await
                    {
                        return;
                    }
                }
            }
        }
    }

    async fn run_once(&mut self, relayed_here: &mut u64) -> Result<(), Error> {
        let settings = Arc::clone(&self.settings);
        let nats = Nats::connect(&settings.nats_url).await?;
        let (stream, _) = nats
            .stream(&settings.stream, &settings.subject_prefix)
            .await?;
        // Per channel: its subject, the order of its last message in the stream, and the
        // sequence the first publish expects to follow.
        let mut channels = HashMap::new();
        for channel in &settings.channels {
            let subject = format!("{}.{channel}", settings.subject_prefix);
            let last = nats.last_on_subject(&stream, &subject).await?;
            let (sequence, order) = match last {
                Some((sequence, id)) => {
                    let order = order_of(&id).ok_or_else(|| not_relayed(&subject, sequence))?;
                    (sequence, Some(order))
                }
                None => (0, None),
            };
            channels.insert(channel.clone(), (subject, order, Some(sequence)));
        }
        let mut consumer = WalConsumer::builder(&settings.database.url, &settings.consumer)
            .channels(settings.channels.iter().cloned())
            .backoff(settings.backoff)
            .tls_verification(settings.database.tls.clone())
            .connect()
            .await?;
        let mut pending = FuturesOrdered::new();
        let mut stopping = *self.stop.borrow();
        let mut caught_up = false;
        let mut resynchronised = std::collections::HashSet::new();
        loop {
            if stopping && pending.is_empty() {
                consumer.close().await;
                return Ok(());
            }
            let may_read = !stopping && pending.len() < settings.window;
            tokio::select! {
                biased;
                acknowledged = pending.next(), if !pending.is_empty() => {
                    let Some((message, acknowledged)) = acknowledged else { continue };
                    let message: WalMessage = message;
                    // None: in the stream already, acknowledged in its turn.
                    if let Some(acknowledged) = acknowledged {
                        let acknowledged: Result<_, async_nats::jetstream::context::PublishError> =
                            acknowledged;
                        acknowledged.map_err(|error| {
                            Error::Nats(format!("publishing {}: {error}", message_id(&message)))
                        })?;
                        *relayed_here += 1;
                        self.relayed.fetch_add(1, Ordering::Relaxed);
                    }
                    consumer.ack(&message);
                }
                () = stop_requested(&mut self.stop), if !stopping => stopping = true,
                event = tokio::time::timeout(CATCH_UP_WAIT, consumer.recv_raw()), if may_read => {
                    let Ok(event) = event else {
                        if pending.is_empty() && !caught_up {
                            caught_up = true;
                            settings.report(RelayReport::WalCaughtUp {
                                confirmed: consumer.confirmed(),
                                relayed: *relayed_here,
                            });
                        }
                        continue;
                    };
                    let RawWalEvent::Message(message) = event? else { continue };
                    caught_up = false;
                    let (subject, last, expected_last) = channels
                        .get_mut(&message.channel)
                        .expect("the consumer yields its channels only");
                    let order = (message.commit_end, message.position);
                    if last.is_some_and(|last| order <= last) {
                        // In the stream already (published before a crash).
                        if resynchronised.insert(message.channel.clone()) {
                            settings.report(RelayReport::WalResynchronised {
                                channel: message.channel.clone(),
                                up_to: message_id(&message),
                            });
                        }
                        // Acknowledged after the messages before it, as a published one.
                        pending.push_back(Either::Left(async move { (message, None) }));
                        continue;
                    }
                    let acknowledgement = nats
                        .publish(subject, &message_id(&message), Bytes::from(message.payload.clone()), expected_last.take())
                        .await?;
                    pending.push_back(Either::Right(async move { (message, Some(acknowledgement.await)) }));
                }
            }
        }
    }
}

fn not_relayed(subject: &str, sequence: u64) -> Error {
    Error::Nats(format!(
        "the last message on {subject} (sequence {sequence}) has no Nats-Msg-Id \
         <channel>:<commit>:<position>: it was not published by a WAL relay"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_name_the_channel_and_the_place_in_commit_order() {
        let order = order_of("a:b:0/16B3748:0/16B3700").unwrap();
        assert_eq!(
            order,
            ("0/16B3748".parse().unwrap(), "0/16B3700".parse().unwrap())
        );
        assert_eq!(order_of("orders:42"), None);
        assert_eq!(order_of("0/1:0/2"), None);
    }
}
