//! The two browser pages (`/playground` for vendors, `/dashboard` for operators) and the
//! script and style files they load. Their files are Workers static assets built from npm
//! packages by `pages/build.mjs`; the Worker runs first for every request
//! (`run_worker_first`), so a page's answer carries this module's headers and the route
//! table stays the one place that says what exists.

/// A page a person opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    Playground,
    Dashboard,
}

/// What is served from the static assets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    Page(Page),
    /// A built script or style under `/assets/`; its name carries a content hash.
    Asset,
}

/// The pages load nothing from another origin (no CDN: they work offline on a local
/// server) and run no inline script. `'unsafe-inline'` for styles only: `GraphiQL` and
/// uPlot set element styles from script. Connections go to this origin only (the token
/// endpoint, the admin API and the `/subscriptions` socket).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; \
connect-src 'self'; worker-src 'self' blob:; base-uri 'none'; object-src 'none'; \
form-action 'none'; frame-ancestors 'none'";

/// The asset path a page's file is fetched from. With the default `html_handling`
/// (`auto-trailing-slash`), `/playground` serves `playground.html`.
pub fn asset_path(page: Page) -> &'static str {
    match page {
        Page::Playground => "/playground",
        Page::Dashboard => "/dashboard",
    }
}

/// The headers this service adds to a static answer (beside the asset's own
/// `Content-Type` and `ETag`). A page may change with any deploy and is revalidated; an
/// asset's name changes with its content, so it is cached for a year.
pub fn headers(served: Served) -> [(&'static str, &'static str); 5] {
    let cache = match served {
        Served::Page(_) => "no-cache",
        Served::Asset => "public, max-age=31536000, immutable",
    };
    [
        ("Cache-Control", cache),
        ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
        ("Cross-Origin-Opener-Policy", "same-origin"),
    ]
}

/// An asset name is a plain file name: no traversal, no hidden files, no query tricks.
pub fn is_asset_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}
