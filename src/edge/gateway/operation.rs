//! One operation of a connection: a query answered at once, or a subscription attached
//! to its chain's object and relayed to the vendor until it ends. What to forward, when
//! to acknowledge and where and when to reattach are the relay's decisions
//! (`stream::relay`); this performs them.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use futures::channel::oneshot;
use serde_json::{json, Value};
use worker::{Delay, Env, Headers, Method, Request, RequestInit, Result, WebSocket};

use super::api;
use super::connection::{Connection, RunningOperation};
use crate::edge::ask::{ask, whole_body, Ask};
use crate::edge::js_socket::listen;
use crate::edge::{chain_stub, now_ms};
use crate::graphql::codes::{BAD_REQUEST, INTERNAL_SERVER_ERROR};
use crate::graphql::{GraphQLError, Operation, ProjectionPlan, QueryContext, SubscribePayload};
use crate::rpc;
use crate::stream::fanout::SubscriptionSpec;
use crate::stream::protocol::{close, next_start};
use crate::stream::relay::{RenderedFrames, Retry, Step};
use crate::stream::subscribe::plan_subscription;

pub(super) async fn start_operation(conn: Rc<Connection>, id: String, payload: Value, op: Rc<RunningOperation>) {
    let payload: SubscribePayload = match serde_json::from_value(payload) {
        Ok(p) => p,
        Err(e) => {
            return conn.fail(&id, &op, &[GraphQLError::coded(format!("invalid subscribe payload: {e}"), BAD_REQUEST)])
        }
    };
    let prepared = match api().prepare(&payload) {
        Ok(p) => p,
        Err(errors) => return conn.fail(&id, &op, &errors),
    };
    let Some(token) = conn.session.borrow().principal().cloned() else {
        return;
    };
    match prepared {
        Operation::Query(query) => {
            let active =
                if query.selects_connection() { app_key_active_elsewhere(&conn, &token.claims).await } else { false };
            // The id may have been completed, or reused by a new operation, meanwhile.
            if !conn.owns(&id, &op) {
                return;
            }
            let ctx = QueryContext {
                connection_id: conn.id.clone(),
                connection_active: active,
                help_base_url: conn.settings.config.issuer.clone(),
            };
            // JSON text, keys in selection order (GraphQL §7.1).
            let result = query.execute_json(&ctx);
            conn.operations.borrow_mut().remove(&id);
            let actions = conn.session.borrow_mut().single_result(&id, &result);
            conn.perform(actions);
        }
        Operation::Subscription(sub) => {
            match plan_subscription(&conn.settings.config, &token.claims, &id, &conn.id, sub) {
                Ok((chain, spec)) => stream(conn, id, chain, spec, op).await,
                Err(e) => conn.fail(&id, &op, &[e]),
            }
        }
    }
}

/// Whether the token's app key streams on another connection, on any of its chains.
async fn app_key_active_elsewhere(conn: &Rc<Connection>, claims: &crate::auth::token::AccessClaims) -> bool {
    for grant in &claims.chains {
        let Ok(stub) = chain_stub(&conn.env, &grant.chain) else { continue };
        let path = rpc::ActiveQuery { app_key: claims.app_key.clone(), connection: conn.id.clone() }.path();
        let Ok(answer) = ask(&stub, rpc::CHAIN_ORIGIN, Method::Get, &path, None, Ask::Empty).await else { continue };
        if answer.decode::<rpc::Active>().is_ok_and(|a| a.active) {
            return true;
        }
    }
    false
}

