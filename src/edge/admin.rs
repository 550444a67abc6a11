//! Operator endpoints (scope `urn:pms:admin`, chains of the admin's enterprise and grants):
//! `GET /admin/v1/chains/{chainCode}` gives the chain's numbers;
//! `POST /admin/v1/chains/{chainCode}/restart` restarts the chain's object;
//! `GET …/webhooks` lists its webhooks and `POST …/webhooks/{id}/resume` resumes one;
//! `GET …/consumers` lists who consumes it; `GET /admin/v1/metrics` renders every granted
//! chain for Prometheus.

use serde_json::json;
use worker::{Env, Method, Request, Response, Result};

use super::ask::{ask, Answer, Ask};
use super::settings::Settings;
use super::{access_error, audit, chain_stub, reply, verified_claims};
use crate::auth::token::VerifiedToken;
use crate::config::{Chain, Scope};
use crate::rpc;

/// The admin's token and the chain it may administer, or the refusal to send.
fn authorize<'c>(
    req: &Request,
    settings: &'c Settings,
    chain: &str,
) -> std::result::Result<(VerifiedToken, &'c Chain), Result<Response>> {
    let token = verified_claims(req, settings).map_err(access_error)?;
    let chain_config = crate::auth::access::chain_access(&settings.config, &token.claims, Scope::Admin, chain)
        .map_err(access_error)?
        .0;
    Ok((token, chain_config))
}

/// A chain's numbers, as its object gives them to operators.
async fn chain_stats(env: &Env, chain: &Chain) -> Result<rpc::ChainNumbers> {
    ask_chain(env, &chain.code, Method::Get, rpc::chain::STATS, Ask::Empty).await?.decode()
}

pub async fn chain(req: Request, env: &Env, settings: &Settings, chain: &str, _request_id: &str) -> Result<Response> {
    let chain_config = match authorize(&req, settings, chain) {
        Ok((_, c)) => c,
        Err(refusal) => return refusal,
    };
    reply::json(200, &chain_stats(env, chain_config).await?)
}

/// `GET /admin/v1/chains`: the numbers of every chain the admin may see, asked of their
/// objects at once (the configuration bounds how many chains an enterprise has).
pub async fn chains(req: Request, env: &Env, settings: &Settings, _request_id: &str) -> Result<Response> {
    let chains = match verified_claims(&req, settings)
        .and_then(|token| crate::auth::access::granted_chains(&settings.config, &token.claims, Scope::Admin))
    {
        Ok(chains) => chains,
        Err(e) => return access_error(e),
    };
    let stats = futures::future::try_join_all(chains.iter().map(|(chain, _)| chain_stats(env, chain))).await?;
    reply::json(200, &json!({ "chains": stats }))
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
    let answer = ask_chain(env, &chain_config.code, Method::Post, rpc::chain::RESTART, Ask::Empty).await?;
    if answer.status != 200 {
        let why = String::from_utf8_lossy(&answer.body);
        return reply::error(503, "unavailable", format!("the chain object could not be restarted: {why}"));
    }
    audit(
        "chain.restarted",
        json!({
            "requestId": request_id, "clientId": token.claims.sub, "enterpriseId": token.claims.enterprise_id,
            "chain": chain_config.code,
        }),
    );
    reply::json(202, &json!({ "chainCode": chain_config.code, "restarted": true }))
}

/// A request to the chain's object for the admin API, naming the chain to it.
async fn ask_chain(env: &Env, chain: &str, method: Method, path: &str, body: Ask<'_>) -> Result<Answer> {
    ask(&chain_stub(env, chain)?, rpc::CHAIN_ORIGIN, method, path, Some(chain), body).await
}

/// `GET /admin/v1/chains/{chainCode}/webhooks`: every webhook configured for the chain,
/// with its cursor, lag, last answer and next attempt.
pub async fn webhooks(
    req: Request,
    env: &Env,
    settings: &Settings,
    chain: &str,
    _request_id: &str,
) -> Result<Response> {
    let chain_config = match authorize(&req, settings, chain) {
        Ok((_, c)) => c,
        Err(refusal) => return refusal,
    };
    let answer = ask_chain(env, &chain_config.code, Method::Get, rpc::chain::WEBHOOKS, Ask::Empty).await?;
    if answer.status != 200 {
        return reply::error(503, "unavailable", "the chain object did not answer; retry");
    }
    let list: rpc::Webhooks = answer.decode()?;
    reply::json(
        200,
        &json!({"chainCode": chain_config.code, "headOffset": list.head_offset.to_string(), "webhooks": list.webhooks}),
    )
}

