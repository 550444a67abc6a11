//! The chain object's core: everything one chain's Durable Object decides, in plain Rust over
//! two seams the runtime fills in and native tests replace: its storage (the log's rows
//! behind `log::LogStore`, its own tables behind [`ChainTables`]) and its internal sockets
//! to gateways ([`GatewaySockets`]). Each entry point is one synchronous turn of the object
//! and returns what the runtime must do afterwards ([`Effects`]). The edge's object class
//! only forwards the runtime's events here and performs those effects.
//!
//! Invariants the core relies on:
//! - A storage call is synchronous: an append's head read, inserts and head write run with
//!   nothing interleaved, and `LogStore::insert_all` is all or nothing, so a failed append
//!   leaves no event stored or delivered.
//! - The runtime's output gate holds every answer and frame until the writes before it are
//!   durable: a publisher never sees an offset a crash could take back.
//! - A restart (a deploy, an eviction) loses only what lives in memory: caches rebuilt from
//!   storage and the sockets' attachments on demand, and what waits at most a second for
//!   its write (saved-cursor moves and the sockets' cursors; an operator's restart flushes
//!   them first).
//!
//! Sub-states own their parts: [`streaming::Streaming`] the attached subscriptions and the
//! fan-out, [`webhooks::WebhookDeliveries`] the webhook attempts, [`alarm::AlarmClock`] the
//! one alarm.

pub mod alarm;
pub mod attached;
pub mod consumers;
pub mod host;
pub mod memory;
mod serve;
pub mod state_fold;
pub mod streaming;
pub mod webhooks;

use std::rc::Rc;

use crate::config::{ServiceConfig, Webhook};
use crate::current_state::{read_state, StateError, StateRequest};
use crate::log::{EntityStore, LogStore, OffsetLog, ValidEvent};
use crate::rpc::operators::{ChainMetrics, Consumers, ConsumersRequest, WebhookFigures};
use crate::rpc::{ChainNumbers, Refusal, Stored, WebhookResumed, Webhooks};
use crate::stream::spec::SAVED_CURSOR_TTL_MS;
use crate::stream::subscribe::still_granted;
use crate::webhook::RetryPolicy;
use alarm::{AlarmClock, AlarmStep};
use attached::{Delivered, Spec};
use host::{ChainError, ChainTables, Effects, GatewaySockets, WebhookPost};
use state_fold::{FoldSchedule, FOLD_STEP_BYTES, FOLD_STEP_EVENTS};
use streaming::{Admitted, Streaming};
pub use webhooks::WebhookAnswer;
use webhooks::{ChainWebhooks, WebhookDeliveries, SKIPS_PER_PUBLISH, SKIPS_PER_WAKE};

/// One chain's object, without the runtime.
pub struct ChainCore<S, K: GatewaySockets> {
    log: OffsetLog<S>,
    sockets: K,
    streaming: Streaming<K::Socket>,
    webhooks: WebhookDeliveries,
    alarm: AlarmClock,
    /// The chain this object holds (from the gateway's requests, kept in storage): the
    /// alarm, which comes with no request, needs it to find the chain's webhooks.
    chain_code: Option<String>,
    started_at: u64,
    /// How far the state retention sweep's pass has come (a storage key; empty: at the start).
    /// In memory: a restart starts the pass again.
    state_swept_through: String,
    fold: FoldSchedule,
    /// The offset the state is folded through, as last read or written by this instance:
    /// only its fold steps move it, so a publish need not read it again.
    state_through: Option<crate::log::Offset>,
}

impl<S: LogStore + EntityStore + ChainTables, K: GatewaySockets> ChainCore<S, K> {
    /// The core of an object that just started: registry rows of subscriptions whose
    /// sockets did not survive are dropped.
    pub fn new(store: S, sockets: K, now_ms: u64) -> Self {
        Streaming::drop_orphans(&store, &sockets);
        ChainCore {
            log: OffsetLog::new(store),
            sockets,
            streaming: Streaming::default(),
            webhooks: WebhookDeliveries::default(),
            alarm: AlarmClock::default(),
            chain_code: None,
            started_at: now_ms,
            state_swept_through: String::new(),
            fold: FoldSchedule::default(),
            state_through: None,
        }
    }

    pub fn log(&self) -> &OffsetLog<S> {
        &self.log
    }

    fn tables(&self) -> &S {
        self.log.store()
    }

