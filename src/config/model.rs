//! The configuration as the service uses it: plain, validated data. Nothing here knows how
//! events are streamed or pushed; the layers above build their own types from it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::endpoint::{WebhookSecret, WebhookUrl};
use super::limits::Limits;
use super::secret_hash::SecretHash;
use crate::log::{EventFilter, StateRules};

/// A scope a client may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    Events,
    Publish,
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Events, Scope::Publish, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Events => "urn:pms:events",
            Scope::Publish => "urn:pms:publish",
            Scope::Admin => "urn:pms:admin",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == s)
    }
}

/// What a client may see of one chain: all of its properties, or only some.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub chain: String,
    /// `None`: every property of the chain.
    pub properties: Option<BTreeSet<String>>,
}

#[derive(Debug, Clone)]
pub struct Client {
    pub id: String,
    /// One hash, or two while the client's secret rotates: either secret is accepted.
    pub secrets: Vec<SecretHash>,
    pub app_key: String,
    pub enterprise: String,
    pub scopes: BTreeSet<Scope>,
    pub grants: Vec<Grant>,
    /// Push subscriptions, each within `grants`.
    pub webhooks: Vec<Webhook>,
}

impl Client {
    /// Whether `secret` is one of the client's secrets. Every hash is checked, whichever
    /// matches, so the time taken does not say which one did.
    pub fn secret_matches(&self, secret: &str) -> bool {
        self.secrets.iter().fold(false, |matched, hash| hash.verify(secret) | matched)
    }

    /// Whether the client holds two secrets (one being rotated out).
    pub fn in_rotation(&self) -> bool {
        self.secrets.len() > 1
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub code: String,
    pub enterprise: String,
    pub properties: BTreeSet<String>,
}

/// One configured webhook: a client's push subscription to one chain, within its grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// Unique in the configuration; names the webhook to operators and in audit lines.
    pub id: String,
    pub client_id: String,
    pub chain: String,
    pub url: WebhookUrl,
    pub secret: WebhookSecret,
    /// Which events it receives: its own filters, within the client's granted properties.
    pub filter: EventFilter,
    /// Events per request at most.
    pub max_batch: usize,
}

/// Webhooks one chain may have (all clients together): each is a cursor the chain's object
/// serves after every publish.
pub const MAX_WEBHOOKS_PER_CHAIN: usize = 20;
/// A webhook's `maxBatch` when the configuration names none, and its largest value.
pub const DEFAULT_MAX_BATCH: usize = 100;
pub const MAX_MAX_BATCH: usize = 1_000;

/// Events are kept a week unless the configuration says otherwise.
pub const DEFAULT_RETENTION_SECONDS: u64 = 7 * 24 * 3600;
/// Retention may be at most a year and a day: milliseconds of it stay exact everywhere.
pub const MAX_RETENTION_SECONDS: u64 = 366 * 24 * 3600;

#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub issuer: String,
    pub audience: String,
    pub retention_seconds: u64,
    pub limits: Limits,
    /// Whether and how chains keep their entities' current state (`entityState`).
    pub state_rules: StateRules,
    pub enterprises: BTreeSet<String>,
    pub(super) chains: BTreeMap<String, Chain>,
    pub(super) clients: BTreeMap<String, Client>,
}

impl ServiceConfig {
    pub fn client(&self, id: &str) -> Option<&Client> {
        self.clients.get(id)
    }

    pub fn client_by_app_key(&self, app_key: &str) -> Option<&Client> {
        self.clients.values().find(|c| c.app_key == app_key)
    }

    pub fn clients(&self) -> impl Iterator<Item = &Client> {
        self.clients.values()
    }

    pub fn chain(&self, code: &str) -> Option<&Chain> {
        self.chains.get(code)
    }

    pub fn chains(&self) -> impl Iterator<Item = &Chain> {
        self.chains.values()
    }

    /// What `config check` says of a valid document: its counts, its retention, and the
    /// clients whose secret is being rotated (they hold two hashes).
    pub fn summary(&self) -> String {
        let webhooks: usize = self.clients.values().map(|c| c.webhooks.len()).sum();
        let mut out = format!(
            "ok: {} enterprise(s), {} chain(s), {} client(s), {webhooks} webhook(s); retention {} s",
            self.enterprises.len(),
            self.chains.len(),
            self.clients.len(),
            self.retention_seconds
        );
        let rotating: Vec<&str> = self.clients.values().filter(|c| c.in_rotation()).map(|c| c.id.as_str()).collect();
        if !rotating.is_empty() {
            out.push_str("; secret in rotation (two hashes): ");
            out.push_str(&rotating.join(", "));
        }
        out
    }

    /// The webhooks of one chain, of every client, in configuration order per client.
    pub fn webhooks_of(&self, chain: &str) -> impl Iterator<Item = &Webhook> + '_ {
        let chain = chain.to_string();
        self.clients.values().flat_map(|c| &c.webhooks).filter(move |w| w.chain == chain)
    }
}

/// Why a configuration was refused. The message names the entry at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid service configuration: {}", self.0)
    }
}

impl std::error::Error for ConfigError {}
