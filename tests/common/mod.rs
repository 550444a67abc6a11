//! The one helper every native test uses: the demo configuration and a test key set; and a
//! chain object's core with recorded sockets (`object`).
#![allow(dead_code)]

pub mod object;

use pms_events::auth::token::KeySet;
use pms_events::config::ServiceConfig;

pub const DEMO_CONFIG: &str = include_str!("../../config/demo.json");

pub fn demo_config() -> ServiceConfig {
    ServiceConfig::parse(DEMO_CONFIG).expect("the demo configuration is valid")
}

/// The demo document as JSON, to be broken one mistake at a time.
pub fn demo_json() -> serde_json::Value {
    serde_json::from_str(DEMO_CONFIG).unwrap()
}

pub const SEED_A: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
pub const SEED_B: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8";

pub fn keys(list: &[(&str, &str)]) -> KeySet {
    let json = serde_json::Value::Array(
        list.iter().map(|(kid, seed)| serde_json::json!({"kid": kid, "seed": seed})).collect(),
    );
    KeySet::parse(&json.to_string()).unwrap()
}

/// client-app-001's subscription `sub-1` to `newEvent`, from offset 1, with `plan`.
pub fn subscription<P>(filter: pms_events::log::EventFilter, plan: P) -> pms_events::stream::spec::SubscriptionSpec<P> {
    pms_events::stream::spec::SubscriptionSpec {
        id: "sub-1".into(),
        app_key: "APPKEY001".into(),
        client_id: "client-app-001".into(),
        connection_id: "c".into(),
        response_key: "newEvent".into(),
        delta: false,
        filter,
        start: pms_events::stream::spec::Start::At(1),
        plan,
        window: pms_events::stream::spec::WindowCount::Units,
        batches: pms_events::stream::spec::BatchEncoding::Binary,
    }
}

/// A `B` message of the delivery wire, read as the gateway reads it.
pub fn parse_batch(text: &str) -> Option<pms_events::stream::wire::DeliveryBatch<'_>> {
    match pms_events::stream::wire::DeliveryMessage::decode(text)? {
        pms_events::stream::wire::DeliveryMessage::Batch(batch) => Some(batch),
        _ => None,
    }
}

/// An `A` message of the delivery wire: the window units and the offset read through.
pub fn parse_ack(text: &str) -> Option<(u32, u64)> {
    match pms_events::stream::wire::DeliveryMessage::decode(text)? {
        pms_events::stream::wire::DeliveryMessage::Ack { count, through } => Some((count, through)),
        _ => None,
    }
}
