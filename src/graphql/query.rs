//! Queries over the streaming socket (`getHelp`, `connection`, introspection), executed by
//! apollo-compiler over a small static object graph.

use std::sync::Arc;

use apollo_compiler::collections::HashMap as ApolloHashMap;
use apollo_compiler::executable::{ExecutableDocument, Operation as ExeOperation};
use apollo_compiler::resolvers::{Execution, FieldError, ObjectValue, ResolveInfo, ResolvedValue};
use apollo_compiler::response::{ExecutionResponse, JsonMap};
use apollo_compiler::schema::Implementers;
use apollo_compiler::validation::Valid;
use apollo_compiler::{Name, Node, Schema};
use serde_json::Value;

use super::codes;
use super::error::GraphQLError;
use crate::docs::help;

/// A validated query with its coerced variables, ready to execute.
pub struct PreparedQuery {
    pub(super) schema: Arc<Valid<Schema>>,
    pub(super) implementers: Arc<ApolloHashMap<Name, Implementers>>,
    pub(super) document: Valid<ExecutableDocument>,
    pub(super) operation: Node<ExeOperation>,
    pub(super) variables: Valid<JsonMap>,
    pub(super) selects_connection: bool,
    pub(super) state_input: Option<super::StateInput>,
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
    /// The base URL of this service's documentation (`crate::docs` says what is under it).
    pub help_base_url: String,
    /// The page of `currentState`, as the chain's object answered it (JSON), when selected.
    pub current_state: Option<Value>,
}

impl PreparedQuery {
    /// true if the query selects `connection` (the caller then has to look up whether the app
    /// key is active elsewhere).
    pub fn selects_connection(&self) -> bool {
        self.selects_connection
    }

    /// `currentState`'s input, when the query selects it (the caller then fetches the page).
    pub fn state_input(&self) -> Option<&super::StateInput> {
        self.state_input.as_ref()
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
    /// An object whose fields are a JSON object's (`currentState`'s page).
    Json(Value),
}

impl StaticObject {
    fn query_root(ctx: &QueryContext) -> StaticObject {
        let base = ctx.help_base_url.trim_end_matches('/');
        let doc = |link: &str| StaticValue::Str(format!("{base}{link}"));
        let help = StaticObject {
            type_name: "Help",
            fields: vec![
                ("overview", doc(help::OVERVIEW)),
                ("configuration", doc(help::CONFIGURATION)),
                (
                    "connection",
                    StaticValue::Object(StaticObject {
                        type_name: "ConnectionHelp",
                        fields: vec![("help", doc(help::CONNECTING)), ("errors", doc(help::ERRORS))],
                    }),
                ),
                (
                    "events",
                    StaticValue::Object(StaticObject {
                        type_name: "EventHelp",
                        fields: vec![("payload", doc(help::EVENT_PAYLOAD)), ("replaying", doc(help::REPLAYING))],
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
        let mut fields = vec![("getHelp", StaticValue::Object(help)), ("connection", StaticValue::Object(connection))];
        if let Some(page) = &ctx.current_state {
            fields.push(("currentState", StaticValue::Json(page.clone())));
        }
        StaticObject { type_name: "Query", fields }
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
            Some((_, StaticValue::Json(value))) => Ok(JsonObject::resolved(info.field_definition(), value)),
            None => Err(self.unknown_field_error(info)),
        }
    }
}

/// A JSON object as a GraphQL object: each field is the JSON member of its name, an object
/// of the type the schema gives the field, a list of them, or a leaf.
struct JsonObject<'v> {
    type_name: &'v str,
    fields: &'v serde_json::Map<String, Value>,
}

impl<'v> JsonObject<'v> {
    fn resolved(definition: &'v apollo_compiler::schema::FieldDefinition, value: &'v Value) -> ResolvedValue<'v> {
        let type_name = definition.ty.inner_named_type().as_str();
        Self::value(type_name, value)
    }

    fn value(type_name: &'v str, value: &'v Value) -> ResolvedValue<'v> {
        match value {
            Value::Null => ResolvedValue::null(),
            Value::Array(items) => ResolvedValue::list(items.iter().map(move |item| Self::value(type_name, item))),
            Value::Object(fields) => ResolvedValue::object(JsonObject { type_name, fields }),
            leaf => ResolvedValue::leaf(leaf.clone()),
        }
    }
}

impl ObjectValue for JsonObject<'_> {
    fn type_name(&self) -> &str {
        self.type_name
    }

    fn resolve_field<'a>(&'a self, info: &'a ResolveInfo<'a>) -> Result<ResolvedValue<'a>, FieldError> {
        match self.fields.get(info.field_name()) {
            Some(value) => Ok(JsonObject::resolved(info.field_definition(), value)),
            None => Ok(ResolvedValue::null()),
        }
    }
}
