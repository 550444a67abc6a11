//! The current state of a chain's entities, folded from its events: per entity
//! `(hotelId, moduleName, primaryKey)`, each event's detail entries set an element
//! (`elements[elementName] = newValue`) or, with no `newValue`, remove it; the entity keeps
//! the offset, name and timestamp of its last event. It is kept apart from the events'
//! retention (an entity lives `stateRetentionSeconds` after its last event, or until a
//! terminal event the configuration names).
//!
//! The state is folded from the log after the publish, not in it: the log is the state's own
//! write-ahead record, and a publish writes only its events. Writing an entity is a write at a
//! random place of a keyed table (~3x the cost of appending an event), so folding happens in
//! steps of its own, when the chain is quiet or every few seconds (`chain::state_fold`), each
//! step one transaction that also moves [`EntityStore::state_through`], the offset the state
//! is as of. A state page says that offset: every entity reflects every event up to it, and
//! the log still holds the events after it (retention keeps what is not folded yet).
//!
//! A step reads nothing of the entities it folds into: each entity's events of the step become
//! one JSON merge patch (RFC 7396: a member set to a value sets it, set to `null` removes it),
//! which storage merges into the stored state in the insert itself (`SQLite`'s `json_patch`;
//! the reference store does the same in [`merge_patch`]). A new entity stores its first patch
//! as it is (a `null` in it is a removal of nothing), and a state is read through
//! [`render_state`], which drops such `null`s.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Offset, StoreError, StoredEvent};

/// A stored state that has reached this many bytes takes no more changes until it ends or
/// expires: a PMS entity has tens of short elements, and the bound keeps one page of the
/// state API, and one merge, small whatever a publisher sends.
pub const MAX_ENTITY_STATE_BYTES: usize = 256 * 1024;

/// Separates the parts of an entity's storage key. Hotel codes are configuration codes and
/// module names hold no control character (the publish rules), so keys sort as
/// `(hotelId, moduleName, primaryKey)` do, and every key of hotel `H` lies between `H\x1f` and
/// `H\x20`.
const SEP: char = '\u{1f}';
const AFTER_SEP: char = '\u{20}';

/// Which entity an event is about.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntityKey {
    pub hotel_id: String,
    pub module_name: String,
    pub primary_key: String,
}

impl EntityKey {
    /// The storage key.
    pub fn storage_key(&self) -> String {
        format!("{}{SEP}{}{SEP}{}", self.hotel_id, self.module_name, self.primary_key)
    }

    /// The key a storage key stands for.
    pub fn from_storage_key(key: &str) -> Option<EntityKey> {
        let (hotel_id, rest) = key.split_once(SEP)?;
        let (module_name, primary_key) = rest.split_once(SEP)?;
        Some(EntityKey { hotel_id: hotel_id.into(), module_name: module_name.into(), primary_key: primary_key.into() })
    }
}

/// The storage keys of one hotel (and module), as an exclusive range `(after, before)`.
pub fn group_range(hotel_id: &str, module_name: Option<&str>) -> (String, String) {
    match module_name {
        None => (format!("{hotel_id}{SEP}"), format!("{hotel_id}{AFTER_SEP}")),
        Some(m) => (format!("{hotel_id}{SEP}{m}{SEP}"), format!("{hotel_id}{SEP}{m}{AFTER_SEP}")),
    }
}

/// What an event says of its entity beyond the log's own columns, read from its stored body.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventBody<'a> {
    #[serde(borrow)]
    primary_key: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    timestamp: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    detail: Vec<DetailEntry<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DetailEntry<'a> {
    #[serde(borrow, default)]
    element_name: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    new_value: Option<std::borrow::Cow<'a, str>>,
}

/// One element of an entity's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Element {
    pub element_name: String,
    pub value: String,
}

/// An entity's state as the state API serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntityState {
    pub hotel_id: String,
    pub module_name: String,
    pub primary_key: String,
    /// An offset, as a decimal string like every offset the service writes.
    pub last_offset: String,
    pub last_event_name: String,
    pub last_timestamp: String,
    /// By `elementName`, each name once.
    pub elements: Vec<Element>,
}

/// An entity's state as stored, and the patch an append merges into it: the same shape, every
/// member optional in a patch. `lastAt` (when its last event was stored, ms) is for state
/// retention and is not served.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredState {
    pub hotel_id: String,
    pub module_name: String,
    pub primary_key: String,
    pub last_offset: String,
    pub last_event_name: String,
    pub last_timestamp: String,
    pub last_at: u64,
    /// `None`: removed (only in a patch, or in a new entity's first one).
    pub elements: BTreeMap<String, Option<String>>,
}

