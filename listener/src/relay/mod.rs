//! The relay: the events of durable watches published into a NATS JetStream stream,
//! exactly once and in event-id order per channel, by one active relay per consumer name.
//!
//! [`builder`] checks the settings and the setup (durable channels, JetStream, the
//! stream) and makes a [`Relay`]; [`leadership`] is the PostgreSQL session lock that makes
//! one relay of a consumer the active one; [`channel`] relays one channel (resynchronise
//! with the stream, read the log, publish, acknowledge); [`jetstream`] is the NATS side;
//! [`report`] is what a relay tells about itself; [`wal_source`] relays WAL watches.
//!
//! # Exactly once into the stream
//!
//! * An event is published with header `Nats-Msg-Id: <channel>:<event_id>`, and the
//!   consumer's position in PostgreSQL moves only past events JetStream acknowledged.
//! * Before it publishes, a relay asks the stream for the last message of the channel's
//!   subject and moves the position up to that event: a relay that died between a publish
//!   and the acknowledgement in PostgreSQL never publishes that event again, however long
//!   it was down (the stream's duplicate window does not matter).
//! * The first message after that carries `Nats-Expected-Last-Subject-Sequence`: had
//!   another relay published meanwhile, it is refused, and the relay looks again.
//! * Publishes are pipelined (a bounded window awaiting their acknowledgements) over one
//!   NATS connection that never reconnects: the server stores what it received of a
//!   connection in order, so what reached the stream is always a prefix of what was sent.
//!   A lost connection ends the pipeline; the next one starts with the stream's last
//!   message again.
//!
//! # WAL watches as the source
//!
//! When the channels are those of WAL watches, [`wal_source`] reads them all from the
//! consumer's replication slot, in commit order, and keys each message by that order
//! (`Nats-Msg-Id: <channel>:<commit>:<position>`). The slot's confirmed position moves only
//! past messages JetStream acknowledged (or found in the stream); before publishing, the
//! relay reads each subject's last message and skips what the slot sends again up to it,
//! so a crash never publishes a message twice either.

mod builder;
mod channel;
mod jetstream;
mod leadership;
mod report;
mod wal_source;

pub use builder::{Relay, RelayBuilder, DEFAULT_STREAM, DEFAULT_SUBJECT_PREFIX, DEFAULT_WINDOW};
pub use report::RelayReport;
