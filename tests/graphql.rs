//! GraphQL over the socket: parsing, validation, variables, operation selection, queries,
//! introspection, and the subscription projection plan.

use pms_events::graphql::{
    Api, GraphQLError, Location, NewEventInput, Operation, PreparedQuery, PreparedSubscription, ProjectionPlan,
    QueryContext, SubscribePayload,
};
use serde_json::{json, Value};

const OHIP: &str = r#"subscription { newEvent(input: {chainCode: "TTE", offset: "5", delta: true}) { metadata { offset uniqueEventId } moduleName eventName primaryKey timestamp hotelId publisherId actionInstanceId detail { elementName elementType elementSequence elementRole newValue oldValue scopeFrom scopeTo } } }"#;

/// `getIntrospectionQuery()` of graphql-js 16 with its default options, written out.
const INTROSPECTION_QUERY: &str = r#"
    query IntrospectionQuery {
      __schema {
        
        queryType { name kind }
        mutationType { name kind }
        subscriptionType { name kind }
        types {
          ...FullType
        }
        directives {
          name
          description
          
          
          
          locations
          args {
            ...InputValue
          }
        }
      }
    }

    fragment FullType on __Type {
      kind
      name
      description
      
      
      fields(includeDeprecated: true) {
        name
        description
        args {
          ...InputValue
        }
        type {
          ...TypeRef
        }
        isDeprecated
        deprecationReason
      }
      inputFields {
        ...InputValue
      }
      interfaces {
        ...TypeRef
      }
      enumValues(includeDeprecated: true) {
        name
        description
        isDeprecated
        deprecationReason
      }
      possibleTypes {
        ...TypeRef
      }
    }

    fragment InputValue on __InputValue {
      name
      description
      type { ...TypeRef }
      defaultValue
      
      
    }

    fragment TypeRef on __Type {
      kind
      name
      ofType {
        name
        kind
        ofType {
          name
          kind
          ofType {
            name
            kind
            ofType {
              name
              kind
              ofType {
                name
                kind
                ofType {
                  name
                  kind
                  ofType {
                    name
                    kind
                    ofType {
                      name
                      kind
                      ofType {
                        name
                        kind
                      }
                    }
                  }
                }
              }
            }
          }
        }
      }
    }
  "#;

fn payload(query: &str) -> SubscribePayload {
    SubscribePayload { query: query.to_owned(), operation_name: None, variables: None, extensions: None }
}

fn with(query: &str, operation_name: Option<&str>, variables: Value, extensions: Value) -> SubscribePayload {
    SubscribePayload {
        query: query.to_owned(),
        operation_name: operation_name.map(str::to_owned),
        variables: variables.as_object().cloned(),
        extensions: extensions.as_object().cloned(),
    }
}

fn subscription(api: &Api, p: &SubscribePayload) -> PreparedSubscription {
    match api.prepare(p) {
        Ok(Operation::Subscription(s)) => s,
        Ok(Operation::Query(q)) => panic!("expected a subscription, got {q:?}"),
        Err(e) => panic!("expected a subscription, got errors {e:?}"),
    }
}

fn query(api: &Api, p: &SubscribePayload) -> PreparedQuery {
    match api.prepare(p) {
        Ok(Operation::Query(q)) => q,
        Ok(Operation::Subscription(s)) => panic!("expected a query, got {s:?}"),
        Err(e) => panic!("expected a query, got errors {e:?}"),
    }
}

fn errors(api: &Api, p: &SubscribePayload) -> Vec<GraphQLError> {
    match api.prepare(p) {
        Ok(op) => panic!("expected errors, got {op:?}"),
        Err(e) => {
            assert!(!e.is_empty());
            e
        }
    }
}

fn ctx() -> QueryContext {
    QueryContext {
        connection_id: "conn-42".into(),
        connection_active: true,
        help_base_url: "https://pms-events.example.com/".into(),
        current_state: None,
    }
}

/// An EventHeader as the chain log stores it, with `n` detail entries: even ones changed.
fn event(n: usize) -> Value {
    let detail: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "elementName": format!("Element{i}"),
                "elementType": "STRING",
                "elementSequence": i + 1,
                "elementRole": if i % 3 == 0 { json!("NEW") } else { json!(null) },
                "newValue": format!("v{i}"),
                "oldValue": if i % 2 == 0 { format!("old{i}") } else { format!("v{i}") },
                "scopeFrom": "2026-11-27",
                "scopeTo": "2026-11-28"
            })
        })
        .collect();
    json!({
        "metadata": {"offset": "12", "uniqueEventId": "evt-12"},
        "moduleName": "Reservation",
        "eventName": "CHECKIN",
        "primaryKey": "R1",
        "timestamp": "2026-11-27T10:00:00Z",
        "hotelId": "TTE01",
        "publisherId": "pms-core-001",
        "actionInstanceId": "act-9",
        "detail": detail
    })
}

