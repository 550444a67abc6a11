//! Publish batches (docs/protocol.md, Publishing): the whole batch is checked before anything is stored, and
//! every bad event is reported with its index, so a publisher fixes a batch in one round.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::marker::PhantomData;

use serde::de::{Deserializer as _, IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::config::{Chain, Limits};
pub use crate::log::ValidEvent;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventError {
    pub index: usize,
    pub field: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchError {
    /// `413`: the batch or one event is over a documented limit.
    TooLarge(String),
    /// `400`: not JSON, or not an event or array of events.
    Malformed(String),
    /// `400`: one entry per bad event; nothing of the batch is stored.
    Invalid(Vec<EventError>),
    /// `403`: events for properties outside the publisher's grant; nothing is stored.
    Forbidden(Vec<EventError>),
}

impl BatchError {
    pub fn status(&self) -> u16 {
        match self {
            BatchError::TooLarge(_) => 413,
            BatchError::Forbidden(_) => 403,
            _ => 400,
        }
    }

    pub fn body(&self) -> Value {
        match self {
            BatchError::TooLarge(m) => {
                serde_json::json!({"error": "payload_too_large", "message": m})
            }
            BatchError::Malformed(m) => {
                serde_json::json!({"error": "invalid_request", "message": m})
            }
            BatchError::Invalid(errors) => serde_json::json!({
                "error": "invalid_events",
                "message": format!("{} event(s) are invalid; nothing was stored", count_events(errors)),
                "errors": errors,
            }),
            BatchError::Forbidden(errors) => serde_json::json!({
                "error": "forbidden",
                "message": format!(
                    "{} event(s) are for properties this publisher is not granted; nothing was stored",
                    count_events(errors)
                ),
                "errors": errors,
            }),
        }
    }
}

fn count_events(errors: &[EventError]) -> usize {
    let mut indexes: Vec<usize> = errors.iter().map(|e| e.index).collect();
    indexes.dedup();
    indexes.len()
}

pub const MAX_ID_LEN: usize = 128;
const REQUIRED: [&str; 5] = ["moduleName", "eventName", "primaryKey", "timestamp", "hotelId"];
const OPTIONAL: [&str; 3] = ["publisherId", "actionInstanceId", "uniqueEventId"];
const DETAIL_STRINGS: [&str; 7] =
    ["elementName", "elementType", "elementRole", "newValue", "oldValue", "scopeFrom", "scopeTo"];

/// A well-formed event, borrowed from the request body. Most batches are valid, and this
/// checks their shape and re-serializes them without building a JSON tree per event (the
/// tree cost ~0.5 ms of a 100-event publish). An event that does not fit is judged again
/// as a JSON value, field by field, only to say precisely what is wrong with it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct EventShape<'a> {
    #[serde(borrow)]
    module_name: Cow<'a, str>,
    #[serde(borrow)]
    event_name: Cow<'a, str>,
    #[serde(borrow)]
    primary_key: Cow<'a, str>,
    #[serde(borrow)]
    timestamp: Cow<'a, str>,
    #[serde(borrow)]
    hotel_id: Cow<'a, str>,
    #[serde(borrow)]
    detail: Vec<DetailShape<'a>>,
    #[serde(borrow, default)]
    publisher_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    action_instance_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    unique_event_id: Option<Cow<'a, str>>,
}

/// An `EventDetail` entry; absent and `null` fields are both left out of the stored body
/// (delivery projects a missing field as `null`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct DetailShape<'a> {
    #[serde(borrow, default)]
    element_name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    element_role: Option<Cow<'a, str>>,
    #[serde(default)]
    element_sequence: Option<i32>,
    #[serde(borrow, default)]
    element_type: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    new_value: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    old_value: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    scope_from: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    scope_to: Option<Cow<'a, str>>,
}

/// The stored body: the event as vendors receive it, its id moved into `metadata`, absent
/// and `null` fields left out, keys in alphabetical order: what `serde_json` writes for it,
/// byte for byte, written by hand because this runs for every event published (serde's
/// map and escaping machinery took a third of an event's validation under the profiler).
fn stored_body(shape: &EventShape<'_>, unique_event_id: &str) -> String {
    let mut out = String::with_capacity(256);
    out.push('{');
    if let Some(id) = &shape.action_instance_id {
        push_field(&mut out, "actionInstanceId", id);
        out.push(',');
    }
    out.push_str("\"detail\":[");
    for (i, entry) in shape.detail.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_detail(&mut out, entry);
    }
    out.push_str("],");
    push_field(&mut out, "eventName", &shape.event_name);
    out.push(',');
    push_field(&mut out, "hotelId", &shape.hotel_id);
    out.push_str(",\"metadata\":{\"uniqueEventId\":");
    crate::json::write_str(&mut out, unique_event_id);
    out.push_str("},");
    push_field(&mut out, "moduleName", &shape.module_name);
    out.push(',');
    push_field(&mut out, "primaryKey", &shape.primary_key);
    if let Some(id) = &shape.publisher_id {
        out.push(',');
        push_field(&mut out, "publisherId", id);
    }
    out.push(',');
    push_field(&mut out, "timestamp", &shape.timestamp);
    out.push('}');
    out
}

