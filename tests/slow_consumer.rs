//! The slow-consumer guard: when the server pings, what a pong confirms, and when a client
//! that does not read is closed (4413) or held back.

use pms_events::stream::protocol::close;
use pms_events::stream::slow_consumer::{GuardTick, SlowConsumerGuard, MAX_OUTSTANDING_PINGS, PING_EVERY_BYTES};
use serde_json::{json, Value};

fn nonce_of(ping: &str) -> Value {
    serde_json::from_str::<Value>(ping).unwrap()["payload"].clone()
}

/// What Oracle's sample streaming client and vendors like it need: a client that reads
/// what it gets at hotel rates is never pinged during its token's hour.
#[test]
fn a_consumer_reading_at_hotel_rates_is_never_pinged() {
    // A busy chain's 5 events a second of ~600 bytes for ten minutes, a hotel's one a second
    // for the token's hour: nothing is ever a MiB within half a minute, nor a quarter of the
    // unread limit in all.
    for (per_second, seconds) in [(5, 600u64), (1, 3_600)] {
        let mut g = SlowConsumerGuard::new(30, 16 << 20);
        for second in 0..seconds {
            for _ in 0..per_second {
                assert_eq!(g.on_sent(600, second * 1000, || unreachable!("pinged")), GuardTick::Nothing);
            }
            assert_eq!(g.on_tick(second * 1000), GuardTick::Nothing, "no ping outstanding: nothing to time out");
        }
        assert!(!g.behind());
    }
}

/// A reader that stops at a low rate still meets the bound: a ping goes out once a quarter
/// of the unread limit is unconfirmed, and its missing pong closes the connection.
#[test]
fn a_stalled_reader_at_a_low_rate_is_pinged_at_a_quarter_of_the_limit_and_closed() {
    let limit = 4 << 20;
    let mut g = SlowConsumerGuard::new(30, limit);
    let mut second = 0;
    let ping = loop {
        second += 1;
        if let GuardTick::SendPing(ping) = g.on_sent(2_000, second * 1000, || "n".into()) {
            break ping;
        }
    };
    assert!(g.unread_bytes() >= limit / 4 && g.unread_bytes() < limit / 4 + 2_000, "{}", g.unread_bytes());
    assert!(second * 1000 > 30_000, "not within half a minute: by the total");
    assert!(ping.contains("slowConsumerCheck"));
    let GuardTick::TooSlow(c) = g.on_tick(second * 1000 + 30_000) else { panic!("its pong never came") };
    assert_eq!(c.code, close::TOO_SLOW);
}

#[test]
fn a_ping_goes_out_once_a_mib_is_unconfirmed_and_its_late_pong_closes_4413() {
    let mut g = SlowConsumerGuard::new(10, 16 << 20);
    assert_eq!(g.tick_interval_ms(), 5000);
    assert_eq!(g.on_sent(PING_EVERY_BYTES as usize - 1, 0, || unreachable!()), GuardTick::Nothing);
    let GuardTick::SendPing(ping) = g.on_sent(1, 1000, || "n1".into()) else { panic!("a MiB unconfirmed") };
    assert_eq!(serde_json::from_str::<Value>(&ping).unwrap()["type"], "ping");
    assert_eq!(g.on_tick(9000), GuardTick::Nothing, "waiting for the pong");
    g.on_pong(Some(&nonce_of(&ping)), 9000, || unreachable!());
    assert_eq!(g.unread_bytes(), 0, "the pong confirmed everything sent before the ping");
    assert_eq!(g.on_tick(60_000), GuardTick::Nothing, "answered: nothing outstanding, no new ping");
    let GuardTick::SendPing(_) = g.on_sent(PING_EVERY_BYTES as usize, 61_000, || "n2".into()) else { panic!() };
    let GuardTick::TooSlow(c) = g.on_tick(71_000) else { panic!("ten seconds without its pong") };
    assert_eq!(c.code, close::TOO_SLOW);
    assert!(c.reason.contains("resume"));
}

