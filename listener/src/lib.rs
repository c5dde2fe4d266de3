//! Listen to the changes that the `pg_column_notify` extension sends, and never miss a lost
//! event silently.
//!
//! A [`Listener`] connects to PostgreSQL with what connects `psql` (a URI or keyword/value
//! string, the `PG*` variables, `.pgpass`, a service file; TLS with rustls as `sslmode`
//! says, see [`TlsVerification`]), runs `LISTEN` on one or more channels and yields a [`Stream`] of
//! [`Event`]s: a [`Change`] decoded with serde, a payload that is not a change, or a
//! [`ConnectionEvent`].
//!
//! ```no_run
//! use column_notify_listener::{ConnectionEvent, Event, Listener, StreamExt};
//!
//! # async fn run() -> Result<(), column_notify_listener::Error> {
//! let mut listener = Listener::connect(
//!     "postgres://postgres@127.0.0.1:5432/postgres",
//!     ["appointments_canceled_changed"],
//! )
//! .await?;
//! while let Some(event) = listener.next().await {
//!     match event {
//!         Event::Change { change, .. } => {
//!             println!("appointment {} changed: {:?} -> {:?}", change.id, change.old, change.new);
//!         }
//!         Event::InvalidPayload { notification, error } => {
//!             eprintln!("ignored a foreign payload {:?}: {error}", notification.payload);
//!         }
//!         Event::Connection(ConnectionEvent::Reconnected { .. }) => {
//!             // Changes committed while disconnected were not received: reload the state.
//!         }
//!         Event::Connection(other) => eprintln!("{other:?}"),
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Lost connections
//!
//! The listener reconnects by itself, waiting between attempts with capped exponential
//! [`Backoff`]. It runs `LISTEN` again *before* it reports
//! [`ConnectionEvent::Reconnected`]`{ may_have_missed: true, .. }`: anything committed after
//! that event is received, anything committed between [`ConnectionEvent::Lost`] and it may
//! not be. A connection that dies silently (no close, no error) is found by the
//! [`HealthCheck`]: after a quiet spell the listener asks the server a trivial query and
//! counts the connection as lost when no answer comes in time.
//!
//! # Memory bound and backpressure
//!
//! A task reads the connection and hands notifications to the consumer through a buffer of
//! at most [`ListenerBuilder::buffer`] events ([`DEFAULT_BUFFER`] = 1024). A payload is under
//! 8000 bytes, so the buffer holds at most about 8 MiB by default (a typical change of a few
//! hundred bytes: well under 1 MiB).
//!
//! When the consumer is slower than the notifications and the buffer is full, the task
//! stops reading the socket. Nothing is dropped: the notifications wait in the kernel's
//! socket buffers and then in the server's notification queue (`max_notify_queue_pages`,
//! 8 GB by default; see `pg_notification_queue_usage()`), and the listener reads them when
//! the consumer catches up. The one cost is on the server: while a listener lags, the queue
//! grows, and should it ever fill, the transactions that `NOTIFY` fail at commit with
//! "too many notifications in the NOTIFY queue". A slow consumer should therefore be made
//! faster (for example with a [`HandlerPool`]) rather than left far behind.
//!
//! # Durable watches: replay, at-least-once
//!
//! Plain notifications sent while a listener is disconnected are gone. For a durable watch
//! (`watch_column(..., durable => true)`) the server also logs every change, and a
//! [`DurableConsumer`] reads that log after a named consumer's acknowledged position: it
//! replays what it missed (while stopped, or during a reconnection), then follows live
//! changes, in event-id order, and [`acknowledges`](DurableConsumer::ack) them. Delivery is
//! at least once: events not yet acknowledged when a process dies come again.
//!
//! # WAL watches: no commit lock, replay from a replication slot
//!
//! NOTIFY serialises the commits of every notifying transaction. A WAL watch
//! (`watch_column(..., delivery => 'wal')`, on a server with `wal_level = logical`) writes
//! each change as a transactional logical message instead, and a [`WalConsumer`] reads them
//! from a logical replication slot of its own, in commit order, at least once: it resumes
//! after the position it confirmed, however long it was stopped.
//!
//! # Scaling out: the NATS relay
//!
//! A [`Relay`] publishes the events of durable watches into a NATS JetStream stream:
//! each event of channel `c` once, in event-id order, to subject `<prefix>.c` with header
//! `Nats-Msg-Id: c:<event_id>`. The consumer's position moves only past events JetStream
//! acknowledged; before publishing, the relay finds the stream's last message for the
//! channel and moves the position up to it, so a crash between a publish and its
//! acknowledgement never publishes an event twice, however long the relay was down. One
//! relay per consumer name is active (it holds a session-level advisory lock per channel);
//! others wait as standbys and take over when its session ends. `column-notify relay` is
//! the command around it.
//!
//! # Handling changes concurrently
//!
//! [`HandlerPool`] runs a handler on many changes at once while keeping the changes to one
//! row key in order.
//!
//! # Names
//!
//! * A *notification* is what PostgreSQL delivers on a channel ([`Notification`]).
//! * A *change* is one row's change, the payload of a notification (or one element of a
//!   batch) decoded ([`Change`]).
//! * An *event* is what a listener or a durable consumer yields: a change, a payload that is
//!   not one, or a [`ConnectionEvent`] ([`Event`], [`RawEvent`], [`DurableEvent`],
//!   [`RawDurableEvent`]).
//! * A *stored event* is an entry of a durable watch's event log on the server
//!   ([`StoredEvent`], numbered by its `event_id`).
#![warn(missing_docs)]

mod backoff;
mod change;
mod client;
mod conninfo;
mod durable;
mod error;
mod live;
mod pool;
mod relay;
mod tls;
mod wal;

pub use backoff::Backoff;
pub use change::{skipped_before, split_batch, split_batch_str, Change, Op};
pub use client::connect_client;
pub use durable::{
    DurableConsumer, DurableConsumerBuilder, DurableEvent, RawDurableEvent, StoredEvent,
    DEFAULT_BATCH_SIZE, DEFAULT_POLL_INTERVAL,
};
pub use error::Error;
/// The stream trait that listeners implement, and its extension with `next`, re-exported so
/// that `listener.next()` needs no other import.
pub use futures_util::{Stream, StreamExt};
pub use live::{
    ConnectionEvent, Event, HealthCheck, Listener, ListenerBuilder, Notification, RawEvent,
    RawListener, DEFAULT_BUFFER,
};
pub use pool::{HandlerPool, PoolStats};
pub use relay::{
    Relay, RelayBuilder, RelayReport, DEFAULT_STREAM, DEFAULT_SUBJECT_PREFIX, DEFAULT_WINDOW,
};
pub use tls::TlsVerification;
/// The PostgreSQL client of [`connect_client`], re-exported so that versions match.
pub use tokio_postgres;
pub use wal::{
    slot_name, RawWalEvent, WalConsumer, WalConsumerBuilder, WalEvent, WalMessage, WalPosition,
    MESSAGE_PREFIX, PUBLICATION, SLOT_PREFIX,
};
