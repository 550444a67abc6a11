//! Saved cursors moved by acknowledgements wait for one write together
//! (`stream::cursors`): each key once, never moved back, and a new subscription resumes
//! from the pending move.

use pms_events::stream::cursors::PendingCursors;

#[test]
fn a_key_is_written_once_at_its_furthest_offset_and_latest_time() {
    let mut pending = PendingCursors::default();
    pending.record("app|{}", 256, 1_000);
    pending.record("app|{}", 128, 1_050); // an acknowledgement of an older attach, late
    let mut moved = pending.take();
    moved.sort();
    assert_eq!(moved, vec![("app|{}".to_string(), (256, 1_050))]);
    assert!(pending.take().is_empty(), "taken moves are not written twice");
}

#[test]
fn a_resume_sees_the_pending_move_unless_storage_is_further() {
    let mut pending = PendingCursors::default();
    assert_eq!(pending.newest("app|{}", None), None);
    assert_eq!(pending.newest("app|{}", Some((10, 5))), Some((10, 5)));
    pending.record("app|{}", 200, 1_000);
    assert_eq!(pending.newest("app|{}", None), Some((200, 1_000)));
    assert_eq!(pending.newest("app|{}", Some((150, 900))), Some((200, 1_000)));
    assert_eq!(pending.newest("app|{}", Some((250, 900))), Some((250, 900)));
    assert_eq!(pending.newest("other|{}", Some((7, 1))), Some((7, 1)), "keys stay apart");
    pending.take();
    assert_eq!(pending.newest("app|{}", Some((200, 1_000))), Some((200, 1_000)));
}
