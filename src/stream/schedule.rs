//! When a chain object fans out. A fan-out serves every subscription behind the head in a
//! turn of its own; this decides when that turn comes and where in the list of sockets it
//! starts, so that publishes landing meanwhile join it and no socket is always served last.

/// The least time between two fan-outs of a chain under backlog (ms), by attached
/// subscriptions: a fan-out costs one message per subscription whatever it carries, so a
/// busy chain with many subscribers waits a little to send several publishes' events in
/// one message each (100 subscriptions: 20 ms).
pub fn backlog_pace_ms(subscriptions: usize) -> u64 {
    (subscriptions as u64 / 5).min(MAX_FAN_OUT_PACE_MS)
}

/// The most [`backlog_pace_ms`] adds to an event's way to its subscribers.
pub const MAX_FAN_OUT_PACE_MS: u64 = 25;

/// A fan-out that runs this late (ms) found the object busy. More than a publish's own turn
/// takes (the runtime's clock stands still within a turn and moves between turns).
pub const LATE_FAN_OUT_MS: u64 = 5;

/// A publish that finds the object's last fan-out at least this long ago (ms), and at
/// least [`backlog_pace_ms`] of its subscriptions ago, fans out in its own turn, without a
/// timer: the object is quiet, nothing else waits to join it, and the frames leave with
/// the publish's answer (both held until the rows are durable). Publishes closer together
/// take the timer, so that they batch and lateness is measured: a fan-out in the
/// publish's turn is never late (the runtime's clock stands still within a turn), so it
/// could never show backlog.
pub const QUIET_FAN_OUT_MS: u64 = 5;

/// When a chain object fans out, and where each fan-out starts among its sockets. A
/// fan-out runs in a turn of its own, scheduled by the publish that asked for it, and
/// publishes that land before it runs join it. Events are batched only under backlog: an
/// idle object fans out at once, and only when the last fan-out ran late (other work of the
/// object ran between its request and its turn, so the object is busy) does the next wait
/// for [`backlog_pace_ms`], sending several publishes' events as one message per
/// subscriber exactly when messages are what saturates it. Frames still come from storage
/// at each cursor, so timing cannot change what is delivered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FanOutSchedule {
    /// When the fan-out scheduled and not yet run is due (ms).
    due_at: Option<u64>,
    /// When the last fan-out ran (ms), and whether it ran late.
    last_at: u64,
    backlog: bool,
    /// How many sockets the last fan-out found.
    last_sockets: usize,
    /// Fan-outs so far: where the next one starts among the sockets.
    turns: usize,
}

/// When a requested fan-out runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FanOutStart {
    /// In the requesting turn: the object is quiet (see [`QUIET_FAN_OUT_MS`]).
    ThisTurn,
    /// In a turn of its own, this many ms from now (0: after the work already waiting).
    After(u64),
}

impl FanOutSchedule {
    /// A fan-out is wanted: after a publish, or (`resume`) after the last one ran out of
    /// budget, when the next runs unpaced, though after everything already waiting. Returns
    /// when it runs, or `None` when one is already scheduled or nobody is attached (a
    /// subscription attaching later reads from storage at its cursor, so skipping misses
    /// nothing). `any_socket` is asked only when the last fan-out found none (listing
    /// sockets builds an array of every one).
    pub fn request(&mut self, resume: bool, now_ms: u64, any_socket: impl FnOnce() -> bool) -> Option<FanOutStart> {
        if self.due_at.is_some() || (self.last_sockets == 0 && !any_socket()) {
            return None;
        }
        let paced = !resume && self.backlog;
        let wait = if paced { (self.last_at + backlog_pace_ms(self.last_sockets)).saturating_sub(now_ms) } else { 0 };
        self.due_at = Some(now_ms + wait);
        if resume || paced {
            return Some(FanOutStart::After(wait));
        }
        let quiet = QUIET_FAN_OUT_MS.max(backlog_pace_ms(self.last_sockets));
        Some(if now_ms.saturating_sub(self.last_at) >= quiet { FanOutStart::ThisTurn } else { FanOutStart::After(0) })
    }

    /// Whether the last fan-out found subscriptions attached: only then are a publish's
    /// events worth keeping in memory for the next one ([`RecentEvents`]).
    pub fn found_subscribers(&self) -> bool {
        self.last_sockets > 0
    }

    /// The scheduled fan-out runs now over `sockets` sockets: the index of the one to serve
    /// first, a different one each time, so that none always waits for the others' scans.
    /// A fan-out that runs [`LATE_FAN_OUT_MS`] or more after it was due waited for other
    /// work: the next one is paced.
    pub fn run(&mut self, now_ms: u64, sockets: usize) -> Option<usize> {
        let due_at = self.due_at.take().unwrap_or(now_ms);
        self.backlog = now_ms.saturating_sub(due_at) >= LATE_FAN_OUT_MS;
        self.last_at = now_ms;
        self.last_sockets = sockets;
        if sockets == 0 {
            return None;
        }
        let first = self.turns % sockets;
        self.turns = self.turns.wrapping_add(1);
        Some(first)
    }
}
