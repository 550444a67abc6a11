//! `GET /subscriptions`: the vendor's WebSocket, terminated in the Worker. The protocol
//! decisions are `protocol::Session`'s; this file performs them. Each subscription gets
//! its own internal socket to its chain's `ChainLog` object, which sends batches of
//! ready-made `next` frames; the gateway forwards them, acknowledges each batch (the
//! object's flow-control window), and reattaches at the next offset if the object
//! restarts, so the vendor sees neither a gap nor a repeat.
//!
//! No `unwrap` here: a panic would reset the wasm instance and silently break every other
//! connection in the isolate. Every failure becomes a close code or an `error` message.

mod api;
mod attach;
mod connection;
mod lease;
mod operation;
mod running;
mod session_loop;

use std::rc::Rc;

use serde_json::json;
use worker::{Context, Env, Headers, Method, Request, Response, Result, WebSocketPair};

use super::ask::{ask, Ask};
use super::settings::Settings;
use super::{audit, guard_stub, reply};
use crate::rpc;
use crate::rpc::guard::{UpgradeRefusal, UpgradeRequest, UpgradeVerdict};
use crate::stream::connect::resolve_url_key;
use crate::stream::protocol::{offers_subprotocol, SessionLimits, SUBPROTOCOL};
use connection::Connection;
use lease::{guard_name, isolate_id, ConnectionLease};

/// Frames larger than this close the connection with 1009.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// The `Retry-After` of an upgrade refused because the app key holds its most connections.
const CONNECTIONS_RETRY_AFTER_SECONDS: u64 = 10;

fn too_many(request_id: &str, app_key: &str, retry_after: u64, why: String) -> Result<Response> {
    audit("connection.refused", json!({"requestId": request_id, "appKey": app_key, "status": 429, "reason": why}));
    let resp = reply::error(429, "too_many_connections", why)?;
    reply::with_header(resp, "Retry-After", &retry_after.to_string())
}

/// Asks the app key's guard object whether one more connection fits: within its open
/// connections across the deployment and its upgrade window.
async fn admit_upgrade(env: &Env, app_key: &str, settings: &Settings) -> Result<UpgradeVerdict> {
    let limits = &settings.config.limits;
    let stub = guard_stub(env, &guard_name(app_key))?;
    let body = Ask::json(&UpgradeRequest {
        max: limits.max_upgrades_per_app_key,
        window_seconds: limits.upgrade_window_seconds,
        isolate: isolate_id(),
        max_open: limits.max_connections_per_app_key as u64,
    })?;
    ask(&stub, rpc::GUARD_ORIGIN, Method::Post, rpc::guard::UPGRADE, None, body).await?.decode()
}

pub async fn upgrade(
    req: Request,
    env: &Env,
    ctx: &Context,
    settings: Rc<Settings>,
    request_id: &str,
) -> Result<Response> {
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
    // A guard that cannot be asked does not lock vendors out: the upgrade goes ahead, and
    // this isolate's next renewal counts the connection.
    let verdict = admit_upgrade(env, &client.app_key, &settings).await.unwrap_or_else(|e| {
        worker::console_warn!("connection limits of {}: {e}; admitted", client.app_key);
        UpgradeVerdict { retry_after: None, refused: None }
    });
    match verdict.refused {
        None => {}
        Some(UpgradeRefusal::Open) => {
            let why = format!(
                "this app key already holds {} open connections, the most it may",
                limits.max_connections_per_app_key
            );
            return too_many(request_id, &client.app_key, CONNECTIONS_RETRY_AFTER_SECONDS, why);
        }
        Some(UpgradeRefusal::Rate) => {
            let retry_after = verdict.retry_after.unwrap_or(1);
            let why = format!(
                "more than {} connections of this app key in {} s; retry after {retry_after} s",
                limits.max_upgrades_per_app_key, limits.upgrade_window_seconds
            );
            return too_many(request_id, &client.app_key, retry_after, why);
        }
    }
    let lease = ConnectionLease::hold(env, &client.app_key);
    let offered = req.headers().get("Sec-WebSocket-Protocol").ok().flatten().unwrap_or_default();
    let protocol_ok = offers_subprotocol(&offered);
    let pair = WebSocketPair::new()?;
    let session_limits = SessionLimits {
        max_frame_bytes: MAX_FRAME_BYTES,
        max_subscriptions: limits.max_subscriptions_per_connection,
        max_id_bytes: limits.max_operation_id_bytes,
    };
    let conn = Rc::new(Connection::new(pair.server, env, settings, request_id, &client.app_key, session_limits, lease));
    audit(
        "connection.opened",
        json!({"requestId": request_id, "connectionId": conn.id, "appKey": client.app_key, "clientId": client.id}),
    );
    // Kept alive past the socket's close, so that the connection's end (its release) runs.
    ctx.wait_until(session_loop::run(conn, protocol_ok));
    let resp = Response::from_websocket(pair.client)?;
    if !protocol_ok {
        return Ok(resp);
    }
    let headers = Headers::new();
    headers.set("Sec-WebSocket-Protocol", SUBPROTOCOL)?;
    Ok(resp.with_headers(headers))
}
