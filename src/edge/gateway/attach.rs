//! The gateway's requests to a chain's object for one operation: attaching a subscription's
//! internal socket, and asking whether an app key streams on another connection.

use worker::{Env, Headers, Method, Request, RequestInit, Result, WebSocket};

use crate::auth::token::AccessClaims;
use crate::edge::ask::{ask, whole_body, Ask};
use crate::edge::chain_stub;
use crate::graphql::{GraphQLError, ProjectionPlan};
use crate::rpc;
use crate::stream::spec::{encode_spec, SubscriptionSpec};

/// How an attach request ended.
pub(super) enum AttachOutcome {
    Socket(WebSocket, rpc::AttachedAt),
    /// The object refused the subscription: the vendor's error.
    Refused(GraphQLError),
}

pub(super) async fn attach(env: &Env, chain: &str, spec: &SubscriptionSpec<ProjectionPlan>) -> Result<AttachOutcome> {
    let encoded = encode_spec(spec).map_err(|e| worker::Error::RustError(e.to_string()))?;
    let headers = Headers::new();
    headers.set("Upgrade", "websocket")?;
    headers.set(rpc::SUBSCRIPTION_HEADER, &encoded)?;
    headers.set(rpc::CHAIN_HEADER, chain)?;
    let mut init = RequestInit::new();
    init.with_method(Method::Get).with_headers(headers);
    let req = Request::new_with_init(&format!("{}{}", rpc::CHAIN_ORIGIN, rpc::chain::SUBSCRIBE), &init)?;
    let resp = chain_stub(env, chain)?.fetch(&req).await?;
    if resp.status_code() == 101 {
        let header = |name: &str| resp.headers().get(name).ok().flatten();
        let at =
            rpc::AttachedAt::from_headers(header(rpc::START_HEADER).as_deref(), header(rpc::GAP_HEADER).as_deref());
        return match resp.websocket() {
            Some(ws) => Ok(AttachOutcome::Socket(ws, at)),
            None => Err(worker::Error::RustError("the chain object answered 101 without a socket".into())),
        };
    }
    let status = resp.status_code();
    match serde_json::from_slice::<rpc::Refusal>(&whole_body(resp).await.unwrap_or_default()) {
        Ok(refusal) => Ok(AttachOutcome::Refused(GraphQLError::coded(refusal.message, &refusal.code))),
        Err(_) => Err(worker::Error::RustError(format!("the chain object answered {status}"))),
    }
}

/// Whether the token's app key streams on a connection other than `connection`, on any of
/// its chains.
pub(super) async fn app_key_active_elsewhere(env: &Env, claims: &AccessClaims, connection: &str) -> bool {
    for grant in &claims.chains {
        let Ok(stub) = chain_stub(env, &grant.chain) else { continue };
        let path = rpc::ActiveQuery { app_key: claims.app_key.clone(), connection: connection.to_string() }.path();
        let Ok(answer) = ask(&stub, rpc::CHAIN_ORIGIN, Method::Get, &path, None, Ask::Empty).await else { continue };
        if answer.decode::<rpc::Active>().is_ok_and(|a| a.active) {
            return true;
        }
    }
    false
}
