//! Webhooks: configuration within grants, the Standard Webhooks signature,
//! and every transition of a webhook's delivery state, against the in-memory log.

mod common;

use common::demo_json;
use pms_events::config::endpoint::{WebhookSecret, WebhookUrl};
use pms_events::config::{Limits, ServiceConfig, Webhook};
use pms_events::log::{Gap, MemoryStore, OffsetLog};
use pms_events::publish::ValidEvent;
use pms_events::webhook::delivery::{AfterFailure, ResumeError};
use pms_events::webhook::signature::{message_id, sign};
use pms_events::webhook::{BatchRange, Failure, Plan, RetryPolicy, WebhookState, MAX_BODY_BYTES};
use serde_json::{json, Value};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn with_webhook(webhook: Value) -> Value {
    let mut doc = demo_json();
    let clients = doc["clients"].as_array_mut().unwrap();
    let app1 = clients.iter_mut().find(|c| c["id"] == "client-app-001").unwrap();
    app1["webhooks"] = json!([webhook]);
    doc
}

fn hook(extra: Value) -> Value {
    let mut w =
        json!({"id": "wh-1", "chain": "TTE", "url": "https://vendor.example/hooks/pms?token=abc", "secret": SECRET});
    for (k, v) in extra.as_object().unwrap() {
        w[k] = v.clone();
    }
    w
}

fn refused(doc: Value) -> String {
    ServiceConfig::parse(&doc.to_string()).expect_err("must be refused").to_string()
}

#[test]
fn a_webhook_within_the_grants_loads_with_its_filters_and_defaults() {
    let config = ServiceConfig::parse(&with_webhook(hook(json!({"eventNames": ["CHECKIN"]}))).to_string()).unwrap();
    let hooks: Vec<&Webhook> = config.webhooks_of("TTE").collect();
    assert_eq!(hooks.len(), 1);
    assert_eq!(
        (hooks[0].id.as_str(), hooks[0].client_id.as_str(), hooks[0].max_batch),
        ("wh-1", "client-app-001", 100)
    );
    assert!(hooks[0].filter.event_names.as_ref().unwrap().contains("CHECKIN"));
    assert_eq!(hooks[0].filter.properties, None, "every property: the grant is whole");
    assert_eq!(config.webhooks_of("HTBTTE").count(), 0);
    // Shown without the query, which may carry the receiver's own token.
    assert_eq!(hooks[0].url.shown(), "https://vendor.example/hooks/pms");
}

#[test]
fn a_webhook_outside_the_clients_grants_is_refused_by_name() {
    let msg = refused(with_webhook(hook(json!({"chain": "OTH"}))));
    assert!(msg.contains("\"wh-1\"") && msg.contains("OTH") && msg.contains("not granted"), "{msg}");
}

#[test]
fn a_hotel_outside_a_restricted_grant_is_refused_and_the_grant_restricts_the_rest() {
    let mut doc = demo_json();
    let clients = doc["clients"].as_array_mut().unwrap();
    let app2 = clients.iter_mut().find(|c| c["id"] == "client-app-002").unwrap();
    app2["webhooks"] = json!([hook(json!({"hotelCodes": ["TTE02"]}))]);
    let msg = refused(doc.clone());
    assert!(msg.contains("TTE02") && msg.contains("not granted"), "{msg}");
    let clients = doc["clients"].as_array_mut().unwrap();
    let app2 = clients.iter_mut().find(|c| c["id"] == "client-app-002").unwrap();
    app2["webhooks"] = json!([hook(json!({}))]);
    let config = ServiceConfig::parse(&doc.to_string()).unwrap();
    let w = config.webhooks_of("TTE").next().unwrap();
    assert_eq!(w.filter.properties.as_ref().unwrap().iter().collect::<Vec<_>>(), vec!["TTE01"]);
}

