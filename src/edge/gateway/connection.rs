//! One vendor connection: its protocol session, its running operations and its timers
//! (`connection_init`, token expiry, the slow-consumer guard). The session decides; this
//! performs its actions.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use futures::future::{Fuse, FutureExt};
use futures::{select, StreamExt};
use serde_json::{json, Value};
use wasm_bindgen_futures::spawn_local;
use worker::{Delay, Env, WebSocket, WebsocketEvent};

use super::operation::start_operation;
use super::OpenSlot;
use crate::auth::connect::check_init;
use crate::edge::settings::Settings;
use crate::edge::{audit, now_ms};
use crate::graphql::GraphQLError;
use crate::stream::protocol::{close, Action, Close, GuardTick, Session, SessionLimits, SlowConsumerGuard};
use crate::stream::relay::{Relay, RenderedFrames};

pub(super) struct Connection {
    ws: WebSocket,
    pub(super) env: Env,
    pub(super) settings: Rc<Settings>,
    pub(super) id: String,
    request_id: String,
    url_app_key: String,
    pub(super) session: RefCell<Session>,
    /// Running operations by id; dropping the flag's last owner does not stop anything,
    /// the `stopped` flag does.
    pub(super) operations: RefCell<HashMap<String, Rc<RunningOperation>>>,
    opened_at: u64,
    /// Created once the connection is authenticated.
    slow_guard: RefCell<Option<SlowConsumerGuard>>,
    /// This connection's place in its app key's count; given back when it is dropped.
    _slot: OpenSlot,
}

/// One running operation (a subscription's pipeline).
pub(super) struct RunningOperation {
    pub(super) stopped: Cell<bool>,
    pub(super) internal: RefCell<Option<WebSocket>>,
    /// The subscription's relay decisions (forwarding, acknowledgement, reattach).
    pub(super) relay: RefCell<Relay>,
}

impl RunningOperation {
    pub(super) fn stop(&self) {
        self.stopped.set(true);
        if let Some(ws) = self.internal.borrow_mut().take() {
            // Sent before the close, so it arrives first: the last delivered offset.
            let _ = ws.send_with_str(self.relay.borrow_mut().final_ack());
            let _ = ws.close(Some(close::NORMAL), Some("subscription complete"));
        }
    }
}

impl Connection {
    pub(super) fn new(
        ws: WebSocket,
        env: &Env,
        settings: Rc<Settings>,
        request_id: &str,
        url_app_key: &str,
        limits: SessionLimits,
        slot: OpenSlot,
    ) -> Connection {
        Connection {
            ws,
            env: env.clone(),
            settings,
            id: crate::auth::token::random_id(),
            request_id: request_id.to_string(),
            url_app_key: url_app_key.to_string(),
            session: RefCell::new(Session::new(limits)),
            operations: RefCell::new(HashMap::new()),
            opened_at: now_ms(),
            slow_guard: RefCell::new(None),
            _slot: slot,
        }
    }

    fn principal_fields(&self) -> Value {
        match self.session.borrow().principal() {
            Some(t) => json!({"clientId": t.claims.sub, "enterpriseId": t.claims.enterprise_id}),
            None => json!({}),
        }
    }

    pub(super) fn audit(&self, event: &str, mut fields: Value) {
        if let (Value::Object(map), Value::Object(extra)) = (&mut fields, self.principal_fields()) {
            map.insert("requestId".into(), Value::from(self.request_id.as_str()));
            map.insert("connectionId".into(), Value::from(self.id.as_str()));
            map.extend(extra);
        }
        audit(event, fields);
    }

    /// Sends a frame to the vendor and tells the slow-consumer guard, which may answer with
    /// a ping to send or a verdict to close.
    pub(super) fn send(self: &Rc<Self>, text: &str) {
        let _ = self.ws.send_with_str(text);
        self.on_sent(text.len());
    }

    /// Sends a batch's frames to the vendor, each its own JavaScript string (see
    /// `RenderedFrames`), and tells the slow-consumer guard their bytes once.
    pub(super) fn send_frames(self: &Rc<Self>, frames: &RenderedFrames) {
        if frames.text.is_empty() {
            return;
        }
        for frame in frames.frames() {
            let _ = self.ws.send_with_str(frame);
        }
        self.on_sent(frames.text.len());
    }

