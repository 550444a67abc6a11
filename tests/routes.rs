use pms_events::routes::{route, sane_request_id, Route};

#[test]
fn route_table() {
    assert_eq!(route("GET", "/healthz"), Route::Healthz);
    assert_eq!(route("HEAD", "/healthz"), Route::Healthz);
    assert_eq!(route("GET", "/.well-known/jwks.json"), Route::Jwks);
    assert_eq!(route("GET", "/README.md"), Route::Docs);
    assert_eq!(route("GET", "/openapi.json"), Route::OpenApi);
    assert_eq!(route("GET", "/asyncapi.json"), Route::AsyncApi);
    assert_eq!(route("POST", "/oauth/v1/tokens"), Route::Tokens);
    assert_eq!(route("GET", "/oauth/v1/tokens"), Route::MethodNotAllowed { allow: "POST" });
    assert_eq!(route("POST", "/events/v1/chains/TTE/events"), Route::Publish { chain: "TTE".into() });
    assert_eq!(route("GET", "/events/v1/chains/TTE/events"), Route::Pull { chain: "TTE".into() });
    assert_eq!(route("DELETE", "/events/v1/chains/TTE/events"), Route::MethodNotAllowed { allow: "GET, POST" });
    assert_eq!(route("GET", "/admin/v1/chains"), Route::AdminChains);
    assert_eq!(route("POST", "/admin/v1/chains"), Route::MethodNotAllowed { allow: "GET" });
    assert_eq!(route("GET", "/admin/v1/chains/TTE"), Route::AdminChain { chain: "TTE".into() });
    assert_eq!(route("POST", "/admin/v1/chains/TTE/restart"), Route::AdminRestart { chain: "TTE".into() });
    assert_eq!(route("GET", "/admin/v1/chains/TTE/restart"), Route::MethodNotAllowed { allow: "POST" });
    assert_eq!(route("GET", "/subscriptions"), Route::Subscriptions);
    assert_eq!(route("POST", "/healthz"), Route::MethodNotAllowed { allow: "GET" });
    assert_eq!(route("GET", "/nope"), Route::NotFound);
    assert_eq!(route("GET", "/events/v1/chains//events"), Route::NotFound);
}

#[test]
fn request_ids_are_echoed_only_when_sane() {
    assert_eq!(sane_request_id(Some("abc-123")), Some("abc-123"));
    assert_eq!(sane_request_id(Some("has space")), None);
    assert_eq!(sane_request_id(Some(&"x".repeat(129))), None);
    assert_eq!(sane_request_id(Some("")), None);
    assert_eq!(sane_request_id(None), None);
}

#[test]
fn pages_and_their_files_are_routes_of_their_own() {
    use pms_events::pages::{headers, Page, Served};
    assert_eq!(route("GET", "/playground"), Route::Static(Served::Page(Page::Playground)));
    assert_eq!(route("HEAD", "/dashboard"), Route::Static(Served::Page(Page::Dashboard)));
    assert_eq!(route("POST", "/playground"), Route::MethodNotAllowed { allow: "GET" });
    assert_eq!(route("GET", "/assets/playground-5XQ2.js"), Route::Static(Served::Asset));
    // The built files are only reachable by their public paths, and only plain names.
    assert_eq!(route("GET", "/playground.html"), Route::NotFound);
    assert_eq!(route("GET", "/assets/.hidden"), Route::NotFound);
    assert_eq!(route("GET", "/assets/a%2F..%2Fsecret"), Route::NotFound);
    assert_eq!(route("GET", "/assets/"), Route::NotFound);
    let page = headers(Served::Page(Page::Playground));
    let csp = page.iter().find(|(name, _)| *name == "Content-Security-Policy").expect("csp").1;
    assert!(csp.contains("script-src 'self';") && csp.contains("connect-src 'self';"), "{csp}");
    assert!(!csp.contains("script-src 'self' 'unsafe"), "no inline or eval script: {csp}");
    assert!(page.contains(&("Cache-Control", "no-cache")));
    assert!(headers(Served::Asset).contains(&("Cache-Control", "public, max-age=31536000, immutable")));
}
