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

use futures::{future::FutureExt, select, StreamExt};
use serde_json::{json, Value};
use wasm_bindgen_futures::spawn_local;
use worker::{
    Delay, Env, Headers, Method, Request, RequestInit, Response, Result, WebSocket, WebSocketPair, WebsocketEvent,
};

use super::ask::{ask, whole_body, Ask};
use super::settings::Settings;
use super::{audit, chain_stub, guard_stub, now_ms, reply};
use crate::auth::connect::{check_init, resolve_url_key};
use crate::auth::ratelimit::rpc::{UpgradeRequest, UpgradeVerdict};
use crate::graphql::codes::INTERNAL_SERVER_ERROR;
use crate::graphql::{Api, GraphQLError, Operation, QueryContext, SubscribePayload};
use crate::rpc;
use crate::stream::fanout::SubscriptionSpec;
use crate::stream::protocol::{close, Action, GuardTick, Session, SessionLimits, SlowConsumerGuard, SUBPROTOCOL};
use crate::stream::relay::{Relay, Retry, Step};
use crate::stream::subscribe::plan_subscription;

/// Frames larger than this close the connection with 1009.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// The `Retry-After` of an upgrade refused because the app key holds its most connections.
const CONNECTIONS_RETRY_AFTER_SECONDS: u64 = 10;

thread_local! {
    static API: RefCell<Option<Rc<Api>>> = const { RefCell::new(None) };
    /// Open vendor connections per app key in this isolate.
    static OPEN: RefCell<HashMap<String, usize>> = RefCell::new(HashMap::new());
}

/// One open connection of an app key, counted while it lives.
struct OpenSlot(String);

impl OpenSlot {
    fn take(app_key: &str, max: usize) -> Option<OpenSlot> {
        OPEN.with(|open| {
            let mut open = open.borrow_mut();
            let n = open.entry(app_key.to_string()).or_insert(0);
            if *n >= max {
                return None;
            }
            *n += 1;
            Some(OpenSlot(app_key.to_string()))
        })
    }
}

