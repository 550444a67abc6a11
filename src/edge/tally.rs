//! The isolate's side of the service tally (`crate::service_tally`): counts kept in this
//! isolate's memory and added to the tally object at most once a second, after the answer
//! of the next HTTP request that finds them due (`waitUntil` keeps its context open for the
//! send). Not from a closing WebSocket connection: its context may end before the send does,
//! and the counts taken for it would be lost.

use std::cell::RefCell;

use worker::{Context, Env, Method, Result};

use super::ask::{ask, Ask, ObjectStub};
use super::now_ms;
use crate::routes::Route;
use crate::rpc::tally;
use crate::service_tally::{PendingTally, ServiceTally};

thread_local! {
    static PENDING: RefCell<PendingTally> = RefCell::default();
}

/// Counts something in this isolate.
pub fn count(f: impl FnOnce(&mut ServiceTally)) {
    PENDING.with(|pending| f(&mut pending.borrow_mut().tally));
}

fn stub(env: &Env) -> Result<ObjectStub> {
    ObjectStub::of(env, "SERVICE_TALLY", tally::OBJECT_NAME)
}

/// Adds `counts` to the object; a send that fails gives them back to the isolate.
async fn send(env: &Env, counts: ServiceTally) {
    let sent = async {
        let answer = ask(&stub(env)?, tally::TALLY_ORIGIN, Method::Post, tally::ADD, None, Ask::json(&counts)?).await?;
        Ok::<bool, worker::Error>(answer.status < 300)
    }
    .await;
    if !matches!(sent, Ok(true)) {
        PENDING.with(|pending| pending.borrow_mut().restore(&counts));
    }
}

/// Counts the answer in the service tally, and sends the isolate's counts once they are due
/// (after the answer: the request's context stays open for it).
pub fn count_answer(route: &Route, status: u16, started_at: u64, env: &Env, ctx: &Context) {
    count(|t| {
        t.count_response(route, status);
        if matches!(route, Route::Publish { .. }) && (200..300).contains(&status) {
            t.observe_publish(now_ms().saturating_sub(started_at));
        }
    });
    if let Some(counts) = take_due() {
        ctx.wait_until(send_taken(env.clone(), counts));
    }
}

/// The isolate's counts to send, if a second has passed since the last send.
fn take_due() -> Option<ServiceTally> {
    PENDING.with(|pending| pending.borrow_mut().take_due(now_ms()))
}

/// Sends `counts` (from [`take_due`]), for a request to finish after its answer.
async fn send_taken(env: Env, counts: ServiceTally) {
    send(&env, counts).await;
}

/// The service's counts so far, this isolate's own included.
pub async fn read(env: &Env) -> Result<ServiceTally> {
    let own = PENDING.with(|pending| pending.borrow_mut().take(now_ms()));
    if let Some(counts) = own {
        send(env, counts).await;
    }
    ask(&stub(env)?, tally::TALLY_ORIGIN, Method::Get, tally::READ, None, Ask::Empty).await?.decode()
}
