//! What operators see of a chain's consumers: the attached subscriptions and saved resume
//! cursors with their lag, paged and bounded; and the metrics exposition built from the
//! chain's figures. The chain's object is the real core over the reference store.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::demo_config;
use common::object::{events, subscription, subscription_of, Object};
use pms_events::chain::consumers::parse_cursor_key;
use pms_events::chain::host::{ChainTables, Effects};
use pms_events::log::EventFilter;
use pms_events::rpc::operators::{ChainMetrics, Consumers, ConsumersRequest, WebhookFigures};
use pms_events::rpc::ChainNumbers;
use pms_events::stream::spec::cursor_key;
use pms_events::stream::wire::ack_message;

fn page(object: &mut Object, after: Option<String>, limit: usize, now: u64) -> Result<Consumers, u16> {
    let mut fx = Effects::default();
    let page = object.core.consumers(&ConsumersRequest { after, limit }, now, &mut fx).expect("a page");
    object.note(fx, now);
    page.map_err(|(status, _)| status)
}

/// A chain with ten events of 100 KiB, and three subscriptions selecting them whole: two of
/// client-app-001 from offset 1 that acknowledge nothing after the opening one (one says it
/// read through 4), so their window stops them halfway; one of client-app-002 from offset 8,
/// at the head. And two saved cursors.
fn consumed() -> Object {
    let config = demo_config();
    let mut object = Object::start(config.clone(), 0);
    object.publish(&events(1, 10, 100_000), 10);
    let whole = "metadata { offset } detail { newValue }";
    let reader = subscription(&config, "a", r#"{chainCode: "TTE", offset: "1"}"#, whole);
    let filtered = subscription(&config, "b", r#"{chainCode: "TTE", offset: "1", hotelCode: "TTE01"}"#, whole);
    let other = subscription_of(&config, "client-app-002", "c", r#"{chainCode: "TTE", offset: "8"}"#, whole);
    let mut sockets = Vec::new();
    for (spec, at) in [(reader.clone(), 20), (filtered, 20), (other, 35)] {
        let (socket, _, _) = object.attach(spec, at).unwrap();
        // The gateway's opening acknowledgement opens the window.
        object.gateway_says(&socket, &ack_message(0, 0), at);
        sockets.push(socket);
    }
    for now in [40, 41, 42] {
        object.run_timers(now);
    }
    object.gateway_says(&sockets[0], &ack_message(0, 4), 45);
    object.store.save_cursor(&cursor_key(&reader), 7, 40).unwrap();
    let mut narrow = reader.clone();
    narrow.filter.event_names = Some(BTreeSet::from(["CHECKIN".to_string()]));
    object.store.save_cursor(&cursor_key(&narrow), 2, 50).unwrap();
    object
}

#[test]
fn consumers_show_each_subscription_and_saved_cursor_with_its_lag() {
    let mut object = consumed();
    let all = page(&mut object, None, 100, 60).unwrap();
    assert_eq!((all.chain_code.as_str(), all.head_offset, all.next.clone()), ("TTE", 10, None));
    let subs: Vec<_> = all
        .subscriptions
        .iter()
        .map(|s| (s.client_id.as_str(), s.operation_id.as_str(), s.read_through, s.lag_events + s.delivered_through))
        .collect();
    assert_eq!(
        subs,
        [("client-app-001", "a", 4, 10), ("client-app-001", "b", 0, 10), ("client-app-002", "c", 0, 10)],
        "by client, connection and operation; lag = head - delivered"
    );
    let halfway = all.subscriptions[0].delivered_through;
    assert!((1..10).contains(&halfway), "the window stopped it at {halfway}");
    assert_eq!(all.subscriptions[1].delivered_through, halfway);
    assert_eq!(all.subscriptions[2].delivered_through, 10);
    assert_eq!(all.subscriptions[0].app_key, "APPKEY001");
    assert_eq!((all.subscriptions[0].connected_since, all.subscriptions[2].connected_since), (20, 35));
    assert_eq!(all.subscriptions[0].last_ack_at, Some(45));
    assert_eq!(all.subscriptions[1].filter.properties, Some(BTreeSet::from(["TTE01".to_string()])));
    let saved: Vec<_> =
        all.saved_cursors.iter().map(|c| (c.app_key.as_str(), c.offset, c.updated_at, c.lag_events)).collect();
    assert_eq!(saved.len(), 2);
    assert!(saved.contains(&("APPKEY001", 7, 40, 3)) && saved.contains(&("APPKEY001", 2, 50, 8)), "{saved:?}");
    assert!(all.saved_cursors.iter().any(|c| c.filter.event_names.is_some()), "each cursor names its filter");
}

#[test]
fn pages_walk_subscriptions_then_saved_cursors_once_each() {
    let mut object = consumed();
    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let p = page(&mut object, after.clone(), 2, 60).unwrap();
        assert!(p.subscriptions.len() + p.saved_cursors.len() <= 2, "a page holds at most limit entries");
        seen.extend(p.subscriptions.iter().map(|s| format!("sub {}", s.operation_id)));
        seen.extend(p.saved_cursors.iter().map(|c| format!("cursor {}", c.offset)));
        pages += 1;
        match p.next {
            Some(next) => after = Some(next),
            None => break,
        }
        assert!(pages < 10);
    }
    seen.sort();
    assert_eq!(seen, ["cursor 2", "cursor 7", "sub a", "sub b", "sub c"]);
    for bad in ["x", "", "c", "zz!", &"A".repeat(5000)] {
        assert_eq!(page(&mut object, Some(bad.to_string()), 2, 60).err(), Some(400), "after {bad:?}");
    }
}

#[test]
fn the_query_string_is_checked() {
    assert_eq!(ConsumersRequest::from_query("").unwrap(), ConsumersRequest { after: None, limit: 100 });
    assert_eq!(ConsumersRequest::from_query("limit=1000&after=abc").unwrap().limit, 1000);
    for bad in ["limit=0", "limit=1001", "limit=x", "after=a&after=b", "offset=1"] {
        assert!(ConsumersRequest::from_query(bad).is_err(), "{bad} is refused");
    }
}

#[test]
fn a_saved_cursor_key_names_its_app_key_and_filter_even_with_a_bar_in_the_app_key() {
    let filter = EventFilter { properties: Some(BTreeSet::from(["TTE01".to_string()])), ..EventFilter::default() };
    assert_eq!(parse_cursor_key(&format!("KEY|1|{}", filter.key())), Some(("KEY|1".to_string(), filter)));
    assert_eq!(parse_cursor_key("no filter here"), None);
}

#[test]
fn metrics_give_each_clients_furthest_behind_subscription_and_the_chain_numbers() {
    let mut object = consumed();
    let mut fx = Effects::default();
    let config = object.config.clone();
    let figures = object.core.metrics(3, &config, 60, &mut fx).unwrap();
    let halfway = page(&mut object, None, 100, 60).unwrap().subscriptions[0].delivered_through;
    assert_eq!(
        figures.consumer_lag,
        BTreeMap::from([("client-app-001".to_string(), 10 - halfway), ("client-app-002".to_string(), 0)]),
        "each client's furthest-behind subscription"
    );
    assert_eq!((figures.numbers.head_offset, figures.numbers.subscribers), (10, 3));
    let text = pms_events::metrics::render(&[figures], &pms_events::service_tally::Tally::default());
    let lagging =
        format!("pms_events_consumer_lag_events{{chain=\"TTE\",client_id=\"client-app-001\"}} {}", 10 - halfway);
    assert!(text.lines().any(|l| l == lagging), "{lagging}\n{text}");
    for line in [
        "# TYPE pms_events_chain_head_offset gauge",
        "pms_events_chain_head_offset{chain=\"TTE\"} 10",
        "# TYPE pms_events_published_events_total counter",
        "pms_events_published_events_total{chain=\"TTE\"} 10",
        "pms_events_subscribers{chain=\"TTE\"} 3",
        "pms_events_consumer_lag_events{chain=\"TTE\",client_id=\"client-app-002\"} 0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line}\n{text}");
    }
}

#[test]
fn metrics_escape_label_values_and_list_webhooks() {
    let numbers = ChainNumbers {
        chain_code: "TTE".into(),
        head_offset: 5,
        oldest_offset: Some(1),
        retained_events: 5,
        subscribers: 0,
        last_publish_at: Some(1_500),
        deliveries: 0,
        counting_since: 0,
        entities: pms_events::log::entity::EntityTotals { entities: 2, bytes: 300 },
        state_through: 3,
    };
    let figures = ChainMetrics {
        numbers,
        consumer_lag: BTreeMap::from([("a\"b\\c\nd".to_string(), 1)]),
        webhooks: BTreeMap::from([("wh-1".to_string(), WebhookFigures { lag_events: 4, paused: true })]),
    };
    let text = pms_events::metrics::render(&[figures], &pms_events::service_tally::Tally::default());
    for line in [
        "pms_events_consumer_lag_events{chain=\"TTE\",client_id=\"a\\\"b\\\\c\\nd\"} 1",
        "pms_events_webhook_lag_events{chain=\"TTE\",webhook=\"wh-1\"} 4",
        "pms_events_webhook_paused{chain=\"TTE\",webhook=\"wh-1\"} 1",
        "pms_events_state_lag_events{chain=\"TTE\"} 2",
        "pms_events_last_publish_timestamp_seconds{chain=\"TTE\"} 1.5",
    ] {
        assert!(text.lines().any(|l| l == line), "{line}\n{text}");
    }
}

#[test]
fn a_subscription_crossing_the_lag_threshold_is_audited_once_each_way() {
    use pms_events::chain::attached::{Delivered, CAUGHT_UP_EVENTS, LAGGING_EVENTS};
    let mut delivered = Delivered::default();
    let lags = [
        0,
        LAGGING_EVENTS - 1,
        LAGGING_EVENTS,
        LAGGING_EVENTS + 500,
        LAGGING_EVENTS,
        CAUGHT_UP_EVENTS,
        CAUGHT_UP_EVENTS - 1,
        0,
    ];
    let crossings: Vec<_> = lags.iter().map(|lag| delivered.lag_crossing(*lag)).collect();
    assert_eq!(crossings, [None, None, Some(true), None, None, None, Some(false), None]);
}

#[test]
fn the_object_audits_a_stalled_subscription_once_as_lagging() {
    let config = demo_config();
    let mut object = Object::start(config.clone(), 0);
    let whole = "metadata { offset } detail { newValue }";
    let (socket, _, _) =
        object.attach(subscription(&config, "a", r#"{chainCode: "TTE", offset: "1"}"#, whole), 10).unwrap();
    object.gateway_says(&socket, &ack_message(0, 0), 10);
    // 2,000 events in batches of 100, fanned out after each: the window stops the
    // subscription early, and its lag passes the threshold once.
    for i in 0..20 {
        let now = 20 + i * 10;
        object.publish(&events(1 + i as usize * 100, 100, 2_000), now);
        object.run_timers(now);
    }
    let lines: Vec<_> =
        object.effects.iter().flat_map(|fx| fx.audit.iter()).filter(|l| l.event.starts_with("consumer.")).collect();
    assert_eq!(lines.len(), 1, "{:?}", lines.iter().map(|l| l.event).collect::<Vec<_>>());
    assert_eq!(lines[0].event, "consumer.lagging");
    assert_eq!(lines[0].fields["clientId"], "client-app-001");
    assert!(lines[0].fields["lagEvents"].as_u64().unwrap() >= 1_000);
}
