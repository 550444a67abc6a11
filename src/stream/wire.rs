//! The batches a chain object sends a gateway over a subscription's internal socket, and
//! the gateway's answers:
//!
//! ```text
//! B <through>[ g<requested>]\n<offset> <payload>\n<offset> <payload>...
//! E <code> <message>
//! A <count> <through>
//! ```
//!
//! `through` is the last offset the batch covers (events filtered out included); a batch
//! may carry no frame at all, only progress (a filtered scan that found nothing yet).
//! `g<requested>` says retention dropped events from `requested` on before this batch's
//! first frame: the gateway, which owns the pending gap until a frame carried it (also
//! across reattaches), adds `extensions.gap` to the next frame it forwards. `E` ends the
//! subscription with a GraphQL error (a frame over the limit). Each frame is the payload of
//! a `next` message without the operation id, so every subscription alike (same selection,
//! filter and cursor) is sent the very same batch, made once; the gateway renders the
//! vendor's `next` frame around each payload, forwards it, and answers `A`: `count` window
//! units forwarded (see [`frame_cost`]), and `through`, the offset the vendor has read up
//! to as far as the gateway can tell (where a resume without an offset continues; see
//! `relay`). The gateway holds its
//! answers while its vendor is behind in reading, so the object's window is what a vendor
//! that reads slower than the object sends can have waiting, per subscription.
//!
//! The object sends `B` and `E` as binary messages (the text's UTF-8 bytes) to gateways
//! that say they read them (`spec::BatchEncoding`, in the subscription's spec): the
//! gateway copies them into wasm as they are, where a text message is re-encoded on its way
//! in, and empties their buffers (the edge's socket glue). Gateways built before that get
//! text. The gateway's `A` is text. The three kinds are one [`DeliveryMessage`] with one
//! decoder.

use std::fmt::Write as _;

use crate::log::Offset;

/// Forwarded window units per acknowledgement: a quarter of the chain object's window, so
/// the object always has room to send while the acknowledgement travels.
pub const ACK_EVERY: u32 = 128;
/// Window units the chain object sends a subscription before it waits for an
/// acknowledgement: 512 small frames, or about 512 KiB of large ones.
pub const WINDOW: u32 = 512;
const _: () = assert!(ACK_EVERY * 4 == WINDOW);
/// The payload bytes one window unit stands for.
pub const WINDOW_UNIT_BYTES: usize = 1024;

/// What a frame takes of the window: one unit, and one more per [`WINDOW_UNIT_BYTES`] of
/// its payload. Counting frames alone let a replay of large events put 512 of them (up to
/// 32 MiB) in flight per subscription, whatever the vendor read; counting bytes alone would
/// let a stream of tiny frames run without bound. Both sides compute it from the same
/// payload text.
pub fn frame_cost(payload: &str) -> u32 {
    // A payload is under 1 MiB, so its units fit a u32.
    1 + u32::try_from(payload.len() / WINDOW_UNIT_BYTES).unwrap_or(u32::MAX - 1)
}

/// A Workers WebSocket message may not exceed 1 MiB; batches stay well under it (an event
/// is at most 64 KiB by the publish limits, its frame a little more).
pub const MAX_BATCH_BYTES: usize = 512 * 1024;

/// Builds `B` messages: frames are appended until the next would pass [`MAX_BATCH_BYTES`].
#[derive(Debug, Default)]
pub struct BatchWriter {
    body: String,
    last: Offset,
    /// Retention dropped events from this offset on, before this batch's first frame.
    gap: Option<Offset>,
    /// Send even without frames (progress, or a gap to report).
    progress: bool,
}

impl BatchWriter {
    /// Retention dropped events from `requested` on, before the next frame.
    pub fn gap_before(&mut self, requested: Offset) {
        self.gap = Some(requested);
    }

    /// Send the next batch even if it has no frame: the scan moved the cursor.
    pub fn mark_progress(&mut self) {
        self.progress = true;
    }

    pub fn is_empty(&self) -> bool {
        self.body.is_empty() && self.gap.is_none() && !self.progress
    }

    pub fn push(&mut self, offset: Offset, frame: &str, out: &mut Vec<String>) {
        if !self.body.is_empty() && self.body.len() + frame.len() > MAX_BATCH_BYTES {
            let last = self.last;
            self.flush(last, out);
        }
        // Writing to a String cannot fail.
        let _ = write!(self.body, "\n{offset} ");
        self.body.push_str(frame);
        self.last = offset;
    }

    /// Sends what is gathered as one batch covering offsets up to `through`.
    pub fn flush(&mut self, through: Offset, out: &mut Vec<String>) {
        if self.is_empty() {
            return;
        }
        let through = if self.body.is_empty() { through } else { through.max(self.last) };
        let mut header = format!("B {through}");
        if let Some(requested) = self.gap.take() {
            let _ = write!(header, " g{requested}");
        }
        header.push_str(&self.body);
        out.push(header);
        self.body.clear();
        self.progress = false;
    }
}

/// `E`: the subscription failed with this GraphQL error code and message.
pub fn failure_message(code: &str, message: &str) -> String {
    format!("E {code} {message}")
}

/// `A`: the gateway forwarded `count` window units; the subscription's saved cursor may
/// move to `through`.
pub fn ack_message(count: u32, through: Offset) -> String {
    format!("A {count} {through}")
}

/// A batch as the gateway reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryBatch<'a> {
    pub through: Offset,
    /// Retention dropped events from this offset on, before the first frame.
    pub gap: Option<Offset>,
    pub frames: Vec<(Offset, &'a str)>,
}

/// One message of the internal delivery protocol, either way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryMessage<'a> {
    /// `B`, object to gateway.
    Batch(DeliveryBatch<'a>),
    /// `E`, object to gateway: the subscription failed.
    Failed { code: &'a str, message: &'a str },
    /// `A`, gateway to object.
    Ack { count: u32, through: Offset },
}

impl<'a> DeliveryMessage<'a> {
    /// Reads a message; `None` when it is none of the three, or malformed.
    pub fn decode(text: &'a str) -> Option<DeliveryMessage<'a>> {
        match text.get(..2)? {
            "B " => decode_batch(text).map(DeliveryMessage::Batch),
            "E " => {
                let (code, message) = text[2..].split_once(' ')?;
                Some(DeliveryMessage::Failed { code, message })
            }
            "A " => {
                let mut parts = text[2..].split(' ');
                let count = parts.next()?.parse().ok()?;
                let through = parts.next()?.parse().ok()?;
                parts.next().is_none().then_some(DeliveryMessage::Ack { count, through })
            }
            _ => None,
        }
    }
}

fn decode_batch(text: &str) -> Option<DeliveryBatch<'_>> {
    let mut lines = text.split('\n');
    let mut header = lines.next()?.strip_prefix("B ")?.split(' ');
    let through = header.next()?.parse().ok()?;
    let gap = match header.next() {
        None => None,
        Some(g) => Some(g.strip_prefix('g')?.parse().ok()?),
    };
    let mut frames = Vec::new();
    for line in lines {
        let (offset, frame) = line.split_once(' ')?;
        frames.push((offset.parse().ok()?, frame));
    }
    Some(DeliveryBatch { through, gap, frames })
}
