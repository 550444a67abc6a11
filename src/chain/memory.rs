//! The reference storage of a chain object: the log's rows in a `log::MemoryStore` and the
//! object's tables in maps, with the same semantics as its `SQLite` storage. Native tests
//! run the chain object's core over it.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use super::host::ChainTables;
use crate::log::entity::{EntityTotals, Swept};
use crate::log::{EntityStore, EntityWrites, LogStore, MemoryStore, NewEvent, Offset, StoreError, StoredEvent};
use crate::webhook::WebhookState;

#[derive(Debug, Default)]
pub struct MemoryChainStore {
    pub log: MemoryStore,
    cursors: RefCell<BTreeMap<String, (Offset, u64)>>,
    subscriptions: RefCell<HashMap<String, String>>,
    chain_code: RefCell<Option<String>>,
    webhooks: RefCell<HashMap<String, WebhookState>>,
    last_publish_at: RefCell<Option<u64>>,
}

impl LogStore for MemoryChainStore {
    fn head(&self) -> Result<Offset, StoreError> {
        self.log.head()
    }

    fn offsets_of(&self, unique_event_ids: &[&str]) -> Result<HashMap<String, Offset>, StoreError> {
        self.log.offsets_of(unique_event_ids)
    }

    fn insert_all(&self, events: &[NewEvent<'_>]) -> Result<(), StoreError> {
        self.log.insert_all(events)?;
        if let Some(last) = events.last() {
            *self.last_publish_at.borrow_mut() = Some(last.stored_at);
        }
        Ok(())
    }

    fn oldest(&self) -> Result<Option<(Offset, u64)>, StoreError> {
        self.log.oldest()
    }

    fn read_from(&self, from: Offset, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        self.log.read_from(from, limit)
    }

    fn delete_stored_before(&self, cutoff: u64, through: Offset, limit: usize) -> Result<usize, StoreError> {
        self.log.delete_stored_before(cutoff, through, limit)
    }

    fn first_stored_at_or_after(&self, at: u64) -> Result<Option<Offset>, StoreError> {
        self.log.first_stored_at_or_after(at)
    }

    fn dropped_through(&self) -> Result<Option<(Offset, u64)>, StoreError> {
        self.log.dropped_through()
    }
}

impl EntityStore for MemoryChainStore {
    fn state_through(&self) -> Result<Offset, StoreError> {
        self.log.state_through()
    }

    fn write_entities(&self, writes: &EntityWrites, through: Offset) -> Result<(), StoreError> {
        self.log.write_entities(writes, through)
    }

    fn entity_range(&self, after: &str, before: &str, limit: usize) -> Result<Vec<(String, String)>, StoreError> {
        self.log.entity_range(after, before, limit)
    }

    fn sweep_entities(&self, after: &str, limit: usize, cutoff: u64) -> Result<Swept, StoreError> {
        self.log.sweep_entities(after, limit, cutoff)
    }

    fn entity_totals(&self) -> Result<EntityTotals, StoreError> {
        self.log.entity_totals()
    }
}

impl ChainTables for MemoryChainStore {
    fn saved_cursor(&self, key: &str) -> Result<Option<(Offset, u64)>, StoreError> {
        Ok(self.cursors.borrow().get(key).copied())
    }

    fn save_cursor(&self, key: &str, through: Offset, now_ms: u64) -> Result<(), StoreError> {
        let mut cursors = self.cursors.borrow_mut();
        let saved = cursors.entry(key.to_string()).or_insert((through, now_ms));
        *saved = (saved.0.max(through), now_ms);
        Ok(())
    }

    fn drop_cursors_before(&self, before: u64) -> Result<(), StoreError> {
        self.cursors.borrow_mut().retain(|_, (_, at)| *at >= before);
        Ok(())
    }

    fn saved_cursors(&self, after: &str, limit: usize) -> Result<Vec<(String, Offset, u64)>, StoreError> {
        use std::ops::Bound::{Excluded, Unbounded};
        let cursors = self.cursors.borrow();
        Ok(cursors
            .range::<str, _>((Excluded(after), Unbounded))
            .take(limit)
            .map(|(key, (offset, at))| (key.clone(), *offset, *at))
            .collect())
    }

    fn register_subscription(&self, key: &str, spec_json: &str) -> Result<(), StoreError> {
        self.subscriptions.borrow_mut().insert(key.to_string(), spec_json.to_string());
        Ok(())
    }

    fn subscription(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self.subscriptions.borrow().get(key).cloned())
    }

    fn unregister_subscription(&self, key: &str) -> Result<(), StoreError> {
        self.subscriptions.borrow_mut().remove(key);
        Ok(())
    }

    fn subscription_keys(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.subscriptions.borrow().keys().cloned().collect())
    }

    fn chain_code(&self) -> Result<Option<String>, StoreError> {
        Ok(self.chain_code.borrow().clone())
    }

    fn set_chain_code(&self, code: &str) -> Result<(), StoreError> {
        self.chain_code.borrow_mut().get_or_insert_with(|| code.to_string());
        Ok(())
    }

    fn webhook_state(&self, id: &str) -> Result<Option<WebhookState>, StoreError> {
        Ok(self.webhooks.borrow().get(id).cloned())
    }

    fn save_webhook_state(&self, id: &str, state: &WebhookState) -> Result<(), StoreError> {
        self.webhooks.borrow_mut().insert(id.to_string(), state.clone());
        Ok(())
    }

    fn last_publish_at(&self) -> Result<Option<u64>, StoreError> {
        Ok(*self.last_publish_at.borrow())
    }
}