/// Attaches the subscription to its chain and forwards batches until it ends. The decisions
/// (what to forward, when to acknowledge, where and when to reattach) are the relay's.
async fn stream(
    conn: Rc<Connection>,
    id: String,
    chain: String,
    mut spec: SubscriptionSpec<ProjectionPlan>,
    op: Rc<RunningOperation>,
) {
    let started_at = now_ms();
    let requested = spec.start;
    conn.audit(
        "subscription.started",
        json!({"operationId": id, "chain": chain, "start": spec.start, "filter": spec.filter}),
    );
    let mut attached_before = false;
    while conn.owns(&id, &op) {
        spec.start = op.relay.borrow().start(requested);
        let retry = match attach(&conn.env, &chain, &spec).await {
            Ok(Attached::Socket(ws, rpc::AttachedAt { start, gap })) => {
                if attached_before {
                    conn.audit(
                        "subscription.reattached",
                        json!({"operationId": id, "chain": chain, "nextOffset": start}),
                    );
                }
                attached_before = true;
                forward(&conn, &id, &op, ws, start, gap).await
            }
            Ok(Attached::Refused(error)) => return conn.fail(&id, &op, &[error]),
            Err(e) => {
                let retry = op.relay.borrow_mut().on_attach_failed();
                if retry == Retry::GiveUp {
                    conn.audit(
                        "subscription.failed",
                        json!({"operationId": id, "chain": chain, "error": e.to_string()}),
                    );
                }
                retry
            }
        };
        if !conn.owns(&id, &op) {
            break;
        }
        match retry {
            Retry::After(0) => {}
            Retry::After(ms) => Delay::from(Duration::from_millis(ms)).await,
            Retry::GiveUp => {
                return conn.fail(
                    &id,
                    &op,
                    &[GraphQLError::coded(
                        "the chain's event log is unavailable; resubscribe to resume",
                        INTERNAL_SERVER_ERROR,
                    )],
                );
            }
        }
    }
    let relay = op.relay.borrow();
    conn.audit(
        "subscription.completed",
        json!({
            "operationId": id, "chain": chain, "delivered": relay.forwarded,
            "firstOffset": relay.first_offset.map(|o| o.to_string()),
            "lastOffset": relay.last_offset.map(|o| o.to_string()),
            "durationMs": now_ms().saturating_sub(started_at),
        }),
    );
}

/// Forwards what the chain object sends on one attached socket until it ends, and says
/// what to do next. A failure the object reports ends the operation (`GiveUp` is not
/// returned then: the operation is no longer owned). Each message is handled in the
/// runtime's own event (`js_socket::listen`); this waits for the end.
async fn forward(
    conn: &Rc<Connection>,
    id: &str,
    op: &Rc<RunningOperation>,
    internal: WebSocket,
    start: u64,
    gap: Option<u64>,
) -> Retry {
    let (ended, end) = oneshot::channel::<Ended>();
    let ended = Rc::new(RefCell::new(Some(ended)));
    let on_message = {
        let (conn, op, internal, ended) = (conn.clone(), op.clone(), internal.clone(), ended.clone());
        let id = id.to_string();
        // The chain object's payloads carry no operation id (they are shared by every
        // subscription alike): each frame gets this operation's start.
        let frame_start = next_start(&id);
        move |text: Option<String>| {
            let Some(text) = text else { return };
            if ended.borrow().is_none() {
                return;
            }
            if let Some(how) = relay_message(&conn, &id, &op, &internal, &frame_start, &text) {
                end_with(&ended, how);
            }
        }
    };
    let on_end = {
        let ended = ended.clone();
        move || end_with(&ended, Ended::Detached)
    };
    let Ok(listening) = listen(&internal, on_message, on_end) else {
        return op.relay.borrow_mut().on_detached(now_ms());
    };
    if internal.accept().is_err() {
        return op.relay.borrow_mut().on_detached(now_ms());
    }
    *op.internal.borrow_mut() = Some(internal.clone());
    if !conn.owns(id, op) {
        op.stop();
        return Retry::After(0);
    }
    let open = op.relay.borrow_mut().on_attached(start, gap, now_ms());
    let _ = internal.send_with_str(open);
    let how = end.await.unwrap_or(Ended::Detached);
    // After the callbacks returned: a listener must not be dropped while it runs.
    drop(listening);
    match how {
        Ended::Failed => Retry::After(0),
        Ended::Detached => {
            op.internal.borrow_mut().take();
            op.relay.borrow_mut().on_detached(now_ms())
        }
    }
}

