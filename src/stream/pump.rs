//! Delivery from a chain's log to one subscription: what the chain object sends it from its
//! cursor, within its window and the turn's read budget. Replay and live delivery are one
//! mechanism: a cursor into the log that advances only by reading the log, so the hand-over
//! from replay to live can neither skip nor repeat an event.
//!
//! The object sends a subscription its events in batches over an internal socket
//! (`stream::wire`); at most a window of them is unacknowledged, so neither side ever
//! buffers without bound: a subscriber that falls behind is simply served from storage at
//! its cursor when it catches up.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::graphql::codes::FRAME_TOO_LARGE;
use crate::log::read::{PAGE, PAGE_BYTES};
use crate::log::{LogStore, Offset, OffsetLog, Page, StoreError, StoredEvent, TurnBudget, ValidEvent};
use crate::stream::protocol::frame_overhead;
use crate::stream::spec::{Projector, SharingKeys, SubscriptionSpec, WindowCount};
use crate::stream::wire::{failure_message, frame_cost, BatchWriter, MAX_BATCH_BYTES};

/// The largest `next` frame sent to a vendor: a frame alone in its batch, with the batch's
/// header and offset, stays under the runtime's 1 MiB message limit
/// (<https://developers.cloudflare.com/durable-objects/platform/limits/>).
pub const MAX_NEXT_FRAME_BYTES: usize = 1_000_000;
const _: () = assert!(MAX_NEXT_FRAME_BYTES + 64 < 1 << 20 && MAX_BATCH_BYTES < MAX_NEXT_FRAME_BYTES);

/// A scan that advanced this far without a frame reports its progress anyway (a frame-less
/// batch), so the gateway's next offset and the saved cursor follow a filtered stream.
pub const PROGRESS_EVERY: u64 = PAGE as u64;

/// Where a subscription stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cursor {
    /// The next offset to consider.
    pub next: Offset,
    /// Window units (`stream::wire::frame_cost`) sent and not yet acknowledged.
    pub inflight: u32,
}

impl Cursor {
    /// The last offset delivered: the one before the next to consider (a cursor that starts
    /// ahead of the head is at the head).
    pub fn delivered_through(&self, head: Offset) -> Offset {
        self.next.saturating_sub(1).min(head)
    }

    /// The gateway acknowledged `count` window units, which frees the window by as many. Returns
    /// whether a [`pump`] could now change anything: events past the cursor up to `head`,
    /// or room in the window (when it returns `false`, the cursor is as it was).
    pub fn acknowledge(&mut self, count: u32, head: Offset) -> bool {
        self.inflight = self.inflight.saturating_sub(count);
        self.next <= head || count > 0
    }
}

/// The events the chain object stored since its last fan-out, kept in memory so that the
/// fan-out serves its caught-up subscriptions without reading back rows it has just
/// written (a storage read per fan-out was the largest part of a quiet chain's fan-out).
/// Held only while they run up to the head without a hole, and within [`PAGE`] events and
/// [`PAGE_BYTES`] of bodies, as one page read from storage would be; past that nothing is
/// held and the fan-out reads storage as before. Retention and restarts empty it.
#[derive(Debug, Default)]
pub struct RecentEvents {
    events: Vec<StoredEvent>,
    bytes: usize,
    /// Too many since the last fan-out: hold nothing until then.
    overflowed: bool,
}

impl RecentEvents {
    /// A batch was stored: `offsets` are what the append returned for `batch`, and the
    /// head was `head_before` before it. The new rows are the offsets past that head, in
    /// order (an event already in the log, or repeated in the batch, got an older offset).
    pub fn record(&mut self, head_before: Offset, batch: &[ValidEvent], offsets: &[Offset], stored_at: u64) {
        if self.events.last().is_some_and(|e| e.offset != head_before) {
            // Something was stored that is not held (cannot happen: every append records).
            self.clear();
        }
        let mut next = head_before + 1;
        for (event, &offset) in batch.iter().zip(offsets) {
            if offset != next {
                continue;
            }
            next += 1;
            self.bytes += event.body.len();
            if self.overflowed || self.events.len() >= PAGE || self.bytes > PAGE_BYTES {
                self.events.clear();
                self.overflowed = true;
                continue;
            }
            self.events.push(StoredEvent {
                offset,
                unique_event_id: event.unique_event_id.clone(),
                hotel_id: event.hotel_id.clone(),
                module_name: event.module_name.clone(),
                event_name: event.event_name.clone(),
                stored_at,
                body: event.body.clone(),
            });
        }
    }

    /// What a fan-out starts with: the held events as the page storage would give from the
    /// first of them, if they reach `head` (the head the fan-out serves up to). Empties it.
    pub fn take_page(&mut self, head: Offset) -> Option<Rc<Page>> {
        let events = std::mem::take(&mut self.events);
        let overflowed = std::mem::take(&mut self.overflowed);
        self.bytes = 0;
        if overflowed || events.last().is_none_or(|e| e.offset != head) {
            return None;
        }
        Some(Rc::new(Page { events, next: head + 1, at_end: true }))
    }

