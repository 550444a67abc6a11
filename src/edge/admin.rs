//! Operator endpoints (scope `urn:pms:admin`, chains of the admin's enterprise and grants):
//! `GET /admin/v1/chains/{chainCode}` gives the chain's numbers;
//! `POST /admin/v1/chains/{chainCode}/restart` restarts the chain's object.

use serde_json::json;
use worker::{Env, Method, Request, RequestInit, Response, Result};

use super::settings::Settings;
use super::{access_error, audit, chain_stub, reply, verified_claims};
use crate::config::{Chain, Scope};
use crate::rpc;
use crate::token::VerifiedToken;

/// The admin's token and the chain it may administer, or the refusal to send.
fn authorize<'c>(
    req: &Request,
    settings: &'c Settings,
    chain: &str,
) -> std::result::Result<(VerifiedToken, &'c Chain), Result<Response>> {
    let token = verified_claims(req, settings).map_err(access_error)?;
    let chain_config =
        crate::access::chain_access(&settings.config, &token.claims, Scope::Admin, chain).map_err(access_error)?.0;
    Ok((token, chain_config))
}

pub async fn chain(req: Request, env: &Env, settings: &Settings, chain: &str, _request_id: &str) -> Result<Response> {
    let chain_config = match authorize(&req, settings, chain) {
        Ok((_, c)) => c,
        Err(refusal) => return refusal,
    };
    let url = format!("{}{}", rpc::CHAIN_ORIGIN, rpc::chain::STATS);
    let mut resp = chain_stub(env, &chain_config.code)?.fetch_with_str(&url).await?;
    let n: rpc::ChainNumbers =
        serde_json::from_slice(&resp.bytes().await?).map_err(|e| worker::Error::RustError(e.to_string()))?;
    // Offsets travel as strings to vendors and operators alike (exact in JavaScript).
    reply::json(
        200,
        &json!({
            "chainCode": chain_config.code,
            "headOffset": n.head_offset.to_string(),
            "oldestOffset": n.oldest_offset.map(|o| o.to_string()),
            "retainedEvents": n.retained_events,
            "subscribers": n.subscribers,
            "lastPublishAt": n.last_publish_at,
        }),
    )
}

/// Restarts the chain's object the way a deploy or an eviction does: its in-memory state is
/// dropped and its internal sockets close; stored events and cursors stay, and every
/// attached subscription reattaches at its next offset. For operators (an object that
/// misbehaves) and for proving that reattachment end to end.
pub async fn restart(req: Request, env: &Env, settings: &Settings, chain: &str, request_id: &str) -> Result<Response> {
    let (token, chain_config) = match authorize(&req, settings, chain) {
        Ok(ok) => ok,
        Err(refusal) => return refusal,
    };
    // The object answers, then aborts itself.
    let mut init = RequestInit::new();
    init.with_method(Method::Post);
    let inner = Request::new_with_init(&format!("{}{}", rpc::CHAIN_ORIGIN, rpc::chain::RESTART), &init)?;
    let mut resp = chain_stub(env, &chain_config.code)?.fetch_with_request(inner).await?;
    if resp.status_code() != 200 {
        let why = resp.text().await.unwrap_or_default();
        return reply::error(503, "unavailable", format!("the chain object could not be restarted: {why}"));
    }
    audit(
        "chain.restarted",
        json!({"requestId": request_id, "clientId": token.claims.sub, "enterpriseId": token.claims.enterprise_id, "chain": chain_config.code}),
    );
    reply::json(202, &json!({ "chainCode": chain_config.code, "restarted": true }))
}
