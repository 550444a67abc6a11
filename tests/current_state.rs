//! The entities' current state: folded from published events in the append's transaction,
//! walked in pages consistent with an offset, bounded, and dropped by its own retention; and
//! replay from a time. Events are built by the real publish validation, and the chain's
//! object is the real core over the reference store.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::demo_config;
use common::object::Object;
use pms_events::auth::token::AccessClaims;
use pms_events::config::{Limits, ServiceConfig};
use pms_events::current_state::{
    parse_params, plan_state_request, read_state, StateCursor, StateError, StateRefusal, StateRequest, MAX_SEEKS,
};
use pms_events::log::entity::{EntityTotals, MAX_ENTITY_ELEMENTS};
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
    assert_eq!(log.append_folding(&batch, 1_000, &keep()).unwrap(), vec![1, 2, 3]);
    // One more event of R1 in a later batch: the stored state is read back and folded on.
    let later = published(json!([ev(
        "TTE01",
        "Reservation",
        "CHECKIN",
        "R1",
        json!([{"elementName": "Status", "newValue": "IN_HOUSE"}, {"elementName": "Unknown"}])
    )]));
    assert_eq!(log.append_folding(&later, 2_000, &keep()).unwrap(), vec![4]);

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
    log.append_folding(&first, 1, &keep()).unwrap();
    // The same id again with another value: the log keeps the first, and so does the state.
    let mut again =
        published(json!([ev("TTE01", "Folio", "POST", "F1", json!([{"elementName": "Balance", "newValue": "99"}]))]));
    again[0].unique_event_id = "own-1".into();
    again[0].minted = false;
    assert_eq!(log.append_folding(&again, 2, &keep()).unwrap(), vec![1]);
    // An append whose rows fail leaves the state as it was.
    log.store().fail_insert_after.set(Some(0));
    let failing =
        published(json!([ev("TTE01", "Folio", "POST", "F1", json!([{"elementName": "Balance", "newValue": "50"}]))]));
    assert!(log.append_folding(&failing, 3, &keep()).is_err());
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
    log.append_folding(&day, 1, &rules).unwrap();
    assert_eq!(log.store().recount_entities().entities, 3);
    log.append_folding(&published(json!([ev("TTE01", "Reservation", "CHECKOUT", "R1", json!([]))])), 2, &rules)
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
    log.append_folding(&published(json!([ev("TTE01", "Reservation", "NEW", "R1", json!([]))])), 1, &off).unwrap();
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
    log.append_folding(&published(Value::Array(all)), 1, &keep()).unwrap();
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
    log.append_folding(
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
    req.after =
        Some(StateCursor { as_of: 999, hotel: String::new(), module: String::new(), key: String::new() }.encode());
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
    log.append_folding(&published(json!([ev("TTE02", "Zeta", "NEW", "K", json!([]))])), 1, &keep()).unwrap();
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
fn an_entity_holds_a_bounded_number_of_elements() {
    let log = OffsetLog::new(MemoryStore::default());
    for chunk in 0..3 {
        let detail: Vec<Value> =
            (0..500).map(|i| json!({"elementName": format!("e{chunk}-{i:03}"), "newValue": "v"})).collect();
        log.append_folding(
            &published(json!([ev("TTE01", "Profile", "UPDATE", "P1", Value::Array(detail))])),
            1,
            &keep(),
        )
        .unwrap();
    }
    let p = page(&log, &request(&["TTE01"], None, None, 1));
    assert_eq!(p["entities"][0]["elements"].as_array().unwrap().len(), MAX_ENTITY_ELEMENTS);
    assert_eq!(p["entities"][0]["lastOffset"], "3", "the entity goes on changing");
}

#[test]
fn state_outlives_event_retention_and_has_its_own() {
    let log = OffsetLog::new(MemoryStore::default());
    let hour = 3_600_000;
    log.append_folding(&published(json!([ev("TTE01", "Reservation", "NEW", "OLD", json!([]))])), hour, &keep())
        .unwrap();
    log.append_folding(&published(json!([ev("TTE01", "Reservation", "NEW", "NEW", json!([]))])), 50 * hour, &keep())
        .unwrap();
    // Events kept a day: both events go, both entities stay.
    log.apply_retention(100 * hour, 24 * hour).unwrap();
    assert_eq!(log.bounds().unwrap().retained_events(), 0);
    assert_eq!(log.store().recount_entities().entities, 2);
    // Entities kept 60 hours: the one last changed at hour 1 goes, the next alarm is due.
    let outcome = log.apply_state_retention(100 * hour, 60 * hour).unwrap();
    assert_eq!(outcome.deleted, 1);
    assert!(outcome.next_alarm.is_some_and(|at| at >= 110 * hour), "when NEW expires");
    let (_, entities) = walk(&log, request(&["TTE01"], None, None, 10));
    assert_eq!(entities.len(), 1);
    assert_eq!(entities[0]["primaryKey"], "NEW");
    assert_eq!(log.store().entity_totals().unwrap(), log.store().recount_entities());
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

#[test]
fn the_chain_object_folds_what_it_is_published_and_counts_it_in_its_numbers() {
    let mut object = Object::start(demo_config(), 0);
    object.publish(
        &published(json!([
            ev("TTE01", "Reservation", "NEW", "R1", json!([{"elementName": "Room", "newValue": "101"}])),
            ev("TTE02", "Reservation", "NEW", "R2", json!([])),
        ])),
        10,
    );
    let numbers = object.core.numbers(0).unwrap();
    assert_eq!(numbers.entities.entities, 2);
    assert!(numbers.entities.bytes > 100);
    let answer = object.core.state_page(&request(&["TTE01"], None, None, 10)).unwrap().unwrap();
    let p: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(p["entities"][0]["elements"], json!([{"elementName": "Room", "value": "101"}]));
    let refused = object.core.state_page(&request(&["TTE01"], None, Some("x".into()), 10)).unwrap();
    assert_eq!(refused.map_err(|(status, _)| status), Err(400));
}