    /// Tells the slow-consumer guard `bytes` were sent; it may answer with a ping to send
    /// or a verdict to close.
    fn on_sent(self: &Rc<Self>, bytes: usize) {
        let tick =
            self.slow_guard.borrow_mut().as_mut().map(|g| g.on_sent(bytes, now_ms(), crate::auth::token::random_id));
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

    /// Whether the vendor is behind in reading what was sent: acknowledgements to the
    /// chain objects wait, so they stop sending at their window.
    pub(super) fn behind(&self) -> bool {
        self.slow_guard.borrow().as_ref().is_some_and(SlowConsumerGuard::behind)
    }

    /// Sends the acknowledgements held while the vendor was behind, once it caught up.
    fn send_held_acks(&self) {
        if self.behind() {
            return;
        }
        for op in self.operations.borrow().values() {
            let Some(internal) = op.internal.borrow().clone() else { continue };
            let ack = op.relay.borrow_mut().ack(false);
            if let Some(ack) = ack {
                let _ = internal.send_with_str(ack);
            }
        }
    }

    /// Whether `op` is still the running operation `id` (not stopped, not replaced by a
    /// new operation reusing the id while this one awaited).
    pub(super) fn owns(&self, id: &str, op: &Rc<RunningOperation>) -> bool {
        !op.stopped.get() && self.operations.borrow().get(id).is_some_and(|current| Rc::ptr_eq(current, op))
    }

    /// Carries out the session's actions in order.
    pub(super) fn perform(self: &Rc<Self>, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Send(text) => self.send(&text),
                Action::Close(c) => {
                    self.audit(
                        "connection.closed",
                        json!({
                            "code": c.code, "reason": c.reason, "durationMs": now_ms().saturating_sub(self.opened_at),
                        }),
                    );
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
                    let (tick, confirmed) = self.slow_guard.borrow_mut().as_mut().map_or((None, false), |g| {
                        let unread = g.unread_bytes();
                        let tick = g.on_pong(payload.as_ref(), now_ms(), crate::auth::token::random_id);
                        (Some(tick), g.unread_bytes() < unread)
                    });
                    self.on_guard(tick);
                    // Only a pong that confirmed reading can release anything: unsolicited
                    // ones cost no walk over the operations.
                    if confirmed {
                        self.send_held_acks();
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
    pub(super) fn fail(self: &Rc<Self>, id: &str, op: &Rc<RunningOperation>, errors: &[GraphQLError]) {
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

/// Serves the vendor's socket until the session is closed, then stops every operation.
pub(super) async fn run(conn: Rc<Connection>, protocol_ok: bool) {
    let ws = conn.ws.clone();
    let Ok(mut events) = ws.events() else { return };
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
    let mut expiry_timer = Fuse::terminated();
    let mut guard_timer = Fuse::terminated();
    while !conn.session.borrow().is_closed() {
        select! {
            event = events.next().fuse() => match event {
                Some(Ok(WebsocketEvent::Message(msg))) => {
                    if let Some(timers) = conn.on_frame(msg.text().as_deref()) {
                        expiry_timer = Delay::from(Duration::from_millis(timers.expires_in_ms)).fuse();
                        guard_timer = Delay::from(Duration::from_millis(timers.guard_tick_ms)).fuse();
                    }
                }
                Some(Ok(WebsocketEvent::Close(c))) => conn.on_client_close(c.code()),
                Some(Err(_)) | None => {
                    let actions = conn.session.borrow_mut().on_closed();
                    conn.perform(actions);
                }
            },
            () = init_timer => {
                let actions = conn.session.borrow_mut().on_init_timeout();
                conn.perform(actions);
            },
            () = guard_timer => {
                if let Some(interval) = conn.on_guard_tick() {
                    guard_timer = Delay::from(Duration::from_millis(interval)).fuse();
                }
            },
            () = expiry_timer => {
                let actions = conn.session.borrow_mut().on_token_expired();
                conn.perform(actions);
            },
        }
    }
    for (_, op) in conn.operations.borrow_mut().drain() {
        op.stop();
    }
}

/// The timers a connection starts once its `connection_init` is accepted.
struct Authenticated {
    expires_in_ms: u64,
    guard_tick_ms: u64,
}

impl Connection {
    /// One frame from the vendor (`None`: a binary one). Returns the timers to start if it
    /// authenticated the connection.
    fn on_frame(self: &Rc<Self>, text: Option<&str>) -> Option<Authenticated> {
        let was_ready = self.session.borrow().principal().is_some();
        let actions = match text {
            Some(text) => {
                let settings = &self.settings;
                self.session.borrow_mut().on_text(text, |payload| {
                    match settings.config.client_by_app_key(&self.url_app_key) {
                        Some(client) => check_init(payload, client, &settings.keys, &settings.config, now_ms() / 1000),
                        None => Err(Close::new(close::FORBIDDEN, "Forbidden: unknown app key")),
                    }
                })
            }
            None => self.session.borrow_mut().on_binary(),
        };
        let expires_at = self.session.borrow().principal().map(|t| t.expires_at);
        let authenticated = match (was_ready, expires_at) {
            (false, Some(expires_at)) => Some(self.on_authenticated(expires_at)),
            _ => None,
        };
        self.perform(actions);
        authenticated
    }

    fn on_authenticated(&self, expires_at: u64) -> Authenticated {
        self.audit("connection.authenticated", json!({"appKey": self.url_app_key, "tokenExpiresAt": expires_at}));
        let limits = &self.settings.config.limits;
        let guard = SlowConsumerGuard::new(limits.slow_consumer_seconds, limits.slow_consumer_bytes, now_ms());
        let guard_tick_ms = guard.tick_interval_ms();
        *self.slow_guard.borrow_mut() = Some(guard);
        Authenticated { expires_in_ms: (expires_at * 1000).saturating_sub(now_ms()), guard_tick_ms }
    }

    /// The vendor closed: stop everything, and complete the close handshake.
    fn on_client_close(self: &Rc<Self>, code: u16) {
        let actions = self.session.borrow_mut().on_closed();
        self.perform(actions);
        self.audit(
            "connection.closed",
            json!({"code": code, "by": "client", "durationMs": now_ms().saturating_sub(self.opened_at)}),
        );
        let _ = self.ws.close(Some(close::echo(code)), Some("closed"));
    }

    /// The slow-consumer guard's timer fired: returns when it fires next.
    fn on_guard_tick(self: &Rc<Self>) -> Option<u64> {
        let tick = self
            .slow_guard
            .borrow_mut()
            .as_mut()
            .map(|g| (g.on_tick(now_ms(), crate::auth::token::random_id), g.tick_interval_ms()));
        let (tick, interval) = tick?;
        self.on_guard(Some(tick));
        Some(interval)
    }
}
