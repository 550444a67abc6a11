//! The graphql-transport-ws protocol (graphql-ws `PROTOCOL.md`) as a state machine with
//! no I/O: it takes the client's frames and timer events and answers with actions. The
//! gateway performs the actions; everything the protocol decides is tested natively.

use std::collections::{BTreeSet, VecDeque};

use serde_json::{json, Map, Value};

use crate::auth::token::VerifiedToken;
use crate::graphql::codes::TOO_MANY_SUBSCRIPTIONS;

pub const SUBPROTOCOL: &str = "graphql-transport-ws";

/// Whether a `Sec-WebSocket-Protocol` header offers [`SUBPROTOCOL`] among its
/// comma-separated list.
pub fn offers_subprotocol(header: &str) -> bool {
    header.split(',').any(|p| p.trim() == SUBPROTOCOL)
}

/// The start of every `next` message of operation `id`, up to its payload: a `next` is
/// this, the payload's JSON, and [`NEXT_END`]. The one builder of `next` frames: query
/// results here, and events in the gateway (`fanout::render_frame`, around the payload the
/// chain object rendered), which builds it once per subscription.
pub fn next_start(id: &str) -> String {
    format!("{{\"id\":{},\"type\":\"next\",\"payload\":", serde_json::to_string(id).unwrap_or_default())
}

/// What closes a `next` message after its payload.
pub const NEXT_END: &str = "}";

/// Close codes of CONTRACT §4 and the graphql-ws protocol.
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

/// The bounds of one connection (CONTRACT §8), from the configuration's `limits`.
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
}

/// The outcome of checking a `connection_init` payload.
pub type InitCheck = Result<VerifiedToken, Close>;

impl Session {
    pub fn new(limits: SessionLimits) -> Self {
        Session { phase: Phase::AwaitingInit, active: BTreeSet::new(), limits }
    }

    pub fn principal(&self) -> Option<&VerifiedToken> {
        match &self.phase {
            Phase::Ready(t) => Some(t),
            _ => None,
        }
    }

    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    pub fn is_active(&self, id: &str) -> bool {
        self.active.contains(id)
    }

    fn close(&mut self, code: u16, reason: impl Into<String>) -> Vec<Action> {
        self.phase = Phase::Closed;
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
        self.phase = Phase::Closed;
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

/// Slow-consumer detection (on by default, CONTRACT §8). The runtime gives no backpressure
/// signal on a socket, but a `ping` queues behind every frame already sent, so its `pong`
/// proves the client has read everything sent before it. The guard pings every
/// [`PING_EVERY_BYTES`] sent (and at least every half threshold), each ping with a random
/// nonce that only its pong echoes: an unsolicited pong, or one sent ahead without reading,
/// confirms nothing. A client is closed (4413) when its oldest unanswered ping is older
/// than the threshold, or when more than `max_unread_bytes` were sent since the last ping it
/// answered: a stalled reader is never buffered beyond that, whatever it sends.
///
/// Before that, the guard paces: past a quarter of the limit unread, the client is
/// [`behind`](Self::behind), and the gateway holds its acknowledgements to the chain
/// objects until a pong shows it caught up, so they stop at their window. A client that
/// reads slower than the service sends (a replay over a slow link) is then fed at its pace
/// instead of being closed once the runtime buffered the limit for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlowConsumerGuard {
    threshold_ms: u64,
    max_unread_bytes: u64,
    sent_bytes: u64,
    /// Bytes sent before the last answered ping: known to be read.
    confirmed_bytes: u64,
    /// Unanswered pings, oldest first: (nonce, sent at ms, bytes sent before it).
    outstanding: VecDeque<(String, u64, u64)>,
    last_ping_at: u64,
}

/// Bytes sent between two pings while frames flow.
pub const PING_EVERY_BYTES: u64 = 1024 * 1024;
/// Unanswered pings at most; past it no new ping is sent until one is answered.
pub const MAX_OUTSTANDING_PINGS: usize = 16;
/// The key of a server ping's payload that carries its nonce.
pub const PING_NONCE_KEY: &str = "slowConsumerCheck";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuardTick {
    Nothing,
    SendPing(String),
    TooSlow(Close),
}

impl SlowConsumerGuard {
    pub fn new(threshold_seconds: u64, max_unread_bytes: u64, now_ms: u64) -> Self {
        SlowConsumerGuard {
            threshold_ms: threshold_seconds.saturating_mul(1000),
            max_unread_bytes,
            sent_bytes: 0,
            confirmed_bytes: 0,
            outstanding: VecDeque::new(),
            last_ping_at: now_ms,
        }
    }

