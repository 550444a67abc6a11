//! `GET /subscriptions`: the vendor's WebSocket, terminated in the Worker. The protocol
//! decisions are `protocol::Session`'s; this file performs them. Each subscription gets
//! its own internal socket to its chain's `ChainLog` object, which sends batches of
//! ready-made `next` frames; the gateway forwards them, acknowledges each batch (the
//! object's flow-control window), and reattaches at the next offset if the object
//! restarts, so the vendor sees neither a gap nor a repeat.
//!
//! No `unwrap` here: a panic would reset the wasm instance and silently break every other
//! connection in the isolate. Every failure becomes a close code or an `error` message.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use futures::{future::FutureExt, select, StreamExt};
use serde_json::{json, Value};
use wasm_bindgen_futures::spawn_local;
use worker::{
    Delay, Env, Headers, Method, Request, RequestInit, Response, Result, WebSocket, WebSocketPair, WebsocketEvent,
};

use super::settings::Settings;
use super::{audit, chain_stub, now_ms, reply};
use crate::connect::{check_init, resolve_url_key};
use crate::fanout::{ack_message, parse_batch, Start, SubscriptionSpec};
use crate::graphql::{Api, GraphQLError, Operation, QueryContext, SubscribePayload};
use crate::protocol::{close, Action, GuardTick, Session, SlowConsumerGuard, SUBPROTOCOL};
use crate::subscribe::plan_subscription;

/// Frames larger than this close the connection with 1009.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// `connection_init` must arrive within this time (CONTRACT §4).
pub const INIT_TIMEOUT: Duration = Duration::from_secs(5);
/// Forwarded frames per acknowledgement (a quarter of the chain object's window).
const ACK_EVERY: u32 = 128;
/// Reattach attempts after the chain object went away, before the operation fails.
const MAX_REATTACH: u32 = 5;

thread_local! {
    static API: RefCell<Option<Rc<Api>>> = const { RefCell::new(None) };
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
    let offered = req.headers().get("Sec-WebSocket-Protocol").ok().flatten().unwrap_or_default();
    let protocol_ok = offered.split(',').any(|p| p.trim() == SUBPROTOCOL);
    let pair = WebSocketPair::new()?;
    let conn = Rc::new(Connection {
        ws: pair.server,
        env: env.clone(),
        settings,
        id: crate::token::random_id(),
        request_id: request_id.to_string(),
        url_app_key: client.app_key.clone(),
        session: RefCell::new(Session::new(MAX_FRAME_BYTES)),
        operations: RefCell::new(HashMap::new()),
        opened_at: now_ms(),
        slow_guard: RefCell::new(None),
    });
    audit(
        "connection.opened",
        json!({"requestId": request_id, "connectionId": conn.id, "appKey": client.app_key, "clientId": client.id}),
    );
    spawn_local(run(conn, protocol_ok));
    let resp = Response::from_websocket(pair.client)?;
    if !protocol_ok {
        return Ok(resp);
    }
    let headers = Headers::new();
    headers.set("Sec-WebSocket-Protocol", SUBPROTOCOL)?;
    Ok(resp.with_headers(headers))
}

struct Connection {
    ws: WebSocket,
    env: Env,
    settings: Rc<Settings>,
    id: String,
    request_id: String,
    url_app_key: String,
    session: RefCell<Session>,
    /// Running operations by id; dropping the flag's last owner does not stop anything,
    /// the `stopped` flag does.
    operations: RefCell<HashMap<String, Rc<RunningOperation>>>,
    opened_at: u64,
    /// Present when `limits.slowConsumerSeconds` is configured.
    slow_guard: RefCell<Option<SlowConsumerGuard>>,
}

/// One running operation (a subscription's pipeline).
struct RunningOperation {
    stopped: Cell<bool>,
    internal: RefCell<Option<WebSocket>>,
    /// Frames forwarded and not yet acknowledged to the chain object, and the offset they
    /// reach: acknowledged every `ACK_EVERY` frames and once more when the operation stops,
    /// so the object's saved cursor is exact without a storage write per frame.
    unacked: Cell<u32>,
    through: Cell<u64>,
}

impl RunningOperation {
    fn stop(&self) {
        self.stopped.set(true);
        if let Some(ws) = self.internal.borrow_mut().take() {
            // Sent before the close, so it arrives first: the last delivered offset.
            let _ = ws.send_with_str(ack_message(self.unacked.replace(0) as usize, self.through.get()));
            let _ = ws.close(Some(1000), Some("subscription complete"));
        }
    }
}

