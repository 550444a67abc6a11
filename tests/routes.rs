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
    assert_eq!(route("GET", "/events/v1/chains/TTE/state"), Route::State { chain: "TTE".into() });
    assert_eq!(route("POST", "/events/v1/chains/TTE/state"), Route::MethodNotAllowed { allow: "GET" });
    assert_eq!(route("DELETE", "/events/v1/chains/TTE/events"), Route::MethodNotAllowed { allow: "GET, POST" });
    assert_eq!(route("GET", "/admin/v1/chains"), Route::AdminChains);
    assert_eq!(route("POST", "/admin/v1/chains"), Route::MethodNotAllowed { allow: "GET" });
    assert_eq!(route("GET", "/admin/v1/chains/TTE"), Route::AdminChain { chain: "TTE".into() });
    assert_eq!(route("POST", "/admin/v1/chains/TTE/restart"), Route::AdminRestart { chain: "TTE".into() });
    assert_eq!(route("GET", "/admin/v1/chains/TTE/restart"), Route::MethodNotAllowed { allow: "POST" });
    assert_eq!(route("GET", "/admin/v1/chains/TTE/consumers"), Route::AdminConsumers { chain: "TTE".into() });
    assert_eq!(route("POST", "/admin/v1/chains/TTE/consumers"), Route::MethodNotAllowed { allow: "GET" });
    assert_eq!(route("GET", "/admin/v1/metrics"), Route::AdminMetrics);
    assert_eq!(route("POST", "/admin/v1/metrics"), Route::MethodNotAllowed { allow: "GET" });
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

/// Every link `getHelp` gives points at a document the service serves, at a heading it has:
/// a guide's heading renamed breaks this test, not a vendor's link.
#[test]
fn every_help_link_points_at_a_served_heading() {
    use pms_events::docs::{self, help};
    for link in
        [help::OVERVIEW, help::CONFIGURATION, help::CONNECTING, help::ERRORS, help::EVENT_PAYLOAD, help::REPLAYING]
    {
        let (path, anchor) = link.split_once('#').unwrap();
        let doc = docs::at(path).unwrap_or_else(|| panic!("{path} is not served"));
        assert_eq!(route("GET", path), Route::Docs, "{path}");
        let anchors: Vec<String> = doc
            .markdown
            .lines()
            .filter_map(|l| l.strip_prefix("## ").or_else(|| l.strip_prefix("### ")))
            .map(|heading| {
                heading
                    .to_lowercase()
                    .chars()
                    .filter_map(|c| match c {
                        ' ' => Some('-'),
                        c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                        _ => None,
                    })
                    .collect()
            })
            .collect();
        assert!(anchors.iter().any(|a| a == anchor), "{link}: no heading for #{anchor} in {anchors:?}");
    }
    assert_eq!(route("GET", "/docs/nothing.md"), Route::NotFound);
    assert_eq!(route("GET", "/docs/../README.md"), Route::NotFound);
}
