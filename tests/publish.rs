//! Batch validation: the whole batch is judged before anything is stored.

mod common;

use common::demo_config;
use pms_events::config::Limits;
use pms_events::publish::{validate_batch, BatchError};
use serde_json::{json, Value};

fn good(hotel: &str) -> Value {
    json!({
        "moduleName": "Reservation", "eventName": "CHECKIN", "primaryKey": "R1",
        "timestamp": "2026-11-27T10:00:00Z", "hotelId": hotel,
        "detail": [{"elementName": "RoomNumber", "newValue": "101", "oldValue": null, "elementSequence": 1}]
    })
}

fn run(body: Value) -> Result<Vec<pms_events::publish::ValidEvent>, BatchError> {
    let config = demo_config();
    let mut n = 0;
    validate_batch(body.to_string().as_bytes(), config.chain("TTE").unwrap(), &Limits::default(), || {
        n += 1;
        format!("gen-{n}")
    })
}

#[test]
fn single_event_and_array_are_accepted_with_generated_ids() {
    let one = run(good("TTE01")).unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].unique_event_id, "gen-1");
    let body: Value = serde_json::from_str(&one[0].body).unwrap();
    assert_eq!(body["metadata"]["uniqueEventId"], "gen-1");
    assert_eq!(body["detail"][0]["newValue"], "101");
    let mut with_id = good("TTE02");
    with_id["uniqueEventId"] = json!("u-42");
    let two = run(json!([good("TTE01"), with_id])).unwrap();
    assert_eq!(two[1].unique_event_id, "u-42");
    assert_eq!(two[1].hotel_id, "TTE02");
    let body: Value = serde_json::from_str(&two[1].body).unwrap();
    assert_eq!(body["metadata"], json!({"uniqueEventId": "u-42"}), "the id moves into metadata");
    assert!(body.get("uniqueEventId").is_none());
}

#[test]
fn a_valid_batch_crosses_to_the_chain_object_byte_for_byte() {
    use pms_events::rpc::append::{decode_batch, encode_batch};
    let mut events = run(json!([good("TTE01"), good("TTE02")])).unwrap();
    events[0].unique_event_id = "own-id, ünïcode".into();
    events[0].minted = false;
    let wire = encode_batch(&events);
    let back = decode_batch(&wire).unwrap();
    assert_eq!(back.len(), 2);
    for (b, e) in back.iter().zip(&events) {
        assert_eq!(
            (&b.unique_event_id, &b.hotel_id, &b.module_name, &b.event_name, &b.body, b.minted),
            (&e.unique_event_id, &e.hotel_id, &e.module_name, &e.event_name, &e.body, e.minted)
        );
    }
    assert!(back[1].minted, "a generated id stays marked");
    assert!(decode_batch(&wire[..wire.len() - 1]).is_err(), "a truncated batch is refused");
    assert!(decode_batch(&[9]).is_err(), "another format version is refused");
    assert!(decode_batch(&[]).is_err());
}

#[test]
fn every_bad_event_is_reported_with_its_index() {
    let mut no_module = good("TTE01");
    no_module.as_object_mut().unwrap().remove("moduleName");
    let mut bad_ts = good("TTE01");
    bad_ts["timestamp"] = json!("yesterday");
    let mut bad_detail = good("TTE01");
    bad_detail["detail"] = json!([{"newValue": 5}]);
    let err = run(json!([good("TTE01"), no_module, good("HTB01"), bad_ts, bad_detail, 7])).unwrap_err();
    let BatchError::Invalid(errors) = &err else { panic!("{err:?}") };
    let pairs: Vec<(usize, &str)> = errors.iter().map(|e| (e.index, e.field.as_str())).collect();
    assert!(pairs.contains(&(1, "moduleName")), "{pairs:?}");
    assert!(pairs.contains(&(2, "hotelId")), "{pairs:?}");
    assert!(pairs.contains(&(3, "timestamp")), "{pairs:?}");
    assert!(pairs.contains(&(4, "detail[0].newValue")), "{pairs:?}");
    assert!(pairs.contains(&(4, "detail[0].elementName")), "{pairs:?}");
    assert!(pairs.contains(&(5, "")), "{pairs:?}");
    assert!(!pairs.iter().any(|(i, _)| *i == 0));
    assert_eq!(err.status(), 400);
    assert_eq!(err.body()["error"], "invalid_events");
}

