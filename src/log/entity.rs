//! The current state of a chain's entities, folded from its events: per entity
//! `(hotelId, moduleName, primaryKey)`, each event's detail entries set an element
//! (`elements[elementName] = newValue`) or, with no `newValue`, remove it; the entity keeps
//! the offset, name and timestamp of its last event. The fold is written in the same storage
//! transaction as the events it folds, so the state as of the head is always whole; it is kept
//! apart from the events' retention (an entity lives `stateRetentionSeconds` after its last
//! event, or until a terminal event the configuration names).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::{NewEvent, Offset, StoreError};

/// Elements one entity holds at most, and the bytes of their names and values: an element
/// that would take an entity past either is not set (its other elements go on changing). A
/// PMS entity has tens of short elements; the bounds keep one page of the state API, and one
/// append's fold, small whatever a publisher sends.
pub const MAX_ENTITY_ELEMENTS: usize = 1_000;
pub const MAX_ENTITY_ELEMENT_BYTES: usize = 256 * 1024;

/// Which entity an event is about.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntityKey {
    pub hotel_id: String,
    pub module_name: String,
    pub primary_key: String,
}

/// What an event says of its entity beyond the log's own columns, taken from the event when
/// it is validated (where the publish is parsed anyway, outside the chain's object).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntityChange {
    pub primary_key: String,
    /// The event's `timestamp`, as the publisher wrote it (RFC 3339).
    pub timestamp: String,
    /// Each detail entry's `elementName` and `newValue` (`None`: absent or null), in order.
    pub elements: Vec<(String, Option<String>)>,
}

/// One element of an entity's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Element {
    pub element_name: String,
    pub value: String,
}

/// An entity's state, as stored and as served: the stored text is the state API's entity
/// object, so a page is the stored texts joined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntityState {
    pub hotel_id: String,
    pub module_name: String,
    pub primary_key: String,
    #[serde(with = "offset_string")]
    pub last_offset: Offset,
    pub last_event_name: String,
    pub last_timestamp: String,
    /// By `elementName`, each name once.
    pub elements: Vec<Element>,
}

/// Offsets travel as decimal strings (exact in JavaScript), here as everywhere.
mod offset_string {
    use serde::{Deserialize, Deserializer, Serializer};

    #[allow(clippy::trivially_copy_pass_by_ref, reason = "the signature serde's `with` calls")]
    pub fn serialize<S: Serializer>(offset: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(offset)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let text = <&str>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl EntityState {
    fn new(key: &EntityKey) -> Self {
        EntityState {
            hotel_id: key.hotel_id.clone(),
            module_name: key.module_name.clone(),
            primary_key: key.primary_key.clone(),
            last_offset: 0,
            last_event_name: String::new(),
            last_timestamp: String::new(),
            elements: Vec::new(),
        }
    }

    pub fn key(&self) -> EntityKey {
        EntityKey {
            hotel_id: self.hotel_id.clone(),
            module_name: self.module_name.clone(),
            primary_key: self.primary_key.clone(),
        }
    }

    /// Folds one event in. Returns how many elements it could not set (the entity is at
    /// [`MAX_ENTITY_ELEMENTS`] or [`MAX_ENTITY_ELEMENT_BYTES`]).
    pub fn apply(&mut self, offset: Offset, event_name: &str, change: &EntityChange) -> usize {
        let mut refused = 0;
        let mut size: usize = self.elements.iter().map(|e| e.element_name.len() + e.value.len()).sum();
        for (name, value) in &change.elements {
            let at = self.elements.binary_search_by(|e| e.element_name.as_str().cmp(name));
            match (at, value) {
                (Ok(i), None) => {
                    size -= name.len() + self.elements[i].value.len();
                    self.elements.remove(i);
                }
                (Ok(i), Some(v)) if size - self.elements[i].value.len() + v.len() <= MAX_ENTITY_ELEMENT_BYTES => {
                    size = size - self.elements[i].value.len() + v.len();
                    v.clone_into(&mut self.elements[i].value);
                }
                (Err(i), Some(v))
                    if self.elements.len() < MAX_ENTITY_ELEMENTS
                        && size + name.len() + v.len() <= MAX_ENTITY_ELEMENT_BYTES =>
                {
                    size += name.len() + v.len();
                    self.elements.insert(i, Element { element_name: name.clone(), value: v.clone() });
                }
                (_, Some(_)) => refused += 1,
                (Err(_), None) => {}
            }
        }
        self.last_offset = offset;
        event_name.clone_into(&mut self.last_event_name);
        change.timestamp.clone_into(&mut self.last_timestamp);
        refused
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// How a chain keeps its entities' state (from the configuration).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateRules {
    /// Off: appends fold nothing (the state API then serves what was folded before).
    pub keep: bool,
    /// Per module name, the event names that end an entity: its state is dropped.
    pub terminal_events: BTreeMap<String, BTreeSet<String>>,
}

impl StateRules {
    pub fn ends_entity(&self, module_name: &str, event_name: &str) -> bool {
        self.terminal_events.get(module_name).is_some_and(|names| names.contains(event_name))
    }
}

/// One entity's row to write with an append: its new state, or its removal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityWrite {
    pub key: EntityKey,
    /// The state's JSON text; `None` removes the entity.
    pub state: Option<String>,
    /// When its last event was stored (ms): state retention counts from here.
    pub last_at: u64,
}

/// Everything an append writes to the state, with what it changes in the totals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntityWrites {
    pub writes: Vec<EntityWrite>,
    /// Entities added minus entities removed.
    pub count_delta: i64,
    /// Bytes of state text added minus bytes removed.
    pub bytes_delta: i64,
    /// Element names the batch could not add to full entities.
    pub elements_refused: usize,
}

/// The entities a chain holds and the bytes of their state text, kept as running totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntityTotals {
    pub entities: u64,
    pub bytes: u64,
}

