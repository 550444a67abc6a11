//! The chain object's one alarm: written only when no alarm already set fires in time, and
//! read from storage once after a restart before a write.

use pms_events::chain::alarm::{AlarmClock, AlarmStep};

#[test]
fn a_wish_an_alarm_already_set_covers_writes_nothing() {
    let mut clock = AlarmClock::default();
    assert_eq!(clock.wish(5_000, 1_000), AlarmStep::ReadStored, "a new instance asks storage first");
    assert_eq!(clock.after_read(None, 5_000, 1_000), AlarmStep::Set(5_000));
    assert_eq!(clock.wish(9_000, 1_100), AlarmStep::Covered, "an earlier alarm serves a later wish");
    assert_eq!(clock.wish(3_000, 1_200), AlarmStep::Set(3_000), "an earlier wish moves it");
    assert_eq!(clock.wish(3_000, 1_300), AlarmStep::Covered);
    assert_eq!(clock.wish(500, 1_400), AlarmStep::Set(1_401), "never in the past");
}

#[test]
fn after_a_restart_an_earlier_stored_alarm_is_kept_and_a_stale_one_ignored() {
    let mut clock = AlarmClock::default();
    assert_eq!(clock.wish(9_000, 1_000), AlarmStep::ReadStored);
    assert_eq!(clock.after_read(Some(4_000), 9_000, 1_000), AlarmStep::Covered, "storage fires first");
    assert!(clock.covers(9_000, 1_000));
    let mut clock = AlarmClock::default();
    clock.wish(9_000, 5_000);
    assert_eq!(
        clock.after_read(Some(4_000), 9_000, 5_000),
        AlarmStep::Set(9_000),
        "a stored alarm in the past is none"
    );
}

#[test]
fn a_fired_alarm_counts_as_none() {
    let mut clock = AlarmClock::default();
    clock.wish(5_000, 1_000);
    clock.after_read(None, 5_000, 1_000);
    clock.fired();
    assert!(!clock.covers(u64::MAX, 5_000));
    assert_eq!(clock.wish(8_000, 5_000), AlarmStep::ReadStored);
}
