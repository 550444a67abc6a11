//! When a chain object fans out: once per request, rotated over its sockets, paced only
//! under backlog, in the publish's own turn when the object is quiet.

use pms_events::stream::schedule::FanOutStart::{After, ThisTurn};
use pms_events::stream::schedule::*;

#[test]
fn the_fan_out_schedule_runs_once_per_request_and_rotates() {
    let mut schedule = FanOutSchedule::default();
    assert_eq!(schedule.request(false, 1_000, || false), None, "nobody attached: nothing to do");
    assert_eq!(schedule.request(false, 1_000, || true), Some(ThisTurn), "the first publish fans out at once");
    assert_eq!(schedule.request(false, 1_001, || true), None, "publishes meanwhile join the one scheduled");
    assert!(!schedule.found_subscribers(), "no fan-out has run yet");
    assert_eq!(schedule.run(1_002, 100), Some(0));
    assert!(schedule.found_subscribers());
    assert_eq!(
        schedule.request(false, 1_010, || unreachable!()),
        Some(After(0)),
        "sockets were found: not asked again"
    );
    assert_eq!(schedule.run(1_010, 100), Some(1), "each fan-out starts at the next socket");
    schedule.request(false, 1_020, || unreachable!());
    assert_eq!(schedule.run(1_020, 3), Some(2));
    schedule.request(false, 1_030, || unreachable!());
    assert_eq!(schedule.run(1_030, 3), Some(0), "the rotation wraps around the sockets");
    schedule.request(false, 1_040, || unreachable!());
    assert_eq!(schedule.run(1_040, 0), None, "every socket left meanwhile");
    assert!(!schedule.found_subscribers());
    assert_eq!(schedule.request(false, 1_050, || false), None, "and none came back");
}

#[test]
fn fan_outs_are_paced_only_while_the_object_is_busy() {
    let mut schedule = FanOutSchedule::default();
    // Idle: every fan-out runs without waiting, however many subscribers.
    for t in [1_000, 1_010, 1_020] {
        assert!(matches!(schedule.request(false, t, || true), Some(ThisTurn | After(0))));
        schedule.run(t + 1, 100);
    }
    // A fan-out that ran late (the object was busy with other work) paces the next one.
    schedule.request(false, 1_030, || true);
    schedule.run(1_030 + LATE_FAN_OUT_MS, 100);
    let ran_at = 1_030 + LATE_FAN_OUT_MS;
    assert_eq!(schedule.request(false, ran_at + 2, || true), Some(After(backlog_pace_ms(100) - 2)));
    // Busy still: the paced one ran late too, so the next is paced again.
    schedule.run(ran_at + backlog_pace_ms(100) + LATE_FAN_OUT_MS, 100);
    let ran_at = ran_at + backlog_pace_ms(100) + LATE_FAN_OUT_MS;
    assert_eq!(schedule.request(true, ran_at, || true), Some(After(0)), "a resumed fan-out is never paced");
    // On time: the object is idle again, and the next fan-out runs at once.
    schedule.run(ran_at, 100);
    assert_eq!(schedule.request(false, ran_at + 1, || true), Some(After(0)));
    assert_eq!(backlog_pace_ms(1), 0, "a lone subscriber is never paced");
    assert_eq!(backlog_pace_ms(100_000), MAX_FAN_OUT_PACE_MS);
}

#[test]
fn a_quiet_object_fans_out_in_the_publish_turn_and_a_busy_one_by_timer() {
    let mut schedule = FanOutSchedule::default();
    assert_eq!(schedule.request(false, 1_000, || true), Some(ThisTurn), "no fan-out before: the publish's own turn");
    schedule.run(1_000, 10);
    // The next publish within QUIET_FAN_OUT_MS: a timer, which later publishes may join.
    let soon = 1_000 + QUIET_FAN_OUT_MS - 1;
    assert_eq!(schedule.request(false, soon, || true), Some(After(0)));
    assert_eq!(schedule.request(false, soon + 1, || true), None, "joins the scheduled one");
    schedule.run(soon + 1, 10);
    let quiet = soon + 1 + QUIET_FAN_OUT_MS;
    assert_eq!(schedule.clone().request(true, quiet, || true), Some(After(0)), "a resume yields to waiting work");
    assert_eq!(schedule.request(false, quiet, || true), Some(ThisTurn));
    // With many subscriptions, quiet means no fan-out for their pace.
    schedule.run(quiet, 100);
    let paced = quiet + backlog_pace_ms(100);
    assert_eq!(schedule.request(false, paced - 1, || true), Some(After(0)), "publishes closer than the pace batch");
    schedule.run(paced - 1, 100);
    let quiet = paced - 1 + backlog_pace_ms(100);
    assert_eq!(schedule.request(false, quiet, || true), Some(ThisTurn));
    // A late fan-out (backlog) paces the next: never in the publish's turn.
    schedule.run(quiet + LATE_FAN_OUT_MS, 10);
    let later = quiet + LATE_FAN_OUT_MS + QUIET_FAN_OUT_MS + 100;
    assert_eq!(schedule.request(false, later, || true), Some(After(0)));
}
