//! Where one webhook stands and what it does next. Delivery is a cursor into the chain's log,
//! like a subscription's: a batch is the events from the cursor on that pass the webhook's
//! filter, and only an accepted batch moves the cursor past it. A batch is fixed when it is
//! first attempted (its offset range is kept in the state), so every retry posts the same
//! events under the same `webhook-id`, also after the object restarted, and nothing later is
//! ever posted before it is accepted.
//!
//! The state is small and serialized whole by the chain object; every transition is a
//! method here, tested natively.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::{MAX_BODY_BYTES, MAX_ERROR_CHARS};
use crate::config::{Limits, Webhook};
use crate::log::read::{PAGE, PAGE_BYTES};
use crate::log::{write_event_header, Gap, LogBounds, LogStore, Offset, OffsetLog, StoreError, TurnBudget};

/// The offsets a batch covers, both inclusive (filtered-out events included).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchRange {
    pub from: Offset,
    pub through: Offset,
}

/// Should retention delete events of a batch still being retried (a webhook failing for
/// longer than the retention), the retry posts what is left, with the gap, under the same id.
///
/// The storage one planning read may use: a batch is at most 1 MiB, and a filter that
/// matches little is scanned on in a later turn rather than all at once.
pub const PLAN_BUDGET: TurnBudget = TurnBudget { pages: 8, bytes: 2 << 20 };

/// What the chain object persists for one webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookState {
    /// The last offset accepted by the receiver (or passed over by the filter).
    pub cursor: Offset,
    /// The batch being delivered: attempted at least once and not yet accepted.
    pub batch: Option<BatchRange>,
    /// Failed attempts of `batch`.
    pub attempts: u32,
    /// When the current run of failures began (ms); `None` while deliveries succeed.
    pub failing_since: Option<u64>,
    /// No attempt before this time (ms): a retry's backoff, or the lease of an attempt in
    /// flight (should the object die during it, the attempt is made again then).
    pub next_attempt_at: u64,
    pub paused_at: Option<u64>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub last_attempt_at: Option<u64>,
    pub last_delivered_at: Option<u64>,
    /// Operator resumes so far: part of the message ids (see `signature::message_id`).
    #[serde(default)]
    pub resumes: u32,
}

/// How attempts are timed (from the configuration's limits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub timeout_ms: u64,
    pub first_retry_ms: u64,
    pub max_retry_ms: u64,
    /// Failing this long without a success pauses the webhook.
    pub pause_after_ms: u64,
}

/// How much longer than its timeout an attempt's lease lasts.
pub const LEASE_GRACE_MS: u64 = 5_000;

impl RetryPolicy {
    pub fn from_limits(limits: &Limits) -> RetryPolicy {
        RetryPolicy {
            timeout_ms: limits.webhook_timeout_seconds * 1000,
            first_retry_ms: limits.webhook_first_retry_seconds * 1000,
            max_retry_ms: limits.webhook_max_retry_seconds * 1000,
            pause_after_ms: limits.webhook_pause_after_seconds * 1000,
        }
    }

    /// The wait before the retry that follows `attempts` failures: doubling from the first
    /// retry's, jittered by ±20% (`jitter` in [0, 1)) so that receivers coming back after an
    /// outage are not hit by every chain at once, and never over the cap.
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a delay of at most max_retry_ms (hours), scaled by 0.8-1.2 and clamped: exact in f64, never negative"
    )]
    pub fn delay_ms(&self, attempts: u32, jitter: f64) -> u64 {
        let doublings = attempts.saturating_sub(1).min(40);
        let base = self.first_retry_ms.saturating_mul(1u64 << doublings).min(self.max_retry_ms);
        let factor = 0.8 + 0.4 * jitter.clamp(0.0, 1.0);
        ((base as f64 * factor) as u64).clamp(1, self.max_retry_ms)
    }

    pub fn lease_ms(&self) -> u64 {
        self.timeout_ms + LEASE_GRACE_MS
    }
}