#[test]
fn urls_must_be_https_except_to_loopback_and_never_carry_credentials() {
    for ok in ["https://a.example/x", "http://127.0.0.1:8789/hook", "http://localhost:1/", "http://[::1]:80/"] {
        assert!(WebhookUrl::parse(ok).is_ok(), "{ok}");
    }
    for (bad, why) in [
        ("http://vendor.example/x", "https://"),
        ("ftp://vendor.example/x", "scheme"),
        ("https://user:pw@vendor.example/", "credentials"),
        ("https://vendor.example/#f", "fragment"),
        ("not a url", "not a URL"),
    ] {
        let msg = WebhookUrl::parse(bad).unwrap_err();
        assert!(msg.contains(why), "{bad}: {msg}");
    }
    let msg = refused(with_webhook(hook(json!({"url": "http://10.0.0.1/x"}))));
    assert!(msg.contains("wh-1") && msg.contains("url must be https://"), "{msg}");
}

#[test]
fn secrets_must_be_standard_webhooks_keys_and_are_never_echoed_or_shown() {
    for bad in ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_!!!", "whsec_c2hvcnQ="] {
        let msg = refused(with_webhook(hook(json!({"secret": bad}))));
        assert!(msg.contains("wh-1") && msg.contains("secret"), "{msg}");
        assert!(!msg.contains(bad), "the value is not repeated: {msg}");
    }
    let config = ServiceConfig::parse(&with_webhook(hook(json!({}))).to_string()).unwrap();
    let shown = format!("{config:?}");
    assert!(!shown.contains("MfKQ9r8G") && shown.contains("WebhookSecret(redacted)"));
    assert!(!shown.contains("token=abc"), "the URL's query is not shown either");
}

#[test]
fn other_webhook_mistakes_are_refused_by_name() {
    let cases = [
        (hook(json!({"id": "bad id"})), "bad id"),
        (hook(json!({"maxBatch": 0})), "maxBatch"),
        (hook(json!({"maxBatch": 1001})), "maxBatch"),
        (hook(json!({"eventNames": []})), "empty eventNames"),
        (hook(json!({"hotelCodes": ["NOPE"]})), "not a property"),
        (hook(json!({"colour": "red"})), "colour"),
    ];
    for (w, needle) in cases {
        let msg = refused(with_webhook(w));
        assert!(msg.contains(needle), "{needle}: {msg}");
    }
    // The same id twice, in two clients.
    let mut doc = with_webhook(hook(json!({})));
    let clients = doc["clients"].as_array_mut().unwrap();
    let app2 = clients.iter_mut().find(|c| c["id"] == "client-app-002").unwrap();
    app2["webhooks"] = json!([hook(json!({}))]);
    assert!(refused(doc).contains("used twice"));
    // A client that may not stream may not receive webhooks either.
    let mut doc = demo_json();
    let clients = doc["clients"].as_array_mut().unwrap();
    let pms = clients.iter_mut().find(|c| c["id"] == "pms-core-001").unwrap();
    pms["webhooks"] = json!([hook(json!({}))]);
    assert!(refused(doc).contains("urn:pms:events"));
}

