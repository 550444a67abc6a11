//! Which events of a chain a reader receives: a subscription, a pull request and a webhook
//! all filter the same way, by the event's property, event name and module name.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::StoredEvent;

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventFilter {
    /// `None`: every property of the chain (the grant allows them all, and no `hotelCode`).
    pub properties: Option<BTreeSet<String>>,
    pub event_names: Option<BTreeSet<String>>,
    pub module_names: Option<BTreeSet<String>>,
}

impl EventFilter {
    pub fn matches(&self, e: &StoredEvent) -> bool {
        self.matches_fields(&e.hotel_id, &e.event_name, &e.module_name)
    }

    /// The same test on an event's three fields.
    pub fn matches_fields(&self, hotel_id: &str, event_name: &str, module_name: &str) -> bool {
        let ok = |set: &Option<BTreeSet<String>>, v: &str| set.as_ref().is_none_or(|s| s.contains(v));
        ok(&self.properties, hotel_id) && ok(&self.event_names, event_name) && ok(&self.module_names, module_name)
    }

    /// The filter as text that two equal filters share: part of the keys under which
    /// subscriptions share work and saved cursors are kept.
    pub fn key(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}
