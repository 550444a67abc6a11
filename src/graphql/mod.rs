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

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use apollo_compiler::ast::Value as AstValue;
use apollo_compiler::collections::HashMap as ApolloHashMap;
use apollo_compiler::executable::{
    ExecutableDocument, Field as ExeField, Operation as ExeOperation, Selection, SelectionSet,
};
use apollo_compiler::parser::{Parser, SourceMap, SourceSpan};
use apollo_compiler::request::{coerce_variable_values, RequestError};
use apollo_compiler::resolvers::{Execution, FieldError, ObjectValue, ResolveInfo, ResolvedValue};
use apollo_compiler::response::{serde_json_bytes, ExecutionResponse, GraphQLError as ApolloError, JsonMap};
use apollo_compiler::schema::{ExtendedType, Implementers};
use apollo_compiler::validation::Valid;
use apollo_compiler::{Name, Node, Schema};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The schema served, the single source of truth.
pub const SCHEMA_SDL: &str = include_str!("../../schema/pms-events.graphql");

/// Parser limits: a document nesting deeper, or longer, is refused before validation (the
/// standard introspection query is well within both: ~400 tokens, 12 levels).
const PARSER_RECURSION_LIMIT: usize = 128;
const PARSER_TOKEN_LIMIT: usize = 10_000;
/// At most this many fields in an operation once fragments are expanded and fields merged
/// (the full OHIP selection has 19, the standard introspection query about 220): it bounds the
/// per-event work of a subscription and the size of a query answer.
pub const MAX_SELECTED_FIELDS: usize = 1_000;
/// At most this many field selections visited while expanding (guards the compile itself).
const MAX_COLLECT_WORK: usize = 50_000;
/// At most this nesting of fields and fragments once expanded.
const MAX_SELECTION_DEPTH: usize = 64;

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

    fn from_apollo(error: ApolloError, default_code: &str) -> Self {
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

    fn from_request_error(error: &RequestError, sources: &SourceMap, code: &str) -> Self {
        GraphQLError::from_apollo(error.to_graphql_error(sources), code)
    }
}

fn location_of(span: Option<SourceSpan>, sources: &SourceMap) -> Option<Location> {
    span.and_then(|span| span.line_column(sources)).map(|lc| Location { line: lc.line, column: lc.column })
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
        let mut compiler =
            Compiler { schema: &self.schema, document: &document, variables: &variables, fields: 0, work: 0 };
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
            Ok(Operation::Query(PreparedQuery {
                schema: self.schema.clone(),
                implementers: self.implementers.clone(),
                document,
                operation,
                variables,
                selects_connection,
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

        // Field arguments coerced by apollo's executor (CoerceArgumentValues): the root
        // resolver captures them and skips the field.
        let capture = ArgumentCapture::default();
        let response = Execution::new(&self.schema, document)
            .implementers_map(&self.implementers)
            .operation(operation)
            .coerced_variable_values(variables)
            .execute_sync(&capture)
            .map_err(|e| vec![GraphQLError::from_request_error(&e, sources, codes::BAD_USER_INPUT)])?;
        if !response.errors.is_empty() {
            return Err(response
                .errors
                .into_iter()
                .map(|e| GraphQLError::from_apollo(e, codes::BAD_USER_INPUT))
                .collect());
        }
        let Some((arguments, field_location)) = capture.captured.into_inner() else {
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

        let input = NewEventInput {
            chain_code: coerced.chain_code,
            offset: coerced.offset.or(from_offset),
            offset_type: coerced.offset_type,
            delta: coerced.delta.unwrap_or(false),
            hotel_code: coerced.hotel_code,
            event_names: coerced.event_names,
            module_names: coerced.module_names,
        };
        Ok(PreparedSubscription { response_key, location, input, plan: ProjectionPlan { fields: plan } })
    }
}

fn diagnostics(list: &apollo_compiler::validation::DiagnosticList, code: &str) -> Vec<GraphQLError> {
    let mut errors: Vec<GraphQLError> = list.iter().map(|d| GraphQLError::from_apollo(d.to_json(), code)).collect();
    // The parser can report one mistake twice (e.g. a missing `}` at the end for two levels).
    errors.dedup();
    if errors.is_empty() {
        vec![GraphQLError::coded("invalid GraphQL document", code)]
    } else {
        errors
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

/// The subscription root value: records `newEvent`'s coerced arguments instead of resolving.
#[derive(Default)]
struct ArgumentCapture {
    captured: std::cell::RefCell<Option<(JsonMap, Option<SourceSpan>)>>,
}

impl ObjectValue for ArgumentCapture {
    fn type_name(&self) -> &'static str {
        "Subscription"
    }

    fn resolve_field<'a>(&'a self, info: &'a ResolveInfo<'a>) -> Result<ResolvedValue<'a>, FieldError> {
        let location = info.field_selections().first().and_then(|f| f.name.location());
        *self.captured.borrow_mut() = Some((info.arguments().clone(), location));
        Ok(ResolvedValue::SkipForPartialExecution)
    }
}

// ---------------------------------------------------------------------------------------------
// Queries
// ---------------------------------------------------------------------------------------------

/// A validated query with its coerced variables, ready to execute.
pub struct PreparedQuery {
    schema: Arc<Valid<Schema>>,
    implementers: Arc<ApolloHashMap<Name, Implementers>>,
    document: Valid<ExecutableDocument>,
    operation: Node<ExeOperation>,
    variables: Valid<JsonMap>,
    selects_connection: bool,
}

impl std::fmt::Debug for PreparedQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedQuery")
            .field("operation_name", &self.operation.name)
            .field("selects_connection", &self.selects_connection)
            .finish_non_exhaustive()
    }
}

