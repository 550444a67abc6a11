//! The reference store.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};

use super::{LogStore, NewEvent, Offset, StoreError, StoredEvent};

/// An in-memory store with the same semantics as the `SQLite` one: the reference the
/// native tests run against. `fail_insert_after` makes an insert fail once that many rows
/// were written, to prove that a failed append leaves nothing behind; `fail_head_reads`
/// makes that many head reads fail; `reads` counts `read_from` calls and `rows_read` the
/// rows every read returned, to prove that work per turn and per request is bounded.
#[derive(Debug, Default)]
pub struct MemoryStore {
    head: RefCell<Offset>,
    events: RefCell<BTreeMap<Offset, StoredEvent>>,
    pub fail_insert_after: Cell<Option<usize>>,
    pub fail_head_reads: Cell<usize>,
    pub reads: Cell<usize>,
    pub rows_read: Cell<usize>,
}

impl MemoryStore {
    /// Deletes the events in `range` (as retention would, or worse).
    pub fn delete(&self, range: std::ops::RangeInclusive<Offset>) {
        self.record_head();
        self.events.borrow_mut().retain(|o, _| !range.contains(o));
    }

    fn record_head(&self) {
        let stored = self.events.borrow().last_key_value().map_or(0, |(o, _)| *o);
        let mut head = self.head.borrow_mut();
        *head = (*head).max(stored);
    }
}

impl LogStore for MemoryStore {
    fn head(&self) -> Result<Offset, StoreError> {
        if self.fail_head_reads.get() > 0 {
            self.fail_head_reads.set(self.fail_head_reads.get() - 1);
            return Err(StoreError("injected failure of a head read".into()));
        }
        self.rows_read.set(self.rows_read.get() + 1);
        let stored = self.events.borrow().last_key_value().map_or(0, |(o, _)| *o);
        Ok((*self.head.borrow()).max(stored))
    }

    fn offsets_of(&self, unique_event_ids: &[&str]) -> Result<HashMap<String, Offset>, StoreError> {
        Ok(self
            .events
            .borrow()
            .values()
            .filter(|e| unique_event_ids.contains(&e.unique_event_id.as_str()))
            .map(|e| (e.unique_event_id.clone(), e.offset))
            .collect())
    }

    fn insert_all(&self, new_events: &[NewEvent<'_>]) -> Result<(), StoreError> {
        let mut events = self.events.borrow_mut();
        // All or nothing, as one SQL statement: a failure midway restores what was there.
        let before = events.clone();
        let outcome = insert_each(&mut events, new_events, self.fail_insert_after.get());
        if outcome.is_err() {
            *events = before;
        }
        outcome
    }

    fn oldest(&self) -> Result<Option<(Offset, u64)>, StoreError> {
        self.rows_read.set(self.rows_read.get() + 1);
        Ok(self.events.borrow().values().next().map(|e| (e.offset, e.stored_at)))
    }

    fn read_from(&self, from: Offset, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        self.reads.set(self.reads.get() + 1);
        let rows: Vec<StoredEvent> = self.events.borrow().range(from..).take(limit).map(|(_, e)| e.clone()).collect();
        self.rows_read.set(self.rows_read.get() + rows.len());
        Ok(rows)
    }

    fn delete_stored_before(&self, cutoff: u64, limit: usize) -> Result<usize, StoreError> {
        self.record_head();
        let mut events = self.events.borrow_mut();
        let doomed: Vec<Offset> =
            events.values().filter(|e| e.stored_at < cutoff).take(limit).map(|e| e.offset).collect();
        for offset in &doomed {
            events.remove(offset);
        }
        Ok(doomed.len())
    }
}

fn insert_each(
    events: &mut BTreeMap<Offset, StoredEvent>,
    new_events: &[NewEvent<'_>],
    fail_after: Option<usize>,
) -> Result<(), StoreError> {
    for (i, event) in new_events.iter().enumerate() {
        if fail_after == Some(i) {
            return Err(StoreError(format!("injected failure after {i} rows")));
        }
        if events.contains_key(&event.offset)
            || events.values().any(|e| e.unique_event_id == event.event.unique_event_id)
        {
            return Err(StoreError(format!(
                "event {} at offset {} clashes",
                event.event.unique_event_id, event.offset
            )));
        }
        events.insert(event.offset, event.to_stored());
    }
    Ok(())
}
