//! The subscription spec as it travels from a gateway to a chain object: its text form,
//! what older gateways leave out, and the grant check on every attach.

mod common;

use std::collections::BTreeSet;

use pms_events::log::TurnBudget;
use pms_events::log::{EventFilter, MemoryStore, OffsetLog, ValidEvent};
use pms_events::stream::pump::{pump, Cursor, EventCache};
use pms_events::stream::spec::*;
use pms_events::stream::subscribe::still_granted;
use pms_events::stream::wire::{frame_cost, WINDOW};
use serde_json::{json, Value};

/// Projects the offset only (and an event's `pad`, for large frames).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct OffsetOnly;

impl Projector for OffsetOnly {
    fn project_to_string(&self, event: &Value, _delta: bool, out: &mut String) {
        let projected = match event.get("pad") {
            Some(pad) => json!({"offset": event["metadata"]["offset"], "pad": pad}),
            None => json!({"offset": event["metadata"]["offset"]}),
        };
        out.push_str(&projected.to_string());
    }
}

fn spec(start: Start) -> SubscriptionSpec<OffsetOnly> {
    SubscriptionSpec { start, ..common::subscription(EventFilter::default(), OffsetOnly) }
}

/// Events whose frames carry `pad` bytes more.
fn publish_padded(log: &OffsetLog<MemoryStore>, count: usize, pad: usize) {
    let first = log.head().unwrap() as usize;
    let batch: Vec<ValidEvent> = (first..first + count)
        .map(|i| {
            let body =
                json!({"metadata": {"uniqueEventId": format!("u{i}")}, "hotelId": "TTE01", "pad": "x".repeat(pad)});
            ValidEvent {
                unique_event_id: format!("u{i}"),
                hotel_id: "TTE01".into(),
                module_name: "Reservation".into(),
                event_name: "CHECKIN".into(),
                body: body.to_string(),
                minted: false,
            }
        })
        .collect();
    log.append(&batch, 0).unwrap();
}

/// A gateway built before window units counts frames and sends specs without `window`
/// (an isolate may outlive a deploy that restarted the objects): the object counts frames
/// for it, so the 128 frames that gateway waits for before acknowledging always come.
#[test]
fn a_gateway_that_counts_frames_is_served_by_frames() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let current = spec(Start::At(1));
    let mut json: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(encode_spec(&current).unwrap()).unwrap()).unwrap();
    json.as_object_mut().unwrap().remove("window").expect("today's gateways say what they count");
    // As the object reads the attach header of an older gateway.
    let older: SubscriptionSpec<OffsetOnly> = decode_spec(&URL_SAFE_NO_PAD.encode(json.to_string())).unwrap();
    assert_eq!(older.window, WindowCount::Frames);
    let log = OffsetLog::new(MemoryStore::default());
    publish_padded(&log, 600, 8 * 1024);
    let frames_sent = |s: &SubscriptionSpec<OffsetOnly>| {
        let mut cursor = Cursor { next: 1, inflight: 0 };
        let mut budget = TurnBudget { pages: usize::MAX, bytes: usize::MAX };
        let pumped =
            pump(&log, s, &SharingKeys::of(s), &mut cursor, 600, WINDOW, &mut EventCache::default(), &mut budget)
                .unwrap();
        (pumped.frames, cursor.inflight)
    };
    assert_eq!(frames_sent(&older), (WINDOW, WINDOW), "a frame each");
    let cost = frame_cost(&"x".repeat(8 * 1024 + 30));
    let (frames, inflight) = frames_sent(&current);
    assert_eq!(frames, WINDOW.div_ceil(cost), "sized by bytes");
    assert_eq!(inflight, frames * cost);
}

#[test]
fn an_attach_is_refused_once_the_client_no_longer_holds_what_it_streams() {
    let config = common::demo_config();
    let mut s = spec(Start::At(1));
    assert_eq!(still_granted(&config, Some("TTE"), &s), Ok(()));
    assert_eq!(still_granted(&config, None, &s), Ok(()), "an old gateway names no chain: the client is checked");
    assert!(still_granted(&config, Some("OTH"), &s).unwrap_err().contains("chain is no longer granted"));
    s.app_key = "APPKEY002".into();
    assert!(still_granted(&config, Some("TTE"), &s).unwrap_err().contains("no longer configured"));
    // client-app-002 holds TTE for TTE01 only.
    let mut s = spec(Start::At(1));
    s.client_id = "client-app-002".into();
    s.app_key = "APPKEY002".into();
    s.filter.properties = Some(BTreeSet::from(["TTE01".to_string()]));
    assert_eq!(still_granted(&config, Some("TTE"), &s), Ok(()));
    s.filter.properties = Some(BTreeSet::from(["TTE01".to_string(), "TTE02".to_string()]));
    assert!(still_granted(&config, Some("TTE"), &s).unwrap_err().contains("property"));
    s.filter.properties = None;
    assert!(still_granted(&config, Some("TTE"), &s).is_err(), "all properties is more than the grant");
}

#[test]
fn the_spec_header_round_trips_and_rejects_anything_else() {
    let s = spec(Start::Resume);
    let header = encode_spec(&s).unwrap();
    assert!(header.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "a header value");
    let back: SubscriptionSpec<OffsetOnly> = decode_spec(&header).unwrap();
    assert_eq!(encode_spec(&back).unwrap(), header);
    assert!(decode_spec::<OffsetOnly>("not base64!").is_none());
    assert!(decode_spec::<OffsetOnly>(&header[..header.len() / 2]).is_none());
}

#[test]
fn the_attach_answer_and_the_active_query_travel_as_shared_types() {
    use pms_events::rpc::{chain, ActiveQuery, AttachedAt};
    assert_eq!(AttachedAt::from_headers(Some("42"), Some("7")), AttachedAt { start: 42, gap: Some(7) });
    assert_eq!(AttachedAt::from_headers(Some("42"), None), AttachedAt { start: 42, gap: None });
    assert_eq!(AttachedAt::from_headers(None, Some("x")), AttachedAt { start: 0, gap: None });
    let query = ActiveQuery { app_key: "APP KEY&1".into(), connection: "c=1".into() };
    let path = query.path();
    let (route, q) = path.split_once('?').unwrap();
    assert_eq!(route, chain::ACTIVE);
    let back: Vec<(String, String)> = form_urlencoded::parse(q.as_bytes()).into_owned().collect();
    assert_eq!(back, [("appKey".into(), "APP KEY&1".into()), ("connection".into(), "c=1".into())]);
}

/// A gateway built before binary batches reads text messages only (its listener ignores
/// anything else) and sends specs without `batches`: the object sends it text, so an isolate
/// that outlives a deploy keeps streaming.
#[test]
fn a_gateway_that_reads_text_only_is_sent_text() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let current = spec(Start::At(1));
    let mut json: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(encode_spec(&current).unwrap()).unwrap()).unwrap();
    assert_eq!(json["batches"], "binary", "today's gateways say they read binary batches");
    json.as_object_mut().unwrap().remove("batches");
    let older: SubscriptionSpec<OffsetOnly> = decode_spec(&URL_SAFE_NO_PAD.encode(json.to_string())).unwrap();
    assert_eq!(older.batches, BatchEncoding::Text);
}
