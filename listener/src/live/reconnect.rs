//! The task behind a listener: runs one session after another, reconnecting with the
//! crate's backoff when one is lost, and reports the loss and the reconnection.

use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::mpsc::{Sender, UnboundedReceiver};
use tokio::time::{sleep, Instant};

use crate::backoff::Retries;

use super::channels::Request;
use super::events::{ConnectionEvent, RawEvent};
use super::session::{End, Session};
use super::settings::Settings;

/// Runs `session`, then reconnects after each loss with capped exponential backoff, until
/// the consumer is gone.
///
/// The loss is reported at once when the buffer has room, or else as soon as the
/// reconnection is done; `Reconnected` is sent only after `LISTEN` succeeded, so every
/// notification after it is received.
pub(crate) async fn supervise(
    settings: Settings,
    mut session: Session,
    events: Sender<RawEvent>,
    mut requests: UnboundedReceiver<Request>,
) {
    loop {
        let error = match session.run(&events, &mut requests, &settings).await {
            End::ConsumerGone => return,
            End::Lost(error) => error,
        };
        let lost_at = Instant::now();
        let reconnect = tracing::warn_span!("reconnect", lost = %error);
        let _entered = reconnect.enter();
        tracing::warn!("connection lost");
        let mut unsent_loss = Some(RawEvent::Connection(ConnectionEvent::Lost { error }));
        let mut retries = Retries::new(settings.backoff);
        session = loop {
            if events.is_closed() || !offer(&events, &mut unsent_loss) {
                return;
            }
            match Session::open(&settings).await {
                Ok(session) => break session,
                Err(error) => {
                    let retry_in = retries.fail();
                    tracing::warn!(attempt = retries.failed(), %error, ?retry_in, "reconnection failed");
                    if unsent_loss.is_none() {
                        let failure = ConnectionEvent::ReconnectFailed {
                            attempt: retries.failed(),
                            error: error.to_string(),
                            retry_in,
                        };
                        // Skipped when the buffer is full: see ReconnectFailed's docs.
                        if !offer(&events, &mut Some(RawEvent::Connection(failure))) {
                            return;
                        }
                    }
                    sleep(retry_in).await;
                }
            }
        };
        tracing::info!(
            attempts = retries.failed() + 1,
            downtime = ?lost_at.elapsed(),
            "reconnected (notifications sent meanwhile were missed)"
        );
        let reconnected = RawEvent::Connection(ConnectionEvent::Reconnected {
            may_have_missed: true,
            attempts: retries.failed() + 1,
            downtime: lost_at.elapsed(),
        });
        for event in unsent_loss.into_iter().chain([reconnected]) {
            if events.send(event).await.is_err() {
                return;
            }
        }
    }
}

/// Hands `event` over if the buffer has room, leaving it in place otherwise. Returns false
/// when the consumer is gone.
fn offer(events: &Sender<RawEvent>, event: &mut Option<RawEvent>) -> bool {
    let Some(pending) = event.take() else {
        return true;
    };
    match events.try_send(pending) {
        Ok(()) => true,
        Err(TrySendError::Full(pending)) => {
            *event = Some(pending);
            true
        }
        Err(TrySendError::Closed(_)) => false,
    }
}
