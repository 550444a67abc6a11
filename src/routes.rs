//! The public routes, matched without the runtime so the table is tested natively.

use crate::pages::{self, Page, Served};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Healthz,
    /// This service's documentation, which the `getHelp` query links into: the README and
    /// the guides under `/docs/` (`crate::docs`).
    Docs,
    /// The `OpenAPI` 3.1 description of the HTTP routes (`schema/openapi.yaml`).
    OpenApi,
    /// The `AsyncAPI` 3.0 description of the stream (`schema/asyncapi.yaml`).
    AsyncApi,
    Jwks,
    Tokens,
    Publish {
        chain: String,
    },
    /// The pull API: the chain's events from an offset.
    Pull {
        chain: String,
    },
    /// The current state of the chain's entities, a page at a time.
    State {
        chain: String,
    },
    /// Every chain the admin may see, with its numbers (the dashboard polls this).
    AdminChains,
    AdminChain {
        chain: String,
    },
    /// Restarts a chain's object, as a deploy does (operators; proves reattachment).
    AdminRestart {
        chain: String,
    },
    /// A chain's webhooks and where each stands.
    AdminWebhooks {
        chain: String,
    },
    /// Resumes a webhook (paused or not), optionally from an offset.
    AdminWebhookResume {
        chain: String,
        webhook: String,
    },
    /// A chain's consumers: attached subscriptions and saved cursors, with their lag.
    AdminConsumers {
        chain: String,
    },
    /// The granted chains' figures for Prometheus.
    AdminMetrics,
    Subscriptions,
    /// A page or one of its files, from the static assets.
    Static(Served),
    NotFound,
    /// The path exists but not for this method; `allow` is the `Allow` header.
    MethodNotAllowed {
        allow: &'static str,
    },
}

pub fn route(method: &str, path: &str) -> Route {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (target, allow) = match segments.as_slice() {
        ["healthz"] => (Route::Healthz, "GET"),
        ["README.md"] | ["docs", _] if crate::docs::at(path).is_some() => (Route::Docs, "GET"),
        ["openapi.json"] => (Route::OpenApi, "GET"),
        ["asyncapi.json"] => (Route::AsyncApi, "GET"),
        [".well-known", "jwks.json"] => (Route::Jwks, "GET"),
        ["oauth", "v1", "tokens"] => (Route::Tokens, "POST"),
        ["events", "v1", "chains", chain, "events"] if !chain.is_empty() => {
            let chain = chain.to_string();
            return match method {
                "POST" => Route::Publish { chain },
                "GET" | "HEAD" => Route::Pull { chain },
                _ => Route::MethodNotAllowed { allow: "GET, POST" },
            };
        }
        ["events", "v1", "chains", chain, "state"] if !chain.is_empty() => {
            (Route::State { chain: chain.to_string() }, "GET")
        }
        ["admin", "v1", "chains"] => (Route::AdminChains, "GET"),
        ["admin", "v1", "chains", chain] if !chain.is_empty() => {
            (Route::AdminChain { chain: chain.to_string() }, "GET")
        }
        ["admin", "v1", "chains", chain, "restart"] if !chain.is_empty() => {
            (Route::AdminRestart { chain: chain.to_string() }, "POST")
        }
        ["admin", "v1", "metrics"] => (Route::AdminMetrics, "GET"),
        ["admin", "v1", "chains", chain, "consumers"] if !chain.is_empty() => {
            (Route::AdminConsumers { chain: chain.to_string() }, "GET")
        }
        ["admin", "v1", "chains", chain, "webhooks"] if !chain.is_empty() => {
            (Route::AdminWebhooks { chain: chain.to_string() }, "GET")
        }
        ["admin", "v1", "chains", chain, "webhooks", webhook, "resume"] if !chain.is_empty() && !webhook.is_empty() => {
            (Route::AdminWebhookResume { chain: chain.to_string(), webhook: webhook.to_string() }, "POST")
        }
        ["subscriptions"] => (Route::Subscriptions, "GET"),
        ["playground"] => (Route::Static(Served::Page(Page::Playground)), "GET"),
        ["dashboard"] => (Route::Static(Served::Page(Page::Dashboard)), "GET"),
        ["assets", name] if pages::is_asset_name(name) => (Route::Static(Served::Asset), "GET"),
        _ => return Route::NotFound,
    };
    let allowed = method == allow || (allow == "GET" && method == "HEAD");
    if allowed {
        target
    } else {
        Route::MethodNotAllowed { allow }
    }
}

/// Echoes a caller's `X-Request-Id` when it is sane (visible ASCII, at most 128 bytes), so
/// a log line can be found from the vendor's side; otherwise `None` and one is generated.
pub fn sane_request_id(id: Option<&str>) -> Option<&str> {
    id.map(str::trim).filter(|id| !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| (0x21..0x7f).contains(&b)))
}
