//! The Worker glue: entry point, routing and the Durable Object classes. Everything it
//! decides is delegated to the plain-Rust modules; this layer only moves bytes between
//! them and the runtime, and is proven end to end in `miniflare/`.

mod admin;
mod ask;
mod chain_object;
mod gateway;
mod guard_object;
mod js_socket;
mod pages;
mod publish;
mod pull;
mod reply;
mod settings;
mod state;
mod tally;
mod tally_object;
mod tokens;

use worker::{event, Context, Env, Request, Response, Result};

use crate::routes::{self, Route};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

fn wasm_memory_bytes() -> u64 {
    use wasm_bindgen::JsCast;
    wasm_bindgen::memory()
        .dyn_into::<js_sys::WebAssembly::Memory>()
        .map_or(0, |m| u64::from(m.buffer().unchecked_into::<js_sys::ArrayBuffer>().byte_length()))
}

pub fn now_ms() -> u64 {
    // `Date.now()`, not `new Date()`: the gateway asks once per frame it sends, and the
    // object allocation showed in its profile. Milliseconds since 1970 are positive and
    // far below 2^53, so the cast is exact.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let ms = js_sys::Date::now() as u64;
    ms
}

pub fn audit(event: &str, fields: serde_json::Value) {
    worker::console_log!("{}", crate::audit::line(event, now_ms(), fields));
}

/// Audits a refused request of a vendor's HTTP API (`pull.refused`, `state.refused`) with
/// who asked, for which chain, and the status answered.
pub fn audit_refusal(
    event: &str,
    request_id: &str,
    claims: &crate::auth::token::AccessClaims,
    chain: &str,
    status: u16,
) {
    audit(
        event,
        serde_json::json!({
            "requestId": request_id, "clientId": claims.sub, "enterpriseId": claims.enterprise_id, "chain": chain,
            "status": status,
        }),
    );
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    console_error_panic_hook::set_once();
    let request_id = routes::sane_request_id(req.headers().get("X-Request-Id").ok().flatten().as_deref())
        .map_or_else(crate::auth::token::random_id, str::to_string);
    let started_at = now_ms();
    // The request's own method: the worker crate reads any method it does not know as GET.
    let route = routes::route(&req.inner().method(), &req.path());
    let enterprise = tally::enterprise_of(&route, &req, settings::load(&env).ok().as_deref());
    let resp = match dispatch(req, &route, &env, &ctx, &request_id).await {
        Ok(resp) => resp,
        Err(e) => {
            worker::console_error!(
                "{}",
                crate::audit::line(
                    "request.failed",
                    now_ms(),
                    serde_json::json!({"requestId": request_id, "error": e.to_string()})
                )
            );
            reply::error(500, "internal_error", "the request could not be completed; retry it")?
        }
    };
    tally::count_answer(&route, &enterprise, resp.status_code(), started_at, &env, &ctx);
    if resp.status_code() == 101 {
        return Ok(resp);
    }
    reply::with_header(resp, "X-Request-Id", &request_id)
}

/// Request headers larger than this in total are refused with 431 (the size OHIP allows).
pub const MAX_HEADER_BYTES: usize = 8 * 1024;
/// A body we answer without using (unknown routes, wrong methods, refused requests) is read
/// and dropped up to this size, so that workerd keeps an ordinary client's keep-alive
/// connection open (it closes one whose body was left unread). Anything larger is left
/// unread: the connection closes after the answer, and no byte of it enters wasm memory.
pub const DRAIN_BYTES: usize = 64 * 1024;

/// A body read with a bound.
pub enum Body {
    Read(Vec<u8>),
    /// Over the limit: reading stopped there (or never started, for a declared length).
    TooLarge,
}

fn declared_length(req: &Request) -> Option<usize> {
    req.headers().get("Content-Length").ok().flatten().and_then(|v| v.trim().parse::<usize>().ok())
}

