//! The chain object's webhook deliveries: it performs what `crate::webhook` decides. Each
//! webhook's state is one row of the object's tables; an attempt runs as a task of the
//! runtime's (an effect), so the object keeps publishing and streaming while a receiver is
//! slow, and the object's few outgoing connections go to the webhooks fairly
//! (`webhook::slots`).
//!
//! Wake-ups: a publish, a finished attempt (for the next batch), an operator's resume, and
//! the object's alarm, set no later than the earliest retry or attempt lease, and for a
//! webhook held back for a connection, no later than when one is sure to be free. A
//! restart loses only the attempts in flight; their leases in storage make the alarm
//! attempt their batches again.

use super::host::{ChainError, ChainTables, Effects, WebhookPost};
use crate::config::Webhook;
use crate::log::{LogStore, Offset, OffsetLog};
use crate::rpc::{Refusal, WebhookResumed, Webhooks};
use crate::webhook::delivery::{AfterFailure, ResumeError};
use crate::webhook::slots::{fair_order, DeliverySlots};
use crate::webhook::{Failure, Plan, RetryPolicy, WebhookState};

/// Plans that only move a filtered cursor, per webhook per wake-up: the rest of a long
/// filtered scan continues in a turn of its own.
pub const SKIPS_PER_WAKE: usize = 4;
/// Such plans a publish allows per webhook, so its answer waits for no long scan.
pub const SKIPS_PER_PUBLISH: usize = 1;
/// When a wake-up could not finish (a storage error, a scan to continue), the alarm comes
/// back this soon (ms) in case nothing else does.
const RETRY_SOON_MS: u64 = 5_000;

/// A chain's configured webhooks and how their attempts are timed.
pub struct ChainWebhooks<'c> {
    pub hooks: Vec<&'c Webhook>,
    pub policy: RetryPolicy,
}

/// An answer of a webhook attempt, and when it was made.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookAnswer {
    /// A 2xx status, or why the attempt failed.
    pub outcome: Result<u16, Failure>,
    pub started_ms: u64,
    pub answered_ms: u64,
    /// In [0, 1): spreads retries so that receivers back from an outage are not hit by
    /// every chain at once.
    pub jitter: f64,
}

/// What one webhook's wake-up left to do.
struct Woken {
    at: Option<u64>,
    scan_on: bool,
}

/// The webhook side of a chain object.
#[derive(Debug, Default)]
pub struct WebhookDeliveries {
    slots: DeliverySlots,
    /// Every configured webhook has a state row (see [`WebhookDeliveries::register`]).
    registered: bool,
}

impl WebhookDeliveries {
    /// The state of a configured webhook; one seen for the first time starts at the head.
    fn state_or_new(tables: &impl ChainTables, id: &str, head: Offset) -> Result<WebhookState, ChainError> {
        if let Some(state) = tables.webhook_state(id)? {
            return Ok(state);
        }
        let state = WebhookState::new(head);
        tables.save_webhook_state(id, &state)?;
        Ok(state)
    }

    /// Gives every webhook configured for the chain a state before a publish, so that one
    /// configured since the last publish starts with the events about to be stored. Once
    /// per instance: the configuration changes only with a deploy, which restarts the
    /// object.
    pub fn register<L: LogStore>(
        &mut self,
        log: &OffsetLog<L>,
        tables: &impl ChainTables,
        hooks: &[&Webhook],
    ) -> Result<(), ChainError> {
        if self.registered {
            return Ok(());
        }
        if !hooks.is_empty() {
            let head = log.head()?;
            for webhook in hooks {
                Self::state_or_new(tables, &webhook.id, head)?;
            }
        }
        self.registered = true;
        Ok(())
    }

