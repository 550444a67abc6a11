//! Start resolution, filters, the window and batch framing of subscription delivery.

use pms_events::chain_log::{ChainLog, LogBounds, MemoryStore};
use pms_events::fanout::*;
use pms_events::publish::ValidEvent;
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
    assert_eq!(resolve_start(Start::At(5), &stats(10, Some(1)), None, 0), Ok((5, None)));
    assert_eq!(resolve_start(Start::At(11), &stats(10, Some(1)), None, 0), Ok((11, None)), "one past the head: live");
    assert_eq!(
        resolve_start(Start::At(12), &stats(10, Some(1)), None, 0),
        Err(StartError::OutOfRange { requested: 12, head: 10 })
    );
    assert_eq!(
        resolve_start(Start::At(3), &stats(10, Some(7)), None, 0),
        Ok((7, Some(Gap { requested: 3, resumed_at: 7 })))
    );
    assert_eq!(resolve_start(Start::At(0), &stats(10, Some(1)), None, 0), Ok((1, None)));
    assert_eq!(resolve_start(Start::At(1), &stats(0, None), None, 0), Ok((1, None)));
    // Everything expired: the gap resumes at the next offset to be written.
    assert_eq!(
        resolve_start(Start::At(2), &stats(5, None), None, 0),
        Ok((6, Some(Gap { requested: 2, resumed_at: 6 })))
    );
}

#[test]
fn start_highest_and_resume() {
    assert_eq!(resolve_start(Start::Highest, &stats(10, Some(1)), None, 0), Ok((10, None)));
    assert_eq!(resolve_start(Start::Highest, &stats(0, None), None, 0), Ok((1, None)));
    let day = SAVED_CURSOR_TTL_MS;
    assert_eq!(resolve_start(Start::Resume, &stats(10, Some(1)), Some((6, 1000)), 1000 + day - 1), Ok((7, None)));
    assert_eq!(
        resolve_start(Start::Resume, &stats(10, Some(1)), Some((6, 1000)), 1000 + day),
        Ok((11, None)),
        "older than 24 h: live"
    );
    assert_eq!(resolve_start(Start::Resume, &stats(10, Some(1)), None, 5), Ok((11, None)));
}

fn log_with(hotels: &[&str]) -> ChainLog<MemoryStore> {
    let log = ChainLog::new(MemoryStore::default());
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
    SubscriptionSpec {
        id: "sub-1".into(),
        app_key: "APPKEY001".into(),
        client_id: "client-app-001".into(),
        connection_id: "c".into(),
        response_key: "newEvent".into(),
        delta: false,
        filter,
        start: Start::At(1),
        plan,
    }
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
    let mut cursor = Cursor { next: 1, inflight: 0, gap: None };
    let mut cache = EventCache::default();
    let b = pump(&log, &s, &projection_key(&s), &mut cursor, 10, 4, &mut cache).unwrap().only_batch();
    assert_eq!(delivered(&b), vec![1, 2, 3, 4]);
    assert_eq!(parse_batch(&b).unwrap().through, 4);
    assert!(
        pump(&log, &s, &projection_key(&s), &mut cursor, 10, 4, &mut cache).unwrap().is_empty(),
        "window full: nothing more"
    );
    let (count, through) = parse_ack(&ack_message(4, 4)).unwrap();
    assert_eq!((count, through), (4, 4));
    cursor.inflight -= count;
    let b = pump(&log, &s, &projection_key(&s), &mut cursor, 10, 4, &mut cache).unwrap().only_batch();
    assert_eq!(delivered(&b), vec![5, 6, 7, 8]);
    cursor.inflight = 0;
    let b = pump(&log, &s, &projection_key(&s), &mut cursor, 10, 4, &mut cache).unwrap().only_batch();
    assert_eq!(delivered(&b), vec![9, 10]);
    assert_eq!(cursor.next, 11);
    assert!(pump(&log, &s, &projection_key(&s), &mut cursor, 10, 4, &mut cache).unwrap().is_empty(), "caught up");
}

