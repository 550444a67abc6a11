//! The reference store.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};

use super::entity::{EntityKey, EntityStore, EntityTotals, EntityWrites};
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
    /// Each entity's state text and when its last event was stored.
    entities: RefCell<BTreeMap<EntityKey, (String, u64)>>,
    /// Kept from each append's deltas, as storage keeps them (a test compares them with
    /// [`MemoryStore::recount_entities`]).
    entity_totals: Cell<EntityTotals>,
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
        EntityTotals { entities: entities.len() as u64, bytes: entities.values().map(|(t, _)| t.len() as u64).sum() }
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

    fn insert_all(&self, new_events: &[NewEvent<'_>], entities: &EntityWrites) -> Result<(), StoreError> {
        let mut events = self.events.borrow_mut();
        // All or nothing, as one transaction: a failure midway restores what was there, and
        // the entities are written only once every event is.
        let before = events.clone();
        let outcome = insert_each(&mut events, new_events, self.fail_insert_after.get());
        if outcome.is_err() {
            *events = before;
            return outcome;
        }
        let mut states = self.entities.borrow_mut();
        for write in &entities.writes {
            match &write.state {
                Some(text) => states.insert(write.key.clone(), (text.clone(), write.last_at)),
                None => states.remove(&write.key),
            };
        }
        let totals = self.entity_totals.get();
        self.entity_totals.set(EntityTotals {
            entities: totals.entities.saturating_add_signed(entities.count_delta),
            bytes: totals.bytes.saturating_add_signed(entities.bytes_delta),
        });
        Ok(())
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
    fn entity_states(&self, keys: &[&EntityKey]) -> Result<Vec<(EntityKey, String)>, StoreError> {
        let states = self.entities.borrow();
        Ok(keys.iter().filter_map(|k| states.get(*k).map(|(t, _)| ((*k).clone(), t.clone()))).collect())
    }

    fn entity_range(
        &self,
        hotel_id: &str,
        module_name: Option<&str>,
        after: (&str, &str),
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        self.reads.set(self.reads.get() + 1);
        let rows: Vec<String> = self
            .entities
            .borrow()
            .iter()
            .filter(|(k, _)| k.hotel_id == hotel_id && module_name.is_none_or(|m| k.module_name == m))
            .filter(|(k, _)| (k.module_name.as_str(), k.primary_key.as_str()) > after)
            .take(limit)
            .map(|(_, (t, _))| t.clone())
            .collect();
        self.rows_read.set(self.rows_read.get() + rows.len());
        Ok(rows)
    }

    fn delete_entities_before(&self, cutoff: u64, limit: usize) -> Result<usize, StoreError> {
        let mut states = self.entities.borrow_mut();
        let mut doomed: Vec<(u64, EntityKey)> =
            states.iter().filter(|(_, (_, at))| *at < cutoff).map(|(k, (_, at))| (*at, k.clone())).collect();
        doomed.sort();
        doomed.truncate(limit);
        let mut totals = self.entity_totals.get();
        for (_, key) in &doomed {
            if let Some((text, _)) = states.remove(key) {
                totals.entities -= 1;
                totals.bytes -= text.len() as u64;
            }
        }
        self.entity_totals.set(totals);
        Ok(doomed.len())
    }

    fn oldest_entity_at(&self) -> Result<Option<u64>, StoreError> {
        Ok(self.entities.borrow().values().map(|(_, at)| *at).min())
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
