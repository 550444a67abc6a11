//! The service configuration (CONTRACT §6): one JSON document, parsed into typed values
//! that can only exist valid. Every mistake an operator can make has its own rule and an
//! error that names the entry at fault, so a bad deploy says exactly what to fix.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Deserialize;

use crate::auth::secret::SecretHash;
use crate::stream::fanout::EventFilter;
use crate::webhook::{Webhook, WebhookSecret, WebhookUrl};

/// A scope a client may hold (CONTRACT §3).
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
    pub secret: SecretHash,
    pub app_key: String,
    pub enterprise: String,
    pub scopes: BTreeSet<Scope>,
    pub grants: Vec<Grant>,
    /// Push subscriptions, each within `grants` (CONTRACT §10).
    pub webhooks: Vec<Webhook>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub code: String,
    pub enterprise: String,
    pub properties: BTreeSet<String>,
}

/// Operational limits; every one has a documented default and a documented range, so no
/// value an operator writes can wrap an arithmetic expression or disable a bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_events_per_batch: usize,
    pub max_event_bytes: usize,
    pub max_batch_bytes: usize,
    /// Failed logins of one client id from one source address before that pair is locked.
    pub login_failures_before_lockout: u32,
    /// Failed logins of one client id from all sources together before the id is locked:
    /// higher, so that one address cannot lock a client out for everyone.
    pub login_failures_per_client: u32,
    pub login_lockout_seconds: u64,
    /// A streaming connection whose answer to a server `ping` takes longer than this is
    /// closed (4413): it cannot drain what was sent to it.
    pub slow_consumer_seconds: u64,
    /// Bytes sent to a connection and not yet confirmed read (by the pong of a later ping)
    /// beyond which it is closed (4413), however young its oldest ping.
    pub slow_consumer_bytes: u64,
    pub connection_init_timeout_seconds: u64,
    pub max_subscriptions_per_connection: usize,
    pub max_operation_id_bytes: usize,
    /// Open vendor connections of one app key in one gateway isolate.
    pub max_connections_per_app_key: usize,
    /// WebSocket upgrades of one app key per `upgrade_window_seconds` (all isolates).
    pub max_upgrades_per_app_key: u32,
    pub upgrade_window_seconds: u64,
    /// How many times one source field may appear in a subscription's output per event
    /// (aliases, repeated through lists and objects): bounds the output of one event.
    pub max_field_copies: u32,
    /// A webhook request without an answer after this long has failed.
    pub webhook_timeout_seconds: u64,
    /// The wait before the first retry of a failed webhook request; it doubles per failure
    /// up to `webhook_max_retry_seconds`.
    pub webhook_first_retry_seconds: u64,
    pub webhook_max_retry_seconds: u64,
    /// A webhook failing for this long without a success is paused until an operator
    /// resumes it.
    pub webhook_pause_after_seconds: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_events_per_batch: 500,
            max_event_bytes: 64 * 1024,
            max_batch_bytes: 1024 * 1024,
            login_failures_before_lockout: 5,
            login_failures_per_client: 50,
            login_lockout_seconds: 300,
            slow_consumer_seconds: 30,
            slow_consumer_bytes: 16 * 1024 * 1024,
            connection_init_timeout_seconds: 5,
            max_subscriptions_per_connection: 100,
            max_operation_id_bytes: 128,
            max_connections_per_app_key: 200,
            max_upgrades_per_app_key: 150,
            upgrade_window_seconds: 120,
            max_field_copies: 8,
            webhook_timeout_seconds: 10,
            webhook_first_retry_seconds: 5,
            webhook_max_retry_seconds: 600,
            webhook_pause_after_seconds: 24 * 3600,
        }
    }
}

/// The range each limit may take, with its name in the document. Upper bounds keep every
/// derived quantity (milliseconds, window sums, memory held) far inside its integer type
/// and inside the runtime's own limits (a Worker isolate has 128 MB).
pub const LIMIT_RANGES: [(&str, u64, u64); 19] = [
    ("maxEventsPerBatch", 1, 10_000),
    // An event's frame must fit one WebSocket message (1 MiB) with room for copies.
    ("maxEventBytes", 1, 512 * 1024),
    ("maxBatchBytes", 1, 16 * 1024 * 1024),
    ("loginFailuresBeforeLockout", 1, 1_000),
    ("loginFailuresPerClient", 1, 100_000),
    ("loginLockoutSeconds", 1, 86_400),
    ("slowConsumerSeconds", 1, 600),
    ("slowConsumerBytes", 64 * 1024, 64 * 1024 * 1024),
    ("connectionInitTimeoutSeconds", 1, 60),
    ("maxSubscriptionsPerConnection", 1, 1_000),
    ("maxOperationIdBytes", 1, 1_024),
    ("maxConnectionsPerAppKey", 1, 100_000),
    ("maxUpgradesPerAppKey", 1, 1_000_000),
    ("upgradeWindowSeconds", 1, 3_600),
    ("maxFieldCopies", 1, 100),
    // Under the runtime's own bound on waiting for a response's headers.
    ("webhookTimeoutSeconds", 1, 60),
    ("webhookFirstRetrySeconds", 1, 3_600),
    ("webhookMaxRetrySeconds", 1, 86_400),
    ("webhookPauseAfterSeconds", 1, 30 * 86_400),
];

