//! What the log holds: events as the publish API validated them, as they are appended, and
//! as they are stored and read back.

use serde::{Deserialize, Serialize};

/// An event's place in its chain's log: from 1, strictly increasing, no gaps.
pub type Offset = u64;

/// Offsets stay below 2^53, so they are exact in every JavaScript client.
pub const MAX_OFFSET: Offset = (1 << 53) - 1;

/// Whether `s` is an offset's text: decimal digits only (its value is checked apart).
pub fn is_decimal(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredEvent {
    pub offset: Offset,
    pub unique_event_id: String,
    pub hotel_id: String,
    pub module_name: String,
    pub event_name: String,
    /// When the log accepted it (ms since the epoch): retention counts from here.
    pub stored_at: u64,
    pub body: String,
}

/// An event being appended: its offset and store time, and the batch's event itself, so an
/// append copies no event data on its way to storage.
#[derive(Debug, Clone, Copy)]
pub struct NewEvent<'a> {
    pub offset: Offset,
    pub stored_at: u64,
    pub event: &'a ValidEvent,
}

impl NewEvent<'_> {
    pub fn to_stored(&self) -> StoredEvent {
        StoredEvent {
            offset: self.offset,
            unique_event_id: self.event.unique_event_id.clone(),
            hotel_id: self.event.hotel_id.clone(),
            module_name: self.event.module_name.clone(),
            event_name: self.event.event_name.clone(),
            stored_at: self.stored_at,
            body: self.event.body.clone(),
        }
    }
}

/// An event that passed validation, in the form the chain log stores.
#[derive(Debug, Clone)]
pub struct ValidEvent {
    pub unique_event_id: String,
    pub hotel_id: String,
    pub module_name: String,
    pub event_name: String,
    /// The event as delivered to vendors (`EventHeader` without `metadata.offset`), as JSON
    /// text.
    pub body: String,
    /// The id was generated for this request, so it cannot be in the log yet and the log
    /// skips looking it up. Cleared when the request retries the append: the first attempt
    /// may have stored it.
    pub minted: bool,
}

/// An offset as vendors and operators write it: decimal digits (spaces around are
/// ignored), at most [`MAX_OFFSET`]. The error says why, naming the text.
pub fn parse_offset(s: &str) -> Result<Offset, String> {
    let t = s.trim();
    if !is_decimal(t) {
        return Err(format!("offset {s:?} must be decimal digits"));
    }
    t.parse::<u64>().ok().filter(|n| *n <= MAX_OFFSET).ok_or_else(|| format!("offset {s:?} is out of range"))
}

/// A stored body with its offset put into `metadata`: the full `EventHeader`, appended to
/// `out`.
///
/// Bodies stored by the publish API are written by one serializer, with `"metadata":{` once
/// and only as the top-level key (every string before it is escaped JSON, so its quotes
/// cannot form that text): the offset is spliced in there, without parsing the event. A
/// body of any other shape is parsed and rewritten.
pub fn write_event_header(body: &str, offset: Offset, out: &mut String) {
    use std::fmt::Write as _;
    const METADATA: &str = "\"metadata\":{";
    if let Some(i) = body.find(METADATA) {
        let at = i + METADATA.len();
        out.push_str(&body[..at]);
        let _ = write!(out, "\"offset\":\"{offset}\"");
        if !body[at..].starts_with('}') {
            out.push(',');
        }
        out.push_str(&body[at..]);
        return;
    }
    let mut value: serde_json::Value = serde_json::from_str(body).unwrap_or(serde_json::Value::Null);
    if let Some(meta) = value.get_mut("metadata").and_then(serde_json::Value::as_object_mut) {
        meta.insert("offset".into(), serde_json::Value::String(offset.to_string()));
    }
    out.push_str(&value.to_string());
}
