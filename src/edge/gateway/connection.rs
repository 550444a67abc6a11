//! One vendor connection: its protocol session, its running operations, and its
//! slow-consumer guard. The session decides; this performs its actions. The socket's events
//! and timers are `session_loop`'s.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use serde_json::{json, Value};
use wasm_bindgen_futures::spawn_local;
use worker::{Env, WebSocket};

use super::lease::ConnectionLease;
use super::operation::start_operation;
use super::running::{OperationHost, Reading, RunningOperation};
use crate::auth::token::VerifiedToken;
use crate::config::ServiceConfig;
use crate::edge::settings::Settings;
use crate::edge::{audit, now_ms};
use crate::graphql::GraphQLError;
use crate::service_tally::ClosedBy;
use crate::stream::protocol::{Action, Session, SessionLimits};
use crate::stream::relay::RenderedFrames;
use crate::stream::slow_consumer::{GuardTick, SlowConsumerGuard};

pub(super) struct Connection {
    pub(super) ws: WebSocket,
    env: Env,
    pub(super) settings: Rc<Settings>,
    pub(super) id: String,
    request_id: String,
    pub(super) url_app_key: String,
    pub(super) session: RefCell<Session>,
    /// Running operations by id; dropping the flag's last owner does not stop anything,
    /// the `stopped` flag does.
    operations: RefCell<HashMap<String, Rc<RunningOperation>>>,
    pub(super) opened_at: u64,
    /// Created once the connection is authenticated.
    pub(super) slow_guard: RefCell<Option<SlowConsumerGuard>>,
    /// This connection's place in its app key's count, given back when the connection ends.
    lease: RefCell<Option<ConnectionLease>>,
}

impl Connection {
    pub(super) fn new(
        ws: WebSocket,
        env: &Env,
        settings: Rc<Settings>,
        request_id: &str,
        url_app_key: &str,
        limits: SessionLimits,
        lease: ConnectionLease,
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
            lease: RefCell::new(Some(lease)),
        }
    }

    /// Sends a frame to the vendor and tells the slow-consumer guard.
    pub(super) fn send(self: &Rc<Self>, text: &str) {
        let _ = self.ws.send_with_str(text);
        self.on_sent(text.len());
    }

    /// Tells the slow-consumer guard `bytes` were sent; it may answer with a ping to send
    /// or a verdict to close.
    fn on_sent(self: &Rc<Self>, bytes: usize) {
        let tick =
            self.slow_guard.borrow_mut().as_mut().map(|g| g.on_sent(bytes, now_ms(), crate::auth::token::random_id));
        self.on_guard(tick);
    }

    pub(super) fn on_guard(self: &Rc<Self>, tick: Option<GuardTick>) {
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

    /// A pong arrived: it may confirm reading, which releases held acknowledgements.
    fn on_pong(self: &Rc<Self>, payload: Option<&Value>) {
        let (tick, confirmed) = self.slow_guard.borrow_mut().as_mut().map_or((None, false), |g| {
            let unread = g.unread_bytes();
            let tick = g.on_pong(payload, now_ms(), crate::auth::token::random_id);
            (Some(tick), g.unread_bytes() < unread)
        });
        self.on_guard(tick);
        // Only a pong that confirmed reading can release anything: unsolicited ones cost
        // no walk over the operations.
        let reading = self.reading();
        if confirmed && !reading.behind {
            for op in self.operations.borrow().values() {
                op.send_held_ack(reading);
            }
        }
    }

    /// Carries out the session's actions in order.
    pub(super) fn perform(self: &Rc<Self>, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Send(text) => self.send(&text),
                Action::Close(c) => {
                    self.count_close(ClosedBy::Server, c.code);
                    let duration = now_ms().saturating_sub(self.opened_at);
                    self.audit(
                        "connection.closed",
                        json!({"code": c.code, "reason": c.reason, "durationMs": duration}),
                    );
                    let _ = self.ws.close(Some(c.code), Some(&c.reason));
                }
                Action::Start { id, payload } => {
                    let window_ms = self.settings.config.limits.resend_window_seconds * 1000;
                    let op = Rc::new(RunningOperation::new(window_ms));
                    self.operations.borrow_mut().insert(id.clone(), op.clone());
                    spawn_local(start_operation(self.clone(), id, payload, op));
                }
                Action::PongReceived(payload) => self.on_pong(payload.as_ref()),
                Action::Stop { id } => {
                    let op = self.operations.borrow_mut().remove(&id);
                    if let Some(op) = op {
                        op.stop(self.reading());
                    }
                }
            }
        }
    }

    /// The enterprise whose counts the connection's are: its URL key's client's (an
    /// authenticated token is that client's, `connect::check_init`).
    fn enterprise(&self) -> String {
        self.settings.config.client_by_app_key(&self.url_app_key).map(|c| c.enterprise.clone()).unwrap_or_default()
    }

    /// Counts a close in the service tally, with the client the connection belonged to.
    pub(super) fn count_close(&self, by: ClosedBy, code: u16) {
        let enterprise = self.enterprise();
        let session = self.session.borrow();
        let client = session.authenticated().map(|t| t.claims.sub.as_str());
        crate::edge::tally::count(&enterprise, |t| t.count_close(by, code, client));
    }

    /// Stops every operation and gives the connection's place back: the connection is over.
    pub(super) async fn end(&self) {
        let reading = self.reading();
        for (_, op) in self.operations.borrow_mut().drain() {
            op.stop(reading);
        }
        let lease = self.lease.borrow_mut().take();
        if let Some(lease) = lease {
            lease.release().await;
        }
    }
}

