//! What only runs in wasm: randomness, the signing crypto and secret hashing compiled to
//! wasm32, run under Node by wasm-bindgen-test.
#![cfg(target_arch = "wasm32")]

use pms_events::auth::token::{random_id, AccessClaims, KeySet};
use pms_events::config::ServiceConfig;
use pms_events::log::event_id;
use wasm_bindgen_test::wasm_bindgen_test;

const DEMO: &str = include_str!("../config/demo.json");

#[wasm_bindgen_test]
fn random_ids_come_from_the_js_entropy_source() {
    let a = random_id();
    let b = random_id();
    assert_eq!(a.len(), 32);
    assert_ne!(a, b);
    assert_ne!(a, "0".repeat(32));
}

#[wasm_bindgen_test]
fn generated_event_ids_are_distinct_uuid_v7s_from_the_js_entropy_source() {
    let now = js_sys::Date::now() as u64;
    let mut ids = event_id::generator(now);
    let all: Vec<String> = (0..130).map(|_| ids()).collect();
    let distinct: std::collections::HashSet<&String> = all.iter().collect();
    assert_eq!(distinct.len(), all.len(), "past the 64-id entropy pool too");
    for id in &all {
        assert_eq!((id.len(), &id[14..15]), (36, "7"), "{id}");
        assert_eq!(u64::from_str_radix(&id[..8], 16).unwrap(), now >> 16, "{id}");
    }
}

#[wasm_bindgen_test]
fn tokens_sign_and_verify_in_wasm() {
    let config = ServiceConfig::parse(DEMO).unwrap();
    let keys = KeySet::parse(r#"[{"kid":"k1","seed":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"}]"#).unwrap();
    let client = config.client("client-app-001").unwrap();
    let claims = AccessClaims::for_client(client, &client.scopes, &config.issuer, &config.audience, random_id());
    let now = (js_sys::Date::now() / 1000.0) as u64;
    let token = keys.issue(&claims, now).unwrap();
    let verified = keys.verify(&token, &config.issuer, &config.audience, now).unwrap();
    assert_eq!(verified.claims, claims);
    assert!(keys.verify(&token, &config.issuer, &config.audience, now + 7200).is_err());
}

#[wasm_bindgen_test]
fn secret_hashes_verify_in_wasm() {
    let config = ServiceConfig::parse(DEMO).unwrap();
    let client = config.client("pms-core-001").unwrap();
    assert!(client.secret_matches("pms-secret-001"));
    assert!(!client.secret_matches("pms-secret-002"));
}
