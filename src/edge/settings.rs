//! The service configuration and signing keys of this isolate, parsed once from the
//! Worker's bindings (`PMS_CONFIG`, `SIGNING_KEYS`).

use std::cell::RefCell;
use std::rc::Rc;

use worker::Env;

use crate::auth::token::KeySet;
use crate::config::ServiceConfig;

pub struct Settings {
    pub config: ServiceConfig,
    pub keys: KeySet,
}

thread_local! {
    static CACHE: RefCell<Option<Result<Rc<Settings>, String>>> = const { RefCell::new(None) };
}

fn binding(env: &Env, name: &str) -> Option<String> {
    env.secret(name).map(|s| s.to_string()).or_else(|_| env.var(name).map(|v| v.to_string())).ok()
}

/// The settings, or the reason they cannot be loaded. Parsed once per isolate: bindings
/// cannot change under a running isolate (a new secret or variable is a new deployment,
/// with new isolates), so no request pays for reading or comparing them again. The reason
/// is logged once and never contains secret material.
pub fn load(env: &Env) -> Result<Rc<Settings>, String> {
    CACHE.with(|cache| {
        cache
            .borrow_mut()
            .get_or_insert_with(|| {
                let outcome = parse(
                    &binding(env, "PMS_CONFIG").unwrap_or_default(),
                    &binding(env, "SIGNING_KEYS").unwrap_or_default(),
                );
                if let Err(why) = &outcome {
                    worker::console_error!(
                        "{}",
                        crate::audit::line("config.invalid", super::now_ms(), serde_json::json!({"error": why}))
                    );
                }
                outcome
            })
            .clone()
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
