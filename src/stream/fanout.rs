//! Delivery from a chain's log to one subscription: where it starts, which events it gets,
//! and how much may be in flight. Replay and live delivery are one mechanism: a cursor
//! into the log that advances only by reading the log, so the hand-over from replay to
//! live can neither skip nor repeat an event.
//!
//! The chain object sends a subscription its events in batches over an internal socket
//! (`rpc::delivery`); at most `window` frames are unacknowledged, so neither side ever
//! buffers without bound: a subscriber that falls behind is simply served from storage at
//! its cursor when it catches up.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::graphql::codes::FRAME_TOO_LARGE;
use crate::log::{LogBounds, LogStore, Offset, OffsetLog, Page, StoreError, StoredEvent, ValidEvent};
use crate::rpc::delivery::{failure_message, frame_cost, BatchWriter, MAX_BATCH_BYTES};
use crate::stream::protocol::{next_start, NEXT_END};

/// How long the server remembers the last offset delivered to an app key on a chain.
pub const SAVED_CURSOR_TTL_MS: u64 = 24 * 3600 * 1000;
/// Events read from storage per page while filling a window, and the bytes of bodies a
/// page may hold (at least one event is always read, whatever its size).
pub const PAGE: usize = 200;
pub const PAGE_BYTES: usize = 1 << 20;
/// The largest `next` frame sent to a vendor (CONTRACT §8): a frame alone in its batch,
/// with the batch's header and offset, stays under the runtime's 1 MiB message limit
/// (<https://developers.cloudflare.com/durable-objects/platform/limits/>).
pub const MAX_NEXT_FRAME_BYTES: usize = 1_000_000;
const _: () = assert!(MAX_NEXT_FRAME_BYTES + 64 < 1 << 20 && MAX_BATCH_BYTES < MAX_NEXT_FRAME_BYTES);

/// What one turn of the chain object may read from storage for all the subscriptions it
/// serves together: pages, and bytes of event bodies. Pages already read in the turn are
/// shared and cost nothing. A subscription whose scan the budget cut short (a filter that
/// matches little, over a long log) continues in a later turn, so other subscriptions,
/// publishes and acknowledgements are served in between, and the memory a turn holds is
/// bounded by the budget, not by the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TurnBudget {
    pub pages: usize,
    pub bytes: usize,
}

impl TurnBudget {
    pub const PER_TURN: TurnBudget = TurnBudget { pages: 32, bytes: 2 << 20 };

    pub fn exhausted(&self) -> bool {
        self.pages == 0 || self.bytes == 0
    }

    /// Counts a page read from storage against the budget.
    pub fn spend(&mut self, page: &Page) {
        self.pages = self.pages.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(page.events.iter().map(|e| e.body.len()).sum());
    }
}

/// A scan that advanced this far without a frame reports its progress anyway (a frame-less
/// batch), so the gateway's next offset and the saved cursor follow a filtered stream.
pub const PROGRESS_EVERY: u64 = PAGE as u64;

/// The least time between two fan-outs of a chain under backlog (ms), by attached
/// subscriptions: a fan-out costs one message per subscription whatever it carries, so a
/// busy chain with many subscribers waits a little to send several publishes' events in
/// one message each (100 subscriptions: 20 ms).
pub fn backlog_pace_ms(subscriptions: usize) -> u64 {
    (subscriptions as u64 / 5).min(MAX_FAN_OUT_PACE_MS)
}

/// The most [`backlog_pace_ms`] adds to an event's way to its subscribers.
pub const MAX_FAN_OUT_PACE_MS: u64 = 25;

/// A fan-out that runs this late (ms) found the object busy. More than a publish's own turn
/// takes (the runtime's clock stands still within a turn and moves between turns).
pub const LATE_FAN_OUT_MS: u64 = 5;

/// A publish that finds the object's last fan-out at least this long ago (ms), and at
/// least [`backlog_pace_ms`] of its subscriptions ago, fans out in its own turn, without a
/// timer: the object is quiet, nothing else waits to join it, and the frames leave with
/// the publish's answer (both held until the rows are durable). Publishes closer together
/// take the timer, so that they batch and lateness is measured: a fan-out in the
/// publish's turn is never late (the runtime's clock stands still within a turn), so it
/// could never show backlog.
pub const QUIET_FAN_OUT_MS: u64 = 5;