impl OperationHost for Connection {
    fn env(&self) -> &Env {
        &self.env
    }

    fn config(&self) -> &ServiceConfig {
        &self.settings.config
    }

    fn connection_id(&self) -> &str {
        &self.id
    }

    fn principal(&self) -> Option<VerifiedToken> {
        self.session.borrow().principal().cloned()
    }

    fn owns(&self, id: &str, op: &Rc<RunningOperation>) -> bool {
        !op.stopped.get() && self.operations.borrow().get(id).is_some_and(|current| Rc::ptr_eq(current, op))
    }

    fn fail(self: &Rc<Self>, id: &str, op: &Rc<RunningOperation>, errors: &[GraphQLError]) {
        if !self.owns(id, op) {
            return;
        }
        let payload = serde_json::to_value(errors).unwrap_or_else(|_| json!([{"message": "internal error"}]));
        let codes: Vec<&str> = errors.iter().filter_map(|e| e.code()).collect();
        let message = errors.first().map(|e| e.message.clone());
        crate::edge::tally::count(&self.enterprise(), |t| t.count_subscription_refused(codes.iter().copied()));
        self.audit("subscription.refused", json!({"operationId": id, "codes": codes, "message": message}));
        self.operations.borrow_mut().remove(id);
        let actions = self.session.borrow_mut().fail(id, &payload);
        self.perform(actions);
    }

    fn answer(self: &Rc<Self>, id: &str, result_json: &str) {
        self.operations.borrow_mut().remove(id);
        let actions = self.session.borrow_mut().single_result(id, result_json);
        self.perform(actions);
    }

    fn audit(&self, event: &str, mut fields: Value) {
        if let Value::Object(map) = &mut fields {
            map.insert("requestId".into(), Value::from(self.request_id.as_str()));
            map.insert("connectionId".into(), Value::from(self.id.as_str()));
            if let Some(t) = self.session.borrow().authenticated() {
                map.insert("clientId".into(), Value::from(t.claims.sub.as_str()));
                map.insert("enterpriseId".into(), Value::from(t.claims.enterprise_id.as_str()));
            }
        }
        audit(event, fields);
    }

    /// Each frame goes as a JavaScript string of its own (see `RenderedFrames`); the
    /// slow-consumer guard is told their bytes once.
    fn send_frames(self: &Rc<Self>, frames: &RenderedFrames) {
        if frames.text.is_empty() {
            return;
        }
        for frame in frames.frames() {
            let _ = self.ws.send_with_str(frame);
        }
        self.on_sent(frames.text.len());
    }

    fn reading(&self) -> Reading {
        self.slow_guard.borrow().as_ref().map_or(Reading { behind: false, sent_bytes: 0, confirmed_bytes: 0 }, |g| {
            Reading { behind: g.behind(), sent_bytes: g.sent_bytes(), confirmed_bytes: g.confirmed_bytes() }
        })
    }
}