/// What a query's resolvers need from the connection.
#[derive(Debug, Clone)]
pub struct QueryContext {
    pub connection_id: String,
    /// Whether this app key already streams on another connection.
    pub connection_active: bool,
    /// The base URL of this service's documentation (README.md lives under it).
    pub help_base_url: String,
}

impl PreparedQuery {
    /// true if the query selects `connection` (the caller then has to look up whether the app
    /// key is active elsewhere).
    pub fn selects_connection(&self) -> bool {
        self.selects_connection
    }

    /// The operation's name, if any.
    pub fn operation_name(&self) -> Option<&str> {
        self.operation.name.as_ref().map(Name::as_str)
    }

    fn run(&self, ctx: &QueryContext) -> Result<ExecutionResponse, GraphQLError> {
        let root = StaticObject::query_root(ctx);
        Execution::new(&self.schema, &self.document)
            .implementers_map(&self.implementers)
            .operation(&self.operation)
            .coerced_variable_values(&self.variables)
            .enable_schema_introspection(true)
            .execute_sync(&root)
            .map_err(|e| GraphQLError::from_request_error(&e, &self.document.sources, codes::BAD_REQUEST))
    }

    /// The full GraphQL response `{"data": {...}}` (with "errors" if any). Object keys follow
    /// `serde_json::Map`'s order; use [`PreparedQuery::execute_json`] for the wire form.
    pub fn execute(&self, ctx: &QueryContext) -> Value {
        let text = self.execute_json(ctx);
        serde_json::from_str(&text).unwrap_or_else(|_| internal_error_response())
    }

    /// The full GraphQL response as JSON text, keys in selection order (as the spec asks).
    pub fn execute_json(&self, ctx: &QueryContext) -> String {
        let serialized = match self.run(ctx) {
            Ok(response) => serde_json::to_string(&response),
            Err(error) => serde_json::to_string(&serde_json::json!({
                "errors": [error]
            })),
        };
        serialized.unwrap_or_else(|_| internal_error_response().to_string())
    }
}

fn internal_error_response() -> Value {
    serde_json::json!({"errors": [{"message": "internal error", "extensions": {"code": codes::INTERNAL_SERVER_ERROR}}]})
}

