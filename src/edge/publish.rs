//! `POST /events/v1/chains/{chainCode}/events`: authorize, validate the whole batch, then
//! hand it to the chain's log object; `200` only once the object has stored it.

use serde_json::json;
use worker::{Env, Method, Request, RequestInit, Response, Result};

use super::settings::Settings;
use super::{access_error, audit, chain_stub, reply, verified_claims};
use crate::config::Scope;
use crate::publish::validate_batch;

pub async fn handle(
    mut req: Request,
    env: &Env,
    settings: &Settings,
    chain: &str,
    request_id: &str,
) -> Result<Response> {
    let config = &settings.config;
    let limit = config.limits.max_batch_bytes;
    let declared = req.headers().get("Content-Length").ok().flatten().and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return reply::error(413, "payload_too_large", format!("the batch is over the {limit}-byte limit"));
    }
    // The body is read before any early answer: workerd drops a keep-alive connection whose
    // request body was left unread, and the publisher's next request would fail.
    let body = req.bytes().await?;
    let token = match verified_claims(&req, settings) {
        Ok(t) => t,
        Err(e) => {
            audit("publish.refused", json!({"requestId": request_id, "chain": chain, "status": 401}));
            return access_error(e);
        }
    };
    let claims = &token.claims;
    let chain_config = match crate::access::chain_access(config, claims, Scope::Publish, chain) {
        Ok((c, _grant)) => c,
        Err(e) => {
            audit(
                "publish.refused",
                json!({"requestId": request_id, "clientId": claims.sub, "enterpriseId": claims.enterprise_id, "chain": chain, "status": 403}),
            );
            return access_error(e);
        }
    };
    let mut ids = crate::event_id::generator(super::now_ms());
    let no_entropy = std::cell::Cell::new(false);
    let new_id = || {
        let id = ids();
        no_entropy.set(no_entropy.get() || id.is_empty());
        id
    };
    let mut events = match validate_batch(&body, chain_config, &config.limits, new_id) {
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
    #[derive(serde::Serialize)]
    struct Accepted<'a> {
        offsets: &'a [String],
    }
    reply::json(200, &Accepted { offsets: &offsets })
}

/// Attempts at storing one batch: the chain's object may be restarting (a deploy, an
/// eviction, an operator's restart) and answers from a fresh stub a moment later.
const APPEND_ATTEMPTS: u32 = 3;

/// Stores a validated batch in the chain's log and returns its offsets, or `None` when the
/// log could not be reached. Retrying is safe: every event already carries its
/// `uniqueEventId` (generated ids were drawn before the first attempt), so a batch the
/// object stored before failing to answer gets the same offsets again, not new ones.
async fn append(env: &Env, chain: &str, events: &mut [crate::publish::ValidEvent]) -> Option<Vec<u64>> {
    #[derive(serde::Deserialize)]
    struct Stored {
        offsets: Vec<u64>,
    }
    for attempt in 1..=APPEND_ATTEMPTS {
        if attempt == 2 {
            // The first attempt may have stored the events: their generated ids must now be
            // looked up like any other.
            events.iter_mut().for_each(|e| e.minted = false);
        }
        // Bytes, not a string: a JS string would be transcoded on the way out and back in.
        let batch = crate::wire::encode_batch(events);
        let outcome = async {
            let mut init = RequestInit::new();
            init.with_method(Method::Post).with_body(Some(js_sys::Uint8Array::from(batch.as_slice()).into()));
            let inner = Request::new_with_init("https://chain.internal/append", &init)?;
            let mut resp = chain_stub(env, chain)?.fetch_with_request(inner).await?;
            if resp.status_code() != 200 {
                return Err(worker::Error::RustError(format!("the chain log answered {}", resp.status_code())));
            }
            // serde_json over the bytes: `Response::json` builds a JS value first.
            serde_json::from_slice::<Stored>(&resp.bytes().await?).map_err(|e| worker::Error::RustError(e.to_string()))
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