impl Connection {
    fn principal_fields(&self) -> Value {
        match self.session.borrow().principal() {
            Some(t) => json!({"clientId": t.claims.sub, "enterpriseId": t.claims.enterprise_id}),
            None => json!({}),
        }
    }

    fn audit(&self, event: &str, mut fields: Value) {
        if let (Value::Object(map), Value::Object(extra)) = (&mut fields, self.principal_fields()) {
            map.insert("requestId".into(), Value::from(self.request_id.as_str()));
            map.insert("connectionId".into(), Value::from(self.id.as_str()));
            map.extend(extra);
        }
        audit(event, fields);
    }

    /// Carries out the session's actions in order.
    fn perform(self: &Rc<Self>, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Send(text) => {
                    let _ = self.ws.send_with_str(&text);
                }
                Action::Close(c) => {
                    self.audit("connection.closed", json!({"code": c.code, "reason": c.reason, "durationMs": now_ms().saturating_sub(self.opened_at)}));
                    let _ = self.ws.close(Some(c.code), Some(&c.reason));
                }
                Action::Start { id, payload } => {
                    let op = Rc::new(RunningOperation {
                        stopped: Cell::new(false),
                        internal: RefCell::new(None),
                        unacked: Cell::new(0),
                        through: Cell::new(0),
                    });
                    self.operations.borrow_mut().insert(id.clone(), op.clone());
                    spawn_local(start_operation(self.clone(), id, payload, op));
                }
                Action::PongReceived => {
                    if let Some(guard) = self.slow_guard.borrow_mut().as_mut() {
                        guard.on_pong();
                    }
                }
                Action::Stop { id } => {
                    if let Some(op) = self.operations.borrow_mut().remove(&id) {
                        op.stop();
                    }
                }
            }
        }
    }

    fn fail(self: &Rc<Self>, id: &str, errors: &[GraphQLError]) {
        let payload = serde_json::to_value(errors).unwrap_or_else(|_| json!([{"message": "internal error"}]));
        let codes: Vec<&str> = errors.iter().filter_map(|e| e.code()).collect();
        self.audit(
            "subscription.refused",
            json!({"operationId": id, "codes": codes, "message": errors.first().map(|e| e.message.clone())}),
        );
        self.operations.borrow_mut().remove(id);
        let actions = self.session.borrow_mut().fail(id, &payload);
        self.perform(actions);
    }
}

async fn run(conn: Rc<Connection>, protocol_ok: bool) {
    let ws = conn.ws.clone();
    let mut events = match ws.events() {
        Ok(e) => e,
        Err(_) => return,
    };
    if ws.accept().is_err() {
        return;
    }
    if !protocol_ok {
        conn.audit("connection.refused", json!({"code": close::BAD_SUBPROTOCOL}));
        let _ = ws.close(Some(close::BAD_SUBPROTOCOL), Some("Subprotocol not acceptable"));
        return;
    }
    let mut init_timer = Delay::from(INIT_TIMEOUT).fuse();
    let mut expiry_timer = futures::future::Fuse::terminated();
    let mut guard_timer = futures::future::Fuse::terminated();
    loop {
        select! {
            event = events.next().fuse() => match event {
                Some(Ok(WebsocketEvent::Message(msg))) => {
                    let was_ready = conn.session.borrow().principal().is_some();
                    let actions = match msg.text() {
                        Some(text) => {
                            let settings = conn.settings.clone();
                            let url_app_key = conn.url_app_key.clone();
                            conn.session.borrow_mut().on_text(&text, |payload| {
                                match settings.config.client_by_app_key(&url_app_key) {
                                    Some(client) => check_init(payload, client, &settings.keys, &settings.config, now_ms() / 1000),
                                    None => Err(crate::protocol::Close::new(close::FORBIDDEN, "Forbidden: unknown app key")),
                                }
                            })
                        }
                        None => conn.session.borrow_mut().on_binary(),
                    };
                    let expires_at = conn.session.borrow().principal().map(|t| t.expires_at);
                    if let (false, Some(expires_at)) = (was_ready, expires_at) {
                        conn.audit("connection.authenticated", json!({"appKey": conn.url_app_key, "tokenExpiresAt": expires_at}));
                        let remaining_ms = (expires_at * 1000).saturating_sub(now_ms());
                        expiry_timer = Delay::from(Duration::from_millis(remaining_ms)).fuse();
                        if let Some(seconds) = conn.settings.config.limits.slow_consumer_seconds {
                            let guard = SlowConsumerGuard::new(seconds);
                            guard_timer = Delay::from(Duration::from_millis(guard.tick_interval_ms())).fuse();
                            *conn.slow_guard.borrow_mut() = Some(guard);
                        }
                    }
                    conn.perform(actions);
                }
                Some(Ok(WebsocketEvent::Close(c))) => {
                    let actions = conn.session.borrow_mut().on_closed();
                    conn.perform(actions);
                    conn.audit("connection.closed", json!({"code": c.code(), "by": "client", "durationMs": now_ms().saturating_sub(conn.opened_at)}));
                    let code = crate::protocol::close::echo(c.code());
                    let _ = ws.close(Some(code), Some("closed"));
                }
                Some(Err(_)) | None => {
                    let actions = conn.session.borrow_mut().on_closed();
                    conn.perform(actions);
                }
            },
            _ = init_timer => {
                let actions = conn.session.borrow_mut().on_init_timeout();
                conn.perform(actions);
            },
            _ = guard_timer => {
                let tick = conn.slow_guard.borrow_mut().as_mut().map(|g| (g.on_tick(now_ms()), g.tick_interval_ms()));
                if let Some((tick, interval)) = tick {
                    match tick {
                        GuardTick::SendPing(ping) => {
                            let _ = ws.send_with_str(&ping);
                        }
                        GuardTick::TooSlow(c) => {
                            let actions = conn.session.borrow_mut().on_slow_consumer(c);
                            conn.perform(actions);
                        }
                        GuardTick::Nothing => {}
                    }
                    guard_timer = Delay::from(Duration::from_millis(interval)).fuse();
                }
            },
            _ = expiry_timer => {
                let actions = conn.session.borrow_mut().on_token_expired();
                conn.perform(actions);
            },
        }
        if conn.session.borrow().is_closed() {
            break;
        }
    }
    for (_, op) in conn.operations.borrow_mut().drain() {
        op.stop();
    }
}

