//! A chain object's webhook deliveries through its real core: which webhooks get the
//! object's few connections, and that one receiver's slowness does not delay another's.

mod common;

use std::collections::BTreeMap;

use common::object::{events, Object};
use common::{demo_config, demo_json};
use pms_events::chain::host::{Effects, WebhookPost};
use pms_events::chain::WebhookAnswer;
use pms_events::config::ServiceConfig;
use serde_json::json;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The demo configuration with `count` webhooks of client-app-001 on TTE: `wh-1`…
fn with_webhooks(count: usize) -> ServiceConfig {
    let mut doc = demo_json();
    let hooks: Vec<_> = (1..=count)
        .map(|i| json!({"id": format!("wh-{i}"), "chain": "TTE", "url": format!("https://r{i}.example/hook"), "secret": SECRET}))
        .collect();
    let clients = doc["clients"].as_array_mut().unwrap();
    clients.iter_mut().find(|c| c["id"] == "client-app-001").unwrap()["webhooks"] = json!(hooks);
    ServiceConfig::parse(&doc.to_string()).unwrap()
}

/// Webhook attempts in flight: when each is answered, and the attempt.
struct Receivers {
    answering: Vec<(u64, WebhookPost)>,
    /// How long each webhook's receiver takes to answer (ms).
    delay: BTreeMap<String, u64>,
    /// When each webhook first received an event (ms).
    first_event_at: BTreeMap<String, u64>,
}

impl Receivers {
    fn take(&mut self, object: &mut Object, now: u64) {
        let posts: Vec<WebhookPost> = object.effects.drain(..).flat_map(|fx: Effects| fx.posts).collect();
        for post in posts {
            let delay = self.delay[&post.webhook.id];
            self.first_event_at.entry(post.webhook.id.clone()).or_insert(now);
            self.answering.push((now + delay, post));
        }
    }

    /// Answers every attempt due by `now` with 204.
    fn answer(&mut self, object: &mut Object, now: u64) {
        self.answering.sort_by_key(|(at, _)| *at);
        while self.answering.first().is_some_and(|(at, _)| *at <= now) {
            let (at, post) = self.answering.remove(0);
            let answer = WebhookAnswer { outcome: Ok(204), started_ms: at, answered_ms: at, jitter: 0.5 };
            let mut fx = Effects::default();
            let config = object.config.clone();
            object.core.webhook_answered(&post, answer, &config, &mut fx).unwrap();
            object.note(fx, at);
            self.take(object, at);
        }
    }
}

#[test]
fn a_fast_receiver_is_not_starved_by_four_slow_ones_before_it() {
    let config = with_webhooks(5);
    let mut object = Object::start(config.clone(), 0);
    let mut receivers = Receivers {
        answering: Vec::new(),
        delay: (1..=5).map(|i| (format!("wh-{i}"), if i == 5 { 5 } else { 300 })).collect(),
        first_event_at: BTreeMap::new(),
    };
    // Registered at the first publish: every webhook starts at the head before it.
    let mut most_lag: BTreeMap<String, u64> = BTreeMap::new();
    for step in 0..120u64 {
        let now = 1_000 + step * 50;
        receivers.answer(&mut object, now);
        object.publish(&events(step as usize, 1, 0), now);
        receivers.take(&mut object, now);
        for webhook in object.core.webhooks(&config, now).unwrap().webhooks {
            let most = most_lag.entry(webhook.id).or_default();
            *most = (*most).max(webhook.lag_events);
        }
    }
    let first = receivers.first_event_at.get("wh-5").copied().expect("the fifth webhook got events");
    assert!(first < 1_000 + 1_000, "the fifth got its first event {} ms after the first publish", first - 1_000);
    for i in 1..=4 {
        let other = most_lag[&format!("wh-{i}")];
        assert!(most_lag["wh-5"] <= other, "its lag never exceeded the others': {most_lag:?}");
    }
    for i in 1..=5 {
        assert!(receivers.first_event_at.contains_key(&format!("wh-{i}")), "wh-{i} was served");
    }
}

#[test]
fn a_webhook_held_back_for_a_connection_gets_an_alarm_for_when_one_is_sure_to_be_free() {
    let config = with_webhooks(5);
    let mut object = Object::start(config.clone(), 0);
    let mut fx = Effects::default();
    object.core.append(&events(0, 1, 0), &config, 1_000, &mut fx).unwrap();
    assert_eq!(fx.posts.len(), 4, "four connections at most");
    let lease = pms_events::webhook::RetryPolicy::from_limits(&config.limits).lease_ms();
    let alarm = fx.alarm_by.expect("an alarm for the one left waiting");
    assert!(alarm <= 1_000 + lease, "by the time the attempts in flight are over: {alarm}");
    // The object restarts with their attempts in flight (the tasks are lost): the alarm
    // wakes the webhooks, and the one left out goes first once the leases are over.
    object.restart(2_000);
    let mut fx = Effects::default();
    object.core.alarm(&config, 1_000 + lease + 1, &mut fx).unwrap();
    assert_eq!(fx.posts.first().map(|p| p.webhook.id.as_str()), Some("wh-5"), "the one that waited goes first");
}

#[test]
fn the_demo_configuration_has_no_webhooks_and_a_publish_posts_nothing() {
    let config = demo_config();
    let mut object = Object::start(config.clone(), 0);
    let mut fx = Effects::default();
    object.core.append(&events(0, 3, 0), &config, 1, &mut fx).unwrap();
    assert!(fx.posts.is_empty());
}

/// A publish lets each webhook make one filter-only scan (its answer waits for no long
/// scan); the rest of the scan goes on in turns of its own.
#[test]
fn a_publish_allows_one_filter_only_scan_per_webhook() {
    let mut doc = demo_json();
    let hook = json!({"id": "wh-out", "chain": "TTE", "url": "https://r.example/hook", "secret": SECRET, "eventNames": ["CHECKOUT"]});
    doc["clients"].as_array_mut().unwrap().iter_mut().find(|c| c["id"] == "client-app-001").unwrap()["webhooks"] =
        json!([hook]);
    let config = ServiceConfig::parse(&doc.to_string()).unwrap();
    let mut object = Object::start(config.clone(), 0);
    let mut fx = Effects::default();
    object.core.append(&events(0, 5_000, 0), &config, 1_000, &mut fx).unwrap();
    assert!(fx.posts.is_empty(), "no checkout to post");
    assert!(fx.webhooks_again, "the scan goes on in a turn of its own");
    let one_scan = (pms_events::webhook::delivery::PLAN_BUDGET.pages * pms_events::log::read::PAGE) as u64;
    let status = object.core.webhooks(&config, 1_000).unwrap();
    assert_eq!(status.webhooks[0].cursor, one_scan.to_string(), "one scan's worth skipped, not two");
    // The turns that follow finish the scan, a scan each.
    let mut turns = 0;
    loop {
        let mut fx = Effects::default();
        object.core.wake_webhooks(&config, 1_001, &mut fx);
        turns += 1;
        if !fx.webhooks_again {
            break;
        }
    }
    let status = object.core.webhooks(&config, 1_001).unwrap();
    assert_eq!(status.webhooks[0].cursor, "5000");
    assert!(turns <= 5_000 / one_scan as usize / super_skips() + 2, "{turns} turns");
}

fn super_skips() -> usize {
    pms_events::chain::webhooks::SKIPS_PER_WAKE
}