/// The served form of a stored state text; `None` for text that is not one.
pub fn render_state(stored: &str) -> Option<EntityState> {
    let s: StoredState = serde_json::from_str(stored).ok()?;
    Some(EntityState {
        hotel_id: s.hotel_id,
        module_name: s.module_name,
        primary_key: s.primary_key,
        last_offset: s.last_offset,
        last_event_name: s.last_event_name,
        last_timestamp: s.last_timestamp,
        elements: s
            .elements
            .into_iter()
            .filter_map(|(element_name, value)| Some(Element { element_name, value: value? }))
            .collect(),
    })
}

/// When a stored state's last event was stored (ms), for state retention.
pub fn last_at(stored: &str) -> Option<u64> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct LastAt {
        last_at: u64,
    }
    serde_json::from_str::<LastAt>(stored).ok().map(|l| l.last_at)
}

/// RFC 7396 JSON Merge Patch, as `SQLite`'s `json_patch` applies it: the reference store's merge.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(members) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    if let Value::Object(into) = target {
        for (name, value) in members {
            if value.is_null() {
                into.remove(name);
            } else {
                merge_patch(into.entry(name.clone()).or_insert(Value::Null), value);
            }
        }
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

/// What one fold step writes to the entities' state, in this order: removals, then merges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntityWrites {
    /// Storage keys of entities a terminal event ended.
    pub removals: Vec<String>,
    /// Per storage key, the patch to merge (or to store, for a new entity).
    pub patches: Vec<(String, String)>,
}

impl EntityWrites {
    pub fn is_empty(&self) -> bool {
        self.removals.is_empty() && self.patches.is_empty()
    }
}

/// The writes that fold `events` (in offset order) into their entities: per entity touched,
/// at most one removal (a terminal event; anything after it starts the entity anew) and one
/// patch. An event whose body does not read back (none should) is passed over.
pub fn entity_writes(events: &[StoredEvent], rules: &StateRules) -> EntityWrites {
    struct Folding {
        key: String,
        removed: bool,
        patch: Option<StoredState>,
    }
    let mut order: Vec<Folding> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for event in events {
        let Ok(body) = serde_json::from_str::<EventBody<'_>>(&event.body) else { continue };
        let key = EntityKey {
            hotel_id: event.hotel_id.clone(),
            module_name: event.module_name.clone(),
            primary_key: body.primary_key.into_owned(),
        };
        let storage_key = key.storage_key();
        let at = *index.entry(storage_key.clone()).or_insert_with(|| {
            order.push(Folding { key: storage_key, removed: false, patch: None });
            order.len() - 1
        });
        let folding = &mut order[at];
        if rules.ends_entity(&event.module_name, &event.event_name) {
            folding.removed = true;
            folding.patch = None;
            continue;
        }
        let patch = folding.patch.get_or_insert_with(|| StoredState {
            hotel_id: key.hotel_id,
            module_name: key.module_name,
            primary_key: key.primary_key,
            ..StoredState::default()
        });
        for entry in body.detail {
            if let Some(name) = entry.element_name {
                patch.elements.insert(name.into_owned(), entry.new_value.map(std::borrow::Cow::into_owned));
            }
        }
        patch.last_offset = event.offset.to_string();
        event.event_name.clone_into(&mut patch.last_event_name);
        patch.last_timestamp = body.timestamp.into_owned();
        patch.last_at = event.stored_at;
    }
    let mut writes = EntityWrites::default();
    for folding in order {
        if folding.removed {
            writes.removals.push(folding.key.clone());
        }
        if let Some(patch) = folding.patch {
            writes.patches.push((folding.key, serde_json::to_string(&patch).unwrap_or_default()));
        }
    }
    writes
}

/// The entities a chain holds and the bytes of their stored state, kept as running totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntityTotals {
    pub entities: u64,
    pub bytes: u64,
}

/// One step of the state retention sweep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Swept {
    pub removed: usize,
    /// The last storage key looked at; `None` when the sweep reached the end.
    pub last: Option<String>,
}

/// What the state needs of storage, beside the log's rows.
pub trait EntityStore {
    /// The offset the state is folded through (0: nothing folded yet).
    fn state_through(&self) -> Result<Offset, StoreError>;
    /// Writes one fold step, removals first, and moves [`EntityStore::state_through`] to
    /// `through`: all of it, or (when it fails) none.
    fn write_entities(&self, writes: &EntityWrites, through: Offset) -> Result<(), StoreError>;
    /// Up to `limit` stored states with storage keys strictly between `after` and `before`,
    /// in key order, with their keys.
    fn entity_range(&self, after: &str, before: &str, limit: usize) -> Result<Vec<(String, String)>, StoreError>;
    /// Looks at up to `limit` entities with keys after `after` and removes those whose last
    /// event was stored before `cutoff` (ms).
    fn sweep_entities(&self, after: &str, limit: usize, cutoff: u64) -> Result<Swept, StoreError>;
    fn entity_totals(&self) -> Result<EntityTotals, StoreError>;
}
