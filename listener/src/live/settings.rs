//! What a running listener is given: its settings once checked by the builder, and the
//! health check that finds a silent dead connection.

use std::time::Duration;

use crate::tls::Connector;

use super::channels::Channels;
use crate::backoff::Backoff;
use crate::conninfo::Target;

/// How a silent connection is detected.
///
/// A connection can die without being closed (a host that vanished, a cut network): no
/// error comes, only silence. When nothing arrives from the server for `idle`, the listener
/// sends a trivial query; if no answer arrives within `timeout`, the connection is counted
/// as lost and the listener reconnects. The default is 10 s idle, 5 s timeout.
///
/// ```
/// use std::time::Duration;
/// use column_notify_listener::HealthCheck;
///
/// let check = HealthCheck::new(Duration::from_secs(30), Duration::from_secs(10));
/// assert_eq!(check.idle(), Duration::from_secs(30));
/// assert_eq!(HealthCheck::default().timeout(), Duration::from_secs(5));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthCheck {
    idle: Duration,
    timeout: Duration,
}

impl HealthCheck {
    /// A check after `idle` of silence, failing after `timeout` without an answer.
    pub fn new(idle: Duration, timeout: Duration) -> Self {
        HealthCheck { idle, timeout }
    }

    /// The silence after which the server is asked.
    pub fn idle(&self) -> Duration {
        self.idle
    }

    /// How long the answer may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck::new(Duration::from_secs(10), Duration::from_secs(5))
    }
}

/// Everything a running listener needs, checked.
pub(crate) struct Settings {
    pub(crate) target: Target,
    pub(crate) tls: Connector,
    pub(crate) channels: Channels,
    pub(crate) buffer: usize,
    pub(crate) backoff: Backoff,
    pub(crate) health: HealthCheck,
    pub(crate) connect_timeout: Duration,
}