    /// Starts every attempt that is due and has a free connection, offering the
    /// connections to the webhooks that waited longest first, and asks for the alarm no
    /// later than the next retry, lease or free connection. `skips`: how many plans that
    /// only move a filtered cursor one webhook may make here; the rest of such a scan goes
    /// on in a turn of its own.
    pub fn wake<L: LogStore>(
        &mut self,
        log: &OffsetLog<L>,
        tables: &impl ChainTables,
        chain: &ChainWebhooks<'_>,
        skips: usize,
        now_ms: u64,
        fx: &mut Effects,
    ) -> Result<(), ChainError> {
        if chain.hooks.is_empty() {
            return Ok(());
        }
        let head = log.head()?;
        let mut states = Vec::with_capacity(chain.hooks.len());
        for webhook in &chain.hooks {
            match Self::state_or_new(tables, &webhook.id, head) {
                Ok(state) => states.push((*webhook, state)),
                Err(e) => {
                    // One webhook's broken state must not stop the others; its turn comes again.
                    fx.error(format!("webhook {}: {e}", webhook.id));
                    fx.wake_by(now_ms + RETRY_SOON_MS);
                }
            }
        }
        for (webhook, state) in fair_order(states) {
            match self.wake_one(log, tables, webhook, state, head, &chain.policy, skips, now_ms, fx) {
                Ok(Woken { at, scan_on }) => {
                    if let Some(at) = at {
                        fx.wake_by(at.max(now_ms + 1));
                    }
                    fx.webhooks_again |= scan_on;
                }
                Err(e) => {
                    // One webhook's broken state must not stop the others; its turn comes again.
                    fx.error(format!("webhook {}: {e}", webhook.id));
                    fx.wake_by(now_ms + RETRY_SOON_MS);
                }
            }
        }
        Ok(())
    }

    /// One webhook's wake-up: starts its next attempt if one is due and a connection is
    /// free. Says when the alarm must come back for it: its retry or lease, or, held back
    /// for a connection, when the attempts in flight are over at the latest.
    #[allow(clippy::too_many_arguments, reason = "the object's parts a wake-up touches, each borrowed apart")]
    fn wake_one<L: LogStore>(
        &mut self,
        log: &OffsetLog<L>,
        tables: &impl ChainTables,
        webhook: &Webhook,
        mut state: WebhookState,
        head: Offset,
        policy: &RetryPolicy,
        skips: usize,
        now_ms: u64,
        fx: &mut Effects,
    ) -> Result<Woken, ChainError> {
        let waiting =
            |s: &WebhookState| Woken { at: s.wake_at(head, now_ms).filter(|at| *at > now_ms), scan_on: false };
        if self.slots.in_flight(&webhook.id) {
            return Ok(waiting(&state));
        }
        let mut skipped = 0;
        loop {
            if !self.slots.free() {
                // Held back for a connection: the attempt that ends first wakes every
                // webhook; should none (a lost task), the leases in flight are over by then.
                let due_now = state.wake_at(head, now_ms).is_some_and(|at| at <= now_ms);
                let at = if due_now { Some(now_ms + policy.lease_ms()) } else { waiting(&state).at };
                return Ok(Woken { at, scan_on: false });
            }
            match state.plan(log, webhook, now_ms)? {
                Plan::Idle | Plan::WaitUntil(_) => return Ok(waiting(&state)),
                Plan::Skip { through } => {
                    state.skipped(through);
                    tables.save_webhook_state(&webhook.id, &state)?;
                    skipped += 1;
                    if skipped >= skips {
                        // The scan continues in a turn of its own.
                        return Ok(Woken { at: Some(now_ms + RETRY_SOON_MS), scan_on: true });
                    }
                }
                Plan::Post(batch) => {
                    state.begin(batch.range, now_ms, policy);
                    tables.save_webhook_state(&webhook.id, &state)?;
                    self.slots.start(&webhook.id);
                    fx.posts.push(WebhookPost { webhook: webhook.clone(), batch, timeout_ms: policy.timeout_ms });
                    return Ok(waiting(&state));
                }
            }
        }
    }

