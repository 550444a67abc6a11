//! Throttles. The state lives in Durable Objects (so it holds across isolates); these are
//! their rules, with no I/O.
//!
//! - Failed logins of the token endpoint, counted per (client id, source address) and, with
//!   a higher ceiling, per client id: one address guessing secrets locks only itself out,
//!   and many addresses together still meet a ceiling. The check runs before the secret's
//!   hash is computed, so a locked-out caller costs no PBKDF2.
//! - WebSocket upgrades per app key in a sliding window.
//! - Open WebSocket connections per app key across the deployment: each gateway isolate
//!   reports what it holds, and a count its isolate stops renewing lapses.

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

/// How long an isolate's count of open connections holds without a renewal (ms): an isolate
/// that was evicted, or lost its connections without a close, is forgotten this long after
/// its last word.
pub const CONNECTION_LEASE_MS: u64 = 180_000;
/// How often an isolate renews its counts (ms): well inside the lease.
pub const CONNECTION_RENEW_MS: u64 = 60_000;

/// The open connections of one app key, by the gateway isolate that holds them. Bounded by
/// the ceiling: an isolate is counted only while it holds at least one connection, so there
/// are never more isolates than connections allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenConnections {
    /// Isolate id: (connections, when the count lapses, ms).
    isolates: BTreeMap<String, (u32, u64)>,
}

impl OpenConnections {
    /// Connections open now, across every isolate whose count has not lapsed.
    pub fn open(&mut self, now_ms: u64) -> u64 {
        self.isolates.retain(|_, (count, until)| *count > 0 && *until > now_ms);
        self.isolates.values().map(|(count, _)| u64::from(*count)).sum()
    }

    /// One more connection of `isolate`, unless the app key holds `max` already.
    pub fn admit(&mut self, isolate: &str, max: u64, now_ms: u64) -> bool {
        if self.open(now_ms) >= max {
            return false;
        }
        let (count, until) = self.isolates.entry(isolate.to_string()).or_insert((0, 0));
        *count = count.saturating_add(1);
        *until = now_ms + CONNECTION_LEASE_MS;
        true
    }

    /// A connection of `isolate` ended.
    pub fn release(&mut self, isolate: &str) {
        if let Some((count, _)) = self.isolates.get_mut(isolate) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.isolates.remove(isolate);
            }
        }
    }

    /// `isolate` holds `count` connections now: what it says replaces what was counted,
    /// so a lost release is corrected by the next renewal.
    pub fn renew(&mut self, isolate: &str, count: u32, now_ms: u64) {
        if count == 0 {
            self.isolates.remove(isolate);
        } else {
            self.isolates.insert(isolate.to_string(), (count, now_ms + CONNECTION_LEASE_MS));
        }
    }

    /// Whether nothing is counted (nothing to store).
    pub fn is_empty(&self) -> bool {
        self.isolates.is_empty()
    }
}
