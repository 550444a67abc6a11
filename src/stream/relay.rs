//! The gateway's side of one subscription, without I/O: what to forward of each batch the
//! chain object sends, when to acknowledge, where to reattach after the object went away
//! (a deploy, an eviction, an operator's restart), how long to wait before trying again,
//! and when to give up. The gateway performs these decisions; this is where the "no gap,
//! no repeat" promise is kept, and it is tested natively.
//!
//! - **No repeat**: the relay knows the next offset it owes the vendor; frames below it (a
//!   batch resent after a reattach) are dropped, and every reattach starts there.
//! - **Gaps are signalled once**: a retention gap (reported at attach or in a batch) stays
//!   pending until a forwarded frame carried it, across any number of reattaches.
//! - **Paced by the vendor's reading**: acknowledgements are what let the object send
//!   more, so while the vendor's connection is behind in reading (see
//!   `slow_consumer::SlowConsumerGuard::behind`) they are held, and the object stops at its
//!   window instead of the runtime buffering a whole replay for a vendor that reads it
//!   slower than it is sent.
//! - **The saved cursor counts what was read**: an acknowledgement frees the object's window
//!   by what was forwarded, but moves the subscription's saved cursor (where a resume
//!   without an offset continues) only through frames the vendor has read: confirmed by an
//!   answered ping, or sent at least the resend window ago on a connection still open. A
//!   vendor that drops with frames unread in buffers is sent them again when it resumes
//!   without an offset (at least once: vendors deduplicate by offset).
//! - **Bounded retries**: an attach that fails, or that ends before it forwarded anything
//!   within [`STABLE_ATTACH_MS`], counts as a failure; failures back off exponentially,
//!   and after [`MAX_ATTACH_FAILURES`] in a row the operation ends with an error.

use std::collections::VecDeque;

use crate::log::{Gap, Offset};
use crate::stream::protocol::{render_frame, NEXT_END};
use crate::stream::spec::Start;
use crate::stream::wire::{ack_message, frame_cost, DeliveryMessage};

pub use crate::stream::wire::{ACK_EVERY, WINDOW};

use crate::stream::slow_consumer::DEFAULT_RESEND_WINDOW_MS;
/// Sends remembered per subscription until they count as read; past it the two oldest are
/// merged, which only ever makes a resume repeat more, never skip.
pub const MAX_UNREAD_SENDS: usize = 64;

/// Frames forwarded through `through`, the connection's output having reached
/// `output_bytes` with them, at `at_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sent {
    through: Offset,
    output_bytes: u64,
    at_ms: u64,
}

/// Consecutive failed attaches before the operation ends with `INTERNAL_SERVER_ERROR`.
pub const MAX_ATTACH_FAILURES: u32 = 8;
/// An attach that lasted this long, or forwarded a frame, was a working one.
pub const STABLE_ATTACH_MS: u64 = 10_000;
/// Waits between attempts: none after the first failure (a restart closes every socket
/// and the object is back at once), then doubling from this, up to the cap.
pub const FIRST_BACKOFF_MS: u64 = 50;
pub const MAX_BACKOFF_MS: u64 = 5_000;

/// What to do after an attach failed or an attached socket ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Attach again after this many milliseconds.
    After(u64),
    /// Stop: the chain's log stayed unreachable.
    GiveUp,
}

/// One event to forward: the payload of its `next` frame as the chain object rendered it
/// (the same for every subscription alike, so it has no operation id), and the retention
/// gap it is the first frame after, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    pub offset: Offset,
    pub payload: &'a str,
    pub gap: Option<Gap>,
}

impl Frame<'_> {
    /// The `next` frame sent to the vendor, into `out` (replacing what it held); `start` is
    /// the operation's `protocol::next_start`.
    pub fn render(&self, start: &str, out: &mut String) {
        out.clear();
        render_frame(start, self.payload, self.gap, out);
    }
}

/// The frames of one batch rendered into one text, with where each ends (a byte offset,
/// on a character boundary): one allocation per batch in wasm. The gateway sends each frame
/// as a JavaScript string of its own. Slices of one shared string were tried (2026-12-06):
/// the runtime's `send` keeps what it is given alive past the next minor collection, and a
/// slice keeps its whole batch text with it, so every scavenge copied every batch text still
/// referenced: scavenge pauses of up to 33 ms at 100 subscribers (README: Benchmarks).
#[derive(Debug, Default)]
pub struct RenderedFrames {
    /// Every frame, one after the other (empty: no frame, since no frame is empty).
    pub text: String,
    ends: Vec<usize>,
}