    /// How often `on_tick` should run.
    pub fn tick_interval_ms(&self) -> u64 {
        (self.threshold_ms / 2).max(500)
    }

    fn too_slow(why: &str) -> GuardTick {
        GuardTick::TooSlow(Close::new(
            close::TOO_SLOW,
            format!("consumer too slow ({why}): reconnect and resume from your last offset"),
        ))
    }

    fn ping(&mut self, now_ms: u64, nonce: String) -> GuardTick {
        let text = json!({"type": "ping", "payload": {PING_NONCE_KEY: nonce}}).to_string();
        self.outstanding.push_back((nonce, now_ms, self.sent_bytes));
        self.last_ping_at = now_ms;
        GuardTick::SendPing(text)
    }

    /// `bytes` were just sent to the client. `nonce` makes the next ping, if one is due.
    pub fn on_sent(&mut self, bytes: usize, now_ms: u64, nonce: impl FnOnce() -> String) -> GuardTick {
        self.sent_bytes = self.sent_bytes.saturating_add(bytes as u64);
        if self.sent_bytes - self.confirmed_bytes > self.max_unread_bytes {
            return Self::too_slow("unread data over the limit");
        }
        self.ping_if_due(now_ms, nonce)
    }

    /// Pings when [`PING_EVERY_BYTES`] (or half the pace, if less) were sent since the
    /// last ping, and fewer than [`MAX_OUTSTANDING_PINGS`] are unanswered. So once every
    /// ping is answered, less than half the pace is unconfirmed: a client held back as
    /// [`behind`](Self::behind) always gets the pong that releases it.
    fn ping_if_due(&mut self, now_ms: u64, nonce: impl FnOnce() -> String) -> GuardTick {
        let since_last = self.sent_bytes - self.outstanding.back().map_or(self.confirmed_bytes, |p| p.2);
        let every = PING_EVERY_BYTES.min(self.pace_bytes() / 2).max(1);
        if since_last >= every && self.outstanding.len() < MAX_OUTSTANDING_PINGS {
            return self.ping(now_ms, nonce());
        }
        GuardTick::Nothing
    }

    /// Whether the client is behind in reading: more than a quarter of the limit is sent
    /// and not confirmed read. The gateway holds acknowledgements meanwhile.
    pub fn behind(&self) -> bool {
        self.unread_bytes() > self.pace_bytes()
    }

    /// Unread bytes past which the client is behind: a quarter of the limit.
    fn pace_bytes(&self) -> u64 {
        self.max_unread_bytes / 4
    }

    pub fn on_tick(&mut self, now_ms: u64, nonce: impl FnOnce() -> String) -> GuardTick {
        match self.outstanding.front() {
            Some((_, sent_at, _)) if now_ms.saturating_sub(*sent_at) >= self.threshold_ms => {
                Self::too_slow("no answer to a ping")
            }
            None if now_ms.saturating_sub(self.last_ping_at) >= self.tick_interval_ms() => self.ping(now_ms, nonce()),
            // A ping is outstanding and not yet late, or the last one was just sent.
            Some(_) | None => GuardTick::Nothing,
        }
    }

    /// A `pong` arrived. Only one echoing an outstanding ping's nonce counts; it also
    /// answers every older ping (pongs come back in order). A ping that was due while
    /// [`MAX_OUTSTANDING_PINGS`] were unanswered is sent now.
    pub fn on_pong(&mut self, payload: Option<&Value>, now_ms: u64, nonce: impl FnOnce() -> String) -> GuardTick {
        let Some(nonce_echoed) = payload.and_then(|p| p.get(PING_NONCE_KEY)).and_then(Value::as_str) else {
            return GuardTick::Nothing;
        };
        let Some(position) = self
            .outstanding
            .iter()
            .position(|(n, _, _)| crate::constant_time_eq(n.as_bytes(), nonce_echoed.as_bytes()))
        else {
            return GuardTick::Nothing;
        };
        let answered = self.outstanding.drain(..=position).next_back();
        if let Some((_, _, bytes)) = answered {
            self.confirmed_bytes = self.confirmed_bytes.max(bytes);
        }
        self.ping_if_due(now_ms, nonce)
    }

    /// Bytes sent and not yet known to be read.
    pub fn unread_bytes(&self) -> u64 {
        self.sent_bytes - self.confirmed_bytes
    }
}
