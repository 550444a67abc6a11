//! The service configuration and signing keys of this isolate, parsed once from the
//! Worker's bindings (`PMS_CONFIG`, `SIGNING_KEYS`) and kept while they do not change.

use std::cell::RefCell;
use std::rc::Rc;

use worker::Env;

use crate::config::ServiceConfig;
use crate::token::KeySet;

pub struct Settings {
    pub config: ServiceConfig,
    pub keys: KeySet,
}

struct Cached {
    source: (String, String),
    outcome: Result<Rc<Settings>, String>,
}

thread_local! {
    static CACHE: RefCell<Option<Cached>> = const { RefCell::new(None) };
}

fn binding(env: &Env, name: &str) -> Option<String> {
    env.secret(name).map(|s| s.to_string()).or_else(|_| env.var(name).map(|v| v.to_string())).ok()
}

/// The settings, or the reason they cannot be loaded (logged once per change, not per
/// request). The reason never contains secret material.
pub fn load(env: &Env) -> Result<Rc<Settings>, String> {
    let source = (binding(env, "PMS_CONFIG").unwrap_or_default(), binding(env, "SIGNING_KEYS").unwrap_or_default());
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some(c) = cache.as_ref().filter(|c| c.source == source) {
            return c.outcome.clone();
        }
        let outcome = parse(&source.0, &source.1);
        if let Err(why) = &outcome {
            worker::console_error!(
                "{}",
                crate::audit::line("config.invalid", super::now_ms(), serde_json::json!({"error": why}))
            );
        }
        *cache = Some(Cached { source, outcome: outcome.clone() });
        outcome
    })
}

fn parse(config: &str, keys: &str) -> Result<Rc<Settings>, String> {
    if config.trim().is_empty() {
        return Err("PMS_CONFIG is not set (see README: configuration)".into());
    }
    if keys.trim().is_empty() {
        return Err("SIGNING_KEYS is not set (see README: signing keys)".into());
    }
    let config = ServiceConfig::parse(config).map_err(|e| e.to_string())?;
    let keys = KeySet::parse(keys)?;
    Ok(Rc::new(Settings { config, keys }))
}
