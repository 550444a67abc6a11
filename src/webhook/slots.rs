//! Which webhooks of a chain get the chain object's few outgoing connections
//! ([`MAX_PARALLEL_DELIVERIES`]), and in what order. One receiver's slowness must not delay
//! another's: walking the webhooks in configuration order let the first few take every
//! freed connection while a publish was always waiting, and the rest got nothing until
//! publishing paused. So each wake-up offers the connections to the webhook whose last
//! attempt is oldest first (one that never made one comes first of all; the time is in its
//! stored state, so the order survives a restart), and a webhook held back for a connection
//! is woken again when one is sure to be free.

use std::collections::HashSet;

use super::{WebhookState, MAX_PARALLEL_DELIVERIES};
use crate::config::Webhook;

/// Webhooks with their states, in the order their wake-ups are offered a connection: the
/// least recently attempted first, then in configuration order.
pub fn fair_order(mut webhooks: Vec<(&Webhook, WebhookState)>) -> Vec<(&Webhook, WebhookState)> {
    // A stable sort: equal times keep the configuration's order.
    webhooks.sort_by_key(|(_, state)| state.last_attempt_at.unwrap_or(0));
    webhooks
}

/// The object's webhook connections: the attempts in flight. In memory: a restart forgets
/// them, and their leases in storage bring them back.
#[derive(Debug, Default)]
pub struct DeliverySlots {
    in_flight: HashSet<String>,
}

impl DeliverySlots {
    /// Whether a connection is free for one more attempt.
    pub fn free(&self) -> bool {
        self.in_flight.len() < MAX_PARALLEL_DELIVERIES
    }

    pub fn in_flight(&self, webhook: &str) -> bool {
        self.in_flight.contains(webhook)
    }

    /// Attempts in flight now.
    pub fn busy(&self) -> usize {
        self.in_flight.len()
    }

    /// An attempt of `webhook` starts on a free connection.
    pub fn start(&mut self, webhook: &str) {
        self.in_flight.insert(webhook.to_string());
    }

    /// The attempt of `webhook` ended: its connection is free.
    pub fn finish(&mut self, webhook: &str) {
        self.in_flight.remove(webhook);
    }
}
