//! Throttles. The state lives in Durable Objects (so it holds across isolates); these are
//! their rules, with no I/O.
//!
//! - Failed logins of the token endpoint, counted per (client id, source address) and, with
//!   a higher ceiling, per client id: one address guessing secrets locks only itself out,
//!   and many addresses together still meet a ceiling. The check runs before the secret's
//!   hash is computed, so a locked-out caller costs no PBKDF2.
//! - WebSocket upgrades per app key in a sliding window.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Failures of one key within a window, and the lockout they led to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureCount {
    /// Failures since `window_start`.
    failures: u32,
    window_start: u64,
    /// While `now < locked_until`, every attempt is refused with 429.
    locked_until: u64,
}

impl FailureCount {
    /// Seconds to wait before the next attempt, if locked out.
    pub fn retry_after(&self, now: u64) -> Option<u64> {
        (now < self.locked_until).then(|| self.locked_until - now)
    }

    /// Counts a failure; `max_failures` within `lockout_seconds` lock for `lockout_seconds`.
    /// Both are bounded by the configuration's ranges, so the sums cannot overflow.
    pub fn record_failure(&mut self, now: u64, max_failures: u32, lockout_seconds: u64) {
        if now >= self.window_start.saturating_add(lockout_seconds) {
            self.failures = 0;
            self.window_start = now;
        }
        self.failures = self.failures.saturating_add(1);
        if self.failures >= max_failures {
            self.locked_until = now.saturating_add(lockout_seconds);
            self.failures = 0;
            self.window_start = now;
        }
    }

    /// Nothing to remember any more: no failure in the window and no lockout.
    fn is_idle(&self, now: u64, lockout_seconds: u64) -> bool {
        self.retry_after(now).is_none()
            && (self.failures == 0 || now >= self.window_start.saturating_add(lockout_seconds))
    }
}

/// The limits a login guard applies (from `limits` of the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoginLimits {
    pub failures_per_source: u32,
    pub failures_per_client: u32,
    pub lockout_seconds: u64,
}

/// Sources remembered per client id at most; the idle ones go first, then the oldest.
pub const MAX_SOURCES: usize = 1_024;

/// The login state of one client id: its own count and one per source address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginGuard {
    client: FailureCount,
    sources: BTreeMap<String, FailureCount>,
}

impl LoginGuard {
    /// Seconds to wait, if this client id (from anywhere) or this source is locked out.
    pub fn retry_after(&self, source: &str, now: u64) -> Option<u64> {
        let own = self.sources.get(source).and_then(|s| s.retry_after(now));
        match (self.client.retry_after(now), own) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn record_failure(&mut self, source: &str, now: u64, limits: LoginLimits) {
        self.client.record_failure(now, limits.failures_per_client, limits.lockout_seconds);
        if !self.sources.contains_key(source) && self.sources.len() >= MAX_SOURCES {
            self.sources.retain(|_, s| !s.is_idle(now, limits.lockout_seconds));
            if self.sources.len() >= MAX_SOURCES {
                // Still full of live entries: drop the one whose window is oldest.
                if let Some(oldest) = self.sources.iter().min_by_key(|(_, s)| s.window_start).map(|(k, _)| k.clone()) {
                    self.sources.remove(&oldest);
                }
            }
        }
        self.sources.entry(source.to_string()).or_default().record_failure(
            now,
            limits.failures_per_source,
            limits.lockout_seconds,
        );
    }

    /// A successful login clears its source's failures (not the client's ceiling, which
    /// counts attempts from everywhere).
    pub fn record_success(&mut self, source: &str) {
        self.sources.remove(source);
    }

    /// Whether there is nothing to store (a success with no failures writes nothing).
    pub fn is_empty(&self) -> bool {
        self.client == FailureCount::default() && self.sources.is_empty()
    }

    pub fn sources(&self) -> usize {
        self.sources.len()
    }
}

/// Upgrades of one app key in a sliding window: the start times of those within it, at
/// most `max` of them, so the state is bounded by the limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpgradeWindow {
    starts_ms: std::collections::VecDeque<u64>,
}

impl UpgradeWindow {
    /// Admits an upgrade at `now_ms`, or says after how many seconds one will be admitted.
    pub fn admit(&mut self, now_ms: u64, max: u32, window_seconds: u64) -> Result<(), u64> {
        let window_ms = window_seconds.saturating_mul(1000);
        while self.starts_ms.front().is_some_and(|&t| now_ms.saturating_sub(t) >= window_ms) {
            self.starts_ms.pop_front();
        }
        if self.starts_ms.len() >= max as usize {
            let oldest = self.starts_ms.front().copied().unwrap_or(now_ms);
            let wait_ms = (oldest + window_ms).saturating_sub(now_ms);
            return Err(wait_ms.div_ceil(1000).max(1));
        }
        self.starts_ms.push_back(now_ms);
        Ok(())
    }
}

/// Open vendor connections per app key (in one isolate): a connection takes a slot when it
/// opens and gives it back when it ends, and an app key holds at most `max`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenConnections {
    by_app_key: std::collections::HashMap<String, usize>,
}

impl OpenConnections {
    /// Takes a slot for one more connection of `app_key`, unless it holds `max` already.
    pub fn take(&mut self, app_key: &str, max: usize) -> bool {
        let n = self.by_app_key.entry(app_key.to_string()).or_insert(0);
        if *n >= max {
            if *n == 0 {
                self.by_app_key.remove(app_key);
            }
            return false;
        }
        *n += 1;
        true
    }

    /// Gives a slot of `app_key` back; an app key with none left is forgotten.
    pub fn give_back(&mut self, app_key: &str) {
        if let Some(n) = self.by_app_key.get_mut(app_key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.by_app_key.remove(app_key);
            }
        }
    }

    /// Connections `app_key` holds.
    pub fn of(&self, app_key: &str) -> usize {
        self.by_app_key.get(app_key).copied().unwrap_or(0)
    }

    /// App keys holding at least one connection.
    pub fn app_keys(&self) -> usize {
        self.by_app_key.len()
    }
}
