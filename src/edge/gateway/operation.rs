//! One operation of a connection: a query answered at once, or a subscription attached
//! to its chain's object and relayed to the vendor until it ends. What to forward, when
//! to acknowledge and where and when to reattach are the relay's decisions
//! (`stream::relay`); this performs them. The connection owns its operations and is reached
//! through `OperationHost`: an operation never names the connection's type.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use futures::channel::oneshot;
use serde_json::{json, Value};
use worker::{Delay, WebSocket};

use super::api::api;
use super::attach::{app_key_active_elsewhere, attach, AttachOutcome};
use super::running::{OperationHost, RunningOperation};
use crate::current_state::{parse_limit, plan_state_request, StateRefusal, DEFAULT_LIMIT};
use crate::edge::js_socket::listen;
use crate::edge::now_ms;
use crate::edge::state::state_page;
use crate::graphql::codes::{BAD_REQUEST, BAD_USER_INPUT, FORBIDDEN, INTERNAL_SERVER_ERROR};
use crate::graphql::{GraphQLError, Operation, ProjectionPlan, QueryContext, StateInput, SubscribePayload};
use crate::rpc;
use crate::stream::protocol::{close, next_start};
use crate::stream::relay::{RenderedFrames, Retry, Step};
use crate::stream::spec::SubscriptionSpec;
use crate::stream::subscribe::plan_subscription;

pub(super) async fn start_operation<H: OperationHost>(
    conn: Rc<H>,
    id: String,
    payload: Value,
    op: Rc<RunningOperation>,
) {
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
    let Some(token) = conn.principal() else { return };
    match prepared {
        Operation::Query(query) => {
            let active = query.selects_connection()
                && app_key_active_elsewhere(conn.env(), &token.claims, conn.connection_id()).await;
            let current_state = match query.state_input() {
                None => None,
                Some(input) => match current_state(conn.env(), conn.config(), &token.claims, input).await {
                    Ok(page) => Some(page),
                    Err(e) => return conn.fail(&id, &op, &[e]),
                },
            };
            // The id may have been completed, or reused by a new operation, meanwhile.
            if !conn.owns(&id, &op) {
                return;
            }
            let ctx = QueryContext {
                connection_id: conn.connection_id().to_string(),
                connection_active: active,
                help_base_url: conn.config().issuer.clone(),
                current_state,
            };
            // JSON text, keys in selection order (GraphQL §7.1).
            conn.answer(&id, &query.execute_json(&ctx));
        }
        Operation::Subscription(sub) => {
            match plan_subscription(conn.config(), &token.claims, &id, conn.connection_id(), sub) {
                Ok((chain, spec)) => stream(conn, id, chain, spec, op).await,
                Err(e) => conn.fail(&id, &op, &[e]),
            }
        }
    }
}

/// The page `currentState` asks for, authorized as the state API's own requests are.
async fn current_state(
    env: &worker::Env,
    config: &crate::config::ServiceConfig,
    claims: &crate::auth::token::AccessClaims,
    input: &StateInput,
) -> Result<Value, GraphQLError> {
    let limit = match input.first {
        None => DEFAULT_LIMIT,
        Some(n) => parse_limit(&n.to_string())
            .map_err(|why| GraphQLError::coded(why.replace("limit", "first"), BAD_USER_INPUT))?,
    };
    let request = plan_state_request(
        config,
        claims,
        &input.chain_code,
        input.hotel_code.as_deref(),
        input.module_names.clone(),
        input.after.clone(),
        limit,
    )
    .map_err(|refusal| match refusal {
        StateRefusal::Forbidden(why) => GraphQLError::coded(why, FORBIDDEN),
        StateRefusal::BadRequest(why) => GraphQLError::coded(why, BAD_USER_INPUT),
    })?;
    let unavailable = || GraphQLError::coded("the chain's state could not be read; retry", INTERNAL_SERVER_ERROR);
    match state_page(env, &request).await {
        Ok(Ok(page)) => serde_json::from_slice(&page).map_err(|_| unavailable()),
        Ok(Err(refusal)) => Err(GraphQLError::coded(refusal.message, BAD_USER_INPUT)),
        Err(_) => Err(unavailable()),
    }
}

/// Attaches the subscription to its chain and forwards batches until it ends. The decisions
/// (what to forward, when to acknowledge, where and when to reattach) are the relay's.
async fn stream<H: OperationHost>(
    conn: Rc<H>,
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
        let retry = match attach(conn.env(), &chain, &spec).await {
            Ok(AttachOutcome::Socket(ws, rpc::AttachedAt { start, gap })) => {
                if attached_before {
                    conn.audit(
                        "subscription.reattached",
                        json!({"operationId": id, "chain": chain, "nextOffset": start}),
                    );
                }
                attached_before = true;
                forward(&conn, &id, &op, ws, start, gap).await
            }
            Ok(AttachOutcome::Refused(error)) => return conn.fail(&id, &op, &[error]),
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
                let why = "the chain's event log is unavailable; resubscribe to resume";
                return conn.fail(&id, &op, &[GraphQLError::coded(why, INTERNAL_SERVER_ERROR)]);
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

/// How an attached socket's forwarding ended.
enum Ended {
    /// The socket ended, or the operation stopped or changed hands.
    Detached,
    /// The object reported a failure; the operation ended with it.
    Failed,
}

/// Tells `forward` how its socket's forwarding ended; only the first word counts.
fn end_with(ended: &RefCell<Option<oneshot::Sender<Ended>>>, how: Ended) {
    if let Some(ended) = ended.borrow_mut().take() {
        let _ = ended.send(how);
    }
}

/// Forwards what the chain object sends on one attached socket until it ends, and says
/// what to do next. A failure the object reports ends the operation (`GiveUp` is not
/// returned then: the operation is no longer owned). Each message is handled in the
/// runtime's own event (`js_socket::listen`); this waits for the end.
async fn forward<H: OperationHost>(
    conn: &Rc<H>,
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
        op.stop(conn.reading());
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

/// One message from the chain object, performed as the relay decides. Returns how the
/// forwarding ends, if it does.
fn relay_message<H: OperationHost>(
    conn: &Rc<H>,
    id: &str,
    op: &Rc<RunningOperation>,
    internal: &WebSocket,
    frame_start: &str,
    text: &str,
) -> Option<Ended> {
    if !conn.owns(id, op) {
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
            let reading = conn.reading();
            let now = now_ms();
            let mut relay = op.relay.borrow_mut();
            relay.on_sent(reading.sent_bytes, now);
            // Held while the vendor is behind in reading; the connection sends it later.
            if let Some(ack) = relay.ack(reading.behind, reading.confirmed_bytes, now) {
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
