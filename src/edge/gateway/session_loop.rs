//! A vendor connection's events and timers: frames from the vendor, its close, the
//! `connection_init` deadline, the token's expiry and the slow-consumer guard's timer, each
//! handed to the connection's session until it is closed.

use std::rc::Rc;
use std::time::Duration;

use futures::future::{Fuse, FutureExt};
use futures::{select, StreamExt};
use serde_json::json;
use worker::{Delay, WebsocketEvent};

use super::connection::Connection;
use super::running::OperationHost;
use crate::edge::now_ms;
use crate::service_tally::ClosedBy;
use crate::stream::connect::check_init;
use crate::stream::protocol::{close, Close};
use crate::stream::slow_consumer::SlowConsumerGuard;

/// Serves the vendor's socket until the session is closed, then ends the connection: its
/// operations stop and its place in its app key's count is given back.
pub(super) async fn run(conn: Rc<Connection>, protocol_ok: bool) {
    serve(&conn, protocol_ok).await;
    conn.end().await;
}

async fn serve(conn: &Rc<Connection>, protocol_ok: bool) {
    let ws = conn.ws.clone();
    let Ok(mut events) = ws.events() else { return };
    if ws.accept().is_err() {
        return;
    }
    if !protocol_ok {
        conn.count_close(ClosedBy::Server, close::BAD_SUBPROTOCOL);
        conn.audit("connection.refused", json!({"code": close::BAD_SUBPROTOCOL}));
        let _ = ws.close(Some(close::BAD_SUBPROTOCOL), Some("Subprotocol not acceptable"));
        return;
    }
    let init_timeout = Duration::from_secs(conn.settings.config.limits.connection_init_timeout_seconds);
    let mut init_timer = Delay::from(init_timeout).fuse();
    let mut expiry_timer = Fuse::terminated();
    let mut guard_timer = Fuse::terminated();
    while !conn.session.borrow().is_closed() {
        select! {
            event = events.next().fuse() => match event {
                Some(Ok(WebsocketEvent::Message(msg))) => {
                    if let Some(timers) = on_frame(conn, msg.text().as_deref()) {
                        expiry_timer = Delay::from(Duration::from_millis(timers.expires_in_ms)).fuse();
                        guard_timer = Delay::from(Duration::from_millis(timers.guard_tick_ms)).fuse();
                    }
                }
                Some(Ok(WebsocketEvent::Close(c))) => on_client_close(conn, c.code()),
                Some(Err(_)) | None => {
                    // Gone without a close frame: the standard's "abnormal closure".
                    conn.count_close(ClosedBy::Client, 1006);
                    let actions = conn.session.borrow_mut().on_closed();
                    conn.perform(actions);
                }
            },
            () = init_timer => {
                let actions = conn.session.borrow_mut().on_init_timeout();
                conn.perform(actions);
            },
            () = guard_timer => {
                if let Some(interval) = on_guard_tick(conn) {
                    guard_timer = Delay::from(Duration::from_millis(interval)).fuse();
                }
            },
            () = expiry_timer => {
                let actions = conn.session.borrow_mut().on_token_expired();
                conn.perform(actions);
            },
        }
    }
}

/// The timers a connection starts once its `connection_init` is accepted.
struct Authenticated {
    expires_in_ms: u64,
    guard_tick_ms: u64,
}

/// One frame from the vendor (`None`: a binary one). Returns the timers to start if it
/// authenticated the connection.
fn on_frame(conn: &Rc<Connection>, text: Option<&str>) -> Option<Authenticated> {
    let was_ready = conn.session.borrow().principal().is_some();
    let actions = match text {
        Some(text) => {
            let settings = &conn.settings;
            conn.session.borrow_mut().on_text(text, |payload| {
                match settings.config.client_by_app_key(&conn.url_app_key) {
                    Some(client) => check_init(payload, client, &settings.keys, &settings.config, now_ms() / 1000),
                    None => Err(Close::new(close::FORBIDDEN, "Forbidden: unknown app key")),
                }
            })
        }
        None => conn.session.borrow_mut().on_binary(),
    };
    let expires_at = conn.session.borrow().principal().map(|t| t.expires_at);
    let authenticated = match (was_ready, expires_at) {
        (false, Some(expires_at)) => Some(on_authenticated(conn, expires_at)),
        _ => None,
    };
    conn.perform(actions);
    authenticated
}

fn on_authenticated(conn: &Connection, expires_at: u64) -> Authenticated {
    conn.audit("connection.authenticated", json!({"appKey": conn.url_app_key, "tokenExpiresAt": expires_at}));
    let limits = &conn.settings.config.limits;
    let guard = SlowConsumerGuard::new(limits.slow_consumer_seconds, limits.slow_consumer_bytes)
        .with_resend_window(limits.resend_window_seconds * 1000);
    let guard_tick_ms = guard.tick_interval_ms();
    *conn.slow_guard.borrow_mut() = Some(guard);
    Authenticated { expires_in_ms: (expires_at * 1000).saturating_sub(now_ms()), guard_tick_ms }
}

/// The vendor closed: stop everything, and complete the close handshake.
fn on_client_close(conn: &Rc<Connection>, code: u16) {
    conn.count_close(ClosedBy::Client, code);
    let actions = conn.session.borrow_mut().on_closed();
    conn.perform(actions);
    let duration = now_ms().saturating_sub(conn.opened_at);
    conn.audit("connection.closed", json!({"code": code, "by": "client", "durationMs": duration}));
    let _ = conn.ws.close(Some(close::echo(code)), Some("closed"));
}

/// The slow-consumer guard's timer fired: returns when it fires next.
fn on_guard_tick(conn: &Rc<Connection>) -> Option<u64> {
    let tick = conn.slow_guard.borrow_mut().as_mut().map(|g| (g.on_tick(now_ms()), g.tick_interval_ms()));
    let (tick, interval) = tick?;
    conn.on_guard(Some(tick));
    Some(interval)
}
