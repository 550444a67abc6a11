//! Slow-consumer detection (on by default). The runtime gives no backpressure signal on a
//! socket, but a `ping` queues behind every frame already sent, so its `pong` proves the
//! client has read everything sent before it. Each ping carries a random nonce that only
//! its pong echoes: an unsolicited pong, or one sent ahead without reading, confirms
//! nothing.
//!
//! The server pings only a consumer whose unconfirmed output is large: [`PING_EVERY_BYTES`]
//! (or half the pace, if less) sent within the resend window (default
//! [`DEFAULT_RESEND_WINDOW_MS`]) and since its last
//! answered ping, or, at any pace, a quarter of `max_unread_bytes` since its last answered
//! ping. A consumer that reads what it gets at hotel rates is never pinged: some vendor
//! clients (Oracle's sample streaming client among them) take any server ping they cannot
//! match to one of their own as a dead connection and reconnect. A client is closed (4413)
//! when a ping stays unanswered for the threshold, or when more than `max_unread_bytes`
//! were sent since the last ping it answered: a stalled reader is never buffered beyond
//! that, whatever it sends.
//!
//! Before that, the guard paces: past a quarter of the limit unread, the client is
//! [`behind`](SlowConsumerGuard::behind), and the gateway holds its acknowledgements to the
//! chain objects until a pong shows it caught up, so they stop at their window. A client
//! that reads slower than the service sends (a replay over a slow link) is then fed at its
//! pace instead of being closed once the runtime buffered the limit for it.

use std::collections::VecDeque;

use serde_json::{json, Value};

use crate::stream::protocol::{close, Close};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlowConsumerGuard {
    threshold_ms: u64,
    max_unread_bytes: u64,
    sent_bytes: u64,
    /// Bytes sent before the last answered ping: known to be read.
    confirmed_bytes: u64,
    /// Unanswered pings, oldest first: (nonce, sent at ms, bytes sent before it).
    outstanding: VecDeque<(String, u64, u64)>,
    /// Bytes sent per second, over the resend window: (second, bytes).
    recent: VecDeque<(u64, u64)>,
    resend_window_ms: u64,
}

/// Unconfirmed bytes sent within the resend window that make a ping due (and bytes between
/// two pings while frames flow).
pub const PING_EVERY_BYTES: u64 = 1024 * 1024;
/// Output sent this long ago on a connection still open counts as read when no answered
/// ping confirmed it: the server pings only a consumer with a lot unconfirmed, so at hotel
/// rates time is the only confirmation there is (see `relay`). `limits.resendWindowSeconds`
/// sets it.
pub const DEFAULT_RESEND_WINDOW_MS: u64 = 30_000;
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
    pub fn new(threshold_seconds: u64, max_unread_bytes: u64) -> Self {
        SlowConsumerGuard {
            threshold_ms: threshold_seconds.saturating_mul(1000),
            max_unread_bytes,
            sent_bytes: 0,
            confirmed_bytes: 0,
            outstanding: VecDeque::new(),
            recent: VecDeque::new(),
            resend_window_ms: DEFAULT_RESEND_WINDOW_MS,
        }
    }

    /// The same guard, with output sent `ms` ago counting as read (see `relay`).
    pub fn with_resend_window(mut self, ms: u64) -> Self {
        self.resend_window_ms = ms;
        self
    }

    /// How often `on_tick` should run: often enough to close a client whose ping went
    /// unanswered within half the threshold of its deadline.
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
        GuardTick::SendPing(text)
    }

    /// `bytes` were just sent to the client. `nonce` makes the next ping, if one is due.
    pub fn on_sent(&mut self, bytes: usize, now_ms: u64, nonce: impl FnOnce() -> String) -> GuardTick {
        let bytes = bytes as u64;
        self.sent_bytes = self.sent_bytes.saturating_add(bytes);
        let second = now_ms / 1000;
        match self.recent.back_mut() {
            Some((at, sum)) if *at == second => *sum += bytes,
            _ => self.recent.push_back((second, bytes)),
        }
        if self.sent_bytes - self.confirmed_bytes > self.max_unread_bytes {
            return Self::too_slow("unread data over the limit");
        }
        self.ping_if_due(now_ms, nonce)
    }

    /// Pings when [`PING_EVERY_BYTES`] (or half the pace, if less) were sent since the last
    /// ping (answered or not) and are still unconfirmed, if they were sent within the
    /// resend window or are a whole pace; again each time as much more was sent; and
    /// only while fewer than [`MAX_OUTSTANDING_PINGS`] are unanswered. So a client behind in
    /// reading always gets a ping whose pong releases it.
    fn ping_if_due(&mut self, now_ms: u64, nonce: impl FnOnce() -> String) -> GuardTick {
        let since_last = self.sent_bytes - self.outstanding.back().map_or(self.confirmed_bytes, |p| p.2);
        let every = self.ping_every();
        let due = since_last >= every && (self.recent_unconfirmed(now_ms) >= every || since_last >= self.pace_bytes());
        if due && self.outstanding.len() < MAX_OUTSTANDING_PINGS {
            return self.ping(now_ms, nonce());
        }
        GuardTick::Nothing
    }

    /// Bytes sent within the resend window and not confirmed by a pong.
    fn recent_unconfirmed(&mut self, now_ms: u64) -> u64 {
        let oldest = now_ms.saturating_sub(self.resend_window_ms) / 1000;
        while self.recent.front().is_some_and(|(second, _)| *second < oldest) {
            self.recent.pop_front();
        }
        let recent: u64 = self.recent.iter().map(|(_, bytes)| bytes).sum();
        recent.min(self.unread_bytes())
    }

    /// Unconfirmed bytes that make a ping due.
    pub fn ping_every(&self) -> u64 {
        PING_EVERY_BYTES.min(self.pace_bytes() / 2).max(1)
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

    /// The guard's timer: a ping unanswered for the threshold closes the client. A client
    /// with nothing large unconfirmed has no ping outstanding and is left alone.
    pub fn on_tick(&mut self, now_ms: u64) -> GuardTick {
        match self.outstanding.front() {
            Some((_, sent_at, _)) if now_ms.saturating_sub(*sent_at) >= self.threshold_ms => {
                Self::too_slow("no answer to a ping")
            }
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

    /// Bytes sent so far on the connection: a position in its output, which
    /// [`confirmed_bytes`](Self::confirmed_bytes) reaches once the client read up to there.
    pub fn sent_bytes(&self) -> u64 {
        self.sent_bytes
    }

    /// Bytes of the output known to be read: everything sent before the last answered ping.
    pub fn confirmed_bytes(&self) -> u64 {
        self.confirmed_bytes
    }
}
