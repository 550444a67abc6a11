//! GraphQL over the streaming socket, on top of `apollo-compiler`.
//!
//! apollo-compiler parses and validates every document against
//! `schema/pms-events.graphql`, selects the operation (`operationName`), coerces variables
//! (defaults applied) and field arguments, and executes queries (`getHelp`, `connection`,
//! `__typename`, `__schema`, `__type`) with the resolvers below.
//!
//! A subscription is prepared once: its `newEvent` arguments are coerced by apollo's executor
//! and its selection set is compiled into a [`ProjectionPlan`] (fragments inlined, aliases,
//! field merging and `@skip`/`@include` resolved with the coerced variables), so each event
//! is projected by walking its JSON, with no GraphQL work per event.
//!
//! Nothing here panics on any input: every failure is a [`GraphQLError`].

pub mod codes;
mod error;
mod projection;
mod query;

pub use error::{GraphQLError, Location};
pub use projection::{ProjectionPlan, MAX_SELECTED_FIELDS};
pub use query::{PreparedQuery, QueryContext};

use std::sync::Arc;

use apollo_compiler::collections::HashMap as ApolloHashMap;
use apollo_compiler::executable::{ExecutableDocument, Operation as ExeOperation};
use apollo_compiler::parser::{Parser, SourceSpan};
use apollo_compiler::request::coerce_variable_values;
use apollo_compiler::resolvers::{Execution, FieldError, ObjectValue, ResolveInfo, ResolvedValue};
use apollo_compiler::response::{serde_json_bytes, JsonMap};
use apollo_compiler::schema::Implementers;
use apollo_compiler::validation::Valid;
use apollo_compiler::{Name, Node, Schema};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use error::{diagnostics, location_of};
use projection::{Compiler, PlanField};

/// The schema served, the single source of truth.
pub const SCHEMA_SDL: &str = include_str!("../../schema/pms-events.graphql");

/// Parser limits: a document nesting deeper, or longer, is refused before validation (the
/// standard introspection query is well within both: ~400 tokens, 12 levels).
const PARSER_RECURSION_LIMIT: usize = 128;
const PARSER_TOKEN_LIMIT: usize = 10_000;
const SOURCE_NAME: &str = "operation.graphql";

// ---------------------------------------------------------------------------------------------
// Wire types
// ---------------------------------------------------------------------------------------------

/// The payload of a graphql-transport-ws `subscribe` message.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscribePayload {
    pub query: String,
    #[serde(default)]
    pub operation_name: Option<String>,
    #[serde(default)]
    pub variables: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    pub extensions: Option<serde_json::Map<String, Value>>,
}

/// The `input` argument of `newEvent`, coerced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewEventInput {
    pub chain_code: String,
    pub offset: Option<String>,
    pub offset_type: Option<String>,
    /// `null`/absent is `false`.
    pub delta: bool,
    pub hotel_code: Option<String>,
    pub event_names: Option<Vec<String>>,
    pub module_names: Option<Vec<String>>,
    /// `fromTime` (or `extensions.fromTime`) as ms since the epoch.
    pub from_time: Option<u64>,
}

/// `NewEventInput` as GraphQL coerced it (nullable `delta`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CoercedInput {
    chain_code: String,
    offset: Option<String>,
    offset_type: Option<String>,
    delta: Option<bool>,
    hotel_code: Option<String>,
    event_names: Option<Vec<String>>,
    module_names: Option<Vec<String>>,
    from_time: Option<String>,
}

/// The `input` argument of `currentState`, coerced.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateInput {
    pub chain_code: String,
    pub hotel_code: Option<String>,
    pub module_names: Option<Vec<String>>,
    pub after: Option<String>,
    pub first: Option<i64>,
}

// ---------------------------------------------------------------------------------------------
// Api
// ---------------------------------------------------------------------------------------------

/// Parsed + validated schema, built once per isolate (lazily, inside a handler: building it
/// seeds hashers, which Workers refuse at global scope).
pub struct Api {
    schema: Arc<Valid<Schema>>,
    implementers: Arc<ApolloHashMap<Name, Implementers>>,
}

impl Default for Api {
    fn default() -> Self {
        Api::new()
    }
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api").finish_non_exhaustive()
    }
}

/// A prepared operation: a query to execute now, or a subscription to start.
#[derive(Debug)]
pub enum Operation {
    Query(PreparedQuery),
    Subscription(PreparedSubscription),
}

impl Api {
    pub fn new() -> Api {
        // The schema is part of the build and a test proves it valid; should it ever not be,
        // serve what parsed rather than panic.
        let schema = match Schema::parse_and_validate(SCHEMA_SDL, "pms-events.graphql") {
            Ok(schema) => schema,
            Err(with_errors) => Valid::assume_valid(with_errors.partial),
        };
        let implementers = schema.implementers_map();
        Api { schema: Arc::new(schema), implementers: Arc::new(implementers) }
    }

    /// Whether the embedded schema validates (always true for a released build).
    pub fn schema_is_valid() -> bool {
        Schema::parse_and_validate(SCHEMA_SDL, "pms-events.graphql").is_ok()
    }

