//! What a subscription is, as the gateway describes it to the chain's object: its id and
//! owner, its filter, where it starts, its compiled selection, and how it is served. The
//! spec travels in a header of the attach request and is kept in the object's registry,
//! so it has one text form both sides read ([`encode_spec`], [`decode_spec`]).

use std::rc::Rc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::log::read::{start_at, OutOfRange};
use crate::log::{EventFilter, Gap, LogBounds, Offset};
use crate::stream::protocol::frame_overhead;

/// How long the server remembers the last offset delivered to an app key on a chain.
pub const SAVED_CURSOR_TTL_MS: u64 = 24 * 3600 * 1000;

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

/// How the chain object sends a subscription's batches (`stream::wire`).
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
    /// `stream::wire::frame_cost` per frame: its size counts.
    Units,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind", content = "offset")]
pub enum Start {
    /// Replay from this offset, inclusive.
    At(Offset),
    /// Start at the newest event.
    Highest,
    /// After the last offset this app key read on this chain with the same filter in the
    /// last 24 h; live when none is recorded.
    Resume,
    /// Replay from the first event stored at or after this time (ms since the epoch; the
    /// tag's field is named `offset` for every kind).
    Time(u64),
}

/// The first offset to deliver, and the gap to report if retention dropped some.
/// `saved` is the saved cursor of the subscription's key: the last offset delivered, and
/// when; `timed` where a start from its time begins (`OffsetLog::start_at_time`).
pub fn resolve_start(
    start: Start,
    bounds: &LogBounds,
    saved: Option<(Offset, u64)>,
    timed: Option<(Offset, Option<Gap>)>,
    now_ms: u64,
) -> Result<(Offset, Option<Gap>), OutOfRange> {
    let head = bounds.head_offset;
    let requested = match start {
        Start::At(n) => n,
        Start::Time(_) => return Ok(timed.unwrap_or((head + 1, None))),
        Start::Highest => return Ok((head.max(1), None)),
        Start::Resume => match saved {
            Some((offset, at)) if now_ms.saturating_sub(at) < SAVED_CURSOR_TTL_MS => offset + 1,
            _ => return Ok((head + 1, None)),
        },
    };
    start_at(requested, bounds)
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
            spec.filter.key(),
        ));
        SharingKeys { projection, delivery }
    }
}

/// The saved cursor a subscription resumes from (when it names no offset) and moves: one
/// per app key and filter. A narrowly filtered subscription thus never moves the cursor of
/// an unfiltered one past events that one never got, and a subscription resumes where the
/// same subscription left off.
pub fn cursor_key<P>(spec: &SubscriptionSpec<P>) -> String {
    format!("{}|{}", spec.app_key, spec.filter.key())
}

/// What makes two subscriptions' projections of an event identical: the plan and `delta`.
pub fn projection_key<P: Serialize>(spec: &SubscriptionSpec<P>) -> Rc<str> {
    Rc::from(format!("{}|{}", spec.delta, serde_json::to_string(&spec.plan).unwrap_or_default()))
}

/// The text of a spec as it travels (a header value: base64url JSON).
pub fn encode_spec<P: Serialize>(spec: &SubscriptionSpec<P>) -> Result<String, serde_json::Error> {
    Ok(URL_SAFE_NO_PAD.encode(serde_json::to_vec(spec)?))
}

/// The spec a text carries, if it is one.
pub fn decode_spec<P: DeserializeOwned>(text: &str) -> Option<SubscriptionSpec<P>> {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(text).ok()?).ok()
}