/// Retention may be at most a year and a day: milliseconds of it stay exact everywhere.
pub const MAX_RETENTION_SECONDS: u64 = 366 * 24 * 3600;

#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub issuer: String,
    pub audience: String,
    pub retention_seconds: u64,
    pub limits: Limits,
    pub enterprises: BTreeSet<String>,
    chains: BTreeMap<String, Chain>,
    clients: BTreeMap<String, Client>,
}

pub const DEFAULT_RETENTION_SECONDS: u64 = 7 * 24 * 3600;

/// Why a configuration was refused. The message names the entry at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid service configuration: {}", self.0)
    }
}

impl std::error::Error for ConfigError {}

fn err<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

// ---- The document as written by an operator -------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawConfig {
    issuer: String,
    audience: String,
    #[serde(default)]
    retention_seconds: Option<u64>,
    #[serde(default)]
    limits: RawLimits,
    enterprises: Vec<String>,
    chains: Vec<RawChain>,
    clients: Vec<RawClient>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawLimits {
    max_events_per_batch: Option<u64>,
    max_event_bytes: Option<u64>,
    max_batch_bytes: Option<u64>,
    login_failures_before_lockout: Option<u64>,
    login_failures_per_client: Option<u64>,
    login_lockout_seconds: Option<u64>,
    slow_consumer_seconds: Option<u64>,
    slow_consumer_bytes: Option<u64>,
    connection_init_timeout_seconds: Option<u64>,
    max_subscriptions_per_connection: Option<u64>,
    max_operation_id_bytes: Option<u64>,
    max_connections_per_app_key: Option<u64>,
    max_upgrades_per_app_key: Option<u64>,
    upgrade_window_seconds: Option<u64>,
    max_field_copies: Option<u64>,
    webhook_timeout_seconds: Option<u64>,
    webhook_first_retry_seconds: Option<u64>,
    webhook_max_retry_seconds: Option<u64>,
    webhook_pause_after_seconds: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawChain {
    code: String,
    enterprise: String,
    properties: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawClient {
    id: String,
    /// Present only so that a plain secret gets a clear refusal instead of "unknown field".
    #[serde(default)]
    secret: Option<serde_json::Value>,
    #[serde(default)]
    secret_hash: Option<String>,
    app_key: String,
    enterprise: String,
    scopes: Vec<String>,
    #[serde(default)]
    grants: Vec<RawGrant>,
    #[serde(default)]
    webhooks: Vec<RawWebhook>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawWebhook {
    id: String,
    chain: String,
    url: String,
    secret: String,
    #[serde(default)]
    hotel_codes: Option<Vec<String>>,
    #[serde(default)]
    event_names: Option<Vec<String>>,
    #[serde(default)]
    module_names: Option<Vec<String>>,
    #[serde(default)]
    max_batch: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawGrant {
    chain: String,
    #[serde(default)]
    properties: Option<Vec<String>>,
}

/// Chain codes, property codes and app keys travel in URLs, tokens and logs: keep them to
/// a conservative alphabet so they never need escaping.
fn is_code(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

impl ServiceConfig {
    pub fn parse(json: &str) -> Result<ServiceConfig, ConfigError> {
        let raw: RawConfig =
            serde_json::from_str(json).map_err(|e| ConfigError(format!("not a valid configuration document: {e}")))?;
        Self::from_raw(raw)
    }

    fn from_raw(raw: RawConfig) -> Result<ServiceConfig, ConfigError> {
        if raw.issuer.trim().is_empty() {
            return err("issuer must not be empty");
        }
        if raw.audience.trim().is_empty() {
            return err("audience must not be empty");
        }
        let retention_seconds = raw.retention_seconds.unwrap_or(DEFAULT_RETENTION_SECONDS);
        if retention_seconds == 0 {
            return err("retentionSeconds must be greater than 0");
        }
        if retention_seconds > MAX_RETENTION_SECONDS {
            return err(format!("retentionSeconds must be at most {MAX_RETENTION_SECONDS} (366 days)"));
        }
        let limits = Self::limits(&raw.limits)?;

        let mut enterprises = BTreeSet::new();
        for e in raw.enterprises {
            if !is_code(&e) {
                return err(format!("enterprise {e:?} is not a valid code (letters, digits, - _ .)"));
            }
            if !enterprises.insert(e.clone()) {
                return err(format!("enterprise {e:?} is listed twice"));
            }
        }

        let mut chains = BTreeMap::new();
        let mut property_owner: BTreeMap<String, String> = BTreeMap::new();
        for c in raw.chains {
            if !is_code(&c.code) {
                return err(format!("chain {:?} is not a valid code (letters, digits, - _ .)", c.code));
            }
            if chains.contains_key(&c.code) {
                return err(format!("chain {:?} is defined twice", c.code));
            }
            if !enterprises.contains(&c.enterprise) {
                return err(format!("chain {:?} names unknown enterprise {:?}", c.code, c.enterprise));
            }
            if c.properties.is_empty() {
                return err(format!("chain {:?} has no properties", c.code));
            }
            let mut properties = BTreeSet::new();
            for p in c.properties {
                if !is_code(&p) {
                    return err(format!("chain {:?}: property {p:?} is not a valid code", c.code));
                }
                if let Some(owner) = property_owner.get(&p) {
                    return err(format!("property {p:?} is in chain {owner:?} and in chain {:?}", c.code));
                }
                property_owner.insert(p.clone(), c.code.clone());
                properties.insert(p);
            }
            chains.insert(c.code.clone(), Chain { code: c.code, enterprise: c.enterprise, properties });
        }

        let mut clients = BTreeMap::new();
        let mut app_keys: BTreeMap<String, String> = BTreeMap::new();
        for c in raw.clients {
            let client = Self::parse_client(c, &enterprises, &chains)?;
            if clients.contains_key(&client.id) {
                return err(format!("client {:?} is defined twice", client.id));
            }
            if let Some(other) = app_keys.get(&client.app_key) {
                return err(format!(
                    "client {:?} uses app key {:?}, already used by client {other:?}",
                    client.id, client.app_key
                ));
            }
            app_keys.insert(client.app_key.clone(), client.id.clone());
            clients.insert(client.id.clone(), client);
        }
        let mut webhook_ids = BTreeSet::new();
        let mut per_chain: BTreeMap<&str, usize> = BTreeMap::new();
        for w in clients.values().flat_map(|c| &c.webhooks) {
            if !webhook_ids.insert(w.id.as_str()) {
                return err(format!(
                    "webhook id {:?} is used twice: webhook ids are unique in the configuration",
                    w.id
                ));
            }
            let n = per_chain.entry(w.chain.as_str()).or_default();
            *n += 1;
            if *n > crate::webhook::MAX_WEBHOOKS_PER_CHAIN {
                return err(format!(
                    "chain {:?} has over {} webhooks",
                    w.chain,
                    crate::webhook::MAX_WEBHOOKS_PER_CHAIN
                ));
            }
        }

        Ok(ServiceConfig {
            issuer: raw.issuer,
            audience: raw.audience,
            retention_seconds,
            limits,
            enterprises,
            chains,
            clients,
        })
    }

    #[allow(
        clippy::cast_possible_truncation,
        reason = "every value is checked against its range first, far below u32::MAX where it is narrowed"
    )]
    fn limits(raw: &RawLimits) -> Result<Limits, ConfigError> {
        let d = Limits::default();
        let given: [Option<u64>; 19] = [
            raw.max_events_per_batch,
            raw.max_event_bytes,
            raw.max_batch_bytes,
            raw.login_failures_before_lockout,
            raw.login_failures_per_client,
            raw.login_lockout_seconds,
            raw.slow_consumer_seconds,
            raw.slow_consumer_bytes,
            raw.connection_init_timeout_seconds,
            raw.max_subscriptions_per_connection,
            raw.max_operation_id_bytes,
            raw.max_connections_per_app_key,
            raw.max_upgrades_per_app_key,
            raw.upgrade_window_seconds,
            raw.max_field_copies,
            raw.webhook_timeout_seconds,
            raw.webhook_first_retry_seconds,
            raw.webhook_max_retry_seconds,
            raw.webhook_pause_after_seconds,
        ];
        let defaults: [u64; 19] = [
            d.max_events_per_batch as u64,
            d.max_event_bytes as u64,
            d.max_batch_bytes as u64,
            u64::from(d.login_failures_before_lockout),
            u64::from(d.login_failures_per_client),
            d.login_lockout_seconds,
            d.slow_consumer_seconds,
            d.slow_consumer_bytes,
            d.connection_init_timeout_seconds,
            d.max_subscriptions_per_connection as u64,
            d.max_operation_id_bytes as u64,
            d.max_connections_per_app_key as u64,
            u64::from(d.max_upgrades_per_app_key),
            d.upgrade_window_seconds,
            u64::from(d.max_field_copies),
            d.webhook_timeout_seconds,
            d.webhook_first_retry_seconds,
            d.webhook_max_retry_seconds,
            d.webhook_pause_after_seconds,
        ];
        let mut v = [0u64; 19];
        for (i, (name, min, max)) in LIMIT_RANGES.iter().enumerate() {
            let value = given[i].unwrap_or(defaults[i]);
            if value < *min || value > *max {
                return err(format!("limits.{name} must be between {min} and {max} (got {value})"));
            }
            v[i] = value;
        }
        // Every value is within its range, far below u32::MAX where it is narrowed.
        let limits = Limits {
            max_events_per_batch: v[0] as usize,
            max_event_bytes: v[1] as usize,
            max_batch_bytes: v[2] as usize,
            login_failures_before_lockout: v[3] as u32,
            login_failures_per_client: v[4] as u32,
            login_lockout_seconds: v[5],
            slow_consumer_seconds: v[6],
            slow_consumer_bytes: v[7],
            connection_init_timeout_seconds: v[8],
            max_subscriptions_per_connection: v[9] as usize,
            max_operation_id_bytes: v[10] as usize,
            max_connections_per_app_key: v[11] as usize,
            max_upgrades_per_app_key: v[12] as u32,
            upgrade_window_seconds: v[13],
            max_field_copies: v[14] as u32,
            webhook_timeout_seconds: v[15],
            webhook_first_retry_seconds: v[16],
            webhook_max_retry_seconds: v[17],
            webhook_pause_after_seconds: v[18],
        };
        if limits.max_event_bytes > limits.max_batch_bytes {
            return err("limits.maxEventBytes must not exceed limits.maxBatchBytes");
        }
        if limits.login_failures_per_client < limits.login_failures_before_lockout {
            return err("limits.loginFailuresPerClient must not be below limits.loginFailuresBeforeLockout");
        }
        if limits.webhook_max_retry_seconds < limits.webhook_first_retry_seconds {
            return err("limits.webhookMaxRetrySeconds must not be below limits.webhookFirstRetrySeconds");
        }
        Ok(limits)
    }

    fn parse_client(
        c: RawClient,
        enterprises: &BTreeSet<String>,
        chains: &BTreeMap<String, Chain>,
    ) -> Result<Client, ConfigError> {
        let id = c.id;
        if !is_code(&id) {
            return err(format!("client {id:?} is not a valid client id (letters, digits, - _ .)"));
        }
        if c.secret.is_some() {
            return err(format!(
                "client {id:?} has a plain \"secret\": store only \"secretHash\" (see README: hashing a client secret)"
            ));
        }
        let Some(hash) = c.secret_hash else {
            return err(format!("client {id:?} has no secretHash"));
        };
        let secret = SecretHash::parse(&hash).map_err(|why| ConfigError(format!("client {id:?}: secretHash {why}")))?;
        if !is_code(&c.app_key) {
            return err(format!("client {id:?}: app key is not a valid code (letters, digits, - _ .)"));
        }
        if !enterprises.contains(&c.enterprise) {
            return err(format!("client {id:?} names unknown enterprise {:?}", c.enterprise));
        }
        if c.scopes.is_empty() {
            return err(format!("client {id:?} has no scopes"));
        }
        let mut scopes = BTreeSet::new();
        for s in &c.scopes {
            let Some(scope) = Scope::parse(s) else {
                return err(format!(
                    "client {id:?} has unknown scope {s:?} (known: urn:pms:events, urn:pms:publish, urn:pms:admin)"
                ));
            };
            scopes.insert(scope);
        }
        if c.grants.is_empty() {
            return err(format!("client {id:?} has no grants: it could use nothing"));
        }
        let mut grants: Vec<Grant> = Vec::new();
        for g in c.grants {
            let Some(chain) = chains.get(&g.chain) else {
                return err(format!("client {id:?} is granted unknown chain {:?}", g.chain));
            };
            if chain.enterprise != c.enterprise {
                return err(format!(
                    "client {id:?} of enterprise {:?} is granted chain {:?} of enterprise {:?}",
                    c.enterprise, chain.code, chain.enterprise
                ));
            }
            if grants.iter().any(|existing| existing.chain == g.chain) {
                return err(format!("client {id:?} is granted chain {:?} twice", g.chain));
            }
            let properties = match g.properties {
                None => None,
                Some(list) if list.is_empty() => {
                    return err(format!(
                        "client {id:?}: grant of chain {:?} has an empty property list (omit it to grant every \
                            property)",
                        g.chain
                    ));
                }
                Some(list) => {
                    for p in &list {
                        if !chain.properties.contains(p) {
                            return err(format!(
                                "client {id:?}: granted property {p:?} is not a property of chain {:?}",
                                g.chain
                            ));
                        }
                    }
                    Some(list.into_iter().collect())
                }
            };
            grants.push(Grant { chain: g.chain, properties });
        }
        let mut webhooks = Vec::new();
        for w in c.webhooks {
            webhooks.push(Self::parse_webhook(&id, &scopes, &grants, chains, w)?);
        }
        Ok(Client { id, secret, app_key: c.app_key, enterprise: c.enterprise, scopes, grants, webhooks })
    }

    /// A webhook of client `client`, within its grants. Messages name the webhook and never
    /// repeat its secret.
    fn parse_webhook(
        client: &str,
        scopes: &BTreeSet<Scope>,
        grants: &[Grant],
        chains: &BTreeMap<String, Chain>,
        w: RawWebhook,
    ) -> Result<Webhook, ConfigError> {
        let id = w.id;
        if !is_code(&id) {
            return err(format!("client {client:?}: webhook id {id:?} is not a valid code (letters, digits, - _ .)"));
        }
        let at = |why: String| ConfigError(format!("client {client:?}: webhook {id:?} {why}"));
        if !scopes.contains(&Scope::Events) {
            return Err(at("needs the client to hold the urn:pms:events scope".into()));
        }
        let Some(grant) = grants.iter().find(|g| g.chain == w.chain) else {
            return Err(at(format!("is for chain {:?}, which is not granted to this client", w.chain)));
        };
        let chain = &chains[&grant.chain];
        let url = WebhookUrl::parse(&w.url).map_err(|why| at(format!("url {why}")))?;
        let secret = WebhookSecret::parse(&w.secret).map_err(|why| at(format!("secret {why}")))?;
        let list = |name: &str, list: Option<Vec<String>>| -> Result<Option<BTreeSet<String>>, ConfigError> {
            match list {
                None => Ok(None),
                Some(l) if l.is_empty() => Err(at(format!("has an empty {name} list (omit it to receive all)"))),
                Some(l) => Ok(Some(l.into_iter().collect())),
            }
        };
        let hotel_codes = list("hotelCodes", w.hotel_codes)?;
        for code in hotel_codes.iter().flatten() {
            if !chain.properties.contains(code) {
                return Err(at(format!("names hotel {code:?}, which is not a property of chain {:?}", chain.code)));
            }
            if grant.properties.as_ref().is_some_and(|granted| !granted.contains(code)) {
                return Err(at(format!("names hotel {code:?}, which is not granted to this client")));
            }
        }
        // What it may receive: its own hotels, or else every granted property.
        let properties = hotel_codes.or_else(|| grant.properties.clone());
        let max_batch = match w.max_batch {
            None => crate::webhook::DEFAULT_MAX_BATCH,
            Some(n) if (1..=crate::webhook::MAX_MAX_BATCH as u64).contains(&n) => {
                usize::try_from(n).unwrap_or(crate::webhook::MAX_MAX_BATCH)
            }
            Some(n) => {
                return Err(at(format!("maxBatch must be between 1 and {} (got {n})", crate::webhook::MAX_MAX_BATCH)))
            }
        };
        Ok(Webhook {
            id: id.clone(),
            client_id: client.to_string(),
            chain: chain.code.clone(),
            url,
            secret,
            filter: EventFilter {
                properties,
                event_names: list("eventNames", w.event_names)?,
                module_names: list("moduleNames", w.module_names)?,
            },
            max_batch,
        })
    }

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

    /// The webhooks of one chain, of every client, in configuration order per client.
    pub fn webhooks_of(&self, chain: &str) -> impl Iterator<Item = &Webhook> + '_ {
        let chain = chain.to_string();
        self.clients.values().flat_map(|c| &c.webhooks).filter(move |w| w.chain == chain)
    }
}
