//! The graphql-transport-ws state machine, transition by transition.

mod common;

use common::{demo_config, keys, SEED_A};
use pms_events::auth::token::{AccessClaims, VerifiedToken};
use pms_events::stream::protocol::{close, Action, Close, InitCheck, Session, SessionLimits};
use serde_json::{json, Map, Value};

fn token() -> VerifiedToken {
    let config = demo_config();
    let c = config.client("client-app-001").unwrap();
    VerifiedToken {
        claims: AccessClaims::for_client(c, &c.scopes, "iss", "aud", "j".into()),
        issued_at: 0,
        expires_at: 3600,
    }
}

fn ok(_: &Map<String, Value>) -> InitCheck {
    Ok(token())
}

fn never(_: &Map<String, Value>) -> InitCheck {
    panic!("init must not be checked here")
}

fn closed_with(actions: &[Action]) -> Option<(u16, String)> {
    actions.iter().find_map(|a| match a {
        Action::Close(Close { code, reason }) => Some((*code, reason.clone())),
        _ => None,
    })
}

fn sent(actions: &[Action]) -> Vec<Value> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(s) => Some(serde_json::from_str(s).unwrap()),
            _ => None,
        })
        .collect()
}

fn limits(max_frame_bytes: usize) -> SessionLimits {
    SessionLimits { max_frame_bytes, max_subscriptions: 3, max_id_bytes: 128 }
}

