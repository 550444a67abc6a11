//! Reading the log in bounded steps: how much one read takes, what one turn of a chain
//! object may read in all, and where a read that names an offset starts when retention has
//! dropped part of what it asked for.

use serde::{Deserialize, Serialize};

use super::{LogBounds, Offset, Page};

/// Events read from storage per page, and the bytes of bodies a page may hold (at least
/// one event is always read, whatever its size).
pub const PAGE: usize = 200;
pub const PAGE_BYTES: usize = 1 << 20;

/// What one turn of a chain object may read from storage for everything it serves in that
/// turn: pages, and bytes of event bodies. A reader whose scan the budget cut short (a
/// filter that matches little, over a long log) continues in a later turn, so publishes and
/// other readers are served in between, and the memory a turn holds is bounded by the
/// budget, not by the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TurnBudget {
    pub pages: usize,
    pub bytes: usize,
}

impl TurnBudget {
    pub const PER_TURN: TurnBudget = TurnBudget { pages: 32, bytes: 2 << 20 };

    pub fn exhausted(&self) -> bool {
        self.pages == 0 || self.bytes == 0
    }

    /// Counts a page read from storage against the budget.
    pub fn spend(&mut self, page: &Page) {
        self.pages = self.pages.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(page.events.iter().map(|e| e.body.len()).sum());
    }
}

/// Retention dropped part of what was asked for: the first offset asked for, and where the
/// read resumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Gap {
    pub requested: Offset,
    pub resumed_at: Offset,
}

/// An offset more than one past the head: nothing will ever be stored there next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfRange {
    pub requested: Offset,
    pub head: Offset,
}

/// Where a read from `requested` (inclusive) starts: there, or at the oldest retained event
/// with the gap to report. Reading from one past the head is waiting for the next event.
pub fn start_at(requested: Offset, bounds: &LogBounds) -> Result<(Offset, Option<Gap>), OutOfRange> {
    let head = bounds.head_offset;
    if requested > head + 1 {
        return Err(OutOfRange { requested, head });
    }
    let first = requested.max(1);
    let oldest = bounds.oldest_offset.unwrap_or(head + 1);
    if first < oldest {
        Ok((oldest, Some(Gap { requested, resumed_at: oldest })))
    } else {
        Ok((first, None))
    }
}

/// A time a read starts from (`fromTime`, `since`): an RFC 3339 date-time, as ms since the
/// epoch (times before 1970 are refused). The error names `field` and says the form.
pub fn parse_time(field: &str, text: &str) -> Result<u64, String> {
    chrono::DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .and_then(|t| u64::try_from(t.timestamp_millis()).ok())
        .ok_or_else(|| {
            format!("{field} must be an RFC 3339 date-time after 1970, like 2026-12-07T10:00:00Z; got {text:?}")
        })
}
