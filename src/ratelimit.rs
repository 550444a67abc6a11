//! Failed-login throttling for the token endpoint. The state lives in a Durable Object
//! per client id (so it holds across isolates); these are its rules.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginGuard {
    /// Failures since `window_start`.
    failures: u32,
    window_start: u64,
    /// While `now < locked_until`, every attempt is refused with 429.
    locked_until: u64,
}

impl LoginGuard {
    /// Seconds to wait before the next attempt, if the client is locked out.
    pub fn retry_after(&self, now: u64) -> Option<u64> {
        (now < self.locked_until).then(|| self.locked_until - now)
    }

    /// Counts a failure; `max_failures` failures within `lockout_seconds` lock the client
    /// out for `lockout_seconds`.
    pub fn record_failure(&mut self, now: u64, max_failures: u32, lockout_seconds: u64) {
        if now >= self.window_start + lockout_seconds {
            self.failures = 0;
            self.window_start = now;
        }
        self.failures += 1;
        if self.failures >= max_failures {
            self.locked_until = now + lockout_seconds;
            self.failures = 0;
            self.window_start = now;
        }
    }

    pub fn record_success(&mut self) {
        self.failures = 0;
    }
}
