//! The configuration document as an operator writes it, and the rules that turn it into a
//! [`ServiceConfig`]. Every mistake an operator can make has its own rule and an error that
//! names the entry at fault, so a bad deploy says exactly what to fix.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use super::endpoint::{WebhookSecret, WebhookUrl};
use super::limits::{Limits, RawLimits};
use super::model::{
    Chain, Client, ConfigError, Grant, Scope, ServiceConfig, Webhook, DEFAULT_MAX_BATCH, DEFAULT_RETENTION_SECONDS,
    MAX_MAX_BATCH, MAX_RETENTION_SECONDS, MAX_WEBHOOKS_PER_CHAIN,
};
use super::secret_hash::SecretHash;
use crate::log::{EventFilter, StateRules};

fn err<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawConfig {
    issuer: String,
    audience: String,
    #[serde(default)]
    retention_seconds: Option<u64>,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    entity_state: Option<RawEntityState>,
    enterprises: Vec<String>,
    chains: Vec<RawChain>,
    clients: Vec<RawClient>,
}

/// `entityState`: whether chains keep their entities' current state (default: yes), and the
/// events that end an entity, per module.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawEntityState {
    #[serde(default = "yes")]
    keep: bool,
    #[serde(default)]
    terminal_events: BTreeMap<String, Vec<String>>,
}

fn yes() -> bool {
    true
}

/// Modules, and event names per module, `entityState.terminalEvents` may name.
const MAX_TERMINAL_NAMES: usize = 100;

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
    secret_hash: Option<SecretHashes>,
    app_key: String,
    enterprise: String,
    scopes: Vec<String>,
    #[serde(default)]
    grants: Vec<RawGrant>,
    #[serde(default)]
    webhooks: Vec<RawWebhook>,
}

/// `secretHash`: one hash, or a list of at most two while the client's secret rotates.
#[derive(Deserialize)]
#[serde(untagged)]
enum SecretHashes {
    One(String),
    Rotating(Vec<String>),
}

/// Hashes a client may hold at once: the current secret and the one being rotated in.
pub const MAX_SECRET_HASHES: usize = 2;

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
        let limits = Limits::parse(&raw.limits).map_err(ConfigError)?;
        let state_rules = Self::parse_entity_state(raw.entity_state)?;

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
            if *n > MAX_WEBHOOKS_PER_CHAIN {
                return err(format!("chain {:?} has over {} webhooks", w.chain, MAX_WEBHOOKS_PER_CHAIN));
            }
        }

        Ok(ServiceConfig {
            issuer: raw.issuer,
            audience: raw.audience,
            retention_seconds,
            limits,
            state_rules,
            enterprises,
            chains,
            clients,
        })
    }

    fn parse_entity_state(raw: Option<RawEntityState>) -> Result<StateRules, ConfigError> {
        let Some(raw) = raw else { return Ok(StateRules { keep: true, terminal_events: BTreeMap::new() }) };
        if raw.terminal_events.len() > MAX_TERMINAL_NAMES {
            return err(format!("entityState.terminalEvents names over {MAX_TERMINAL_NAMES} modules"));
        }
        let mut terminal_events = BTreeMap::new();
        for (module, names) in raw.terminal_events {
            if module.trim().is_empty() {
                return err("entityState.terminalEvents: a module name is empty");
            }
            if names.is_empty() || names.len() > MAX_TERMINAL_NAMES {
                return err(format!(
                    "entityState.terminalEvents.{module}: name from 1 to {MAX_TERMINAL_NAMES} event names"
                ));
            }
            if let Some(empty) = names.iter().position(|n| n.trim().is_empty()) {
                return err(format!("entityState.terminalEvents.{module}[{empty}] is empty"));
            }
            terminal_events.insert(module, names.into_iter().collect());
        }
        Ok(StateRules { keep: raw.keep, terminal_events })
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
                "client {id:?} has a plain \"secret\": store only \"secretHash\" (hash it with `pms-events config hash-secret`)"
            ));
        }
        let secrets = Self::parse_secret_hashes(&id, c.secret_hash)?;
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
        Ok(Client { id, secrets, app_key: c.app_key, enterprise: c.enterprise, scopes, grants, webhooks })
    }

    /// A client's `secretHash`: a hash, or a list of one or two distinct hashes.
    fn parse_secret_hashes(id: &str, given: Option<SecretHashes>) -> Result<Vec<SecretHash>, ConfigError> {
        let texts = match given {
            None => return err(format!("client {id:?} has no secretHash")),
            Some(SecretHashes::One(text)) => vec![text],
            Some(SecretHashes::Rotating(list)) if list.is_empty() => {
                return err(format!("client {id:?} has an empty secretHash list"));
            }
            Some(SecretHashes::Rotating(list)) if list.len() > MAX_SECRET_HASHES => {
                return err(format!(
                    "client {id:?} has {} secret hashes: at most {MAX_SECRET_HASHES} (the current secret and the \
                        next, while it rotates)",
                    list.len()
                ));
            }
            Some(SecretHashes::Rotating(list)) => list,
        };
        let mut secrets: Vec<SecretHash> = Vec::with_capacity(texts.len());
        for (i, text) in texts.iter().enumerate() {
            let which = if texts.len() > 1 { format!("secretHash[{i}]") } else { "secretHash".into() };
            let hash = SecretHash::parse(text).map_err(|why| ConfigError(format!("client {id:?}: {which} {why}")))?;
            if secrets.contains(&hash) {
                return err(format!("client {id:?}: {which} repeats the other hash"));
            }
            secrets.push(hash);
        }
        Ok(secrets)
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
            None => DEFAULT_MAX_BATCH,
            Some(n) if (1..=MAX_MAX_BATCH as u64).contains(&n) => usize::try_from(n).unwrap_or(MAX_MAX_BATCH),
            Some(n) => return Err(at(format!("maxBatch must be between 1 and {MAX_MAX_BATCH} (got {n})"))),
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
}