    /// The answer to an attempt came (`Ok`: a 2xx status), or none did: the state moves,
    /// with its audit lines. The caller wakes the webhooks again for the freed connection.
    pub fn answered(
        &mut self,
        tables: &impl ChainTables,
        post: &WebhookPost,
        answer: WebhookAnswer,
        policy: &RetryPolicy,
        fx: &mut Effects,
    ) -> Result<(), ChainError> {
        let WebhookPost { webhook, batch, .. } = post;
        let WebhookAnswer { outcome, started_ms, answered_ms: now_ms, jitter } = answer;
        self.slots.finish(&webhook.id);
        let Some(mut state) = tables.webhook_state(&webhook.id)? else { return Ok(()) };
        let (from, through) = (batch.range.from.to_string(), batch.range.through.to_string());
        let base = serde_json::json!({
            "chain": webhook.chain, "webhookId": webhook.id, "clientId": webhook.client_id, "messageId": batch.id,
            "fromOffset": from, "throughOffset": through, "durationMs": now_ms.saturating_sub(started_ms),
        });
        let with = |extra: serde_json::Value| {
            let mut line = base.clone();
            if let (Some(line), serde_json::Value::Object(extra)) = (line.as_object_mut(), extra) {
                line.extend(extra);
            }
            line
        };
        match outcome {
            Ok(status) => {
                if state.accepted(batch.range, status, now_ms) {
                    tables.save_webhook_state(&webhook.id, &state)?;
                    let gap = batch.gap.map(|g| g.requested.to_string());
                    fx.audit(
                        "webhook.delivered",
                        with(serde_json::json!({"events": batch.events, "status": status, "gap": gap})),
                    );
                }
            }
            Err(failure) => {
                let Some(after) = state.failed(batch.range, &failure, now_ms, jitter, policy) else { return Ok(()) };
                tables.save_webhook_state(&webhook.id, &state)?;
                let retry_at = match after {
                    AfterFailure::RetryAt(at) => Some(at),
                    AfterFailure::Paused => None,
                };
                fx.audit(
                    "webhook.failed",
                    with(serde_json::json!({
                        "status": failure.status(), "error": failure.describe(), "attempt": state.attempts,
                        "nextAttemptAt": retry_at,
                    })),
                );
                if after == AfterFailure::Paused {
                    fx.audit(
                        "webhook.paused",
                        serde_json::json!({
                            "chain": webhook.chain, "webhookId": webhook.id, "clientId": webhook.client_id,
                            "cursor": state.cursor.to_string(), "failingSince": state.failing_since,
                            "attempts": state.attempts,
                        }),
                    );
                }
            }
        }
        Ok(())
    }

    /// Every configured webhook of the chain as it stands.
    pub fn list<L: LogStore>(
        log: &OffsetLog<L>,
        tables: &impl ChainTables,
        hooks: &[&Webhook],
        now_ms: u64,
    ) -> Result<Webhooks, ChainError> {
        let head = log.head()?;
        let mut webhooks = Vec::with_capacity(hooks.len());
        for webhook in hooks {
            let state = Self::state_or_new(tables, &webhook.id, head)?;
            webhooks.push(state.status(webhook, head, now_ms));
        }
        Ok(Webhooks { head_offset: head, webhooks })
    }

    /// An operator's resume of `webhook` (paused or not), from `from` when given. The
    /// caller wakes the webhooks, then reads the state again for the answer.
    pub fn resume<L: LogStore>(
        log: &OffsetLog<L>,
        tables: &impl ChainTables,
        webhook: &Webhook,
        from: Option<Offset>,
    ) -> Result<Result<bool, Refusal>, ChainError> {
        let bounds = log.bounds()?;
        let mut state = Self::state_or_new(tables, &webhook.id, bounds.head_offset)?;
        let was_paused = state.paused();
        if let Err(ResumeError::OutOfRange { requested, head }) = state.resume(from, &bounds) {
            return Ok(Err(Refusal::offset_out_of_range("from", requested, head)));
        }
        tables.save_webhook_state(&webhook.id, &state)?;
        Ok(Ok(was_paused))
    }

    /// A webhook's state as operators see it after a resume.
    pub fn resumed<L: LogStore>(
        log: &OffsetLog<L>,
        tables: &impl ChainTables,
        webhook: &Webhook,
        was_paused: bool,
        now_ms: u64,
    ) -> Result<WebhookResumed, ChainError> {
        let head = log.head()?;
        let state = Self::state_or_new(tables, &webhook.id, head)?;
        Ok(WebhookResumed { was_paused, webhook: state.status(webhook, head, now_ms) })
    }

    /// Attempts in flight in this instance.
    pub fn busy(&self) -> usize {
        self.slots.busy()
    }
}
