//! The relay: the events of durable watches published into a NATS JetStream stream,
//! exactly once and in event-id order per channel, by one active relay per consumer name.
//!
//! [`builder`] checks the settings and the setup (durable channels, JetStream, the
//! stream) and makes a [`Relay`]; [`leadership`] is the PostgreSQL session lock that makes
//! one relay of a consumer the active one; [`channel`] relays one channel (resynchronise
//! with the stream, read the log, publish, acknowledge); [`jetstream`] is the NATS side;
//! [`report`] is what a relay tells about itself.
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

mod builder;
mod channel;
mod jetstream;
mod leadership;
mod report;

pub use builder::{Relay, RelayBuilder, DEFAULT_STREAM, DEFAULT_SUBJECT_PREFIX, DEFAULT_WINDOW};
pub use report::RelayReport;
