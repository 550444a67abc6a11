//! `POST /oauth/v1/tokens` on the runtime: read a bounded form, ask the login guard of the
//! client id whether this source (or the id) is locked out — before any secret is hashed —
//! then authenticate, record the outcome, sign.

use serde_json::json;
use worker::{Env, Method, Request, Response, Result};

use super::ask::{ask, Ask};
use super::settings::Settings;
use super::{audit, guard_stub, now_ms, read_body, reply, source_address, Body};
use crate::auth::oauth::{self, OAuthError, TokenHttpRequest};
use crate::auth::ratelimit::LoginLimits;
use crate::rpc::guard::{self, LoginCheck, LoginRecord, LoginVerdict};

/// The largest form the token endpoint reads: a client-credentials request is a few
/// hundred bytes.
pub const MAX_TOKEN_BODY_BYTES: usize = 4 * 1024;
use crate::auth::token::{random_id, AccessClaims};

fn oauth_error(e: &OAuthError, retry_after: Option<u64>) -> Result<Response> {
    let mut resp = reply::json(e.status, &e.body())?;
    if e.status == 401 {
        resp.headers_mut().set("WWW-Authenticate", "Basic realm=\"pms-events\"")?;
    }
    if let Some(secs) = retry_after {
        resp.headers_mut().set("Retry-After", &secs.to_string())?;
    }
    Ok(resp)
}

pub async fn handle(mut req: Request, env: &Env, settings: &Settings, request_id: &str) -> Result<Response> {
    let header = |name: &str| req.headers().get(name).ok().flatten();
    let (content_type, authorization, app_key, enterprise) =
        (header("Content-Type"), header("Authorization"), header("x-app-key"), header("enterpriseId"));
    let body = match read_body(&mut req, MAX_TOKEN_BODY_BYTES).await? {
        Body::Read(bytes) => String::from_utf8(bytes).unwrap_or_default(),
        Body::TooLarge => {
            audit("token.refused", json!({"requestId": request_id, "reason": "body_too_large", "status": 413}));
            let e = OAuthError {
                status: 413,
                error: "invalid_request",
                description: format!("the request body is over {MAX_TOKEN_BODY_BYTES} bytes"),
            };
            return oauth_error(&e, None);
        }
    };
    let http = TokenHttpRequest {
        content_type: content_type.as_deref(),
        authorization: authorization.as_deref(),
        app_key: app_key.as_deref(),
        enterprise_id: enterprise.as_deref(),
        body: &body,
    };
    let parsed = match oauth::parse(&http) {
        Ok(p) => p,
        Err(e) => {
            audit("token.refused", json!({"requestId": request_id, "reason": e.error, "status": e.status}));
            return oauth_error(&e, None);
        }
    };
    let config = &settings.config;
    let source = source_address(&req);
    // Locked out? Asked before the secret is hashed, so a locked-out caller costs no PBKDF2.
    // The check writes nothing: an unknown client id leaves no state behind.
    let verdict: LoginVerdict =
        ask_guard(env, &parsed.client_id, guard::LOGIN_CHECK, &LoginCheck { source: source.clone() }).await?;
    if let Some(retry_after) = verdict.retry_after {
        audit(
            "token.refused",
            json!({"requestId": request_id, "clientId": parsed.client_id, "reason": "locked_out", "status": 429}),
        );
        return oauth_error(&OAuthError::locked_out(retry_after), Some(retry_after));
    }
    let authenticated = oauth::authenticate(config, &parsed);
    let known = config.client(&parsed.client_id).is_some();
    if known && (authenticated.is_err() || verdict.tracked) {
        let limits = LoginLimits {
            failures_per_source: config.limits.login_failures_before_lockout,
            failures_per_client: config.limits.login_failures_per_client,
            lockout_seconds: config.limits.login_lockout_seconds,
        };
        let record = LoginRecord { source, ok: authenticated.is_ok(), limits };
        let _: LoginVerdict = ask_guard(env, &parsed.client_id, guard::LOGIN_RECORD, &record).await?;
    }
    let client = match authenticated {
        Ok(c) => c,
        Err(e) => {
            audit(
                "token.refused",
                json!({
                    "requestId": request_id, "clientId": parsed.client_id, "reason": "invalid_client", "status": 401,
                }),
            );
            return oauth_error(&e, None);
        }
    };
    let scopes = match oauth::select_scopes(client, parsed.scope.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            audit(
                "token.refused",
                json!({"requestId": request_id, "clientId": client.id, "reason": e.error, "status": e.status}),
            );
            return oauth_error(&e, None);
        }
    };
    let jti = random_id();
    if jti.is_empty() {
        return reply::error(500, "internal_error", "no randomness available; retry");
    }
    let claims = AccessClaims::for_client(client, &scopes, &config.issuer, &config.audience, jti);
    let token = settings.keys.issue(&claims, now_ms() / 1000).map_err(worker::Error::RustError)?;
    audit(
        "token.issued",
        json!({
            "requestId": request_id, "clientId": client.id, "enterpriseId": client.enterprise,
            "scope": claims.scope, "jti": claims.jti, "kid": settings.keys.signing_kid(),
        }),
    );
    reply::json(200, &oauth::success_body(&token, &scopes))
}

/// One request to the login guard of `client_id`.
async fn ask_guard<B: serde::Serialize, A: serde::de::DeserializeOwned>(
    env: &Env,
    client_id: &str,
    path: &str,
    body: &B,
) -> Result<A> {
    let stub = guard_stub(env, client_id)?;
    ask(&stub, crate::rpc::GUARD_ORIGIN, Method::Post, path, None, Ask::json(body)?).await?.decode()
}