async fn start_operation(conn: Rc<Connection>, id: String, payload: Value, op: Rc<RunningOperation>) {
    let payload: SubscribePayload = match serde_json::from_value(payload) {
        Ok(p) => p,
        Err(e) => {
            return conn.fail(&id, &[GraphQLError::coded(format!("invalid subscribe payload: {e}"), "BAD_REQUEST")])
        }
    };
    let prepared = match api().prepare(&payload) {
        Ok(p) => p,
        Err(errors) => return conn.fail(&id, &errors),
    };
    let Some(token) = conn.session.borrow().principal().cloned() else {
        return;
    };
    match prepared {
        Operation::Query(query) => {
            let active =
                if query.selects_connection() { app_key_active_elsewhere(&conn, &token.claims).await } else { false };
            let ctx = QueryContext {
                connection_id: conn.id.clone(),
                connection_active: active,
                help_base_url: conn.settings.config.issuer.clone(),
            };
            let result = query.execute(&ctx);
            conn.operations.borrow_mut().remove(&id);
            let actions = conn.session.borrow_mut().single_result(&id, &result);
            conn.perform(actions);
        }
        Operation::Subscription(sub) => {
            match plan_subscription(&conn.settings.config, &token.claims, &id, &conn.id, sub) {
                Ok((chain, spec)) => stream(conn, id, chain, spec, op).await,
                Err(e) => conn.fail(&id, &[e]),
            }
        }
    }
}

/// Whether the token's app key streams on another connection, on any of its chains.
async fn app_key_active_elsewhere(conn: &Rc<Connection>, claims: &crate::token::AccessClaims) -> bool {
    for grant in &claims.chains {
        let Ok(stub) = chain_stub(&conn.env, &grant.chain) else { continue };
        let url = format!("https://chain.internal/active?appKey={}&connection={}", claims.app_key, conn.id);
        if let Ok(mut resp) = stub.fetch_with_str(&url).await {
            if let Ok(v) = resp.json::<Value>().await {
                if v["active"].as_bool() == Some(true) {
                    return true;
                }
            }
        }
    }
    false
}

