//! WAL watches (`watch_column(..., delivery => 'wal')`): their changes read from a logical
//! replication slot per consumer, in commit order, at least once.

mod builder;
mod connection;
mod consumer;
mod events;

pub use builder::WalConsumerBuilder;
pub use connection::{slot_name, PUBLICATION, SLOT_PREFIX};
pub use consumer::{WalConsumer, MESSAGE_PREFIX};
pub use events::{RawWalEvent, WalEvent, WalMessage, WalPosition};
