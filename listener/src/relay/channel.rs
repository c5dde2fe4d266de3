//! One channel relayed: a run connects to NATS, finds the last event the stream holds for
//! the channel, moves the consumer's position up to it, then reads the log after it and
//! publishes each event, acknowledging in PostgreSQL only what JetStream acknowledged. A
//! run that fails (a lost connection, a refused publish) is followed by another, after a
//! backoff, until the relay stops.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream::FuturesOrdered;
use futures_util::StreamExt;
use tokio::sync::watch;
use tokio::time::sleep;

use super::builder::Settings;
use super::jetstream::Nats;
use super::report::RelayReport;
use crate::backoff::Retries;
use crate::durable::{DurableConsumer, RawDurableEvent};
use crate::error::Error;

/// Acknowledge in PostgreSQL at least every so many events published, and what JetStream
/// acknowledged at least this often. The position may lag the stream: after a crash the
/// relay moves it up to the stream's last message anyway, so a later acknowledgement costs
/// nothing but a round trip saved per event.
const ACK_EVERY: u64 = 500;
const ACK_INTERVAL: Duration = Duration::from_millis(100);

/// How long a channel that has nothing in flight waits for an event before it looks whether
/// it has caught up (doubling each time it had not, up to [`CATCH_UP_CHECK_MAX`]).
const CATCH_UP_CHECK: Duration = Duration::from_millis(100);
const CATCH_UP_CHECK_MAX: Duration = Duration::from_secs(5);

/// What the channel's runs share with the relay.
pub(super) struct ChannelRelay {
    pub(super) settings: Arc<Settings>,
    pub(super) channel: String,
    /// True once the relay is to stop: finish what is in flight, acknowledge, return.
    pub(super) stop: watch::Receiver<bool>,
    /// Events published, all channels.
    pub(super) relayed: Arc<AtomicU64>,
}

impl ChannelRelay {
    /// Relays until told to stop.
    pub(super) async fn run(mut self) {
        let mut retries = Retries::new(self.settings.backoff);
        let mut relayed_here = 0u64;
        loop {
            let outcome = self.run_once(&mut relayed_here).await;
            match outcome {
                Ok(()) => return,
                Err((error, progressed)) => {
                    let settings = Arc::clone(&self.settings);
                    let restart = restart_after(
                        &settings,
                        &mut self.stop,
                        &mut retries,
                        &self.channel,
                        error,
                        progressed,
                    );
                    if !restart.await {
                        return;
                    }
                }
            }
        }
    }