/// `POST /admin/v1/chains/{chainCode}/webhooks/{id}/resume`: forgets the webhook's failures,
/// unpauses it and attempts at once, from `from` when given.
pub async fn resume_webhook(
    mut req: Request,
    env: &Env,
    settings: &Settings,
    chain: &str,
    webhook: &str,
    request_id: &str,
) -> Result<Response> {
    let (token, chain_config) = match authorize(&req, settings, chain) {
        Ok(ok) => ok,
        Err(refusal) => {
            super::drain(&mut req).await;
            return refusal;
        }
    };
    let body = match super::read_body(&mut req, crate::webhook::MAX_RESUME_BODY_BYTES).await? {
        super::Body::Read(body) => body,
        super::Body::TooLarge => {
            // A small excess is read and dropped, so the client's connection stays usable.
            super::drain(&mut req).await;
            return reply::error(
                413,
                "payload_too_large",
                format!("the body is over {} bytes", crate::webhook::MAX_RESUME_BODY_BYTES),
            );
        }
    };
    let from = match crate::webhook::parse_resume_body(&body) {
        Ok(from) => from,
        Err(why) => return reply::error(400, "invalid_request", why),
    };
    let body = Ask::json(&rpc::ResumeWebhook { id: webhook.to_string(), from })?;
    let answer = ask_chain(env, &chain_config.code, Method::Post, rpc::chain::RESUME_WEBHOOK, body).await?;
    let status = answer.status;
    match status {
        200 => {}
        404 | 409 => {
            let refusal: rpc::Refusal = answer.decode()?;
            let status = if status == 404 { 404 } else { 400 };
            return reply::error(status, &refusal.code, refusal.message);
        }
        _ => return reply::error(503, "unavailable", "the chain object did not answer; retry"),
    }
    let resumed: rpc::WebhookResumed = answer.decode()?;
    audit(
        "webhook.resumed",
        json!({
            "requestId": request_id, "clientId": token.claims.sub, "chain": chain_config.code, "webhookId": webhook,
            "from": from.map(|o| o.to_string()), "wasPaused": resumed.was_paused, "cursor": resumed.webhook.cursor,
        }),
    );
    reply::json(
        200,
        &json!({"chainCode": chain_config.code, "wasPaused": resumed.was_paused, "webhook": resumed.webhook}),
    )
}

/// `GET /admin/v1/chains/{chainCode}/consumers?after=&limit=`: a page of the chain's attached
/// subscriptions and saved resume cursors, each with its lag.
pub async fn consumers(req: Request, env: &Env, settings: &Settings, chain: &str) -> Result<Response> {
    let chain_config = match authorize(&req, settings, chain) {
        Ok((_, c)) => c,
        Err(refusal) => return refusal,
    };
    let request = match rpc::operators::ConsumersRequest::from_query(req.url()?.query().unwrap_or_default()) {
        Ok(r) => r,
        Err(why) => return reply::error(400, "invalid_request", why),
    };
    let answer = ask_chain(env, &chain_config.code, Method::Post, rpc::chain::CONSUMERS, Ask::json(&request)?).await?;
    match answer.status {
        200 => reply::json(200, &answer.decode::<rpc::operators::Consumers>()?),
        400 => {
            let refusal: rpc::Refusal = answer.decode()?;
            reply::error(400, &refusal.code, refusal.message)
        }
        _ => reply::error(503, "unavailable", "the chain object did not answer; retry"),
    }
}

/// `GET /admin/v1/metrics`: the figures of every chain the admin may see, for Prometheus,
/// asked of their objects at once.
pub async fn metrics(req: Request, env: &Env, settings: &Settings) -> Result<Response> {
    let (claims, chains) = match verified_claims(&req, settings).and_then(|token| {
        let chains = crate::auth::access::granted_chains(&settings.config, &token.claims, Scope::Admin)?;
        Ok((token.claims, chains))
    }) {
        Ok(granted) => granted,
        Err(e) => return access_error(e),
    };
    let figures = futures::future::try_join_all(chains.iter().map(|(chain, _)| async move {
        ask_chain(env, &chain.code, Method::Get, rpc::chain::METRICS, Ask::Empty).await?.decode()
    }))
    .await?;
    // The service's counts are an addition: without them the chains' figures (and the alerts
    // on lag and webhooks) still reach Prometheus.
    let tally = match super::tally::read(env).await {
        Ok(tally) => tally.seen_by(&claims.enterprise_id),
        Err(e) => {
            worker::console_error!("service tally: {e}");
            crate::service_tally::Tally::default()
        }
    };
    let mut resp = Response::ok(crate::metrics::render(&figures, &tally))?;
    resp.headers_mut().set("Content-Type", crate::metrics::CONTENT_TYPE)?;
    resp.headers_mut().set("Cache-Control", "no-store")?;
    Ok(resp)
}
