//! The gateway's side of a subscription: forwarding, acknowledgement, reattach and gaps.

use pms_events::stream::protocol::next_start;
use pms_events::stream::relay::{
    Relay, Retry, Step, ACK_EVERY, MAX_ATTACH_FAILURES, MAX_BACKOFF_MS, MAX_UNREAD_SENDS, STABLE_ATTACH_MS,
};
use pms_events::stream::slow_consumer::DEFAULT_RESEND_WINDOW_MS;
use pms_events::stream::spec::Start;
use pms_events::stream::wire::frame_cost;
use serde_json::Value;

/// A payload as the chain object renders it (no operation id: the gateway adds it).
fn frame(offset: u64) -> String {
    format!(r#"{{"data":{{"newEvent":{{"o":"{offset}"}}}}}}"#)
}

fn batch(through: u64, offsets: &[u64], gap: Option<u64>) -> String {
    let mut text = format!("B {through}");
    if let Some(g) = gap {
        text.push_str(&format!(" g{g}"));
    }
    for o in offsets {
        text.push_str(&format!("\n{o} {}", frame(*o)));
    }
    text
}

fn forwarded(relay: &mut Relay, text: &str) -> (Vec<Value>, Option<String>) {
    match relay.on_message(text) {
        Step::Forward { frames } => {
            let start = next_start("s");
            let mut out = String::new();
            let rendered = frames.iter().map(|f| {
                f.render(&start, &mut out);
                let frame: Value = serde_json::from_str(&out).unwrap();
                assert_eq!(frame["id"], "s", "the gateway renders the operation's frame");
                frame
            });
            let rendered = rendered.collect();
            // Frames sent long enough ago count as read.
            relay.on_sent(0, 0);
            (rendered, relay.ack(false, 0, DEFAULT_RESEND_WINDOW_MS))
        }
        other => panic!("{other:?}"),
    }
}

fn offsets(frames: &[Value]) -> Vec<u64> {
    frames.iter().map(|f| f["payload"]["data"]["newEvent"]["o"].as_str().unwrap().parse().unwrap()).collect()
}

#[test]
fn the_first_attach_uses_the_subscriptions_start_and_reattaches_start_at_the_next_offset() {
    let mut r = Relay::new();
    assert_eq!(r.start(Start::Resume), Start::Resume);
    assert_eq!(
        r.on_attached(7, None, 0),
        "A 0 6",
        "the first acknowledgement opens the window: nothing before 7 is owed"
    );
    assert_eq!(r.start(Start::Resume), Start::At(7), "nothing forwarded yet: start where it attached");
    forwarded(&mut r, &batch(9, &[7, 8, 9], None));
    assert_eq!(r.start(Start::Resume), Start::At(10));
    // A frame-less batch (a filtered scan) moves the next offset too.
    forwarded(&mut r, &batch(400, &[], None));
    assert_eq!(r.start(Start::Resume), Start::At(401));
}

#[test]
fn frames_resent_after_a_reattach_are_not_forwarded_twice() {
    let mut r = Relay::new();
    r.on_attached(1, None, 0);
    let (f, _) = forwarded(&mut r, &batch(5, &[1, 2, 3, 4, 5], None));
    assert_eq!(offsets(&f), [1, 2, 3, 4, 5]);
    // The object restarted mid-batch; the new one sends an overlapping batch.
    assert_eq!(r.on_detached(10), Retry::After(0));
    r.on_attached(4, None, 20);
    let (f, _) = forwarded(&mut r, &batch(8, &[4, 5, 6, 7, 8], None));
    assert_eq!(offsets(&f), [6, 7, 8], "no repeat");
    assert_eq!((r.forwarded, r.first_offset, r.last_offset), (8, Some(1), Some(8)));
}

#[test]
fn acknowledgements_come_every_quarter_window_and_once_more_at_stop() {
    let mut r = Relay::new();
    r.on_attached(1, None, 0);
    let mut acks = Vec::new();
    let mut next = 1;
    for _ in 0..10 {
        let offsets: Vec<u64> = (next..next + 50).collect();
        next += 50;
        let (_, ack) = forwarded(&mut r, &batch(next - 1, &offsets, None));
        acks.extend(ack);
    }
    assert_eq!(acks, ["A 150 150", "A 150 300", "A 150 450"], "every {ACK_EVERY} frames or more");
    assert_eq!(r.final_ack(0, DEFAULT_RESEND_WINDOW_MS), "A 50 500", "the rest at stop, so the saved cursor is exact");
    assert_eq!(r.final_ack(0, DEFAULT_RESEND_WINDOW_MS), "A 0 500");
}

#[test]
fn acknowledgements_wait_while_the_vendor_is_behind_and_count_large_frames_by_their_size() {
    let mut r = Relay::new();
    r.on_attached(1, None, 0);
    let large = |offset: u64| format!(r#"{{"data":{{"newEvent":{{"o":"{offset}","pad":"{}"}}}}}}"#, "x".repeat(10_000));
    let cost = frame_cost(&large(1));
    assert_eq!(cost, 10, "one unit, and one per KiB");
    let mut sent = 0;
    for offset in 1..=20 {
        let message = format!("B {offset}\n{offset} {}", large(offset));
        let Step::Forward { frames } = r.on_message(&message) else { panic!() };
        assert_eq!(frames.len(), 1);
        sent += cost;
        r.on_sent(u64::from(sent) * 1024, 0);
        assert_eq!(r.ack(true, 0, 0), None, "held while the vendor is behind");
    }
    let all = u64::from(sent) * 1024;
    assert_eq!(r.ack(false, all, 0), Some(format!("A {sent} 20")), "all of it once the vendor caught up");
    assert_eq!(r.ack(false, all, 0), None);
}

#[test]
fn a_gap_stays_pending_across_reattaches_until_a_frame_carried_it() {
    let mut r = Relay::new();
    // Retention dropped 3..9 when the subscription asked for 3.
    r.on_attached(10, Some(3), 0);
    // The object restarts before it sent anything.
    assert_eq!(r.on_detached(5), Retry::After(0));
    assert_eq!(r.start(Start::At(3)), Start::At(10));
    // Meanwhile retention went further: the new attach reports a gap from 10.
    r.on_attached(12, Some(10), 10);
    let (f, _) = forwarded(&mut r, &batch(13, &[12, 13], None));
    assert_eq!(f[0]["payload"]["extensions"]["gap"], serde_json::json!({"requested": "3", "resumedAt": "12"}));
    assert_eq!(f[1]["payload"].get("extensions"), None);
    // A frame-less batch reporting a hole keeps it for the next frame.
    forwarded(&mut r, &batch(20, &[], Some(14)));
    let (f, _) = forwarded(&mut r, &batch(21, &[21], None));
    assert_eq!(f[0]["payload"]["extensions"]["gap"], serde_json::json!({"requested": "14", "resumedAt": "21"}));
}

#[test]
fn attaches_that_end_at_once_back_off_then_give_up() {
    let mut r = Relay::new();
    let mut waits = Vec::new();
    let mut now = 0;
    loop {
        r.on_attached(1, None, now);
        now += 5; // closed at once, nothing forwarded
        match r.on_detached(now) {
            Retry::After(ms) => {
                waits.push(ms);
                now += ms;
            }
            Retry::GiveUp => break,
        }
        assert!(waits.len() <= MAX_ATTACH_FAILURES as usize, "must give up");
    }
    assert_eq!(waits.len(), MAX_ATTACH_FAILURES as usize);
    assert_eq!(waits[0], 0, "a restart is retried at once");
    assert!(waits.windows(2).all(|w| w[1] >= w[0]), "{waits:?}");
    assert!(waits.iter().all(|&w| w <= MAX_BACKOFF_MS));
    assert!(waits[waits.len() - 1] > waits[1], "{waits:?}");
}

#[test]
fn a_working_attach_resets_the_failures_and_failed_attaches_count_too() {
    let mut r = Relay::new();
    for _ in 0..3 {
        r.on_attached(1, None, 0);
        r.on_detached(1);
    }
    // This one forwards a frame: it worked, the next detach is a fresh start.
    r.on_attached(1, None, 100);
    forwarded(&mut r, &batch(1, &[1], None));
    assert_eq!(r.on_detached(101), Retry::After(0));
    // So is one that lasted long without traffic.
    r.on_attached(2, None, 200);
    assert_eq!(r.on_detached(200 + STABLE_ATTACH_MS), Retry::After(0));
    // Attach errors (the object unreachable) count the same way.
    let mut gave_up = false;
    for _ in 0..=MAX_ATTACH_FAILURES {
        if r.on_attach_failed() == Retry::GiveUp {
            gave_up = true;
        }
    }
    assert!(gave_up);
}

#[test]
fn an_e_message_fails_the_subscription_and_garbage_is_ignored() {
    let mut r = Relay::new();
    r.on_attached(1, None, 0);
    assert_eq!(
        r.on_message("E FRAME_TOO_LARGE the event at offset 9 is too big"),
        Step::Fail { code: "FRAME_TOO_LARGE", message: "the event at offset 9 is too big" }
    );
    assert_eq!(r.on_message("hello"), Step::Ignore);
    assert_eq!(r.on_message("B x"), Step::Ignore);
}

/// The gateway renders a batch's frames into one text and sends each as its own string:
/// the ends it records must cut exactly the frames rendered one by one, also around
/// characters outside ASCII (a guest's name) and outside the Basic Multilingual Plane.
#[test]
fn rendered_frames_cut_into_exactly_the_frames_rendered_one_by_one() {
    use pms_events::log::Gap;
    use pms_events::stream::relay::{Frame, RenderedFrames};
    let payloads = [r#"{"data":{"e":{"n":"Zoë Ångström"}}}"#, r#"{"data":{"e":{"n":"🏨 x"}}}"#, r#"{"data":{"e":1}}"#];
    let frames: Vec<Frame> = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| Frame {
            offset: i as u64 + 1,
            payload: p,
            gap: (i == 1).then_some(Gap { requested: 1, resumed_at: 2 }),
        })
        .collect();
    let start = next_start("op-é");
    let mut rendered = RenderedFrames::default();
    rendered.render(&start, &frames);
    let cut: Vec<&str> = rendered.frames().collect();
    assert_eq!(cut.len(), frames.len());
    for (frame, slice) in frames.iter().zip(&cut) {
        let mut one = String::new();
        frame.render(&start, &mut one);
        assert_eq!(*slice, one);
        let value: Value = serde_json::from_str(slice).unwrap();
        assert_eq!(value["id"], "op-é");
    }
    assert_eq!(cut.concat(), rendered.text, "the frames are the whole text");
    // Reused: the next batch replaces the last.
    rendered.render(&start, &frames[2..]);
    assert_eq!(rendered.frames().count(), 1);
    assert_eq!(rendered.text, {
        let mut one = String::new();
        frames[2].render(&start, &mut one);
        one
    });
}

/// The saved cursor a resume without an offset continues from moves only through frames the
/// vendor has read: confirmed by the pong of a ping sent after them, or sent long enough
/// ago on a connection still open. Frames sent just before a drop are sent again.
#[test]
fn the_saved_cursor_counts_what_was_read_not_what_was_sent() {
    let mut r = Relay::new();
    r.on_attached(1, None, 0);
    let mut output = 0;
    let mut send = |r: &mut Relay, from: u64, to: u64, at: u64| {
        let offsets: Vec<u64> = (from..=to).collect();
        let Step::Forward { .. } = r.on_message(&batch(to, &offsets, None)) else { panic!() };
        output += (to - from + 1) * 100;
        r.on_sent(output, at);
        output
    };
    let after_100 = send(&mut r, 1, 100, 1_000);
    send(&mut r, 101, 200, 2_000);
    send(&mut r, 201, 300, 3_000);
    // Nothing confirmed and nothing old: a drop now saves nothing past what was read.
    assert_eq!(r.read_through(0, 3_500), 0);
    // A pong confirmed the output up to the first batch.
    assert_eq!(r.read_through(after_100, 3_500), 100);
    // Time confirms the rest, batch by batch.
    assert_eq!(r.read_through(after_100, 2_000 + DEFAULT_RESEND_WINDOW_MS), 200);
    assert_eq!(
        r.final_ack(after_100, 2_000 + DEFAULT_RESEND_WINDOW_MS),
        "A 300 200",
        "the window is freed, the cursor is not"
    );
}

#[test]
fn unread_sends_are_bounded_and_merging_them_never_moves_the_cursor_too_far() {
    let mut r = Relay::new();
    r.on_attached(1, None, 0);
    for i in 1..=(MAX_UNREAD_SENDS as u64 * 4) {
        let Step::Forward { .. } = r.on_message(&batch(i, &[i], None)) else { panic!() };
        r.on_sent(i * 100, i);
    }
    // Whatever the pong confirms, the cursor never passes it.
    for confirmed in [0, 100, 5_000, 12_800, 20_000, 25_600] {
        let read = r.clone().read_through(confirmed, 0);
        assert!(read * 100 <= confirmed, "{read} read, {confirmed} bytes confirmed");
    }
    assert_eq!(r.read_through(25_600, 0), 256, "all of it once all of it is confirmed");
}
