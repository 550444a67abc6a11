//! The offset log of one chain: offsets start at 1, are strictly increasing and gapless,
//! and are assigned in the same synchronous step as the insert. A `uniqueEventId` seen
//! before (while retained) returns its original offset. The rules live here, over a small
//! storage trait; the Durable Object implements the trait with its `SQLite` storage.

use std::cell::Cell;
use std::collections::HashMap;

pub mod entity;
mod event;
pub mod event_id;
mod filter;
mod memory;
pub mod read;

pub use entity::{EntityStore, EntityWrites, StateRules};
pub use event::{is_decimal, parse_offset, write_event_header, NewEvent, Offset, StoredEvent, ValidEvent, MAX_OFFSET};
pub use filter::EventFilter;
pub use memory::MemoryStore;
pub use read::{Gap, TurnBudget};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "storage error: {}", self.0)
    }
}

/// What the log needs of its storage. Every method is synchronous on purpose: in a
/// Durable Object, SQL is synchronous, so a sequence of calls with no `await` between them
/// runs as one atomic, uninterleaved step.
pub trait LogStore {
    /// The highest offset ever assigned (0 for a new log): the highest stored offset, or
    /// the one recorded before retention deleted it.
    fn head(&self) -> Result<Offset, StoreError>;
    /// The offsets of those of `unique_event_ids` that are stored.
    fn offsets_of(&self, unique_event_ids: &[&str]) -> Result<HashMap<String, Offset>, StoreError>;
    /// Stores events whose ids are known to be new: all of them, or (when it fails) none.
    /// An append writes nothing else (the head is the newest row's offset), so it is
    /// atomic when this is.
    fn insert_all(&self, events: &[NewEvent<'_>]) -> Result<(), StoreError>;
    /// The oldest retained event's offset and store time.
    fn oldest(&self) -> Result<Option<(Offset, u64)>, StoreError>;
    /// Up to `limit` events with `offset >= from`, in offset order.
    fn read_from(&self, from: Offset, limit: usize) -> Result<Vec<StoredEvent>, StoreError>;
    /// Deletes up to `limit` of the oldest events stored before `cutoff` (ms) and at or below
    /// offset `through`, first recording the head, so that deleting the newest event never
    /// lowers it, and the newest deleted event ([`LogStore::dropped_through`]).
    fn delete_stored_before(&self, cutoff: u64, through: Offset, limit: usize) -> Result<usize, StoreError>;
    /// The first retained event stored at or after `at` (ms): where a replay from a time
    /// starts. An index lookup, whatever the log's length.
    fn first_stored_at_or_after(&self, at: u64) -> Result<Option<Offset>, StoreError>;
    /// The newest event retention deleted: its offset and store time.
    fn dropped_through(&self) -> Result<Option<(Offset, u64)>, StoreError>;
}

/// Where a log starts and ends: what a subscription's start is resolved against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogBounds {
    pub head_offset: Offset,
    /// `None` when nothing is retained.
    pub oldest_offset: Option<Offset>,
}

impl LogBounds {
    /// Events retained: offsets are gapless and retention deletes the oldest first, so they
    /// are the offsets from the oldest to the head. Counted without reading a row (a count
    /// of the table scans it: millions of rows at a week's retention).
    pub fn retained_events(&self) -> u64 {
        self.oldest_offset.map_or(0, |oldest| (self.head_offset + 1).saturating_sub(oldest))
    }
}

/// A bounded slice of the log, for replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub events: Vec<StoredEvent>,
    /// Where the next page starts.
    pub next: Offset,
    /// Nothing was stored beyond this page when it was read.
    pub at_end: bool,
}

/// What one fold step did: events folded, the state's offset now, and the events after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FoldStep {
    pub folded: usize,
    pub through: Offset,
    pub lag: u64,
}

/// How much retention work one alarm does before yielding to other events of the object.
pub const RETENTION_BATCH: usize = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionOutcome {
    pub deleted: usize,
    /// When the next alarm should run (ms), if any event remains to expire.
    pub next_alarm: Option<u64>,
}

/// How late an expired event may be deleted: a tenth of the retention, at most a minute.
pub fn retention_slack(retention_ms: u64) -> u64 {
    (retention_ms / 10).min(60_000)
}

pub struct OffsetLog<S> {
    store: S,
    /// The head as last read or written by this instance. Only `append` moves the head and
    /// it runs to completion without yielding, so the copy cannot go stale; it is dropped
    /// when an append fails (storage then says what was kept) and rebuilt on restart.
    head: Cell<Option<Offset>>,
}

impl<S: LogStore> OffsetLog<S> {
    pub fn new(store: S) -> Self {
        OffsetLog { store, head: Cell::new(None) }
    }

