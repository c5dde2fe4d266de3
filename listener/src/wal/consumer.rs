//! The WAL consumer itself: the replication stream of its slot, the transactions it decodes
//! (only the extension's messages of the consumer's channels are kept), what it yielded and
//! what it may confirm to the server.

use std::collections::{HashSet, VecDeque};
use std::marker::PhantomData;
use std::time::SystemTime;

use pgwire_replication::{Lsn, ReplicationClient, ReplicationEvent};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::time::{sleep_until, Instant};

use super::connection::Connection;
use super::events::{postgres_time, RawWalEvent, WalEvent, WalMessage, WalPosition};
use crate::error::Error;
use crate::live::ConnectionEvent;

/// What every message prefix of the extension starts with; the channel follows.
pub const MESSAGE_PREFIX: &str = "pg_column_notify:";

/// The changes of WAL watches (`watch_column(..., delivery => 'wal')`) for a named
/// consumer, read from its logical replication slot: everything after the position it
/// confirmed first, then each transaction as it commits.
///
/// The watch's trigger writes each change as a transactional logical message; the server
/// decodes them through the consumer's slot (`column_notify_<consumer>`, made on first use)
/// in commit order, and never a rolled-back one. Nothing is sent at commit, so writers do
/// not queue behind NOTIFY's database-wide commit lock.
///
/// # Delivery guarantee: at least once, in commit order
///
/// * Messages come in commit order, transaction by transaction, each once per
///   `WalConsumer`.
/// * [`ack`](WalConsumer::ack) says every message up to a position is processed; the
///   consumer then confirms to the server each transaction whose messages are all
///   acknowledged (the confirmation travels with the next status update, within a second).
///   A new consumer with the same name starts after the confirmed position: messages
///   yielded but not confirmed when a process died **come again**.
/// * While connected, the consumer also confirms the transactions and keepalives that
///   carried nothing for it, so an idle consumer does not hold WAL back.
///
/// # Cost on the server
///
/// The slot keeps the WAL from its confirmed position on: a consumer that stops for good
/// must be dropped ([`WalConsumer::drop_consumer`], or `column-notify drop-consumer`), and
/// `max_slot_wal_keep_size` bounds what a stalled one can hold.
///
/// ```no_run
/// use column_notify_listener::{WalConsumer, WalEvent};
///
/// # async fn run() -> Result<(), column_notify_listener::Error> {
/// let mut consumer =
///     WalConsumer::connect("postgres://postgres@127.0.0.1/shop", "billing", ["orders"]).await?;
/// loop {
///     match consumer.recv().await? {
///         WalEvent::Change { change, message } => {
///             println!("order {} is now {:?} ({})", change.id, change.new, message.position);
///             consumer.ack(&message);
///         }
///         WalEvent::InvalidPayload { message, error } => {
///             eprintln!("message at {} is not a change: {error}", message.position);
///             consumer.ack(&message);
///         }
///         WalEvent::Connection(event) => eprintln!("{event:?}"),
///     }
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct WalConsumer<T = Value> {
    state: State,
    rows: PhantomData<fn() -> T>,
}

/// Where a message is in the order of delivery: its transaction's commit, then its own
/// position (a message of a transaction committed later may have been written earlier).
type Order = (WalPosition, WalPosition);

fn order_of(message: &WalMessage) -> Order {
    (message.commit_end, message.position)
}

/// A transaction decoded: its messages of the consumer's channels, and where it ends.
#[derive(Debug)]
struct Transaction {
    committed_at: SystemTime,
    messages: Vec<WalMessage>,
}

