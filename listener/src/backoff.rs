//! The one reconnection policy: capped exponential [`Backoff`], and [`Retries`], the count of
//! failed attempts it grows with (used by a listener's connection and by a durable
//! consumer's reading connection alike).

use std::time::Duration;

use tokio::time::sleep;

/// How long to wait between reconnection attempts: `initial`, doubled after each failed
/// attempt, never more than `max`.
///
/// The default is 100 ms doubling up to 10 s.
///
/// ```
/// use std::time::Duration;
/// use column_notify_listener::Backoff;
///
/// let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
/// assert_eq!(backoff.delay(1), Duration::from_millis(100));
/// assert_eq!(backoff.delay(2), Duration::from_millis(200));
/// assert_eq!(backoff.delay(4), Duration::from_millis(800));
/// assert_eq!(backoff.delay(5), Duration::from_secs(1));
/// assert_eq!(backoff.delay(500), Duration::from_secs(1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
}

impl Backoff {
    /// A backoff starting at `initial` and capped at `max` (`max` is raised to `initial`
    /// when it is smaller).
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max: max.max(initial),
        }
    }

    /// The wait after failed attempt number `attempt` (counted from 1).
    pub fn delay(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        self.initial
            .checked_mul(1u32 << doublings)
            .map_or(self.max, |delay| delay.min(self.max))
    }

    /// The first wait.
    pub fn initial(&self) -> Duration {
        self.initial
    }

    /// The longest wait.
    pub fn max(&self) -> Duration {
        self.max
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(Duration::from_millis(100), Duration::from_secs(10))
    }
}

/// The failed attempts of one reconnection: the `n`th failure waits [`Backoff::delay`]`(n)`,
/// and there is no limit to how many are made.
#[derive(Debug)]
pub(crate) struct Retries {
    backoff: Backoff,
    failed: u32,
}

impl Retries {
    /// A reconnection that has not failed yet.
    pub(crate) fn new(backoff: Backoff) -> Self {
        Retries { backoff, failed: 0 }
    }

    /// Counts one more failed attempt; returns the wait before the next attempt.
    pub(crate) fn fail(&mut self) -> Duration {
        self.failed += 1;
        self.backoff.delay(self.failed)
    }

    /// How many attempts have failed so far.
    pub(crate) fn failed(&self) -> u32 {
        self.failed
    }

    /// Counts one more failed attempt, then waits before the next.
    pub(crate) async fn wait(&mut self) {
        sleep(self.fail()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_then_stays_capped() {
        let backoff = Backoff::default();
        let delays: Vec<_> = (1..=9).map(|attempt| backoff.delay(attempt)).collect();
        assert_eq!(delays[0], Duration::from_millis(100));
        assert_eq!(delays[6], Duration::from_millis(6400));
        assert_eq!(delays[7], Duration::from_secs(10));
        assert_eq!(backoff.delay(u32::MAX), Duration::from_secs(10));
    }

    #[test]
    fn max_below_initial_is_raised() {
        let backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(1));
        assert_eq!(backoff.delay(3), Duration::from_secs(2));
    }
}
