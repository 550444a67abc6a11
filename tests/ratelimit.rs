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
fn open_connections_are_counted_per_app_key_and_given_back() {
    use pms_events::auth::ratelimit::OpenConnections;
    let mut open = OpenConnections::default();
    assert!(open.take("A", 2));
    assert!(open.take("A", 2));
    assert!(!open.take("A", 2), "a third is over the limit");
    assert!(open.take("B", 2), "another app key has its own count");
    assert_eq!((open.of("A"), open.of("B")), (2, 1));
    open.give_back("A");
    assert!(open.take("A", 2), "a slot given back can be taken again");
    open.give_back("A");
    open.give_back("A");
    open.give_back("B");
    assert_eq!(open.app_keys(), 0, "app keys with no connection are forgotten");
    open.give_back("B");
    assert_eq!(open.of("B"), 0, "giving back more than taken never underflows");
    assert!(!open.take("C", 0));
    assert_eq!(open.app_keys(), 0, "a refused app key leaves nothing behind");
}