/// Tells `forward` how its socket's forwarding ended; only the first word counts.
fn end_with(ended: &RefCell<Option<oneshot::Sender<Ended>>>, how: Ended) {
    if let Some(ended) = ended.borrow_mut().take() {
        let _ = ended.send(how);
    }
}

/// How an attached socket's forwarding ended.
enum Ended {
    /// The socket ended, or the operation stopped or changed hands.
    Detached,
    /// The object reported a failure; the operation ended with it.
    Failed,
}

/// One message from the chain object, performed as the relay decides. Returns how the
/// forwarding ends, if it does.
fn relay_message(
    conn: &Rc<Connection>,
    id: &str,
    op: &Rc<RunningOperation>,
    internal: &WebSocket,
    frame_start: &str,
    text: &str,
) -> Option<Ended> {
    if !conn.owns(id, op) || !conn.session.borrow().is_active(id) {
        return Some(Ended::Detached);
    }
    // The step borrows the message only; the relay's borrow ends with this statement.
    let step = op.relay.borrow_mut().on_message(text);
    match step {
        Step::Forward { frames } => {
            // Made for each batch: a buffer kept across batches would hold every
            // subscription's largest batch (up to half a MiB) for as long as it streams.
            let mut rendered = RenderedFrames::default();
            rendered.render(frame_start, &frames);
            conn.send_frames(&rendered);
            // Held while the vendor is behind in reading; `Connection` sends it later.
            let ack = op.relay.borrow_mut().ack(conn.behind());
            if let Some(ack) = ack {
                let _ = internal.send_with_str(ack);
            }
            None
        }
        Step::Fail { code, message } => {
            op.internal.borrow_mut().take();
            let _ = internal.close(Some(close::NORMAL), Some("subscription failed"));
            conn.fail(id, op, &[GraphQLError::coded(message, code)]);
            Some(Ended::Failed)
        }
        Step::Ignore => None,
    }
}

enum Attached {
    Socket(WebSocket, rpc::AttachedAt),
    Refused(GraphQLError),
}

async fn attach(env: &Env, chain: &str, spec: &SubscriptionSpec<ProjectionPlan>) -> Result<Attached> {
    let encoded = rpc::encode_spec(spec).map_err(|e| worker::Error::RustError(e.to_string()))?;
    let headers = Headers::new();
    headers.set("Upgrade", "websocket")?;
    headers.set(rpc::SUBSCRIPTION_HEADER, &encoded)?;
    headers.set(rpc::CHAIN_HEADER, chain)?;
    let mut init = RequestInit::new();
    init.with_method(Method::Get).with_headers(headers);
    let req = Request::new_with_init(&format!("{}{}", rpc::CHAIN_ORIGIN, rpc::chain::SUBSCRIBE), &init)?;
    let resp = chain_stub(env, chain)?.fetch(&req).await?;
    if resp.status_code() == 101 {
        let header = |name: &str| resp.headers().get(name).ok().flatten();
        let at =
            rpc::AttachedAt::from_headers(header(rpc::START_HEADER).as_deref(), header(rpc::GAP_HEADER).as_deref());
        return match resp.websocket() {
            Some(ws) => Ok(Attached::Socket(ws, at)),
            None => Err(worker::Error::RustError("the chain object answered 101 without a socket".into())),
        };
    }
    let status = resp.status_code();
    match serde_json::from_slice::<rpc::Refusal>(&whole_body(resp).await.unwrap_or_default()) {
        Ok(refusal) => Ok(Attached::Refused(GraphQLError::coded(refusal.message, &refusal.code))),
        Err(_) => Err(worker::Error::RustError(format!("the chain object answered {status}"))),
    }
}