/// Both projections, checked against each other; returns the text form parsed.
fn project(plan: &ProjectionPlan, event: &Value, delta: bool) -> (Value, String) {
    let mut text = String::new();
    plan.project_to_string(event, delta, &mut text);
    let parsed: Value = serde_json::from_str(&text).expect("project_to_string writes JSON");
    assert_eq!(parsed, plan.project(event, delta), "project and project_to_string agree");
    (parsed, text)
}

#[test]
fn the_schema_is_valid() {
    assert!(Api::schema_is_valid());
}

#[test]
fn ohip_document_prepares_and_projects_every_field() {
    let api = Api::new();
    let sub = subscription(&api, &payload(OHIP));
    assert_eq!(sub.response_key, "newEvent");
    assert_eq!(
        sub.input,
        NewEventInput {
            chain_code: "TTE".into(),
            offset: Some("5".into()),
            offset_type: None,
            delta: true,
            hotel_code: None,
            event_names: None,
            module_names: None,
            from_time: None,
        }
    );
    let ev = event(10);
    let (without_delta, text) = project(&sub.plan, &ev, false);
    // Every field of the selection, in selection order, and nothing else.
    assert_eq!(without_delta, ev);
    assert!(text.starts_with(
        r#"{"metadata":{"offset":"12","uniqueEventId":"evt-12"},"moduleName":"Reservation","eventName":"CHECKIN","primaryKey":"R1","timestamp":"2026-11-27T10:00:00Z","hotelId":"TTE01","publisherId":"pms-core-001","actionInstanceId":"act-9","detail":[{"elementName":"Element0","elementType":"STRING","elementSequence":1,"elementRole":"NEW","newValue":"v0","oldValue":"old0","scopeFrom":"2026-11-27","scopeTo":"2026-11-28"}"#
    ), "{text}");

    let (with_delta, _) = project(&sub.plan, &ev, sub.input.delta);
    let detail = with_delta["detail"].as_array().unwrap();
    assert_eq!(detail.len(), 5);
    for entry in detail {
        assert_ne!(entry["newValue"], entry["oldValue"]);
    }
    let names: Vec<&str> = detail.iter().map(|d| d["elementName"].as_str().unwrap()).collect();
    assert_eq!(names, ["Element0", "Element2", "Element4", "Element6", "Element8"]);
}

