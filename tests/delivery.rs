//! Both sides of a subscription at once, without I/O: the chain object's real core
//! (`chain::ChainCore`, over the in-memory store and recorded sockets) serving from its log,
//! and the gateway's relay forwarding to the vendor and acknowledging. The vendor must see
//! every event once, in order, whatever happens in between: restarts, hibernation, resends,
//! a full window, a slow reader; and a vendor that resumes without an offset never starts
//! after an event it did not read.

mod common;

use std::collections::VecDeque;
use std::rc::Rc;

use common::object::{events, subscription, Object, RecordedSocket};
use common::{demo_config, parse_ack, parse_batch};
use pms_events::chain::attached::Spec;
use pms_events::chain::host::Effects;
use pms_events::stream::protocol::{close, next_start, Close};
use pms_events::stream::relay::{Relay, Retry, Step, ACK_EVERY, WINDOW};
use pms_events::stream::slow_consumer::{GuardTick, SlowConsumerGuard};
use pms_events::stream::spec::Start;
use serde_json::{json, Value};

/// The gateway's side of one subscription, and what its vendor received.
struct Gateway {
    id: String,
    spec: Spec,
    relay: Relay,
    socket: Rc<RecordedSocket>,
    vendor: Vec<Value>,
    /// Bytes sent to the vendor: it reads them at once, so all are confirmed.
    output: u64,
}

impl Gateway {
    fn attach(object: &mut Object, spec: Spec, now: u64) -> Gateway {
        let mut relay = Relay::new();
        let (socket, start, gap) = object.attach(spec.clone(), now).expect("attached");
        let open = relay.on_attached(start, gap, now);
        assert_eq!(parse_ack(&open), Some((0, 0)), "the attach opens the window");
        object.gateway_says(&socket, &open, now);
        Gateway { id: spec.id.clone(), spec, relay, socket, vendor: Vec::new(), output: 0 }
    }

    /// Attaches again where the relay says, after the object went away.
    fn reattach(&mut self, object: &mut Object, now: u64) {
        let mut spec = self.spec.clone();
        spec.start = self.relay.start(self.spec.start);
        self.reattach_at(object, spec, now);
    }

    fn reattach_at(&mut self, object: &mut Object, spec: Spec, now: u64) {
        let (socket, start, gap) = object.attach(spec, now).expect("reattached");
        let open = self.relay.on_attached(start, gap, now);
        object.gateway_says(&socket, &open, now);
        self.socket = socket;
    }

    /// Forwards what arrived to the vendor and sends the acknowledgements due. Returns how
    /// many messages arrived.
    fn forward(&mut self, object: &mut Object, now: u64) -> usize {
        let messages = self.socket.take();
        let start = next_start(&self.id);
        for text in &messages {
            let Step::Forward { frames } = self.relay.on_message(text) else { panic!("{text}") };
            let mut out = String::new();
            for frame in &frames {
                frame.render(&start, &mut out);
                self.output += out.len() as u64;
                self.vendor.push(serde_json::from_str(&out).unwrap());
            }
            self.relay.on_sent(self.output, now);
            if let Some(ack) = self.relay.ack(false, self.output, now) {
                object.gateway_says(&self.socket.clone(), &ack, now);
            }
        }
        messages.len()
    }

    fn offsets(&self) -> Vec<u64> {
        self.vendor
            .iter()
            .map(|f| f["payload"]["data"]["newEvent"]["metadata"]["offset"].as_str().unwrap().parse().unwrap())
            .collect()
    }
}

/// Runs timers and forwards until neither side has anything left to do.
fn settle(object: &mut Object, gateways: &mut [&mut Gateway], now: u64) {
    loop {
        object.run_timers(now + 1_000);
        let moved: usize = gateways.iter_mut().map(|g| g.forward(object, now)).sum();
        if moved == 0 && object.fan_out_due.is_none() {
            return;
        }
    }
}

fn offsets_only(config: &pms_events::config::ServiceConfig, id: &str, input: &str) -> Spec {
    subscription(config, id, input, "metadata { offset }")
}

