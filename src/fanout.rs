//! Delivery from a chain's log to one subscription: where it starts, which events it gets,
//! and how much may be in flight. Replay and live delivery are one mechanism: a cursor
//! into the log that advances only by reading the log, so the hand-over from replay to
//! live can neither skip nor repeat an event.
//!
//! The chain object sends a subscription its events in batches over an internal socket:
//!
//! ```text
//! B <through>\n<offset> <next frame>\n<offset> <next frame>...
//! ```
//!
//! `through` is the last offset the batch covers (events filtered out included). The
//! gateway forwards the frames and answers `A <count> <through>`; at most `window` frames
//! are unacknowledged, so neither side ever buffers without bound: a subscriber that falls
//! behind is simply served from storage at its cursor when it catches up.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::chain_log::{ChainLog, LogBounds, LogStore, Offset, Page, StoreError, StoredEvent};

/// How long the server remembers the last offset delivered to an app key on a chain.
pub const SAVED_CURSOR_TTL_MS: u64 = 24 * 3600 * 1000;
/// Events read from storage per page while filling a window, and the bytes of bodies a
/// page may hold (at least one event is always read, whatever its size).
pub const PAGE: usize = 200;
pub const PAGE_BYTES: usize = 1 << 20;
/// A Workers WebSocket message may not exceed 1 MiB; batches stay well under it (an event
/// is at most 64 KiB by the publish limits, its frame a little more).
pub const MAX_BATCH_BYTES: usize = 512 * 1024;

/// The least time between two fan-outs of a chain (ms), by attached subscriptions. A
/// fan-out costs one message per subscription whatever it carries, so a chain with many
/// subscribers waits a little to send several publishes' events in one message each: 100
/// subscriptions, 20 ms. A chain with few stays close to immediate (10: 2 ms).
pub fn fan_out_pace_ms(subscriptions: usize) -> u64 {
    (subscriptions as u64 / 5).min(MAX_FAN_OUT_PACE_MS)
}

/// The most [`fan_out_pace_ms`] adds to an event's way to its subscribers.
pub const MAX_FAN_OUT_PACE_MS: u64 = 25;

/// Which events of the chain a subscription receives.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventFilter {
    /// `None`: every property of the chain (the grant allows them all, and no `hotelCode`).
    pub properties: Option<BTreeSet<String>>,
    pub event_names: Option<BTreeSet<String>>,
    pub module_names: Option<BTreeSet<String>>,
}

impl EventFilter {
    pub fn matches(&self, e: &StoredEvent) -> bool {
        let ok = |set: &Option<BTreeSet<String>>, v: &str| set.as_ref().is_none_or(|s| s.contains(v));
        ok(&self.properties, &e.hotel_id)
            && ok(&self.event_names, &e.event_name)
            && ok(&self.module_names, &e.module_name)
    }
}

/// Turns an event (EventHeader JSON) into the subscription's selected fields.
pub trait Projector {
    fn project_to_string(&self, event: &Value, delta: bool, out: &mut String);
}

/// Everything the chain object needs to serve one subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionSpec<P> {
    /// The vendor's operation id.
    pub id: String,
    pub app_key: String,
    pub client_id: String,
    pub connection_id: String,
    pub response_key: String,
    pub delta: bool,
    pub filter: EventFilter,
    pub start: Start,
    pub plan: P,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind", content = "offset")]
pub enum Start {
    /// Replay from this offset, inclusive.
    At(Offset),
    /// Start at the newest event.
    Highest,
    /// After the last offset delivered to this app key on this chain in the last 24 h;
    /// live when none is recorded.
    Resume,
}

/// Retention dropped part of what was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Gap {
    pub requested: Offset,
    pub resumed_at: Offset,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartError {
    OutOfRange { requested: Offset, head: Offset },
}

/// The first offset to deliver, and the gap to report if retention dropped some.
pub fn resolve_start(
    start: Start,
    bounds: &LogBounds,
    saved: Option<(Offset, u64)>,
    now_ms: u64,
) -> Result<(Offset, Option<Gap>), StartError> {
    let head = bounds.head_offset;
    let requested = match start {
        Start::At(n) => n,
        Start::Highest => return Ok((head.max(1), None)),
        Start::Resume => match saved {
            Some((offset, at)) if now_ms.saturating_sub(at) < SAVED_CURSOR_TTL_MS => offset + 1,
            _ => return Ok((head + 1, None)),
        },
    };
    if requested > head + 1 {
        return Err(StartError::OutOfRange { requested, head });
    }
    let first = requested.max(1);
    let oldest = bounds.oldest_offset.unwrap_or(head + 1);
    if first < oldest {
        Ok((oldest, Some(Gap { requested, resumed_at: oldest })))
    } else {
        Ok((first, None))
    }
}

/// Where a subscription stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cursor {
    /// The next offset to consider.
    pub next: Offset,
    /// Frames sent and not yet acknowledged.
    pub inflight: u32,
    /// Reported on the first frame, then cleared.
    pub gap: Option<Gap>,
}

/// Pages read and events parsed in one turn of the object, shared by every subscription
/// it serves in that turn: after a publish, all caught-up subscribers read the same page,
/// so the log is read and each event parsed once, not once per subscriber.
#[derive(Default)]
pub struct EventCache {
    parsed: HashMap<Offset, Value>,
    pages: HashMap<Offset, Rc<Page>>,
    /// Projections by (offset, projection key): subscribers with the same selection share one.
    projected: HashMap<(Offset, Rc<str>), Rc<str>>,
}