fn push_detail(out: &mut String, entry: &DetailShape<'_>) {
    out.push('{');
    push_optional(out, "elementName", entry.element_name.as_deref());
    push_optional(out, "elementRole", entry.element_role.as_deref());
    if let Some(n) = entry.element_sequence {
        separate(out);
        // Writing to a String cannot fail.
        let _ = write!(out, "\"elementSequence\":{n}");
    }
    push_optional(out, "elementType", entry.element_type.as_deref());
    push_optional(out, "newValue", entry.new_value.as_deref());
    push_optional(out, "oldValue", entry.old_value.as_deref());
    push_optional(out, "scopeFrom", entry.scope_from.as_deref());
    push_optional(out, "scopeTo", entry.scope_to.as_deref());
    out.push('}');
}

/// A field of an object being written, if it has a value.
fn push_optional(out: &mut String, key: &str, value: Option<&str>) {
    if let Some(value) = value {
        separate(out);
        push_field(out, key, value);
    }
}

/// The comma before a field, unless it is the object's first.
fn separate(out: &mut String) {
    if !out.ends_with('{') {
        out.push(',');
    }
}

/// `"key":"value"`; `key` needs no escaping.
fn push_field(out: &mut String, key: &str, value: &str) {
    out.push('"');
    out.push_str(key);
    out.push_str("\":");
    crate::json::write_str(out, value);
}

/// Validates a whole batch. `new_id` supplies a `uniqueEventId` where one is absent.
pub fn validate_batch(
    body: &[u8],
    chain: &Chain,
    limits: &Limits,
    mut new_id: impl FnMut() -> String,
) -> Result<Vec<ValidEvent>, BatchError> {
    if body.len() > limits.max_batch_bytes {
        return Err(BatchError::TooLarge(format!(
            "the batch is {} bytes; the limit is {} bytes",
            body.len(),
            limits.max_batch_bytes
        )));
    }
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    // The common case, an array of well-formed events, is parsed in one pass; anything
    // else is parsed again item by item below, to say precisely what is wrong.
    let keep = limits.max_events_per_batch;
    if first == Some(&b'[') {
        if let Ok(shapes) = read_array::<EventShape>(body, keep) {
            check_count(shapes.total, limits)?;
            return collect(
                shapes
                    .kept
                    .into_iter()
                    .enumerate()
                    .map(|(index, shape)| check_event(index, shape, chain, limits, &mut new_id)),
            );
        }
    }
    let not_json = |e: serde_json::Error| BatchError::Malformed(format!("the body is not valid JSON: {e}"));
    let items: Vec<&RawValue> = match first {
        Some(b'[') => {
            let items = read_array::<&RawValue>(body, keep).map_err(not_json)?;
            check_count(items.total, limits)?;
            items.kept
        }
        Some(b'{') => vec![serde_json::from_slice(body).map_err(not_json)?],
        _ => {
            serde_json::from_slice::<&RawValue>(body).map_err(not_json)?;
            return Err(BatchError::Malformed("the body must be an event object or an array of events".into()));
        }
    };
    collect(items.into_iter().enumerate().map(|(index, item)| validate_event(index, item, chain, limits, &mut new_id)))
}

/// A JSON array of which at most `keep` elements were read; `total` counts them all.
struct ReadArray<T> {
    kept: Vec<T>,
    total: usize,
}

/// Reads a JSON array element by element, keeping at most `keep` of them: the elements
/// beyond are only skipped and counted, so a body of 350,000 tiny events (1 MiB of `{},`)
/// costs the parse no more memory than a full batch, and its 413 still names the count.
fn read_array<'de, T: Deserialize<'de>>(body: &'de [u8], keep: usize) -> serde_json::Result<ReadArray<T>> {
    struct Elements<T> {
        keep: usize,
        element: PhantomData<T>,
    }
    impl<'de, T: Deserialize<'de>> Visitor<'de> for Elements<T> {
        type Value = ReadArray<T>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an array of events")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut kept = Vec::new();
            while kept.len() < self.keep {
                match seq.next_element()? {
                    Some(element) => kept.push(element),
                    None => return Ok(ReadArray { total: kept.len(), kept }),
                }
            }
            let mut total = kept.len();
            while seq.next_element::<IgnoredAny>()?.is_some() {
                total += 1;
            }
            Ok(ReadArray { kept, total })
        }
    }
    let mut json = serde_json::Deserializer::from_slice(body);
    let array = json.deserialize_seq(Elements { keep, element: PhantomData })?;
    json.end()?;
    Ok(array)
}