#[test]
fn window_exhaustion_holds_the_object_until_the_gateway_acknowledges() {
    let config = demo_config();
    let mut object = Object::start(config.clone(), 0);
    object.publish(&events(0, 2_000, 0), 1);
    let spec = offsets_only(&config, "s", r#"{chainCode: "TTE", offset: "1"}"#);
    let mut gateway = Gateway::attach(&mut object, spec, 2);
    let first = gateway.socket.take();
    let sent: usize = first.iter().map(|m| parse_batch(m).unwrap().frames.len()).sum();
    assert_eq!(sent, WINDOW as usize, "the object stops at a full window");
    object.run_timers(10_000);
    assert!(gateway.socket.take().is_empty(), "and sends nothing more without an acknowledgement");
    gateway.socket.received.borrow_mut().extend(first);
    settle(&mut object, &mut [&mut gateway], 3);
    assert_eq!(gateway.offsets(), (1..=2_000).collect::<Vec<_>>(), "everything, once, in order");
    let final_ack = parse_ack(&gateway.relay.final_ack(gateway.output, 3)).unwrap();
    assert_eq!(final_ack.1, 2_000, "what the vendor read is what the saved cursor says");
}

#[test]
fn an_object_restart_mid_batch_loses_nothing_and_repeats_nothing() {
    let config = demo_config();
    let mut object = Object::start(config.clone(), 0);
    object.publish(&events(0, 300, 0), 1);
    let mut gateway = Gateway::attach(&mut object, offsets_only(&config, "s", r#"{chainCode: "TTE", offset: "1"}"#), 2);
    settle(&mut object, &mut [&mut gateway], 3);
    object.publish(&events(300, 300, 0), 10_000);
    object.run_timers(10_000);
    // The object sent the next batch and restarted before the gateway received it.
    assert!(!gateway.socket.take().is_empty());
    object.restart(10_001);
    assert_eq!(gateway.relay.on_detached(10_001), Retry::After(0), "the first reattach is immediate");
    gateway.reattach(&mut object, 10_002);
    settle(&mut object, &mut [&mut gateway], 10_003);
    assert_eq!(gateway.offsets(), (1..=600).collect::<Vec<_>>());
}

#[test]
fn frames_an_object_resends_after_a_reattach_reach_the_vendor_once() {
    let config = demo_config();
    let mut object = Object::start(config.clone(), 0);
    object.publish(&events(0, 300, 0), 1);
    let mut gateway = Gateway::attach(&mut object, offsets_only(&config, "s", r#"{chainCode: "TTE", offset: "1"}"#), 2);
    settle(&mut object, &mut [&mut gateway], 3);
    object.restart(20);
    gateway.relay.on_detached(20);
    // A new object that starts behind what was forwarded (say, from a saved cursor that
    // lagged): everything below the relay's next offset is dropped.
    let mut behind = gateway.spec.clone();
    behind.start = Start::At(201);
    gateway.reattach_at(&mut object, behind, 21);
    object.publish(&events(300, 50, 0), 22);
    settle(&mut object, &mut [&mut gateway], 23);
    assert_eq!(gateway.offsets(), (1..=350).collect::<Vec<_>>());
    assert_eq!(gateway.relay.forwarded, 350);
}

#[test]
fn retention_during_a_restart_is_told_once_on_the_first_frame_after_it() {
    let config = demo_config();
    let mut object = Object::start(config.clone(), 0);
    object.publish(&events(0, 10, 0), 1);
    let mut gateway = Gateway::attach(&mut object, offsets_only(&config, "s", r#"{chainCode: "TTE", offset: "1"}"#), 2);
    settle(&mut object, &mut [&mut gateway], 3);
    object.publish(&events(10, 10, 0), 4);
    object.restart(5);
    gateway.relay.on_detached(5);
    // Retention dropped 11..=15 while the subscription was detached.
    object.store.log.delete(1..=15);
    gateway.reattach(&mut object, 6);
    settle(&mut object, &mut [&mut gateway], 7);
    assert_eq!(gateway.offsets(), [(1..=10).collect::<Vec<_>>(), (16..=20).collect()].concat());
    let gaps: Vec<&Value> = gateway.vendor.iter().filter_map(|f| f["payload"].get("extensions")).collect();
    assert_eq!(gaps, [&json!({"gap": {"requested": "11", "resumedAt": "16"}})], "one gap, on offset 16");
}

#[test]
fn a_caught_up_subscription_costs_no_message() {
    let config = demo_config();
    let mut object = Object::start(config.clone(), 0);
    object.publish(&events(0, 5, 0), 1);
    let mut gateway = Gateway::attach(&mut object, offsets_only(&config, "s", r#"{chainCode: "TTE", offset: "1"}"#), 2);
    settle(&mut object, &mut [&mut gateway], 3);
    for now in 10..20 {
        let mut fx = Effects::default();
        object.core.fan_out(now, &mut fx);
        object.gateway_says(&gateway.socket.clone(), "A 0 5", now);
    }
    assert!(gateway.socket.take().is_empty(), "nothing to send, nothing sent");
}

/// Subscriptions alike (same selection, filter and cursor) are sent the very same batch:
/// made into the runtime's message once per turn, whoever it goes to.
#[test]
fn subscriptions_alike_share_one_message_per_turn() {
    let config = demo_config();
    let mut object = Object::start(config.clone(), 0);
    let mut gateways: Vec<Gateway> = (0..5)
        .map(|i| Gateway::attach(&mut object, offsets_only(&config, &format!("s{i}"), r#"{chainCode: "TTE"}"#), 1))
        .collect();
    let made_before = object.sockets.made.get();
    object.publish(&events(0, 10, 0), 100);
    let made = object.sockets.made.get() - made_before;
    assert_eq!(made, 1, "one message for five subscriptions");
    let mut all: Vec<&mut Gateway> = gateways.iter_mut().collect();
    settle(&mut object, &mut all, 101);
    for g in &gateways {
        assert_eq!(g.offsets(), (1..=10).collect::<Vec<_>>(), "{}", g.id);
        assert_eq!(g.vendor[0]["id"], g.id.as_str(), "each vendor's frame carries its own operation id");
    }
}

/// A fan-out that cannot read the head must not leave the schedule waiting for a fan-out
/// that never comes: the next publish is delivered, with the one before it.
#[test]
fn a_failed_head_read_does_not_stop_later_fan_outs() {
    let config = demo_config();
    let mut object = Object::start(config.clone(), 0);
    let mut gateway = Gateway::attach(&mut object, offsets_only(&config, "s", r#"{chainCode: "TTE"}"#), 1);
    object.publish(&events(0, 1, 0), 100); // quiet: fans out in its own turn
    object.publish(&events(1, 1, 0), 101); // close behind: a timer
    assert!(object.fan_out_due.is_some());
    // A publish that fails makes the object forget the head it knew...
    object.store.log.fail_insert_after.set(Some(0));
    let mut fx = Effects::default();
    assert!(object.core.append(&events(2, 1, 0), &object.config, 102, &mut fx).is_err());
    object.store.log.fail_insert_after.set(None);
    // ...and reading it again fails once, in the timer's fan-out.
    object.store.log.fail_head_reads.set(1);
    object.run_timers(103);
    object.publish(&events(3, 1, 0), 200);
    settle(&mut object, &mut [&mut gateway], 201);
    assert_eq!(gateway.offsets(), [1, 2, 3], "the publishes after the failure are delivered");
}

/// Woken from hibernation, the object rebuilds its subscriptions from their sockets'
/// attachments and its registry, written by the flush within a second of the attach.
#[test]
fn a_woken_object_serves_its_sockets_from_where_their_attachments_say() {
    let config = demo_config();
    let mut object = Object::start(config.clone(), 0);
    object.publish(&events(0, 50, 0), 1);
    let mut gateway = Gateway::attach(&mut object, offsets_only(&config, "s", r#"{chainCode: "TTE", offset: "1"}"#), 2);
    settle(&mut object, &mut [&mut gateway], 3);
    let (socket, start, gap) =
        object.attach(offsets_only(&config, "t", r#"{chainCode: "TTE", offset: "51"}"#), 3).unwrap();
    assert_eq!((start, gap), (51, None));
    assert!(object.flush_due.is_some(), "an attach leaves a flush pending: it keeps the object awake");
    use pms_events::chain::host::ChainTables;
    assert_eq!(object.store.subscription_keys().unwrap().len(), 1, "the new row waits for the flush");
    settle(&mut object, &mut [&mut gateway], 4);
    assert_eq!(object.store.subscription_keys().unwrap().len(), 2, "both registered by the flush");
    assert!(socket.attachment.borrow().is_some());
    object.wake(60_000);
    object.publish(&events(50, 10, 0), 60_001);
    settle(&mut object, &mut [&mut gateway], 60_002);
    assert_eq!(gateway.offsets(), (1..=60).collect::<Vec<_>>(), "no repeat, no gap across hibernation");
}

/// A vendor that resumes without an offset (OHIP's default) after dropping with frames
/// unread in buffers starts at the first frame it did not read, not after the last sent.
#[test]
fn a_resume_without_an_offset_never_starts_after_an_unread_frame() {
    let config = demo_config();
    let mut object = Object::start(config.clone(), 0);
    object.publish(&events(0, 10, 0), 1);
    let spec = offsets_only(&config, "s", r#"{chainCode: "TTE", offset: "1"}"#);
    let mut gateway = Gateway::attach(&mut object, spec, 2);
    settle(&mut object, &mut [&mut gateway], 3);
    let read = gateway.output;
    // The vendor stops reading; 200 more are sent into its buffers; then its socket drops.
    object.publish(&events(10, 200, 0), 1_000);
    object.run_timers(1_000);
    let start = next_start("s");
    let mut out = String::new();
    for text in gateway.socket.take() {
        let Step::Forward { frames } = gateway.relay.on_message(&text) else { panic!() };
        for frame in frames {
            frame.render(&start, &mut out);
            gateway.output += out.len() as u64;
        }
        gateway.relay.on_sent(gateway.output, 1_001);
        if let Some(ack) = gateway.relay.ack(false, read, 1_001) {
            object.gateway_says(&gateway.socket.clone(), &ack, 1_001);
        }
    }
    let stop = gateway.relay.final_ack(read, 2_000);
    object.gateway_says(&gateway.socket.clone(), &stop, 2_000);
    object.run_timers(5_000);
    let resume = offsets_only(&config, "again", r#"{chainCode: "TTE"}"#);
    let (_, first, _) = object.attach(resume, 6_000).unwrap();
    assert!(first <= 11, "the resume starts at {first}, after frames the vendor never read");
    assert_eq!(first, 11, "and repeats nothing it did read");
}

/// What waits in the vendor's socket, in order: frames, and the guard's pings between
/// them, each with its size.
enum OnTheWire {
    Frame(Value, usize),
    Ping(String),
}

/// Streams the object's log to a vendor that reads `read_per_step` bytes per step, with
/// the gateway's slow-consumer guard in the loop. `paced`: the relay holds
/// acknowledgements while the guard says the vendor is behind, as the gateway does.
/// Returns the guard's close, if it closed the connection, and the most bytes ever unread.
fn stream_to_a_slow_reader(
    object: &mut Object,
    gateway: &mut Gateway,
    guard: &mut SlowConsumerGuard,
    read_per_step: usize,
    paced: bool,
) -> (Option<Close>, u64) {
    let start = next_start(&gateway.id);
    let mut wire = VecDeque::new();
    let mut most_unread = 0;
    let mut nonces = 0;
    let mut nonce = || {
        nonces += 1;
        format!("n{nonces}")
    };
    let mut now = 10;
    loop {
        now += 10;
        object.run_timers(now);
        let messages = gateway.socket.take();
        for text in &messages {
            let Step::Forward { frames } = gateway.relay.on_message(text) else { panic!("{text}") };
            let mut sent = 0;
            for f in &frames {
                let mut out = String::new();
                f.render(&start, &mut out);
                sent += out.len();
                wire.push_back(OnTheWire::Frame(serde_json::from_str(&out).unwrap(), out.len()));
            }
            match guard.on_sent(sent, now, &mut nonce) {
                GuardTick::SendPing(ping) => wire.push_back(OnTheWire::Ping(ping)),
                GuardTick::TooSlow(close) => return (Some(close), most_unread),
                GuardTick::Nothing => {}
            }
            most_unread = most_unread.max(guard.unread_bytes());
            gateway.relay.on_sent(guard.sent_bytes(), now);
            if let Some(ack) = gateway.relay.ack(paced && guard.behind(), guard.confirmed_bytes(), now) {
                object.gateway_says(&gateway.socket.clone(), &ack, now);
            }
        }
        if messages.is_empty() && wire.is_empty() {
            return (None, most_unread);
        }
        let mut read = 0;
        while read < read_per_step {
            match wire.pop_front() {
                None => break,
                Some(OnTheWire::Frame(frame, bytes)) => {
                    gateway.vendor.push(frame);
                    read += bytes;
                }
                Some(OnTheWire::Ping(ping)) => {
                    let payload = serde_json::from_str::<Value>(&ping).unwrap()["payload"].clone();
                    if let GuardTick::SendPing(ping) = guard.on_pong(Some(&payload), now, &mut nonce) {
                        wire.push_back(OnTheWire::Ping(ping));
                    }
                    // What the gateway does on every pong: release held acknowledgements.
                    if let Some(ack) = gateway.relay.ack(guard.behind(), guard.confirmed_bytes(), now) {
                        object.gateway_says(&gateway.socket.clone(), &ack, now);
                    }
                }
            }
        }
    }
}

#[test]
fn a_vendor_reading_slower_than_a_replay_is_fed_at_its_pace_instead_of_being_closed() {
    let limit = 2 << 20;
    let config = demo_config();
    let replay = |paced: bool| {
        let mut object = Object::start(config.clone(), 0);
        // Over (8 KiB + frame) × 400 ≈ 3.3 MiB, a reader of 64 KiB per step.
        object.publish(&events(0, 400, 8 * 1024), 1);
        let spec =
            subscription(&config, "s", r#"{chainCode: "TTE", offset: "1"}"#, "metadata { offset } detail { newValue }");
        let mut gateway = Gateway::attach(&mut object, spec, 2);
        let mut guard = SlowConsumerGuard::new(30, limit);
        let outcome = stream_to_a_slow_reader(&mut object, &mut gateway, &mut guard, 64 * 1024, paced);
        (gateway, outcome)
    };
    let (gateway, (closed, most_unread)) = replay(true);
    assert_eq!(closed, None, "paced: never closed");
    assert_eq!(gateway.offsets(), (1..=400).collect::<Vec<_>>(), "everything, once, in order");
    let window_bytes = u64::from(WINDOW) * 1024 + 64 * 1024;
    assert!(most_unread <= limit / 4 + window_bytes, "unread at most the pace and a window: {most_unread}");

    // The same without the pacing is closed: the runtime would have buffered the replay.
    let (_, (closed, _)) = replay(false);
    assert_eq!(closed.expect("unpaced, the reader falls behind the limit").code, close::TOO_SLOW);
}

#[test]
fn acknowledgements_every_quarter_window_move_the_saved_cursor_a_new_subscription_resumes_from() {
    let config = demo_config();
    let mut object = Object::start(config.clone(), 0);
    object.publish(&events(0, 1_000, 0), 1);
    let mut gateway = Gateway::attach(&mut object, offsets_only(&config, "s", r#"{chainCode: "TTE", offset: "1"}"#), 2);
    // Read long ago by the time it is acknowledged: the cursor follows.
    settle(&mut object, &mut [&mut gateway], 100_000);
    assert!(gateway.relay.forwarded >= u64::from(ACK_EVERY));
    object.run_timers(200_000);
    let (_, first, _) = object.attach(offsets_only(&config, "again", r#"{chainCode: "TTE"}"#), 200_001).unwrap();
    assert!(first > 1 && first <= 1_001, "resumes after what was acknowledged as read: {first}");
}