/// A small object graph answered by the query resolvers.
#[derive(Clone)]
struct StaticObject {
    type_name: &'static str,
    fields: Vec<(&'static str, StaticValue)>,
}

#[derive(Clone)]
enum StaticValue {
    Str(String),
    Object(StaticObject),
}

impl StaticObject {
    fn query_root(ctx: &QueryContext) -> StaticObject {
        let base = ctx.help_base_url.trim_end_matches('/');
        let doc = |anchor: &str| StaticValue::Str(format!("{base}/README.md#{anchor}"));
        let help = StaticObject {
            type_name: "Help",
            fields: vec![
                ("overview", doc("overview")),
                ("configuration", doc("configuration")),
                (
                    "connection",
                    StaticValue::Object(StaticObject {
                        type_name: "ConnectionHelp",
                        fields: vec![("help", doc("connecting")), ("errors", doc("errors"))],
                    }),
                ),
                (
                    "events",
                    StaticValue::Object(StaticObject {
                        type_name: "EventHelp",
                        fields: vec![("payload", doc("event-payload")), ("replaying", doc("replaying"))],
                    }),
                ),
                ("slack", StaticValue::Str("#pms-events-support".to_owned())),
                ("email", StaticValue::Str("pms-events-support@example.com".to_owned())),
            ],
        };
        let status = if ctx.connection_active { "Active" } else { "Inactive" };
        let connection = StaticObject {
            type_name: "ConnectionStatus",
            fields: vec![
                ("id", StaticValue::Str(ctx.connection_id.clone())),
                ("status", StaticValue::Str(status.to_owned())),
            ],
        };
        StaticObject {
            type_name: "Query",
            fields: vec![("getHelp", StaticValue::Object(help)), ("connection", StaticValue::Object(connection))],
        }
    }
}

impl ObjectValue for StaticObject {
    fn type_name(&self) -> &str {
        self.type_name
    }

