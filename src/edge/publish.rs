//! `POST /events/v1/chains/{chainCode}/events`: authorize, validate the whole batch, then
//! hand it to the chain's log object; `200` only once the object has stored it.

use serde_json::json;
use worker::{Env, Method, Request, Response, Result};

use super::ask::{ask, Ask};
use super::settings::Settings;
use super::{access_error, audit, chain_stub, drain, read_body, reply, verified_claims, Body};
use crate::config::Scope;
use crate::publish::{check_grant, validate_batch};
use crate::rpc;

pub async fn handle(
    mut req: Request,
    env: &Env,
    settings: &Settings,
    chain: &str,
    request_id: &str,
) -> Result<Response> {
    let config = &settings.config;
    let limit = config.limits.max_batch_bytes;
    // Authorized before a byte of the body is read: a caller without a valid token costs
    // no memory (a small body is drained so an honest client's connection stays usable).
    let token = match verified_claims(&req, settings) {
        Ok(t) => t,
        Err(e) => {
            drain(&mut req).await;
            audit("publish.refused", json!({"requestId": request_id, "chain": chain, "status": 401}));
            return access_error(e);
        }
    };
    let claims = &token.claims;
    let (chain_config, grant) = match crate::auth::access::chain_access(config, claims, Scope::Publish, chain) {
        Ok(ok) => ok,
        Err(e) => {
            drain(&mut req).await;
            audit(
                "publish.refused",
                json!({
                    "requestId": request_id, "clientId": claims.sub, "enterpriseId": claims.enterprise_id,
                    "chain": chain, "status": 403,
                }),
            );
            return access_error(e);
        }
    };
    // Bounded while reading: a chunked body is refused as soon as it passes the limit.
    let body = match read_body(&mut req, limit).await? {
        Body::Read(body) => body,
        Body::TooLarge => {
            audit(
                "publish.refused",
                json!({"requestId": request_id, "clientId": claims.sub, "chain": chain, "status": 413}),
            );
            return reply::error(413, "payload_too_large", format!("the batch is over the {limit}-byte limit"));
        }
    };
    let mut ids = crate::log::event_id::generator(super::now_ms());
    let no_entropy = std::cell::Cell::new(false);
    let new_id = || {
        let id = ids();
        no_entropy.set(no_entropy.get() || id.is_empty());
        id
    };
    let validated = validate_batch(&body, chain_config, &config.limits, new_id)
        .and_then(|events| check_grant(&events, grant.properties.as_ref()).map(|()| events));
    let mut events = match validated {
        // Never store events under an empty generated id: they would all dedupe to one.
        Ok(_) if no_entropy.get() => return reply::error(503, "unavailable", "no randomness available; retry"),
        Ok(events) => events,
        Err(e) => {
            audit(
                "publish.refused",
                json!({"requestId": request_id, "clientId": claims.sub, "chain": chain, "status": e.status()}),
            );
            return reply::json(e.status(), &e.body());
        }
    };
    let Some(stored) = append(env, &chain_config.code, &mut events).await else {
        return reply::error(
            503,
            "unavailable",
            "the chain log could not store the batch; nothing was acknowledged, retry it",
        );
    };
    let offsets: Vec<String> = stored.iter().map(u64::to_string).collect();
    audit(
        "publish.accepted",
        json!({
            "requestId": request_id, "clientId": claims.sub, "enterpriseId": claims.enterprise_id, "chain": chain,
            "events": offsets.len(), "firstOffset": offsets.first(), "lastOffset": offsets.last(),
        }),
    );
    reply::json(200, &Accepted { offsets: &offsets })
}

/// The `200` of a publish.
#[derive(serde::Serialize)]
struct Accepted<'a> {
    offsets: &'a [String],
}

/// Attempts at storing one batch: the chain's object may be restarting (a deploy, an
/// eviction, an operator's restart) and answers from a fresh stub a moment later.
const APPEND_ATTEMPTS: u32 = 3;

/// Stores a validated batch in the chain's log and returns its offsets, or `None` when the
/// log could not be reached. Retrying is safe: every event already carries its
/// `uniqueEventId` (generated ids were drawn before the first attempt), so a batch the
/// object stored before failing to answer gets the same offsets again, not new ones.
async fn append(env: &Env, chain: &str, events: &mut [crate::publish::ValidEvent]) -> Option<Vec<u64>> {
    for attempt in 1..=APPEND_ATTEMPTS {
        if attempt == 2 {
            // The first attempt may have stored the events: their generated ids must now be
            // looked up like any other.
            for e in events.iter_mut() {
                e.minted = false;
            }
        }
        let batch = crate::rpc::append::encode_batch(events);
        let outcome = async {
            // The chain code names the object to itself (its webhooks are found by it).
            let stub = chain_stub(env, chain)?;
            let answer =
                ask(&stub, rpc::CHAIN_ORIGIN, Method::Post, rpc::chain::APPEND, Some(chain), Ask::Bytes(&batch))
                    .await?;
            if answer.status != 200 {
                return Err(worker::Error::RustError(format!("the chain log answered {}", answer.status)));
            }
            answer.decode::<rpc::Stored>()
        }
        .await;
        match outcome {
            Ok(stored) => return Some(stored.offsets),
            Err(e) if attempt < APPEND_ATTEMPTS => {
                worker::console_warn!("chain log append, attempt {attempt}: {e}; retrying");
                worker::Delay::from(std::time::Duration::from_millis(50 * u64::from(attempt))).await;
            }
            Err(e) => worker::console_error!("chain log append failed {APPEND_ATTEMPTS} times: {e}"),
        }
    }
    None
}