/// What the webhook does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Nothing to post: caught up, or paused.
    Idle,
    /// A retry, or an attempt in flight, holds it until then (ms).
    WaitUntil(u64),
    /// The filter matched nothing up to `through`: the cursor moves there, and it plans again.
    Skip {
        through: Offset,
    },
    Post(WebhookBatch),
}

/// One request's worth of events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookBatch {
    /// The `webhook-id` of every attempt of this batch.
    pub id: String,
    pub range: BatchRange,
    /// `{"chainCode","events":[EventHeader…][,"gap":{…}]}`
    pub body: String,
    pub events: usize,
    pub gap: Option<Gap>,
}

/// Why an attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The receiver answered, but not with a 2xx (a redirect is never followed).
    Status {
        status: u16,
        body: String,
    },
    Timeout {
        after_ms: u64,
    },
    /// No answer: the connection failed.
    Network(String),
}

impl Failure {
    /// An answer classified: `None` for a 2xx.
    pub fn from_status(status: u16, body: &str) -> Option<Failure> {
        (!(200..300).contains(&status)).then(|| Failure::Status { status, body: body.to_string() })
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            Failure::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// For operators and audit lines: bounded, one line.
    pub fn describe(&self) -> String {
        let text = match self {
            Failure::Status { status, .. } if (300..400).contains(status) => {
                format!("answered {status}: redirects are not followed; configure the final URL")
            }
            Failure::Status { status, body } if body.trim().is_empty() => format!("answered {status}"),
            Failure::Status { status, body } => format!("answered {status}: {}", body.trim()),
            Failure::Timeout { after_ms } => format!("no answer within {} s", after_ms / 1000),
            Failure::Network(why) => format!("connection failed: {why}"),
        };
        let one_line: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        if one_line.chars().count() > MAX_ERROR_CHARS {
            one_line.chars().take(MAX_ERROR_CHARS - 1).chain(std::iter::once('…')).collect()
        } else {
            one_line
        }
    }
}

/// What a failure led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    RetryAt(u64),
    /// Failing for longer than the policy allows: no more attempts until an operator resumes.
    Paused,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResumeError {
    /// `from` is past the next offset the chain will assign.
    OutOfRange { requested: Offset, head: Offset },
}

impl WebhookState {
    /// A webhook seen for the first time receives what is published from now on.
    pub fn new(head: Offset) -> WebhookState {
        WebhookState {
            cursor: head,
            batch: None,
            attempts: 0,
            failing_since: None,
            next_attempt_at: 0,
            paused_at: None,
            last_status: None,
            last_error: None,
            last_attempt_at: None,
            last_delivered_at: None,
            resumes: 0,
        }
    }

    pub fn paused(&self) -> bool {
        self.paused_at.is_some()
    }

    /// Offsets published and not yet accepted.
    pub fn lag(&self, head: Offset) -> u64 {
        head.saturating_sub(self.cursor)
    }

    /// What to do now. Reads the log within [`PLAN_BUDGET`] (a retry reads its batch again).
    pub fn plan<S: LogStore>(&self, log: &OffsetLog<S>, webhook: &Webhook, now: u64) -> Result<Plan, StoreError> {
        if self.paused() {
            return Ok(Plan::Idle);
        }
        if now < self.next_attempt_at {
            return Ok(Plan::WaitUntil(self.next_attempt_at));
        }
        let head = log.head()?;
        let (from, until, max_events) = match self.batch {
            // The same events again: the range decides, whatever the limits say now.
            Some(range) => (range.from, range.through, usize::MAX),
            None if self.cursor >= head => return Ok(Plan::Idle),
            None => (self.cursor + 1, head, webhook.max_batch),
        };
        let scan = scan(log, webhook, from, until, max_events)?;
        let gap = match scan.first_stored {
            Some(first) if first > from => Some(Gap { requested: from, resumed_at: first }),
            None => Some(Gap { requested: from, resumed_at: scan.through + 1 }),
            Some(_) => None,
        };
        if scan.count == 0 && gap.is_none() && self.batch.is_none() {
            return Ok(Plan::Skip { through: scan.through });
        }
        let range = BatchRange { from, through: scan.through };
        let id = super::signature::message_id(&webhook.chain, &webhook.id, self.resumes, range);
        Ok(Plan::Post(WebhookBatch {
            id,
            range,
            body: body(&webhook.chain, &scan.events, gap),
            events: scan.count,
            gap,
        }))
    }