impl RenderedFrames {
    pub fn render(&mut self, start: &str, frames: &[Frame<'_>]) {
        self.text.clear();
        self.ends.clear();
        // Every frame but one after a gap is exactly this long: one allocation per batch.
        let overhead = start.len() + NEXT_END.len();
        self.text.reserve(frames.iter().map(|f| f.payload.len() + overhead).sum());
        self.ends.reserve(frames.len());
        for frame in frames {
            render_frame(start, frame.payload, frame.gap, &mut self.text);
            self.ends.push(self.text.len());
        }
    }

    /// Each frame's text, in order.
    pub fn frames(&self) -> impl Iterator<Item = &str> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(&self.ends).map(|(from, &end)| &self.text[from..end])
    }
}

/// What the gateway does with one message from the chain object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step<'a> {
    /// Send these frames to the vendor, then ask [`Relay::ack`] whether to acknowledge.
    Forward { frames: Vec<Frame<'a>> },
    /// The subscription failed with this GraphQL error code and message.
    Fail { code: &'a str, message: &'a str },
    /// Not a message of the internal protocol: ignore it.
    Ignore,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relay {
    /// The first offset not yet forwarded; known from the first attach on.
    next_offset: Option<Offset>,
    /// Retention dropped events from this offset on; not yet told to the vendor.
    pending_gap: Option<Offset>,
    /// Window units forwarded since the last acknowledgement, and the offset they reach.
    unacked: u32,
    through: Offset,
    /// Forwarded frames not yet known to be read, oldest first.
    unread: VecDeque<Sent>,
    /// Every frame through this offset is read, as far as can be told.
    read_through: Offset,
    /// Frames sent this long ago count as read (ms).
    resend_window_ms: u64,
    failures: u32,
    attached_at: u64,
    forwarded_since_attach: bool,
    /// For the audit line at the end.
    pub forwarded: u64,
    pub first_offset: Option<Offset>,
    pub last_offset: Option<Offset>,
}

impl Default for Relay {
    fn default() -> Self {
        Relay::new()
    }
}

impl Relay {
    pub fn new() -> Self {
        Relay {
            next_offset: None,
            pending_gap: None,
            unacked: 0,
            through: 0,
            unread: VecDeque::new(),
            read_through: 0,
            resend_window_ms: DEFAULT_RESEND_WINDOW_MS,
            failures: 0,
            attached_at: 0,
            forwarded_since_attach: false,
            forwarded: 0,
            first_offset: None,
            last_offset: None,
        }
    }

    /// A relay whose frames count as read `ms` after they were sent (see `read_through`).
    pub fn with_resend_window(resend_window_ms: u64) -> Self {
        Relay { resend_window_ms, ..Relay::new() }
    }

    /// Where the next attach starts: the subscription's own start the first time, then the
    /// next offset owed.
    pub fn start(&self, requested: Start) -> Start {
        self.next_offset.map_or(requested, Start::At)
    }

    pub fn next_offset(&self) -> Option<Offset> {
        self.next_offset
    }

    /// The object accepted the subscription at `start`, with a retention gap from `gap` on.
    /// Returns the acknowledgement that opens the window, with what the vendor has read so
    /// far (at the first attach: everything before its start).
    pub fn on_attached(&mut self, start: Offset, gap: Option<Offset>, now_ms: u64) -> String {
        if self.next_offset.is_none() {
            // Nothing before its start is owed to this subscription: a resume without an
            // offset never needs to go back before it.
            self.read_through = self.read_through.max(start.saturating_sub(1));
        }
        self.next_offset.get_or_insert(start);
        self.note_gap(gap);
        self.unacked = 0;
        self.attached_at = now_ms;
        self.forwarded_since_attach = false;
        ack_message(0, self.read_through)
    }

    fn note_gap(&mut self, gap: Option<Offset>) {
        if let Some(requested) = gap {
            // The earliest request is the one the vendor made.
            self.pending_gap = Some(self.pending_gap.map_or(requested, |p| p.min(requested)));
        }
    }

    /// One message from the chain object.
    pub fn on_message<'a>(&mut self, text: &'a str) -> Step<'a> {
        let batch = match DeliveryMessage::decode(text) {
            Some(DeliveryMessage::Batch(batch)) => batch,
            Some(DeliveryMessage::Failed { code, message }) => return Step::Fail { code, message },
            Some(DeliveryMessage::Ack { .. }) | None => return Step::Ignore,
        };
        self.note_gap(batch.gap);
        let expected = self.next_offset.unwrap_or(0);
        let mut frames = Vec::with_capacity(batch.frames.len());
        for (offset, payload) in batch.frames {
            // The object counted every frame it sent, those dropped here too.
            self.unacked = self.unacked.saturating_add(frame_cost(payload));
            // A batch resent after a reattach may overlap what was forwarded.
            if offset < expected {
                continue;
            }
            let gap = self.pending_gap.take().map(|requested| Gap { requested, resumed_at: offset });
            frames.push(Frame { offset, payload, gap });
            self.forwarded += 1;
            self.first_offset.get_or_insert(offset);
            self.last_offset = Some(offset);
        }
        if !frames.is_empty() {
            self.forwarded_since_attach = true;
        }
        self.next_offset = Some(expected.max(batch.through + 1));
        self.through = self.through.max(batch.through);
        Step::Forward { frames }
    }

    /// What was just forwarded reached the vendor's connection, whose output now stands at
    /// `output_bytes` (every byte sent on it so far), at `now_ms`.
    pub fn on_sent(&mut self, output_bytes: u64, now_ms: u64) {
        if self.through <= self.read_through || self.unread.back().is_some_and(|s| s.through == self.through) {
            return;
        }
        if self.unread.len() == MAX_UNREAD_SENDS {
            // The older of the two is dropped: the merged one counts as read only once the
            // newer does.
            self.unread.pop_front();
        }
        self.unread.push_back(Sent { through: self.through, output_bytes, at_ms: now_ms });
    }

    /// The last offset the vendor has read as far as can be told: everything in the
    /// connection's output before `confirmed_bytes` (the last answered ping) is read, and so
    /// is anything sent the resend window before `now_ms`.
    pub fn read_through(&mut self, confirmed_bytes: u64, now_ms: u64) -> Offset {
        while let Some(sent) = self.unread.front() {
            if sent.output_bytes > confirmed_bytes && now_ms.saturating_sub(sent.at_ms) < self.resend_window_ms {
                break;
            }
            self.read_through = self.read_through.max(sent.through);
            self.unread.pop_front();
        }
        self.read_through
    }

    /// The acknowledgement to send the object now, if one is due: a quarter of the window
    /// was forwarded, and the vendor is not `behind` in reading. One held while it was
    /// behind is sent once it caught up (the connection asks again then). It moves the
    /// saved cursor through what was read (see [`Relay::read_through`]).
    pub fn ack(&mut self, behind: bool, confirmed_bytes: u64, now_ms: u64) -> Option<String> {
        if self.unacked < ACK_EVERY || behind {
            return None;
        }
        let read = self.read_through(confirmed_bytes, now_ms);
        Some(ack_message(std::mem::take(&mut self.unacked), read))
    }

    /// The acknowledgement to send when the subscription stops: the object then saves the
    /// cursor through what was read. Frames sent shortly before and not confirmed stay
    /// unsaved, so a resume without an offset sends them again.
    pub fn final_ack(&mut self, confirmed_bytes: u64, now_ms: u64) -> String {
        let read = self.read_through(confirmed_bytes, now_ms);
        ack_message(std::mem::take(&mut self.unacked), read)
    }

    /// An attach attempt failed.
    pub fn on_attach_failed(&mut self) -> Retry {
        self.failures += 1;
        self.retry()
    }

    /// The attached socket ended (the object went away).
    pub fn on_detached(&mut self, now_ms: u64) -> Retry {
        if self.forwarded_since_attach || now_ms.saturating_sub(self.attached_at) >= STABLE_ATTACH_MS {
            self.failures = 0;
        }
        self.failures += 1;
        self.retry()
    }

    fn retry(&self) -> Retry {
        match self.failures {
            n if n > MAX_ATTACH_FAILURES => Retry::GiveUp,
            0 | 1 => Retry::After(0),
            n => Retry::After((FIRST_BACKOFF_MS << (n - 2).min(16)).min(MAX_BACKOFF_MS)),
        }
    }
}