    fn resolve_field<'a>(&'a self, info: &'a ResolveInfo<'a>) -> Result<ResolvedValue<'a>, FieldError> {
        let name = info.field_name();
        match self.fields.iter().find(|(field, _)| *field == name) {
            Some((_, StaticValue::Str(s))) => Ok(ResolvedValue::leaf(s.as_str())),
            Some((_, StaticValue::Object(object))) => Ok(ResolvedValue::object(object.clone())),
            None => Err(self.unknown_field_error(info)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Subscriptions and the projection plan
// ---------------------------------------------------------------------------------------------

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

/// The validated selection set of the subscription's root field, compiled once.
///
/// Serialized compactly as a list of fields, each `{"<kind>": <name>}` or, for objects and
/// lists, `{"<kind>": [<name>, [<fields>]]}`, where `<name>` is the field's name, or
/// `[responseKey, name]` when aliased. Kinds: `s` String, `i` Int, `r` any other scalar (copied
/// as is), `t` `__typename` (name = the type name), `o` object, `l` list of objects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProjectionPlan {
    fields: Vec<PlanField>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum PlanField {
    /// `__typename` (the source is the type name).
    #[serde(rename = "t")]
    Typename(Keyed),
    /// A `String` (or `ID`) leaf.
    #[serde(rename = "s")]
    Str(Keyed),
    /// An `Int` leaf.
    #[serde(rename = "i")]
    Int(Keyed),
    /// Any other leaf, copied as is.
    #[serde(rename = "r")]
    Raw(Keyed),
    /// An object and its selection.
    #[serde(rename = "o")]
    Object(Keyed, Vec<PlanField>),
    /// A list of objects and their selection.
    #[serde(rename = "l")]
    List(Keyed, Vec<PlanField>),
}

/// A response key and the source it is read from (the event's key, or the type name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "KeyedRepr", into = "KeyedRepr")]
struct Keyed {
    key: String,
    src: String,
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum KeyedRepr {
    Same(String),
    Aliased(String, String),
}

impl From<KeyedRepr> for Keyed {
    fn from(repr: KeyedRepr) -> Self {
        match repr {
            KeyedRepr::Same(name) => Keyed { key: name.clone(), src: name },
            KeyedRepr::Aliased(key, src) => Keyed { key, src },
        }
    }
}

impl From<Keyed> for KeyedRepr {
    fn from(keyed: Keyed) -> Self {
        if keyed.key == keyed.src {
            KeyedRepr::Same(keyed.src)
        } else {
            KeyedRepr::Aliased(keyed.key, keyed.src)
        }
    }
}

impl Keyed {
    fn new(key: String, src: String) -> Self {
        Keyed { key, src }
    }
}

/// The one list that `delta` filters: `EventHeader.detail`.
const DELTA_LIST: &str = "detail";

impl ProjectionPlan {
    /// The response keys of the top level, in order (for diagnostics and tests).
    pub fn response_keys(&self) -> Vec<&str> {
        self.fields.iter().map(PlanField::key).collect()
    }

    /// Projects an `EventHeader` JSON value through the selection, written to `out` as JSON
    /// text with keys in selection order: what a `next` frame carries. Missing nullable
    /// fields project to null (so do missing non-null ones: published events always carry
    /// them). With `delta`, `detail` keeps only the entries whose `newValue` differs from
    /// `oldValue`.
    pub fn project_to_string(&self, event: &Value, delta: bool, out: &mut String) {
        write_object(&self.fields, event, delta, out);
    }

    /// The same projection as a JSON value (for callers that inspect it).
    pub fn project(&self, event: &Value, delta: bool) -> Value {
        let mut text = String::new();
        self.project_to_string(event, delta, &mut text);
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// The most times one field of the event appears in the output of one event, with the
    /// path of that field: aliases of a field, and of the objects and lists above it, each
    /// repeat it. The output of an event is at most this many times the event, so bounding
    /// it bounds what a subscription can make of one event.
    pub fn max_field_copies(&self) -> (u64, String) {
        fn walk(fields: &[PlanField], path: &str, counts: &mut BTreeMap<String, u64>) {
            for field in fields {
                let k = field.keyed();
                let here = if path.is_empty() { k.src.clone() } else { format!("{path}.{}", k.src) };
                match field {
                    PlanField::Object(_, sub) | PlanField::List(_, sub) => walk(sub, &here, counts),
                    _ => *counts.entry(here).or_insert(0) += 1,
                }
            }
        }
        let mut counts = BTreeMap::new();
        walk(&self.fields, "", &mut counts);
        counts.into_iter().map(|(path, n)| (n, path)).max_by_key(|(n, _)| *n).unwrap_or_default()
    }
}

impl PlanField {
    fn keyed(&self) -> &Keyed {
        match self {
            PlanField::Typename(k)
            | PlanField::Str(k)
            | PlanField::Int(k)
            | PlanField::Raw(k)
            | PlanField::Object(k, _)
            | PlanField::List(k, _) => k,
        }
    }

    fn key(&self) -> &str {
        &self.keyed().key
    }
}

fn keep_detail_entry(entry: &Value) -> bool {
    let new = entry.get("newValue").unwrap_or(&Value::Null);
    let old = entry.get("oldValue").unwrap_or(&Value::Null);
    new != old
}

/// GraphQL `String` result coercion: strings as they are, numbers and booleans as text.
fn coerce_string(value: Option<&Value>) -> Option<std::borrow::Cow<'_, str>> {
    match value? {
        Value::String(s) => Some(std::borrow::Cow::Borrowed(s.as_str())),
        Value::Number(n) => Some(std::borrow::Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(std::borrow::Cow::Borrowed(if *b { "true" } else { "false" })),
        _ => None,
    }
}

/// GraphQL `Int` result coercion: 32-bit integers (also from integral floats or numeric text).
#[allow(clippy::cast_possible_truncation, reason = "a whole number checked to be within i32's range")]
fn coerce_int(value: Option<&Value>) -> Option<i32> {
    match value? {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i32::try_from(i).ok()
            } else {
                let f = n.as_f64()?;
                (f.fract() == 0.0 && f >= f64::from(i32::MIN) && f <= f64::from(i32::MAX)).then_some(f as i32)
            }
        }
        Value::String(s) => s.trim().parse::<i32>().ok(),
        _ => None,
    }
}

fn write_object(fields: &[PlanField], source: &Value, delta: bool, out: &mut String) {
    let Value::Object(src) = source else {
        out.push_str("null");
        return;
    };
    out.push('{');
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_json_str(out, field.key());
        out.push(':');
        match field {
            PlanField::Typename(k) => write_json_str(out, &k.src),
            PlanField::Str(k) => match coerce_string(src.get(&k.src)) {
                Some(s) => write_json_str(out, &s),
                None => out.push_str("null"),
            },
            PlanField::Int(k) => match coerce_int(src.get(&k.src)) {
                Some(n) => {
                    let _ = write!(out, "{n}");
                }
                None => out.push_str("null"),
            },
            PlanField::Raw(k) => match src.get(&k.src) {
                Some(v) => out.push_str(&v.to_string()),
                None => out.push_str("null"),
            },
            PlanField::Object(k, sub) => match src.get(&k.src) {
                Some(v) => write_object(sub, v, false, out),
                None => out.push_str("null"),
            },
            PlanField::List(k, sub) => match src.get(&k.src) {
                Some(Value::Array(items)) => {
                    out.push('[');
                    let filter = delta && k.src == DELTA_LIST;
                    let mut first = true;
                    for item in items {
                        if filter && !keep_detail_entry(item) {
                            continue;
                        }
                        if !first {
                            out.push(',');
                        }
                        first = false;
                        write_object(sub, item, false, out);
                    }
                    out.push(']');
                }
                _ => out.push_str("null"),
            },
        }
    }
    out.push('}');
}

/// Writes `s` as a JSON string literal.
pub(crate) fn write_json_str(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        // `i` is at an ASCII byte, so both slices fall on character boundaries.
        out.push_str(s.get(start..i).unwrap_or_default());
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(s.get(start..).unwrap_or_default());
    out.push('"');
}

// ---------------------------------------------------------------------------------------------
// Selection compiler (CollectFields / CollectSubfields of the spec, §6.3.2 and §6.4.3)
// ---------------------------------------------------------------------------------------------

enum CompileError {
    TooLarge,
    TooDeep,
}

impl CompileError {
    fn into_error(self, location: Option<Location>) -> GraphQLError {
        let message = match self {
            CompileError::TooLarge => format!(
                "the operation selects too many fields once fragments are expanded (at most {MAX_SELECTED_FIELDS})"
            ),
            CompileError::TooDeep => {
                format!("the operation nests fields and fragments too deeply (at most {MAX_SELECTION_DEPTH} levels)")
            }
        };
        GraphQLError::coded(message, codes::QUERY_TOO_COMPLEX).at(location)
    }
}

struct Compiler<'d> {
    schema: &'d Valid<Schema>,
    document: &'d ExecutableDocument,
    variables: &'d JsonMap,
    fields: usize,
    work: usize,
}

/// Fields grouped by response key, in first-seen order.
#[derive(Default)]
struct Groups<'d> {
    order: Vec<(&'d Name, Vec<&'d ExeField>)>,
    index: BTreeMap<&'d str, usize>,
}

