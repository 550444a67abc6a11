//! The chain object's webhook deliveries: it performs what `crate::webhook` decides. Each
//! webhook's state is one row of `webhooks`; a delivery runs as a task of its own, so the
//! object keeps publishing and streaming while a receiver is slow (an outgoing request
//! does not hold the object's input gate), and at most
//! [`MAX_PARALLEL_DELIVERIES`] run at once. The output gate holds every request until the
//! events it carries are durable.
//!
//! Wake-ups: a publish, a finished attempt (for the next batch), an operator's resume, and
//! the object's alarm, set no later than the earliest retry or attempt lease. A restart loses
//! only the in-flight set; the lease in storage makes the alarm attempt the batch again.

use std::rc::Rc;

use crate::edge::settings::Settings;
use worker::{AbortController, Fetch, Headers, Method, Request, RequestInit, RequestRedirect, Response, Result};

use super::object::{internal, refuse, ChainObject};
use crate::log::Offset;
use crate::rpc;
use crate::webhook::delivery::{AfterFailure, ResumeError};
use crate::webhook::signature;
use crate::webhook::{Batch, Failure, Plan, RetryPolicy, Webhook, WebhookState, MAX_PARALLEL_DELIVERIES};

/// Plans that only move a filtered cursor, per webhook per wake-up: the rest of a long
/// filtered scan continues in a later turn.
pub(super) const SKIPS_PER_WAKE: usize = 4;
/// When a wake-up could not finish (a storage error, a scan to continue), the alarm comes back
/// this soon (ms) in case nothing else does.
const ERROR_RETRY_MS: u64 = 5_000;
/// The part of a receiver's answer kept to explain a failure.
const ANSWER_EXCERPT_BYTES: usize = 512;

/// A chain's configured webhooks, borrowed from the isolate's settings (no copy per wake-up).
struct ChainWebhooks {
    settings: Rc<Settings>,
    chain: String,
}

impl ChainWebhooks {
    fn iter(&self) -> impl Iterator<Item = &Webhook> + '_ {
        self.settings.config.webhooks_of(&self.chain)
    }

    fn policy(&self) -> RetryPolicy {
        RetryPolicy::from_limits(&self.settings.config.limits)
    }
}

/// What one webhook's wake-up left to do.
struct Woken {
    at: Option<u64>,
    scan_on: bool,
}

impl ChainObject {
    /// The state of a configured webhook; one seen for the first time starts at the head.
    fn webhook_state_or_new(&self, id: &str, head: Offset) -> Result<WebhookState> {
        if let Some(state) = self.storage().webhook_state(id)? {
            return Ok(state);
        }
        let state = WebhookState::new(head);
        self.storage().save_webhook_state(id, &state)?;
        Ok(state)
    }

    /// This chain's webhooks, from the configuration this object runs with; `None` when it
    /// has none (or does not know its chain yet).
    fn configured_webhooks(&self) -> Option<ChainWebhooks> {
        let chain = self.chain_code()?;
        let settings = crate::edge::settings::load(&self.env).ok()?;
        settings.config.webhooks_of(&chain).next()?;
        Some(ChainWebhooks { settings, chain })
    }

    /// Gives every webhook configured for this chain a state before a publish, so that one
    /// configured since the last publish starts with the events about to be stored. Once per
    /// instance: the configuration changes only with a deploy, which restarts the object.
    pub(super) fn register_webhooks(&self) -> Result<()> {
        if self.webhooks_registered.get() {
            return Ok(());
        }
        if let Some(hooks) = self.configured_webhooks() {
            let head = self.log.head().map_err(internal)?;
            for webhook in hooks.iter() {
                self.webhook_state_or_new(&webhook.id, head)?;
            }
        }
        self.webhooks_registered.set(self.chain_code().is_some());
        Ok(())
    }

    /// Starts every delivery that is due and has a free connection, and makes sure the alarm
    /// comes back no later than the next retry or attempt lease. `skips`: how many plans that
    /// only move a filtered cursor one webhook may make here (a publish allows one, so its
    /// answer waits for no long scan); the rest of such a scan goes on in a turn of its own.
    pub(super) async fn wake_webhooks(self: &Rc<Self>, skips: usize) -> Result<()> {
        let Some(hooks) = self.configured_webhooks() else {
            return Ok(());
        };
        let policy = hooks.policy();
        let now = crate::edge::now_ms();
        let head = self.log.head().map_err(internal)?;
        let mut wake_at: Option<u64> = None;
        let mut earliest = |at: u64| wake_at = Some(wake_at.map_or(at, |w: u64| w.min(at)));
        let mut more_to_scan = false;
        for webhook in hooks.iter() {
            match self.wake_webhook(webhook, head, now, skips, &policy) {
                Ok(Woken { at, scan_on }) => {
                    at.into_iter().for_each(&mut earliest);
                    more_to_scan |= scan_on;
                }
                Err(e) => {
                    // One webhook's broken state must not stop the others; its turn comes again.
                    worker::console_error!("webhook {}: {e}", webhook.id);
                    earliest(now + ERROR_RETRY_MS);
                }
            }
        }
        if more_to_scan {
            // A filtered scan goes on after whatever else waits (a timer of 0 is a new turn).
            let core = self.clone();
            wasm_bindgen_futures::spawn_local(async move {
                worker::Delay::from(std::time::Duration::from_millis(0)).await;
                if let Err(e) = core.wake_webhooks(SKIPS_PER_WAKE).await {
                    worker::console_error!("webhooks: {e}");
                }
            });
        }
        if let Some(at) = wake_at {
            self.wake_by(at.max(now + 1)).await?;
        }
        Ok(())
    }