impl Drop for OpenSlot {
    fn drop(&mut self) {
        OPEN.with(|open| {
            let mut open = open.borrow_mut();
            if let Some(n) = open.get_mut(&self.0) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    open.remove(&self.0);
                }
            }
        });
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
    let protocol_ok = offered.split(',').any(|p| p.trim() == SUBPROTOCOL);
    let pair = WebSocketPair::new()?;
    let session_limits = SessionLimits {
        max_frame_bytes: MAX_FRAME_BYTES,
        max_subscriptions: limits.max_subscriptions_per_connection,
        max_id_bytes: limits.max_operation_id_bytes,
    };
    let conn = Rc::new(Connection {
        ws: pair.server,
        env: env.clone(),
        settings,
        id: crate::auth::token::random_id(),
        request_id: request_id.to_string(),
        url_app_key: client.app_key.clone(),
        session: RefCell::new(Session::new(session_limits)),
        operations: RefCell::new(HashMap::new()),
        opened_at: now_ms(),
        slow_guard: RefCell::new(None),
        _slot: slot,
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
    /// Created once the connection is authenticated.
    slow_guard: RefCell<Option<SlowConsumerGuard>>,
    /// This connection's place in its app key's count; given back when it is dropped.
    _slot: OpenSlot,
}

/// One running operation (a subscription's pipeline).
struct RunningOperation {
    stopped: Cell<bool>,
    internal: RefCell<Option<WebSocket>>,
    /// The subscription's relay decisions (forwarding, acknowledgement, reattach).
    relay: RefCell<Relay>,
}

impl RunningOperation {
    fn stop(&self) {
        self.stopped.set(true);
        if let Some(ws) = self.internal.borrow_mut().take() {
            // Sent before the close, so it arrives first: the last delivered offset.
            let _ = ws.send_with_str(self.relay.borrow_mut().final_ack());
            let _ = ws.close(Some(close::NORMAL), Some("subscription complete"));
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

    /// Sends a frame to the vendor and tells the slow-consumer guard, which may answer with
    /// a ping to send or a verdict to close.
    fn send(self: &Rc<Self>, text: &str) {
        let _ = self.ws.send_with_str(text);
        let tick = self
            .slow_guard
            .borrow_mut()
            .as_mut()
            .map(|g| g.on_sent(text.len(), now_ms(), crate::auth::token::random_id));
        self.on_guard(tick);
    }

    fn on_guard(self: &Rc<Self>, tick: Option<GuardTick>) {
        match tick {
            Some(GuardTick::SendPing(ping)) => {
                let _ = self.ws.send_with_str(&ping);
            }
            Some(GuardTick::TooSlow(c)) => {
                let actions = self.session.borrow_mut().on_slow_consumer(c);
                self.perform(actions);
            }
            Some(GuardTick::Nothing) | None => {}
        }
    }

    /// Whether `op` is still the running operation `id` (not stopped, not replaced by a
    /// new operation reusing the id while this one awaited).
    fn owns(&self, id: &str, op: &Rc<RunningOperation>) -> bool {
        !op.stopped.get() && self.operations.borrow().get(id).is_some_and(|current| Rc::ptr_eq(current, op))
    }

    /// Carries out the session's actions in order.
    fn perform(self: &Rc<Self>, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Send(text) => self.send(&text),
                Action::Close(c) => {
                    self.audit("connection.closed", json!({"code": c.code, "reason": c.reason, "durationMs": now_ms().saturating_sub(self.opened_at)}));
                    let _ = self.ws.close(Some(c.code), Some(&c.reason));
                }
                Action::Start { id, payload } => {
                    let op = Rc::new(RunningOperation {
                        stopped: Cell::new(false),
                        internal: RefCell::new(None),
                        relay: RefCell::new(Relay::new()),
                    });
                    self.operations.borrow_mut().insert(id.clone(), op.clone());
                    spawn_local(start_operation(self.clone(), id, payload, op));
                }
                Action::PongReceived(payload) => {
                    if let Some(guard) = self.slow_guard.borrow_mut().as_mut() {
                        guard.on_pong(payload.as_ref());
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

    /// Operation `op` (as `id`) failed: an `error` for it, unless it was stopped or its id
    /// now belongs to another operation.
    fn fail(self: &Rc<Self>, id: &str, op: &Rc<RunningOperation>, errors: &[GraphQLError]) {
        if !self.owns(id, op) {
            return;
        }
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
    let init_timeout = Duration::from_secs(conn.settings.config.limits.connection_init_timeout_seconds);
    let mut init_timer = Delay::from(init_timeout).fuse();
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
                                    None => Err(crate::stream::protocol::Close::new(close::FORBIDDEN, "Forbidden: unknown app key")),
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
                        let limits = &conn.settings.config.limits;
                        let guard = SlowConsumerGuard::new(limits.slow_consumer_seconds, limits.slow_consumer_bytes, now_ms());
                        guard_timer = Delay::from(Duration::from_millis(guard.tick_interval_ms())).fuse();
                        *conn.slow_guard.borrow_mut() = Some(guard);
                    }
                    conn.perform(actions);
                }
                Some(Ok(WebsocketEvent::Close(c))) => {
                    let actions = conn.session.borrow_mut().on_closed();
                    conn.perform(actions);
                    conn.audit("connection.closed", json!({"code": c.code(), "by": "client", "durationMs": now_ms().saturating_sub(conn.opened_at)}));
                    let code = crate::stream::protocol::close::echo(c.code());
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
                let tick = conn
                    .slow_guard
                    .borrow_mut()
                    .as_mut()
                    .map(|g| (g.on_tick(now_ms(), crate::auth::token::random_id), g.tick_interval_ms()));
                if let Some((tick, interval)) = tick {
                    conn.on_guard(Some(tick));
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
            return conn.fail(
                &id,
                &op,
                &[GraphQLError::coded(format!("invalid subscribe payload: {e}"), crate::graphql::codes::BAD_REQUEST)],
            )
        }
    };
    let prepared = match api().prepare(&payload) {
        Ok(p) => p,
        Err(errors) => return conn.fail(&id, &op, &errors),
    };
    let Some(token) = conn.session.borrow().principal().cloned() else {
        return;
    };
    match prepared {
        Operation::Query(query) => {
            let active =
                if query.selects_connection() { app_key_active_elsewhere(&conn, &token.claims).await } else { false };
            // The id may have been completed, or reused by a new operation, meanwhile.
            if !conn.owns(&id, &op) {
                return;
            }
            let ctx = QueryContext {
                connection_id: conn.id.clone(),
                connection_active: active,
                help_base_url: conn.settings.config.issuer.clone(),
            };
            // JSON text, keys in selection order (GraphQL §7.1).
            let result = query.execute_json(&ctx);
            conn.operations.borrow_mut().remove(&id);
            let actions = conn.session.borrow_mut().single_result(&id, &result);
            conn.perform(actions);
        }
        Operation::Subscription(sub) => {
            match plan_subscription(&conn.settings.config, &token.claims, &id, &conn.id, sub) {
                Ok((chain, spec)) => stream(conn, id, chain, spec, op).await,
                Err(e) => conn.fail(&id, &op, &[e]),
            }
        }
    }
}

/// Whether the token's app key streams on another connection, on any of its chains.
async fn app_key_active_elsewhere(conn: &Rc<Connection>, claims: &crate::auth::token::AccessClaims) -> bool {
    for grant in &claims.chains {
        let Ok(stub) = chain_stub(&conn.env, &grant.chain) else { continue };
        let query = rpc::ActiveQuery { app_key: claims.app_key.clone(), connection: conn.id.clone() };
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("appKey", &query.app_key)
            .append_pair("connection", &query.connection)
            .finish();
        let path = format!("{}?{query}", rpc::chain::ACTIVE);
        let Ok(answer) = ask(&stub, rpc::CHAIN_ORIGIN, Method::Get, &path, None, Ask::Empty).await else { continue };
        if answer.decode::<rpc::Active>().is_ok_and(|a| a.active) {
            return true;
        }
    }
    false
}

/// Attaches the subscription to its chain and forwards batches until it ends. The decisions
/// (what to forward, when to acknowledge, where and when to reattach) are the relay's.
async fn stream(
    conn: Rc<Connection>,
    id: String,
    chain: String,
    mut spec: SubscriptionSpec<crate::graphql::ProjectionPlan>,
    op: Rc<RunningOperation>,
) {
    let started_at = now_ms();
    let requested = spec.start;
    conn.audit(
        "subscription.started",
        json!({"operationId": id, "chain": chain, "start": spec.start, "filter": spec.filter}),
    );
    let mut attached_before = false;
    while conn.owns(&id, &op) {
        spec.start = op.relay.borrow().start(requested);
        let retry = match attach(&conn.env, &chain, &spec).await {
            Ok(Attached::Socket { ws, start, gap }) => {
                if attached_before {
                    conn.audit(
                        "subscription.reattached",
                        json!({"operationId": id, "chain": chain, "nextOffset": start}),
                    );
                }
                attached_before = true;
                forward(&conn, &id, &op, ws, start, gap).await
            }
            Ok(Attached::Refused(error)) => return conn.fail(&id, &op, &[error]),
            Err(e) => {
                let retry = op.relay.borrow_mut().on_attach_failed();
                if retry == Retry::GiveUp {
                    conn.audit(
                        "subscription.failed",
                        json!({"operationId": id, "chain": chain, "error": e.to_string()}),
                    );
                }
                retry
            }
        };
        if !conn.owns(&id, &op) {
            break;
        }
        match retry {
            Retry::After(0) => {}
            Retry::After(ms) => Delay::from(Duration::from_millis(ms)).await,
            Retry::GiveUp => {
                return conn.fail(
                    &id,
                    &op,
                    &[GraphQLError::coded(
                        "the chain's event log is unavailable; resubscribe to resume",
                        INTERNAL_SERVER_ERROR,
                    )],
                );
            }
        }
    }
    let relay = op.relay.borrow();
    conn.audit(
        "subscription.completed",
        json!({
            "operationId": id, "chain": chain, "delivered": relay.forwarded,
            "firstOffset": relay.first_offset.map(|o| o.to_string()),
            "lastOffset": relay.last_offset.map(|o| o.to_string()),
            "durationMs": now_ms().saturating_sub(started_at),
        }),
    );
}

/// Forwards what the chain object sends on one attached socket until it ends, and says
/// what to do next. A failure the object reports ends the operation (`GiveUp` is not
/// returned then: the operation is no longer owned).
async fn forward(
    conn: &Rc<Connection>,
    id: &str,
    op: &Rc<RunningOperation>,
    internal: WebSocket,
    start: u64,
    gap: Option<u64>,
) -> Retry {
    let mut events = match internal.events() {
        Ok(e) => e,
        Err(_) => return op.relay.borrow_mut().on_detached(now_ms()),
    };
    if internal.accept().is_err() {
        return op.relay.borrow_mut().on_detached(now_ms());
    }
    *op.internal.borrow_mut() = Some(internal.clone());
    if !conn.owns(id, op) {
        op.stop();
        return Retry::After(0);
    }
    let open = op.relay.borrow_mut().on_attached(start, gap, now_ms());
    let _ = internal.send_with_str(open);
    while let Some(Ok(WebsocketEvent::Message(msg))) = events.next().await {
        let Some(text) = msg.text() else { continue };
        if !conn.owns(id, op) || !conn.session.borrow().is_active(id) {
            break;
        }
        // The step borrows the message only; the relay's borrow ends with this statement.
        let step = op.relay.borrow_mut().on_message(&text);
        match step {
            Step::Forward { frames, ack } => {
                for frame in &frames {
                    conn.send(frame);
                }
                if let Some(ack) = ack {
                    let _ = internal.send_with_str(ack);
                }
            }
            Step::Fail { code, message } => {
                op.internal.borrow_mut().take();
                let _ = internal.close(Some(close::NORMAL), Some("subscription failed"));
                conn.fail(id, op, &[GraphQLError::coded(message, code)]);
                return Retry::After(0);
            }
            Step::Ignore => {}
        }
    }
    op.internal.borrow_mut().take();
    op.relay.borrow_mut().on_detached(now_ms())
}

enum Attached {
    /// Attached at `start`; retention had dropped events from `gap` on.
    Socket {
        ws: WebSocket,
        start: u64,
        gap: Option<u64>,
    },
    Refused(GraphQLError),
}

async fn attach(env: &Env, chain: &str, spec: &SubscriptionSpec<crate::graphql::ProjectionPlan>) -> Result<Attached> {
    let encoded = rpc::encode_spec(spec).map_err(|e| worker::Error::RustError(e.to_string()))?;
    let headers = Headers::new();
    headers.set("Upgrade", "websocket")?;
    headers.set(rpc::SUBSCRIPTION_HEADER, &encoded)?;
    headers.set(rpc::CHAIN_HEADER, chain)?;
    let mut init = RequestInit::new();
    init.with_method(Method::Get).with_headers(headers);
    let req = Request::new_with_init(&format!("{}{}", rpc::CHAIN_ORIGIN, rpc::chain::SUBSCRIBE), &init)?;
    let resp = chain_stub(env, chain)?.fetch_with_request(req).await?;
    if resp.status_code() == 101 {
        let header = |name: &str| resp.headers().get(name).ok().flatten().and_then(|s| s.parse().ok());
        let (start, gap) = (header(rpc::START_HEADER).unwrap_or(0), header(rpc::GAP_HEADER));
        return match resp.websocket() {
            Some(ws) => Ok(Attached::Socket { ws, start, gap }),
            None => Err(worker::Error::RustError("the chain object answered 101 without a socket".into())),
        };
    }
    let status = resp.status_code();
    match serde_json::from_slice::<rpc::Refusal>(&whole_body(resp).await.unwrap_or_default()) {
        Ok(refusal) => Ok(Attached::Refused(GraphQLError::coded(refusal.message, &refusal.code))),
        Err(_) => Err(worker::Error::RustError(format!("the chain object answered {status}"))),
    }
}
