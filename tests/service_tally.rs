//! The service tally: what the isolates count, how their counts add up in the object, the
//! bounds on its keys, and its Prometheus families.

mod common;
use common::demo_config;
use pms_events::routes::{route, Route};
use pms_events::service_tally::{
    enterprise_of_route, ClosedBy, PendingTally, ServiceTally, Tally, FLUSH_INTERVAL_MS, MAX_KEYS, OTHER, UNATTRIBUTED,
};
use pms_events::stream::protocol::close;

fn publish() -> Route {
    route("POST", "/events/v1/chains/TTE/events")
}

#[test]
fn answers_count_by_route_and_status_and_never_by_chain() {
    let mut tally = Tally::default();
    tally.count_response(&publish(), 202);
    tally.count_response(&route("POST", "/events/v1/chains/OTHER/events"), 202);
    tally.count_response(&route("GET", "/admin/v1/metrics"), 401);
    tally.count_response(&route("GET", "/admin/v1/chains/TTE/consumers"), 403);
    tally.count_response(&route("GET", "/no/such/path"), 404);
    assert_eq!(tally.responses["publish"]["202"], 2, "both chains under one label");
    assert_eq!(tally.responses["metrics"]["401"], 1);
    assert_eq!(tally.responses["admin"]["403"], 1);
    assert_eq!(tally.responses["unrouted"]["404"], 1);
    assert_eq!(tally.responses.len(), 4);
}

#[test]
fn slow_consumer_closes_count_by_client_and_client_chosen_codes_are_bounded() {
    let mut tally = Tally::default();
    tally.count_close(ClosedBy::Server, close::TOO_SLOW, Some("client-app-001"));
    tally.count_close(ClosedBy::Server, close::TOO_SLOW, Some("client-app-001"));
    tally.count_close(ClosedBy::Server, close::UNAUTHORIZED, Some("client-app-002"));
    tally.count_close(ClosedBy::Client, 1000, Some("client-app-002"));
    for code in 4000..4100 {
        tally.count_close(ClosedBy::Client, code, None);
    }
    assert_eq!(tally.slow_consumer_closes.len(), 1, "only 4413 is a slow-consumer close");
    assert_eq!(tally.slow_consumer_closes["client-app-001"], 2);
    assert_eq!(tally.closes["server"]["4413"], 2);
    assert_eq!(tally.closes["server"]["4401"], 1);
    assert_eq!(tally.closes["client"]["1000"], 1);
    assert_eq!(tally.closes["client"][OTHER], 100, "a client's own codes are one label");
    assert_eq!(tally.closes["client"].len(), 2);
}

#[test]
fn no_map_grows_past_its_bound_and_nothing_counted_is_dropped() {
    let mut tally = Tally::default();
    tally.count_subscription_refused(
        (0..MAX_KEYS + 50).map(|i| format!("CODE_{i}")).collect::<Vec<_>>().iter().map(String::as_str),
    );
    assert_eq!(tally.subscriptions_refused.len(), MAX_KEYS + 1, "the bound, then `other`");
    assert_eq!(tally.subscriptions_refused[OTHER], 50);
    assert_eq!(tally.subscriptions_refused.values().sum::<u64>(), (MAX_KEYS + 50) as u64);
    // The object's sum keeps the same bound whatever the isolates send.
    let mut total = Tally::default();
    total.merge(&tally);
    total.merge(&tally);
    assert_eq!(total.subscriptions_refused.len(), MAX_KEYS + 1);
    assert_eq!(total.subscriptions_refused.values().sum::<u64>(), 2 * (MAX_KEYS + 50) as u64);
}

#[test]
fn isolates_counts_add_up_in_the_object_through_the_wire() {
    let mut a = Tally::default();
    a.count_response(&publish(), 202);
    a.observe_publish(3);
    a.count_subscription_refused(["FORBIDDEN"]);
    let mut b = Tally::default();
    b.count_response(&publish(), 202);
    b.count_response(&publish(), 401);
    b.observe_publish(40);
    b.observe_publish(20_000);
    b.count_close(ClosedBy::Server, close::TOO_SLOW, Some("client-app-001"));
    let mut total = Tally::default();
    for part in [&a, &b] {
        let wire = serde_json::to_string(part).unwrap();
        total.merge(&serde_json::from_str(&wire).unwrap());
    }
    assert_eq!(total.responses["publish"]["202"], 2);
    assert_eq!(total.responses["publish"]["401"], 1);
    assert_eq!(total.subscriptions_refused["FORBIDDEN"], 1);
    assert_eq!(total.slow_consumer_closes["client-app-001"], 1);
    assert_eq!((total.publish_duration.count, total.publish_duration.sum_ms), (3, 20_043));
    let cumulative = total.publish_duration.cumulative();
    assert_eq!(cumulative.first(), Some(&(Some(0.005), 1)), "3 ms is within the first bucket");
    assert!(cumulative.contains(&(Some(0.05), 2)), "40 ms within 50 ms: {cumulative:?}");
    assert_eq!(cumulative[cumulative.len() - 2], (Some(10.0), 2), "20 s is over the last bound");
    assert_eq!(cumulative.last(), Some(&(None, 3)));
}

