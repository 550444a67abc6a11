//! The graphql-transport-ws protocol (graphql-ws `PROTOCOL.md`) as a state machine with
//! no I/O: it takes the client's frames and timer events and answers with actions. The
//! gateway performs the actions; everything the protocol decides is tested natively. The
//! `next` frame is built here too, both for query results and around the payloads the
//! chain object renders for events.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde_json::{json, Map, Value};

use crate::auth::token::VerifiedToken;
use crate::graphql::codes::TOO_MANY_SUBSCRIPTIONS;
use crate::log::Gap;

pub const SUBPROTOCOL: &str = "graphql-transport-ws";

/// Whether a `Sec-WebSocket-Protocol` header offers [`SUBPROTOCOL`] among its
/// comma-separated list.
pub fn offers_subprotocol(header: &str) -> bool {
    header.split(',').any(|p| p.trim() == SUBPROTOCOL)
}

/// The start of every `next` message of operation `id`, up to its payload: a `next` is
/// this, the payload's JSON, and [`NEXT_END`]. The one builder of `next` frames: query
/// results here, and events in the gateway ([`render_frame`], around the payload the
/// chain object rendered), which builds it once per subscription.
pub fn next_start(id: &str) -> String {
    format!("{{\"id\":{},\"type\":\"next\",\"payload\":", serde_json::to_string(id).unwrap_or_default())
}

/// What closes a `next` message after its payload.
pub const NEXT_END: &str = "}";

/// The bytes a `next` frame of operation `id` adds around its payload.
pub fn frame_overhead(id: &str) -> usize {
    next_start(id).len() + NEXT_END.len()
}

/// A `next` frame of the operation whose [`next_start`] is `start`, carrying `payload`
/// (as the chain object renders it), with `extensions.gap` added to the payload when
/// retention dropped events before it: the first frame a subscription receives after that.
/// Appended to `out`.
pub fn render_frame(start: &str, payload: &str, gap: Option<Gap>, out: &mut String) {
    out.push_str(start);
    match gap {
        None => out.push_str(payload),
        Some(gap) => {
            // A payload is a JSON object: the extensions go before its closing brace.
            out.push_str(payload.strip_suffix('}').unwrap_or(payload));
            let _ = write!(
                out,
                ",\"extensions\":{{\"gap\":{{\"requested\":\"{}\",\"resumedAt\":\"{}\"}}}}}}",
                gap.requested, gap.resumed_at
            );
        }
    }
    out.push_str(NEXT_END);
}

/// Close codes: the graphql-ws protocol's, and this service's (docs/protocol.md, Errors).
pub mod close {
    pub const NORMAL: u16 = 1000;
    /// Reported, never sent (RFC 6455 §7.4.1): the close carried no code.
    pub const NO_STATUS: u16 = 1005;
    /// Reported, never sent: the connection ended without a close.
    pub const ABNORMAL: u16 = 1006;
    /// An internal socket's state was lost (the gateway reattaches or fails the operation).
    pub const INTERNAL_ERROR: u16 = 1011;
    /// The codes a close frame may carry.
    const SENDABLE: std::ops::RangeInclusive<u16> = 1000..=4999;

    /// The code to answer a peer's close with, completing the handshake: its own, unless it
    /// only describes a close or cannot be sent at all.
    pub fn echo(code: u16) -> u16 {
        if SENDABLE.contains(&code) && code != NO_STATUS && code != ABNORMAL {
            code
        } else {
            NORMAL
        }
    }
    pub const TOO_BIG: u16 = 1009;
    pub const INTERNAL: u16 = 4500;
    pub const BAD_REQUEST: u16 = 4400;
    pub const UNAUTHORIZED: u16 = 4401;
    pub const FORBIDDEN: u16 = 4403;
    pub const BAD_SUBPROTOCOL: u16 = 4406;
    pub const INIT_TIMEOUT: u16 = 4408;
    pub const DUPLICATE_ID: u16 = 4409;
    pub const TOO_MANY_INITS: u16 = 4429;
    /// The subscriber could not keep up; it resumes from its offset on reconnect.
    pub const TOO_SLOW: u16 = 4413;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    pub code: u16,
    pub reason: String,
}