    /// One run; `Err` says what failed and whether anything was published before.
    async fn run_once(&mut self, relayed_here: &mut u64) -> Result<(), (Error, bool)> {
        let settings = Arc::clone(&self.settings);
        let at_start = *relayed_here;
        let failed = |relayed: u64| move |error| (error, relayed > at_start);
        let nats = Nats::connect(&settings.nats_url)
            .await
            .map_err(failed(*relayed_here))?;
        let (stream, _) = nats
            .stream(&settings.stream, &settings.subject_prefix)
            .await
            .map_err(failed(*relayed_here))?;
        let subject = format!("{}.{}", settings.subject_prefix, self.channel);
        let last = nats
            .last_on_subject(&stream, &subject)
            .await
            .map_err(failed(*relayed_here))?;
        let mut consumer = DurableConsumer::builder(
            settings.database.url.clone(),
            settings.consumer.clone(),
            self.channel.clone(),
        )
        .batch_size(settings.batch_size)
        .connection(|_| settings.database.clone())
        .connect()
        .await
        .map_err(failed(*relayed_here))?;
        let last = last
            .map(|(sequence, id)| {
                event_id_of(&id)
                    .map(|event_id| (sequence, event_id))
                    .ok_or_else(|| not_relayed(&subject, sequence))
            })
            .transpose()
            .map_err(failed(*relayed_here))?;
        let mut last_event = 0;
        if let Some((_, event_id)) = last {
            let position = consumer
                .ack(event_id)
                .await
                .map_err(failed(*relayed_here))?;
            if position == event_id {
                settings.report(RelayReport::Resynchronised {
                    channel: self.channel.clone(),
                    event_id,
                });
            }
            last_event = position;
        }

        // The first publish states what the subject's last message is: refused if another
        // relay published meanwhile.
        let mut expected_last = Some(last.map_or(0, |(sequence, _)| sequence));
        let mut pending = FuturesOrdered::new();
        let mut unacknowledged = 0u64;
        let mut stopping = *self.stop.borrow();
        let mut busy = true;
        let mut acknowledged_at = Instant::now();
        let mut catch_up_check = CATCH_UP_CHECK;
        // A read of the log is never cut short by an acknowledgement: the consumer is asked
        // for an event only when it has read events waiting, or when nothing is in flight.
        // Only the two timers below may cut a read short, each once in a while.
        loop {
            let due = unacknowledged >= ACK_EVERY
                || (pending.is_empty() && (stopping || acknowledged_at.elapsed() >= ACK_INTERVAL));
            if unacknowledged > 0 && due {
                consumer
                    .ack(last_event)
                    .await
                    .map_err(failed(*relayed_here))?;
                unacknowledged = 0;
                acknowledged_at = Instant::now();
            }
            if pending.is_empty() && busy && consumer.caught_up() {
                busy = false;
                catch_up_check = CATCH_UP_CHECK;
                settings.report(RelayReport::CaughtUp {
                    channel: self.channel.clone(),
                    event_id: last_event,
                    relayed: *relayed_here,
                });
            }
            if stopping && pending.is_empty() {
                return Ok(());
            }
            let may_read = !stopping
                && pending.len() < settings.window
                && (consumer.buffered_events() > 0 || pending.is_empty());
            let acknowledgement_waits = pending.is_empty() && unacknowledged > 0;
            let catching_up = pending.is_empty() && busy;
            tokio::select! {
                biased;
                acknowledged = pending.next(), if !pending.is_empty() => {
                    let Some((event_id, acknowledged)) = acknowledged else { continue };
                    let acknowledged: Result<_, async_nats::jetstream::context::PublishError> =
                        acknowledged;
                    acknowledged.map_err(|error| {
                        (Error::Nats(format!("publishing to {subject}: {error}")), *relayed_here > at_start)
                    })?;
                    last_event = event_id;
                    *relayed_here += 1;
                    self.relayed.fetch_add(1, Ordering::Relaxed);
                    unacknowledged += 1;
                }
                () = stop_requested(&mut self.stop), if !stopping => stopping = true,
                () = sleep(ACK_INTERVAL.saturating_sub(acknowledged_at.elapsed())), if acknowledgement_waits => {}
                () = sleep(catch_up_check), if catching_up && !acknowledgement_waits => {
                    catch_up_check = (catch_up_check * 2).min(CATCH_UP_CHECK_MAX);
                }
                event = consumer.recv_raw(), if may_read => {
                    let RawDurableEvent::Event(event) = event.map_err(failed(*relayed_here))? else {
                        continue;
                    };
                    busy = true;
                    let message_id = format!("{}:{}", self.channel, event.event_id);
                    let acknowledgement = nats
                        .publish(&subject, &message_id, Bytes::from(event.payload), expected_last.take())
                        .await
                        .map_err(failed(*relayed_here))?;
                    let event_id = event.event_id;
                    pending.push_back(async move { (event_id, acknowledgement.await) });
                }
            }
        }
    }
}

/// After a failed run of `what` (a channel, or the WAL watches' channels): reports it and
/// waits the backoff (started anew when the run had published something). False when the
/// relay is told to stop meanwhile.
pub(super) async fn restart_after(
    settings: &Settings,
    stop: &mut watch::Receiver<bool>,
    retries: &mut Retries,
    what: &str,
    error: Error,
    progressed: bool,
) -> bool {
    if progressed {
        *retries = Retries::new(settings.backoff);
    }
    let retry_in = retries.fail();
    settings.report(RelayReport::Restarting {
        channel: what.to_owned(),
        error: error.to_string(),
        retry_in,
    });
    tokio::select! {
        () = tokio::time::sleep(retry_in) => true,
        () = stop_requested(stop) => false,
    }
}

/// Resolves once the relay is told to stop (or is gone).
pub(super) async fn stop_requested(stop: &mut watch::Receiver<bool>) {
    // The guard the wait returns is dropped at once: it must not be held across an await.
    drop(stop.wait_for(|stop| *stop).await);
}

/// The event id of a `Nats-Msg-Id` of the form `<channel>:<event_id>`.
fn event_id_of(message_id: &str) -> Option<i64> {
    message_id.rsplit_once(':')?.1.parse().ok()
}

fn not_relayed(subject: &str, sequence: u64) -> Error {
    Error::Nats(format!(
        "the last message on {subject} (sequence {sequence}) has no Nats-Msg-Id \
         <channel>:<event_id>: it was not published by a relay"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_name_the_channel_and_the_event() {
        assert_eq!(event_id_of("orders:42"), Some(42));
        assert_eq!(event_id_of("a:b:7"), Some(7));
        assert_eq!(event_id_of("orders"), None);
        assert_eq!(event_id_of("orders:x"), None);
    }
}
