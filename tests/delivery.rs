//! The delivery protocol between a chain object and a gateway, both sides at once and
//! without I/O: the object serving a subscription from its log (`fanout::serve`), the
//! gateway's relay forwarding to the vendor and acknowledging (`Relay`), and reattaches
//! after the object restarted (`resolve_start` at the relay's next offset). The vendor
//! must see every event once, in order, whatever happens in between: the "no gap, no
//! repeat" promise of CONTRACT §4.

mod common;

use std::collections::{BTreeSet, VecDeque};

use pms_events::log::{MemoryStore, OffsetLog, ValidEvent};
use pms_events::rpc::delivery::{frame_cost, parse_ack, parse_batch, ACK_EVERY, WINDOW};
use pms_events::rpc::{decode_spec, encode_spec};
use pms_events::stream::fanout::FanOutStart::{After, ThisTurn};
use pms_events::stream::fanout::*;
use pms_events::stream::protocol::{Close, GuardTick, SlowConsumerGuard};
use pms_events::stream::relay::{Relay, Retry, Step};
use pms_events::stream::subscribe::still_granted;
use serde_json::{json, Value};

/// Projects the offset only (and an event's `pad`, for large frames): enough to see what
/// the vendor got.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct OffsetOnly;

impl Projector for OffsetOnly {
    fn project_to_string(&self, event: &Value, _delta: bool, out: &mut String) {
        let projected = match event.get("pad") {
            Some(pad) => json!({"offset": event["metadata"]["offset"], "pad": pad}),
            None => json!({"offset": event["metadata"]["offset"]}),
        };
        out.push_str(&projected.to_string());
    }
}

fn spec(start: Start) -> SubscriptionSpec<OffsetOnly> {
    SubscriptionSpec { start, ..common::subscription(EventFilter::default(), OffsetOnly) }
}

fn publish(log: &OffsetLog<MemoryStore>, count: usize) {
    publish_padded(log, count, 0);
}

/// Events whose frames carry `pad` bytes more.
fn publish_padded(log: &OffsetLog<MemoryStore>, count: usize, pad: usize) {
    let first = log.head().unwrap() as usize;
    let batch: Vec<ValidEvent> = (first..first + count)
        .map(|i| {
            let mut body = json!({"metadata": {"uniqueEventId": format!("u{i}")}, "hotelId": "TTE01"});
            if pad > 0 {
                body["pad"] = Value::from("x".repeat(pad));
            }
            ValidEvent {
                unique_event_id: format!("u{i}"),
                hotel_id: "TTE01".into(),
                module_name: "Reservation".into(),
                event_name: "CHECKIN".into(),
                body: body.to_string(),
                minted: false,
            }
        })
        .collect();
    log.append(&batch, 0).unwrap();
}

/// The chain object's side of one attached subscription: its cursor, lost when the
/// object restarts.
struct Attached {
    cursor: Cursor,
}

/// Both sides and what the vendor received.
struct Pipe {
    log: OffsetLog<MemoryStore>,
    spec: SubscriptionSpec<OffsetOnly>,
    key: SharingKeys,
    relay: Relay,
    object: Option<Attached>,
    /// Acknowledged frames not yet given to the object.
    acked: u32,
    vendor: Vec<Value>,
    messages_sent: usize,
}

impl Pipe {
    fn new(start: Start) -> Pipe {
        let spec = spec(start);
        let key = SharingKeys::of(&spec);
        Pipe {
            log: OffsetLog::new(MemoryStore::default()),
            spec,
            key,
            relay: Relay::new(),
            object: None,
            acked: 0,
            vendor: Vec::new(),
            messages_sent: 0,
        }
    }

    /// The gateway attaches where its relay says; the object resolves the start as it does
    /// on every attach.
    fn attach(&mut self) {
        let start = self.relay.start(self.spec.start);
        let (first, gap) = resolve_start(start, &self.log.bounds().unwrap(), None, 0).unwrap();
        let open = self.relay.on_attached(first, gap.map(|g| g.requested), 0);
        assert_eq!(parse_ack(&open), Some((0, 0)), "the attach opens the window");
        self.object = Some(Attached { cursor: Cursor { next: first, inflight: 0 } });
        self.acked = 0;
    }