    /// Parse + validate + coerce one `subscribe` payload of graphql-transport-ws.
    pub fn prepare(&self, payload: &SubscribePayload) -> Result<Operation, Vec<GraphQLError>> {
        let mut parser = Parser::new().recursion_limit(PARSER_RECURSION_LIMIT).token_limit(PARSER_TOKEN_LIMIT);
        let ast = parser
            .parse_ast(payload.query.as_str(), SOURCE_NAME)
            .map_err(|e| diagnostics(&e.errors, codes::GRAPHQL_PARSE_FAILED))?;
        let document = ast
            .to_executable_validate(&self.schema)
            .map_err(|e| diagnostics(&e.errors, codes::GRAPHQL_VALIDATION_FAILED))?;
        let sources = document.sources.clone();

        let operation = document
            .operations
            .get(payload.operation_name.as_deref())
            .map_err(|e| vec![GraphQLError::from_request_error(&e, &sources, "OPERATION_RESOLUTION_FAILURE")])?
            .clone();

        let raw_variables = to_json_map(payload.variables.as_ref());
        let variables = coerce_variable_values(&self.schema, &operation, &raw_variables)
            .map_err(|e| vec![GraphQLError::from_request_error(&e, &sources, codes::BAD_USER_INPUT)])?;

        // Expand the operation's selection once: bounds its size and depth, and gives the
        // root fields (with their merged selections) the subscription plan is made of.
        let root_type = operation.object_type().clone();
        let mut compiler = Compiler::new(&self.schema, &document, &variables);
        let root_plan = compiler
            .compile(root_type.as_str(), &[&operation.selection_set], 0)
            .map_err(|e| vec![e.into_error(location_of(operation.location(), &sources))])?;

        if operation.is_subscription() {
            self.prepare_subscription(payload, &document, &operation, &variables, root_plan)
                .map(Operation::Subscription)
        } else if operation.is_query() {
            apollo_compiler::introspection::check_max_depth(&document, &operation)
                .map_err(|e| vec![GraphQLError::from_request_error(&e, &sources, codes::GRAPHQL_VALIDATION_FAILED)])?;
            let selects_connection =
                root_plan.iter().any(|f| matches!(f, PlanField::Object(k, _) if k.src == "connection"));
            let state_fields =
                root_plan.iter().filter(|f| matches!(f, PlanField::Object(k, _) if k.src == "currentState"));
            let state_input = match state_fields.count() {
                0 => None,
                1 => Some(self.state_input(&document, &operation, &variables)?),
                _ => {
                    return Err(vec![GraphQLError::coded(
                        "an operation may select currentState once (one page per request)",
                        codes::GRAPHQL_VALIDATION_FAILED,
                    )
                    .at(location_of(operation.location(), &sources))])
                }
            };
            Ok(Operation::Query(PreparedQuery {
                schema: self.schema.clone(),
                implementers: self.implementers.clone(),
                document,
                operation,
                variables,
                selects_connection,
                state_input,
            }))
        } else {
            // Validation refuses mutations (the schema has none); kept for completeness.
            Err(vec![GraphQLError::coded("mutations are not supported", codes::GRAPHQL_VALIDATION_FAILED)
                .at(location_of(operation.location(), &sources))])
        }
    }

    fn prepare_subscription(
        &self,
        payload: &SubscribePayload,
        document: &Valid<ExecutableDocument>,
        operation: &Node<ExeOperation>,
        variables: &Valid<JsonMap>,
        root_plan: Vec<PlanField>,
    ) -> Result<PreparedSubscription, Vec<GraphQLError>> {
        let sources = &document.sources;
        let op_location = location_of(operation.location(), sources);
        let mut root_plan = root_plan.into_iter();
        let (response_key, plan) = match (root_plan.next(), root_plan.next()) {
            (Some(PlanField::Object(k, sub)), None) if k.src == "newEvent" => (k.key, sub),
            _ => {
                return Err(vec![GraphQLError::coded(
                    "a subscription must select exactly one root field, `newEvent`",
                    codes::GRAPHQL_VALIDATION_FAILED,
                )
                .at(op_location)])
            }
        };

        let Some((arguments, field_location)) =
            self.capture_arguments(document, operation, variables, "Subscription", "newEvent")?
        else {
            return Err(vec![GraphQLError::coded(
                "a subscription must select `newEvent`",
                codes::GRAPHQL_VALIDATION_FAILED,
            )
            .at(op_location)]);
        };
        let location = location_of(field_location, sources).or(op_location);
        let bad_input = |message: String| vec![GraphQLError::coded(message, codes::BAD_USER_INPUT).at(location)];

        let input_json = arguments.get("input").map(serde_json::to_value).and_then(Result::ok).unwrap_or(Value::Null);
        let coerced: CoercedInput =
            serde_json::from_value(input_json).map_err(|e| bad_input(format!("invalid `input` of newEvent: {e}")))?;

        if let Some(offset) = &coerced.offset {
            if !crate::log::is_decimal(offset) {
                return Err(bad_input(format!("`input.offset` must be decimal digits, got {offset:?}")));
            }
        }
        let from_offset = match payload.extensions.as_ref().and_then(|e| e.get("fromOffset")) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if crate::log::is_decimal(s) => Some(s.clone()),
            Some(Value::Number(n)) if n.as_u64().is_some() => Some(n.to_string()),
            Some(other) => {
                return Err(bad_input(format!(
                    "`extensions.fromOffset` must be a non-negative integer or a string of decimal digits, got {other}"
                )))
            }
        };

