//! The `extensions.code` of every GraphQL error the service sends (docs/protocol.md, Errors): one
//! constant each, so the specs, the tests and the code name the same strings.

/// The document does not parse.
pub const GRAPHQL_PARSE_FAILED: &str = "GRAPHQL_PARSE_FAILED";
/// The document is not valid against the schema, or is not an operation the service runs.
pub const GRAPHQL_VALIDATION_FAILED: &str = "GRAPHQL_VALIDATION_FAILED";
/// A `subscribe` payload that is not one (not an object, a `query` that is not a string).
pub const BAD_REQUEST: &str = "BAD_REQUEST";
/// A variable or argument value the operation cannot use.
pub const BAD_USER_INPUT: &str = "BAD_USER_INPUT";
/// The token does not grant what the operation asks for.
pub const FORBIDDEN: &str = "FORBIDDEN";
/// An offset past the chain's head.
pub const OFFSET_OUT_OF_RANGE: &str = "OFFSET_OUT_OF_RANGE";
/// A selection over the field or depth limits.
pub const QUERY_TOO_COMPLEX: &str = "QUERY_TOO_COMPLEX";
/// A rendered event would exceed the frame limit.
pub const FRAME_TOO_LARGE: &str = "FRAME_TOO_LARGE";
/// A `subscribe` over the connection's subscription limit.
pub const TOO_MANY_SUBSCRIPTIONS: &str = "TOO_MANY_SUBSCRIPTIONS";
/// The service failed; the operation may be retried.
pub const INTERNAL_SERVER_ERROR: &str = "INTERNAL_SERVER_ERROR";
