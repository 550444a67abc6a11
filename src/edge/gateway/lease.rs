//! Open connections per app key, across the deployment. A vendor's connections land on many
//! gateway isolates, so the ceiling is kept by the app key's guard object: an upgrade asks
//! it for one more connection of this isolate (with the upgrade window, one request), a
//! connection that ends gives it back, and while this isolate holds connections of an app
//! key it renews its count every `CONNECTION_RENEW_MS`. An isolate that is evicted, or
//! whose connections end without a word, is forgotten once its count lapses
//! (`CONNECTION_LEASE_MS`). When the guard cannot be asked the upgrade goes ahead (a limit
//! must not lock vendors out): the renewal that follows counts it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

use wasm_bindgen_futures::spawn_local;
use worker::{Env, Method};

use crate::auth::ratelimit::CONNECTION_RENEW_MS;
use crate::edge::ask::{ask, Ask};
use crate::edge::guard_stub;
use crate::rpc;
use crate::rpc::guard::ConnectionsHeld;

thread_local! {
    /// This isolate's name to the guard objects, drawn once.
    static ISOLATE: String = crate::auth::token::random_id();
    /// Connections this isolate holds, per app key.
    static HELD: RefCell<HashMap<String, u32>> = RefCell::new(HashMap::new());
}

pub fn isolate_id() -> String {
    ISOLATE.with(Clone::clone)
}

/// The guard object of an app key's upgrades and connections.
pub fn guard_name(app_key: &str) -> String {
    format!("upgrade:{app_key}")
}

/// One open connection of an app key, counted while it lives.
pub struct ConnectionLease {
    env: Env,
    app_key: String,
}

impl ConnectionLease {
    /// Counts a connection the guard admitted (or could not be asked about).
    pub fn hold(env: &Env, app_key: &str) -> ConnectionLease {
        let first = HELD.with(|held| {
            let mut held = held.borrow_mut();
            let count = held.entry(app_key.to_string()).or_insert(0);
            *count += 1;
            *count == 1
        });
        if first {
            spawn_local(renew_while_held(env.clone(), app_key.to_string()));
        }
        ConnectionLease { env: env.clone(), app_key: app_key.to_string() }
    }
}

impl ConnectionLease {
    /// The connection ended: gives it back to the guard. Awaited by the connection's task,
    /// which the runtime keeps alive past the socket's close (`waitUntil`).
    pub async fn release(self) {
        let (env, app_key) = (self.env.clone(), self.app_key.clone());
        drop(self);
        // A release that is lost is corrected by the next renewal, or by the lapse.
        if let Err(e) = tell(&env, &app_key, rpc::guard::RELEASE, 0).await {
            worker::console_warn!("releasing a connection of {app_key}: {e}");
        }
    }
}

/// The local count goes down however the lease ends; the guard hears of it from
/// [`ConnectionLease::release`], or from the next renewal.
impl Drop for ConnectionLease {
    fn drop(&mut self) {
        HELD.with(|held| {
            let mut held = held.borrow_mut();
            if let Some(count) = held.get_mut(&self.app_key) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    held.remove(&self.app_key);
                }
            }
        });
    }
}

fn held(app_key: &str) -> u32 {
    HELD.with(|held| held.borrow().get(app_key).copied().unwrap_or(0))
}

/// Renews this isolate's count of `app_key` while it holds any of its connections.
async fn renew_while_held(env: Env, app_key: String) {
    loop {
        worker::Delay::from(Duration::from_millis(CONNECTION_RENEW_MS)).await;
        let count = held(&app_key);
        if count == 0 {
            return;
        }
        if let Err(e) = tell(&env, &app_key, rpc::guard::RENEW, count).await {
            worker::console_warn!("renewing the open connections of {app_key}: {e}");
        }
    }
}

async fn tell(env: &Env, app_key: &str, path: &str, count: u32) -> worker::Result<()> {
    let stub = guard_stub(env, &guard_name(app_key))?;
    let body = Ask::json(&ConnectionsHeld { isolate: isolate_id(), count })?;
    ask(&stub, rpc::GUARD_ORIGIN, Method::Post, path, None, body).await.map(|_| ())
}