    /// One serve of the object (a fan-out, or an acknowledgement arriving): the messages it
    /// sends on the internal socket.
    fn serve(&mut self) -> Vec<String> {
        let head = self.log.head().unwrap();
        let object = self.object.as_mut().expect("attached");
        let mut budget = TurnBudget { pages: usize::MAX, bytes: usize::MAX };
        let acked = std::mem::take(&mut self.acked);
        // As the chain object serves a socket: the acknowledgement, then a pump if it can
        // change anything.
        if !object.cursor.acknowledge(acked, head) {
            return Vec::new();
        }
        let pumped = pump(
            &self.log,
            &self.spec,
            &self.key,
            &mut object.cursor,
            head,
            WINDOW,
            &mut EventCache::default(),
            &mut budget,
        )
        .unwrap();
        let messages = pumped.messages.clone();
        self.messages_sent += messages.len();
        messages
    }

    /// The gateway receives `messages`: frames go to the vendor, acknowledgements back.
    fn receive(&mut self, messages: &[String]) {
        for text in messages {
            match self.relay.on_message(text) {
                Step::Forward { frames } => {
                    let start = pms_events::stream::protocol::next_start(&self.spec.id);
                    let mut out = String::new();
                    self.vendor.extend(frames.iter().map(|f| {
                        f.render(&start, &mut out);
                        serde_json::from_str::<Value>(&out).unwrap()
                    }));
                    if let Some(ack) = self.relay.ack(false) {
                        let (count, _) = parse_ack(&ack).unwrap();
                        self.acked += count;
                    }
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    /// Serves and receives until neither side has anything left to do.
    fn settle(&mut self) {
        loop {
            let messages = self.serve();
            if messages.is_empty() {
                return;
            }
            self.receive(&messages);
        }
    }

    /// The object restarts (a deploy, an eviction): its socket and cursor are gone; the
    /// gateway is told the socket ended.
    fn restart_object(&mut self) {
        self.object = None;
        assert_eq!(self.relay.on_detached(1), Retry::After(0), "the first reattach is immediate");
    }

    fn offsets(&self) -> Vec<u64> {
        // Offsets travel as decimal strings.
        self.vendor
            .iter()
            .map(|f| f["payload"]["data"]["newEvent"]["offset"].as_str().unwrap().parse().unwrap())
            .collect()
    }
}

#[test]
fn window_exhaustion_holds_the_object_until_the_gateway_acknowledges() {
    let mut pipe = Pipe::new(Start::At(1));
    publish(&pipe.log, 2_000);
    pipe.attach();
    let first = pipe.serve();
    let sent: usize = first.iter().map(|m| parse_batch(m).unwrap().frames.len()).sum();
    assert_eq!(sent, WINDOW as usize, "the object stops at a full window");
    assert!(pipe.serve().is_empty(), "and sends nothing more without an acknowledgement");
    pipe.receive(&first);
    assert!(pipe.acked >= ACK_EVERY, "the gateway acknowledged what it forwarded");
    pipe.settle();
    assert_eq!(pipe.offsets(), (1..=2_000).collect::<Vec<_>>(), "everything, once, in order");
    let final_ack = parse_ack(&pipe.relay.final_ack()).unwrap();
    assert_eq!(final_ack.1, 2_000, "the stop's acknowledgement saves the exact cursor");
}

/// What waits in the vendor's socket, in order: frames, and the guard's pings between
/// them, each with its size.
enum OnTheWire {
    Frame(Value, usize),
    Ping(String),
}

/// Streams the pipe's log to a vendor that reads `read_per_step` bytes per step (while
/// the object serves once) and answers each ping as it reads it, with the gateway's
/// slow-consumer guard in the loop. `paced`: the relay holds acknowledgements while the
/// guard says the vendor is behind, as the gateway does. Returns the guard's close, if
/// it closed the connection, and the most bytes ever unread.
fn stream_to_a_slow_reader(
    pipe: &mut Pipe,
    guard: &mut SlowConsumerGuard,
    read_per_step: usize,
    paced: bool,
) -> (Option<Close>, u64) {
    let start = pms_events::stream::protocol::next_start(&pipe.spec.id);
    let mut wire = VecDeque::new();
    let mut most_unread = 0;
    let mut nonces = 0;
    let mut nonce = || {
        nonces += 1;
        format!("n{nonces}")
    };
    loop {
        let messages = pipe.serve();
        for text in &messages {
            let Step::Forward { frames } = pipe.relay.on_message(text) else { panic!("{text}") };
            let mut sent = 0;
            for f in &frames {
                let mut out = String::new();
                f.render(&start, &mut out);
                sent += out.len();
                wire.push_back(OnTheWire::Frame(serde_json::from_str(&out).unwrap(), out.len()));
            }
            match guard.on_sent(sent, 0, &mut nonce) {
                GuardTick::SendPing(ping) => wire.push_back(OnTheWire::Ping(ping)),
                GuardTick::TooSlow(close) => return (Some(close), most_unread),
                GuardTick::Nothing => {}
            }
            most_unread = most_unread.max(guard.unread_bytes());
            if let Some(ack) = pipe.relay.ack(paced && guard.behind()) {
                pipe.acked += parse_ack(&ack).unwrap().0;
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
                    pipe.vendor.push(frame);
                    read += bytes;
                }
                Some(OnTheWire::Ping(ping)) => {
                    let payload = serde_json::from_str::<Value>(&ping).unwrap()["payload"].clone();
                    if let GuardTick::SendPing(ping) = guard.on_pong(Some(&payload), 0, &mut nonce) {
                        wire.push_back(OnTheWire::Ping(ping));
                    }
                    // What the gateway does on every pong: release held acknowledgements.
                    if let Some(ack) = pipe.relay.ack(guard.behind()) {
                        pipe.acked += parse_ack(&ack).unwrap().0;
                    }
                }
            }
        }
    }
}

#[test]
fn a_vendor_reading_slower_than_a_replay_is_fed_at_its_pace_instead_of_being_closed() {
    let limit = 2 << 20;
    let replay = |paced: bool| {
        let mut pipe = Pipe::new(Start::At(1));
        publish_padded(&pipe.log, 400, 8 * 1024);
        pipe.attach();
        let mut guard = SlowConsumerGuard::new(30, limit, 0);
        let outcome = stream_to_a_slow_reader(&mut pipe, &mut guard, 64 * 1024, paced);
        (pipe, outcome)
    };

    // The window counts bytes too: the object stops after about WINDOW KiB of large frames
    // (512 of them would be 4 MiB), and what the relay acknowledges frees exactly as much.
    let mut pipe = Pipe::new(Start::At(1));
    publish_padded(&pipe.log, 400, 8 * 1024);
    pipe.attach();
    let first = pipe.serve();
    let frames: usize = first.iter().map(|m| parse_batch(m).unwrap().frames.len()).sum();
    assert_eq!(frames, WINDOW.div_ceil(frame_cost(&"x".repeat(8 * 1024 + 30))) as usize);
    assert!(pipe.serve().is_empty(), "a full window");
    let inflight = pipe.object.as_ref().unwrap().cursor.inflight;
    pipe.receive(&first);
    assert_eq!(pipe.acked, inflight, "the relay counts what the object counted");

    // Over (8 KiB + frame) × 400 ≈ 3.3 MiB, a reader of 64 KiB per serve.
    let (pipe, (closed, most_unread)) = replay(true);
    assert_eq!(closed, None, "paced: never closed");
    assert_eq!(pipe.offsets(), (1..=400).collect::<Vec<_>>(), "everything, once, in order");
    let window_bytes = u64::from(WINDOW) * 1024 + 64 * 1024;
    assert!(most_unread <= limit / 4 + window_bytes, "unread at most the pace and a window: {most_unread}");

    // The same without the pacing is closed: the runtime would have buffered the replay.
    let (_, (closed, _)) = replay(false);
    let closed = closed.expect("unpaced, the reader falls behind the limit");
    assert_eq!(closed.code, pms_events::stream::protocol::close::TOO_SLOW);
}

/// A gateway built before window units counts frames and sends specs without `window`
/// (an isolate may outlive a deploy that restarted the objects): the object counts frames
/// for it, so the 128 frames that gateway waits for before acknowledging always come.
#[test]
fn a_gateway_that_counts_frames_is_served_by_frames() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let current = spec(Start::At(1));
    let mut json: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(encode_spec(&current).unwrap()).unwrap()).unwrap();
    json.as_object_mut().unwrap().remove("window").expect("today's gateways say what they count");
    // As the object reads the attach header of an older gateway.
    let older: SubscriptionSpec<OffsetOnly> = decode_spec(&URL_SAFE_NO_PAD.encode(json.to_string())).unwrap();
    assert_eq!(older.window, WindowCount::Frames);
    let log = OffsetLog::new(MemoryStore::default());
    publish_padded(&log, 600, 8 * 1024);
    let frames_sent = |s: &SubscriptionSpec<OffsetOnly>| {
        let mut cursor = Cursor { next: 1, inflight: 0 };
        let mut budget = TurnBudget { pages: usize::MAX, bytes: usize::MAX };
        let pumped =
            pump(&log, s, &SharingKeys::of(s), &mut cursor, 600, WINDOW, &mut EventCache::default(), &mut budget)
                .unwrap();
        (pumped.frames, cursor.inflight)
    };
    assert_eq!(frames_sent(&older), (WINDOW, WINDOW), "a frame each");
    let cost = frame_cost(&"x".repeat(8 * 1024 + 30));
    let (frames, inflight) = frames_sent(&current);
    assert_eq!(frames, WINDOW.div_ceil(cost), "sized by bytes");
    assert_eq!(inflight, frames * cost);
}

#[test]
fn an_object_restart_mid_batch_loses_nothing_and_repeats_nothing() {
    let mut pipe = Pipe::new(Start::At(1));
    publish(&pipe.log, 300);
    pipe.attach();
    pipe.settle();
    publish(&pipe.log, 300);
    // The object sends the next batch and restarts before the gateway received it.
    let lost = pipe.serve();
    assert!(!lost.is_empty());
    pipe.restart_object();
    pipe.attach();
    assert_eq!(pipe.object.as_ref().unwrap().cursor.next, 301, "the reattach starts at the next offset owed");
    pipe.settle();
    assert_eq!(pipe.offsets(), (1..=600).collect::<Vec<_>>());
}

#[test]
fn frames_the_object_resends_after_a_reattach_reach_the_vendor_once() {
    let mut pipe = Pipe::new(Start::At(1));
    publish(&pipe.log, 300);
    pipe.attach();
    pipe.settle();
    pipe.restart_object();
    pipe.attach();
    // A new object that starts behind what was forwarded (say, from a saved cursor that
    // lagged): everything below the relay's next offset is dropped.
    pipe.object.as_mut().unwrap().cursor.next = 201;
    publish(&pipe.log, 50);
    pipe.settle();
    assert_eq!(pipe.offsets(), (1..=350).collect::<Vec<_>>());
    assert_eq!(pipe.relay.forwarded, 350);
}

#[test]
fn retention_during_a_restart_is_told_once_on_the_first_frame_after_it() {
    let mut pipe = Pipe::new(Start::At(1));
    publish(&pipe.log, 10);
    pipe.attach();
    pipe.settle();
    publish(&pipe.log, 10);
    pipe.restart_object();
    // Retention dropped 11..=15 while the subscription was detached.
    pipe.log.store().delete(1..=15);
    pipe.attach();
    pipe.settle();
    assert_eq!(pipe.offsets(), [(1..=10).collect::<Vec<_>>(), (16..=20).collect()].concat());
    let gaps: Vec<&Value> = pipe.vendor.iter().filter_map(|f| f["payload"].get("extensions")).collect();
    assert_eq!(gaps, [&json!({"gap": {"requested": "11", "resumedAt": "16"}})], "one gap, on offset 16");
}

#[test]
fn a_caught_up_subscription_costs_no_message() {
    let mut pipe = Pipe::new(Start::At(1));
    publish(&pipe.log, 5);
    pipe.attach();
    pipe.settle();
    let sent = pipe.messages_sent;
    for _ in 0..10 {
        assert!(pipe.serve().is_empty());
    }
    assert_eq!(pipe.messages_sent, sent);
    let cursor = pipe.object.as_ref().unwrap().cursor;
    assert!(!cursor.clone().acknowledge(0, 5));
    assert!(cursor.clone().acknowledge(0, 6), "a publish gives it work");
    let mut acked = cursor;
    assert!(acked.acknowledge(1, 5), "so does an acknowledgement");
    assert_eq!(acked.inflight, cursor.inflight.saturating_sub(1));
}

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

#[test]
fn an_attach_is_refused_once_the_client_no_longer_holds_what_it_streams() {
    let config = common::demo_config();
    let mut s = spec(Start::At(1));
    assert_eq!(still_granted(&config, Some("TTE"), &s), Ok(()));
    assert_eq!(still_granted(&config, None, &s), Ok(()), "an old gateway names no chain: the client is checked");
    assert!(still_granted(&config, Some("OTH"), &s).unwrap_err().contains("chain is no longer granted"));
    s.app_key = "APPKEY002".into();
    assert!(still_granted(&config, Some("TTE"), &s).unwrap_err().contains("no longer configured"));
    // client-app-002 holds TTE for TTE01 only.
    let mut s = spec(Start::At(1));
    s.client_id = "client-app-002".into();
    s.app_key = "APPKEY002".into();
    s.filter.properties = Some(BTreeSet::from(["TTE01".to_string()]));
    assert_eq!(still_granted(&config, Some("TTE"), &s), Ok(()));
    s.filter.properties = Some(BTreeSet::from(["TTE01".to_string(), "TTE02".to_string()]));
    assert!(still_granted(&config, Some("TTE"), &s).unwrap_err().contains("property"));
    s.filter.properties = None;
    assert!(still_granted(&config, Some("TTE"), &s).is_err(), "all properties is more than the grant");
}

#[test]
fn the_spec_header_round_trips_and_rejects_anything_else() {
    let s = spec(Start::Resume);
    let header = encode_spec(&s).unwrap();
    assert!(header.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "a header value");
    let back: SubscriptionSpec<OffsetOnly> = decode_spec(&header).unwrap();
    assert_eq!(encode_spec(&back).unwrap(), header);
    assert!(decode_spec::<OffsetOnly>("not base64!").is_none());
    assert!(decode_spec::<OffsetOnly>(&header[..header.len() / 2]).is_none());
}

#[test]
fn the_attach_answer_and_the_active_query_travel_as_shared_types() {
    use pms_events::rpc::{chain, ActiveQuery, AttachedAt};
    assert_eq!(AttachedAt::from_headers(Some("42"), Some("7")), AttachedAt { start: 42, gap: Some(7) });
    assert_eq!(AttachedAt::from_headers(Some("42"), None), AttachedAt { start: 42, gap: None });
    assert_eq!(AttachedAt::from_headers(None, Some("x")), AttachedAt { start: 0, gap: None });
    let query = ActiveQuery { app_key: "APP KEY&1".into(), connection: "c=1".into() };
    let path = query.path();
    let (route, q) = path.split_once('?').unwrap();
    assert_eq!(route, chain::ACTIVE);
    let back: Vec<(String, String)> = form_urlencoded::parse(q.as_bytes()).into_owned().collect();
    assert_eq!(back, [("appKey".into(), "APP KEY&1".into()), ("connection".into(), "c=1".into())]);
}

/// A gateway built before binary batches reads text messages only (its listener ignores
/// anything else) and sends specs without `batches`: the object sends it text, so an isolate
/// that outlives a deploy keeps streaming.
#[test]
fn a_gateway_that_reads_text_only_is_sent_text() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let current = spec(Start::At(1));
    let mut json: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(encode_spec(&current).unwrap()).unwrap()).unwrap();
    assert_eq!(json["batches"], "binary", "today's gateways say they read binary batches");
    json.as_object_mut().unwrap().remove("batches");
    let older: SubscriptionSpec<OffsetOnly> = decode_spec(&URL_SAFE_NO_PAD.encode(json.to_string())).unwrap();
    assert_eq!(older.batches, BatchEncoding::Text);
}
