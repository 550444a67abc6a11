//! When the chain's object folds its log into the entities' state (`log::entity`): not in
//! the publish, whose answer would wait for it, but in steps of their own: once the chain has
//! been quiet for [`QUIET_MS`], and at least every [`MAX_WAIT_MS`] while publishes keep coming
//! (every [`CATCH_UP_MS`] while it is a whole step or more behind), so a burst of publishes runs at
//! the speed of the log alone and the state follows within a few seconds; back to back once the
//! state is [`FORCE_LAG`] events behind, so it never falls behind without bound (retention
//! keeps every event the state has not folded yet).

/// Events one fold step folds at most, and about how many bytes of them: a step is a turn of
/// the object, and the publishes and deliveries waiting behind it wait that long (a new
/// entity costs ~30 µs: 500 of them held the object ~15 ms, the publish round trip's p99).
pub const FOLD_STEP_EVENTS: usize = 100;
pub const FOLD_STEP_BYTES: usize = 128 * 1024;
/// A chain this long without a publish is quiet: fold now. Long enough that a chain
/// publishing every few hundred ms (hundreds of chains each at a modest rate) folds every
/// [`MAX_WAIT_MS`] in larger steps, not once per publish: a step has a cost of its own.
pub const QUIET_MS: u64 = 1_000;
/// While the state is a whole step or more behind, a step at least this often.
pub const CATCH_UP_MS: u64 = 25;
/// While publishes keep coming, a step at least this often.
pub const MAX_WAIT_MS: u64 = 2_000;
/// This far behind, the steps run back to back whatever comes.
pub const FORCE_LAG: u64 = 100_000;

/// The fold's timer, as the object's core keeps it.
#[derive(Debug, Default)]
pub struct FoldSchedule {
    /// When the pending timer fires, if one is pending.
    timer_at: Option<u64>,
    last_publish_at: u64,
    /// Since when the state has been behind without a step (the last step, or the first
    /// publish after it caught up).
    waiting_since: Option<u64>,
}

impl FoldSchedule {
    /// When a step is due, for a state `lag` events behind.
    fn due(&self, lag: u64, now_ms: u64) -> Option<u64> {
        if lag == 0 {
            return None;
        }
        if lag >= FORCE_LAG {
            return Some(now_ms);
        }
        let waiting_since = self.waiting_since.unwrap_or(now_ms);
        // A whole step behind, waiting longer only lets the lag grow.
        let max_wait = if lag >= FOLD_STEP_EVENTS as u64 { CATCH_UP_MS } else { MAX_WAIT_MS };
        Some((self.last_publish_at + QUIET_MS).min(waiting_since + max_wait).max(now_ms))
    }

    /// A timer to set (the wait in ms) for a step due at `due`, unless one fires by then.
    fn arm(&mut self, due: Option<u64>, now_ms: u64) -> Option<u64> {
        let due = due?;
        if self.timer_at.is_some_and(|at| at <= due) {
            return None;
        }
        self.timer_at = Some(due);
        Some(due - now_ms)
    }

    /// A publish left the state `lag` events behind: the timer to set, if any.
    pub fn published(&mut self, lag: u64, now_ms: u64) -> Option<u64> {
        self.last_publish_at = now_ms;
        if lag > 0 {
            self.waiting_since.get_or_insert(now_ms);
        }
        let due = self.due(lag, now_ms);
        self.arm(due, now_ms)
    }

    /// The timer fired, the state `lag` events behind: `Ok` to fold now, or the timer to set
    /// instead (publishes since pushed the step back), if any.
    /// (A timer set before another may fire after it: it then finds nothing due, or folds
    /// once more; each firing sets at most one timer, so they never pile up.)
    pub fn fired(&mut self, lag: u64, now_ms: u64) -> Result<(), Option<u64>> {
        self.timer_at = None;
        match self.due(lag, now_ms) {
            Some(due) if due <= now_ms => Ok(()),
            due => Err(self.arm(due, now_ms)),
        }
    }

    /// A step ran and left the state `lag` events behind: the timer to set, if any.
    pub fn folded(&mut self, lag: u64, now_ms: u64) -> Option<u64> {
        self.waiting_since = (lag > 0).then_some(now_ms);
        let due = self.due(lag, now_ms);
        self.arm(due, now_ms)
    }

    /// Whether a timer is pending (a state read need not ask for one).
    pub fn pending(&self) -> bool {
        self.timer_at.is_some()
    }
}
