//! The configuration commands built for Node (`--no-default-features --features node-tools`,
//! see `scripts/build.sh`): `pms-events config` loads this instead of running cargo, so an
//! operator needs neither a Rust toolchain nor a checkout, and gets the Worker's own answers.

use wasm_bindgen::prelude::wasm_bindgen;

use crate::config::operator_tools::{self, ToolOutcome};

/// `config check` on a document's text; the answer as `{status, stdout, stderr}` JSON.
#[wasm_bindgen(js_name = configCheck)]
pub fn config_check(text: &str) -> String {
    outcome_json(&operator_tools::check_document(text))
}

/// `config hash-secret`; `salt` is 16 bytes of the caller's randomness.
#[wasm_bindgen(js_name = configHashSecret)]
#[allow(clippy::needless_pass_by_value, reason = "wasm-bindgen hands an optional string over by value")]
pub fn config_hash_secret(stdin: &str, iterations: Option<String>, salt: &[u8]) -> String {
    let Ok(salt) = <&[u8; 16]>::try_from(salt) else {
        return outcome_json(&ToolOutcome {
            status: 1,
            stdout: String::new(),
            stderr: "the salt is not 16 bytes".into(),
        });
    };
    outcome_json(&operator_tools::hash_secret(stdin, iterations.as_deref(), salt))
}

fn outcome_json(outcome: &ToolOutcome) -> String {
    serde_json::json!({ "status": outcome.status, "stdout": outcome.stdout, "stderr": outcome.stderr }).to_string()
}
