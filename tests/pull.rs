//! The pull API's query parameters and reads over the in-memory log.

use pms_events::log::read::PAGE;
use pms_events::log::{EventFilter, TurnBudget};
use pms_events::log::{MemoryStore, OffsetLog};
use pms_events::publish::ValidEvent;
use pms_events::pull::{parse_params, read, ReadError, ReadRequest, DEFAULT_LIMIT, MAX_LIMIT};
use serde_json::Value;

fn log_of(names: &[&str]) -> OffsetLog<MemoryStore> {
    let log = OffsetLog::new(MemoryStore::default());
    let batch: Vec<ValidEvent> = names
        .iter()
        .enumerate()
        .map(|(i, name)| ValidEvent {
            unique_event_id: format!("u{i}"),
            hotel_id: "TTE01".into(),
            module_name: "Reservation".into(),
            event_name: name.to_string(),
            body: format!(r#"{{"eventName":"{name}","hotelId":"TTE01","metadata":{{"uniqueEventId":"u{i}"}}}}"#),
            minted: false,
        })
        .collect();
    log.append(&batch, 0).unwrap();
    log
}

fn answer(log: &OffsetLog<MemoryStore>, from: Option<u64>, limit: usize, filter: EventFilter) -> Value {
    serde_json::from_str(&read(log, &ReadRequest { from, since: None, limit, filter }).unwrap()).unwrap()
}

fn offsets(v: &Value) -> Vec<u64> {
    v["events"].as_array().unwrap().iter().map(|e| e["metadata"]["offset"].as_str().unwrap().parse().unwrap()).collect()
}

#[test]
fn parameters_have_defaults_bounds_and_clear_refusals() {
    let p = parse_params("").unwrap();
    assert_eq!((p.from, p.limit), (None, DEFAULT_LIMIT));
    let p = parse_params("from=5&limit=1000&hotelCode=TTE01&eventNames=CHECKIN,CHECKOUT&moduleNames=Room").unwrap();
    assert_eq!((p.from, p.limit, p.hotel_code.as_deref()), (Some(5), MAX_LIMIT, Some("TTE01")));
    assert_eq!(p.event_names, Some(vec!["CHECKIN".to_string(), "CHECKOUT".to_string()]));
    assert_eq!(p.module_names, Some(vec!["Room".to_string()]));
    for (bad, needle) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=x", "limit"),
        ("from=-1", "from"),
        ("from=1&from=2", "twice"),
        ("offset=1", "unknown parameter"),
    ] {
        let e = parse_params(bad).unwrap_err();
        assert!(e.contains(needle), "{bad}: {e}");
    }
}

#[test]
fn pages_through_the_log_with_full_events_and_next() {
    let log = log_of(&["A"; 25]);
    let first = answer(&log, Some(1), 10, EventFilter::default());
    assert_eq!(offsets(&first), (1..=10).collect::<Vec<_>>());
    assert_eq!((first["next"].as_str(), first["head"].as_str()), (Some("11"), Some("25")));
    assert_eq!(first["events"][0]["metadata"]["uniqueEventId"], "u0", "the full EventHeader");
    assert_eq!(first.get("gap"), None);
    let last = answer(&log, Some(21), 10, EventFilter::default());
    assert_eq!(offsets(&last), (21..=25).collect::<Vec<_>>());
    assert_eq!(last["next"], "26");
    let past = answer(&log, Some(26), 10, EventFilter::default());
    assert_eq!(offsets(&past), Vec::<u64>::new());
    assert_eq!(past["next"], "26");
    assert_eq!(
        read(&log, &ReadRequest { from: Some(27), since: None, limit: 10, filter: EventFilter::default() }),
        Err(ReadError::OutOfRange { requested: 27, head: 25 })
    );
    assert_eq!(offsets(&answer(&log, None, 3, EventFilter::default())), vec![1, 2, 3], "no from: the oldest");
}

#[test]
fn filters_apply_and_next_moves_past_what_they_skip() {
    let log = log_of(&["A", "B", "A", "B", "B"]);
    let only_b = EventFilter { event_names: Some(["B".to_string()].into()), ..Default::default() };
    let v = answer(&log, Some(1), 2, only_b.clone());
    assert_eq!(offsets(&v), vec![2, 4]);
    assert_eq!(v["next"], "5");
    let v = answer(&log, Some(5), 2, only_b);
    assert_eq!(offsets(&v), vec![5]);
    assert_eq!(v["next"], "6");
}

#[test]
fn a_retention_gap_is_signalled_like_the_stream() {
    let log = log_of(&["A"; 10]);
    log.store().delete(1..=4);
    let v = answer(&log, Some(2), 3, EventFilter::default());
    assert_eq!(v["gap"], serde_json::json!({"requested": "2", "resumedAt": "5"}));
    assert_eq!(offsets(&v), vec![5, 6, 7]);
}

#[test]
fn a_filter_matching_nothing_reads_at_most_one_turns_budget() {
    let names = vec!["A"; PAGE * TurnBudget::PER_TURN.pages * 2];
    let log = log_of(&names);
    let none = EventFilter { event_names: Some(["NONE".to_string()].into()), ..Default::default() };
    let before = log.store().reads.get();
    let v = answer(&log, Some(1), 100, none);
    assert_eq!(log.store().reads.get() - before, TurnBudget::PER_TURN.pages);
    assert_eq!(offsets(&v), Vec::<u64>::new());
    let next: usize = v["next"].as_str().unwrap().parse().unwrap();
    assert_eq!(next, PAGE * TurnBudget::PER_TURN.pages + 1, "the next request goes on from there");
}

#[test]
fn the_offset_is_spliced_into_a_stored_body_as_parsing_would_put_it() {
    use pms_events::log::write_event_header as write_event;
    let config: pms_events::config::ServiceConfig =
        pms_events::config::ServiceConfig::parse(include_str!("../config/demo.json")).unwrap();
    // A real stored body, with text that looks like the key inside a value.
    let batch = br#"[{"moduleName":"Reservation","eventName":"CHECKIN","primaryKey":"R-1","timestamp":"2026-12-02T10:00:00Z",
        "hotelId":"TTE01","actionInstanceId":"\"metadata\":{","detail":[{"elementName":"\"metadata\":{x","newValue":"1","oldValue":null}]}]"#;
    let events = pms_events::publish::validate_batch(batch, config.chain("TTE").unwrap(), &config.limits, || {
        "0190c6f8-0000-7000-8000-000000000001".into()
    })
    .unwrap();
    let mut spliced = String::new();
    write_event(&events[0].body, 42, &mut spliced);
    let value: Value = serde_json::from_str(&spliced).expect("still JSON");
    assert_eq!(value["metadata"]["offset"], "42");
    assert_eq!(value["metadata"]["uniqueEventId"], "0190c6f8-0000-7000-8000-000000000001");
    assert_eq!(value["actionInstanceId"], "\"metadata\":{", "values are untouched");
    let mut expected: Value = serde_json::from_str(&events[0].body).unwrap();
    expected["metadata"]["offset"] = "42".into();
    assert_eq!(value, expected);
    // An empty metadata object, and a body without one.
    let mut out = String::new();
    write_event(r#"{"a":1,"metadata":{}}"#, 7, &mut out);
    assert_eq!(out, r#"{"a":1,"metadata":{"offset":"7"}}"#);
    out.clear();
    write_event(r#"{"a":1}"#, 7, &mut out);
    assert_eq!(out, r#"{"a":1}"#);
}
