//! The isolate's side of the service tally (`crate::service_tally`): counts kept in this
//! isolate's memory and added to the tally object at most once a second, after the answer
//! of the next HTTP request that finds them due (`waitUntil` keeps its context open for the
//! send). Counts of WebSocket connections (closes, refused subscriptions) wait for that
//! answer too: sent from a closing connection they were lost (the end-to-end test caught it),
//! so an isolate evicted before its next HTTP answer loses what it counted since its last.

use std::cell::RefCell;

use worker::{Context, Env, Method, Request, Result};

use super::ask::{ask, Ask, ObjectStub};
use super::now_ms;
use super::settings::Settings;
use crate::routes::Route;
use crate::rpc::tally;
use crate::service_tally::{enterprise_of_route, PendingTally, ServiceTally, Tally, UNATTRIBUTED};

thread_local! {
    static PENDING: RefCell<PendingTally> = RefCell::default();
}

/// Counts something of `enterprise` ([`UNATTRIBUTED`]: of none) in this isolate.
pub fn count(enterprise: &str, f: impl FnOnce(&mut Tally)) {
    PENDING.with(|pending| f(pending.borrow_mut().tally.of(enterprise)));
}

/// The enterprise an HTTP request concerns, as far as it can be trusted before its answer:
/// the configured chain its path names, the client of its WebSocket key or of its token
/// request's Basic credentials, the verified token of an admin-wide route; else none.
pub fn enterprise_of(route: &Route, req: &Request, settings: Option<&Settings>) -> String {
    let Some(settings) = settings else { return UNATTRIBUTED.to_string() };
    let config = &settings.config;
    let named = match route {
        Route::Subscriptions => {
            let key =
                req.url().ok().and_then(|url| url.query_pairs().find(|(k, _)| k == "key").map(|(_, v)| v.into_owned()));
            crate::stream::connect::resolve_url_key(key.as_deref(), config).ok().map(|c| c.enterprise.clone())
        }
        Route::Tokens => {
            let header = req.headers().get("Authorization").ok().flatten();
            header
                .and_then(|h| crate::auth::oauth::basic_client_id(&h))
                .and_then(|id| config.client(&id).map(|c| c.enterprise.clone()))
        }
        Route::AdminChains | Route::AdminMetrics => {
            super::verified_claims(req, settings).ok().map(|t| t.claims.enterprise_id)
        }
        _ => enterprise_of_route(route, config).map(str::to_string),
    };
    named.unwrap_or_default()
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
pub fn count_answer(route: &Route, enterprise: &str, status: u16, started_at: u64, env: &Env, ctx: &Context) {
    count(enterprise, |t| t.count_answer(route, status, now_ms().saturating_sub(started_at)));
    let due = PENDING.with(|pending| pending.borrow_mut().take_due(now_ms()));
    if let Some(counts) = due {
        let env = env.clone();
        ctx.wait_until(async move { send(&env, counts).await });
    }
}

/// The service's counts so far, this isolate's own included.
pub async fn read(env: &Env) -> Result<ServiceTally> {
    let own = PENDING.with(|pending| pending.borrow_mut().take(now_ms()));
    if let Some(counts) = own {
        send(env, counts).await;
    }
    ask(&stub(env)?, tally::TALLY_ORIGIN, Method::Get, tally::READ, None, Ask::Empty).await?.decode()
}
