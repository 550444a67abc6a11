//! Start resolution, filters, the window and batch framing of subscription delivery.

mod common;

use common::{parse_ack, parse_batch};
use pms_events::chain::attached::SocketState;
use pms_events::log::read::{OutOfRange, PAGE, PAGE_BYTES};
use pms_events::log::{EventFilter, Gap, LogBounds, MemoryStore, OffsetLog, TurnBudget};
use pms_events::publish::ValidEvent;
use pms_events::stream::protocol::{frame_overhead, render_frame};
use pms_events::stream::pump::*;
use pms_events::stream::spec::*;
use pms_events::stream::wire::*;
use serde_json::{json, Value};

/// Projects the offset only: enough to see what was delivered.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct OffsetOnly;

impl Projector for OffsetOnly {
    fn project_to_string(&self, event: &Value, _delta: bool, out: &mut String) {
        out.push_str(&json!({"offset": event["metadata"]["offset"], "hotel": event["hotelId"]}).to_string());
    }
}

fn stats(head: u64, oldest: Option<u64>) -> LogBounds {
    LogBounds { head_offset: head, oldest_offset: oldest }
}

#[test]
fn start_at_offset_inclusive_with_gap_and_range_checks() {
    assert_eq!(resolve_start(Start::At(5), &stats(10, Some(1)), None, None, 0), Ok((5, None)));
    assert_eq!(
        resolve_start(Start::At(11), &stats(10, Some(1)), None, None, 0),
        Ok((11, None)),
        "one past the head: live"
    );
    assert_eq!(
        resolve_start(Start::At(12), &stats(10, Some(1)), None, None, 0),
        Err(OutOfRange { requested: 12, head: 10 })
    );
    assert_eq!(
        resolve_start(Start::At(3), &stats(10, Some(7)), None, None, 0),
        Ok((7, Some(Gap { requested: 3, resumed_at: 7 })))
    );
    assert_eq!(resolve_start(Start::At(0), &stats(10, Some(1)), None, None, 0), Ok((1, None)));
    assert_eq!(resolve_start(Start::At(1), &stats(0, None), None, None, 0), Ok((1, None)));
    // Everything expired: the gap resumes at the next offset to be written.
    assert_eq!(
        resolve_start(Start::At(2), &stats(5, None), None, None, 0),
        Ok((6, Some(Gap { requested: 2, resumed_at: 6 })))
    );
}

#[test]
fn start_highest_and_resume() {
    assert_eq!(resolve_start(Start::Highest, &stats(10, Some(1)), None, None, 0), Ok((10, None)));
    assert_eq!(resolve_start(Start::Highest, &stats(0, None), None, None, 0), Ok((1, None)));
    let day = SAVED_CURSOR_TTL_MS;
    assert_eq!(resolve_start(Start::Resume, &stats(10, Some(1)), Some((6, 1000)), None, 1000 + day - 1), Ok((7, None)));
    assert_eq!(
        resolve_start(Start::Resume, &stats(10, Some(1)), Some((6, 1000)), None, 1000 + day),
        Ok((11, None)),
        "older than 24 h: live"
    );
    assert_eq!(resolve_start(Start::Resume, &stats(10, Some(1)), None, None, 5), Ok((11, None)));
}

fn log_with(hotels: &[&str]) -> OffsetLog<MemoryStore> {
    let log = OffsetLog::new(MemoryStore::default());
    let batch: Vec<ValidEvent> = hotels
        .iter()
        .enumerate()
        .map(|(i, h)| ValidEvent {
            unique_event_id: format!("u{i}"),
            hotel_id: h.to_string(),
            module_name: if i % 2 == 0 { "Reservation".into() } else { "Room".into() },
            event_name: "CHECKIN".into(),
            body: serde_json::to_string(&json!({"metadata": {"uniqueEventId": format!("u{i}")}, "hotelId": h}))
                .unwrap(),
            minted: false,
        })
        .collect();
    log.append(&batch, 0).unwrap();
    log
}

