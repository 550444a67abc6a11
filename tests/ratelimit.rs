use pms_events::ratelimit::LoginGuard;

#[test]
fn locks_after_max_failures_within_window_and_unlocks_later() {
    let mut g = LoginGuard::default();
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
    let mut g = LoginGuard::default();
    for i in 0..4 {
        g.record_failure(1000 + i, 5, 300);
    }
    g.record_failure(2000, 5, 300);
    assert_eq!(g.retry_after(2000), None);
}

#[test]
fn success_resets_the_count() {
    let mut g = LoginGuard::default();
    for i in 0..4 {
        g.record_failure(1000 + i, 5, 300);
    }
    g.record_success();
    g.record_failure(1010, 5, 300);
    assert_eq!(g.retry_after(1010), None);
}