#[test]
fn unknown_fields_and_wrong_types_are_refused() {
    let mut e = good("TTE01");
    e["colour"] = json!("red");
    e["publisherId"] = json!(5);
    let BatchError::Invalid(errors) = run(e).unwrap_err() else { panic!() };
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert!(fields.contains(&"colour") && fields.contains(&"publisherId"), "{fields:?}");
}

#[test]
fn empty_batch_and_non_json_are_malformed() {
    assert!(matches!(run(json!([])), Err(BatchError::Malformed(_))));
    assert!(matches!(run(json!("x")), Err(BatchError::Malformed(_))));
    let config = demo_config();
    let r = validate_batch(b"{nope", config.chain("TTE").unwrap(), &Limits::default(), String::new);
    assert!(matches!(r, Err(BatchError::Malformed(_))));
}

#[test]
fn limits_give_413() {
    let config = demo_config();
    let chain = config.chain("TTE").unwrap();
    let limits = Limits { max_events_per_batch: 2, max_event_bytes: 400, max_batch_bytes: 2000, ..Limits::default() };
    let three = json!([good("TTE01"), good("TTE01"), good("TTE01")]).to_string();
    let e = validate_batch(three.as_bytes(), chain, &limits, String::new).unwrap_err();
    assert_eq!(e.status(), 413);
    let mut big = good("TTE01");
    big["detail"][0]["newValue"] = json!("x".repeat(500));
    let e = validate_batch(big.to_string().as_bytes(), chain, &limits, String::new).unwrap_err();
    assert_eq!(e.status(), 413);
    let huge = vec![b' '; 2001];
    assert_eq!(validate_batch(&huge, chain, &limits, String::new).unwrap_err().status(), 413);
}

#[test]
fn the_stored_body_is_the_event_with_its_id_in_metadata_and_no_nulls() {
    let mut e = good("TTE01");
    e["publisherId"] = Value::Null;
    e["detail"][0]["newValue"] = json!("say \"101\" \u{e9}");
    let stored = run(e).unwrap();
    assert_eq!(
        stored[0].body,
        r#"{"detail":[{"elementName":"RoomNumber","elementSequence":1,"newValue":"say \"101\" é"}],"eventName":"CHECKIN","hotelId":"TTE01","metadata":{"uniqueEventId":"gen-1"},"moduleName":"Reservation","primaryKey":"R1","timestamp":"2026-11-27T10:00:00Z"}"#
    );
    assert_eq!((stored[0].module_name.as_str(), stored[0].event_name.as_str()), ("Reservation", "CHECKIN"));
}

/// The stored body is written by hand: it must be what serde_json writes for the same
/// object (keys sorted, nulls left out), byte for byte, whatever the strings hold.
#[test]
fn the_stored_body_is_exactly_serde_jsons_rendering_of_every_field() {
    let tricky = [
        "plain",
        "quote \" and \\ backslash",
        "tab\tnew\nline\r\u{8}\u{c}\u{1}\u{1f}",
        "é ü 漢字 😀 \u{7f} \u{2028}",
        "",
    ];
    for (i, text) in tricky.iter().enumerate() {
        let mut e = json!({
            // (A module name holds no control character: refused, tested below.)
            "moduleName": format!("M{}", text.replace(char::is_control, "")), "eventName": format!("E{text}"), "primaryKey": format!("K{text}"),
            "timestamp": "2026-11-27T10:00:00+01:00", "hotelId": "TTE01",
            "publisherId": format!("P{text}"), "actionInstanceId": format!("A{text}"),
            "uniqueEventId": format!("U{text}"),
            "detail": [
                {"elementName": format!("N{text}"), "elementRole": text, "elementSequence": -7, "elementType": text,
                 "newValue": text, "oldValue": text, "scopeFrom": text, "scopeTo": text},
                {"elementName": "Only", "newValue": null, "elementSequence": null},
                {"elementName": "Second", "elementSequence": 2147483647}
            ]
        });
        if i % 2 == 1 {
            // Optional fields absent or null are left out.
            e["publisherId"] = Value::Null;
            e.as_object_mut().unwrap().remove("actionInstanceId");
        }
        let stored = run(e.clone()).unwrap_or_else(|err| panic!("{text:?}: {err:?}"));
        let mut expected = e.clone();
        let object = expected.as_object_mut().unwrap();
        let id = object.remove("uniqueEventId").unwrap();
        object.insert("metadata".into(), json!({"uniqueEventId": id}));
        object.retain(|_, v| !v.is_null());
        for entry in object["detail"].as_array_mut().unwrap() {
            entry.as_object_mut().unwrap().retain(|_, v| !v.is_null());
        }
        assert_eq!(stored[0].body, serde_json::to_string(&expected).unwrap(), "{text:?}");
    }
}