fn spec(filter: EventFilter) -> SubscriptionSpec<OffsetOnly> {
    spec_with(filter, OffsetOnly)
}

fn spec_with<P>(filter: EventFilter, plan: P) -> SubscriptionSpec<P> {
    common::subscription(filter, plan)
}

/// A pump with no turn budget: what the window alone allows.
fn pump_unbounded<P: Projector + serde::Serialize>(
    log: &OffsetLog<MemoryStore>,
    s: &SubscriptionSpec<P>,
    key: &SharingKeys,
    cursor: &mut Cursor,
    head: u64,
    window: u32,
    cache: &mut EventCache,
) -> Result<Vec<String>, pms_events::log::StoreError> {
    let mut budget = TurnBudget { pages: usize::MAX, bytes: usize::MAX };
    pump(log, s, key, cursor, head, window, cache, &mut budget).map(|p| p.messages.clone())
}

/// Test convenience: exactly one batch expected.
trait OneBatch {
    fn only_batch(self) -> String;
}

impl OneBatch for Vec<String> {
    fn only_batch(self) -> String {
        assert_eq!(self.len(), 1, "one batch expected");
        self.into_iter().next().unwrap()
    }
}

fn delivered(batch: &str) -> Vec<u64> {
    parse_batch(batch).unwrap().frames.iter().map(|(o, _)| *o).collect()
}

#[test]
fn pump_respects_the_window_then_continues_after_acks() {
    let log = log_with(&["TTE01"; 10]);
    let s = spec(EventFilter::default());
    let mut cursor = Cursor { next: 1, inflight: 0 };
    let mut cache = EventCache::default();
    let b = pump_unbounded(&log, &s, &SharingKeys::of(&s), &mut cursor, 10, 4, &mut cache).unwrap().only_batch();
    assert_eq!(delivered(&b), vec![1, 2, 3, 4]);
    assert_eq!(parse_batch(&b).unwrap().through, 4);
    assert!(
        pump_unbounded(&log, &s, &SharingKeys::of(&s), &mut cursor, 10, 4, &mut cache).unwrap().is_empty(),
        "window full: nothing more"
    );
    let (count, through) = parse_ack(&ack_message(4, 4)).unwrap();
    assert_eq!((count, through), (4, 4));
    cursor.inflight -= count;
    let b = pump_unbounded(&log, &s, &SharingKeys::of(&s), &mut cursor, 10, 4, &mut cache).unwrap().only_batch();
    assert_eq!(delivered(&b), vec![5, 6, 7, 8]);
    cursor.inflight = 0;
    let b = pump_unbounded(&log, &s, &SharingKeys::of(&s), &mut cursor, 10, 4, &mut cache).unwrap().only_batch();
    assert_eq!(delivered(&b), vec![9, 10]);
    assert_eq!(cursor.next, 11);
    assert!(
        pump_unbounded(&log, &s, &SharingKeys::of(&s), &mut cursor, 10, 4, &mut cache).unwrap().is_empty(),
        "caught up"
    );
}

#[test]
fn filters_skip_events_but_advance_the_cursor() {
    let log = log_with(&["TTE01", "TTE02", "TTE01", "TTE02", "TTE02"]);
    let filter = EventFilter { properties: Some(["TTE01".to_string()].into()), ..Default::default() };
    let s = spec(filter);
    let mut cursor = Cursor { next: 1, inflight: 0 };
    let b = pump_unbounded(&log, &s, &SharingKeys::of(&s), &mut cursor, 5, 100, &mut EventCache::default())
        .unwrap()
        .only_batch();
    assert_eq!(delivered(&b), vec![1, 3]);
    assert_eq!(parse_batch(&b).unwrap().through, 5, "through covers the skipped tail");
    assert_eq!(cursor.next, 6);
    let by_module = EventFilter { module_names: Some(["Room".to_string()].into()), ..Default::default() };
    let mut cursor = Cursor { next: 1, inflight: 0 };
    let b = pump_unbounded(
        &log,
        &spec(by_module.clone()),
        &SharingKeys::of(&spec(by_module)),
        &mut cursor,
        5,
        100,
        &mut EventCache::default(),
    )
    .unwrap()
    .only_batch();
    assert_eq!(delivered(&b), vec![2, 4]);
}