#[test]
fn an_isolate_sends_at_most_once_an_interval_and_keeps_what_failed_to_send() {
    let mut pending = PendingTally::default();
    assert!(pending.take_due(10_000).is_none(), "nothing counted, nothing sent");
    pending.tally.of("BROWNS").count_response(&publish(), 202);
    let sent = pending.take_due(10_000).expect("due");
    assert_eq!(sent.enterprises["BROWNS"].responses["publish"]["202"], 1);
    pending.tally.of("BROWNS").count_response(&publish(), 202);
    assert!(pending.take_due(10_000 + FLUSH_INTERVAL_MS - 1).is_none(), "within the interval");
    let failed = pending.take_due(10_000 + FLUSH_INTERVAL_MS).expect("due again");
    pending.restore(&failed);
    pending.tally.of("BROWNS").count_response(&publish(), 202);
    assert_eq!(
        pending.take(10_000 + FLUSH_INTERVAL_MS).unwrap().enterprises["BROWNS"].responses["publish"]["202"],
        2,
        "kept and added to"
    );
}

#[test]
fn the_metrics_show_the_service_families_in_prometheus_form() {
    let mut tally = Tally::default();
    tally.count_response(&route("GET", "/admin/v1/metrics"), 401);
    tally.count_close(ClosedBy::Server, close::TOO_SLOW, Some("client-app-001"));
    tally.count_subscription_refused(["FORBIDDEN"]);
    tally.observe_publish(7);
    let text = pms_events::metrics::render(&[], &tally);
    for line in [
        "# TYPE pms_events_http_responses_total counter",
        "pms_events_http_responses_total{route=\"metrics\",code=\"401\"} 1",
        "pms_events_connections_closed_total{by=\"server\",code=\"4413\"} 1",
        "pms_events_slow_consumer_closes_total{client_id=\"client-app-001\"} 1",
        "pms_events_subscriptions_refused_total{code=\"FORBIDDEN\"} 1",
        "# TYPE pms_events_publish_duration_seconds histogram",
        "pms_events_publish_duration_seconds_bucket{le=\"0.005\"} 0",
        "pms_events_publish_duration_seconds_bucket{le=\"0.01\"} 1",
        "pms_events_publish_duration_seconds_bucket{le=\"+Inf\"} 1",
        "pms_events_publish_duration_seconds_sum 0.007",
        "pms_events_publish_duration_seconds_count 1",
    ] {
        assert!(text.lines().any(|l| l == line), "{line}\n{text}");
    }
}

#[test]
fn an_admin_sees_its_enterprises_counts_and_the_unattributed_never_anothers() {
    let config = demo_config();
    assert_eq!(enterprise_of_route(&publish(), &config), Some("BROWNS"));
    assert_eq!(enterprise_of_route(&route("GET", "/admin/v1/chains/OTH/consumers"), &config), Some("OTHER"));
    assert_eq!(enterprise_of_route(&route("POST", "/events/v1/chains/NOPE/events"), &config), None, "an unknown chain");
    assert_eq!(enterprise_of_route(&route("GET", "/admin/v1/metrics"), &config), None);
    let mut total = ServiceTally::default();
    total.of("BROWNS").count_response(&publish(), 202);
    total.of("OTHER").count_response(&route("POST", "/events/v1/chains/OTH/events"), 202);
    total.of("OTHER").count_close(ClosedBy::Server, close::TOO_SLOW, Some("client-app-003"));
    total.of(UNATTRIBUTED).count_response(&route("GET", "/admin/v1/metrics"), 401);
    // Through the wire, as the object keeps it.
    let total: ServiceTally = serde_json::from_str(&serde_json::to_string(&total).unwrap()).unwrap();
    let browns = total.seen_by("BROWNS");
    assert_eq!(browns.responses["publish"]["202"], 1, "its own publishes only");
    assert_eq!(browns.responses["metrics"]["401"], 1, "and the unattributed refusals");
    assert!(browns.slow_consumer_closes.is_empty(), "no other enterprise's client");
    let other = total.seen_by("OTHER");
    assert_eq!(other.slow_consumer_closes["client-app-003"], 1);
    assert_eq!(other.responses["publish"]["202"], 1);
}

#[test]
fn enterprises_past_the_bound_are_kept_apart_and_shown_to_nobody() {
    let mut total = ServiceTally::default();
    for i in 0..MAX_KEYS + 10 {
        total.of(&format!("E{i}")).count_response(&publish(), 202);
    }
    assert_eq!(total.enterprises.len(), MAX_KEYS + 1);
    let late = format!("E{}", MAX_KEYS + 5);
    assert!(total.seen_by(&late).is_empty(), "an enterprise past the bound sees no one's overflow");
    assert_eq!(total.seen_by("E0").responses["publish"]["202"], 1);
}

#[test]
fn one_refusal_with_several_errors_of_one_code_counts_once() {
    let mut tally = Tally::default();
    tally.count_subscription_refused(["BAD_USER_INPUT", "BAD_USER_INPUT", "FORBIDDEN"]);
    assert_eq!(tally.subscriptions_refused["BAD_USER_INPUT"], 1);
    assert_eq!(tally.subscriptions_refused["FORBIDDEN"], 1);
}

#[test]
fn only_an_accepted_publish_is_timed() {
    let mut tally = Tally::default();
    tally.count_answer(&publish(), 200, 12);
    tally.count_answer(&publish(), 401, 3);
    tally.count_answer(&route("GET", "/events/v1/chains/TTE/events"), 200, 4);
    assert_eq!((tally.publish_duration.count, tally.publish_duration.sum_ms), (1, 12));
    assert_eq!(tally.responses["publish"].values().sum::<u64>(), 2);
    assert_eq!(tally.responses["pull"]["200"], 1);
}
