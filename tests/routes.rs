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