fn check_count(events: usize, limits: &Limits) -> Result<(), BatchError> {
    if events == 0 {
        return Err(BatchError::Malformed("the batch holds no event".into()));
    }
    if events > limits.max_events_per_batch {
        return Err(BatchError::TooLarge(format!(
            "the batch holds {events} events; the limit is {}",
            limits.max_events_per_batch
        )));
    }
    Ok(())
}

/// The batch's events, or every error of every event (a batch too large stops at once).
fn collect(
    outcomes: impl ExactSizeIterator<Item = Result<ValidEvent, EventFault>>,
) -> Result<Vec<ValidEvent>, BatchError> {
    let mut errors = Vec::new();
    let mut events = Vec::with_capacity(outcomes.len());
    for outcome in outcomes {
        match outcome {
            Ok(event) => events.push(event),
            Err(EventFault::TooLarge(m)) => return Err(BatchError::TooLarge(m)),
            Err(EventFault::Invalid(mut e)) => errors.append(&mut e),
        }
    }
    if errors.is_empty() {
        Ok(events)
    } else {
        Err(BatchError::Invalid(errors))
    }
}

/// Refuses a batch holding events for properties outside the publisher's grant (`None`:
/// every property of the chain). A grant restricted to some properties restricts
/// publishing as it restricts streaming.
pub fn check_grant(
    events: &[ValidEvent],
    granted: Option<&std::collections::BTreeSet<String>>,
) -> Result<(), BatchError> {
    let Some(granted) = granted else {
        return Ok(());
    };
    let errors: Vec<EventError> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| !granted.contains(&e.hotel_id))
        .map(|(index, e)| EventError {
            index,
            field: "hotelId".into(),
            message: format!("hotelId {:?} is not granted to this publisher", e.hotel_id),
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(BatchError::Forbidden(errors))
    }
}

enum EventFault {
    TooLarge(String),
    Invalid(Vec<EventError>),
}

fn validate_event(
    index: usize,
    item: &RawValue,
    chain: &Chain,
    limits: &Limits,
    new_id: &mut impl FnMut() -> String,
) -> Result<ValidEvent, EventFault> {
    match serde_json::from_str(item.get()) {
        Ok(shape) => check_event(index, shape, chain, limits, new_id),
        Err(e) => {
            let mut errors = Vec::new();
            describe_misfit(item, chain, &mut |field: &str, message: String| {
                errors.push(EventError { index, field: field.to_string(), message });
            });
            if errors.is_empty() {
                // Only a JSON object repeating a field gets here: it fits no shape.
                errors.push(EventError { index, field: String::new(), message: e.to_string() });
            }
            Err(EventFault::Invalid(errors))
        }
    }
}

/// An event that has the shape of one, checked field by field and made ready to store.
fn check_event(
    index: usize,
    mut shape: EventShape<'_>,
    chain: &Chain,
    limits: &Limits,
    new_id: &mut impl FnMut() -> String,
) -> Result<ValidEvent, EventFault> {
    let mut errors = Vec::new();
    let mut fault = |field: &str, message: String| errors.push(EventError { index, field: field.to_string(), message });
    for (name, text) in [
        ("moduleName", &shape.module_name),
        ("eventName", &shape.event_name),
        ("primaryKey", &shape.primary_key),
        ("timestamp", &shape.timestamp),
        ("hotelId", &shape.hotel_id),
    ] {
        check_required(name, text, &mut fault);
    }
    for (name, text) in [
        ("publisherId", &shape.publisher_id),
        ("actionInstanceId", &shape.action_instance_id),
        ("uniqueEventId", &shape.unique_event_id),
    ] {
        if let Some(text) = text {
            check_optional(name, text, &mut fault);
        }
    }
    check_timestamp(&shape.timestamp, &mut fault);
    check_hotel(&shape.hotel_id, chain, &mut fault);
    for (i, entry) in shape.detail.iter().enumerate() {
        check_element_name(i, entry.element_name.as_deref(), &mut fault);
    }
    if !errors.is_empty() {
        return Err(EventFault::Invalid(errors));
    }
    let minted = shape.unique_event_id.is_none();
    let unique_event_id = match shape.unique_event_id.take() {
        Some(id) => id.into_owned(),
        None => new_id(),
    };
    let body = stored_body(&shape, &unique_event_id);
    if body.len() > limits.max_event_bytes {
        return Err(EventFault::TooLarge(format!(
            "event {index} is {} bytes; the limit is {} bytes",
            body.len(),
            limits.max_event_bytes
        )));
    }
    Ok(ValidEvent {
        unique_event_id,
        hotel_id: shape.hotel_id.into_owned(),
        module_name: shape.module_name.into_owned(),
        event_name: shape.event_name.into_owned(),
        body,
        minted,
    })
}