/// When a chain object fans out, and where each fan-out starts among its sockets. A
/// fan-out runs in a turn of its own, scheduled by the publish that asked for it, and
/// publishes that land before it runs join it. Events are batched only under backlog: an
/// idle object fans out at once, and only when the last fan-out ran late (other work of the
/// object ran between its request and its turn, so the object is busy) does the next wait
/// for [`backlog_pace_ms`], sending several publishes' events as one message per
/// subscriber exactly when messages are what saturates it. Frames still come from storage
/// at each cursor, so timing cannot change what is delivered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FanOutSchedule {
    /// When the fan-out scheduled and not yet run is due (ms).
    due_at: Option<u64>,
    /// When the last fan-out ran (ms), and whether it ran late.
    last_at: u64,
    backlog: bool,
    /// How many sockets the last fan-out found.
    last_sockets: usize,
    /// Fan-outs so far: where the next one starts among the sockets.
    turns: usize,
}

/// When a requested fan-out runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FanOutStart {
    /// In the requesting turn: the object is quiet (see [`QUIET_FAN_OUT_MS`]).
    ThisTurn,
    /// In a turn of its own, this many ms from now (0: after the work already waiting).
    After(u64),
}

impl FanOutSchedule {
    /// A fan-out is wanted: after a publish, or (`resume`) after the last one ran out of
    /// budget, when the next runs unpaced, though after everything already waiting. Returns
    /// when it runs, or `None` when one is already scheduled or nobody is attached (a
    /// subscription attaching later reads from storage at its cursor, so skipping misses
    /// nothing). `any_socket` is asked only when the last fan-out found none (listing
    /// sockets builds an array of every one).
    pub fn request(&mut self, resume: bool, now_ms: u64, any_socket: impl FnOnce() -> bool) -> Option<FanOutStart> {
        if self.due_at.is_some() || (self.last_sockets == 0 && !any_socket()) {
            return None;
        }
        let paced = !resume && self.backlog;
        let wait = if paced { (self.last_at + backlog_pace_ms(self.last_sockets)).saturating_sub(now_ms) } else { 0 };
        self.due_at = Some(now_ms + wait);
        if resume || paced {
            return Some(FanOutStart::After(wait));
        }
        let quiet = QUIET_FAN_OUT_MS.max(backlog_pace_ms(self.last_sockets));
        Some(if now_ms.saturating_sub(self.last_at) >= quiet { FanOutStart::ThisTurn } else { FanOutStart::After(0) })
    }

    /// Whether the last fan-out found subscriptions attached: only then are a publish's
    /// events worth keeping in memory for the next one ([`RecentEvents`]).
    pub fn found_subscribers(&self) -> bool {
        self.last_sockets > 0
    }

    /// The scheduled fan-out runs now over `sockets` sockets: the index of the one to serve
    /// first, a different one each time, so that none always waits for the others' scans.
    /// A fan-out that runs [`LATE_FAN_OUT_MS`] or more after it was due waited for other
    /// work: the next one is paced.
    pub fn run(&mut self, now_ms: u64, sockets: usize) -> Option<usize> {
        let due_at = self.due_at.take().unwrap_or(now_ms);
        self.backlog = now_ms.saturating_sub(due_at) >= LATE_FAN_OUT_MS;
        self.last_at = now_ms;
        self.last_sockets = sockets;
        if sockets == 0 {
            return None;
        }
        let first = self.turns % sockets;
        self.turns = self.turns.wrapping_add(1);
        Some(first)
    }
}

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

/// Turns an event (`EventHeader` JSON) into the subscription's selected fields.
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
    /// What the gateway's acknowledgements count. Absent from the specs of gateways built
    /// before window units, which count frames: a gateway isolate that outlives a deploy
    /// keeps being served as it counts, instead of waiting forever for an acknowledgement.
    #[serde(default)]
    pub window: WindowCount,
    /// How the gateway reads the object's batches. Absent from the specs of gateways built
    /// before binary batches, which read text only (their listener ignores anything else):
    /// such an isolate outliving a deploy keeps getting text.
    #[serde(default)]
    pub batches: BatchEncoding,
}

