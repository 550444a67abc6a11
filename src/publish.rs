//! Publish batches (CONTRACT §5): the whole batch is checked before anything is stored, and
//! every bad event is reported with its index, so a publisher fixes a batch in one round.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::config::{Chain, Limits};

/// An event that passed validation, in the form the chain log stores.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidEvent {
    pub unique_event_id: String,
    pub hotel_id: String,
    pub module_name: String,
    pub event_name: String,
    /// The event as delivered to vendors (`EventHeader` without `metadata.offset`). Raw
    /// JSON, so it crosses to the chain's object verbatim rather than escaped as a string.
    pub body: Box<RawValue>,
}

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
}

impl BatchError {
    pub fn status(&self) -> u16 {
        match self {
            BatchError::TooLarge(_) => 413,
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
    let value: Value =
        serde_json::from_slice(body).map_err(|e| BatchError::Malformed(format!("the body is not valid JSON: {e}")))?;
    let items = match value {
        Value::Array(items) => items,
        Value::Object(_) => vec![value],
        _ => return Err(BatchError::Malformed("the body must be an event object or an array of events".into())),
    };
    if items.is_empty() {
        return Err(BatchError::Malformed("the batch holds no event".into()));
    }
    if items.len() > limits.max_events_per_batch {
        return Err(BatchError::TooLarge(format!(
            "the batch holds {} events; the limit is {}",
            items.len(),
            limits.max_events_per_batch
        )));
    }
    let mut errors = Vec::new();
    let mut events = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        match validate_event(index, item, chain, limits, &mut new_id) {
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

enum EventFault {
    TooLarge(String),
    Invalid(Vec<EventError>),
}

fn validate_event(
    index: usize,
    item: Value,
    chain: &Chain,
    limits: &Limits,
    new_id: &mut impl FnMut() -> String,
) -> Result<ValidEvent, EventFault> {
    let mut errors = Vec::new();
    let mut fault = |field: &str, message: String| errors.push(EventError { index, field: field.to_string(), message });
    let Value::Object(mut obj) = item else {
        fault("", "an event must be a JSON object".into());
        return Err(EventFault::Invalid(errors));
    };
    for key in obj.keys() {
        if !REQUIRED.contains(&key.as_str()) && !OPTIONAL.contains(&key.as_str()) && key != "detail" {
            fault(key, format!("unknown field {key:?}"));
        }
    }
    for name in REQUIRED {
        match obj.get(name) {
            Some(Value::String(s)) if !s.trim().is_empty() => {}
            Some(Value::String(_)) => fault(name, format!("{name} must not be empty")),
            Some(_) => fault(name, format!("{name} must be a string")),
            None => fault(name, format!("{name} is required")),
        }
    }
    for name in OPTIONAL {
        match obj.get(name) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if s.is_empty() => fault(name, format!("{name} must not be empty")),
            Some(Value::String(s)) if s.len() > MAX_ID_LEN => {
                fault(name, format!("{name} must be at most {MAX_ID_LEN} characters"))
            }
            Some(Value::String(_)) => {}
            Some(_) => fault(name, format!("{name} must be a string")),
        }
    }
    if let Some(Value::String(ts)) = obj.get("timestamp") {
        if !ts.trim().is_empty() && chrono::DateTime::parse_from_rfc3339(ts).is_err() {
            fault("timestamp", format!("timestamp {ts:?} is not an RFC 3339 date-time"));
        }
    }
    if let Some(Value::String(hotel)) = obj.get("hotelId") {
        if !hotel.trim().is_empty() && !chain.properties.contains(hotel) {
            fault("hotelId", format!("hotelId {hotel:?} is not a property of chain {:?}", chain.code));
        }
    }
    match obj.get("detail") {
        None => fault("detail", "detail is required (an array, possibly empty)".into()),
        Some(Value::Array(entries)) => {
            for (i, entry) in entries.iter().enumerate() {
                check_detail(i, entry, &mut fault);
            }
        }
        Some(_) => fault("detail", "detail must be an array".into()),
    }
    if !errors.is_empty() {
        return Err(EventFault::Invalid(errors));
    }
    let unique_event_id = match obj.get("uniqueEventId") {
        Some(Value::String(id)) => id.clone(),
        _ => new_id(),
    };
    obj.remove("uniqueEventId");
    obj.insert("metadata".into(), serde_json::json!({ "uniqueEventId": unique_event_id }));
    let text = |obj: &Map<String, Value>, k: &str| obj.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let hotel_id = text(&obj, "hotelId");
    let module_name = text(&obj, "moduleName");
    let event_name = text(&obj, "eventName");
    let body = serde_json::value::to_raw_value(&Value::Object(obj))
        .map_err(|e| EventFault::Invalid(vec![EventError { index, field: String::new(), message: e.to_string() }]))?;
    if body.get().len() > limits.max_event_bytes {
        return Err(EventFault::TooLarge(format!(
            "event {index} is {} bytes; the limit is {} bytes",
            body.get().len(),
            limits.max_event_bytes
        )));
    }
    Ok(ValidEvent { unique_event_id, hotel_id, module_name, event_name, body })
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
    if !matches!(d.get("elementName"), Some(Value::String(s)) if !s.is_empty()) {
        fault(&format!("{field}.elementName"), "elementName is required".into());
    }
}
