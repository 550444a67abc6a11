//! The served API descriptions agree with the route table: every documented path and
//! method is routed, a wrong method's `Allow` lists exactly the documented methods, and the
//! stream's documented error codes and close codes are the ones the code has.

use pms_events::routes::{route, Route};
use pms_events::specs::{served_at, ASYNCAPI_JSON, OPENAPI_JSON};
use pms_events::stream::protocol::close;
use serde_json::Value;

fn openapi() -> Value {
    serde_json::from_str(OPENAPI_JSON).expect("openapi.json is JSON")
}

/// A documented path with its parameters filled in.
fn concrete(path: &str) -> String {
    path.replace("{chainCode}", "TTE")
        .replace("{webhookId}", "wh-1")
        .replace("{file}", "playground-1a2b.js")
        .replace("{document}", "protocol.md")
}

#[test]
fn every_documented_operation_is_routed_and_allow_lists_the_documented_methods() {
    let spec = openapi();
    assert_eq!(spec["openapi"], "3.1.0");
    let paths = spec["paths"].as_object().expect("paths");
    assert!(paths.len() >= 10, "{} paths", paths.len());
    for (path, item) in paths {
        let mut methods: Vec<String> = ["get", "post", "put", "delete", "patch"]
            .into_iter()
            .filter(|m| item.get(*m).is_some())
            .map(str::to_uppercase)
            .collect();
        assert!(!methods.is_empty(), "{path} has no operation");
        for method in &methods {
            let routed = route(method, &concrete(path));
            assert!(
                !matches!(routed, Route::NotFound | Route::MethodNotAllowed { .. }),
                "{method} {path} is documented but routed to {routed:?}"
            );
            let responses = item[method.to_lowercase()]["responses"].as_object().expect("responses");
            assert!(responses.contains_key("405"), "{method} {path} does not document 405");
        }
        methods.sort();
        match route("DELETE", &concrete(path)) {
            Route::MethodNotAllowed { allow } => {
                let mut allowed: Vec<&str> = allow.split(", ").collect();
                allowed.sort();
                assert_eq!(allowed, methods, "Allow of {path}");
            }
            other => panic!("DELETE {path} routed to {other:?}"),
        }
    }
}

#[test]
fn the_specs_are_served_at_their_documented_paths() {
    assert_eq!(served_at(&route("GET", "/openapi.json")), Some(OPENAPI_JSON));
    assert_eq!(served_at(&route("GET", "/asyncapi.json")), Some(ASYNCAPI_JSON));
    assert_eq!(served_at(&route("GET", "/healthz")), None);
}

#[test]
fn the_stream_description_lists_the_codes_the_code_uses() {
    let spec: Value = serde_json::from_str(ASYNCAPI_JSON).expect("asyncapi.json is JSON");
    assert_eq!(spec["asyncapi"], "3.0.0");
    let documented: Vec<u64> = spec["channels"]["subscriptions"]["x-close-codes"]
        .as_array()
        .expect("x-close-codes")
        .iter()
        .map(|c| c["code"].as_u64().expect("code"))
        .collect();
    for code in [
        close::NORMAL,
        close::TOO_BIG,
        close::INTERNAL,
        close::BAD_REQUEST,
        close::UNAUTHORIZED,
        close::FORBIDDEN,
        close::BAD_SUBPROTOCOL,
        close::INIT_TIMEOUT,
        close::DUPLICATE_ID,
        close::TOO_MANY_INITS,
        close::TOO_SLOW,
    ] {
        assert!(documented.contains(&u64::from(code)), "close code {code} is not in asyncapi.yaml");
    }
    let codes = spec["components"]["schemas"]["GraphQLError"]["properties"]["extensions"]["properties"]["code"]["enum"]
        .as_array()
        .expect("error codes");
    for code in [
        pms_events::graphql::codes::FORBIDDEN,
        pms_events::graphql::codes::BAD_USER_INPUT,
        pms_events::graphql::codes::OFFSET_OUT_OF_RANGE,
        pms_events::graphql::codes::QUERY_TOO_COMPLEX,
        pms_events::graphql::codes::FRAME_TOO_LARGE,
        pms_events::graphql::codes::INTERNAL_SERVER_ERROR,
        pms_events::graphql::codes::TOO_MANY_SUBSCRIPTIONS,
    ] {
        assert!(codes.iter().any(|c| c == code), "error code {code} is not in asyncapi.yaml");
    }
}