/// How the chain object sends a subscription's batches (`rpc::delivery`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BatchEncoding {
    /// Text messages (gateways before binary batches).
    #[default]
    Text,
    /// Binary messages of the text's UTF-8 bytes.
    Binary,
}

/// What a subscription's window and its gateway's acknowledgements count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum WindowCount {
    /// One per frame (gateways before window units).
    #[default]
    Frames,
    /// `rpc::delivery::frame_cost` per frame: its size counts.
    Units,
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
    /// Window units (`rpc::delivery::frame_cost`) sent and not yet acknowledged.
    pub inflight: u32,
}

impl Cursor {
    /// The gateway acknowledged `count` window units, which frees the window by as many. Returns
    /// whether a [`pump`] could now change anything: events past the cursor up to `head`,
    /// or room in the window (when it returns `false`, the cursor is as it was).
    pub fn acknowledge(&mut self, count: u32, head: Offset) -> bool {
        self.inflight = self.inflight.saturating_sub(count);
        self.next <= head || count > 0
    }
}

/// What the chain object keeps on a subscription's internal socket, so that it survives
/// hibernation: the key of its registry row (the spec itself is too large for the
/// runtime's 2 KiB attachment) and its cursor. Read and written on every serve, so it is
/// one short string (`<next> <inflight> <key>`), which costs the runtime far less than an
/// object of fields to clone in and out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketState {
    pub key: String,
    pub cursor: Cursor,
}

impl SocketState {
    pub fn encode(&self) -> String {
        format!("{} {} {}", self.cursor.next, self.cursor.inflight, self.key)
    }

    pub fn decode(text: &str) -> Option<SocketState> {
        let mut parts = text.splitn(3, ' ');
        let next = parts.next()?.parse().ok()?;
        let inflight = parts.next()?.parse().ok()?;
        let key = parts.next().filter(|k| !k.is_empty())?.to_string();
        Some(SocketState { key, cursor: Cursor { next, inflight } })
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

/// What lets subscriptions share work in a turn of the chain object: `projection` is equal
/// for subscriptions whose projections of an event are identical (plan and `delta`), and
/// `delivery` for those that, from the same cursor with the same room, are sent identical
/// messages (the projection, the response key, the filter, and the length of the frame
/// around the payload, which the frame limit counts). Messages carry no operation id: the
/// gateway adds it to each frame, so a hundred vendors subscribed alike cost the object one
/// batch, rendered and handed to the runtime once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharingKeys {
    pub projection: Rc<str>,
    pub delivery: Rc<str>,
}

impl SharingKeys {
    pub fn of<P: Serialize>(spec: &SubscriptionSpec<P>) -> Self {
        let projection = projection_key(spec);
        let delivery = Rc::from(format!(
            "{:?}|{}|{}|{}|{projection}",
            spec.window,
            frame_overhead(&spec.id),
            serde_json::to_string(&spec.response_key).unwrap_or_default(),
            serde_json::to_string(&spec.filter).unwrap_or_default(),
        ));
        SharingKeys { projection, delivery }
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

/// The saved cursor a subscription resumes from (when it names no offset) and moves: one
/// per app key and filter. A narrowly filtered subscription thus never moves the cursor of
/// an unfiltered one past events that one never got, and a subscription resumes where the
/// same subscription left off.
pub fn cursor_key<P>(spec: &SubscriptionSpec<P>) -> String {
    format!("{}|{}", spec.app_key, serde_json::to_string(&spec.filter).unwrap_or_default())
}

/// What makes two subscriptions' projections of an event identical: the plan and `delta`.
pub fn projection_key<P: Serialize>(spec: &SubscriptionSpec<P>) -> Rc<str> {
    Rc::from(format!("{}|{}", spec.delta, serde_json::to_string(&spec.plan).unwrap_or_default()))
}
