//! Audit lines (docs/protocol.md, Audit log): one JSON object per line, stable field names, written to
//! the runtime console so Workers Logs and Logpush pick them up. Callers pass only
//! identifiers: never a secret, a hash or a token.

use serde_json::{Map, Value};

/// Builds one audit line. `fields` must be a JSON object; `null` fields are dropped so a
/// line carries only what is known.
pub fn line(event: &str, at_ms: u64, fields: Value) -> String {
    let mut out = Map::new();
    out.insert("audit".into(), Value::from(event));
    out.insert("ts".into(), Value::from(at_ms));
    if let Value::Object(map) = fields {
        for (k, v) in map {
            if !v.is_null() {
                out.insert(k, v);
            }
        }
    }
    Value::Object(out).to_string()
}
