//! A GraphQL error as the service sends it: message, locations and `extensions.code`, made
//! from apollo-compiler's diagnostics and request errors.

use apollo_compiler::parser::{SourceMap, SourceSpan};
use apollo_compiler::request::RequestError;
use apollo_compiler::response::GraphQLError as ApolloError;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A 1-based line and column in the operation's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

/// A GraphQL error as sent in an `error` message payload or a result's `errors`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GraphQLError {
    pub message: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub locations: Vec<Location>,
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub extensions: serde_json::Map<String, Value>,
}

impl GraphQLError {
    /// An error without location or extensions.
    pub fn new(message: impl Into<String>) -> Self {
        GraphQLError { message: message.into(), locations: Vec::new(), extensions: serde_json::Map::new() }
    }

    /// An error with `extensions.code`, one of [`codes`].
    pub fn coded(message: impl Into<String>, code: &str) -> Self {
        GraphQLError::new(message).with_code(code)
    }

    /// Sets `extensions.code`.
    pub fn with_code(mut self, code: &str) -> Self {
        self.extensions.insert("code".to_owned(), Value::String(code.to_owned()));
        self
    }

    /// Adds a location.
    pub fn at(mut self, location: Option<Location>) -> Self {
        self.locations.extend(location);
        self
    }

    /// `extensions.code`, if any.
    pub fn code(&self) -> Option<&str> {
        self.extensions.get("code").and_then(Value::as_str)
    }

    pub(super) fn from_apollo(error: ApolloError, default_code: &str) -> Self {
        let mut extensions = match serde_json::to_value(&error.extensions) {
            Ok(Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        };
        extensions.entry("code").or_insert_with(|| Value::String(default_code.to_owned()));
        GraphQLError {
            message: error.message,
            locations: error.locations.iter().map(|lc| Location { line: lc.line, column: lc.column }).collect(),
            extensions,
        }
    }

    pub(super) fn from_request_error(error: &RequestError, sources: &SourceMap, code: &str) -> Self {
        GraphQLError::from_apollo(error.to_graphql_error(sources), code)
    }
}

pub(super) fn location_of(span: Option<SourceSpan>, sources: &SourceMap) -> Option<Location> {
    span.and_then(|span| span.line_column(sources)).map(|lc| Location { line: lc.line, column: lc.column })
}

pub(super) fn diagnostics(list: &apollo_compiler::validation::DiagnosticList, code: &str) -> Vec<GraphQLError> {
    let mut errors: Vec<GraphQLError> = list.iter().map(|d| GraphQLError::from_apollo(d.to_json(), code)).collect();
    // The parser can report one mistake twice (e.g. a missing `}` at the end for two levels).
    errors.dedup();
    if errors.is_empty() {
        vec![GraphQLError::coded("invalid GraphQL document", code)]
    } else {
        errors
    }
}
