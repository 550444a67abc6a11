//! The entities' current state: folded from published events in the append's transaction,
//! walked in pages consistent with an offset, bounded, and dropped by its own retention; and
//! replay from a time. Events are built by the real publish validation, and the chain's
//! object is the real core over the reference store.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::demo_config;
use common::object::Object;
use pms_events::auth::token::AccessClaims;
use pms_events::chain::state_fold::{CATCH_UP_MS, FOLD_STEP_EVENTS, MAX_WAIT_MS, QUIET_MS};
use pms_events::config::{Limits, ServiceConfig};
use pms_events::current_state::{
    parse_params, plan_state_request, read_state, StateCursor, StateError, StateRefusal, StateRequest, MAX_SEEKS,
};
use pms_events::log::entity::{EntityTotals, MAX_ENTITY_STATE_BYTES};
use pms_events::log::{EntityStore, MemoryStore, OffsetLog, StateRules, ValidEvent};
use pms_events::publish::validate_batch;
use serde_json::{json, Value};

/// Events as a PMS publishes them, validated as the publish API does.
fn published(events: Value) -> Vec<ValidEvent> {
    let config = demo_config();
    let mut n = 0;
    validate_batch(events.to_string().as_bytes(), config.chain("TTE").unwrap(), &Limits::default(), || {
        n += 1;
        format!("gen-{n}-{}", rand_suffix())
    })
    .expect("a valid batch")
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn ev(hotel: &str, module: &str, name: &str, key: &str, detail: Value) -> Value {
    json!({
        "moduleName": module, "eventName": name, "primaryKey": key, "timestamp": "2026-12-07T10:00:00Z",
        "hotelId": hotel, "detail": detail,
    })
}

/// Appends, then folds the log into the state until it is caught up, as the chain's object
/// does in steps of its own.
fn append_and_fold(
    log: &OffsetLog<MemoryStore>,
    batch: &[ValidEvent],
    now: u64,
    rules: &StateRules,
) -> Result<Vec<u64>, String> {
    let offsets = log.append(batch, now).map_err(|e| e.to_string())?;
    if rules.keep {
        while log.fold_state(rules, 200, 1 << 20).map_err(|e| e.to_string())?.lag > 0 {}
    }
    Ok(offsets)
}

fn keep() -> StateRules {
    StateRules { keep: true, terminal_events: BTreeMap::new() }
}

fn request(hotels: &[&str], modules: Option<&[&str]>, after: Option<String>, limit: usize) -> StateRequest {
    StateRequest {
        chain_code: "TTE".into(),
        hotels: hotels.iter().map(|h| h.to_string()).collect(),
        module_names: modules.map(|m| m.iter().map(|s| s.to_string()).collect()),
        after,
        limit,
    }
}

fn page(log: &OffsetLog<MemoryStore>, req: &StateRequest) -> Value {
    serde_json::from_str(&read_state(log, req).expect("a page")).expect("JSON")
}

/// Every page of a walk, from the first.
fn walk(log: &OffsetLog<MemoryStore>, mut req: StateRequest) -> (Vec<Value>, Vec<Value>) {
    let mut pages = Vec::new();
    let mut entities = Vec::new();
    loop {
        let p = page(log, &req);
        entities.extend(p["entities"].as_array().unwrap().iter().cloned());
        let next = p["next"].as_str().map(str::to_string);
        pages.push(p);
        match next {
            Some(n) => req.after = Some(n),
            None => return (pages, entities),
        }
        assert!(pages.len() < 10_000, "the walk ends");
    }
}

#[test]
fn events_fold_into_their_entity_elements_set_replaced_and_removed() {
    let log = OffsetLog::new(MemoryStore::default());
    let batch = published(json!([
        ev(
            "TTE01",
            "Reservation",
            "NEW",
            "R1",
            json!([
            {"elementName": "Status", "newValue": "RESERVED"}, {"elementName": "Room", "newValue": "101"},
            {"elementName": "Comment", "newValue": "late arrival"}])
        ),
        ev(
            "TTE01",
            "Reservation",
            "UPDATE",
            "R1",
            json!([
            {"elementName": "Room", "newValue": "202", "oldValue": "101"},
            {"elementName": "Comment", "newValue": null, "oldValue": "late arrival"}])
        ),
        ev("TTE02", "Room", "CLEAN", "202", json!([{"elementName": "HousekeepingStatus", "newValue": "CLEAN"}])),
    ]));
    assert_eq!(append_and_fold(&log, &batch, 1_000, &keep()).unwrap(), vec![1, 2, 3]);
    // One more event of R1 in a later batch: the stored state is read back and folded on.
    let later = published(json!([ev(
        "TTE01",
        "Reservation",
        "CHECKIN",
        "R1",
        json!([{"elementName": "Status", "newValue": "IN_HOUSE"}, {"elementName": "Unknown"}])
    )]));
    assert_eq!(append_and_fold(&log, &later, 2_000, &keep()).unwrap(), vec![4]);

    let p = page(&log, &request(&["TTE01", "TTE02"], None, None, 100));
    assert_eq!(p["asOfOffset"], "4");
    assert_eq!(p["next"], Value::Null);
    assert_eq!(
        p["entities"],
        json!([
            {"hotelId": "TTE01", "moduleName": "Reservation", "primaryKey": "R1", "lastOffset": "4",
             "lastEventName": "CHECKIN", "lastTimestamp": "2026-12-07T10:00:00Z",
             "elements": [{"elementName": "Room", "value": "202"}, {"elementName": "Status", "value": "IN_HOUSE"}]},
            {"hotelId": "TTE02", "moduleName": "Room", "primaryKey": "202", "lastOffset": "3",
             "lastEventName": "CLEAN", "lastTimestamp": "2026-12-07T10:00:00Z",
             "elements": [{"elementName": "HousekeepingStatus", "value": "CLEAN"}]},
        ])
    );
    let store = log.store();
    assert_eq!(store.entity_totals().unwrap(), store.recount_entities(), "running totals match the rows");
    assert_eq!(store.recount_entities().entities, 2);
}

#[test]
fn a_repeated_event_is_not_folded_twice_and_a_failed_append_folds_nothing() {
    let log = OffsetLog::new(MemoryStore::default());
    let mut first =
        published(json!([ev("TTE01", "Folio", "POST", "F1", json!([{"elementName": "Balance", "newValue": "10"}]))]));
    first[0].unique_event_id = "own-1".into();
    first[0].minted = false;
    append_and_fold(&log, &first, 1, &keep()).unwrap();
    // The same id again with another value: the log keeps the first, and so does the state.
    let mut again =
        published(json!([ev("TTE01", "Folio", "POST", "F1", json!([{"elementName": "Balance", "newValue": "99"}]))]));
    again[0].unique_event_id = "own-1".into();
    again[0].minted = false;
    assert_eq!(append_and_fold(&log, &again, 2, &keep()).unwrap(), vec![1]);
    // An append whose rows fail leaves the state as it was.
    log.store().fail_insert_after.set(Some(0));
    let failing =
        published(json!([ev("TTE01", "Folio", "POST", "F1", json!([{"elementName": "Balance", "newValue": "50"}]))]));
    assert!(append_and_fold(&log, &failing, 3, &keep()).is_err());
    log.store().fail_insert_after.set(None);
    let p = page(&log, &request(&["TTE01"], None, None, 10));
    assert_eq!(p["entities"][0]["elements"], json!([{"elementName": "Balance", "value": "10"}]));
    assert_eq!(p["asOfOffset"], "1");
}

#[test]
fn a_terminal_event_ends_its_entity_and_the_totals_follow() {
    let log = OffsetLog::new(MemoryStore::default());
    let rules = StateRules {
        keep: true,
        terminal_events: BTreeMap::from([("Reservation".to_string(), BTreeSet::from(["CHECKOUT".to_string()]))]),
    };
    let day = published(json!([
        ev("TTE01", "Reservation", "CHECKIN", "R1", json!([{"elementName": "Room", "newValue": "101"}])),
        ev("TTE01", "Reservation", "CHECKIN", "R2", json!([{"elementName": "Room", "newValue": "102"}])),
        // Created and ended in one batch: never written.
        ev("TTE01", "Reservation", "CHECKIN", "R3", json!([{"elementName": "Room", "newValue": "103"}])),
        ev("TTE01", "Reservation", "CHECKOUT", "R3", json!([])),
        // A CHECKOUT of another module is not terminal.
        ev("TTE01", "Room", "CHECKOUT", "101", json!([{"elementName": "Status", "newValue": "DIRTY"}])),
    ]));
    append_and_fold(&log, &day, 1, &rules).unwrap();
    assert_eq!(log.store().recount_entities().entities, 3);
    append_and_fold(&log, &published(json!([ev("TTE01", "Reservation", "CHECKOUT", "R1", json!([]))])), 2, &rules)
        .unwrap();
    let (_, entities) = walk(&log, request(&["TTE01"], None, None, 10));
    let keys: Vec<&str> = entities.iter().map(|e| e["primaryKey"].as_str().unwrap()).collect();
    assert_eq!(keys, ["R2", "101"]);
    assert_eq!(log.store().entity_totals().unwrap(), log.store().recount_entities());
    assert_eq!(log.store().recount_entities().entities, 2);
}

#[test]
fn with_state_switched_off_appends_fold_nothing() {
    let log = OffsetLog::new(MemoryStore::default());
    let off = StateRules { keep: false, ..keep() };
    append_and_fold(&log, &published(json!([ev("TTE01", "Reservation", "NEW", "R1", json!([]))])), 1, &off).unwrap();
    assert_eq!(log.store().recount_entities(), EntityTotals::default());
}

/// 3 hotels × 2 modules × 7 keys, each entity one event.
fn populated() -> OffsetLog<MemoryStore> {
    let log = OffsetLog::new(MemoryStore::default());
    let mut all = Vec::new();
    for hotel in ["TTE01", "TTE02"] {
        for module in ["Reservation", "Room"] {
            for k in 0..7 {
                all.push(ev(
                    hotel,
                    module,
                    "NEW",
                    &format!("K{k}"),
                    json!([{"elementName": "n", "newValue": k.to_string()}]),
                ));
            }
        }
    }
    append_and_fold(&log, &published(Value::Array(all)), 1, &keep()).unwrap();
    log
}

#[test]
fn a_walk_returns_every_entity_once_in_key_order_at_one_offset() {
    let log = populated();
    let (pages, entities) = walk(&log, request(&["TTE01", "TTE02"], None, None, 3));
    assert_eq!(entities.len(), 28);
    let keys: Vec<(String, String, String)> = entities
        .iter()
        .map(|e| (e["hotelId"].to_string(), e["moduleName"].to_string(), e["primaryKey"].to_string()))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(keys, sorted, "ordered by hotel, module and key, each once");
    assert!(pages.iter().all(|p| p["asOfOffset"] == "28"));
    assert!(pages.iter().all(|p| p["entities"].as_array().unwrap().len() <= 3));
}

#[test]
fn the_first_page_fixes_the_offset_and_later_pages_show_newer_events() {
    let log = populated();
    let first = page(&log, &request(&["TTE01", "TTE02"], None, None, 5));
    assert_eq!(first["asOfOffset"], "28");
    // An event after the first page, for an entity further on, and a new entity.
    append_and_fold(
        &log,
        &published(json!([
            ev("TTE02", "Room", "CLEAN", "K6", json!([{"elementName": "n", "newValue": "changed"}])),
            ev("TTE02", "Room", "NEW", "K9", json!([])),
        ])),
        2,
        &keep(),
    )
    .unwrap();
    let mut req = request(&["TTE01", "TTE02"], None, first["next"].as_str().map(str::to_string), 100);
    let rest = page(&log, &req);
    assert_eq!(rest["asOfOffset"], "28", "every page of the walk carries the first page's offset");
    let k6 = rest["entities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["hotelId"] == "TTE02" && e["moduleName"] == "Room" && e["primaryKey"] == "K6")
        .unwrap();
    assert_eq!(k6["lastOffset"], "29", "an entity may be newer than asOfOffset, never older");
    assert_eq!(rest["entities"].as_array().unwrap().len(), 23 + 1);
    // A cursor beyond the head is not this chain's.
    req.after = Some(StateCursor { as_of: 999, passed: String::new() }.encode());
    assert!(matches!(read_state(&log, &req), Err(StateError::BadCursor(_))));
    req.after = Some("not-a-cursor".into());
    assert!(matches!(read_state(&log, &req), Err(StateError::BadCursor(_))));
}

#[test]
fn filters_walk_only_their_hotels_and_modules() {
    let log = populated();
    let (_, only_tte02_rooms) = walk(&log, request(&["TTE02"], Some(&["Room"]), None, 2));
    assert_eq!(only_tte02_rooms.len(), 7);
    assert!(only_tte02_rooms.iter().all(|e| e["hotelId"] == "TTE02" && e["moduleName"] == "Room"));
    let (_, none) = walk(&log, request(&["TTE01"], Some(&["Folio"]), None, 10));
    assert!(none.is_empty(), "a filter that matches nothing ends at once");
}

#[test]
fn a_page_makes_a_bounded_number_of_seeks_and_goes_on_by_cursor() {
    let log = OffsetLog::new(MemoryStore::default());
    append_and_fold(&log, &published(json!([ev("TTE02", "Zeta", "NEW", "K", json!([]))])), 1, &keep()).unwrap();
    // Many module names that match nothing, before the one that does.
    let modules: Vec<String> = (0..MAX_SEEKS + 10).map(|i| format!("A{i:03}")).chain(["Zeta".to_string()]).collect();
    let modules: Vec<&str> = modules.iter().map(String::as_str).collect();
    let reads_before = log.store().reads.get();
    let first = page(&log, &request(&["TTE02"], Some(&modules), None, 10));
    assert_eq!(log.store().reads.get() - reads_before, MAX_SEEKS, "one turn seeks at most MAX_SEEKS groups");
    assert!(first["entities"].as_array().unwrap().is_empty());
    let (_, found) = walk(&log, request(&["TTE02"], Some(&modules), first["next"].as_str().map(str::to_string), 10));
    assert_eq!(found.len(), 1, "the walk goes on from its cursor and finds it");
}

#[test]
fn an_entity_whose_state_reached_its_bound_takes_no_more_changes() {
    let log = OffsetLog::new(MemoryStore::default());
    let big = |chunk: usize| {
        let detail: Vec<Value> =
            (0..100).map(|i| json!({"elementName": format!("e{chunk}-{i:03}"), "newValue": "v".repeat(500)})).collect();
        published(json!([ev("TTE01", "Profile", "UPDATE", "P1", Value::Array(detail))]))
    };
    let mut offsets = 0;
    while log.store().recount_entities().bytes < MAX_ENTITY_STATE_BYTES as u64 {
        append_and_fold(&log, &big(offsets), 1, &keep()).unwrap();
        offsets += 1;
    }
    let stored = log.store().recount_entities().bytes;
    assert!(stored < (MAX_ENTITY_STATE_BYTES + 64 * 1024) as u64, "one event past the bound at most: {stored}");
    append_and_fold(&log, &big(999), 1, &keep()).unwrap();
    assert_eq!(log.store().recount_entities().bytes, stored, "no more changes");
    let p = page(&log, &request(&["TTE01"], None, None, 1));
    assert_eq!(p["entities"][0]["lastOffset"], offsets.to_string());
    assert_eq!(log.store().entity_totals().unwrap(), log.store().recount_entities());
}

#[test]
fn state_outlives_event_retention_and_has_its_own() {
    let log = OffsetLog::new(MemoryStore::default());
    let hour = 3_600_000;
    append_and_fold(&log, &published(json!([ev("TTE01", "Reservation", "NEW", "OLD", json!([]))])), hour, &keep())
        .unwrap();
    append_and_fold(&log, &published(json!([ev("TTE01", "Reservation", "NEW", "NEW", json!([]))])), 50 * hour, &keep())
        .unwrap();
    // Events kept a day: both events go, both entities stay.
    log.apply_retention(100 * hour, 24 * hour).unwrap();
    assert_eq!(log.bounds().unwrap().retained_events(), 0);
    assert_eq!(log.store().recount_entities().entities, 2);
    // Entities kept 60 hours: the sweep drops the one last changed at hour 1.
    let swept = log.sweep_state("", 100 * hour, 60 * hour).unwrap();
    assert_eq!((swept.removed, swept.last), (1, None), "one removed; the pass reached the end");
    let (_, entities) = walk(&log, request(&["TTE01"], None, None, 10));
    assert_eq!(entities.len(), 1);
    assert_eq!(entities[0]["primaryKey"], "NEW");
    assert_eq!(log.store().entity_totals().unwrap(), log.store().recount_entities());
}

#[test]
fn the_state_sweep_goes_through_the_entities_a_batch_at_a_time() {
    let log = OffsetLog::new(MemoryStore::default());
    let all: Vec<Value> = (0..2_500).map(|i| ev("TTE01", "Room", "NEW", &format!("{i:05}"), json!([]))).collect();
    for chunk in all.chunks(500) {
        append_and_fold(&log, &published(Value::Array(chunk.to_vec())), 1_000, &keep()).unwrap();
    }
    let mut passed = String::new();
    let mut steps = 0;
    loop {
        let swept = log.sweep_state(&passed, 10_000, 5_000).unwrap();
        steps += 1;
        match swept.last {
            Some(last) => passed = last,
            None => break,
        }
    }
    assert_eq!(steps, 3, "1,000 entities a step");
    assert_eq!(log.store().recount_entities().entities, 0);
}

#[test]
fn a_replay_from_a_time_starts_at_the_first_event_stored_then_with_the_gap_of_what_retention_took() {
    let log = OffsetLog::new(MemoryStore::default());
    for (i, at) in [1_000u64, 2_000, 3_000, 4_000].iter().enumerate() {
        log.append(&published(json!([ev("TTE01", "Room", "CLEAN", &format!("{i}"), json!([]))])), *at).unwrap();
    }
    assert_eq!(log.start_at_time(2_500).unwrap(), (3, None));
    assert_eq!(log.start_at_time(0).unwrap(), (1, None));
    assert_eq!(log.start_at_time(9_000).unwrap(), (5, None), "after the newest: the next event");
    log.apply_retention(3_500, 1_000).unwrap(); // drops offsets 1 and 2
    let (start, gap) = log.start_at_time(1_500).unwrap();
    assert_eq!(start, 3);
    assert_eq!(gap.map(|g| (g.requested, g.resumed_at)), Some((2, 3)), "offset 2 (stored at 2,000) was dropped");
    assert_eq!(log.start_at_time(2_500).unwrap(), (3, None), "nothing dropped was stored after 2,500");
}

#[test]
fn the_state_api_parses_and_authorizes_like_the_pull_api() {
    let config: ServiceConfig = demo_config();
    let claims = |id: &str| {
        let c = config.client(id).unwrap();
        AccessClaims::for_client(c, &c.scopes, &config.issuer, &config.audience, "j".into())
    };
    let all = plan_state_request(&config, &claims("client-app-001"), "TTE", None, None, None, 100).unwrap();
    assert_eq!(all.hotels, BTreeSet::from(["TTE01".to_string(), "TTE02".to_string()]));
    let restricted = plan_state_request(&config, &claims("client-app-002"), "TTE", None, None, None, 100).unwrap();
    assert_eq!(restricted.hotels, BTreeSet::from(["TTE01".to_string()]), "only the granted property");
    assert!(matches!(
        plan_state_request(&config, &claims("client-app-002"), "TTE", Some("TTE02"), None, None, 100),
        Err(StateRefusal::Forbidden(_))
    ));
    assert!(matches!(
        plan_state_request(&config, &claims("client-app-001"), "OTH", None, None, None, 100),
        Err(StateRefusal::Forbidden(_))
    ));
    assert!(matches!(
        plan_state_request(&config, &claims("client-app-001"), "TTE", None, Some(vec![]), None, 100),
        Err(StateRefusal::BadRequest(_))
    ));
    assert!(matches!(
        plan_state_request(&config, &claims("client-app-001"), "TTE", None, None, Some("%%%".into()), 100),
        Err(StateRefusal::BadRequest(_))
    ));
    assert_eq!(parse_params("limit=1000&hotelCode=TTE01&moduleNames=Room,Folio").unwrap().limit, 1000);
    for bad in ["limit=0", "limit=1001", "limit=x", "limit=1&limit=2", "offset=3"] {
        assert!(parse_params(bad).is_err(), "{bad} is refused");
    }
}

fn state_page(object: &mut Object, req: &StateRequest, now: u64) -> Result<Value, u16> {
    let mut fx = pms_events::chain::host::Effects::default();
    let page = object.core.state_page(req, &object.config.clone(), now, &mut fx).expect("a page");
    object.note(fx, now);
    page.map(|text| serde_json::from_str(&text).unwrap()).map_err(|(status, _)| status)
}

#[test]
fn the_chain_object_folds_once_quiet_and_says_the_offset_its_state_is_as_of() {
    let mut object = Object::start(demo_config(), 0);
    object.publish(
        &published(json!([
            ev("TTE01", "Reservation", "NEW", "R1", json!([{"elementName": "Room", "newValue": "101"}])),
            ev("TTE02", "Reservation", "NEW", "R2", json!([])),
        ])),
        10,
    );
    // The publish is answered before anything is folded; the state says so.
    assert_eq!(object.core.numbers(0).unwrap().state_through, 0);
    let before = state_page(&mut object, &request(&["TTE01"], None, None, 10), 20).unwrap();
    assert_eq!((before["asOfOffset"].as_str(), before["entities"].as_array().unwrap().len()), (Some("0"), 0));
    assert_eq!(object.fold_due, Some(10 + QUIET_MS), "a step once the chain is quiet");
    object.run_timers(10 + QUIET_MS);
    let numbers = object.core.numbers(0).unwrap();
    assert_eq!((numbers.state_through, numbers.entities.entities), (2, 2));
    assert!(numbers.entities.bytes > 100);
    let after = state_page(&mut object, &request(&["TTE01"], None, None, 10), 300).unwrap();
    assert_eq!(after["asOfOffset"], "2");
    assert_eq!(after["entities"][0]["elements"], json!([{"elementName": "Room", "value": "101"}]));
    assert_eq!(state_page(&mut object, &request(&["TTE01"], None, Some("x".into()), 10), 300), Err(400));
}

#[test]
fn while_publishes_keep_coming_the_state_follows_every_few_seconds_and_catches_up_when_quiet() {
    let mut object = Object::start(demo_config(), 0);
    let mut through = Vec::new();
    let mut now = 0;
    for i in 0..100 {
        now = i * 50;
        object.run_timers(now);
        object.publish(&published(json!([ev("TTE01", "Room", "CLEAN", &format!("{i}"), json!([]))])), now);
        through.push(object.core.numbers(0).unwrap().state_through);
    }
    // 5 s of a publish every 50 ms: a step every MAX_WAIT_MS, not one per publish.
    let steps = through.windows(2).filter(|w| w[1] != w[0]).count();
    assert_eq!(steps, (5_000 / MAX_WAIT_MS) as usize, "{through:?}");
    // Quiet: the rest follows.
    object.run_timers(now + QUIET_MS);
    assert_eq!(object.core.numbers(0).unwrap().state_through, 100);
}

#[test]
fn a_chain_publishing_twice_a_second_folds_in_few_steps_not_one_per_publish() {
    // One of hundreds of chains, each a small batch every 500 ms: were a pause of 500 ms
    // quiet, every publish would cost a step of its own.
    let mut object = Object::start(demo_config(), 0);
    let mut through = Vec::new();
    for i in 0..20 {
        let now = i * 500;
        object.run_timers(now);
        let batch: Vec<Value> = (0..10).map(|k| ev("TTE01", "Room", "CLEAN", &format!("{i}-{k}"), json!([]))).collect();
        object.publish(&published(Value::Array(batch)), now);
        through.push(object.core.numbers(0).unwrap().state_through);
    }
    let steps = through.windows(2).filter(|w| w[1] != w[0]).count();
    assert_eq!(steps, (10_000 / MAX_WAIT_MS) as usize - 1, "a step every MAX_WAIT_MS: {through:?}");
}

#[test]
fn a_sustained_burst_keeps_the_state_within_a_step_or_so_of_the_head() {
    let mut object = Object::start(demo_config(), 0);
    let events: Vec<Value> = (0..100).map(|i| ev("TTE01", "Room", "CLEAN", &format!("{i}"), json!([]))).collect();
    let mut worst = 0;
    // 4 s of 100 events every 50 ms (2,000 events/s, four steps a second).
    for i in 0..80 {
        let now = i * 50;
        object.run_timers(now);
        object.publish(&published(Value::Array(events.clone())), now);
        let numbers = object.core.numbers(0).unwrap();
        if now >= 1_000 {
            worst = worst.max(numbers.head_offset - numbers.state_through);
        }
    }
    let bound = FOLD_STEP_EVENTS as u64 + 2_000 * CATCH_UP_MS / 1_000 + 100;
    assert!(worst <= bound, "the state stayed within {worst} events of the head (bound {bound})");
}

#[test]
fn an_event_stored_after_retention_emptied_the_chain_sets_the_alarm_for_its_own_expiry() {
    let mut config = demo_config();
    config.retention_seconds = 2;
    let mut object = Object::start(config, 0);
    let one = || published(json!([ev("TTE01", "Room", "CLEAN", "1", json!([]))]));
    object.publish(&one(), 0);
    object.run_timers(QUIET_MS);
    let expiry = object.alarm_at.expect("an alarm for the first event");
    assert!(expiry <= 2_000 + 200, "{expiry}");
    object.run_alarm(expiry);
    assert_eq!(object.core.numbers(0).unwrap().retained_events, 0);
    // The alarm now waits for the state sweep, hours away; the next event must not.
    assert!(object.alarm_at.unwrap() > 3_600_000 / 2);
    object.publish(&one(), 3_000);
    assert!(object.alarm_at.unwrap() <= 3_000 + 2_200, "the alarm fires when the new event expires");
    object.run_timers(3_000 + QUIET_MS);
    object.run_alarm(3_000 + 2_200);
    assert_eq!(object.core.numbers(0).unwrap().retained_events, 0);
}

#[test]
fn retention_keeps_every_event_the_state_has_not_folded() {
    let log = OffsetLog::new(MemoryStore::default());
    log.append(
        &published(json!([ev("TTE01", "Room", "CLEAN", "1", json!([])), ev("TTE01", "Room", "CLEAN", "2", json!([]))])),
        1,
    )
    .unwrap();
    log.fold_state(&keep(), 1, 1 << 20).unwrap();
    assert_eq!(log.store().state_through().unwrap(), 1);
    log.apply_retention_through(10_000, 1_000, 1).unwrap();
    assert_eq!(log.bounds().unwrap().oldest_offset, Some(2), "offset 2 waits for the fold");
    // A fold step that fails writes nothing and moves nothing: it is tried again.
    log.store().fail_entity_writes.set(true);
    assert!(log.fold_state(&keep(), 10, 1 << 20).is_err());
    log.store().fail_entity_writes.set(false);
    assert_eq!(log.store().state_through().unwrap(), 1);
    assert_eq!(log.fold_state(&keep(), 10, 1 << 20).unwrap().through, 2);
}

/// The reference store merges as `SQLite`'s `json_patch` does: RFC 7396's own examples.
#[test]
fn the_reference_merge_is_rfc_7396() {
    use pms_events::log::entity::merge_patch;
    for (target, patch, result) in [
        (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
        (json!({"a": "b"}), json!({"b": "c"}), json!({"a": "b", "b": "c"})),
        (json!({"a": "b"}), json!({"a": null}), json!({})),
        (json!({"a": "b", "b": "c"}), json!({"a": null}), json!({"b": "c"})),
        (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
        (json!({"a": {"b": "c"}}), json!({"a": {"b": "d", "c": null}}), json!({"a": {"b": "d"}})),
        (json!({"e": null}), json!({"a": 1}), json!({"e": null, "a": 1})),
        (json!([1, 2]), json!({"a": "b", "c": null}), json!({"a": "b"})),
        (json!({}), json!({"a": {"bb": {"ccc": null}}}), json!({"a": {"bb": {}}})),
    ] {
        let mut merged = target.clone();
        merge_patch(&mut merged, &patch);
        assert_eq!(merged, result, "{target} + {patch}");
    }
}
