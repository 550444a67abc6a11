//! The two configuration commands an operator runs before `wrangler secret put`: check a
//! document, hash a client secret. Native (`src/bin/pms-config.rs`) and built for Node
//! (`src/node_tools.rs`, behind `pms-events config`) they are this one code, which is the
//! Worker's own parser: what it accepts or refuses, and the message, are the Worker's.

use super::secret_hash::SecretHash;
use super::ServiceConfig;

pub const USAGE: &str = "usage: pms-config check FILE | pms-config hash-secret [ITERATIONS] (secret on stdin)";

/// PBKDF2 iterations when the operator names none, and the range the tool accepts.
pub const DEFAULT_ITERATIONS: u32 = 10_000;
const ITERATION_RANGE: std::ops::RangeInclusive<u32> = 1_000..=1_000_000;

/// What a command prints and how it exits: 0 done, 1 refused, 2 used wrongly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolOutcome {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl ToolOutcome {
    fn ok(stdout: String) -> Self {
        Self { status: 0, stdout, stderr: String::new() }
    }

    fn failed(status: i32, stderr: impl Into<String>) -> Self {
        Self { status, stdout: String::new(), stderr: stderr.into() }
    }
}

/// `config check`: exactly what the Worker runs at load, with its message.
pub fn check_document(text: &str) -> ToolOutcome {
    match ServiceConfig::parse(text) {
        Ok(config) => ToolOutcome::ok(config.summary()),
        Err(e) => ToolOutcome::failed(1, e.to_string()),
    }
}

/// `config hash-secret`: `stdin` as read (one trailing line end is not part of the secret),
/// `salt` fresh from the platform's randomness.
pub fn hash_secret(stdin: &str, iterations: Option<&str>, salt: &[u8; 16]) -> ToolOutcome {
    let iterations = match iterations.map(str::parse::<u32>) {
        None => DEFAULT_ITERATIONS,
        Some(Ok(n)) if ITERATION_RANGE.contains(&n) => n,
        Some(_) => return ToolOutcome::failed(2, "iterations must be a whole number from 1000 to 1000000"),
    };
    let secret = stdin.trim_end_matches(['\n', '\r']);
    if secret.is_empty() {
        return ToolOutcome::failed(2, "the secret on standard input is empty");
    }
    let hash = SecretHash::new(secret, salt, iterations).encode();
    // The configuration refuses what it cannot parse back: so does this tool.
    if SecretHash::parse(&hash).is_err() {
        return ToolOutcome::failed(1, "the hash does not parse back (weak parameters?)");
    }
    ToolOutcome::ok(hash)
}
