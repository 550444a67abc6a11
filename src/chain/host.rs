//! What the chain object's core needs of the runtime, as traits the edge implements and
//! native tests replace: the object's own tables beside the log's rows ([`ChainTables`]),
//! its internal sockets to gateways ([`GatewaySockets`]); and what the core hands back for
//! the runtime to do after a call returns ([`Effects`]): timers, webhook requests, the
//! alarm and log lines. Every call of the core is one synchronous turn; anything later is
//! an effect.

use serde_json::Value;

use crate::config::Webhook;
use crate::log::{Offset, StoreError};
use crate::stream::spec::BatchEncoding;
use crate::webhook::{WebhookBatch, WebhookState};

/// Why a call of the core failed: a storage or socket error, said in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainError(pub String);

impl std::fmt::Display for ChainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<StoreError> for ChainError {
    fn from(e: StoreError) -> Self {
        ChainError(e.to_string())
    }
}

/// The chain object's tables beside the log's rows. Synchronous, like the log's: a call
/// with no `await` between its reads and writes is one uninterleaved step.
pub trait ChainTables {
    /// The saved cursor of `key` (`spec::cursor_key`): the last offset read, and when (ms).
    fn saved_cursor(&self, key: &str) -> Result<Option<(Offset, u64)>, StoreError>;
    /// Moves the saved cursor forward, never back.
    fn save_cursor(&self, key: &str, through: Offset, now_ms: u64) -> Result<(), StoreError>;
    /// Forgets saved cursors not moved since `before` (ms).
    fn drop_cursors_before(&self, before: u64) -> Result<(), StoreError>;
    /// Every saved cursor: key, offset and when, at most `limit`, from after `after` in key
    /// order.
    fn saved_cursors(&self, after: &str, limit: usize) -> Result<Vec<(String, Offset, u64)>, StoreError>;
    /// The registry of attached subscriptions: each spec (JSON) under its socket's key.
    fn register_subscription(&self, key: &str, spec_json: &str) -> Result<(), StoreError>;
    fn subscription(&self, key: &str) -> Result<Option<String>, StoreError>;
    fn unregister_subscription(&self, key: &str) -> Result<(), StoreError>;
    fn subscription_keys(&self) -> Result<Vec<String>, StoreError>;
    /// The chain code this object holds, once a request named it.
    fn chain_code(&self) -> Result<Option<String>, StoreError>;
    fn set_chain_code(&self, code: &str) -> Result<(), StoreError>;
    fn webhook_state(&self, id: &str) -> Result<Option<WebhookState>, StoreError>;
    fn save_webhook_state(&self, id: &str, state: &WebhookState) -> Result<(), StoreError>;
    /// When the newest event was stored (ms), also after retention deleted it.
    fn last_publish_at(&self) -> Result<Option<u64>, StoreError>;
}

/// The chain object's internal sockets: one per attached subscription, accepted with the
/// runtime's hibernation API, each with a short text attachment that survives hibernation.
pub trait GatewaySockets {
    type Socket: Clone;
    /// A message as the runtime sends it: made once and sent to every socket it is for.
    type Message;

    /// Every socket the object holds (after a wake from hibernation too).
    fn all(&self) -> Vec<Self::Socket>;
    fn attachment(&self, socket: &Self::Socket) -> Result<Option<String>, ChainError>;
    fn set_attachment(&self, socket: &Self::Socket, text: &str) -> Result<(), ChainError>;
    fn message(&self, text: &str, encoding: BatchEncoding) -> Self::Message;
    fn send(&self, socket: &Self::Socket, message: &Self::Message) -> Result<(), ChainError>;
    /// Sends a message made for this socket only.
    fn send_text(&self, socket: &Self::Socket, text: &str, encoding: BatchEncoding) -> Result<(), ChainError>;
    fn close(&self, socket: &Self::Socket, code: u16, reason: &str);
}

/// A webhook attempt for the runtime to make: post `batch` to `webhook`, then tell the
/// core the answer (`ChainCore::webhook_answered`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookPost {
    pub webhook: Webhook,
    pub batch: WebhookBatch,
    /// How long to wait for the answer (ms).
    pub timeout_ms: u64,
}

/// One audit line to write.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditLine {
    pub event: &'static str,
    pub fields: Value,
}

/// What the runtime does once a call of the core returned.
#[derive(Debug, Default)]
pub struct Effects {
    /// Call `ChainCore::fan_out` in a turn of its own, after this many ms (0: after the
    /// work already waiting).
    pub fan_out_after: Option<u64>,
    /// Call `ChainCore::flush` after this many ms.
    pub flush_after: Option<u64>,
    /// Call `ChainCore::fold_state` after this many ms.
    pub fold_after: Option<u64>,
    /// Call `ChainCore::wake_webhooks` again in a turn of its own: a filtered scan goes on.
    pub webhooks_again: bool,
    /// Make these webhook attempts, each as a task of its own.
    pub posts: Vec<WebhookPost>,
    /// The object's alarm must fire at or before this time (ms): see `AlarmClock`.
    pub alarm_by: Option<u64>,
    pub audit: Vec<AuditLine>,
    /// Failures that ended nothing but are worth an operator's eye.
    pub errors: Vec<String>,
}

impl Effects {
    /// The alarm must fire at or before `at`.
    pub fn wake_by(&mut self, at: u64) {
        self.alarm_by = Some(self.alarm_by.map_or(at, |set| set.min(at)));
    }

    pub fn audit(&mut self, event: &'static str, fields: Value) {
        self.audit.push(AuditLine { event, fields });
    }

    pub fn error(&mut self, message: impl Into<String>) {
        self.errors.push(message.into());
    }
}

/// Tables shared by several owners (a test that restarts an object over the same storage).
impl<T: ChainTables + ?Sized> ChainTables for std::rc::Rc<T> {
    fn saved_cursor(&self, key: &str) -> Result<Option<(Offset, u64)>, StoreError> {
        (**self).saved_cursor(key)
    }

    fn save_cursor(&self, key: &str, through: Offset, now_ms: u64) -> Result<(), StoreError> {
        (**self).save_cursor(key, through, now_ms)
    }

    fn drop_cursors_before(&self, before: u64) -> Result<(), StoreError> {
        (**self).drop_cursors_before(before)
    }

    fn saved_cursors(&self, after: &str, limit: usize) -> Result<Vec<(String, Offset, u64)>, StoreError> {
        (**self).saved_cursors(after, limit)
    }

    fn register_subscription(&self, key: &str, spec_json: &str) -> Result<(), StoreError> {
        (**self).register_subscription(key, spec_json)
    }

    fn subscription(&self, key: &str) -> Result<Option<String>, StoreError> {
        (**self).subscription(key)
    }

    fn unregister_subscription(&self, key: &str) -> Result<(), StoreError> {
        (**self).unregister_subscription(key)
    }

    fn subscription_keys(&self) -> Result<Vec<String>, StoreError> {
        (**self).subscription_keys()
    }

    fn chain_code(&self) -> Result<Option<String>, StoreError> {
        (**self).chain_code()
    }

    fn set_chain_code(&self, code: &str) -> Result<(), StoreError> {
        (**self).set_chain_code(code)
    }

    fn webhook_state(&self, id: &str) -> Result<Option<WebhookState>, StoreError> {
        (**self).webhook_state(id)
    }

    fn save_webhook_state(&self, id: &str, state: &WebhookState) -> Result<(), StoreError> {
        (**self).save_webhook_state(id, state)
    }

    fn last_publish_at(&self) -> Result<Option<u64>, StoreError> {
        (**self).last_publish_at()
    }
}
