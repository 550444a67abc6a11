//! `GET /events/v1/chains/{chainCode}/state`: authorize (`current_state::plan_state_request`),
//! then one page from the chain's object. The gateway's `currentState` query asks through
//! [`state_page`] too.

use serde_json::json;
use worker::{Env, Method, Request, Response, Result};

use super::ask::{ask, Ask};
use super::settings::Settings;
use super::{access_error, audit, audit_refusal, chain_stub, reply, verified_claims};
use crate::current_state::{parse_params, plan_state_request, StateRefusal, StateRequest};
use crate::rpc;

/// One page as the chain's object answered it: the JSON text, or the `400` refusal of a
/// cursor that is not the chain's.
pub(crate) async fn state_page(
    env: &Env,
    request: &StateRequest,
) -> Result<std::result::Result<Vec<u8>, rpc::Refusal>> {
    let stub = chain_stub(env, &request.chain_code)?;
    let answer = ask(&stub, rpc::CHAIN_ORIGIN, Method::Post, rpc::chain::STATE, None, Ask::json(request)?).await?;
    match answer.status {
        200 => Ok(Ok(answer.body)),
        400 => Ok(Err(answer.decode()?)),
        status => Err(worker::Error::RustError(format!("the chain's state could not be read ({status})"))),
    }
}

pub async fn handle(req: Request, env: &Env, settings: &Settings, chain: &str, request_id: &str) -> Result<Response> {
    let token = match verified_claims(&req, settings) {
        Ok(t) => t,
        Err(e) => return access_error(e),
    };
    let claims = &token.claims;
    let refused = |status: u16| audit_refusal("state.refused", request_id, claims, chain, status);
    let params = match parse_params(req.url()?.query().unwrap_or_default()) {
        Ok(p) => p,
        Err(why) => {
            refused(400);
            return reply::error(400, "invalid_request", why);
        }
    };
    let request = match plan_state_request(
        &settings.config,
        claims,
        chain,
        params.hotel_code.as_deref(),
        params.module_names,
        params.after,
        params.limit,
    ) {
        Ok(r) => r,
        Err(StateRefusal::Forbidden(why)) => {
            refused(403);
            return reply::error(403, "forbidden", why);
        }
        Err(StateRefusal::BadRequest(why)) => {
            refused(400);
            return reply::error(400, "invalid_request", why);
        }
    };
    let page = match state_page(env, &request).await {
        Ok(Ok(page)) => page,
        Ok(Err(refusal)) => {
            refused(400);
            return reply::error(400, &refusal.code, refusal.message);
        }
        Err(_) => return reply::error(503, "unavailable", "the chain's state could not be read; retry"),
    };
    audit(
        "state.served",
        json!({
            "requestId": request_id, "clientId": claims.sub, "enterpriseId": claims.enterprise_id,
            "chain": request.chain_code, "continued": request.after.is_some(), "bytes": page.len(),
        }),
    );
    let mut resp = Response::from_bytes(page)?.with_status(200);
    resp.headers_mut().set("Content-Type", "application/json")?;
    resp.headers_mut().set("Cache-Control", "no-store")?;
    Ok(resp)
}