#[test]
fn unsolicited_or_guessed_pongs_do_not_defeat_the_guard() {
    let mut g = SlowConsumerGuard::new(10, 16 << 20);
    let GuardTick::SendPing(_) = g.on_sent(PING_EVERY_BYTES as usize, 5000, || "secret-nonce".into()) else { panic!() };
    // A stalled client sending pongs: none, a wrong nonce, a number, another shape.
    g.on_pong(None, 0, || unreachable!());
    g.on_pong(Some(&json!({"slowConsumerCheck": "guess"})), 0, || unreachable!());
    g.on_pong(Some(&json!({"slowConsumerCheck": 5000})), 0, || unreachable!());
    g.on_pong(Some(&json!("secret-nonce")), 0, || unreachable!());
    assert_eq!(g.unread_bytes(), PING_EVERY_BYTES, "nothing confirmed");
    assert!(matches!(g.on_tick(15_000), GuardTick::TooSlow(_)), "still closed on time");
}

#[test]
fn unread_bytes_are_bounded_pings_ride_with_the_data_and_pongs_confirm_in_order() {
    let limit = 8 * PING_EVERY_BYTES;
    let mut g = SlowConsumerGuard::new(30, limit);
    let mut pings = Vec::new();
    let mut n = 0;
    // A client that reads nothing: pings go out every MiB, then the byte bound closes it.
    let closed = loop {
        match g.on_sent(64 * 1024, 100, || {
            n += 1;
            format!("n{n}")
        }) {
            GuardTick::SendPing(p) => pings.push(p),
            GuardTick::TooSlow(c) => break c,
            GuardTick::Nothing => {}
        }
        assert!(g.unread_bytes() <= limit + 64 * 1024);
    };
    assert_eq!(closed.code, close::TOO_SLOW);
    assert!(closed.reason.contains("unread"), "{}", closed.reason);
    assert_eq!(pings.len(), 8, "one ping per MiB sent");

    // A client that reads: answering the third ping confirms everything sent before it.
    let mut g = SlowConsumerGuard::new(30, limit);
    let mut pings = Vec::new();
    for i in 0..48 {
        if let GuardTick::SendPing(p) = g.on_sent(64 * 1024, 100, || format!("m{i}")) {
            pings.push(p);
        }
    }
    assert_eq!(pings.len(), 3);
    g.on_pong(Some(&nonce_of(&pings[2])), 0, || unreachable!());
    assert_eq!(g.unread_bytes(), 0);
    for i in 0..200 {
        match g.on_sent(64 * 1024, 200, || format!("k{i}")) {
            GuardTick::TooSlow(_) => panic!("a reading client is never closed"),
            GuardTick::SendPing(p) => {
                assert_eq!(g.on_pong(Some(&nonce_of(&p)), 200, || unreachable!()), GuardTick::Nothing)
            }
            GuardTick::Nothing => {}
        }
    }
}

#[test]
fn a_client_past_a_quarter_of_the_limit_unread_is_behind_until_a_pong_shows_it_caught_up() {
    let limit = 8 * PING_EVERY_BYTES;
    let mut g = SlowConsumerGuard::new(30, limit);
    let mut pings = Vec::new();
    let mut n = 0;
    for _ in 0..8 {
        if let GuardTick::SendPing(p) = g.on_sent(256 * 1024, 0, || {
            n += 1;
            format!("n{n}")
        }) {
            pings.push(p);
        }
        assert!(!g.behind(), "not yet a quarter of the limit: {}", g.unread_bytes());
    }
    g.on_sent(1, 0, || unreachable!());
    assert!(g.behind(), "just past a quarter of the limit");
    assert_eq!(pings.len(), 2, "a ping every MiB");
    g.on_pong(Some(&nonce_of(&pings[0])), 0, || unreachable!());
    assert!(!g.behind(), "the first MiB read brings it back under: {} unread", g.unread_bytes());
}

#[test]
fn a_ping_due_while_sixteen_were_unanswered_goes_out_with_the_next_pong() {
    let mut g = SlowConsumerGuard::new(30, 64 * PING_EVERY_BYTES);
    let mut pings = Vec::new();
    for i in 0..20 {
        if let GuardTick::SendPing(p) = g.on_sent(PING_EVERY_BYTES as usize, 0, || format!("n{i}")) {
            pings.push(p);
        }
    }
    assert_eq!(pings.len(), MAX_OUTSTANDING_PINGS, "no more than sixteen unanswered");
    // The first pong frees a place: the ping that was due (covering all 20 MiB) goes out,
    // so a client held back as behind is released once it read everything.
    let GuardTick::SendPing(last) = g.on_pong(Some(&nonce_of(&pings[0])), 0, || "last".into()) else { panic!() };
    assert!(g.behind());
    g.on_pong(Some(&nonce_of(&last)), 0, || unreachable!());
    assert_eq!(g.unread_bytes(), 0);
    assert!(!g.behind());
}