    /// The highest offset ever assigned (0 for a new log).
    pub fn head(&self) -> Result<Offset, StoreError> {
        if let Some(head) = self.head.get() {
            return Ok(head);
        }
        let head = self.store.head()?;
        self.head.set(Some(head));
        Ok(head)
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// Stores a validated batch and returns one offset per event, in batch order. Events
    /// whose `uniqueEventId` is already in the log (or earlier in this batch) get the
    /// original offset and are not stored again.
    ///
    /// All or nothing: the inserts and the head update run in one storage transaction, so a
    /// failure midway leaves no event of the batch stored (nor delivered: delivery reads the
    /// store), and the publisher, told nothing was stored, can resend the batch.
    pub fn append(&self, batch: &[ValidEvent], now_ms: u64) -> Result<Vec<Offset>, StoreError> {
        let head = self.head()?;
        let outcome = self.append_to(head, batch, now_ms);
        // On failure, storage is asked again: it knows what was stored.
        self.head.set(outcome.as_ref().ok().map(|(head, _)| *head));
        outcome.map(|(_, offsets)| offsets)
    }

    fn append_to(
        &self,
        mut head: Offset,
        batch: &[ValidEvent],
        now_ms: u64,
    ) -> Result<(Offset, Vec<Offset>), StoreError> {
        // Ids already in the log, found in a few queries rather than one per event. An id
        // minted for this request cannot be among them.
        let ids: Vec<&str> = batch.iter().filter(|e| !e.minted).map(|e| e.unique_event_id.as_str()).collect();
        let stored = if ids.is_empty() { HashMap::new() } else { self.store.offsets_of(&ids)? };
        let mut known: HashMap<&str, Offset> = stored.iter().map(|(id, &offset)| (id.as_str(), offset)).collect();
        let mut offsets = Vec::with_capacity(batch.len());
        let mut new_events = Vec::with_capacity(batch.len());
        for event in batch {
            if let Some(&offset) = known.get(event.unique_event_id.as_str()) {
                offsets.push(offset);
                continue;
            }
            head += 1;
            // A minted id is new and unique to this request: nothing can repeat it.
            if !event.minted {
                known.insert(&event.unique_event_id, head);
            }
            offsets.push(head);
            new_events.push(NewEvent { offset: head, stored_at: now_ms, event });
        }
        if !new_events.is_empty() {
            self.store.insert_all(&new_events)?;
        }
        Ok((head, offsets))
    }

    /// One fold step (`entity`): the events after the state's offset, at most `max_events`
    /// and about `max_bytes` of them, folded into their entities in one transaction that
    /// moves the state's offset past them. Events retention already deleted (the state was
    /// off) are not there to fold: the state starts at the oldest retained event.
    pub fn fold_state(&self, rules: &StateRules, max_events: usize, max_bytes: usize) -> Result<FoldStep, StoreError>
    where
        S: EntityStore,
    {
        let through = self.store.state_through()?;
        let head = self.head()?;
        if through >= head {
            return Ok(FoldStep { folded: 0, through, lag: 0 });
        }
        let page = self.read_page(through + 1, max_events, max_bytes)?;
        let next = match page.events.last() {
            Some(last) if !page.at_end => last.offset,
            _ => head,
        };
        let writes = entity::entity_writes(&page.events, rules);
        self.store.write_entities(&writes, next)?;
        Ok(FoldStep { folded: page.events.len(), through: next, lag: head - next })
    }

    /// Head and oldest offset: two index lookups, whatever the log's length.
    pub fn bounds(&self) -> Result<LogBounds, StoreError> {
        Ok(LogBounds { head_offset: self.head()?, oldest_offset: self.store.oldest()?.map(|(o, _)| o) })
    }

    /// Reads at most `max_count` events and about `max_bytes` of bodies from `from` on;
    /// always at least one event when one exists, so a large event cannot stall a replay.
    pub fn read_page(&self, from: Offset, max_count: usize, max_bytes: usize) -> Result<Page, StoreError> {
        let mut events = self.store.read_from(from.max(1), max_count.max(1))?;
        let fetched = events.len();
        let mut bytes = 0;
        let mut keep = 0;
        for event in &events {
            bytes += event.body.len();
            if keep > 0 && bytes > max_bytes {
                break;
            }
            keep += 1;
        }
        let at_end = fetched < max_count.max(1) && keep == fetched;
        events.truncate(keep);
        let next = events.last().map_or(from.max(1), |e| e.offset + 1);
        Ok(Page { events, next, at_end })
    }

    /// Deletes events stored more than `retention_ms` ago, at most [`RETENTION_BATCH`] per
    /// call, and says when to run again.
    pub fn apply_retention(&self, now_ms: u64, retention_ms: u64) -> Result<RetentionOutcome, StoreError> {
        self.apply_retention_through(now_ms, retention_ms, MAX_OFFSET)
    }

    /// [`OffsetLog::apply_retention`], deleting no event above `through` (the state's offset:
    /// an event is not dropped before it is folded).
    pub fn apply_retention_through(
        &self,
        now_ms: u64,
        retention_ms: u64,
        through: Offset,
    ) -> Result<RetentionOutcome, StoreError> {
        let cutoff = now_ms.saturating_sub(retention_ms);
        let deleted = self.store.delete_stored_before(cutoff, through, RETENTION_BATCH)?;
        let next_alarm = if deleted == RETENTION_BATCH {
            Some(now_ms) // more to do: continue right away, in a fresh event
        } else {
            self.next_expiry(retention_ms)?
        };
        Ok(RetentionOutcome { deleted, next_alarm })
    }

    /// One step of the state retention sweep: looks at up to [`RETENTION_BATCH`] entities
    /// after `after` (in key order) and drops those whose last event was stored more than
    /// `state_ms` ago. The sweep walks the keys rather than an index by time, so that a publish
    /// maintains no second index per entity.
    pub fn sweep_state(&self, after: &str, now_ms: u64, state_ms: u64) -> Result<entity::Swept, StoreError>
    where
        S: EntityStore,
    {
        self.store.sweep_entities(after, RETENTION_BATCH, now_ms.saturating_sub(state_ms))
    }

    /// Where a replay from the time `at` (ms) starts: the first retained event stored at or
    /// after it, else the next event. When retention deleted an event stored at or after
    /// `at`, the read starts with a gap whose `requested` is the newest deleted offset.
    pub fn start_at_time(&self, at: u64) -> Result<(Offset, Option<Gap>), StoreError> {
        let start = match self.store.first_stored_at_or_after(at)? {
            Some(offset) => offset,
            None => self.head()? + 1,
        };
        let gap = match self.store.dropped_through()? {
            Some((dropped, stored_at)) if stored_at >= at => Some(Gap { requested: dropped, resumed_at: start }),
            _ => None,
        };
        Ok((start, gap))
    }

    /// When retention should next run (ms), if any event is retained: once the oldest event
    /// has expired, plus [`retention_slack`]. Without the slack a chain publishing steadily
    /// would run its alarm for every few events that expire, competing with its publishes.
    pub fn next_expiry(&self, retention_ms: u64) -> Result<Option<u64>, StoreError> {
        Ok(self.store.oldest()?.map(|(_, stored_at)| stored_at + retention_ms + retention_slack(retention_ms)))
    }
}

/// A store shared by several owners (a test that restarts an object over the same storage).
impl<T: LogStore + ?Sized> LogStore for std::rc::Rc<T> {
    fn head(&self) -> Result<Offset, StoreError> {
        (**self).head()
    }

