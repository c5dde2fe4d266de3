//! Durable consumption: the events of a durable watch, read from the server's event log after
//! a named consumer's acknowledged position, a notification serving only as a wake-up.
//!
//! [`builder`] makes a consumer, [`consumer`] decides when to read and tracks what is yet to
//! be acknowledged, [`reader`] is the connection that reads and acknowledges, and [`events`]
//! is what the consumer yields.

mod builder;
mod consumer;
mod events;
mod reader;

pub use builder::{DurableConsumerBuilder, DEFAULT_BATCH_SIZE, DEFAULT_POLL_INTERVAL};
pub use consumer::DurableConsumer;
pub use events::{DurableEvent, RawDurableEvent, StoredEvent};
