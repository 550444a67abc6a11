//! The chain object's one alarm, coalesced: retention, saved-cursor expiry and webhook
//! retries all ask for it to fire by some time, and it is written to storage only when no
//! alarm already set fires by then. Writing it costs a storage round trip, so the time this
//! instance set is remembered; after a restart the stored one is read once before a write.

/// What to do about a wish for the alarm to fire by some time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlarmStep {
    /// An alarm already set fires in time.
    Covered,
    /// Read the stored alarm first (this instance has not set one), then ask
    /// [`AlarmClock::after_read`].
    ReadStored,
    /// Set the alarm to this time (ms). Recorded already: callers that interleave while the
    /// write is under way see it, and storage applies alarm writes in the order issued, so
    /// the earliest wish wins.
    Set(u64),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AlarmClock {
    /// When the alarm this instance knows of fires (ms).
    set_at: Option<u64>,
}

impl AlarmClock {
    /// The alarm must fire at or before `at`.
    pub fn wish(&mut self, at: u64, now_ms: u64) -> AlarmStep {
        if self.covers(at, now_ms) {
            return AlarmStep::Covered;
        }
        if self.set_at.is_none() {
            return AlarmStep::ReadStored;
        }
        self.set(at, now_ms)
    }

    /// The stored alarm (`None`: none) was read for a wish to fire by `at`.
    pub fn after_read(&mut self, stored: Option<u64>, at: u64, now_ms: u64) -> AlarmStep {
        if let Some(stored) = stored.filter(|stored| *stored > now_ms) {
            if self.set_at.is_none_or(|known| stored < known) {
                self.set_at = Some(stored);
            }
        }
        if self.covers(at, now_ms) {
            return AlarmStep::Covered;
        }
        self.set(at, now_ms)
    }

    /// The alarm fired: none is set until one is asked for.
    pub fn fired(&mut self) {
        self.set_at = None;
    }

    /// Whether an alarm known to be set fires in the future and by `at`. An alarm firing
    /// now still reads as set in storage and is cleared when its handler ends: it counts as
    /// none.
    pub fn covers(&self, at: u64, now_ms: u64) -> bool {
        self.set_at.is_some_and(|set| set > now_ms && set <= at)
    }

    fn set(&mut self, at: u64, now_ms: u64) -> AlarmStep {
        let at = at.max(now_ms + 1);
        self.set_at = Some(at);
        AlarmStep::Set(at)
    }
}