impl<'d> Compiler<'d> {
    /// The plan of an object of type `type_name` selected by the (merged) `selection_sets`.
    fn compile(
        &mut self,
        type_name: &str,
        selection_sets: &[&'d SelectionSet],
        depth: usize,
    ) -> Result<Vec<PlanField>, CompileError> {
        if depth > MAX_SELECTION_DEPTH {
            return Err(CompileError::TooDeep);
        }
        let mut groups = Groups::default();
        let mut visited = Vec::new();
        for set in selection_sets {
            self.collect(type_name, &set.selections, &mut visited, &mut groups, depth)?;
        }
        let mut plan = Vec::with_capacity(groups.order.len());
        for (key, fields) in groups.order {
            self.fields += 1;
            if self.fields > MAX_SELECTED_FIELDS {
                return Err(CompileError::TooLarge);
            }
            let Some(first) = fields.first() else {
                continue;
            };
            let key = key.to_string();
            let name = first.name.to_string();
            if name == "__typename" {
                plan.push(PlanField::Typename(Keyed::new(key, type_name.to_owned())));
                continue;
            }
            let ty = &first.definition.ty;
            let inner = ty.inner_named_type();
            let entry = match self.schema.types.get(inner) {
                Some(ExtendedType::Object(_)) => {
                    let sets: Vec<&'d SelectionSet> = fields.iter().map(|f| &f.selection_set).collect();
                    let sub = self.compile(inner.as_str(), &sets, depth + 1)?;
                    if ty.is_list() {
                        PlanField::List(Keyed::new(key, name), sub)
                    } else {
                        PlanField::Object(Keyed::new(key, name), sub)
                    }
                }
                _ => match inner.as_str() {
                    "String" | "ID" if !ty.is_list() => PlanField::Str(Keyed::new(key, name)),
                    "Int" if !ty.is_list() => PlanField::Int(Keyed::new(key, name)),
                    _ => PlanField::Raw(Keyed::new(key, name)),
                },
            };
            plan.push(entry);
        }
        Ok(plan)
    }

    fn collect(
        &mut self,
        type_name: &str,
        selections: &'d [Selection],
        visited: &mut Vec<&'d Name>,
        groups: &mut Groups<'d>,
        depth: usize,
    ) -> Result<(), CompileError> {
        if depth > MAX_SELECTION_DEPTH {
            return Err(CompileError::TooDeep);
        }
        for selection in selections {
            self.work += 1;
            if self.work > MAX_COLLECT_WORK {
                return Err(CompileError::TooLarge);
            }
            if !self.included(selection) {
                continue;
            }
            match selection {
                Selection::Field(field) => {
                    let key = field.response_key();
                    if let Some(&i) = groups.index.get(key.as_str()) {
                        if let Some((_, list)) = groups.order.get_mut(i) {
                            list.push(field);
                        }
                    } else {
                        groups.index.insert(key.as_str(), groups.order.len());
                        groups.order.push((key, vec![field]));
                    }
                }
                Selection::FragmentSpread(spread) => {
                    if visited.contains(&&spread.fragment_name) {
                        continue;
                    }
                    visited.push(&spread.fragment_name);
                    let Some(fragment) = self.document.fragments.get(&spread.fragment_name) else {
                        continue;
                    };
                    if !self.applies(type_name, fragment.type_condition()) {
                        continue;
                    }
                    self.collect(type_name, &fragment.selection_set.selections, visited, groups, depth + 1)?;
                }
                Selection::InlineFragment(inline) => {
                    if let Some(condition) = &inline.type_condition {
                        if !self.applies(type_name, condition) {
                            continue;
                        }
                    }
                    self.collect(type_name, &inline.selection_set.selections, visited, groups, depth + 1)?;
                }
            }
        }
        Ok(())
    }

    /// `DoesFragmentTypeApply`.
    fn applies(&self, object_type: &str, condition: &str) -> bool {
        match self.schema.types.get(condition) {
            Some(ExtendedType::Object(_)) => condition == object_type,
            Some(ExtendedType::Interface(_) | ExtendedType::Union(_)) => self.schema.is_subtype(condition, object_type),
            _ => false,
        }
    }

    /// `@skip(if:)` / `@include(if:)`, with literal or (coerced, defaulted) variable values.
    fn included(&self, selection: &Selection) -> bool {
        let directives = selection.directives();
        let flag = |directive: &str| -> Option<bool> {
            match directives.get(directive)?.specified_argument_by_name("if")?.as_ref() {
                AstValue::Boolean(b) => Some(*b),
                AstValue::Variable(var) => self.variables.get(var.as_str())?.as_bool(),
                _ => None,
            }
        };
        !flag("skip").unwrap_or(false) && flag("include").unwrap_or(true)
    }
}