/// Reads the body, at most `limit` bytes: a declared length over it is refused unread, and
/// a chunked body is refused as soon as it passes it, so memory held is bounded by the
/// route's limit, not by the client.
pub async fn read_body(req: &mut Request, limit: usize) -> Result<Body> {
    use futures::StreamExt;
    if req.inner().body().is_none() {
        return Ok(Body::Read(Vec::new()));
    }
    match declared_length(req) {
        Some(n) if n > limit => return Ok(Body::TooLarge),
        // A declared length is the body's length (the runtime holds the client to it), so
        // it is read in one call: the publish path's common case pays for no stream.
        Some(_) => return Ok(Body::Read(req.bytes().await?)),
        None => {}
    }
    let mut stream = req.stream()?;
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if body.len() + chunk.len() > limit {
            return Ok(Body::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Body::Read(body))
}

/// Drops a body we answer without using: read (and discarded) when small, so that the
/// client's keep-alive connection stays usable; left unread when larger (see [`DRAIN_BYTES`]).
pub async fn drain(req: &mut Request) {
    if req.inner().body().is_some() {
        let _ = read_body(req, DRAIN_BYTES).await;
    }
}

/// The size of the request's headers, as names and values.
fn header_bytes(req: &Request) -> usize {
    req.headers().entries().map(|(name, value)| name.len() + value.len() + 4).sum()
}

async fn dispatch(mut req: Request, route: &Route, env: &Env, ctx: &Context, request_id: &str) -> Result<Response> {
    if header_bytes(&req) > MAX_HEADER_BYTES {
        drain(&mut req).await;
        return reply::error(
            431,
            "request_header_fields_too_large",
            format!("the request headers are over {MAX_HEADER_BYTES} bytes in total"),
        );
    }
    let method = req.inner().method();
    if matches!(
        route,
        Route::NotFound
            | Route::MethodNotAllowed { .. }
            | Route::Healthz
            | Route::Jwks
            | Route::Docs
            | Route::OpenApi
            | Route::AsyncApi
            | Route::Pull { .. }
            | Route::Static(_)
    ) {
        drain(&mut req).await;
    }
    // The API descriptions are static: served even when the configuration is broken.
    if let Some(spec) = crate::specs::served_at(route) {
        return reply::spec(spec);
    }
    // So are the pages: they show their own errors when the API answers with one.
    if let Route::Static(served) = route {
        return pages::serve(&req, env, *served).await;
    }
    let settings = match settings::load(env) {
        Ok(s) => s,
        Err(why) => {
            drain(&mut req).await;
            if *route == Route::Healthz {
                return reply::json(
                    500,
                    &serde_json::json!({
                        "status": "error", "version": VERSION, "configuration": "invalid", "error": why,
                    }),
                );
            }
            return reply::error(500, "configuration_error", why);
        }
    };
    match route {
        Route::Healthz => reply::json(
            200,
            &serde_json::json!({
                "status": "ok", "version": VERSION, "configuration": "loaded",
                // This isolate's wasm heap: it only grows, so a leak shows here first.
                "wasmMemoryBytes": wasm_memory_bytes(),
            }),
        ),
        Route::Docs => {
            let markdown = crate::docs::at(&req.path()).map_or("", |doc| doc.markdown);
            let resp = Response::ok(markdown)?;
            let resp = reply::with_header(resp, "Content-Type", "text/markdown; charset=utf-8")?;
            reply::with_header(resp, "Cache-Control", "public, max-age=300")
        }
        // Answered above, before the configuration is loaded; the arm keeps the match whole.
        Route::OpenApi | Route::AsyncApi => reply::spec(crate::specs::served_at(route).unwrap_or_default()),
        Route::Static(served) => pages::serve(&req, env, *served).await,
        Route::Jwks => {
            let resp = reply::json(200, &settings.keys.jwks())?;
            reply::with_header(resp, "Cache-Control", "public, max-age=300")
        }
        Route::Tokens => tokens::handle(req, env, &settings, request_id).await,
        Route::Publish { chain } => publish::handle(req, env, &settings, chain, request_id).await,
        Route::Pull { chain } => pull::handle(req, env, &settings, chain, request_id).await,
        Route::State { chain } => state::handle(req, env, &settings, chain, request_id).await,
        Route::AdminChains => admin::chains(req, env, &settings, request_id).await,
        Route::AdminChain { chain } => admin::chain(req, env, &settings, chain, request_id).await,
        Route::AdminRestart { chain } => admin::restart(req, env, &settings, chain, request_id).await,
        Route::AdminWebhooks { chain } => admin::webhooks(req, env, &settings, chain, request_id).await,
        Route::AdminConsumers { chain } => admin::consumers(req, env, &settings, chain).await,
        Route::AdminMetrics => admin::metrics(req, env, &settings).await,
        Route::AdminWebhookResume { chain, webhook } => {
            admin::resume_webhook(req, env, &settings, chain, webhook, request_id).await
        }
        Route::Subscriptions => gateway::upgrade(req, env, ctx, settings.clone(), request_id).await,
        Route::NotFound => reply::error(404, "not_found", format!("no route for {}", req.path())),
        Route::MethodNotAllowed { allow } => {
            let resp = reply::error(405, "method_not_allowed", format!("{method} is not allowed here; use {allow}"))?;
            reply::with_header(resp, "Allow", allow)
        }
    }
}

/// The address the request came from, as the edge reports it (`CF-Connecting-IP`).
pub fn source_address(req: &Request) -> String {
    req.headers()
        .get("CF-Connecting-IP")
        .ok()
        .flatten()
        .filter(|ip| !ip.is_empty() && ip.len() <= 64)
        .unwrap_or_else(|| "unknown".into())
}

/// The stub of a chain's log object: one per chain code.
pub fn chain_stub(env: &Env, chain: &str) -> Result<ask::ObjectStub> {
    ask::ObjectStub::of(env, "CHAIN_LOG", chain)
}

/// The stub of a login guard object: one per name (`rpc::guard` says which names).
pub fn guard_stub(env: &Env, name: &str) -> Result<ask::ObjectStub> {
    ask::ObjectStub::of(env, "LOGIN_GUARD", name)
}

/// Maps an authorization failure to its response (401 with a Bearer challenge, or 403).
pub fn access_error(e: crate::auth::access::AccessError) -> Result<Response> {
    use crate::auth::access::AccessError;
    match e {
        AccessError::Unauthorized(m) => {
            let resp = reply::error(401, "invalid_token", m)?;
            reply::with_header(resp, "WWW-Authenticate", "Bearer error=\"invalid_token\"")
        }
        AccessError::Forbidden(m) => reply::error(403, "forbidden", m),
    }
}

/// Verifies the bearer token of a request with the service's one verification function.
pub fn verified_claims(
    req: &Request,
    settings: &settings::Settings,
) -> std::result::Result<crate::auth::token::VerifiedToken, crate::auth::access::AccessError> {
    let header = req.headers().get("Authorization").ok().flatten();
    let token = crate::auth::access::bearer_token(header.as_deref())?;
    settings
        .keys
        .verify(token, &settings.config.issuer, &settings.config.audience, now_ms() / 1000)
        .map_err(|e| crate::auth::access::AccessError::Unauthorized(e.to_string()))
}
