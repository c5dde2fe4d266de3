//! What the listener's tests share, on top of the integration tests' own support
//! (`integration_tests`: the server's URL, a database of a test's own):
//!
//! * [`server`]: unique names, plain connections that send notifications, the restart;
//! * [`payloads`]: payloads shaped like the extension's, and the check on a change;
//! * [`listening`]: waiting for a listener's next change, or for a reported gap;
//! * [`cli`]: running the `column-notify` command;
//! * [`durable`]: a database with a durable watch, and concurrent writers;
//! * [`nats`]: a `nats-server` of a test's own, and what a stream holds.

pub mod cli;
pub mod durable;
pub mod listening;
pub mod nats;
pub mod payloads;
pub mod server;

pub use cli::*;
pub use durable::*;
pub use integration_tests::{server_url, TestDatabase, Xorshift};
pub use listening::*;
pub use nats::*;
pub use payloads::*;
pub use server::*;