#[test]
fn the_signature_matches_the_standard_webhooks_reference_vector() {
    // The example of the Standard Webhooks reference libraries' tests.
    let secret = WebhookSecret::parse(SECRET).unwrap();
    let signature = sign(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, r#"{"test": 2432232314}"#);
    assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    assert_eq!(message_id("TTE", "wh-1", 0, BatchRange { from: 3, through: 9 }), "msg_TTE_wh-1_3_9");
    assert_eq!(message_id("TTE", "wh-1", 2, BatchRange { from: 3, through: 9 }), "msg_TTE_wh-1_r2_3_9");
}

// ---- delivery ----------------------------------------------------------------------------

fn event(i: usize, hotel: &str, name: &str) -> ValidEvent {
    ValidEvent {
        unique_event_id: format!("e{i}"),
        hotel_id: hotel.into(),
        module_name: "Reservation".into(),
        event_name: name.into(),
        body: format!(
            "{{\"metadata\":{{\"uniqueEventId\":\"e{i}\"}},\"hotelId\":\"{hotel}\",\"eventName\":\"{name}\"}}"
        ),
        minted: false,
    }
}

fn log_with(events: &[ValidEvent]) -> OffsetLog<MemoryStore> {
    let log = OffsetLog::new(MemoryStore::default());
    for chunk in events.chunks(100) {
        log.append(chunk, 1).unwrap();
    }
    log
}

fn webhook(max_batch: usize, event_names: Option<&[&str]>) -> Webhook {
    let mut w = json!({"id": "wh-1", "chain": "TTE", "url": "https://vendor.example/h", "secret": SECRET, "maxBatch": max_batch});
    if let Some(names) = event_names {
        w["eventNames"] = json!(names);
    }
    let config = ServiceConfig::parse(&with_webhook(w).to_string()).unwrap();
    let w = config.webhooks_of("TTE").next().unwrap().clone();
    w
}

fn policy() -> RetryPolicy {
    RetryPolicy::from_limits(&Limits::default())
}

fn posted(plan: Plan) -> pms_events::webhook::WebhookBatch {
    match plan {
        Plan::Post(batch) => batch,
        other => panic!("expected a post, got {other:?}"),
    }
}

fn offsets(body: &str) -> Vec<u64> {
    let v: Value = serde_json::from_str(body).unwrap();
    v["events"].as_array().unwrap().iter().map(|e| e["metadata"]["offset"].as_str().unwrap().parse().unwrap()).collect()
}

#[test]
fn a_new_webhook_starts_after_the_head_and_posts_in_order_in_batches() {
    let events: Vec<ValidEvent> = (1..=5).map(|i| event(i, "TTE01", "CHECKIN")).collect();
    let log = log_with(&events);
    let w = webhook(2, None);
    let mut state = WebhookState::new(3);
    let batch = posted(state.plan(&log, &w, 10).unwrap());
    assert_eq!(batch.range, BatchRange { from: 4, through: 5 });
    assert_eq!(offsets(&batch.body), vec![4, 5]);
    let body: Value = serde_json::from_str(&batch.body).unwrap();
    assert_eq!(body["chainCode"], "TTE");
    assert_eq!(body["events"][0]["metadata"]["uniqueEventId"], "e4", "the full event");
    state.begin(batch.range, 10, &policy());
    assert!(state.accepted(batch.range, 200, 11));
    assert_eq!((state.cursor, state.batch), (5, None));
    assert_eq!(state.plan(&log, &w, 12).unwrap(), Plan::Idle);

    let log = log_with(&(1..=9).map(|i| event(i, "TTE01", "CHECKIN")).collect::<Vec<_>>());
    let mut state = WebhookState::new(0);
    let mut seen = Vec::new();
    while let Plan::Post(batch) = state.plan(&log, &w, 20).unwrap() {
        assert!(offsets(&batch.body).len() <= 2);
        seen.extend(offsets(&batch.body));
        state.begin(batch.range, 20, &policy());
        assert!(state.accepted(batch.range, 204, 20));
    }
    assert_eq!(seen, (1..=9).collect::<Vec<_>>());
}

#[test]
fn a_failed_batch_is_retried_unchanged_with_growing_backoff_and_nothing_after_it_is_posted() {
    let log = log_with(&(1..=3).map(|i| event(i, "TTE01", "CHECKIN")).collect::<Vec<_>>());
    let w = webhook(100, None);
    let p = policy();
    let mut state = WebhookState::new(0);
    let first = posted(state.plan(&log, &w, 0).unwrap());
    state.begin(first.range, 0, &p);
    // While in flight, the lease holds every other attempt off.
    assert_eq!(state.plan(&log, &w, 1).unwrap(), Plan::WaitUntil(p.timeout_ms + 5_000));
    let failure = Failure::from_status(503, "busy").unwrap();
    let Some(AfterFailure::RetryAt(at)) = state.failed(first.range, &failure, 1_000, 0.5, &p) else { panic!() };
    assert_eq!(at, 1_000 + 5_000, "the first retry after about 5 s");
    assert_eq!(state.plan(&log, &w, at - 1).unwrap(), Plan::WaitUntil(at));
    // More is published meanwhile: the retry is still exactly the first batch.
    log.append(&[event(4, "TTE01", "CHECKIN")], 2).unwrap();
    let again = posted(state.plan(&log, &w, at).unwrap());
    assert_eq!(again, first, "same range, same body, same id");
    assert_eq!(again.id, "msg_TTE_wh-1_1_3");
    assert_eq!(state.last_status, Some(503));
    assert_eq!(state.last_error.as_deref(), Some("answered 503: busy"));
    state.begin(again.range, at, &p);
    assert!(state.accepted(again.range, 200, at + 10));
    assert_eq!(offsets(&posted(state.plan(&log, &w, at + 20).unwrap()).body), vec![4]);

    let delays: Vec<u64> = (1..=10).map(|n| p.delay_ms(n, 0.5)).collect();
    assert_eq!(&delays[..4], &[5_000, 10_000, 20_000, 40_000]);
    assert!(delays.iter().all(|d| *d <= 600_000) && delays[9] == 600_000, "capped at 10 minutes: {delays:?}");
    assert!((4_000..=6_000).contains(&p.delay_ms(1, 0.0)) && (4_000..=6_000).contains(&p.delay_ms(1, 0.999)));
}

#[test]
fn failing_past_the_window_pauses_and_a_resume_from_an_offset_signals_the_gap() {
    let log = log_with(&(1..=6).map(|i| event(i, "TTE01", "CHECKIN")).collect::<Vec<_>>());
    let w = webhook(100, None);
    let p = RetryPolicy { pause_after_ms: 60_000, ..policy() };
    let mut state = WebhookState::new(0);
    let mut now = 0;
    let outcome = loop {
        let batch = posted(state.plan(&log, &w, now).unwrap());
        state.begin(batch.range, now, &p);
        match state.failed(batch.range, &Failure::Timeout { after_ms: 10_000 }, now + 10_000, 0.5, &p).unwrap() {
            AfterFailure::RetryAt(at) => now = at,
            paused => break paused,
        }
    };
    assert_eq!(outcome, AfterFailure::Paused);
    assert!(state.paused() && state.attempts >= 3);
    assert_eq!(state.plan(&log, &w, now + 1_000_000).unwrap(), Plan::Idle, "no attempt while paused");
    assert_eq!(state.last_error.as_deref(), Some("no answer within 10 s"));

    // Retention drops 1..=3; the operator resumes from 2.
    log.store().delete(1..=3);
    let bounds = log.bounds().unwrap();
    assert_eq!(state.resume(Some(8), &bounds), Err(ResumeError::OutOfRange { requested: 8, head: 6 }));
    state.resume(Some(2), &bounds).unwrap();
    let batch = posted(state.plan(&log, &w, now).unwrap());
    assert_eq!(batch.gap, Some(Gap { requested: 2, resumed_at: 4 }));
    assert_eq!(offsets(&batch.body), vec![4, 5, 6]);
    let body: Value = serde_json::from_str(&batch.body).unwrap();
    assert_eq!(body["gap"], json!({"requested": "2", "resumedAt": "4"}));
}

#[test]
fn an_answer_to_a_batch_an_operator_replaced_changes_nothing() {
    let log = log_with(&(1..=4).map(|i| event(i, "TTE01", "CHECKIN")).collect::<Vec<_>>());
    let w = webhook(100, None);
    let mut state = WebhookState::new(2);
    let batch = posted(state.plan(&log, &w, 0).unwrap());
    state.begin(batch.range, 0, &policy());
    state.resume(Some(1), &log.bounds().unwrap()).unwrap();
    assert!(!state.accepted(batch.range, 200, 5), "the late 2xx is of a batch no longer pending");
    assert_eq!(state.cursor, 0);
    assert_eq!(state.failed(batch.range, &Failure::Network("reset".into()), 5, 0.5, &policy()), None);
    let again = posted(state.plan(&log, &w, 6).unwrap());
    assert_eq!(offsets(&again.body), vec![1, 2, 3, 4]);
    assert_eq!(again.id, "msg_TTE_wh-1_r1_1_4", "redelivered after a resume under a new id");
    assert_ne!(again.id, batch.id);
}

#[test]
fn a_filter_that_matches_nothing_moves_the_cursor_without_posting_within_a_bounded_scan() {
    let events: Vec<ValidEvent> = (1..=5000).map(|i| event(i, "TTE01", "CHECKOUT")).collect();
    let log = log_with(&events);
    log.append(&[event(5001, "TTE01", "CHECKIN")], 2).unwrap();
    let w = webhook(100, Some(&["CHECKIN"]));
    let mut state = WebhookState::new(0);
    let mut skips = 0;
    let batch = loop {
        log.store().reads.set(0);
        match state.plan(&log, &w, 0).unwrap() {
            Plan::Skip { through } => {
                assert!(log.store().reads.get() <= 8, "one plan reads at most its budget");
                state.skipped(through);
                skips += 1;
            }
            Plan::Post(batch) => break batch,
            other => panic!("{other:?}"),
        }
    };
    assert!(skips >= 2, "the scan is spread over several plans ({skips})");
    assert_eq!(offsets(&batch.body), vec![5001]);
    assert_eq!(batch.range.through, 5001);
}

#[test]
fn a_body_stays_under_one_mebibyte_and_always_carries_at_least_one_event() {
    let big = |i: usize| ValidEvent {
        body: format!("{{\"metadata\":{{}},\"pad\":\"{}\"}}", "x".repeat(300 * 1024)),
        ..event(i, "TTE01", "CHECKIN")
    };
    let log = log_with(&(1..=7).map(big).collect::<Vec<_>>());
    let w = webhook(100, None);
    let mut state = WebhookState::new(0);
    let mut all = Vec::new();
    while let Plan::Post(batch) = state.plan(&log, &w, 0).unwrap() {
        assert!(batch.body.len() < MAX_BODY_BYTES, "{}", batch.body.len());
        assert!(batch.events >= 1);
        all.extend(offsets(&batch.body));
        state.begin(batch.range, 0, &policy());
        state.accepted(batch.range, 200, 0);
    }
    assert_eq!(all, (1..=7).collect::<Vec<_>>());
}

#[test]
fn failures_are_described_in_one_bounded_line() {
    let long = Failure::from_status(500, &format!("line one\nline two {}", "y".repeat(1000))).unwrap();
    let text = long.describe();
    assert!(!text.contains('\n') && text.chars().count() <= 200, "{text}");
    assert!(Failure::from_status(302, "").unwrap().describe().contains("redirects are not followed"));
    assert_eq!(Failure::from_status(204, ""), None);
    assert_eq!(Failure::from_status(302, "").unwrap().status(), Some(302));
}

#[test]
fn a_resume_body_is_nothing_an_empty_object_or_a_from_offset() {
    use pms_events::webhook::parse_resume_body as parse;
    assert_eq!(parse(b""), Ok(None));
    assert_eq!(parse(b" {} "), Ok(None));
    assert_eq!(parse(br#"{"from": "12"}"#), Ok(Some(12)));
    assert_eq!(parse(br#"{"from": 12}"#), Ok(Some(12)));
    for bad in [
        &b"[1]"[..],
        b"{\"from\": \"x\"}",
        b"{\"from\": true}",
        b"{\"form\": \"1\"}",
        b"nope",
        b"{\"from\": \"9007199254740993\"}",
    ] {
        assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
    }
}