/// Attaches the subscription to its chain and forwards batches until it ends.
async fn stream(
    conn: Rc<Connection>,
    id: String,
    chain: String,
    mut spec: SubscriptionSpec<crate::graphql::ProjectionPlan>,
    op: Rc<RunningOperation>,
) {
    let mut next_offset: Option<u64> = None;
    let mut forwarded: u64 = 0;
    let mut first_offset: Option<u64> = None;
    let mut last_offset: Option<u64> = None;
    let mut failures = 0;
    let started_at = now_ms();
    conn.audit(
        "subscription.started",
        json!({"operationId": id, "chain": chain, "start": spec.start, "filter": spec.filter}),
    );
    loop {
        if op.stopped.get() {
            break;
        }
        if let Some(next) = next_offset {
            spec.start = Start::At(next);
        }
        let internal = match attach(&conn.env, &chain, &spec).await {
            Ok(Attached::Socket { ws, start }) => {
                failures = 0;
                next_offset.get_or_insert(start);
                ws
            }
            Ok(Attached::Refused(error)) => return conn.fail(&id, &[error]),
            Err(e) => {
                failures += 1;
                if failures > MAX_REATTACH {
                    conn.audit(
                        "subscription.failed",
                        json!({"operationId": id, "chain": chain, "error": e.to_string()}),
                    );
                    return conn.fail(
                        &id,
                        &[GraphQLError::coded(
                            "the chain's event log is unavailable; resubscribe to resume",
                            "INTERNAL_SERVER_ERROR",
                        )],
                    );
                }
                Delay::from(Duration::from_millis(100 * u64::from(failures))).await;
                continue;
            }
        };
        let mut events = match internal.events() {
            Ok(e) => e,
            Err(_) => continue,
        };
        if internal.accept().is_err() {
            continue;
        }
        *op.internal.borrow_mut() = Some(internal.clone());
        op.unacked.set(0);
        if op.stopped.get() {
            op.stop();
            break;
        }
        // The first acknowledgement opens the window.
        let _ = internal.send_with_str(ack_message(0, 0));
        while let Some(event) = events.next().await {
            let WebsocketEvent::Message(msg) = (match event {
                Ok(e) => e,
                Err(_) => break,
            }) else {
                break;
            };
            let Some(text) = msg.text() else { continue };
            let Some(batch) = parse_batch(&text) else { continue };
            if op.stopped.get() || !conn.session.borrow().is_active(&id) {
                break;
            }
            let expected = next_offset.unwrap_or(0);
            let mut count = 0;
            for (offset, frame) in &batch.frames {
                count += 1;
                // A batch resent after a reattach may overlap what was forwarded.
                if *offset < expected {
                    continue;
                }
                let _ = conn.ws.send_with_str(frame);
                forwarded += 1;
                first_offset.get_or_insert(*offset);
                last_offset = Some(*offset);
            }
            next_offset = Some(expected.max(batch.through + 1));
            op.through.set(batch.through);
            let unacked = op.unacked.get() + count as u32;
            if unacked >= ACK_EVERY {
                let _ = internal.send_with_str(ack_message(unacked as usize, batch.through));
                op.unacked.set(0);
            } else {
                op.unacked.set(unacked);
            }
        }
        op.internal.borrow_mut().take();
        if op.stopped.get() || !conn.session.borrow().is_active(&id) {
            break;
        }
        // The object went away (deploy, eviction): reattach at the next offset.
        conn.audit("subscription.reattached", json!({"operationId": id, "chain": chain, "nextOffset": next_offset}));
    }
    conn.audit(
        "subscription.completed",
        json!({
            "operationId": id, "chain": chain, "delivered": forwarded,
            "firstOffset": first_offset.map(|o| o.to_string()), "lastOffset": last_offset.map(|o| o.to_string()),
            "durationMs": now_ms().saturating_sub(started_at),
        }),
    );
}

enum Attached {
    Socket { ws: WebSocket, start: u64 },
    Refused(GraphQLError),
}

async fn attach(env: &Env, chain: &str, spec: &SubscriptionSpec<crate::graphql::ProjectionPlan>) -> Result<Attached> {
    let encoded =
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(spec).map_err(|e| worker::Error::RustError(e.to_string()))?);
    let headers = Headers::new();
    headers.set("Upgrade", "websocket")?;
    headers.set("x-subscription", &encoded)?;
    let mut init = RequestInit::new();
    init.with_method(Method::Get).with_headers(headers);
    let req = Request::new_with_init("https://chain.internal/subscribe", &init)?;
    let mut resp = chain_stub(env, chain)?.fetch_with_request(req).await?;
    if resp.status_code() == 101 {
        let start = resp.headers().get("x-start-offset").ok().flatten().and_then(|s| s.parse().ok()).unwrap_or(0);
        return match resp.websocket() {
            Some(ws) => Ok(Attached::Socket { ws, start }),
            None => Err(worker::Error::RustError("the chain object answered 101 without a socket".into())),
        };
    }
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    match body["code"].as_str() {
        Some(code) => {
            Ok(Attached::Refused(GraphQLError::coded(body["message"].as_str().unwrap_or(code).to_string(), code)))
        }
        None => Err(worker::Error::RustError(format!("the chain object answered {}", resp.status_code()))),
    }
}
