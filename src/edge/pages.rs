//! Serves a page or asset from the `ASSETS` binding with the headers `pages` decides.

use worker::{Env, Headers, Request, Response, Result};

use super::reply;
use crate::pages::{self, Served};

pub async fn serve(req: &Request, env: &Env, served: Served) -> Result<Response> {
    let Ok(assets) = env.assets("ASSETS") else {
        return reply::error(503, "pages_not_built", "this deployment has no static assets");
    };
    let path = match served {
        Served::Page(page) => pages::asset_path(page).to_string(),
        Served::Asset => req.path(),
    };
    // Only the path reaches the binding: the caller's headers (its token, if any) do not.
    let found = assets.fetch(format!("https://assets.local{path}"), None).await?;
    if found.status_code() != 200 {
        return match served {
            Served::Page(_) => reply::error(503, "pages_not_built", "run scripts/build.sh to build the pages"),
            Served::Asset => reply::error(404, "not_found", format!("no asset at {path}")),
        };
    }
    let headers = Headers::new();
    for name in ["Content-Type", "ETag"] {
        if let Some(value) = found.headers().get(name)? {
            headers.set(name, &value)?;
        }
    }
    for (name, value) in pages::headers(served) {
        headers.set(name, value)?;
    }
    Ok(found.with_headers(headers))
}
