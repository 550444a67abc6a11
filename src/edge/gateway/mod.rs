//! `GET /subscriptions`: the vendor's WebSocket, terminated in the Worker. The protocol
//! decisions are `protocol::Session`'s; this file performs them. Each subscription gets
//! its own internal socket to its chain's `ChainLog` object, which sends batches of
//! ready-made `next` frames; the gateway forwards them, acknowledges each batch (the
//! object's flow-control window), and reattaches at the next offset if the object
//! restarts, so the vendor sees neither a gap nor a repeat.
//!
//! No `unwrap` here: a panic would reset the wasm instance and silently break every other
//! connection in the isolate. Every failure becomes a close code or an `error` message.

mod connection;
mod operation;

use std::cell::RefCell;
use std::rc::Rc;

use serde_json::json;
use wasm_bindgen_futures::spawn_local;
use worker::{Env, Headers, Method, Request, Response, Result, WebSocketPair};

use super::ask::{ask, Ask};
use super::settings::Settings;
use super::{audit, guard_stub, reply};
use crate::auth::connect::resolve_url_key;
use crate::auth::ratelimit::OpenConnections;
use crate::graphql::Api;
use crate::rpc;
use crate::rpc::guard::{UpgradeRequest, UpgradeVerdict};
use crate::stream::protocol::{offers_subprotocol, SessionLimits, SUBPROTOCOL};
use connection::Connection;

/// Frames larger than this close the connection with 1009.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// The `Retry-After` of an upgrade refused because the app key holds its most connections.
const CONNECTIONS_RETRY_AFTER_SECONDS: u64 = 10;

thread_local! {
    static API: RefCell<Option<Rc<Api>>> = const { RefCell::new(None) };
    /// Open vendor connections per app key in this isolate.
    static OPEN: RefCell<OpenConnections> = RefCell::new(OpenConnections::default());
}

/// One open connection of an app key, counted while it lives.
pub(super) struct OpenSlot(String);

impl OpenSlot {
    fn take(app_key: &str, max: usize) -> Option<OpenSlot> {
        OPEN.with(|open| open.borrow_mut().take(app_key, max)).then(|| OpenSlot(app_key.to_string()))
    }
}

impl Drop for OpenSlot {
    fn drop(&mut self) {
        OPEN.with(|open| open.borrow_mut().give_back(&self.0));
    }
}

fn too_many(request_id: &str, app_key: &str, retry_after: u64, why: String) -> Result<Response> {
    audit("connection.refused", json!({"requestId": request_id, "appKey": app_key, "status": 429, "reason": why}));
    let resp = reply::error(429, "too_many_connections", why)?;
    reply::with_header(resp, "Retry-After", &retry_after.to_string())
}

/// Asks the app key's guard object whether one more upgrade fits its window.
async fn admit_upgrade(env: &Env, app_key: &str, settings: &Settings) -> Result<Option<u64>> {
    let limits = &settings.config.limits;
    let stub = guard_stub(env, &format!("upgrade:{app_key}"))?;
    let body = Ask::json(&UpgradeRequest {
        max: limits.max_upgrades_per_app_key,
        window_seconds: limits.upgrade_window_seconds,
    })?;
    let verdict: UpgradeVerdict =
        ask(&stub, rpc::GUARD_ORIGIN, Method::Post, rpc::guard::UPGRADE, None, body).await?.decode()?;
    Ok(verdict.retry_after)
}

/// The GraphQL schema of this isolate, built on first use (never at module start: the
/// runtime refuses randomness, which the schema's hasher needs, at global scope).
fn api() -> Rc<Api> {
    API.with(|cell| cell.borrow_mut().get_or_insert_with(|| Rc::new(Api::new())).clone())
}

pub async fn upgrade(req: Request, env: &Env, settings: Rc<Settings>, request_id: &str) -> Result<Response> {
    let url = req.url()?;
    let key = url.query_pairs().find(|(k, _)| k == "key").map(|(_, v)| v.into_owned());
    let client = match resolve_url_key(key.as_deref(), &settings.config) {
        Ok(c) => c.clone(),
        Err(why) => {
            audit("connection.refused", json!({"requestId": request_id, "status": 400, "reason": why}));
            return reply::error(400, "invalid_key", why);
        }
    };
    let upgrade = req.headers().get("Upgrade").ok().flatten().unwrap_or_default();
    if !upgrade.eq_ignore_ascii_case("websocket") {
        let resp = reply::error(
            426,
            "upgrade_required",
            "this endpoint speaks WebSocket (graphql-transport-ws); send Upgrade: websocket",
        )?;
        return reply::with_header(resp, "Upgrade", "websocket");
    }
    let limits = settings.config.limits.clone();
    let Some(slot) = OpenSlot::take(&client.app_key, limits.max_connections_per_app_key) else {
        return too_many(
            request_id,
            &client.app_key,
            CONNECTIONS_RETRY_AFTER_SECONDS,
            format!(
                "this app key already holds {} open connections, the most it may",
                limits.max_connections_per_app_key
            ),
        );
    };
    // A rate limit that cannot be asked does not lock vendors out: the upgrade goes ahead.
    let verdict = admit_upgrade(env, &client.app_key, &settings).await.unwrap_or_else(|e| {
        worker::console_warn!("upgrade rate of {}: {e}; admitted", client.app_key);
        None
    });
    if let Some(retry_after) = verdict {
        return too_many(
            request_id,
            &client.app_key,
            retry_after,
            format!(
                "more than {} connections of this app key in {} s; retry after {retry_after} s",
                limits.max_upgrades_per_app_key, limits.upgrade_window_seconds
            ),
        );
    }
    let offered = req.headers().get("Sec-WebSocket-Protocol").ok().flatten().unwrap_or_default();
    let protocol_ok = offers_subprotocol(&offered);
    let pair = WebSocketPair::new()?;
    let session_limits = SessionLimits {
        max_frame_bytes: MAX_FRAME_BYTES,
        max_subscriptions: limits.max_subscriptions_per_connection,
        max_id_bytes: limits.max_operation_id_bytes,
    };
    let conn = Rc::new(Connection::new(pair.server, env, settings, request_id, &client.app_key, session_limits, slot));
    audit(
        "connection.opened",
        json!({"requestId": request_id, "connectionId": conn.id, "appKey": client.app_key, "clientId": client.id}),
    );
    spawn_local(connection::run(conn, protocol_ok));
    let resp = Response::from_websocket(pair.client)?;
    if !protocol_ok {
        return Ok(resp);
    }
    let headers = Headers::new();
    headers.set("Sec-WebSocket-Protocol", SUBPROTOCOL)?;
    Ok(resp.with_headers(headers))
}