impl Close {
    pub fn new(code: u16, reason: impl Into<String>) -> Self {
        Close { code, reason: reason.into() }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ClientMessage {
    ConnectionInit { payload: Map<String, Value> },
    Ping { payload: Option<Value> },
    Pong { payload: Option<Value> },
    Subscribe { id: String, payload: Value },
    Complete { id: String },
}

/// Parses one text frame; any deviation from the protocol's shapes is a 4400 reason.
pub fn parse_client_message(text: &str) -> Result<ClientMessage, String> {
    let value: Value = serde_json::from_str(text).map_err(|_| "Invalid message received: not JSON".to_string())?;
    let Value::Object(mut obj) = value else {
        return Err("Invalid message received: not an object".into());
    };
    let Some(Value::String(kind)) = obj.remove("type") else {
        return Err("Invalid message received: missing \"type\"".into());
    };
    let id = |obj: &mut Map<String, Value>| match obj.remove("id") {
        Some(Value::String(id)) if !id.is_empty() => Ok(id),
        _ => Err(format!("Invalid message received: \"{kind}\" needs a non-empty string \"id\"")),
    };
    match kind.as_str() {
        "connection_init" => match obj.remove("payload") {
            None | Some(Value::Null) => Ok(ClientMessage::ConnectionInit { payload: Map::new() }),
            Some(Value::Object(payload)) => Ok(ClientMessage::ConnectionInit { payload }),
            Some(_) => Err("Invalid message received: connection_init payload must be an object".into()),
        },
        "ping" => Ok(ClientMessage::Ping { payload: obj.remove("payload").filter(|p| !p.is_null()) }),
        "pong" => Ok(ClientMessage::Pong { payload: obj.remove("payload").filter(|p| !p.is_null()) }),
        "subscribe" => {
            let id = id(&mut obj)?;
            match obj.remove("payload") {
                Some(payload @ Value::Object(_)) if payload.get("query").is_some_and(Value::is_string) => {
                    Ok(ClientMessage::Subscribe { id, payload })
                }
                _ => {
                    Err("Invalid message received: subscribe payload must be an object with a string \"query\"".into())
                }
            }
        }
        "complete" => Ok(ClientMessage::Complete { id: id(&mut obj)? }),
        other => {
            Err(format!("Invalid message received: unknown type {:?}", other.chars().take(32).collect::<String>()))
        }
    }
}

/// What the gateway must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Send(String),
    Close(Close),
    /// Prepare and start operation `id` (GraphQL work, authorization, attaching to a chain).
    Start {
        id: String,
        payload: Value,
    },
    /// Stop operation `id`; nothing more may be sent for it.
    Stop {
        id: String,
    },
    /// The client sent a `pong` (solicited or not; the slow-consumer guard tells).
    PongReceived(Option<Value>),
}

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    AwaitingInit,
    Ready(Box<VerifiedToken>),
    Closed,
}

/// The bounds of one connection, from the configuration's `limits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    pub max_frame_bytes: usize,
    pub max_subscriptions: usize,
    pub max_id_bytes: usize,
}

/// One vendor connection.
#[derive(Debug)]
pub struct Session {
    phase: Phase,
    active: BTreeSet<String>,
    limits: SessionLimits,
    /// Who the connection was once it is closed: its close is counted and audited by client.
    closed_principal: Option<Box<VerifiedToken>>,
}

/// The outcome of checking a `connection_init` payload.
pub type InitCheck = Result<VerifiedToken, Close>;

impl Session {
    pub fn new(limits: SessionLimits) -> Self {
        Session { phase: Phase::AwaitingInit, active: BTreeSet::new(), limits, closed_principal: None }
    }

    pub fn principal(&self) -> Option<&VerifiedToken> {
        match &self.phase {
            Phase::Ready(t) => Some(t),
            _ => None,
        }
    }

    /// The authenticated principal, also after the connection closed.
    pub fn authenticated(&self) -> Option<&VerifiedToken> {
        self.principal().or(self.closed_principal.as_deref())
    }

    fn set_closed(&mut self) {
        if let Phase::Ready(token) = std::mem::replace(&mut self.phase, Phase::Closed) {
            self.closed_principal = Some(token);
        }
    }

    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    pub fn is_active(&self, id: &str) -> bool {
        self.active.contains(id)
    }

    fn close(&mut self, code: u16, reason: impl Into<String>) -> Vec<Action> {
        self.set_closed();
        let mut actions: Vec<Action> =
            std::mem::take(&mut self.active).into_iter().map(|id| Action::Stop { id }).collect();
        actions.push(Action::Close(Close::new(code, reason)));
        actions
    }