    /// An attempt of `range` starts: it is the batch until accepted, and the lease keeps any
    /// other attempt off until the answer (or the timeout) is in.
    pub fn begin(&mut self, range: BatchRange, now: u64, policy: &RetryPolicy) {
        self.batch = Some(range);
        self.last_attempt_at = Some(now);
        self.next_attempt_at = now + policy.lease_ms();
    }

    /// The receiver accepted `range`. Returns `false` (and changes nothing) when the state
    /// moved on meanwhile: an operator resumed the webhook elsewhere while it was in flight.
    pub fn accepted(&mut self, range: BatchRange, status: u16, now: u64) -> bool {
        if self.batch != Some(range) {
            return false;
        }
        self.cursor = range.through;
        self.batch = None;
        self.attempts = 0;
        self.failing_since = None;
        self.next_attempt_at = 0;
        self.last_status = Some(status);
        self.last_error = None;
        self.last_delivered_at = Some(now);
        true
    }

    /// An attempt of `range` failed. `None` when the state moved on meanwhile (see
    /// [`Self::accepted`]).
    pub fn failed(
        &mut self,
        range: BatchRange,
        failure: &Failure,
        now: u64,
        jitter: f64,
        policy: &RetryPolicy,
    ) -> Option<AfterFailure> {
        if self.batch != Some(range) {
            return None;
        }
        self.attempts = self.attempts.saturating_add(1);
        let since = *self.failing_since.get_or_insert(now);
        self.last_status = failure.status();
        self.last_error = Some(failure.describe());
        if now.saturating_sub(since) >= policy.pause_after_ms {
            self.paused_at = Some(now);
            self.next_attempt_at = 0;
            return Some(AfterFailure::Paused);
        }
        self.next_attempt_at = now + policy.delay_ms(self.attempts, jitter);
        Some(AfterFailure::RetryAt(self.next_attempt_at))
    }

    /// The filter passed over everything up to `through`.
    pub fn skipped(&mut self, through: Offset) {
        if self.batch.is_none() {
            self.cursor = self.cursor.max(through);
        }
    }

    /// An operator resumes the webhook (paused or not): failures are forgotten, the next
    /// attempt is now, and with `from` the next batch starts at that offset (back to
    /// deliver again, or forward to skip). A `from` behind retention gets the gap signalled.
    pub fn resume(&mut self, from: Option<Offset>, bounds: &LogBounds) -> Result<(), ResumeError> {
        let head = bounds.head_offset;
        if let Some(from) = from {
            if from > head + 1 {
                return Err(ResumeError::OutOfRange { requested: from, head });
            }
            self.cursor = from.saturating_sub(1);
        }
        self.batch = None;
        self.attempts = 0;
        self.failing_since = None;
        self.next_attempt_at = 0;
        self.paused_at = None;
        self.resumes = self.resumes.saturating_add(1);
        Ok(())
    }

    /// When the object should next wake up for this webhook (ms), if ever: a retry or lease
    /// due, or now when events wait and nothing holds them.
    pub fn wake_at(&self, head: Offset, now: u64) -> Option<u64> {
        if self.paused() {
            None
        } else if self.batch.is_some() || self.next_attempt_at > now {
            Some(self.next_attempt_at.max(now))
        } else if self.cursor < head {
            Some(now)
        } else {
            None
        }
    }

