//! `GET /admin/v1/chains/{chainCode}`: the chain's numbers, for operators (scope
//! `urn:pms:admin`, chains of the admin's enterprise and grants).

use serde_json::{json, Value};
use worker::{Env, Request, Response, Result};

use super::settings::Settings;
use super::{access_error, chain_stub, reply, verified_claims};
use crate::config::Scope;

pub async fn chain(req: Request, env: &Env, settings: &Settings, chain: &str, _request_id: &str) -> Result<Response> {
    let token = match verified_claims(&req, settings) {
        Ok(t) => t,
        Err(e) => return access_error(e),
    };
    let chain_config = match crate::access::chain_access(&settings.config, &token.claims, Scope::Admin, chain) {
        Ok((c, _)) => c,
        Err(e) => return access_error(e),
    };
    let mut resp = chain_stub(env, &chain_config.code)?.fetch_with_str("https://chain.internal/stats").await?;
    let stats: Value = resp.json().await?;
    let text = |v: &Value| v.as_u64().map(|n| n.to_string());
    reply::json(
        200,
        &json!({
            "chainCode": chain_config.code,
            "headOffset": text(&stats["headOffset"]).unwrap_or_else(|| "0".into()),
            "oldestOffset": text(&stats["oldestOffset"]),
            "retainedEvents": stats["retainedEvents"],
            "subscribers": stats["subscribers"],
            "lastPublishAt": stats["lastPublishAt"],
        }),
    )
}