fn check_required(name: &str, text: &str, fault: &mut impl FnMut(&str, String)) {
    if text.trim().is_empty() {
        fault(name, format!("{name} must not be empty"));
    }
}

fn check_optional(name: &str, text: &str, fault: &mut impl FnMut(&str, String)) {
    if text.is_empty() {
        fault(name, format!("{name} must not be empty"));
    } else if text.chars().count() > MAX_ID_LEN {
        fault(name, format!("{name} must be at most {MAX_ID_LEN} characters"));
    }
}

fn check_timestamp(ts: &str, fault: &mut impl FnMut(&str, String)) {
    if !ts.trim().is_empty() && chrono::DateTime::parse_from_rfc3339(ts).is_err() {
        fault("timestamp", format!("timestamp {ts:?} is not an RFC 3339 date-time"));
    }
}

fn check_hotel(hotel: &str, chain: &Chain, fault: &mut impl FnMut(&str, String)) {
    if !hotel.trim().is_empty() && !chain.properties.contains(hotel) {
        fault("hotelId", format!("hotelId {hotel:?} is not a property of chain {:?}", chain.code));
    }
}

fn check_element_name(i: usize, name: Option<&str>, fault: &mut impl FnMut(&str, String)) {
    if name.is_none_or(str::is_empty) {
        fault(&format!("detail[{i}].elementName"), "elementName is required".into());
    }
}

/// Says, field by field, why an event does not fit [`EventShape`]: each wrong field once,
/// with the same rules as the fast path.
fn describe_misfit(item: &RawValue, chain: &Chain, fault: &mut impl FnMut(&str, String)) {
    let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(item.get()) else {
        fault("", "an event must be a JSON object".into());
        return;
    };
    for key in obj.keys() {
        if !REQUIRED.contains(&key.as_str()) && !OPTIONAL.contains(&key.as_str()) && key != "detail" {
            fault(key, format!("unknown field {key:?}"));
        }
    }
    for name in REQUIRED {
        match obj.get(name) {
            Some(Value::String(s)) => check_required(name, s, fault),
            Some(_) => fault(name, format!("{name} must be a string")),
            None => fault(name, format!("{name} is required")),
        }
    }
    for name in OPTIONAL {
        match obj.get(name) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => check_optional(name, s, fault),
            Some(_) => fault(name, format!("{name} must be a string")),
        }
    }
    if let Some(Value::String(ts)) = obj.get("timestamp") {
        check_timestamp(ts, fault);
    }
    if let Some(Value::String(hotel)) = obj.get("hotelId") {
        check_hotel(hotel, chain, fault);
    }
    match obj.get("detail") {
        None => fault("detail", "detail is required (an array, possibly empty)".into()),
        Some(Value::Array(entries)) => {
            for (i, entry) in entries.iter().enumerate() {
                check_detail(i, entry, fault);
            }
        }
        Some(_) => fault("detail", "detail must be an array".into()),
    }
}

fn check_detail(i: usize, entry: &Value, fault: &mut impl FnMut(&str, String)) {
    let field = format!("detail[{i}]");
    let Value::Object(d) = entry else {
        fault(&field, format!("{field} must be an object"));
        return;
    };
    for (key, value) in d {
        let ok = match key.as_str() {
            "elementSequence" => value.is_null() || value.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
            k if DETAIL_STRINGS.contains(&k) => value.is_null() || value.is_string(),
            _ => {
                fault(&format!("{field}.{key}"), format!("unknown field {key:?}"));
                continue;
            }
        };
        if !ok {
            let expected = if key == "elementSequence" { "a 32-bit integer" } else { "a string" };
            fault(&format!("{field}.{key}"), format!("{key} must be {expected}"));
        }
    }
    check_element_name(i, d.get("elementName").and_then(Value::as_str), fault);
}