#[test]
fn frames_are_graphql_ws_next_messages_and_a_gap_is_added_to_one() {
    let log = log_with(&["TTE01", "TTE02"]);
    let s = spec(EventFilter::default());
    let mut cursor = Cursor { next: 1, inflight: 0 };
    let b = pump_unbounded(&log, &s, &SharingKeys::of(&s), &mut cursor, 2, 10, &mut EventCache::default())
        .unwrap()
        .only_batch();
    let batch = parse_batch(&b).unwrap();
    assert_eq!(batch.gap, None);
    // The object's payload has no operation id: the gateway renders the frame around it.
    let payload: Value = serde_json::from_str(batch.frames[0].1).unwrap();
    assert_eq!(payload, json!({"data": {"newEvent": {"offset": "1", "hotel": "TTE01"}}}));
    let start = pms_events::stream::protocol::next_start(&s.id);
    let mut frame = String::new();
    render_frame(&start, batch.frames[0].1, None, &mut frame);
    let first: Value = serde_json::from_str(&frame).unwrap();
    assert_eq!(
        first,
        json!({"id": "sub-1", "type": "next", "payload": {"data": {"newEvent": {"offset": "1", "hotel": "TTE01"}}}})
    );
    assert_eq!(frame.len(), frame_overhead(&s.id) + batch.frames[0].1.len(), "the frame limit counts the id");
    frame.clear();
    render_frame(&start, batch.frames[0].1, Some(Gap { requested: 0, resumed_at: 1 }), &mut frame);
    let with: Value = serde_json::from_str(&frame).unwrap();
    assert_eq!(
        with,
        json!({"id": "sub-1", "type": "next", "payload": {"data": {"newEvent": {"offset": "1", "hotel": "TTE01"}}, "extensions": {"gap": {"requested": "0", "resumedAt": "1"}}}})
    );
}

#[test]
fn retention_overtaking_a_cursor_between_pumps_is_reported_before_the_next_frame() {
    let log = log_with(&["TTE01"; 10]);
    let s = spec(EventFilter::default());
    let mut cursor = Cursor { next: 1, inflight: 0 };
    let mut cache = EventCache::default();
    let b = pump_unbounded(&log, &s, &SharingKeys::of(&s), &mut cursor, 10, 2, &mut cache).unwrap().only_batch();
    assert_eq!(delivered(&b), vec![1, 2]);
    // Retention deletes 3..5 before the subscriber acknowledges.
    log.store().delete(3..=5);
    cursor.inflight = 0;
    let b = pump_unbounded(&log, &s, &SharingKeys::of(&s), &mut cursor, 10, 2, &mut EventCache::default())
        .unwrap()
        .only_batch();
    let batch = parse_batch(&b).unwrap();
    assert_eq!(batch.gap, Some(3), "the hole is reported from the first missing offset");
    assert_eq!(delivered(&b), vec![6, 7]);
    // The gateway adds it to the first frame it forwards: offset 6.
    let mut relay = pms_events::stream::relay::Relay::new();
    relay.on_attached(1, None, 0);
    let pms_events::stream::relay::Step::Forward { frames, .. } = relay.on_message(&b) else { panic!() };
    let start = pms_events::stream::protocol::next_start(&s.id);
    let rendered = |i: usize| {
        let mut frame = String::new();
        frames[i].render(&start, &mut frame);
        serde_json::from_str::<Value>(&frame).unwrap()
    };
    let first = rendered(0);
    assert_eq!(first["payload"]["extensions"]["gap"], json!({"requested": "3", "resumedAt": "6"}));
    let second = rendered(1);
    assert_eq!(second["payload"].get("extensions"), None, "once only");
}

