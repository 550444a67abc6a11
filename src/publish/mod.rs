//! Publish batches (docs/protocol.md, Publishing): the whole batch is checked before anything is stored, and
//! every bad event is reported with its index, so a publisher fixes a batch in one round.

use std::marker::PhantomData;

use serde::de::{Deserializer as _, IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::config::{Chain, Limits};
pub use crate::log::ValidEvent;
pub use rules::MAX_ID_LEN;
use rules::{
    check_element_name, check_hotel, check_module_name, check_optional, check_required, check_timestamp,
    describe_misfit,
};
use shape::{stored_body, EventShape};

mod rules;
mod shape;

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
    check_module_name(&shape.module_name, &mut fault);
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
