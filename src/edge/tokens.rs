//! `POST /oauth/v1/tokens` on the runtime: parse, authenticate, consult the login guard
//! of the client id, sign.

use serde_json::json;
use worker::{Env, Method, Request, RequestInit, Response, Result};

use super::settings::Settings;
use super::{audit, now_ms, reply};
use crate::oauth::{self, OAuthError, TokenHttpRequest};
use crate::token::{random_id, AccessClaims};

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
    let body = req.text().await.unwrap_or_default();
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
    let authenticated = oauth::authenticate(config, &parsed);
    let verdict = guard(env, &parsed.client_id, authenticated.is_ok(), config).await?;
    if let Some(retry_after) = verdict {
        audit(
            "token.refused",
            json!({"requestId": request_id, "clientId": parsed.client_id, "reason": "locked_out", "status": 429}),
        );
        return oauth_error(&OAuthError::locked_out(retry_after), Some(retry_after));
    }
    let client = match authenticated {
        Ok(c) => c,
        Err(e) => {
            audit(
                "token.refused",
                json!({"requestId": request_id, "clientId": parsed.client_id, "reason": "invalid_client", "status": 401}),
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

/// Tells the client's login guard the outcome of this attempt; returns `Some(retry_after)`
/// while the client id is locked out.
async fn guard(env: &Env, client_id: &str, ok: bool, config: &crate::config::ServiceConfig) -> Result<Option<u64>> {
    let stub = env.durable_object("LOGIN_GUARD")?.id_from_name(client_id)?.get_stub()?;
    let body = json!({
        "ok": ok,
        "maxFailures": config.limits.login_failures_before_lockout,
        "lockoutSeconds": config.limits.login_lockout_seconds,
    });
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_body(Some(body.to_string().into()));
    let req = Request::new_with_init("https://guard.internal/attempt", &init)?;
    let mut resp = stub.fetch_with_request(req).await?;
    let verdict: serde_json::Value = resp.json().await?;
    Ok(verdict["retryAfter"].as_u64())
}