    fn offsets_of(&self, unique_event_ids: &[&str]) -> Result<HashMap<String, Offset>, StoreError> {
        (**self).offsets_of(unique_event_ids)
    }

    fn insert_all(&self, events: &[NewEvent<'_>]) -> Result<(), StoreError> {
        (**self).insert_all(events)
    }

    fn oldest(&self) -> Result<Option<(Offset, u64)>, StoreError> {
        (**self).oldest()
    }

    fn read_from(&self, from: Offset, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        (**self).read_from(from, limit)
    }

    fn delete_stored_before(&self, cutoff: u64, through: Offset, limit: usize) -> Result<usize, StoreError> {
        (**self).delete_stored_before(cutoff, through, limit)
    }

    fn first_stored_at_or_after(&self, at: u64) -> Result<Option<Offset>, StoreError> {
        (**self).first_stored_at_or_after(at)
    }

    fn dropped_through(&self) -> Result<Option<(Offset, u64)>, StoreError> {
        (**self).dropped_through()
    }
}

impl<T: EntityStore + ?Sized> EntityStore for std::rc::Rc<T> {
    fn state_through(&self) -> Result<Offset, StoreError> {
        (**self).state_through()
    }

    fn write_entities(&self, writes: &EntityWrites, through: Offset) -> Result<(), StoreError> {
        (**self).write_entities(writes, through)
    }

    fn entity_range(&self, after: &str, before: &str, limit: usize) -> Result<Vec<(String, String)>, StoreError> {
        (**self).entity_range(after, before, limit)
    }

    fn sweep_entities(&self, after: &str, limit: usize, cutoff: u64) -> Result<entity::Swept, StoreError> {
        (**self).sweep_entities(after, limit, cutoff)
    }

    fn entity_totals(&self) -> Result<entity::EntityTotals, StoreError> {
        (**self).entity_totals()
    }
}