#[test]
fn delta_compares_missing_and_null_values_as_equal() {
    let api = Api::new();
    let sub = subscription(
        &api,
        &payload(r#"subscription { newEvent(input: {chainCode: "TTE", delta: true}) { detail { elementName } } }"#),
    );
    let ev = json!({"detail": [
        {"elementName": "a", "newValue": "1", "oldValue": "1"},
        {"elementName": "b", "newValue": "2"},
        {"elementName": "c", "newValue": null, "oldValue": null},
        {"elementName": "d"},
        {"elementName": "e", "oldValue": "x"},
        {"elementName": "f", "newValue": "3", "oldValue": "4"}
    ]});
    let (out, _) = project(&sub.plan, &ev, true);
    assert_eq!(out, json!({"detail": [{"elementName": "b"}, {"elementName": "e"}, {"elementName": "f"}]}));
    let (all, _) = project(&sub.plan, &ev, false);
    assert_eq!(all["detail"].as_array().unwrap().len(), 6);
}

#[test]
fn variable_defaults_drive_skip_and_include() {
    let api = Api::new();
    let doc = r#"
        subscription Watch($chain: String!, $withDetail: Boolean = true, $hideHotel: Boolean = false, $withSeq: Boolean! = false) {
          newEvent(input: {chainCode: $chain}) {
            eventName
            hotelId @skip(if: $hideHotel)
            detail @include(if: $withDetail) {
              elementName
              elementSequence @include(if: $withSeq)
            }
          }
        }"#;
    // Defaults only.
    let sub = subscription(&api, &with(doc, None, json!({"chain": "TTE"}), Value::Null));
    assert_eq!(sub.input.chain_code, "TTE");
    let (out, text) = project(&sub.plan, &event(1), false);
    assert_eq!(out, json!({"eventName": "CHECKIN", "hotelId": "TTE01", "detail": [{"elementName": "Element0"}]}));
    assert_eq!(text, r#"{"eventName":"CHECKIN","hotelId":"TTE01","detail":[{"elementName":"Element0"}]}"#);
    // Every default overridden.
    let sub = subscription(
        &api,
        &with(
            doc,
            None,
            json!({"chain": "HTBTTE", "withDetail": false, "hideHotel": true, "withSeq": true}),
            Value::Null,
        ),
    );
    assert_eq!(sub.input.chain_code, "HTBTTE");
    assert_eq!(project(&sub.plan, &event(1), false).0, json!({"eventName": "CHECKIN"}));
    // Detail back, with the sequence.
    let sub = subscription(&api, &with(doc, None, json!({"chain": "TTE", "withSeq": true}), Value::Null));
    assert_eq!(
        project(&sub.plan, &event(1), false).0["detail"],
        json!([{"elementName": "Element0", "elementSequence": 1}])
    );
    // Literal conditions work too, on fragments as well as fields.
    let sub = subscription(
        &api,
        &payload(
            r#"subscription { newEvent(input: {chainCode: "TTE"}) { eventName @skip(if: true) moduleName @include(if: true) ... on EventHeader @include(if: false) { primaryKey } ...F @skip(if: false) } } fragment F on EventHeader { hotelId }"#,
        ),
    );
    assert_eq!(project(&sub.plan, &event(0), false).0, json!({"moduleName": "Reservation", "hotelId": "TTE01"}));
}

#[test]
fn aliases_fragments_typename_and_field_merging() {
    let api = Api::new();
    let doc = r#"
        subscription Feed {
          ev: newEvent(input: {chainCode: "TTE"}) {
            kind: __typename
            ...Head
            meta: metadata { __typename offset }
            metadata { uniqueEventId }
            metadata { offset ...on EventMetadata { id: uniqueEventId } }
            ... on EventHeader {
              name: eventName
              detail { ...Detail }
            }
            ... {
              detail { value: newValue elementName }
            }
          }
        }
        fragment Head on EventHeader { moduleName eventName hotel: hotelId }
        fragment Detail on EventDetail { __typename elementName seq: elementSequence }
    "#;
    let sub = subscription(&api, &payload(doc));
    assert_eq!(sub.response_key, "ev");
    assert_eq!(
        sub.plan.response_keys(),
        ["kind", "moduleName", "eventName", "hotel", "meta", "metadata", "name", "detail"]
    );
    let (out, text) = project(&sub.plan, &event(2), false);
    assert_eq!(
        text,
        concat!(
            r#"{"kind":"EventHeader","moduleName":"Reservation","eventName":"CHECKIN","hotel":"TTE01","#,
            r#""meta":{"__typename":"EventMetadata","offset":"12"},"#,
            r#""metadata":{"uniqueEventId":"evt-12","offset":"12","id":"evt-12"},"#,
            r#""name":"CHECKIN","#,
            r#""detail":[{"__typename":"EventDetail","elementName":"Element0","seq":1,"value":"v0"},"#,
            r#"{"__typename":"EventDetail","elementName":"Element1","seq":2,"value":"v1"}]}"#
        )
    );
    assert_eq!(out["metadata"], json!({"uniqueEventId": "evt-12", "offset": "12", "id": "evt-12"}));
}

#[test]
fn missing_fields_project_to_null_and_values_are_coerced() {
    let api = Api::new();
    let sub = subscription(&api, &payload(OHIP));
    let ev = json!({
        "metadata": {"offset": "3", "uniqueEventId": "u"},
        "moduleName": "Reservation", "eventName": "CHECKOUT", "primaryKey": "R2",
        "timestamp": "2026-11-27T10:00:00Z",
        "detail": [
            {"elementName": "Rate", "elementSequence": "7", "newValue": 120.5, "oldValue": true},
            null,
            {"elementName": "Quote\"d\n\\ \u{1}\t\u{1f} é€ 🏨", "elementSequence": 3.0}
        ]
    });
    let (out, text) = project(&sub.plan, &ev, false);
    assert_eq!(out["hotelId"], Value::Null);
    assert_eq!(out["publisherId"], Value::Null);
    assert_eq!(out["actionInstanceId"], Value::Null);
    assert_eq!(out["detail"][0]["elementSequence"], json!(7));
    assert_eq!(out["detail"][0]["newValue"], json!("120.5"));
    assert_eq!(out["detail"][0]["oldValue"], json!("true"));
    assert_eq!(out["detail"][0]["scopeFrom"], Value::Null);
    assert_eq!(out["detail"][1], Value::Null);
    assert_eq!(out["detail"][2]["elementName"], json!("Quote\"d\n\\ \u{1}\t\u{1f} é€ 🏨"));
    assert!(text.contains(r#""elementName":"Quote\"d\n\\ \u0001\t\u001f é€ 🏨""#), "{text}");
    assert_eq!(out["detail"][2]["elementSequence"], json!(3));
    // Not an object at all.
    assert_eq!(project(&sub.plan, &json!("nope"), false).0, Value::Null);
    assert_eq!(project(&sub.plan, &json!({"detail": 5, "metadata": []}), false).0["detail"], Value::Null);
}

#[test]
fn the_plan_round_trips_through_serde_json_and_is_compact() {
    let api = Api::new();
    let sub = subscription(&api, &payload(OHIP));
    let text = serde_json::to_string(&sub.plan).unwrap();
    println!("OHIP plan: {} bytes: {text}", text.len());
    assert!(text.len() < 400, "{} bytes", text.len());
    let back: ProjectionPlan = serde_json::from_str(&text).unwrap();
    assert_eq!(back, sub.plan);
    let ev = event(4);
    assert_eq!(project(&back, &ev, true), project(&sub.plan, &ev, true));

    let sub = subscription(
        &api,
        &payload(
            r#"subscription { e: newEvent(input: {chainCode: "TTE"}) { t: __typename m: metadata { o: offset } detail { s: elementSequence newValue } } }"#,
        ),
    );
    let text = serde_json::to_string(&sub.plan).unwrap();
    assert_eq!(
        text,
        r#"[{"t":["t","EventHeader"]},{"o":[["m","metadata"],[{"s":["o","offset"]}]]},{"l":["detail",[{"i":["s","elementSequence"]},{"s":"newValue"}]]}]"#
    );
    assert_eq!(serde_json::from_str::<ProjectionPlan>(&text).unwrap(), sub.plan);
    // The input ships as JSON too.
    let input = serde_json::to_value(&sub.input).unwrap();
    assert_eq!(input["chainCode"], "TTE");
    assert_eq!(serde_json::from_value::<NewEventInput>(input).unwrap(), sub.input);
}

#[test]
fn input_from_variables_with_list_coercion() {
    let api = Api::new();
    let doc = r#"subscription S($in: NewEventInput!) { newEvent(input: $in) { eventName } }"#;
    let sub = subscription(
        &api,
        &with(
            doc,
            None,
            json!({"in": {"chainCode": "TTE", "offsetType": "highest", "delta": null, "hotelCode": "TTE01,TTE02", "eventNames": "CHECKIN", "moduleNames": ["Reservation", "Folio"]}}),
            Value::Null,
        ),
    );
    assert_eq!(
        sub.input,
        NewEventInput {
            chain_code: "TTE".into(),
            offset: None,
            offset_type: Some("highest".into()),
            delta: false,
            hotel_code: Some("TTE01,TTE02".into()),
            event_names: Some(vec!["CHECKIN".into()]),
            module_names: Some(vec!["Reservation".into(), "Folio".into()]),
            from_time: None,
        }
    );
    // Variables nested inside the input object; an absent nullable one stays absent.
    let doc = r#"subscription S($chain: String!, $off: String, $names: [String!] = ["CHECKOUT"]) { newEvent(input: {chainCode: $chain, offset: $off, eventNames: $names}) { eventName } }"#;
    let sub = subscription(&api, &with(doc, None, json!({"chain": "OTH"}), Value::Null));
    assert_eq!(sub.input.chain_code, "OTH");
    assert_eq!(sub.input.offset, None);
    assert_eq!(sub.input.event_names, Some(vec!["CHECKOUT".into()]));

    // A missing required variable, and a value of the wrong type.
    let e = errors(&api, &with(doc, None, json!({}), Value::Null));
    assert_eq!(e[0].code(), Some("BAD_USER_INPUT"), "{e:?}");
    assert!(e[0].message.contains("chain"), "{e:?}");
    let e = errors(&api, &with(doc, None, json!({"chain": 5}), Value::Null));
    assert_eq!(e[0].code(), Some("BAD_USER_INPUT"), "{e:?}");
    let e = errors(
        &api,
        &with(
            r#"subscription S($in: NewEventInput!) { newEvent(input: $in) { eventName } }"#,
            None,
            json!({"in": {"offset": "1"}}),
            Value::Null,
        ),
    );
    assert_eq!(e[0].code(), Some("BAD_USER_INPUT"), "{e:?}");
}

#[test]
fn offsets_must_be_decimal_and_from_offset_folds_in() {
    let api = Api::new();
    let doc =
        |offset: &str| format!(r#"subscription {{ newEvent(input: {{chainCode: "TTE"{offset}}}) {{ eventName }} }}"#);
    for bad in ["12a", "", "-1", " 1", "1.0", "0x10"] {
        let e = errors(&api, &payload(&doc(&format!(", offset: {bad:?}"))));
        assert_eq!(e[0].code(), Some("BAD_USER_INPUT"), "{bad:?}: {e:?}");
        assert_eq!(e[0].locations, [Location { line: 1, column: 16 }], "{e:?}");
    }
    let sub = subscription(&api, &with(&doc(""), None, Value::Null, json!({"fromOffset": 42})));
    assert_eq!(sub.input.offset.as_deref(), Some("42"));
    let sub = subscription(&api, &with(&doc(""), None, Value::Null, json!({"fromOffset": "0007"})));
    assert_eq!(sub.input.offset.as_deref(), Some("0007"));
    let sub = subscription(&api, &with(&doc(""), None, Value::Null, json!({"fromOffset": null, "other": 1})));
    assert_eq!(sub.input.offset, None);
    // input.offset wins over extensions.fromOffset.
    let sub = subscription(&api, &with(&doc(r#", offset: "9""#), None, Value::Null, json!({"fromOffset": 42})));
    assert_eq!(sub.input.offset.as_deref(), Some("9"));
    for bad in [json!(-1), json!(1.5), json!("x1"), json!(""), json!(true), json!([1])] {
        let e = errors(&api, &with(&doc(""), None, Value::Null, json!({"fromOffset": bad})));
        assert_eq!(e[0].code(), Some("BAD_USER_INPUT"), "{bad}: {e:?}");
    }
}

#[test]
fn operation_name_selects_among_several_operations() {
    let api = Api::new();
    let doc = r#"
        query Help { getHelp { overview } }
        subscription Live { newEvent(input: {chainCode: "TTE"}) { eventName } }
        subscription Replay { replay: newEvent(input: {chainCode: "TTE", offset: "1"}) { primaryKey } }
    "#;
    let q = query(&api, &with(doc, Some("Help"), Value::Null, Value::Null));
    assert_eq!(q.operation_name(), Some("Help"));
    let live = subscription(&api, &with(doc, Some("Live"), Value::Null, Value::Null));
    assert_eq!(live.response_key, "newEvent");
    assert_eq!(live.input.offset, None);
    assert_eq!(live.plan.response_keys(), ["eventName"]);
    let replay = subscription(&api, &with(doc, Some("Replay"), Value::Null, Value::Null));
    assert_eq!(replay.response_key, "replay");
    assert_eq!(replay.input.offset.as_deref(), Some("1"));
    assert_eq!(replay.plan.response_keys(), ["primaryKey"]);

    let e = errors(&api, &payload(doc));
    assert!(e[0].message.contains("operationName"), "{e:?}");
    let e = errors(&api, &with(doc, Some("Nope"), Value::Null, Value::Null));
    assert!(e[0].message.contains("Nope"), "{e:?}");
    assert_eq!(e[0].code(), Some("OPERATION_RESOLUTION_FAILURE"));
    // A single named operation needs no name, but a wrong one is still an error.
    let single = r#"subscription Only { newEvent(input: {chainCode: "TTE"}) { eventName } }"#;
    subscription(&api, &payload(single));
    errors(&api, &with(single, Some("Other"), Value::Null, Value::Null));
}

#[test]
fn validation_errors_carry_locations() {
    let api = Api::new();
    let cases: &[(&str, &str, (usize, usize))] = &[
        // unknown field
        ("subscription {\n  newEvent(input: {chainCode: \"TTE\"}) {\n    nope\n  }\n}", "nope", (3, 5)),
        // syntax error
        ("subscription {\n  newEvent(input: {chainCode: \"TTE\"}) {\n    eventName\n", "syntax error", (3, 15)),
        // missing required argument
        ("subscription {\n  newEvent { eventName }\n}", "input", (2, 3)),
        // wrong argument type
        ("subscription {\n  newEvent(input: {chainCode: 5}) { eventName }\n}", "String!", (2, 31)),
        // unknown argument field
        ("subscription {\n  newEvent(input: {chainCode: \"T\", color: \"red\"}) { eventName }\n}", "color", (2, 43)),
        // undefined variable
        ("subscription {\n  newEvent(input: {chainCode: $chain}) { eventName }\n}", "chain", (2, 31)),
        // mutation: not in the schema
        ("mutation {\n  getHelp { overview }\n}", "mutation", (1, 1)),
        // two root fields
        ("subscription Two {\n  a: newEvent(input: {chainCode: \"A\"}) { eventName }\n  b: newEvent(input: {chainCode: \"B\"}) { eventName }\n}", "only have one root field", (1, 1)),
        // __typename at the subscription root
        ("subscription {\n  __typename\n  newEvent(input: {chainCode: \"A\"}) { eventName }\n}", "introspection field", (2, 3)),
        // leaf without selection / object without selection
        ("subscription {\n  newEvent(input: {chainCode: \"A\"})\n}", "subselection", (2, 3)),
        // unknown fragment
        ("subscription {\n  newEvent(input: {chainCode: \"A\"}) { ...Missing }\n}", "Missing", (2, 39)),
        // conflicting merge: same response key, different fields
        ("subscription {\n  newEvent(input: {chainCode: \"A\"}) {\n    x: eventName\n    x: moduleName\n  }\n}", "same alias `x`", (4, 5)),
    ];
    for (doc, needle, (line, column)) in cases {
        let e = errors(&api, &payload(doc));
        let all = format!("{e:?}");
        assert!(e.iter().any(|e| e.message.contains(needle)), "{doc}: expected {needle:?} in {all}");
        assert!(
            e.iter().any(|e| e.locations.contains(&Location { line: *line, column: *column })),
            "{doc}: expected location {line}:{column} in {all}"
        );
        for error in &e {
            assert!(matches!(error.code(), Some("GRAPHQL_VALIDATION_FAILED" | "GRAPHQL_PARSE_FAILED")), "{all}");
        }
        // The wire form: locations as objects, code under extensions.
        let wire = serde_json::to_value(&e[0]).unwrap();
        assert!(wire["locations"][0]["line"].is_u64(), "{wire}");
        assert!(wire["extensions"]["code"].is_string(), "{wire}");
    }
    // Syntax errors come alone, not mixed with validation of a half-parsed document.
    let e = errors(&api, &payload("subscription { newEvent(input: {chainCode: \"TTE\"}) { nope "));
    assert!(e.iter().all(|e| e.code() == Some("GRAPHQL_PARSE_FAILED")), "{e:?}");
    // Without locations or extensions the fields are left out of the wire form.
    assert_eq!(serde_json::to_value(GraphQLError::new("x")).unwrap(), json!({"message": "x"}));
    assert_eq!(
        serde_json::to_value(GraphQLError::coded("no", "FORBIDDEN")).unwrap(),
        json!({"message": "no", "extensions": {"code": "FORBIDDEN"}})
    );
}

#[test]
fn oversized_selections_are_refused() {
    let api = Api::new();
    let aliases: String = (0..40).map(|i| format!("a{i}: elementName ")).collect();
    let lists: String = (0..40).map(|i| format!("d{i}: detail {{ ...D }} ")).collect();
    let doc = format!(
        "subscription {{ newEvent(input: {{chainCode: \"TTE\"}}) {{ {lists} }} }} fragment D on EventDetail {{ {aliases} }}"
    );
    let e = errors(&api, &payload(&doc));
    assert_eq!(e[0].code(), Some("QUERY_TOO_COMPLEX"), "{e:?}");
    // Too many tokens for the parser.
    let long: String = (0..5000).map(|i| format!("a{i}: eventName ")).collect();
    let e = errors(&api, &payload(&format!("subscription {{ newEvent(input: {{chainCode: \"TTE\"}}) {{ {long} }} }}")));
    assert_eq!(e[0].code(), Some("GRAPHQL_PARSE_FAILED"), "{e:?}");
    // Too deep for the parser.
    let deep = format!("query {{ {}__typename{} }}", "... { ".repeat(200), " }".repeat(200));
    let e = errors(&api, &payload(&deep));
    assert_eq!(e[0].code(), Some("GRAPHQL_PARSE_FAILED"), "{e:?}");
}

#[test]
fn queries_answer_help_connection_and_typename() {
    let api = Api::new();
    let doc = r#"
        query Q($full: Boolean = false) {
          __typename
          help: getHelp {
            overview configuration slack email
            connection { help errors }
            events @include(if: $full) { payload replaying }
            ...on Help { t: __typename }
          }
          connection { id status __typename }
        }"#;
    let q = query(&api, &payload(doc));
    assert!(q.selects_connection());
    let out = q.execute(&ctx());
    assert_eq!(
        out,
        json!({"data": {
            "__typename": "Query",
            "help": {
                "overview": "https://pms-events.example.com/README.md#overview",
                "configuration": "https://pms-events.example.com/docs/operations.md#configuration",
                "slack": "#pms-events-support",
                "email": "pms-events-support@example.com",
                "connection": {
                    "help": "https://pms-events.example.com/docs/protocol.md#connecting",
                    "errors": "https://pms-events.example.com/docs/protocol.md#errors"
                },
                "t": "Help"
            },
            "connection": {"id": "conn-42", "status": "Active", "__typename": "ConnectionStatus"}
        }})
    );
    // The wire text keeps the selection order.
    let text = q.execute_json(&ctx());
    assert!(text.starts_with(r#"{"data":{"__typename":"Query","help":{"overview":"#), "{text}");

    let q = query(&api, &with(doc, None, json!({"full": true}), Value::Null));
    let mut inactive = ctx();
    inactive.connection_active = false;
    let out = q.execute(&inactive);
    assert_eq!(out["data"]["connection"]["status"], "Inactive");
    assert_eq!(
        out["data"]["help"]["events"],
        json!({
            "payload": "https://pms-events.example.com/docs/protocol.md#event-payload",
            "replaying": "https://pms-events.example.com/docs/protocol.md#replaying"
        })
    );

    let q = query(&api, &payload("{ getHelp { email } }"));
    assert!(!q.selects_connection());
    assert_eq!(q.execute(&ctx()), json!({"data": {"getHelp": {"email": "pms-events-support@example.com"}}}));
    // `connection` under @skip is not selected.
    let q = query(
        &api,
        &with("query($s: Boolean!) { connection @skip(if: $s) { id } }", None, json!({"s": true}), Value::Null),
    );
    assert!(!q.selects_connection());
    assert_eq!(q.execute(&ctx()), json!({"data": {}}));
}

#[test]
fn standard_introspection_query_describes_the_schema() {
    let api = Api::new();
    let q = query(&api, &payload(INTROSPECTION_QUERY));
    assert!(!q.selects_connection());
    let out = q.execute(&ctx());
    assert!(out.get("errors").is_none(), "{out}");
    let schema = &out["data"]["__schema"];
    assert_eq!(schema["queryType"]["name"], "Query");
    assert_eq!(schema["mutationType"], Value::Null);
    assert_eq!(schema["subscriptionType"]["name"], "Subscription");
    let types = schema["types"].as_array().unwrap();
    let ty = |name: &str| types.iter().find(|t| t["name"] == name).unwrap_or_else(|| panic!("type {name} missing"));
    let subscription = ty("Subscription");
    assert_eq!(subscription["kind"], "OBJECT");
    let new_event = &subscription["fields"][0];
    assert_eq!(new_event["name"], "newEvent");
    assert_eq!(new_event["type"]["kind"], "NON_NULL");
    assert_eq!(new_event["type"]["ofType"]["name"], "EventHeader");
    assert_eq!(new_event["args"][0]["name"], "input");
    assert_eq!(new_event["args"][0]["type"]["ofType"]["name"], "NewEventInput");
    let input = ty("NewEventInput");
    assert_eq!(input["kind"], "INPUT_OBJECT");
    let input_fields: Vec<&str> =
        input["inputFields"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(
        input_fields,
        ["chainCode", "offset", "offsetType", "delta", "hotelCode", "eventNames", "moduleNames", "fromTime"]
    );
    let detail =
        ty("EventHeader")["fields"].as_array().unwrap().iter().find(|f| f["name"] == "detail").unwrap().clone();
    assert_eq!(detail["type"]["kind"], "NON_NULL");
    assert_eq!(detail["type"]["ofType"]["kind"], "LIST");
    assert_eq!(detail["type"]["ofType"]["ofType"]["name"], "EventDetail");
    assert!(ty("__Schema")["fields"].is_array());
    let directives: Vec<&str> =
        schema["directives"].as_array().unwrap().iter().map(|d| d["name"].as_str().unwrap()).collect();
    assert!(directives.contains(&"skip") && directives.contains(&"include"), "{directives:?}");
    println!("introspection answer: {} bytes", q.execute_json(&ctx()).len());

    // __type with a variable.
    let q = query(
        &api,
        &with(
            "query T($name: String!) { __type(name: $name) { name kind fields { name } } }",
            None,
            json!({"name": "EventMetadata"}),
            Value::Null,
        ),
    );
    assert_eq!(
        q.execute(&ctx()),
        json!({"data": {"__type": {"name": "EventMetadata", "kind": "OBJECT", "fields": [{"name": "offset"}, {"name": "uniqueEventId"}]}}})
    );
    // Introspection nested too deep is refused before execution.
    let deep = "{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }";
    let e = errors(&api, &payload(deep));
    assert!(e[0].message.contains("depth"), "{e:?}");
}

#[test]
fn projection_timing_full_ohip_selection_ten_detail_entries() {
    let api = Api::new();
    let started = std::time::Instant::now();
    let sub = subscription(&api, &payload(OHIP));
    let prepare = started.elapsed();
    let ev = event(10);
    let mut out = String::with_capacity(4096);
    let rounds = 20_000u32;
    // Warm up.
    for _ in 0..1_000 {
        out.clear();
        sub.plan.project_to_string(&ev, true, &mut out);
    }
    let started = std::time::Instant::now();
    for _ in 0..rounds {
        out.clear();
        sub.plan.project_to_string(std::hint::black_box(&ev), false, &mut out);
    }
    let full = started.elapsed() / rounds;
    let started = std::time::Instant::now();
    for _ in 0..rounds {
        out.clear();
        sub.plan.project_to_string(std::hint::black_box(&ev), true, &mut out);
    }
    let delta = started.elapsed() / rounds;
    let started = std::time::Instant::now();
    for _ in 0..rounds / 10 {
        std::hint::black_box(sub.plan.project(std::hint::black_box(&ev), false));
    }
    let as_value = started.elapsed() / (rounds / 10);
    println!(
        "prepare (parse+validate+coerce+compile) of the OHIP document: {prepare:?}; per event, 10 detail entries: \
         project_to_string {full:?} ({} bytes), with delta {delta:?}, project (Value) {as_value:?} [{} build]",
        out.len(),
        if cfg!(debug_assertions) { "debug" } else { "release" }
    );
}

/// Deep documents are refused (parser limit, apollo's fragment limits, our depth limit) or
/// handled, all within a small stack: wasm has about 1 MiB and a stack overflow would kill the
/// instance.
#[test]
fn deep_documents_fit_a_small_stack() {
    let run = || {
        let api = Api::new();
        let code = |doc: &str| match api.prepare(&payload(doc)) {
            Ok(Operation::Query(q)) => {
                let out = q.execute(&ctx());
                assert!(out.get("data").is_some(), "{out}");
                None
            }
            Ok(Operation::Subscription(_)) => None,
            Err(e) => e[0].code().map(str::to_owned),
        };
        let nest = |open: &str, inner: &str, n: usize| {
            format!("{{ __type(name: \"EventHeader\") {{ {}{inner}{} }} }}", open.repeat(n), " }".repeat(n))
        };
        assert_eq!(code(&nest("... { ", "name", 60)), None);
        assert_eq!(code(&nest("ofType { ", "name", 60)), None);
        assert_eq!(code(&nest("... { ", "name", 126)).as_deref(), Some("QUERY_TOO_COMPLEX"));
        assert_eq!(code(&nest("ofType { ", "name", 126)).as_deref(), Some("QUERY_TOO_COMPLEX"));
        assert_eq!(code(&nest("... { ", "name", 200)).as_deref(), Some("GRAPHQL_PARSE_FAILED"));
        let chain = |n: usize, body: &str| {
            let mut doc = String::from("query { __type(name: \"EventHeader\") { ...F0 } }\n");
            for i in 0..n {
                doc.push_str(&format!(
                    "fragment F{i} on __Type {{ {} }}\n",
                    body.replace("NEXT", &format!("F{}", i + 1))
                ));
            }
            doc + &format!("fragment F{n} on __Type {{ name }}")
        };
        assert_eq!(code(&chain(60, "ofType { name ...NEXT }")), None);
        assert_eq!(code(&chain(60, "...NEXT")), None);
        for n in [100, 300] {
            for body in ["ofType { name ...NEXT }", "...NEXT"] {
                assert_eq!(code(&chain(n, body)).as_deref(), Some("GRAPHQL_VALIDATION_FAILED"), "{n} {body}");
            }
        }
        assert_eq!(code(&chain(1000, "...NEXT")).as_deref(), Some("GRAPHQL_PARSE_FAILED"));
    };
    std::thread::Builder::new().stack_size(512 * 1024).spawn(run).unwrap().join().unwrap();
}

#[test]
fn field_copies_count_aliases_through_lists_and_objects() {
    let api = Api::new();
    let copies = |q: &str| subscription(&api, &with(q, None, json!({}), json!({}))).plan.max_field_copies();
    assert_eq!(copies(OHIP).0, 1, "the OHIP selection repeats nothing");
    let aliases: String = (0..900).map(|i| format!("a{i}: newValue ")).collect();
    let q = format!(r#"subscription {{ newEvent(input: {{chainCode: "TTE"}}) {{ detail {{ {aliases} }} }} }}"#);
    assert_eq!(copies(&q), (900, "detail.newValue".to_string()));
    let q = r#"subscription { newEvent(input: {chainCode: "TTE"}) { a: detail { x: newValue y: newValue } b: detail { newValue } } }"#;
    assert_eq!(copies(q), (3, "detail.newValue".to_string()));
}

#[test]
fn current_state_takes_its_input_from_literals_and_variables_and_answers_from_the_page() {
    let api = Api::new();
    let q = query(
        &api,
        &with(
            "query S($after: String) { page: currentState(input: {chainCode: \"TTE\", hotelCode: \"TTE01\", after: $after, first: 2}) \
                { asOfOffset next entities { primaryKey lastOffset elements { elementName value } } } }",
            None,
            json!({"after": "abc"}),
            Value::Null,
        ),
    );
    let input = q.state_input().expect("currentState is selected");
    assert_eq!(
        (input.chain_code.as_str(), input.hotel_code.as_deref(), input.after.as_deref(), input.first),
        ("TTE", Some("TTE01"), Some("abc"), Some(2))
    );
    let page = json!({
        "chainCode": "TTE", "asOfOffset": "7", "next": null,
        "entities": [{"hotelId": "TTE01", "moduleName": "Room", "primaryKey": "101", "lastOffset": "5",
            "lastEventName": "CLEAN", "lastTimestamp": "2026-12-07T10:00:00Z",
            "elements": [{"elementName": "Status", "value": "CLEAN"}]}],
    });
    let out = q.execute(&QueryContext { current_state: Some(page), ..ctx() });
    assert_eq!(
        out,
        json!({"data": {"page": {"asOfOffset": "7", "next": null, "entities": [
            {"primaryKey": "101", "lastOffset": "5", "elements": [{"elementName": "Status", "value": "CLEAN"}]}
        ]}}})
    );
    // Not selected: nothing to fetch.
    assert!(query(&api, &payload("{ getHelp { overview } }")).state_input().is_none());
}

#[test]
fn current_state_is_selected_once_and_its_input_is_required() {
    let api = Api::new();
    let twice = errors(
        &api,
        &payload("{ a: currentState(input: {chainCode: \"TTE\"}) { next } b: currentState(input: {chainCode: \"HTBTTE\"}) { next } }"),
    );
    assert!(twice[0].message.contains("once"), "{twice:?}");
    let missing = errors(&api, &payload("{ currentState { next } }"));
    assert_eq!(missing[0].extensions["code"], "GRAPHQL_VALIDATION_FAILED");
}

#[test]
fn from_time_starts_a_replay_at_a_time_and_excludes_an_offset() {
    let api = Api::new();
    let sub = subscription(
        &api,
        &payload("subscription { newEvent(input: {chainCode: \"TTE\", fromTime: \"2026-12-07T10:00:00+01:00\"}) { eventName } }"),
    );
    assert_eq!(sub.input.from_time, Some(1_796_634_000_000));
    let by_extension = subscription(
        &api,
        &with(
            "subscription { newEvent(input: {chainCode: \"TTE\"}) { eventName } }",
            None,
            Value::Null,
            json!({"fromTime": "2026-12-07T09:00:00Z"}),
        ),
    );
    assert_eq!(by_extension.input.from_time, Some(1_796_634_000_000));
    for bad in [
        "subscription { newEvent(input: {chainCode: \"TTE\", fromTime: \"yesterday\"}) { eventName } }",
        "subscription { newEvent(input: {chainCode: \"TTE\", fromTime: \"1969-12-31T23:59:59Z\"}) { eventName } }",
        "subscription { newEvent(input: {chainCode: \"TTE\", offset: \"3\", fromTime: \"2026-12-07T09:00:00Z\"}) { eventName } }",
    ] {
        let e = errors(&api, &payload(bad));
        assert_eq!(e[0].extensions["code"], "BAD_USER_INPUT", "{bad}: {e:?}");
    }
}