impl EventCache {
    fn page<S: LogStore>(&mut self, log: &ChainLog<S>, from: Offset) -> Result<Rc<Page>, StoreError> {
        if let Some(page) = self.pages.get(&from) {
            return Ok(page.clone());
        }
        let page = Rc::new(log.read_page(from, PAGE, PAGE_BYTES)?);
        self.pages.insert(from, page.clone());
        Ok(page)
    }

    fn projection<P: Projector>(&mut self, e: &StoredEvent, spec: &SubscriptionSpec<P>, key: &Rc<str>) -> Rc<str> {
        if let Some(p) = self.projected.get(&(e.offset, key.clone())) {
            return p.clone();
        }
        let mut out = String::new();
        spec.plan.project_to_string(self.get(e), spec.delta, &mut out);
        let p: Rc<str> = Rc::from(out);
        self.projected.insert((e.offset, key.clone()), p.clone());
        p
    }

    fn get(&mut self, e: &StoredEvent) -> &Value {
        self.parsed.entry(e.offset).or_insert_with(|| {
            let mut v: Value = serde_json::from_str(&e.body).unwrap_or(Value::Null);
            if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.insert("offset".into(), Value::String(e.offset.to_string()));
            }
            v
        })
    }
}

/// Fills the subscription's window from the log, starting at its cursor. Returns the batch
/// messages to send (none when there is nothing to send), each under [`MAX_BATCH_BYTES`].
/// Reads and the returned batches belong to one synchronous turn: the caller sends them
/// before any `await`.
pub fn pump<S: LogStore, P: Projector>(
    log: &ChainLog<S>,
    spec: &SubscriptionSpec<P>,
    projection_key: &Rc<str>,
    cursor: &mut Cursor,
    head: Offset,
    window: u32,
    cache: &mut EventCache,
) -> Result<Vec<String>, StoreError> {
    let mut batches = Vec::new();
    let mut body = String::new();
    let mut last_in_body = 0;
    // The part of every `next` frame that is the same for this subscription, built once.
    let prefix = next_prefix(spec);
    let mut frame = String::new();
    while cursor.inflight < window && cursor.next <= head {
        let page = cache.page(log, cursor.next)?;
        for e in &page.events {
            if cursor.inflight >= window {
                break;
            }
            cursor.next = e.offset + 1;
            if !spec.filter.matches(e) {
                continue;
            }
            frame.clear();
            let projection = cache.projection(e, spec, projection_key);
            render_next(&prefix, &projection, cursor.gap.take(), &mut frame);
            if !body.is_empty() && body.len() + frame.len() > MAX_BATCH_BYTES {
                batches.push(format!("B {last_in_body}{body}"));
                body.clear();
            }
            // Writing to a String cannot fail.
            let _ = write!(body, "\n{} ", e.offset);
            body.push_str(&frame);
            last_in_body = e.offset;
            cursor.inflight += 1;
        }
        if page.at_end && cursor.inflight < window {
            // The log holds nothing more up to the head read in this same turn.
            cursor.next = head + 1;
        }
    }
    if !body.is_empty() {
        // The last batch also covers the filtered-out events after its last frame.
        batches.push(format!("B {}{body}", cursor.next - 1));
    }
    Ok(batches)
}

/// The start of every `next` message of graphql-transport-ws for this subscription, up to
/// where an event's projection goes.
fn next_prefix<P>(spec: &SubscriptionSpec<P>) -> String {
    format!(
        "{{\"id\":{},\"type\":\"next\",\"payload\":{{\"data\":{{{}:",
        serde_json::to_string(&spec.id).unwrap_or_default(),
        serde_json::to_string(&spec.response_key).unwrap_or_default()
    )
}

/// One `next` message: the subscription's [`next_prefix`], an event's projection (its
/// selected fields as JSON) and the gap, if this is the first event after one.
fn render_next(prefix: &str, projection: &str, gap: Option<Gap>, out: &mut String) {
    out.push_str(prefix);
    out.push_str(projection);
    out.push('}');
    if let Some(g) = gap {
        out.push_str(&format!(
            ",\"extensions\":{{\"gap\":{{\"requested\":\"{}\",\"resumedAt\":\"{}\"}}}}",
            g.requested, g.resumed_at
        ));
    }
    out.push_str("}}");
}

/// What makes two subscriptions' projections of an event identical: the plan and `delta`.
pub fn projection_key<P: Serialize>(spec: &SubscriptionSpec<P>) -> Rc<str> {
    Rc::from(format!("{}|{}", spec.delta, serde_json::to_string(&spec.plan).unwrap_or_default()))
}

/// A batch as the gateway reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch<'a> {
    pub through: Offset,
    pub frames: Vec<(Offset, &'a str)>,
}

pub fn parse_batch(text: &str) -> Option<Batch<'_>> {
    let mut lines = text.split('\n');
    let through = lines.next()?.strip_prefix("B ")?.parse().ok()?;
    let mut frames = Vec::new();
    for line in lines {
        let (offset, frame) = line.split_once(' ')?;
        frames.push((offset.parse().ok()?, frame));
    }
    Some(Batch { through, frames })
}

pub fn ack_message(count: usize, through: Offset) -> String {
    format!("A {count} {through}")
}

pub fn parse_ack(text: &str) -> Option<(u32, Offset)> {
    let mut parts = text.strip_prefix("A ")?.split(' ');
    let count = parts.next()?.parse().ok()?;
    let through = parts.next()?.parse().ok()?;
    Some((count, through))
}