    /// The chain code, from memory or storage.
    pub fn chain_code(&mut self) -> Option<String> {
        if self.chain_code.is_none() {
            self.chain_code = self.tables().chain_code().ok().flatten();
        }
        self.chain_code.clone()
    }

    /// Keeps the chain code a gateway's request names (the object's name: it never changes).
    pub fn remember_chain(&mut self, code: Option<&str>) -> Result<(), ChainError> {
        if self.chain_code.is_some() {
            return Ok(());
        }
        let Some(code) = code else { return Ok(()) };
        self.tables().set_chain_code(code)?;
        self.chain_code = Some(code.to_string());
        Ok(())
    }

    /// This chain's webhooks in `config`.
    fn hooks<'c>(&mut self, config: &'c ServiceConfig) -> Vec<&'c Webhook> {
        self.chain_code().map(|chain| config.webhooks_of(&chain).collect()).unwrap_or_default()
    }

    /// Stores a validated batch (the publish), in one synchronous turn: offsets assigned and
    /// rows written together; the entities' state follows in steps of its own (`state_fold`). Then it fans out (now or soon), makes sure the retention alarm
    /// is pending, and begins or schedules the batch's webhook deliveries, all before the
    /// answer: once a batch is acknowledged, its deliveries are in storage.
    pub fn append(
        &mut self,
        batch: &[ValidEvent],
        config: &ServiceConfig,
        now_ms: u64,
        fx: &mut Effects,
    ) -> Result<Stored, ChainError> {
        let hooks = self.hooks(config);
        self.webhooks.register(&self.log, self.log.store(), &hooks)?;
        let head_before = self.log.head()?;
        let offsets = self.log.append(batch, now_ms)?;
        if config.state_rules.keep {
            let lag = self.state_lag()?;
            fx.fold_after = fx.fold_after.or(self.fold.published(lag, now_ms));
        }
        self.streaming.stored(head_before, batch, &offsets, now_ms);
        self.streaming.request_fan_out(false, &self.log, self.log.store(), &self.sockets, now_ms, fx);
        self.ensure_retention_alarm(config, now_ms, fx)?;
        let chain = ChainWebhooks { hooks, policy: RetryPolicy::from_limits(&config.limits) };
        if let Err(e) = self.webhooks.wake(&self.log, self.log.store(), &chain, SKIPS_PER_PUBLISH, now_ms, fx) {
            fx.error(format!("webhooks after a publish: {e}"));
        }
        Ok(Stored { offsets })
    }

    /// A retention alarm is pending while events are retained. An alarm this instance set
    /// to fire by the time the events just stored expire needs no storage read (one set for
    /// the state sweep, hours away, does not do).
    fn ensure_retention_alarm(
        &mut self,
        config: &ServiceConfig,
        now_ms: u64,
        fx: &mut Effects,
    ) -> Result<(), ChainError> {
        let retention = retention_ms(config);
        if self.alarm.covers(now_ms + retention + crate::log::retention_slack(retention), now_ms) {
            return Ok(());
        }
        if let Some(at) = self.log.next_expiry(retention)? {
            fx.wake_by(at);
        }
        if config.state_rules.keep || self.tables().entity_totals()?.entities > 0 {
            fx.wake_by(now_ms + state_sweep_every_ms(config));
        }
        Ok(())
    }

    /// The chain's numbers for operators: no scan, whatever the log's length.
    pub fn numbers(&mut self, subscribers: usize) -> Result<ChainNumbers, ChainError> {
        let bounds = self.log.bounds()?;
        Ok(ChainNumbers {
            chain_code: self.chain_code().unwrap_or_default(),
            head_offset: bounds.head_offset,
            oldest_offset: bounds.oldest_offset,
            retained_events: bounds.retained_events(),
            subscribers,
            last_publish_at: self.tables().last_publish_at()?,
            deliveries: self.streaming.deliveries(),
            counting_since: self.started_at,
            entities: self.tables().entity_totals()?,
            state_through: self.state_through()?,
        })
    }

    /// The events published after the offset the state is folded through.
    fn state_lag(&mut self) -> Result<u64, ChainError> {
        Ok(self.log.head()?.saturating_sub(self.state_through()?))
    }

    /// The offset the state is folded through, read from storage once per instance.
    fn state_through(&mut self) -> Result<crate::log::Offset, ChainError> {
        if let Some(through) = self.state_through {
            return Ok(through);
        }
        let through = self.tables().state_through()?;
        self.state_through = Some(through);
        Ok(through)
    }

    /// The fold timer fired (`Effects::fold_after`): one fold step if one is due.
    pub fn fold_state(&mut self, config: &ServiceConfig, now_ms: u64, fx: &mut Effects) -> Result<(), ChainError> {
        if !config.state_rules.keep {
            return Ok(());
        }
        let lag = self.state_lag()?;
        if let Err(timer) = self.fold.fired(lag, now_ms) {
            fx.fold_after = fx.fold_after.or(timer);
            return Ok(());
        }
        self.fold_step(config, now_ms, fx)
    }

    fn fold_step(&mut self, config: &ServiceConfig, now_ms: u64, fx: &mut Effects) -> Result<(), ChainError> {
        let step = self.log.fold_state(&config.state_rules, FOLD_STEP_EVENTS, FOLD_STEP_BYTES)?;
        self.state_through = Some(step.through);
        fx.fold_after = fx.fold_after.or(self.fold.folded(step.lag, now_ms));
        Ok(())
    }

    /// One page of the current state of the chain's entities (`current_state`), as of the
    /// offset the state is folded through: `Err` with the `400` when the request's cursor is
    /// not one of this chain's. A state behind with no step pending gets one.
    pub fn state_page(
        &mut self,
        request: &StateRequest,
        config: &ServiceConfig,
        now_ms: u64,
        fx: &mut Effects,
    ) -> Result<Result<String, (u16, Refusal)>, ChainError> {
        self.remember_chain(Some(&request.chain_code))?;
        if config.state_rules.keep && !self.fold.pending() {
            let lag = self.state_lag()?;
            fx.fold_after = self.fold.folded(lag, now_ms);
        }
        match read_state(&self.log, request) {
            Ok(page) => Ok(Ok(page)),
            Err(StateError::BadCursor(why)) => Ok(Err((400, Refusal { code: "invalid_request".into(), message: why }))),
            Err(StateError::Store(e)) => Err(e.into()),
        }
    }

    /// Whether a gateway's subscription may attach, and where it starts: its client must
    /// still hold what it streams, against the configuration this object runs with (a
    /// deploy, which is how a configuration changes, restarts every object, so every
    /// subscription reattaches and a revoked grant ends it).
    pub fn admit(
        &mut self,
        spec: Spec,
        chain: Option<&str>,
        config: &ServiceConfig,
        now_ms: u64,
        fx: &mut Effects,
    ) -> Result<Result<Admitted, (u16, Refusal)>, ChainError> {
        self.remember_chain(chain)?;
        if let Err(why) = still_granted(config, chain, &spec) {
            fx.audit(
                "subscription.revoked",
                serde_json::json!({
                    "clientId": spec.client_id, "connectionId": spec.connection_id, "operationId": spec.id,
                    "reason": why,
                }),
            );
            return Ok(Err((403, Refusal { code: crate::graphql::codes::FORBIDDEN.into(), message: why })));
        }
        let admitted = self.streaming.admit(&self.log, self.log.store(), spec, now_ms)?;
        if admitted.is_ok() {
            // Before the runtime accepts the new socket: a list read after it would hold it twice.
            self.streaming.load(self.log.store(), &self.sockets, now_ms, fx);
        }
        Ok(admitted.map_err(|refusal| (409, refusal)))
    }

    /// The runtime accepted the admitted subscription's socket, with `key` as its tag.
    pub fn attach(&mut self, socket: K::Socket, key: Rc<str>, admitted: Admitted, now_ms: u64, fx: &mut Effects) {
        self.streaming.attach(socket, key, admitted, now_ms, fx);
    }

    /// A message from a gateway on a subscription's socket.
    pub fn on_gateway_message(
        &mut self,
        socket: &K::Socket,
        text: &str,
        now_ms: u64,
        fx: &mut Effects,
    ) -> Result<(), ChainError> {
        self.streaming.on_message(&self.log, self.log.store(), &self.sockets, socket, text, now_ms, fx)
    }

    /// A gateway closed a subscription's socket.
    pub fn on_gateway_close(&mut self, socket: &K::Socket, code: u16, fx: &mut Effects) {
        self.streaming.on_close(&self.sockets, socket, code, fx);
    }

    /// A subscription's socket failed.
    pub fn on_gateway_error(&mut self, socket: &K::Socket, fx: &mut Effects) {
        self.streaming.forget(&self.sockets, socket, fx);
    }

    /// The fan-out the last call asked for (`Effects::fan_out_after`) is due.
    pub fn fan_out(&mut self, now_ms: u64, fx: &mut Effects) {
        if self.streaming.fan_out(&self.log, self.log.store(), &self.sockets, now_ms, fx) {
            // The turn's budget ran out: go on in a later turn, after whatever else
            // (publishes, acknowledgements) is waiting.
            self.streaming.request_fan_out(true, &self.log, self.log.store(), &self.sockets, now_ms, fx);
        }
    }

    /// The flush a call asked for (`Effects::flush_after`) is due, or the object is about to
    /// restart and must lose no cursor move.
    pub fn flush(&mut self, fx: &mut Effects) {
        self.streaming.flush(self.log.store(), &self.sockets, fx);
    }

    /// The object's alarm: webhook retries first (a retention error must not hold them
    /// up), then retention and the expiry of saved cursors.
    pub fn alarm(&mut self, config: &ServiceConfig, now_ms: u64, fx: &mut Effects) -> Result<(), ChainError> {
        self.alarm.fired();
        self.wake_webhooks(config, now_ms, fx);
        // What the next fan-out would serve from memory may be among the rows deleted.
        self.streaming.rows_deleted();
        // No event is dropped before the state has folded it.
        if config.state_rules.keep && self.state_lag()? > 0 {
            self.fold_step(config, now_ms, fx)?;
        }
        let keep_through = if config.state_rules.keep { self.state_through()? } else { crate::log::MAX_OFFSET };
        let outcome = self.log.apply_retention_through(now_ms, retention_ms(config), keep_through)?;
        if outcome.deleted > 0 {
            fx.audit("retention.applied", serde_json::json!({"deleted": outcome.deleted}));
        }
        self.sweep_state(config, now_ms, fx)?;
        // Saved cursors are only read within a day of their last move.
        self.tables().drop_cursors_before(now_ms.saturating_sub(SAVED_CURSOR_TTL_MS))?;
        if let Some(at) = outcome.next_alarm {
            fx.wake_by(at);
        }
        Ok(())
    }

    /// One step of the state retention sweep: the next keys of this pass, then the next pass.
    fn sweep_state(&mut self, config: &ServiceConfig, now_ms: u64, fx: &mut Effects) -> Result<(), ChainError> {
        let swept = self.log.sweep_state(&self.state_swept_through, now_ms, state_retention_ms(config))?;
        if swept.removed > 0 {
            fx.audit("state.retention.applied", serde_json::json!({"entitiesDropped": swept.removed}));
        }
        if let Some(last) = swept.last {
            // More of this pass, in an alarm of its own right after this one.
            self.state_swept_through = last;
            fx.wake_by(now_ms);
        } else {
            self.state_swept_through.clear();
            if self.tables().entity_totals()?.entities > 0 {
                fx.wake_by(now_ms + state_sweep_every_ms(config));
            }
        }
        Ok(())
    }

    /// Wakes the webhooks: a finished attempt, a scan to go on, the alarm.
    pub fn wake_webhooks(&mut self, config: &ServiceConfig, now_ms: u64, fx: &mut Effects) {
        let chain = ChainWebhooks { hooks: self.hooks(config), policy: RetryPolicy::from_limits(&config.limits) };
        if let Err(e) = self.webhooks.wake(&self.log, self.log.store(), &chain, SKIPS_PER_WAKE, now_ms, fx) {
            fx.error(format!("webhooks: {e}"));
            fx.wake_by(now_ms + 5_000);
        }
    }

    /// A webhook attempt ended; its connection is free, so the webhooks are woken again.
    pub fn webhook_answered(
        &mut self,
        post: &WebhookPost,
        answer: WebhookAnswer,
        config: &ServiceConfig,
        fx: &mut Effects,
    ) -> Result<(), ChainError> {
        let policy = RetryPolicy::from_limits(&config.limits);
        let answered_ms = answer.answered_ms;
        let moved = self.webhooks.answered(self.log.store(), post, answer, &policy, fx);
        self.wake_webhooks(config, answered_ms, fx);
        moved
    }

    /// Every configured webhook of the chain as it stands.
    pub fn webhooks(&mut self, config: &ServiceConfig, now_ms: u64) -> Result<Webhooks, ChainError> {
        let hooks = self.hooks(config);
        WebhookDeliveries::list(&self.log, self.log.store(), &hooks, now_ms)
    }

    /// An operator resumes a webhook, from `from` when given, and it is attempted at once.
    pub fn resume_webhook(
        &mut self,
        id: &str,
        from: Option<crate::log::Offset>,
        config: &ServiceConfig,
        now_ms: u64,
        fx: &mut Effects,
    ) -> Result<Result<WebhookResumed, (u16, Refusal)>, ChainError> {
        let hooks = self.hooks(config);
        let Some(webhook) = hooks.iter().find(|w| w.id == id).copied() else {
            let refusal = Refusal { code: "not_found".into(), message: format!("chain has no webhook {id:?}") };
            return Ok(Err((404, refusal)));
        };
        let was_paused = match WebhookDeliveries::resume(&self.log, self.log.store(), webhook, from)? {
            Ok(was_paused) => was_paused,
            Err(refusal) => return Ok(Err((409, refusal))),
        };
        self.wake_webhooks(config, now_ms, fx);
        Ok(Ok(WebhookDeliveries::resumed(&self.log, self.log.store(), webhook, was_paused, now_ms)?))
    }

    /// Every attached subscription with what it was delivered, for operators.
    pub fn attached(&mut self, now_ms: u64, fx: &mut Effects) -> Vec<(&Spec, crate::stream::pump::Cursor, Delivered)> {
        self.streaming.each_attached(self.log.store(), &self.sockets, now_ms, fx)
    }

    /// A page of the chain's consumers (`consumers`): `Err` with the `400` for an `after` that
    /// is not one of this chain's pages.
    pub fn consumers(
        &mut self,
        request: &ConsumersRequest,
        now_ms: u64,
        fx: &mut Effects,
    ) -> Result<Result<Consumers, (u16, Refusal)>, ChainError> {
        let chain_code = self.chain_code().unwrap_or_default();
        let head = self.log.head()?;
        let attached = self.streaming.each_attached(self.log.store(), &self.sockets, now_ms, fx);
        let page = consumers::consumers_page(chain_code, head, &attached, self.log.store(), request)?;
        Ok(page.map_err(|why| (400, Refusal { code: "invalid_request".into(), message: why })))
    }

    /// The chain's figures for the metrics endpoint: its numbers, the lag of each client's
    /// furthest-behind subscription, and each webhook's lag. Nothing here scans storage.
    pub fn metrics(
        &mut self,
        subscribers: usize,
        config: &ServiceConfig,
        now_ms: u64,
        fx: &mut Effects,
    ) -> Result<ChainMetrics, ChainError> {
        let numbers = self.numbers(subscribers)?;
        let attached = self.streaming.each_attached(self.log.store(), &self.sockets, now_ms, fx);
        let consumer_lag = consumers::lag_by_client(&attached, numbers.head_offset);
        let webhooks = self
            .webhooks(config, now_ms)?
            .webhooks
            .into_iter()
            .map(|w| (w.id, WebhookFigures { lag_events: w.lag_events, paused: w.paused }))
            .collect();
        Ok(ChainMetrics { numbers, consumer_lag, webhooks })
    }

    /// What to do about a wish for the alarm to fire by `at` (see `AlarmClock`).
    pub fn alarm_wish(&mut self, at: u64, now_ms: u64) -> AlarmStep {
        self.alarm.wish(at, now_ms)
    }

    /// The stored alarm was read for a wish to fire by `at`.
    pub fn alarm_read(&mut self, stored: Option<u64>, at: u64, now_ms: u64) -> AlarmStep {
        self.alarm.after_read(stored, at, now_ms)
    }

    /// Webhook attempts in flight in this instance.
    pub fn webhooks_in_flight(&self) -> usize {
        self.webhooks.busy()
    }
}

/// The configured retention in ms.
fn retention_ms(config: &ServiceConfig) -> u64 {
    config.retention_seconds * 1000
}

/// How long an entity's state outlives its last event, in ms.
fn state_retention_ms(config: &ServiceConfig) -> u64 {
    config.limits.state_retention_seconds * 1000
}

/// How often the state retention sweep starts a pass over the entities: a 24th of the state
/// retention, at least hourly, so an expired entity lingers at most ~4% of its retention.
pub fn state_sweep_every_ms(config: &ServiceConfig) -> u64 {
    (state_retention_ms(config) / 24).max(3_600_000)
}
