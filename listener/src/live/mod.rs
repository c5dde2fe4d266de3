//! Live listening: one connection that runs `LISTEN` and forwards each notification as it
//! arrives, reconnecting after a loss and reporting the gap.
//!
//! [`builder`] checks the settings into [`settings`], [`listener`] holds the consumer's side
//! of the stream, [`channels`] the channels it may change while it runs, [`reconnect`] runs one [`session`] after another in a task, and [`events`]
//! is what the stream yields.

mod builder;
mod channels;
mod events;
mod listener;
mod reconnect;
mod session;
mod settings;

pub use builder::{ListenerBuilder, DEFAULT_BUFFER};
pub use events::{ConnectionEvent, Event, Notification, RawEvent};
pub use listener::{Listener, RawListener};
pub use settings::HealthCheck;
