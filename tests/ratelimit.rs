use pms_events::auth::ratelimit::{FailureCount, LoginGuard, LoginLimits, UpgradeWindow, MAX_SOURCES};

const LIMITS: LoginLimits = LoginLimits { failures_per_source: 5, failures_per_client: 50, lockout_seconds: 300 };

#[test]
fn locks_after_max_failures_within_window_and_unlocks_later() {
    let mut g = FailureCount::default();
    for i in 0..4 {
        g.record_failure(1000 + i, 5, 300);
        assert_eq!(g.retry_after(1000 + i), None);
    }
    g.record_failure(1004, 5, 300);
    assert_eq!(g.retry_after(1004), Some(300));
    assert_eq!(g.retry_after(1200), Some(104));
    assert_eq!(g.retry_after(1304), None);
}

#[test]
fn failures_outside_the_window_do_not_add_up() {
    let mut g = FailureCount::default();
    for i in 0..4 {
        g.record_failure(1000 + i, 5, 300);
    }
    g.record_failure(2000, 5, 300);
    assert_eq!(g.retry_after(2000), None);
}

#[test]
fn success_resets_the_count_of_its_source() {
    let mut g = LoginGuard::default();
    for i in 0..4 {
        g.record_failure("10.0.0.1", 1000 + i, LIMITS);
    }
    g.record_success("10.0.0.1");
    g.record_failure("10.0.0.1", 1010, LIMITS);
    assert_eq!(g.retry_after("10.0.0.1", 1010), None);
}

#[test]
fn one_source_guessing_locks_only_itself_out() {
    let mut g = LoginGuard::default();
    for i in 0..5 {
        g.record_failure("198.51.100.7", 1000 + i, LIMITS);
    }
    assert_eq!(g.retry_after("198.51.100.7", 1005), Some(299), "the attacker is locked out");
    assert_eq!(g.retry_after("203.0.113.9", 1005), None, "the real publisher, elsewhere, is not");
}

#[test]
fn many_sources_together_meet_the_client_ceiling() {
    let mut g = LoginGuard::default();
    for i in 0..50u64 {
        g.record_failure(&format!("192.0.2.{i}"), 1000, LIMITS);
    }
    assert_eq!(g.retry_after("203.0.113.9", 1000), Some(300), "the ceiling locks the id from everywhere");
}

#[test]
fn sources_remembered_are_bounded() {
    let mut g = LoginGuard::default();
    let limits = LoginLimits { failures_per_client: 100_000, ..LIMITS };
    for i in 0..(MAX_SOURCES as u64 + 500) {
        g.record_failure(&format!("s{i}"), 1000 + i, limits);
    }
    assert!(g.sources() <= MAX_SOURCES, "{} sources kept", g.sources());
    assert!(!g.is_empty());
}

#[test]
fn upgrades_are_admitted_up_to_the_limit_per_window_then_refused_with_the_wait() {
    let mut w = UpgradeWindow::default();
    for i in 0..150 {
        assert_eq!(w.admit(1_000 + i, 150, 120), Ok(()));
    }
    assert_eq!(w.admit(2_000, 150, 120), Err(119), "the oldest leaves the window at 121 s");
    assert_eq!(w.admit(60_000, 150, 120), Err(61));
    assert_eq!(w.admit(121_000, 150, 120), Ok(()), "the first left the window");
    assert_eq!(w.admit(121_000, 150, 120), Err(1), "the second leaves a millisecond later");
    assert_eq!(w.admit(121_001, 150, 120), Ok(()));
}

#[test]
fn open_connections_of_an_app_key_are_counted_across_isolates_and_given_back() {
    use pms_events::auth::ratelimit::OpenConnections;
    let mut open = OpenConnections::default();
    assert!(open.admit("isolate-a", 3, 0));
    assert!(open.admit("isolate-a", 3, 0));
    assert!(open.admit("isolate-b", 3, 0), "another isolate adds to the same count");
    assert!(!open.admit("isolate-c", 3, 0), "a fourth is over the ceiling, wherever it lands");
    assert_eq!(open.open(0), 3);
    open.release("isolate-b");
    assert!(open.admit("isolate-c", 3, 0), "a connection given back can be taken again");
    open.release("isolate-c");
    open.release("isolate-c");
    assert_eq!(open.open(0), 2, "giving back more than taken never underflows");
}

#[test]
fn an_isolate_that_stops_renewing_is_forgotten_and_one_that_renews_is_kept() {
    use pms_events::auth::ratelimit::{OpenConnections, CONNECTION_LEASE_MS, CONNECTION_RENEW_MS};
    let mut open = OpenConnections::default();
    for _ in 0..2 {
        assert!(open.admit("evicted", 4, 0));
    }
    assert!(open.admit("alive", 4, 0));
    assert!(open.admit("alive", 4, 0));
    assert!(!open.admit("new", 4, 1));
    // The evicted isolate never says goodbye; the live one renews on time.
    let mut now = 0;
    while now < CONNECTION_LEASE_MS {
        now += CONNECTION_RENEW_MS;
        open.renew("alive", 2, now);
    }
    assert_eq!(open.open(now), 2, "the evicted isolate's count lapsed, the renewed one holds");
    assert!(open.admit("new", 4, now));
    // A renewal says what the isolate holds now: a release that got lost is corrected.
    open.renew("alive", 1, now);
    assert_eq!(open.open(now), 2);
    open.renew("alive", 0, now);
    open.release("new");
    assert!(open.is_empty(), "nothing held, nothing kept");
}