    /// What operators see.
    pub fn status(&self, webhook: &Webhook, head: Offset, now: u64) -> Status {
        Status {
            id: webhook.id.clone(),
            client_id: webhook.client_id.clone(),
            url: webhook.url.shown(),
            cursor: self.cursor.to_string(),
            lag_events: self.lag(head),
            pending_batch: self.batch.map(|r| [r.from.to_string(), r.through.to_string()]),
            paused: self.paused(),
            paused_at: self.paused_at,
            attempts: self.attempts,
            failing_since: self.failing_since,
            last_status: self.last_status,
            last_error: self.last_error.clone(),
            last_attempt_at: self.last_attempt_at,
            last_delivered_at: self.last_delivered_at,
            next_attempt_at: self.wake_at(head, now),
        }
    }
}

/// One webhook as operators see it (`GET /admin/v1/chains/{chainCode}/webhooks`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub id: String,
    pub client_id: String,
    /// Without its query string.
    pub url: String,
    /// The last offset accepted (a string, like every offset).
    pub cursor: String,
    pub lag_events: u64,
    /// `[from, through]` of the batch being retried.
    pub pending_batch: Option<[String; 2]>,
    pub paused: bool,
    pub paused_at: Option<u64>,
    pub attempts: u32,
    pub failing_since: Option<u64>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub last_attempt_at: Option<u64>,
    pub last_delivered_at: Option<u64>,
    pub next_attempt_at: Option<u64>,
}

struct Scan {
    /// The events' JSON, comma-separated.
    events: String,
    count: usize,
    /// The last offset the scan covered.
    through: Offset,
    /// The first offset still stored at or after `from`.
    first_stored: Option<Offset>,
}

/// The webhook's events in `from..=until`, at most `max_events`, in a body under
/// [`MAX_BODY_BYTES`] (at least one event), within [`PLAN_BUDGET`] unless it is a retry.
fn scan<S: LogStore>(
    log: &OffsetLog<S>,
    webhook: &Webhook,
    from: Offset,
    until: Offset,
    max_events: usize,
) -> Result<Scan, StoreError> {
    // Room for the envelope and a gap around the events.
    let limit = MAX_BODY_BYTES - 256 - webhook.chain.len();
    let retry = max_events == usize::MAX;
    let mut budget = PLAN_BUDGET;
    let mut out = Scan { events: String::new(), count: 0, through: from - 1, first_stored: None };
    let mut next = from;
    let mut rendered = String::new();
    'scan: while next <= until && (retry || !budget.exhausted()) {
        let page = log.read_page(next, PAGE, PAGE_BYTES)?;
        budget.spend(&page);
        for e in &page.events {
            if e.offset > until {
                out.through = until;
                break 'scan;
            }
            out.first_stored.get_or_insert(e.offset);
            if webhook.filter.matches(e) {
                if out.count == max_events {
                    break 'scan;
                }
                rendered.clear();
                write_event_header(&e.body, e.offset, &mut rendered);
                if out.count > 0 && out.events.len() + 1 + rendered.len() > limit {
                    break 'scan;
                }
                if out.count > 0 {
                    out.events.push(',');
                }
                out.events.push_str(&rendered);
                out.count += 1;
            }
            out.through = e.offset;
        }
        if page.at_end || page.events.is_empty() {
            // Nothing stored past this page: the scan covered everything up to `until`.
            out.through = until;
            break;
        }
        next = page.next;
    }
    Ok(out)
}

fn body(chain: &str, events: &str, gap: Option<Gap>) -> String {
    // Chain codes are plain codes (letters, digits, - _ .): no escaping needed.
    let mut out = format!("{{\"chainCode\":\"{chain}\",\"events\":[{events}]");
    if let Some(g) = gap {
        // Writing to a String cannot fail.
        let _ = write!(out, ",\"gap\":{{\"requested\":\"{}\",\"resumedAt\":\"{}\"}}", g.requested, g.resumed_at);
    }
    out.push('}');
    out
}