fn ready() -> Session {
    let mut s = Session::new(limits(65536));
    let a = s.on_text(r#"{"type":"connection_init","payload":{}}"#, ok);
    assert_eq!(sent(&a), vec![json!({"type": "connection_ack"})]);
    s
}

#[test]
fn init_is_acknowledged_and_the_principal_kept() {
    let s = ready();
    assert_eq!(s.principal().unwrap().claims.sub, "client-app-001");
}

#[test]
fn refused_init_closes_with_the_checkers_code() {
    let mut s = Session::new(limits(65536));
    let a = s.on_text(r#"{"type":"connection_init","payload":{"Authorization":"Bearer x"}}"#, |_| {
        Err(Close::new(4403, "Forbidden"))
    });
    assert_eq!(closed_with(&a), Some((4403, "Forbidden".into())));
    assert!(s.is_closed());
    assert!(s.on_text(r#"{"type":"ping"}"#, never).is_empty(), "nothing after close");
}

#[test]
fn second_init_is_4429() {
    let mut s = ready();
    let a = s.on_text(r#"{"type":"connection_init"}"#, never);
    assert_eq!(closed_with(&a).unwrap().0, close::TOO_MANY_INITS);
}

#[test]
fn subscribe_before_ack_is_4401() {
    let mut s = Session::new(limits(65536));
    let a = s.on_text(r#"{"type":"subscribe","id":"1","payload":{"query":"{ getHelp { slack } }"}}"#, never);
    assert_eq!(closed_with(&a), Some((4401, "Unauthorized".into())));
}

#[test]
fn subscribe_starts_and_duplicate_active_id_is_4409() {
    let mut s = ready();
    let a = s.on_text(r#"{"type":"subscribe","id":"a","payload":{"query":"subscription { x }"}}"#, never);
    assert!(matches!(&a[..], [Action::Start { id, .. }] if id == "a"));
    assert!(s.is_active("a"));
    let a = s.on_text(r#"{"type":"subscribe","id":"b","payload":{"query":"q"}}"#, never);
    assert!(matches!(&a[..], [Action::Start { .. }]));
    let a = s.on_text(r#"{"type":"subscribe","id":"a","payload":{"query":"q"}}"#, never);
    let (code, reason) = closed_with(&a).unwrap();
    assert_eq!(code, close::DUPLICATE_ID);
    assert_eq!(reason, "Subscriber for a already exists");
    let stops: Vec<&Action> = a.iter().filter(|a| matches!(a, Action::Stop { .. })).collect();
    assert_eq!(stops.len(), 2, "every active operation is stopped on close");
}

#[test]
fn completed_id_can_be_reused() {
    let mut s = ready();
    s.on_text(r#"{"type":"subscribe","id":"a","payload":{"query":"q"}}"#, never);
    let a = s.on_text(r#"{"type":"complete","id":"a"}"#, never);
    assert_eq!(a, vec![Action::Stop { id: "a".into() }]);
    assert!(!s.is_active("a"));
    assert!(s.on_text(r#"{"type":"complete","id":"a"}"#, never).is_empty(), "unknown id: ignored");
    let a = s.on_text(r#"{"type":"subscribe","id":"a","payload":{"query":"q"}}"#, never);
    assert!(matches!(&a[..], [Action::Start { .. }]));
}

#[test]
fn ping_is_answered_with_pong_echoing_the_payload_even_before_init() {
    let mut s = Session::new(limits(65536));
    assert_eq!(sent(&s.on_text(r#"{"type":"ping"}"#, never)), vec![json!({"type": "pong"})]);
    let s2 = &mut ready();
    assert_eq!(
        sent(&s2.on_text(r#"{"type":"ping","payload":{"t":1}}"#, never)),
        vec![json!({"type": "pong", "payload": {"t": 1}})]
    );
    assert_eq!(s2.on_text(r#"{"type":"pong"}"#, never), vec![Action::PongReceived(None)], "a pong sends nothing back");
}

#[test]
fn invalid_messages_are_4400() {
    for text in [
        "not json",
        "[]",
        r#"{"id":"1"}"#,
        r#"{"type":"bogus"}"#,
        r#"{"type":"subscribe","payload":{"query":"q"}}"#,
        r#"{"type":"subscribe","id":"","payload":{"query":"q"}}"#,
        r#"{"type":"subscribe","id":"1"}"#,
        r#"{"type":"subscribe","id":"1","payload":{"query":5}}"#,
        r#"{"type":"complete"}"#,
        r#"{"type":"connection_init","payload":"x"}"#,
    ] {
        let mut s = ready();
        let (code, reason) = closed_with(&s.on_text(text, never)).unwrap_or_else(|| panic!("{text}"));
        assert_eq!(code, close::BAD_REQUEST, "{text}");
        assert!(reason.starts_with("Invalid message received"), "{reason}");
    }
    let mut s = ready();
    assert_eq!(closed_with(&s.on_binary()).unwrap().0, 4400);
}

#[test]
fn oversized_frame_is_1009() {
    let mut s = Session::new(limits(100));
    let text = format!(r#"{{"type":"ping","payload":"{}"}}"#, "x".repeat(200));
    assert_eq!(closed_with(&s.on_text(&text, never)).unwrap().0, 1009);
}

#[test]
fn init_timeout_only_before_init() {
    let mut s = Session::new(limits(65536));
    assert_eq!(closed_with(&s.on_init_timeout()), Some((4408, "Connection initialisation timeout".into())));
    let mut s = ready();
    assert!(s.on_init_timeout().is_empty());
}

#[test]
fn token_expiry_closes_4401_token_expired() {
    let mut s = ready();
    s.on_text(r#"{"type":"subscribe","id":"a","payload":{"query":"q"}}"#, never);
    let a = s.on_token_expired();
    assert_eq!(closed_with(&a), Some((4401, "token expired".into())));
    assert!(a.contains(&Action::Stop { id: "a".into() }));
}

#[test]
fn results_errors_and_completion_only_for_active_ids() {
    let mut s = ready();
    s.on_text(r#"{"type":"subscribe","id":"q","payload":{"query":"q"}}"#, never);
    let a = s.single_result("q", r#"{"data":{"x":1}}"#);
    assert_eq!(
        sent(&a),
        vec![json!({"id": "q", "type": "next", "payload": {"data": {"x": 1}}}), json!({"id": "q", "type": "complete"})]
    );
    assert!(s.single_result("q", "{}").is_empty(), "already complete");
    s.on_text(r#"{"type":"subscribe","id":"e","payload":{"query":"q"}}"#, never);
    let a = s.fail("e", &json!([{"message": "no"}]));
    assert_eq!(sent(&a), vec![json!({"id": "e", "type": "error", "payload": [{"message": "no"}]})]);
    assert!(!s.is_active("e"));
    s.on_text(r#"{"type":"subscribe","id":"c","payload":{"query":"q"}}"#, never);
    assert_eq!(sent(&s.complete("c")), vec![json!({"id": "c", "type": "complete"})]);
}

#[test]
fn client_close_stops_everything() {
    let mut s = ready();
    s.on_text(r#"{"type":"subscribe","id":"a","payload":{"query":"q"}}"#, never);
    assert_eq!(s.on_closed(), vec![Action::Stop { id: "a".into() }]);
    assert!(s.is_closed());
}

#[test]
fn init_credentials_are_read_case_insensitively() {
    let payload: Map<String, Value> =
        serde_json::from_value(json!({"authorization": "Bearer t", "X-App-Key": "K"})).unwrap();
    assert_eq!(pms_events::stream::protocol::init_credentials(&payload), (Some("Bearer t"), Some("K")));
    let _ = keys(&[("k", SEED_A)]);
}

#[test]
fn pong_is_reported_to_the_gateway_with_its_payload() {
    let mut s = ready();
    assert_eq!(s.on_text(r#"{"type":"pong"}"#, never), vec![Action::PongReceived(None)]);
    assert_eq!(
        s.on_text(r#"{"type":"pong","payload":{"slowConsumerCheck":"n1"}}"#, never),
        vec![Action::PongReceived(Some(json!({"slowConsumerCheck": "n1"})))]
    );
}

#[test]
fn subscriptions_per_connection_are_bounded_and_the_one_over_gets_an_error() {
    let mut s = ready();
    for id in ["a", "b", "c"] {
        let a = s.on_text(&format!(r#"{{"type":"subscribe","id":"{id}","payload":{{"query":"q"}}}}"#), never);
        assert!(matches!(a.as_slice(), [Action::Start { .. }]), "{a:?}");
    }
    let a = s.on_text(r#"{"type":"subscribe","id":"d","payload":{"query":"q"}}"#, never);
    let errors = sent(&a);
    assert_eq!(errors.len(), 1, "{a:?}");
    assert_eq!(errors[0]["id"], "d");
    assert_eq!(errors[0]["type"], "error");
    assert_eq!(errors[0]["payload"][0]["extensions"]["code"], "TOO_MANY_SUBSCRIPTIONS");
    assert!(closed_with(&a).is_none(), "the connection stays up");
    assert!(!s.is_active("d"));
    // Completing one makes room again.
    s.on_text(r#"{"type":"complete","id":"a"}"#, never);
    let a = s.on_text(r#"{"type":"subscribe","id":"d","payload":{"query":"q"}}"#, never);
    assert!(matches!(a.as_slice(), [Action::Start { .. }]), "{a:?}");
}

#[test]
fn operation_ids_over_the_limit_close_4400() {
    let mut s = ready();
    let ok_id = "x".repeat(128);
    let a = s.on_text(&format!(r#"{{"type":"subscribe","id":"{ok_id}","payload":{{"query":"q"}}}}"#), never);
    assert!(matches!(a.as_slice(), [Action::Start { .. }]));
    // 127 ASCII bytes and one two-byte character: 129 bytes.
    let long = format!("{}é", "y".repeat(127));
    let a = s.on_text(&format!(r#"{{"type":"subscribe","id":"{long}","payload":{{"query":"q"}}}}"#), never);
    let (code, reason) = closed_with(&a).unwrap();
    assert_eq!(code, 4400);
    assert!(reason.contains("128 bytes"), "{reason}");
}

#[test]
fn a_peer_close_is_echoed_with_a_code_that_can_be_sent() {
    use pms_events::stream::protocol::close;
    assert_eq!(close::echo(1000), 1000);
    assert_eq!(close::echo(4403), 4403);
    assert_eq!(close::echo(1005), close::NORMAL);
    assert_eq!(close::echo(1006), close::NORMAL);
    assert_eq!(close::echo(0), close::NORMAL);
    assert_eq!(close::echo(5000), close::NORMAL);
}

#[test]
fn the_subprotocol_is_found_in_any_offered_list() {
    use pms_events::stream::protocol::offers_subprotocol;
    assert!(offers_subprotocol("graphql-transport-ws"));
    assert!(offers_subprotocol("graphql-ws, graphql-transport-ws"));
    assert!(offers_subprotocol(" graphql-transport-ws ,x"));
    assert!(!offers_subprotocol("graphql-ws"));
    assert!(!offers_subprotocol("graphql-transport-ws2"));
    assert!(!offers_subprotocol(""));
}

#[test]
fn every_next_frame_has_one_shape() {
    use pms_events::stream::protocol::{next_start, NEXT_END};
    let frame = format!("{}{}{NEXT_END}", next_start("a\"b"), r#"{"data":{"x":1}}"#);
    let parsed: Value = serde_json::from_str(&frame).unwrap();
    assert_eq!(parsed, serde_json::json!({"id": "a\"b", "type": "next", "payload": {"data": {"x": 1}}}));
}

#[test]
fn a_closed_session_still_says_who_it_was_but_grants_nothing() {
    let mut s = ready();
    let a = s.on_slow_consumer(Close::new(close::TOO_SLOW, "too slow"));
    assert_eq!(closed_with(&a).map(|c| c.0), Some(close::TOO_SLOW));
    assert!(s.principal().is_none(), "a closed connection is no principal for new work");
    assert_eq!(
        s.authenticated().map(|t| t.claims.sub.as_str()),
        Some("client-app-001"),
        "its close is counted by client"
    );
    let mut never_ready = Session::new(limits(65536));
    let _ = never_ready.on_closed();
    assert!(never_ready.authenticated().is_none());
}