/// What the state needs of storage, beside the log's rows (`LogStore::insert_all` writes an
/// append's [`EntityWrites`] with its events, in one transaction).
pub trait EntityStore {
    /// The stored state texts of those of `keys` that exist.
    fn entity_states(&self, keys: &[&EntityKey]) -> Result<Vec<(EntityKey, String)>, StoreError>;
    /// Up to `limit` state texts of hotel `hotel_id` (and module `module_name`, if given)
    /// with `(moduleName, primaryKey)` after `after`, in key order.
    fn entity_range(
        &self,
        hotel_id: &str,
        module_name: Option<&str>,
        after: (&str, &str),
        limit: usize,
    ) -> Result<Vec<String>, StoreError>;
    /// Removes up to `limit` entities whose last event was stored before `cutoff` (ms).
    fn delete_entities_before(&self, cutoff: u64, limit: usize) -> Result<usize, StoreError>;
    /// When the entity with the oldest last event had it stored (ms).
    fn oldest_entity_at(&self) -> Result<Option<u64>, StoreError>;
    fn entity_totals(&self) -> Result<EntityTotals, StoreError>;
}

/// Folds the events an append stores into their entities' states (`stored`: what storage
/// holds now of the entities they touch), in offset order, each entity written once.
pub fn fold(stored: Vec<(EntityKey, String)>, events: &[NewEvent<'_>], rules: &StateRules) -> EntityWrites {
    struct Folding {
        state: Option<EntityState>,
        stored_bytes: Option<usize>,
        last_at: u64,
    }
    let mut out = EntityWrites::default();
    let mut states: HashMap<EntityKey, Folding> = stored
        .into_iter()
        .map(|(key, text)| {
            // A row that does not read back (written by a build with another shape) starts over.
            let state = serde_json::from_str::<EntityState>(&text).ok();
            (key, Folding { state, stored_bytes: Some(text.len()), last_at: 0 })
        })
        .collect();
    for new in events {
        let event = new.event;
        let key = key_of(new);
        let folding = states.entry(key.clone()).or_insert(Folding { state: None, stored_bytes: None, last_at: 0 });
        folding.last_at = new.stored_at;
        if rules.ends_entity(&event.module_name, &event.event_name) {
            folding.state = None;
            continue;
        }
        let state = folding.state.get_or_insert_with(|| EntityState::new(&key));
        out.elements_refused += state.apply(new.offset, &event.event_name, &event.entity);
    }
    for key in keys_of(events) {
        let Some(folding) = states.remove(&key) else { continue };
        let text = folding.state.map(|s| s.to_json());
        match (&text, folding.stored_bytes) {
            (None, None) => continue, // created and ended within the batch, or ended unknown
            (Some(t), None) => {
                out.count_delta += 1;
                out.bytes_delta += len_i64(t.len());
            }
            (Some(t), Some(old)) => out.bytes_delta += len_i64(t.len()) - len_i64(old),
            (None, Some(old)) => {
                out.count_delta -= 1;
                out.bytes_delta -= len_i64(old);
            }
        }
        out.writes.push(EntityWrite { key, state: text, last_at: folding.last_at });
    }
    out
}

fn key_of(new: &NewEvent<'_>) -> EntityKey {
    EntityKey {
        hotel_id: new.event.hotel_id.clone(),
        module_name: new.event.module_name.clone(),
        primary_key: new.event.entity.primary_key.clone(),
    }
}

#[allow(clippy::cast_possible_wrap, reason = "state texts are bounded far below 2^63 bytes")]
fn len_i64(n: usize) -> i64 {
    n as i64
}

/// The distinct entities `events` touch, in first-seen order.
pub fn keys_of(events: &[NewEvent<'_>]) -> Vec<EntityKey> {
    let mut seen = std::collections::HashSet::new();
    events.iter().map(key_of).filter(|k| seen.insert(k.clone())).collect()
}