#[test]
fn retention_that_emptied_the_log_under_a_cursor_is_reported_without_a_frame() {
    let log = log_with(&["TTE01"; 5]);
    let s = spec(EventFilter::default());
    let mut cursor = Cursor { next: 2, inflight: 0 };
    log.store().delete(1..=5);
    let b = pump_unbounded(&log, &s, &SharingKeys::of(&s), &mut cursor, 5, 10, &mut EventCache::default())
        .unwrap()
        .only_batch();
    let batch = parse_batch(&b).unwrap();
    assert_eq!((batch.through, batch.gap, batch.frames.len()), (5, Some(2), 0));
    assert_eq!(cursor.next, 6);
}

#[test]
fn a_filter_matching_nothing_reads_at_most_the_budget_per_turn_and_reports_progress() {
    let log = OffsetLog::new(MemoryStore::default());
    let batch: Vec<ValidEvent> = (0..10_000)
        .map(|i| ValidEvent {
            unique_event_id: format!("u{i}"),
            hotel_id: "TTE01".into(),
            module_name: "Reservation".into(),
            event_name: "CHECKIN".into(),
            body: format!(r#"{{"metadata":{{"uniqueEventId":"u{i}"}},"hotelId":"TTE01"}}"#),
            minted: false,
        })
        .collect();
    log.append(&batch, 0).unwrap();
    let none = EventFilter { event_names: Some(["NONE".to_string()].into()), ..Default::default() };
    let s = spec(none);
    let key = SharingKeys::of(&s);
    let mut cursor = Cursor { next: 1, inflight: 0 };
    let mut turns = 0;
    let mut last_through = 0;
    while cursor.next <= 10_000 {
        turns += 1;
        let before = log.store().reads.get();
        let mut budget = TurnBudget::PER_TURN;
        let out = pump(&log, &s, &key, &mut cursor, 10_000, 512, &mut EventCache::default(), &mut budget).unwrap();
        let reads = log.store().reads.get() - before;
        assert!(reads <= TurnBudget::PER_TURN.pages, "turn {turns}: {reads} reads");
        assert!(out.cut_short || cursor.next > 10_000);
        // Each turn reports how far it got, with no frame, so the gateway's cursor follows.
        let b = out.messages.first().cloned().expect("a progress batch");
        let parsed = parse_batch(&b).unwrap();
        assert!(parsed.frames.is_empty());
        assert_eq!(out.frames, 0, "a progress batch is not a delivery");
        assert_eq!(parsed.through, cursor.next - 1);
        assert!(parsed.through > last_through);
        last_through = parsed.through;
        assert!(turns < 100, "the scan must finish");
    }
    assert_eq!(turns, 10_000usize.div_ceil(PAGE * TurnBudget::PER_TURN.pages));
    assert_eq!(last_through, 10_000);
}

#[test]
fn pages_already_read_in_the_turn_cost_no_budget() {
    let log = log_with(&["TTE01"; 50]);
    let s = spec(EventFilter::default());
    let key = SharingKeys::of(&s);
    let mut cache = EventCache::default();
    let mut budget = TurnBudget { pages: 1, bytes: usize::MAX };
    for _ in 0..20 {
        let mut cursor = Cursor { next: 1, inflight: 0 };
        let out = pump(&log, &s, &key, &mut cursor, 50, 512, &mut cache, &mut budget).unwrap();
        assert_eq!(delivered(&out.messages[0]).len(), 50, "every subscriber of the turn is served");
        assert_eq!(out.frames, 50, "the delivery count is the frames sent");
    }
    assert_eq!(log.store().reads.get(), 1, "one read for twenty subscribers");
}

#[test]
fn a_frame_over_the_limit_ends_the_subscription_with_an_error_not_a_huge_message() {
    let log = log_with(&["TTE01", "TTE01"]);
    #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Huge;
    impl Projector for Huge {
        fn project_to_string(&self, event: &Value, _delta: bool, out: &mut String) {
            let n = if event["metadata"]["offset"] == "2" { MAX_NEXT_FRAME_BYTES } else { 10 };
            out.push_str(&serde_json::to_string(&"x".repeat(n)).unwrap());
        }
    }
    let s = spec_with(EventFilter::default(), Huge);
    let mut cursor = Cursor { next: 1, inflight: 0 };
    let mut budget = TurnBudget::PER_TURN;
    let out =
        pump(&log, &s, &SharingKeys::of(&s), &mut cursor, 2, 10, &mut EventCache::default(), &mut budget).unwrap();
    assert!(out.failed);
    assert_eq!(out.messages.len(), 2, "{:?}", out.messages.iter().map(|m| m.len()).collect::<Vec<_>>());
    assert_eq!(delivered(&out.messages[0]), vec![1], "what fits is delivered first");
    let Some(DeliveryMessage::Failed { code, message }) = DeliveryMessage::decode(&out.messages[1]) else { panic!() };
    assert_eq!(code, "FRAME_TOO_LARGE");
    assert!(message.contains("offset 2"), "{message}");
    assert!(out.messages.iter().all(|m| m.len() < 1 << 20));
}

#[test]
fn pages_larger_than_one_read_are_followed() {
    let hotels = vec!["TTE01"; PAGE * 2 + 3];
    let log = log_with(&hotels);
    let mut cursor = Cursor { next: 1, inflight: 0 };
    let b = pump_unbounded(
        &log,
        &spec(EventFilter::default()),
        &SharingKeys::of(&spec(EventFilter::default())),
        &mut cursor,
        hotels.len() as u64,
        10_000,
        &mut EventCache::default(),
    )
    .unwrap()
    .only_batch();
    assert_eq!(delivered(&b), (1..=hotels.len() as u64).collect::<Vec<_>>());
}

#[test]
fn spec_round_trips_as_json() {
    let s = spec(EventFilter { event_names: Some(["CHECKIN".to_string()].into()), ..Default::default() });
    let back: SubscriptionSpec<OffsetOnly> = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
    assert_eq!(back, s);
}

/// Projects the whole event, so frames are as large as the events.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Everything;

impl Projector for Everything {
    fn project_to_string(&self, event: &Value, _delta: bool, out: &mut String) {
        out.push_str(&event.to_string());
    }
}

/// A log of `count` events of ~60 KiB each.
fn log_of_large_events(count: usize) -> OffsetLog<MemoryStore> {
    let log = OffsetLog::new(MemoryStore::default());
    let big = "x".repeat(60 * 1024);
    let batch: Vec<ValidEvent> = (0..count)
        .map(|i| ValidEvent {
            body: serde_json::to_string(
                &json!({"metadata": {"uniqueEventId": format!("u{i}")}, "hotelId": "TTE01", "note": big}),
            )
            .unwrap(),
            ..event(&format!("u{i}"), "TTE01")
        })
        .collect();
    log.append(&batch, 0).unwrap();
    log
}

#[test]
fn large_events_are_split_into_batches_under_the_message_limit_and_pages_by_bytes() {
    let log = log_of_large_events(40);
    let s = spec_with(EventFilter::default(), Everything);
    let mut cursor = Cursor { next: 1, inflight: 0 };
    // A window wide enough for all 40 (it counts their bytes too: WINDOW takes 8 of them).
    let batches =
        pump_unbounded(&log, &s, &SharingKeys::of(&s), &mut cursor, 40, u32::MAX, &mut EventCache::default()).unwrap();
    assert!(batches.len() >= 4, "{} batches", batches.len());
    let mut all = Vec::new();
    let mut last_through = 0;
    for b in &batches {
        assert!(b.len() <= MAX_BATCH_BYTES + 70 * 1024, "batch of {} bytes", b.len());
        let parsed = parse_batch(b).unwrap();
        assert!(parsed.through > last_through);
        last_through = parsed.through;
        all.extend(parsed.frames.iter().map(|(o, _)| *o));
    }
    assert_eq!(all, (1..=40).collect::<Vec<u64>>(), "every event once, in order, across pages and batches");
    assert_eq!(last_through, 40);
}

/// Every (cursor, room) a turn may meet, pumped once alone (a cache of its own) and once
/// after other subscriptions alike were served in the same turn: the messages and the
/// cursor must be the same either way, and alike ones must get the very same messages.
#[test]
fn subscriptions_alike_share_one_pump_per_turn_and_get_exactly_what_they_would_alone() {
    let log = log_with(&["TTE01", "TTE02", "TTE01", "TTE01", "TTE02", "TTE01", "TTE02", "TTE02"]);
    let head = 8;
    let window = 4;
    let only_tte01 = EventFilter { properties: Some(["TTE01".to_string()].into()), ..Default::default() };
    let specs = [spec(EventFilter::default()), spec(only_tte01)];
    let mut shared = EventCache::default();
    let mut shared_budget = TurnBudget { pages: usize::MAX, bytes: usize::MAX };
    let mut served = Vec::new();
    for s in &specs {
        for next in [1, 3, 6, 9] {
            for inflight in 0..=window {
                let start = Cursor { next, inflight };
                let keys = SharingKeys::of(s);
                let mut alone = start;
                let mut budget = TurnBudget { pages: usize::MAX, bytes: usize::MAX };
                let expected =
                    pump(&log, s, &keys, &mut alone, head, window, &mut EventCache::default(), &mut budget).unwrap();
                let mut cursor = start;
                let got = pump(&log, s, &keys, &mut cursor, head, window, &mut shared, &mut shared_budget).unwrap();
                assert_eq!(*got, *expected, "{start:?}");
                assert_eq!(cursor, alone, "{start:?}");
                served.push((keys.delivery.clone(), start, got));
            }
        }
    }
    let pumped = |filter: usize, next: u64, inflight: u32| {
        let key = SharingKeys::of(&specs[filter]).delivery;
        served.iter().find(|(k, c, _)| *k == key && *c == Cursor { next, inflight }).unwrap().2.clone()
    };
    let same = |a: &std::rc::Rc<Pumped>, b: &std::rc::Rc<Pumped>| std::rc::Rc::ptr_eq(a, b);
    // The filtered subscription gets one frame from 6 (offset 6; 7 and 8 are another hotel).
    // Rooms 4 and 2 both exceed it: one pump. Room 1 is filled by it, which leaves the
    // cursor at 7 instead of past the head: a pump of its own.
    assert_eq!(pumped(1, 6, 0).frames, 1);
    assert!(same(&pumped(1, 6, 0), &pumped(1, 6, 2)));
    assert!(!same(&pumped(1, 6, 0), &pumped(1, 6, 3)));
    // Caught up: nothing to send, shared by every room.
    assert!(same(&pumped(0, 9, 0), &pumped(0, 9, 3)));
    // Different filters never share.
    assert!(!same(&pumped(0, 1, 0), &pumped(1, 1, 0)));
}

#[test]
fn the_delivery_key_separates_what_changes_the_messages_and_nothing_else() {
    let base = spec(EventFilter::default());
    let keys = SharingKeys::of(&base);
    // Another vendor's operation with an id of the same length: the same messages.
    let other = SubscriptionSpec { id: "sub-2".into(), app_key: "APPKEY002".into(), ..base.clone() };
    assert_eq!(SharingKeys::of(&other), keys);
    // The frame limit counts the id, so its length is part of the key; so are the response
    // key, the filter and delta.
    let longer = SubscriptionSpec { id: "sub-10".into(), ..base.clone() };
    let aliased = SubscriptionSpec { response_key: "e".into(), ..base.clone() };
    let filtered = spec(EventFilter { event_names: Some(["CHECKIN".to_string()].into()), ..Default::default() });
    let delta = SubscriptionSpec { delta: true, ..base.clone() };
    // What the window counts decides where a pump stops.
    let counting_frames = SubscriptionSpec { window: WindowCount::Frames, ..base.clone() };
    for different in [longer, aliased, filtered, delta.clone(), counting_frames] {
        assert_ne!(SharingKeys::of(&different).delivery, keys.delivery, "{different:?}");
    }
    assert_eq!(SharingKeys::of(&SubscriptionSpec { response_key: "e".into(), ..base }).projection, keys.projection);
    assert_ne!(SharingKeys::of(&delta).projection, keys.projection);
}

#[test]
fn the_socket_state_survives_its_string_form_and_garbage_is_not_read_as_one() {
    let state =
        SocketState { key: "k3y with space".into(), cursor: Cursor { next: 9_007_199_254_740_991, inflight: 512 } };
    assert_eq!(SocketState::decode(&state.encode()), Some(state));
    for garbage in ["", "1", "1 2", "1 2 ", "x 2 k", "1 -2 k", "{\"key\":\"k\"}"] {
        assert_eq!(SocketState::decode(garbage), None, "{garbage:?}");
    }
}

fn event(id: &str, hotel: &str) -> ValidEvent {
    ValidEvent {
        unique_event_id: id.into(),
        hotel_id: hotel.into(),
        module_name: "Room".into(),
        event_name: "CHECKIN".into(),
        body: serde_json::to_string(&json!({"metadata": {"uniqueEventId": id}, "hotelId": hotel})).unwrap(),
        minted: false,
    }
}

/// Appends `batch` as the chain object does, recording what was stored.
fn append_recording(log: &OffsetLog<MemoryStore>, recent: &mut RecentEvents, batch: &[ValidEvent], at: u64) {
    let head_before = log.head().unwrap();
    let offsets = log.append(batch, at).unwrap();
    recent.record(head_before, batch, &offsets, at);
}

#[test]
fn a_fan_out_serves_what_was_just_stored_from_memory_exactly_as_from_storage() {
    let log = log_with(&["TTE01", "TTE02", "TTE01"]);
    let mut recent = RecentEvents::default();
    // Two publishes since the last fan-out; the second repeats an id of the log and one of
    // its own batch, which get their first offsets and are not stored again.
    append_recording(&log, &mut recent, &[event("a", "TTE01"), event("b", "TTE02")], 7);
    append_recording(&log, &mut recent, &[event("u0", "TTE01"), event("c", "TTE01"), event("c", "TTE01")], 8);
    let head = log.head().unwrap();
    assert_eq!(head, 6);
    let page = recent.take_page(head).expect("the events since the last fan-out reach the head");
    assert_eq!(page.events.iter().map(|e| e.offset).collect::<Vec<_>>(), vec![4, 5, 6]);
    assert_eq!(*page, log.read_page(4, PAGE, PAGE_BYTES).unwrap(), "the same page storage gives");
    assert!(recent.take_page(head).is_none(), "a fan-out takes them");

    let only_tte01 = EventFilter { properties: Some(["TTE01".to_string()].into()), ..Default::default() };
    for s in [spec(EventFilter::default()), spec(only_tte01)] {
        let keys = SharingKeys::of(&s);
        let mut from_memory = EventCache::starting_with(Some(page.clone()));
        for next in 1..=7 {
            let unlimited = || TurnBudget { pages: usize::MAX, bytes: usize::MAX };
            let mut stored_cursor = Cursor { next, inflight: 0 };
            let stored =
                pump(&log, &s, &keys, &mut stored_cursor, head, 512, &mut EventCache::default(), &mut unlimited())
                    .unwrap();
            let reads = log.store().reads.get();
            let mut cursor = Cursor { next, inflight: 0 };
            let got = pump(&log, &s, &keys, &mut cursor, head, 512, &mut from_memory, &mut unlimited()).unwrap();
            assert_eq!((&*got, cursor), (&*stored, stored_cursor), "from {next}");
            if next >= 4 {
                assert_eq!(log.store().reads.get(), reads, "from {next}: served from memory, no read");
            }
        }
    }
}

#[test]
fn recent_events_are_held_only_while_they_are_what_storage_holds_up_to_the_head_and_bounded() {
    let log = log_with(&["TTE01"]);
    let mut recent = RecentEvents::default();
    // Retention may have deleted them.
    append_recording(&log, &mut recent, &[event("a", "TTE01")], 1);
    recent.clear();
    append_recording(&log, &mut recent, &[event("b", "TTE01")], 2);
    let page = recent.take_page(3).unwrap();
    assert_eq!(page.events.iter().map(|e| e.offset).collect::<Vec<_>>(), vec![3], "only what came after");
    // A store the record did not see (cannot happen in the object): what is held does not
    // reach the head, so the fan-out reads storage; and a later record does not continue it.
    append_recording(&log, &mut recent, &[event("c", "TTE01")], 3);
    log.append(&[event("d", "TTE01")], 4).unwrap();
    assert!(recent.take_page(log.head().unwrap()).is_none());
    append_recording(&log, &mut recent, &[event("c2", "TTE01")], 4);
    log.append(&[event("d2", "TTE01")], 4).unwrap();
    append_recording(&log, &mut recent, &[event("e", "TTE01")], 5);
    let page = recent.take_page(log.head().unwrap()).unwrap();
    assert_eq!(page.events.iter().map(|e| e.offset).collect::<Vec<_>>(), vec![8], "no hole held");
    // More than a page since the last fan-out: nothing is held until the next one.
    let many: Vec<ValidEvent> = (0..=PAGE).map(|i| event(&format!("m{i}"), "TTE01")).collect();
    append_recording(&log, &mut recent, &many, 6);
    append_recording(&log, &mut recent, &[event("f", "TTE01")], 6);
    assert!(recent.take_page(log.head().unwrap()).is_none());
    append_recording(&log, &mut recent, &[event("g", "TTE01")], 7);
    assert_eq!(recent.take_page(log.head().unwrap()).unwrap().events.len(), 1, "held again after a fan-out");
}

/// Subscriptions that share nothing must not make a turn hold all their messages: pumps are
/// kept for sharing only up to `SHARED_PUMP_BYTES` a turn; past it each is used once.
#[test]
fn a_turn_keeps_at_most_its_shared_bytes_of_pumps_for_sharing() {
    let log = log_of_large_events(8);
    // Four selections that differ only in their response key: nothing alike among them.
    let specs: Vec<_> = (0..4)
        .map(|i| SubscriptionSpec { response_key: format!("k{i}"), ..spec_with(EventFilter::default(), Everything) })
        .collect();
    let mut cache = EventCache::default();
    let mut budget = TurnBudget { pages: usize::MAX, bytes: usize::MAX };
    let mut pump_for = |s: &SubscriptionSpec<Everything>, cache: &mut EventCache| {
        let mut cursor = Cursor { next: 1, inflight: 0 };
        pump(&log, s, &SharingKeys::of(s), &mut cursor, 8, 512, cache, &mut budget).unwrap()
    };
    let pumped: Vec<_> = specs.iter().map(|s| pump_for(s, &mut cache)).collect();
    let bytes = |p: &std::rc::Rc<Pumped>| p.messages.iter().map(String::len).sum::<usize>();
    assert!(bytes(&pumped[0]) * 2 <= SHARED_PUMP_BYTES && bytes(&pumped[0]) * 3 > SHARED_PUMP_BYTES);
    let shared: Vec<bool> = specs.iter().zip(&pumped).map(|(s, p)| cache.shares(&SharingKeys::of(s), 1, p)).collect();
    assert_eq!(shared, [true, true, false, false], "two pumps fit the turn's bytes");
    // Alike subscriptions: the kept pump is shared; one past the bound is built again, equal.
    let again = pump_for(&specs[0], &mut cache);
    assert!(std::rc::Rc::ptr_eq(&again, &pumped[0]));
    let again = pump_for(&specs[3], &mut cache);
    assert!(!std::rc::Rc::ptr_eq(&again, &pumped[3]));
    assert_eq!(*again, *pumped[3]);
}
