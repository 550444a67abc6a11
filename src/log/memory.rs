//! The reference store.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};

use super::entity::{last_at, merge_patch, EntityStore, EntityTotals, EntityWrites, Swept, MAX_ENTITY_STATE_BYTES};
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
    dropped_through: Cell<Option<(Offset, u64)>>,
    /// Each entity's stored state, by storage key.
    entities: RefCell<BTreeMap<String, String>>,
    /// Kept by each write, as storage's triggers keep them (a test compares them with
    /// [`MemoryStore::recount_entities`]).
    entity_totals: Cell<EntityTotals>,
    state_through: Cell<Offset>,
    /// Makes fold steps fail (nothing of them written), to prove a failed step loses nothing.
    pub fail_entity_writes: Cell<bool>,
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

    /// The totals counted from the entities themselves.
    pub fn recount_entities(&self) -> EntityTotals {
        let entities = self.entities.borrow();
        EntityTotals { entities: entities.len() as u64, bytes: entities.values().map(|t| t.len() as u64).sum() }
    }

    /// A fold step's writes, as storage makes them: removals, then each patch merged into
    /// its entity (`json_patch`), or stored as it is for a new one; a state at
    /// [`MAX_ENTITY_STATE_BYTES`] takes no more. The totals move with every row.
    fn apply_entity_writes(&self, writes: &EntityWrites) {
        let mut states = self.entities.borrow_mut();
        let mut totals = self.entity_totals.get();
        for key in &writes.removals {
            if let Some(old) = states.remove(key) {
                totals.entities -= 1;
                totals.bytes -= old.len() as u64;
            }
        }
        for (key, patch) in &writes.patches {
            match states.get_mut(key) {
                None => {
                    totals.entities += 1;
                    totals.bytes += patch.len() as u64;
                    states.insert(key.clone(), patch.clone());
                }
                Some(stored) if stored.len() < MAX_ENTITY_STATE_BYTES => {
                    let mut value: serde_json::Value = serde_json::from_str(stored).unwrap_or_default();
                    merge_patch(&mut value, &serde_json::from_str(patch).unwrap_or_default());
                    let merged = value.to_string();
                    totals.bytes = totals.bytes + merged.len() as u64 - stored.len() as u64;
                    *stored = merged;
                }
                Some(_) => {}
            }
        }
        self.entity_totals.set(totals);
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

    fn delete_stored_before(&self, cutoff: u64, through: Offset, limit: usize) -> Result<usize, StoreError> {
        self.record_head();
        let mut events = self.events.borrow_mut();
        let doomed: Vec<Offset> = events
            .values()
            .filter(|e| e.stored_at < cutoff && e.offset <= through)
            .take(limit)
            .map(|e| e.offset)
            .collect();
        for offset in &doomed {
            if let Some(e) = events.remove(offset) {
                self.dropped_through.set(Some((e.offset, e.stored_at)));
            }
        }
        Ok(doomed.len())
    }

    fn first_stored_at_or_after(&self, at: u64) -> Result<Option<Offset>, StoreError> {
        Ok(self.events.borrow().values().find(|e| e.stored_at >= at).map(|e| e.offset))
    }

    fn dropped_through(&self) -> Result<Option<(Offset, u64)>, StoreError> {
        Ok(self.dropped_through.get())
    }
}

impl EntityStore for MemoryStore {
    fn state_through(&self) -> Result<Offset, StoreError> {
        Ok(self.state_through.get())
    }

    fn write_entities(&self, writes: &EntityWrites, through: Offset) -> Result<(), StoreError> {
        if self.fail_entity_writes.get() {
            return Err(StoreError("injected failure of a fold step".into()));
        }
        self.apply_entity_writes(writes);
        self.state_through.set(through);
        Ok(())
    }

    fn entity_range(&self, after: &str, before: &str, limit: usize) -> Result<Vec<(String, String)>, StoreError> {
        use std::ops::Bound::Excluded;
        self.reads.set(self.reads.get() + 1);
        if after >= before {
            return Ok(Vec::new());
        }
        let rows: Vec<(String, String)> = self
            .entities
            .borrow()
            .range::<str, _>((Excluded(after), Excluded(before)))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        self.rows_read.set(self.rows_read.get() + rows.len());
        Ok(rows)
    }

    fn sweep_entities(&self, after: &str, limit: usize, cutoff: u64) -> Result<Swept, StoreError> {
        use std::ops::Bound::{Excluded, Unbounded};
        let mut states = self.entities.borrow_mut();
        let looked: Vec<(String, bool)> = states
            .range::<str, _>((Excluded(after), Unbounded))
            .take(limit)
            .map(|(k, v)| (k.clone(), last_at(v).is_some_and(|at| at < cutoff)))
            .collect();
        let mut totals = self.entity_totals.get();
        let mut removed = 0;
        for (key, expired) in &looked {
            if *expired {
                if let Some(old) = states.remove(key) {
                    totals.entities -= 1;
                    totals.bytes -= old.len() as u64;
                    removed += 1;
                }
            }
        }
        self.entity_totals.set(totals);
        let last = if looked.len() < limit { None } else { looked.last().map(|(k, _)| k.clone()) };
        Ok(Swept { removed, last })
    }

    fn entity_totals(&self) -> Result<EntityTotals, StoreError> {
        Ok(self.entity_totals.get())
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