    /// Rows were deleted (retention): what is held may no longer be stored.
    pub fn clear(&mut self) {
        self.events.clear();
        self.bytes = 0;
        self.overflowed = false;
    }
}

/// Pages read and events parsed in one turn of the object, shared by every subscription
/// it serves in that turn: after a publish, all caught-up subscribers read the same page,
/// so the log is read and each event parsed once, not once per subscriber.
#[derive(Default)]
pub struct EventCache {
    parsed: HashMap<Offset, Value>,
    /// By the offset they were read from. A page holds every stored event from there on,
    /// in order, up to its last (or to the head, when `at_end`), so it also serves any
    /// cursor inside that range: subscribers a few events apart share one read.
    pages: BTreeMap<Offset, Rc<Page>>,
    /// Projections by (offset, projection key): subscribers with the same selection share one.
    projected: HashMap<(Offset, Rc<str>), Rc<str>>,
    /// Pumps by (delivery key, first offset): subscriptions that would be sent the same
    /// messages get the same ones, built once (see [`SharingKeys`]).
    pumped: HashMap<(Rc<str>, Offset), SharedPump>,
    /// The message bytes of the pumps kept in `pumped`, at most [`SHARED_PUMP_BYTES`].
    pumped_bytes: usize,
}

/// The most message bytes a turn keeps for sharing. Past it a pump is used once and
/// dropped, as if nothing were shared: subscriptions that share nothing (different
/// selections replaying a long log) must not make a turn hold all their messages at once.
pub const SHARED_PUMP_BYTES: usize = 1 << 20;

/// A pump's result kept for the other subscriptions of its turn with the same delivery key
/// and cursor.
struct SharedPump {
    pumped: Rc<Pumped>,
    /// Room the window had when it was built, and where it left the cursor.
    room: u32,
    next: Offset,
}

impl SharedPump {
    /// Whether a cursor with `room` in its window would have produced the same: the pump
    /// compares the window only against the units it sends, so either the room is the
    /// same, or both rooms are larger than the units (the window stopped neither).
    fn fits(&self, room: u32) -> bool {
        room == self.room || (room > self.pumped.cost && self.room > self.pumped.cost)
    }
}

impl EventCache {
    /// Whether `pumped`, pumped for a subscription with `keys` from offset `from`, is kept
    /// for other subscriptions of the turn (so worth keeping in any other form, such as the
    /// runtime's strings, for them too).
    pub fn shares(&self, keys: &SharingKeys, from: Offset, pumped: &Rc<Pumped>) -> bool {
        self.pumped.get(&(keys.delivery.clone(), from)).is_some_and(|shared| Rc::ptr_eq(&shared.pumped, pumped))
    }

    /// A cache that starts with `page` (events of this turn's head that the caller knows
    /// are stored exactly so, see [`RecentEvents`]), which cost no budget.
    pub fn starting_with(page: Option<Rc<Page>>) -> Self {
        let mut cache = EventCache::default();
        if let Some(page) = page {
            if let Some(first) = page.events.first() {
                cache.pages.insert(first.offset, page);
            }
        }
        cache
    }