    /// One webhook's wake-up: starts its next attempt if one is due and a connection is free.
    /// Returns when the alarm must come back for it, if ever: its lease or retry, never now
    /// (a webhook held back by the connection limit is woken by the attempt that ends first).
    fn wake_webhook(
        self: &Rc<Self>,
        webhook: &Webhook,
        head: Offset,
        now: u64,
        skips: usize,
        policy: &RetryPolicy,
    ) -> Result<Woken> {
        let mut state = self.webhook_state_or_new(&webhook.id, head)?;
        let waiting = |s: &WebhookState| Woken { at: s.wake_at(head, now).filter(|at| *at > now), scan_on: false };
        if self.webhooks_in_flight.borrow().contains(&webhook.id) {
            return Ok(waiting(&state));
        }
        for _ in 0..=skips {
            if self.webhooks_in_flight.borrow().len() >= MAX_PARALLEL_DELIVERIES {
                return Ok(waiting(&state));
            }
            match state.plan(&self.log, webhook, now).map_err(internal)? {
                Plan::Idle | Plan::WaitUntil(_) => return Ok(waiting(&state)),
                Plan::Skip { through } => {
                    state.skipped(through);
                    self.storage().save_webhook_state(&webhook.id, &state)?;
                }
                Plan::Post(batch) => {
                    state.begin(batch.range, now, policy);
                    self.storage().save_webhook_state(&webhook.id, &state)?;
                    self.webhooks_in_flight.borrow_mut().insert(webhook.id.clone());
                    let core = self.clone();
                    let (webhook, policy) = (webhook.clone(), *policy);
                    wasm_bindgen_futures::spawn_local(async move {
                        if let Err(e) = core.deliver(&webhook, batch, policy).await {
                            worker::console_error!("webhook {}: {e}", webhook.id);
                        }
                        core.webhooks_in_flight.borrow_mut().remove(&webhook.id);
                        if let Err(e) = core.wake_webhooks(SKIPS_PER_WAKE).await {
                            worker::console_error!("webhooks: {e}");
                        }
                    });
                    return Ok(waiting(&state));
                }
            }
        }
        // Still skipping: the scan continues in a later turn.
        Ok(Woken { at: Some(now + ERROR_RETRY_MS), scan_on: true })
    }

    /// One attempt: the signed request, its answer within the timeout, and the state moved.
    async fn deliver(&self, webhook: &Webhook, batch: Batch, policy: RetryPolicy) -> Result<()> {
        let chain = &webhook.chain;
        let id = batch.id.clone();
        let started = crate::edge::now_ms();
        let outcome = post(webhook, &id, &batch.body, started / 1000, policy.timeout_ms).await;
        let now = crate::edge::now_ms();
        let Some(mut state) = self.storage().webhook_state(&webhook.id)? else { return Ok(()) };
        let (from, through) = (batch.range.from.to_string(), batch.range.through.to_string());
        match outcome {
            Ok(status) => {
                if state.accepted(batch.range, status, now) {
                    self.storage().save_webhook_state(&webhook.id, &state)?;
                    crate::edge::audit(
                        "webhook.delivered",
                        serde_json::json!({
                            "chain": chain, "webhookId": webhook.id, "clientId": webhook.client_id, "messageId": id,
                            "fromOffset": from, "throughOffset": through, "events": batch.events, "status": status,
                            "durationMs": now - started, "gap": batch.gap.map(|g| g.requested.to_string()),
                        }),
                    );
                }
            }
            Err(failure) => {
                let jitter = js_sys::Math::random();
                let Some(after) = state.failed(batch.range, &failure, now, jitter, &policy) else { return Ok(()) };
                self.storage().save_webhook_state(&webhook.id, &state)?;
                let retry_at = match after {
                    AfterFailure::RetryAt(at) => Some(at),
                    AfterFailure::Paused => None,
                };
                crate::edge::audit(
                    "webhook.failed",
                    serde_json::json!({
                        "chain": chain, "webhookId": webhook.id, "clientId": webhook.client_id, "messageId": id,
                        "fromOffset": from, "throughOffset": through, "status": failure.status(),
                        "error": failure.describe(), "attempt": state.attempts, "durationMs": now - started,
                        "nextAttemptAt": retry_at,
                    }),
                );
                if after == AfterFailure::Paused {
                    crate::edge::audit(
                        "webhook.paused",
                        serde_json::json!({
                            "chain": chain, "webhookId": webhook.id, "clientId": webhook.client_id,
                            "cursor": state.cursor.to_string(), "failingSince": state.failing_since,
                            "attempts": state.attempts,
                        }),
                    );
                }
            }
        }
        Ok(())
    }