/// Everything a consumer holds, whatever its row type.
struct State {
    connection: Connection,
    /// The replication stream; `None` while reconnecting.
    client: Option<ReplicationClient>,
    channels: HashSet<String>,
    /// The transaction being decoded, between its Begin and its Commit.
    transaction: Option<Transaction>,
    /// Messages of committed transactions, not yet yielded.
    ready: VecDeque<WalMessage>,
    connection_events: VecDeque<ConnectionEvent>,
    /// Committed transactions not yet confirmed, in commit order: the order of their last
    /// message (`None` for one that carried nothing for the consumer) and their end.
    unconfirmed: VecDeque<(Option<Order>, WalPosition)>,
    /// The order of the last message yielded.
    delivered: Order,
    /// The largest order acknowledged.
    acknowledged: Order,
    /// The position confirmed to the server (or found there at the start).
    confirmed: WalPosition,
    /// While the stream is down: since when, and the next attempt.
    reconnecting: Option<Reconnecting>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("connection", &self.connection)
            .field("connected", &self.client.is_some())
            .field("channels", &self.channels)
            .field("ready", &self.ready.len())
            .field("delivered", &self.delivered)
            .field("acknowledged", &self.acknowledged)
            .field("confirmed", &self.confirmed)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Reconnecting {
    lost_at: Instant,
    attempt: u32,
    retry_at: Instant,
}

impl WalConsumer {
    pub(super) fn start(
        connection: Connection,
        client: ReplicationClient,
        channels: HashSet<String>,
    ) -> WalConsumer {
        WalConsumer {
            state: State {
                connection,
                client: Some(client),
                channels,
                transaction: None,
                ready: VecDeque::new(),
                connection_events: VecDeque::new(),
                unconfirmed: VecDeque::new(),
                delivered: Order::default(),
                acknowledged: Order::default(),
                confirmed: WalPosition::default(),
                reconnecting: None,
            },
            rows: PhantomData,
        }
    }
}

impl<T: DeserializeOwned> WalConsumer<T> {
    /// The next event, a message decoded as a [`Change<T>`](crate::Change) when it is one.
    pub async fn recv(&mut self) -> Result<WalEvent<T>, Error> {
        self.recv_raw().await.map(WalEvent::decode)
    }

    /// [`recv`](Self::recv), giving up after `timeout` with [`Error::Timeout`]. Nothing is
    /// lost when it gives up: the next call goes on where this one stopped.
    pub async fn recv_timeout(
        &mut self,
        timeout: std::time::Duration,
    ) -> Result<WalEvent<T>, Error> {
        tokio::time::timeout(timeout, self.recv())
            .await
            .map_err(|_| Error::Timeout(timeout))?
    }
}

impl<T> WalConsumer<T> {
    /// The same consumer, decoding changes as `Change<U>`.
    pub fn typed<U>(self) -> WalConsumer<U> {
        WalConsumer {
            state: self.state,
            rows: PhantomData,
        }
    }

    /// The next event, the payload left as text. Fails only when the consumer is closed;
    /// a lost connection is reconnected (and reported as connection events).
    pub async fn recv_raw(&mut self) -> Result<RawWalEvent, Error> {
        self.state.next().await
    }

    /// Acknowledges `message`, and every message yielded before it, as processed. Each
    /// transaction whose messages are all acknowledged is confirmed to the server.
    pub fn ack(&mut self, message: &WalMessage) {
        self.state.acknowledge(order_of(message));
    }

    /// Acknowledges every message yielded so far.
    pub fn ack_delivered(&mut self) {
        let delivered = self.state.delivered;
        self.state.acknowledge(delivered);
    }

    /// How many decoded messages wait to be yielded.
    pub fn buffered_events(&self) -> usize {
        self.state.ready.len()
    }

    /// The position confirmed to the server (sent with the next status update).
    pub fn confirmed(&self) -> WalPosition {
        self.state.confirmed
    }

    /// The consumer's name.
    pub fn consumer(&self) -> &str {
        self.state.connection.consumer()
    }

    /// The replication slot it reads.
    pub fn slot(&self) -> &str {
        self.state.connection.slot()
    }

    /// Stops the replication stream. Acknowledged positions not yet sent to the server are
    /// lost: their messages come again to the next consumer of this name.
    pub async fn close(mut self) {
        if let Some(mut client) = self.state.client.take() {
            let _ = client.shutdown().await;
        }
    }
}

impl State {
    async fn next(&mut self) -> Result<RawWalEvent, Error> {
        loop {
            if let Some(event) = self.connection_events.pop_front() {
                return Ok(RawWalEvent::Connection(event));
            }
            if let Some(message) = self.ready.pop_front() {
                self.delivered = order_of(&message);
                return Ok(RawWalEvent::Message(message));
            }
            let Some(client) = self.client.as_mut() else {
                self.try_reconnect().await;
                continue;
            };
            match client.recv().await {
                Ok(Some(event)) => self.decode(event),
                Ok(None) => self.lost("the server ended the replication stream".to_owned()),
                Err(error) => self.lost(error.to_string()),
            }
        }
    }

