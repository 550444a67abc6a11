//! The rules a published event's fields must meet, each failure said for the field at
//! fault.

use serde_json::value::RawValue;
use serde_json::Value;

use crate::config::Chain;

pub const MAX_ID_LEN: usize = 128;
pub(super) const REQUIRED: [&str; 5] = ["moduleName", "eventName", "primaryKey", "timestamp", "hotelId"];
pub(super) const OPTIONAL: [&str; 3] = ["publisherId", "actionInstanceId", "uniqueEventId"];
pub(super) const DETAIL_STRINGS: [&str; 7] =
    ["elementName", "elementType", "elementRole", "newValue", "oldValue", "scopeFrom", "scopeTo"];

pub(super) fn check_required(name: &str, text: &str, fault: &mut impl FnMut(&str, String)) {
    if text.trim().is_empty() {
        fault(name, format!("{name} must not be empty"));
    }
}

pub(super) fn check_optional(name: &str, text: &str, fault: &mut impl FnMut(&str, String)) {
    if text.is_empty() {
        fault(name, format!("{name} must not be empty"));
    } else if text.chars().count() > MAX_ID_LEN {
        fault(name, format!("{name} must be at most {MAX_ID_LEN} characters"));
    }
}

pub(super) fn check_timestamp(ts: &str, fault: &mut impl FnMut(&str, String)) {
    if !ts.trim().is_empty() && chrono::DateTime::parse_from_rfc3339(ts).is_err() {
        fault("timestamp", format!("timestamp {ts:?} is not an RFC 3339 date-time"));
    }
}

pub(super) fn check_hotel(hotel: &str, chain: &Chain, fault: &mut impl FnMut(&str, String)) {
    if !hotel.trim().is_empty() && !chain.properties.contains(hotel) {
        fault("hotelId", format!("hotelId {hotel:?} is not a property of chain {:?}", chain.code));
    }
}

/// A module name keys the entities' state with the hotel and primary key, joined by a control
/// character (`log::entity::EntityKey::storage_key`): it holds none.
pub(super) fn check_module_name(name: &str, fault: &mut impl FnMut(&str, String)) {
    if name.chars().any(char::is_control) {
        fault("moduleName", "moduleName must not contain control characters".into());
    }
}

pub(super) fn check_element_name(i: usize, name: Option<&str>, fault: &mut impl FnMut(&str, String)) {
    if name.is_none_or(str::is_empty) {
        fault(&format!("detail[{i}].elementName"), "elementName is required".into());
    }
}

/// Says, field by field, why an event does not fit [`EventShape`]: each wrong field once,
/// with the same rules as the fast path.
pub(super) fn describe_misfit(item: &RawValue, chain: &Chain, fault: &mut impl FnMut(&str, String)) {
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
    if let Some(Value::String(module)) = obj.get("moduleName") {
        check_module_name(module, fault);
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

pub(super) fn check_detail(i: usize, entry: &Value, fault: &mut impl FnMut(&str, String)) {
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