    /// `GET` [`rpc::chain::WEBHOOKS`]: every configured webhook of the chain as it stands.
    pub(super) fn webhooks(&self) -> Result<Response> {
        let head = self.log.head().map_err(internal)?;
        let now = crate::edge::now_ms();
        let mut list = Vec::new();
        if let Some(hooks) = self.configured_webhooks() {
            for webhook in hooks.iter() {
                let state = self.webhook_state_or_new(&webhook.id, head)?;
                list.push(state.status(webhook, head, now));
            }
        }
        Response::from_json(&rpc::Webhooks { head_offset: head, webhooks: list })
    }

    /// `POST` [`rpc::chain::RESUME_WEBHOOK`].
    pub(super) async fn resume_webhook(self: &Rc<Self>, mut req: Request) -> Result<Response> {
        let ask: rpc::ResumeWebhook =
            serde_json::from_slice(&req.bytes().await?).map_err(|e| worker::Error::RustError(e.to_string()))?;
        let hooks = self.configured_webhooks();
        let Some(webhook) = hooks.as_ref().and_then(|hooks| hooks.iter().find(|w| w.id == ask.id)).cloned() else {
            return refuse(
                404,
                &rpc::Refusal { code: "not_found".into(), message: format!("chain has no webhook {:?}", ask.id) },
            );
        };
        let bounds = self.log.bounds().map_err(internal)?;
        let mut state = self.webhook_state_or_new(&webhook.id, bounds.head_offset)?;
        let was_paused = state.paused();
        if let Err(ResumeError::OutOfRange { requested, head }) = state.resume(ask.from, &bounds) {
            return refuse(409, &rpc::Refusal::offset_out_of_range("from", requested, head));
        }
        self.storage().save_webhook_state(&webhook.id, &state)?;
        self.wake_webhooks(SKIPS_PER_WAKE).await?;
        let now = crate::edge::now_ms();
        let state = self.storage().webhook_state(&webhook.id)?.unwrap_or(state);
        Response::from_json(&rpc::WebhookResumed {
            was_paused,
            webhook: state.status(&webhook, bounds.head_offset, now),
        })
    }
}

/// Sends one signed request and reads a little of the answer, all within `timeout_ms`.
/// `Ok` is the 2xx status; a redirect is answered, never followed.
async fn post(
    webhook: &Webhook,
    id: &str,
    body: &str,
    timestamp: u64,
    timeout_ms: u64,
) -> std::result::Result<u16, Failure> {
    use futures::future::{select, Either};
    let controller = AbortController::default();
    let signal = controller.signal();
    let attempt = async {
        let headers = Headers::new();
        // The runtime's message may quote the URL, whose query can hold the receiver's token.
        let net =
            |e: worker::Error| Failure::Network(e.to_string().replace(webhook.url.as_str(), &webhook.url.shown()));
        headers.set("content-type", "application/json").map_err(net)?;
        headers.set("user-agent", concat!("pms-events-webhooks/", env!("CARGO_PKG_VERSION"))).map_err(net)?;
        for (name, value) in signature::headers(&webhook.secret, id, timestamp, body) {
            headers.set(name, &value).map_err(net)?;
        }
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_headers(headers)
            .with_redirect(RequestRedirect::Manual)
            .with_body(Some(body.into()));
        let request = Request::new_with_init(webhook.url.as_str(), &init).map_err(net)?;
        let mut resp = Fetch::Request(request).send_with_signal(&signal).await.map_err(net)?;
        let status = resp.status_code();
        match Failure::from_status(status, "") {
            None => {
                // The answer's body is not needed: cancelled, so its connection is free at once.
                if let worker::ResponseBody::Stream(body) = resp.body() {
                    let _ = body.cancel();
                }
                Ok(status)
            }
            Some(_) => Err(Failure::from_status(status, &excerpt(&mut resp).await)
                .unwrap_or(Failure::Status { status, body: String::new() })),
        }
    };
    let timeout = worker::Delay::from(std::time::Duration::from_millis(timeout_ms));
    futures::pin_mut!(attempt);
    match select(attempt, timeout).await {
        Either::Left((outcome, _)) => outcome,
        Either::Right(((), _)) => {
            controller.abort();
            Err(Failure::Timeout { after_ms: timeout_ms })
        }
    }
}

/// The first bytes of an answer's body, as text (the rest is never read).
async fn excerpt(resp: &mut Response) -> String {
    use futures::StreamExt;
    let Ok(mut stream) = resp.stream() else { return String::new() };
    let mut bytes = Vec::new();
    while bytes.len() < ANSWER_EXCERPT_BYTES {
        match stream.next().await {
            Some(Ok(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    bytes.truncate(ANSWER_EXCERPT_BYTES);
    String::from_utf8_lossy(&bytes).into_owned()
}
