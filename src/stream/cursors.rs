//! Saved cursors: where a stream without an offset resumes (after the last offset its app
//! key read on its chain with the same filter, within 24 h). The gateway acknowledges
//! every quarter window, and subscriptions alike acknowledge together: a hundred vendors of
//! one app key streaming one chain acknowledge the same batch within a few milliseconds,
//! each in an event of its own. Saving each was a storage write and a commit per
//! acknowledgement, a hundred commits of the same row every few publishes, landing in the
//! middle of a fan-out. So the chain object keeps the cursors acknowledgements moved here
//! and writes them together, once per [`CURSOR_FLUSH_MS`], one row per cursor key, in one
//! turn (one commit). A restart within that time loses the move: a vendor that then resumes
//! without an offset is sent again what it was sent in that time (never less). Reads see the
//! pending move.

use std::collections::HashMap;

use crate::log::Offset;

/// How long an acknowledged cursor move may wait for its write: at most one cursor commit
/// per chain per this time, whatever the number of subscriptions.
pub const CURSOR_FLUSH_MS: u64 = 1_000;

/// A saved cursor: the last offset delivered, and when (ms).
pub type SavedCursor = (Offset, u64);

/// Cursor moves acknowledged and not yet written. Holds one entry per cursor key, so no
/// more than the object has attached subscriptions between two flushes.
#[derive(Debug, Default)]
pub struct PendingCursors {
    moved: HashMap<String, SavedCursor>,
}

impl PendingCursors {
    /// The cursor `key` was acknowledged through `through` at `now_ms`.
    pub fn record(&mut self, key: &str, through: Offset, now_ms: u64) {
        match self.moved.get_mut(key) {
            Some(saved) => *saved = (saved.0.max(through), now_ms),
            None => {
                self.moved.insert(key.to_string(), (through, now_ms));
            }
        }
    }

    /// The cursor `key` as a new subscription resumes from it: the pending move, if it is
    /// further than what storage holds (`stored`).
    pub fn newest(&self, key: &str, stored: Option<SavedCursor>) -> Option<SavedCursor> {
        match (self.moved.get(key).copied(), stored) {
            (Some(pending), Some(stored)) if stored.0 > pending.0 => Some(stored),
            (Some(pending), _) => Some(pending),
            (None, stored) => stored,
        }
    }

    /// The moves to write now, in no particular order.
    pub fn take(&mut self) -> Vec<(String, SavedCursor)> {
        self.moved.drain().collect()
    }
}