    /// A text frame from the client. `check_init` authenticates a `connection_init`.
    pub fn on_text(&mut self, text: &str, check_init: impl FnOnce(&Map<String, Value>) -> InitCheck) -> Vec<Action> {
        if self.is_closed() {
            return Vec::new();
        }
        if text.len() > self.limits.max_frame_bytes {
            return self.close(close::TOO_BIG, format!("Message over the {}-byte limit", self.limits.max_frame_bytes));
        }
        let message = match parse_client_message(text) {
            Ok(m) => m,
            Err(reason) => return self.close(close::BAD_REQUEST, reason),
        };
        match message {
            ClientMessage::ConnectionInit { payload } => {
                if self.phase != Phase::AwaitingInit {
                    return self.close(close::TOO_MANY_INITS, "Too many initialisation requests");
                }
                match check_init(&payload) {
                    Ok(token) => {
                        self.phase = Phase::Ready(Box::new(token));
                        vec![Action::Send(json!({"type": "connection_ack"}).to_string())]
                    }
                    Err(c) => self.close(c.code, c.reason),
                }
            }
            ClientMessage::Ping { payload } => {
                let mut pong = json!({"type": "pong"});
                if let Some(p) = payload {
                    pong["payload"] = p;
                }
                vec![Action::Send(pong.to_string())]
            }
            ClientMessage::Pong { payload } => vec![Action::PongReceived(payload)],
            ClientMessage::Subscribe { id, payload } => {
                if !matches!(self.phase, Phase::Ready(_)) {
                    return self.close(close::UNAUTHORIZED, "Unauthorized");
                }
                if id.len() > self.limits.max_id_bytes {
                    return self.close(
                        close::BAD_REQUEST,
                        format!("Invalid message received: operation id over {} bytes", self.limits.max_id_bytes),
                    );
                }
                if self.active.contains(&id) {
                    return self.close(close::DUPLICATE_ID, format!("Subscriber for {id} already exists"));
                }
                if self.active.len() >= self.limits.max_subscriptions {
                    let error = json!([{
                        "message": format!(
                            "this connection already runs {} operations, the most it may; complete one first",
                            self.limits.max_subscriptions
                        ),
                        "extensions": {"code": TOO_MANY_SUBSCRIPTIONS},
                    }]);
                    return vec![Action::Send(json!({"id": id, "type": "error", "payload": error}).to_string())];
                }
                self.active.insert(id.clone());
                vec![Action::Start { id, payload }]
            }
            ClientMessage::Complete { id } => {
                if self.active.remove(&id) {
                    vec![Action::Stop { id }]
                } else {
                    Vec::new()
                }
            }
        }
    }

    /// A binary frame: the protocol is text only.
    pub fn on_binary(&mut self) -> Vec<Action> {
        if self.is_closed() {
            return Vec::new();
        }
        self.close(close::BAD_REQUEST, "Invalid message received: binary frames are not part of the protocol")
    }

    /// The `connection_init` deadline passed.
    pub fn on_init_timeout(&mut self) -> Vec<Action> {
        if self.phase == Phase::AwaitingInit {
            self.close(close::INIT_TIMEOUT, "Connection initialisation timeout")
        } else {
            Vec::new()
        }
    }

    /// The token's lifetime ended while the connection was open.
    pub fn on_token_expired(&mut self) -> Vec<Action> {
        if matches!(self.phase, Phase::Ready(_)) {
            self.close(close::UNAUTHORIZED, "token expired")
        } else {
            Vec::new()
        }
    }

    /// The slow-consumer guard gave up on the client.
    pub fn on_slow_consumer(&mut self, c: Close) -> Vec<Action> {
        if self.is_closed() {
            return Vec::new();
        }
        self.close(c.code, c.reason)
    }

    /// The client closed (or the socket failed): stop everything.
    pub fn on_closed(&mut self) -> Vec<Action> {
        self.set_closed();
        std::mem::take(&mut self.active).into_iter().map(|id| Action::Stop { id }).collect()
    }

    /// Operation `id` could not start or failed: an `error` message, and it is over.
    pub fn fail(&mut self, id: &str, errors: &Value) -> Vec<Action> {
        if !self.active.remove(id) {
            return Vec::new();
        }
        vec![Action::Send(json!({"id": id, "type": "error", "payload": errors}).to_string())]
    }

    /// A single result (queries): `next`, then `complete`. `result_json` is the execution
    /// result as JSON text, spliced in unchanged so its keys keep the selection order
    /// (GraphQL §7.1: the response is an ordered map).
    pub fn single_result(&mut self, id: &str, result_json: &str) -> Vec<Action> {
        if !self.active.remove(id) {
            return Vec::new();
        }
        vec![
            Action::Send(format!("{}{result_json}{NEXT_END}", next_start(id))),
            Action::Send(json!({"id": id, "type": "complete"}).to_string()),
        ]
    }

    /// The server ends operation `id` (for example a consumer too slow to serve).
    pub fn complete(&mut self, id: &str) -> Vec<Action> {
        if !self.active.remove(id) {
            return Vec::new();
        }
        vec![Action::Send(json!({"id": id, "type": "complete"}).to_string())]
    }
}

/// The credentials carried by `connection_init.payload`: `Authorization: Bearer <token>`
/// and `x-app-key` (header-name case is not significant, as for HTTP headers).
pub fn init_credentials(payload: &Map<String, Value>) -> (Option<&str>, Option<&str>) {
    let get = |name: &str| payload.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).and_then(|(_, v)| v.as_str());
    (get("authorization"), get("x-app-key"))
}