    fn decode(&mut self, event: ReplicationEvent) {
        match event {
            ReplicationEvent::Begin {
                commit_time_micros, ..
            } => {
                self.transaction = Some(Transaction {
                    committed_at: postgres_time(commit_time_micros),
                    messages: Vec::new(),
                });
            }
            ReplicationEvent::Message {
                transactional: true,
                lsn,
                prefix,
                content,
            } => {
                let Some(channel) = prefix.strip_prefix(MESSAGE_PREFIX) else {
                    return;
                };
                if !self.channels.contains(channel) {
                    return;
                }
                if let Some(transaction) = self.transaction.as_mut() {
                    transaction.messages.push(WalMessage {
                        channel: channel.to_owned(),
                        position: WalPosition(lsn.as_u64()),
                        commit_end: WalPosition::default(),
                        committed_at: transaction.committed_at,
                        payload: String::from_utf8_lossy(&content).into_owned(),
                    });
                }
            }
            ReplicationEvent::Commit { end_lsn, .. } => {
                let end = WalPosition(end_lsn.as_u64());
                let Some(transaction) = self.transaction.take() else {
                    return;
                };
                if end <= self.confirmed {
                    // Sent again after a reconnection: confirmed already.
                    return;
                }
                let mut last = None;
                for mut message in transaction.messages {
                    message.commit_end = end;
                    // Acknowledged before a reconnection: not yielded again.
                    if order_of(&message) > self.acknowledged {
                        last = Some(order_of(&message));
                        self.ready.push_back(message);
                    }
                }
                match (last, self.unconfirmed.back_mut()) {
                    // Consecutive transactions with nothing for the consumer: one entry.
                    (None, Some((None, previous_end))) => *previous_end = end,
                    _ => self.unconfirmed.push_back((last, end)),
                }
                self.confirm_acknowledged();
            }
            ReplicationEvent::KeepAlive { wal_end, .. } => {
                // Everything before `wal_end` was decoded and sent before this keepalive.
                let end = WalPosition(wal_end.as_u64());
                if self.transaction.is_none()
                    && self.unconfirmed.is_empty()
                    && self.ready.is_empty()
                    && end > self.confirmed
                {
                    self.confirm(end);
                }
            }
            _ => {}
        }
    }

    fn acknowledge(&mut self, order: Order) {
        let order = order.min(self.delivered);
        if order > self.acknowledged {
            self.acknowledged = order;
        }
        self.confirm_acknowledged();
    }

    /// Confirms the transactions at the head whose messages are all acknowledged.
    fn confirm_acknowledged(&mut self) {
        let mut confirmable = None;
        while let Some(&(last, end)) = self.unconfirmed.front() {
            if last.is_some_and(|last| last > self.acknowledged) {
                break;
            }
            confirmable = Some(end);
            self.unconfirmed.pop_front();
        }
        if let Some(end) = confirmable {
            self.confirm(end);
        }
    }

    fn confirm(&mut self, end: WalPosition) {
        self.confirmed = end;
        if let Some(client) = self.client.as_ref() {
            client.update_applied_lsn(Lsn::from_u64(end.0));
        }
    }

    /// The stream failed: what was decoded but not confirmed comes again after the
    /// reconnection (except what was acknowledged).
    fn lost(&mut self, error: String) {
        self.client = None;
        self.transaction = None;
        self.ready.clear();
        self.unconfirmed.clear();
        self.delivered = self.acknowledged;
        let now = Instant::now();
        self.reconnecting = Some(Reconnecting {
            lost_at: now,
            attempt: 1,
            retry_at: now,
        });
        tracing::warn!(consumer = self.connection.consumer(), %error, "replication stream lost");
        self.connection_events
            .push_back(ConnectionEvent::Lost { error });
    }

    /// One attempt to open the stream again, after the backoff's wait.
    async fn try_reconnect(&mut self) {
        let Some(reconnecting) = self.reconnecting.as_mut() else {
            return;
        };
        sleep_until(reconnecting.retry_at).await;
        let attempt = reconnecting.attempt;
        match self.connection.stream(self.confirmed).await {
            Ok(client) => {
                self.client = Some(client);
                let lost_at = reconnecting.lost_at;
                tracing::info!(
                    consumer = self.connection.consumer(),
                    attempts = attempt,
                    downtime = ?lost_at.elapsed(),
                    "replication stream resumed after the confirmed position"
                );
                self.reconnecting = None;
                self.connection_events
                    .push_back(ConnectionEvent::Reconnected {
                        may_have_missed: false,
                        attempts: attempt,
                        downtime: lost_at.elapsed(),
                    });
            }
            Err(error) => {
                let retry_in = self.connection.backoff().delay(attempt);
                tracing::warn!(
                    consumer = self.connection.consumer(),
                    attempt,
                    %error,
                    ?retry_in,
                    "replication stream did not resume"
                );
                reconnecting.attempt = attempt.saturating_add(1);
                reconnecting.retry_at = Instant::now() + retry_in;
                self.connection_events
                    .push_back(ConnectionEvent::ReconnectFailed {
                        attempt,
                        error: error.to_string(),
                        retry_in,
                    });
            }
        }
    }
}