        let from_time = match (&coerced.from_time, payload.extensions.as_ref().and_then(|e| e.get("fromTime"))) {
            (Some(t), _) | (None, Some(Value::String(t))) => {
                Some(crate::log::read::parse_time("fromTime", t).map_err(bad_input)?)
            }
            (None, None | Some(Value::Null)) => None,
            (None, Some(other)) => {
                return Err(bad_input(format!(
                    "`extensions.fromTime` must be an RFC 3339 date-time string, got {other}"
                )))
            }
        };
        let offset = coerced.offset.or(from_offset);
        if from_time.is_some() && (offset.is_some() || coerced.offset_type.is_some()) {
            return Err(bad_input(
                "give fromTime or an offset (offset, offsetType, extensions.fromOffset), not both".into(),
            ));
        }
        let input = NewEventInput {
            chain_code: coerced.chain_code,
            offset,
            offset_type: coerced.offset_type,
            delta: coerced.delta.unwrap_or(false),
            hotel_code: coerced.hotel_code,
            event_names: coerced.event_names,
            module_names: coerced.module_names,
            from_time,
        };
        Ok(PreparedSubscription { response_key, location, input, plan: ProjectionPlan::new(plan) })
    }
}

impl Api {
    /// The coerced arguments of root field `field` of `root_type`, by apollo's executor
    /// (CoerceArgumentValues): the root resolver captures them and skips every field.
    fn capture_arguments(
        &self,
        document: &Valid<ExecutableDocument>,
        operation: &Node<ExeOperation>,
        variables: &Valid<JsonMap>,
        root_type: &'static str,
        field: &'static str,
    ) -> Result<Option<(JsonMap, Option<SourceSpan>)>, Vec<GraphQLError>> {
        let capture = ArgumentCapture { root_type, field, captured: std::cell::RefCell::default() };
        let response = Execution::new(&self.schema, document)
            .implementers_map(&self.implementers)
            .operation(operation)
            .coerced_variable_values(variables)
            .execute_sync(&capture)
            .map_err(|e| vec![GraphQLError::from_request_error(&e, &document.sources, codes::BAD_USER_INPUT)])?;
        if !response.errors.is_empty() {
            return Err(response
                .errors
                .into_iter()
                .map(|e| GraphQLError::from_apollo(e, codes::BAD_USER_INPUT))
                .collect());
        }
        Ok(capture.captured.into_inner())
    }

    /// `currentState`'s `input`, coerced.
    fn state_input(
        &self,
        document: &Valid<ExecutableDocument>,
        operation: &Node<ExeOperation>,
        variables: &Valid<JsonMap>,
    ) -> Result<StateInput, Vec<GraphQLError>> {
        let captured = self.capture_arguments(document, operation, variables, "Query", "currentState")?;
        let (arguments, location) = captured.unwrap_or_default();
        let location = location_of(location, &document.sources);
        let input = arguments.get("input").map(serde_json::to_value).and_then(Result::ok).unwrap_or(Value::Null);
        serde_json::from_value(input).map_err(|e| {
            vec![GraphQLError::coded(format!("invalid `input` of currentState: {e}"), codes::BAD_USER_INPUT)
                .at(location)]
        })
    }
}

fn to_json_map(map: Option<&serde_json::Map<String, Value>>) -> JsonMap {
    match map {
        None => JsonMap::new(),
        Some(map) => match serde_json_bytes::Value::from(Value::Object(map.clone())) {
            serde_json_bytes::Value::Object(map) => map,
            _ => JsonMap::new(),
        },
    }
}

/// A root value that records one field's coerced arguments instead of resolving anything.
struct ArgumentCapture {
    root_type: &'static str,
    field: &'static str,
    captured: std::cell::RefCell<Option<(JsonMap, Option<SourceSpan>)>>,
}

impl ObjectValue for ArgumentCapture {
    fn type_name(&self) -> &'static str {
        self.root_type
    }

    fn resolve_field<'a>(&'a self, info: &'a ResolveInfo<'a>) -> Result<ResolvedValue<'a>, FieldError> {
        if info.field_name() == self.field {
            let location = info.field_selections().first().and_then(|f| f.name.location());
            *self.captured.borrow_mut() = Some((info.arguments().clone(), location));
        }
        Ok(ResolvedValue::SkipForPartialExecution)
    }
}

/// A validated `newEvent` subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedSubscription {
    /// The response key of the root field (the alias, or "newEvent").
    pub response_key: String,
    /// Where the root field is in the document (for errors about the selection).
    pub location: Option<Location>,
    pub input: NewEventInput,
    pub plan: ProjectionPlan,
}
