//! An event as the publish API reads it, borrowed from the request body, and the stored
//! body written from it.

use std::borrow::Cow;
use std::fmt::Write as _;

use serde::Deserialize;

/// A well-formed event, borrowed from the request body. Most batches are valid, and this
/// checks their shape and re-serializes them without building a JSON tree per event (the
/// tree cost ~0.5 ms of a 100-event publish). An event that does not fit is judged again
/// as a JSON value, field by field, only to say precisely what is wrong with it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct EventShape<'a> {
    #[serde(borrow)]
    pub(super) module_name: Cow<'a, str>,
    #[serde(borrow)]
    pub(super) event_name: Cow<'a, str>,
    #[serde(borrow)]
    pub(super) primary_key: Cow<'a, str>,
    #[serde(borrow)]
    pub(super) timestamp: Cow<'a, str>,
    #[serde(borrow)]
    pub(super) hotel_id: Cow<'a, str>,
    #[serde(borrow)]
    pub(super) detail: Vec<DetailShape<'a>>,
    #[serde(borrow, default)]
    pub(super) publisher_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) action_instance_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) unique_event_id: Option<Cow<'a, str>>,
}

/// An `EventDetail` entry; absent and `null` fields are both left out of the stored body
/// (delivery projects a missing field as `null`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct DetailShape<'a> {
    #[serde(borrow, default)]
    pub(super) element_name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) element_role: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(super) element_sequence: Option<i32>,
    #[serde(borrow, default)]
    pub(super) element_type: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) new_value: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) old_value: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) scope_from: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) scope_to: Option<Cow<'a, str>>,
}

/// The stored body: the event as vendors receive it, its id moved into `metadata`, absent
/// and `null` fields left out, keys in alphabetical order: what `serde_json` writes for it,
/// byte for byte, written by hand because this runs for every event published (serde's
/// map and escaping machinery took a third of an event's validation under the profiler).
pub(super) fn stored_body(shape: &EventShape<'_>, unique_event_id: &str) -> String {
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
    crate::text::write_json_str(&mut out, unique_event_id);
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
    crate::text::write_json_str(out, value);
}