    /// The stored events from `from` on, as a page read in this turn and the index of the
    /// first event at or after `from` in it; read from storage if no page of the turn
    /// covers `from` and the budget allows.
    fn page<S: LogStore>(
        &mut self,
        log: &OffsetLog<S>,
        from: Offset,
        budget: &mut TurnBudget,
    ) -> Result<Option<(Rc<Page>, usize)>, StoreError> {
        if let Some((_, page)) = self.pages.range(..=from).next_back() {
            let covers = page.at_end || page.events.last().is_some_and(|e| e.offset >= from);
            if covers {
                let start = page.events.partition_point(|e| e.offset < from);
                return Ok(Some((page.clone(), start)));
            }
        }
        if budget.exhausted() {
            return Ok(None);
        }
        let page = Rc::new(log.read_page(from, PAGE, PAGE_BYTES.min(budget.bytes))?);
        budget.spend(&page);
        self.pages.insert(from, page.clone());
        Ok(Some((page, 0)))
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

/// What one pump produced: the messages to send on the subscription's internal socket, in
/// order, and whether the turn's budget stopped it before it caught up. Shared by the
/// subscriptions of a turn that would have produced the same (see [`SharingKeys`]).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pumped {
    pub messages: Vec<String>,
    /// `next` frames among the messages (the object's delivery count).
    pub frames: u32,
    /// What they take of the window (`rpc::delivery::frame_cost`).
    pub cost: u32,
    pub cut_short: bool,
    /// The subscription failed (an `E` message is the last one): stop serving it.
    pub failed: bool,
}

/// Fills the subscription's window from the log, starting at its cursor, within the turn's
/// `budget`. Returns the messages to send (none when there is nothing to send): batches,
/// each under [`MAX_BATCH_BYTES`] unless a single frame is larger, and at most one `E`.
/// A subscription with the same delivery key, cursor and room as one already pumped in
/// this turn (same `cache`) gets that one's messages, and its cursor moves the same way.
/// Reads and the returned messages belong to one synchronous turn: the caller sends them
/// before any `await`.
#[allow(clippy::too_many_arguments)]
pub fn pump<S: LogStore, P: Projector>(
    log: &OffsetLog<S>,
    spec: &SubscriptionSpec<P>,
    keys: &SharingKeys,
    cursor: &mut Cursor,
    head: Offset,
    window: u32,
    cache: &mut EventCache,
    budget: &mut TurnBudget,
) -> Result<Rc<Pumped>, StoreError> {
    let room = window.saturating_sub(cursor.inflight);
    let key = (keys.delivery.clone(), cursor.next);
    if let Some(shared) = cache.pumped.get(&key).filter(|shared| shared.fits(room)) {
        cursor.next = shared.next;
        cursor.inflight += shared.pumped.cost;
        return Ok(shared.pumped.clone());
    }
    let pumped = Rc::new(pump_once(log, spec, &keys.projection, cursor, head, window, cache, budget)?);
    let bytes: usize = pumped.messages.iter().map(String::len).sum();
    if cache.pumped_bytes + bytes <= SHARED_PUMP_BYTES {
        cache.pumped_bytes += bytes;
        // A pump it replaces (same key, another room) stays counted: the bound holds.
        cache.pumped.insert(key, SharedPump { pumped: pumped.clone(), room, next: cursor.next });
    }
    Ok(pumped)
}

#[allow(clippy::too_many_arguments)]
fn pump_once<S: LogStore, P: Projector>(
    log: &OffsetLog<S>,
    spec: &SubscriptionSpec<P>,
    projection_key: &Rc<str>,
    cursor: &mut Cursor,
    head: Offset,
    window: u32,
    cache: &mut EventCache,
    budget: &mut TurnBudget,
) -> Result<Pumped, StoreError> {
    let mut out = Pumped::default();
    let mut batch = BatchWriter::default();
    // The part of every payload that is the same for this subscription, built once.
    let prefix = payload_prefix(spec);
    let overhead = frame_overhead(&spec.id);
    let mut payload = String::new();
    let started_at = cursor.next;
    while cursor.inflight < window && cursor.next <= head {
        let Some((page, start)) = cache.page(log, cursor.next, budget)? else {
            out.cut_short = true;
            break;
        };
        let events = &page.events[start..];
        // Offsets are gapless, and only retention deletes: a page that starts past the
        // cursor (or an empty one below the head) means retention overtook this cursor.
        let resumed_at = events.first().map_or(head + 1, |e| e.offset);
        if resumed_at > cursor.next {
            batch.flush(cursor.next.saturating_sub(1), &mut out.messages);
            batch.gap_before(cursor.next);
            cursor.next = resumed_at;
        }
        for e in events {
            if cursor.inflight >= window {
                break;
            }
            if !spec.filter.matches(e) {
                cursor.next = e.offset + 1;
                continue;
            }
            payload.clear();
            let projection = cache.projection(e, spec, projection_key);
            render_payload(&prefix, &projection, &mut payload);
            let frame_len = overhead + payload.len();
            if frame_len > MAX_NEXT_FRAME_BYTES {
                batch.flush(cursor.next.saturating_sub(1), &mut out.messages);
                out.messages.push(failure_message(
                    FRAME_TOO_LARGE,
                    &format!(
                        "the event at offset {} renders to {} bytes, over the {MAX_NEXT_FRAME_BYTES}-byte frame \
                            limit: select fewer fields and resubscribe from offset {}",
                        e.offset, frame_len, e.offset
                    ),
                ));
                out.failed = true;
                return Ok(out);
            }
            cursor.next = e.offset + 1;
            batch.push(e.offset, &payload, &mut out.messages);
            let cost = match spec.window {
                WindowCount::Frames => 1,
                WindowCount::Units => frame_cost(&payload),
            };
            cursor.inflight += cost;
            out.cost += cost;
            out.frames += 1;
        }
        if page.at_end && cursor.inflight < window {
            // The log holds nothing more up to the head read in this same turn.
            cursor.next = head + 1;
        }
    }
    let advanced = cursor.next.saturating_sub(started_at);
    if advanced > 0 && (out.cut_short || advanced >= PROGRESS_EVERY) {
        batch.mark_progress();
    }
    // The last batch also covers the filtered-out events after its last frame.
    batch.flush(cursor.next.saturating_sub(1), &mut out.messages);
    Ok(out)
}

/// The start of every payload of this subscription's `next` messages, up to where an
/// event's projection goes.
fn payload_prefix<P>(spec: &SubscriptionSpec<P>) -> String {
    let mut prefix = String::from("{\"data\":{");
    prefix.push_str(&serde_json::to_string(&spec.response_key).unwrap_or_default());
    prefix.push(':');
    prefix
}

/// One payload of a `next` message: the subscription's [`payload_prefix`] and an event's
/// projection (its selected fields as JSON), then the data's and the payload's ends.
fn render_payload(prefix: &str, projection: &str, out: &mut String) {
    out.push_str(prefix);
    out.push_str(projection);
    out.push_str("}}");
}
