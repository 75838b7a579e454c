//! How often, and how patiently, a failed step is tried again: one policy for handlers,
//! dispatches and conflicting commands.

use std::time::Duration;

/// How often, and how patiently, something that failed is tried again: a projection's or
/// reactor's handler, a process manager's dispatch, a command whose stream another
/// writer changed first ([`Repository::execute_retrying`](crate::repository::Repository::execute_retrying)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    attempts: u32,
    first_backoff: Duration,
    max_backoff: Duration,
}

impl Retry {
    /// `attempts` tries in all (at least one), waiting `first_backoff` after the first
    /// failure and doubling up to 30 s.
    pub fn new(attempts: u32, first_backoff: Duration) -> Self {
        Self {
            attempts: attempts.max(1),
            first_backoff,
            max_backoff: Duration::from_secs(30),
        }
    }

    /// `attempts` tries in all (at least one), one right after the other: for a conflict,
    /// where reading the stream again is the cure and waiting only adds latency.
    pub fn immediately(attempts: u32) -> Self {
        Self::new(attempts, Duration::ZERO)
    }

    /// One try, no retry.
    pub fn never() -> Self {
        Self::new(1, Duration::ZERO)
    }

    /// Caps the wait between tries.
    pub fn max_backoff(mut self, max_backoff: Duration) -> Self {
        self.max_backoff = max_backoff;
        self
    }

    /// Tries in all.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The wait after failed try number `failed` (from 1).
    pub fn backoff(&self, failed: u32) -> Duration {
        let factor = 2u32.saturating_pow(failed.saturating_sub(1));
        self.first_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

impl Default for Retry {
    /// Three tries, 100 ms then 200 ms apart.
    fn default() -> Self {
        Self::new(3, Duration::from_millis(100))
    }
}
