//! A subscription's selection set compiled once into a plan that walks each event's JSON:
//! fragments inlined, aliases, field merging and `@skip`/`@include` resolved with the
//! coerced variables, so each event is projected with no GraphQL work.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use apollo_compiler::ast::Value as AstValue;
use apollo_compiler::executable::{ExecutableDocument, Field as ExeField, Selection, SelectionSet};
use apollo_compiler::response::JsonMap;
use apollo_compiler::schema::ExtendedType;
use apollo_compiler::validation::Valid;
use apollo_compiler::{Name, Schema};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::codes;
use super::error::{GraphQLError, Location};

/// At most this many fields in an operation once fragments are expanded and fields merged
/// (the full OHIP selection has 19, the standard introspection query about 220): it bounds the
/// per-event work of a subscription and the size of a query answer.
pub const MAX_SELECTED_FIELDS: usize = 1_000;
/// At most this many field selections visited while expanding (guards the compile itself).
const MAX_COLLECT_WORK: usize = 50_000;
/// At most this nesting of fields and fragments once expanded.
const MAX_SELECTION_DEPTH: usize = 64;

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
pub(super) enum PlanField {
    /// `__typename` (the source is the type name).
    #[serde(rename = "t")]
    Typename(FieldKey),
    /// A `String` (or `ID`) leaf.
    #[serde(rename = "s")]
    Str(FieldKey),
    /// An `Int` leaf.
    #[serde(rename = "i")]
    Int(FieldKey),
    /// Any other leaf, copied as is.
    #[serde(rename = "r")]
    Raw(FieldKey),
    /// An object and its selection.
    #[serde(rename = "o")]
    Object(FieldKey, Vec<PlanField>),
    /// A list of objects and their selection.
    #[serde(rename = "l")]
    List(FieldKey, Vec<PlanField>),
}

/// A response key and the source it is read from (the event's key, or the type name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "FieldKeyRepr", into = "FieldKeyRepr")]
pub(super) struct FieldKey {
    pub(super) key: String,
    pub(super) src: String,
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum FieldKeyRepr {
    Same(String),
    Aliased(String, String),
}

impl From<FieldKeyRepr> for FieldKey {
    fn from(repr: FieldKeyRepr) -> Self {
        match repr {
            FieldKeyRepr::Same(name) => FieldKey { key: name.clone(), src: name },
            FieldKeyRepr::Aliased(key, src) => FieldKey { key, src },
        }
    }
}

impl From<FieldKey> for FieldKeyRepr {
    fn from(keyed: FieldKey) -> Self {
        if keyed.key == keyed.src {
            FieldKeyRepr::Same(keyed.src)
        } else {
            FieldKeyRepr::Aliased(keyed.key, keyed.src)
        }
    }
}

impl FieldKey {
    fn new(key: String, src: String) -> Self {
        FieldKey { key, src }
    }
}

/// The one list that `delta` filters: `EventHeader.detail`.
const DELTA_LIST: &str = "detail";

impl ProjectionPlan {
    pub(super) fn new(fields: Vec<PlanField>) -> Self {
        ProjectionPlan { fields }
    }

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
    fn keyed(&self) -> &FieldKey {
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
        crate::text::write_json_str(out, field.key());
        out.push(':');
        match field {
            PlanField::Typename(k) => crate::text::write_json_str(out, &k.src),
            PlanField::Str(k) => match coerce_string(src.get(&k.src)) {
                Some(s) => crate::text::write_json_str(out, &s),
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

// ---------------------------------------------------------------------------------------------
// Selection compiler (CollectFields / CollectSubfields of the spec, §6.3.2 and §6.4.3)
// ---------------------------------------------------------------------------------------------

pub(super) enum CompileError {
    TooLarge,
    TooDeep,
}

impl CompileError {
    pub(super) fn into_error(self, location: Option<Location>) -> GraphQLError {
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

pub(super) struct Compiler<'d> {
    schema: &'d Valid<Schema>,
    document: &'d ExecutableDocument,
    variables: &'d JsonMap,
    fields: usize,
    work: usize,
}

impl<'d> Compiler<'d> {
    pub(super) fn new(schema: &'d Valid<Schema>, document: &'d ExecutableDocument, variables: &'d JsonMap) -> Self {
        Compiler { schema, document, variables, fields: 0, work: 0 }
    }
}

/// Fields grouped by response key, in first-seen order.
#[derive(Default)]
struct Groups<'d> {
    order: Vec<(&'d Name, Vec<&'d ExeField>)>,
    index: BTreeMap<&'d str, usize>,
}

impl<'d> Compiler<'d> {
    /// The plan of an object of type `type_name` selected by the (merged) `selection_sets`.
    pub(super) fn compile(
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
                plan.push(PlanField::Typename(FieldKey::new(key, type_name.to_owned())));
                continue;
            }
            let ty = &first.definition.ty;
            let inner = ty.inner_named_type();
            let entry = match self.schema.types.get(inner) {
                Some(ExtendedType::Object(_)) => {
                    let sets: Vec<&'d SelectionSet> = fields.iter().map(|f| &f.selection_set).collect();
                    let sub = self.compile(inner.as_str(), &sets, depth + 1)?;
                    if ty.is_list() {
                        PlanField::List(FieldKey::new(key, name), sub)
                    } else {
                        PlanField::Object(FieldKey::new(key, name), sub)
                    }
                }
                _ => match inner.as_str() {
                    "String" | "ID" if !ty.is_list() => PlanField::Str(FieldKey::new(key, name)),
                    "Int" if !ty.is_list() => PlanField::Int(FieldKey::new(key, name)),
                    _ => PlanField::Raw(FieldKey::new(key, name)),
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