#[test]
fn an_event_that_does_not_fit_gets_every_fault_listed_and_a_repeated_field_is_refused() {
    let mut misfit = good("HTB01");
    misfit["colour"] = json!("red");
    misfit["moduleName"] = json!(" ");
    misfit["timestamp"] = json!("soon");
    misfit["detail"][0]["elementSequence"] = json!(1.5);
    let mut blank = good("TTE01");
    blank["eventName"] = json!("");
    let BatchError::Invalid(errors) = run(json!([misfit, blank])).unwrap_err() else { panic!() };
    let pairs: Vec<(usize, &str)> = errors.iter().map(|e| (e.index, e.field.as_str())).collect();
    assert_eq!(
        pairs,
        [
            (0, "colour"),
            (0, "moduleName"),
            (0, "timestamp"),
            (0, "hotelId"),
            (0, "detail[0].elementSequence"),
            (1, "eventName")
        ]
    );
    let repeated = br#"{"moduleName":"M","eventName":"E","primaryKey":"P","timestamp":"2026-11-27T10:00:00Z","hotelId":"TTE01","hotelId":"TTE02","detail":[]}"#;
    let config = demo_config();
    let BatchError::Invalid(errors) =
        validate_batch(repeated, config.chain("TTE").unwrap(), &Limits::default(), String::new).unwrap_err()
    else {
        panic!()
    };
    assert_eq!(errors.len(), 1);
    assert!(errors[0].message.contains("duplicate field `hotelId`"), "{errors:?}");
}

/// As the published document says (JSON Schema's `maxLength` counts characters).
#[test]
fn ids_are_limited_to_128_characters() {
    let mut at_limit = good("TTE01");
    at_limit["uniqueEventId"] = json!("é".repeat(128));
    assert!(run(at_limit).is_ok(), "128 characters, 256 bytes");
    let mut over = good("TTE01");
    over["uniqueEventId"] = json!(format!("{}x", "é".repeat(128)));
    let BatchError::Invalid(errors) = run(over).unwrap_err() else { panic!() };
    assert_eq!(errors[0].field, "uniqueEventId");
    assert_eq!(errors[0].message, "uniqueEventId must be at most 128 characters");
}

#[test]
fn events_outside_a_property_grant_are_forbidden_by_index() {
    use pms_events::publish::check_grant;
    let events = run(json!([good("TTE01"), good("TTE02"), good("TTE01")])).unwrap();
    assert_eq!(check_grant(&events, None), Ok(()), "an unrestricted grant allows every property");
    let only_tte01: std::collections::BTreeSet<String> = ["TTE01".to_string()].into();
    let e = check_grant(&events, Some(&only_tte01)).unwrap_err();
    assert_eq!(e.status(), 403);
    let body = e.body();
    assert_eq!(body["error"], "forbidden");
    assert_eq!(
        body["errors"],
        json!([{"index": 1, "field": "hotelId", "message": "hotelId \"TTE02\" is not granted to this publisher"}])
    );
}

#[test]
fn a_module_name_with_a_control_character_is_refused() {
    let mut bad = good("TTE01");
    bad["moduleName"] = json!("Reser\u{1f}vation");
    let Err(BatchError::Invalid(errors)) = run(json!([good("TTE01"), bad])) else { panic!("refused") };
    assert_eq!((errors[0].index, errors[0].field.as_str()), (1, "moduleName"));
    assert!(errors[0].message.contains("control characters"));
}
