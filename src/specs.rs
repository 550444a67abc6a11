//! The API descriptions the Worker serves: `schema/openapi.yaml` and `schema/asyncapi.yaml`,
//! converted to JSON by `build.rs` at compile time, so what is served is the reviewed file.

/// `OpenAPI` 3.1: every HTTP route and status (`GET /openapi.json`).
pub const OPENAPI_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/openapi.json"));

/// `AsyncAPI` 3.0: the graphql-transport-ws stream on `/subscriptions` (`GET /asyncapi.json`).
pub const ASYNCAPI_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/asyncapi.json"));

/// The description a route serves, if it is one of them.
pub fn served_at(route: &crate::routes::Route) -> Option<&'static str> {
    use crate::routes::Route;
    match route {
        Route::OpenApi => Some(OPENAPI_JSON),
        Route::AsyncApi => Some(ASYNCAPI_JSON),
        _ => None,
    }
}