#[test]
fn filters_skip_events_but_advance_the_cursor() {
    let log = log_with(&["TTE01", "TTE02", "TTE01", "TTE02", "TTE02"]);
    let filter = EventFilter { properties: Some(["TTE01".to_string()].into()), ..Default::default() };
    let s = spec(filter);
    let mut cursor = Cursor { next: 1, inflight: 0, gap: None };
    let b = pump(&log, &s, &projection_key(&s), &mut cursor, 5, 100, &mut EventCache::default()).unwrap().only_batch();
    assert_eq!(delivered(&b), vec![1, 3]);
    assert_eq!(parse_batch(&b).unwrap().through, 5, "through covers the skipped tail");
    assert_eq!(cursor.next, 6);
    let by_module = EventFilter { module_names: Some(["Room".to_string()].into()), ..Default::default() };
    let mut cursor = Cursor { next: 1, inflight: 0, gap: None };
    let b = pump(
        &log,
        &spec(by_module.clone()),
        &projection_key(&spec(by_module)),
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
fn frames_are_graphql_ws_next_messages_and_the_gap_rides_on_the_first() {
    let log = log_with(&["TTE01", "TTE02"]);
    let s = spec(EventFilter::default());
    let mut cursor = Cursor { next: 1, inflight: 0, gap: Some(Gap { requested: 0, resumed_at: 1 }) };
    let b = pump(&log, &s, &projection_key(&s), &mut cursor, 2, 10, &mut EventCache::default()).unwrap().only_batch();
    let batch = parse_batch(&b).unwrap();
    let first: Value = serde_json::from_str(batch.frames[0].1).unwrap();
    assert_eq!(
        first,
        json!({"id": "sub-1", "type": "next", "payload": {"data": {"newEvent": {"offset": "1", "hotel": "TTE01"}}, "extensions": {"gap": {"requested": "0", "resumedAt": "1"}}}})
    );
    let second: Value = serde_json::from_str(batch.frames[1].1).unwrap();
    assert_eq!(second["payload"].get("extensions"), None);
    assert_eq!(cursor.gap, None);
}

#[test]
fn pages_larger_than_one_read_are_followed() {
    let hotels = vec!["TTE01"; PAGE * 2 + 3];
    let log = log_with(&hotels);
    let mut cursor = Cursor { next: 1, inflight: 0, gap: None };
    let b = pump(
        &log,
        &spec(EventFilter::default()),
        &projection_key(&spec(EventFilter::default())),
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

#[test]
fn large_events_are_split_into_batches_under_the_message_limit_and_pages_by_bytes() {
    let log = ChainLog::new(MemoryStore::default());
    let big = "x".repeat(60 * 1024);
    let batch: Vec<ValidEvent> = (0..40)
        .map(|i| ValidEvent {
            unique_event_id: format!("u{i}"),
            hotel_id: "TTE01".into(),
            module_name: "Reservation".into(),
            event_name: "CHECKIN".into(),
            body: serde_json::to_string(
                &json!({"metadata": {"uniqueEventId": format!("u{i}")}, "hotelId": "TTE01", "note": big}),
            )
            .unwrap(),
            minted: false,
        })
        .collect();
    log.append(&batch, 0).unwrap();
    /// Projects the whole event, so frames are as large as the events.
    #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Everything;
    impl Projector for Everything {
        fn project_to_string(&self, event: &Value, _delta: bool, out: &mut String) {
            out.push_str(&event.to_string());
        }
    }
    let s = spec_with(EventFilter::default(), Everything);
    let mut cursor = Cursor { next: 1, inflight: 0, gap: None };
    let batches = pump(&log, &s, &projection_key(&s), &mut cursor, 40, 512, &mut EventCache::default()).unwrap();
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

#[test]
fn fan_outs_are_paced_by_subscriptions_and_never_by_more_than_the_cap() {
    use pms_events::fanout::{fan_out_pace_ms, MAX_FAN_OUT_PACE_MS};
    assert_eq!(fan_out_pace_ms(0), 0);
    assert_eq!(fan_out_pace_ms(1), 0, "a lone subscriber is served at once");
    assert_eq!(fan_out_pace_ms(10), 2);
    assert_eq!(fan_out_pace_ms(100), 20);
    assert_eq!(fan_out_pace_ms(100_000), MAX_FAN_OUT_PACE_MS);
    let mut last = 0;
    for n in 0..2_000 {
        let pace = fan_out_pace_ms(n);
        assert!(pace >= last && pace <= MAX_FAN_OUT_PACE_MS);
        last = pace;
    }
}
