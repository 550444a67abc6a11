//! `GET /events/v1/chains/{chainCode}/events`: authorize (scope `urn:pms:events`, the chain's
//! grant, `hotelCode` within it), then one bounded read of the chain's object.

use serde_json::json;
use worker::{Env, Method, Request, Response, Result};

use super::ask::{ask, Ask};
use super::settings::Settings;
use super::{access_error, audit, audit_refusal, chain_stub, reply, verified_claims};
use crate::config::Scope;
use crate::pull::{parse_params, ReadRequest};
use crate::rpc;
use crate::stream::subscribe::event_filter;

pub async fn handle(req: Request, env: &Env, settings: &Settings, chain: &str, request_id: &str) -> Result<Response> {
    let token = match verified_claims(&req, settings) {
        Ok(t) => t,
        Err(e) => return access_error(e),
    };
    let claims = &token.claims;
    let refused = |status: u16| audit_refusal("pull.refused", request_id, claims, chain, status);
    let (chain_config, grant) = match crate::auth::access::chain_access(&settings.config, claims, Scope::Events, chain)
    {
        Ok(ok) => ok,
        Err(e) => {
            refused(403);
            return access_error(e);
        }
    };
    let params = match parse_params(req.url()?.query().unwrap_or_default()) {
        Ok(p) => p,
        Err(why) => {
            refused(400);
            return reply::error(400, "invalid_request", why);
        }
    };
    let filter =
        match event_filter(chain_config, &grant, params.hotel_code.as_deref(), params.event_names, params.module_names)
        {
            Ok(f) => f,
            Err(e) => {
                let status = if e.code() == Some(crate::graphql::codes::FORBIDDEN) { 403 } else { 400 };
                refused(status);
                let code = if status == 403 { "forbidden" } else { "invalid_request" };
                return reply::error(status, code, &e.message);
            }
        };
    let read = ReadRequest { from: params.from, since: params.since, limit: params.limit, filter };
    let stub = chain_stub(env, &chain_config.code)?;
    let answer = ask(&stub, rpc::CHAIN_ORIGIN, Method::Post, rpc::chain::READ, None, Ask::json(&read)?).await?;
    let status = answer.status;
    if status == 409 {
        let refusal: rpc::Refusal = answer.decode()?;
        refused(400);
        return reply::error(400, &refusal.code, refusal.message);
    }
    if status != 200 {
        return reply::error(503, "unavailable", "the chain's log could not be read; retry");
    }
    audit(
        "pull.served",
        json!({
            "requestId": request_id, "clientId": claims.sub, "enterpriseId": claims.enterprise_id,
            "chain": chain_config.code, "from": read.from.map(|o| o.to_string()), "bytes": answer.body.len(),
        }),
    );
    let mut resp = Response::from_bytes(answer.body)?.with_status(200);
    resp.headers_mut().set("Content-Type", "application/json")?;
    resp.headers_mut().set("Cache-Control", "no-store")?;
    Ok(resp)
}
