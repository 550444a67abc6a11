//! Push delivery to vendor webhooks: the chain's object posts its events, in
//! offset order and signed the Standard Webhooks way, to each configured endpoint, and
//! retries the same batch until a 2xx accepts it. The same log, filters and gap signal as
//! the stream and the pull API.
//!
//! - [`delivery`]: where a webhook stands, which batch it posts next, and what an answer,
//!   a failure or an operator's resume does to it.
//! - [`slots`]: which webhooks get the object's few outgoing connections, fairly.
//! - [`signature`]: the Standard Webhooks headers of one attempt.
//!
//! A webhook as configured (URL, secret, filters) is the configuration's (`config::Webhook`).
//! The chain object's core (`chain::webhooks`) performs what these decide, and its glue
//! sends the request with its timeout.

pub mod delivery;
pub mod signature;
pub mod slots;

pub use delivery::{AfterFailure, BatchRange, Failure, Plan, RetryPolicy, Status, WebhookBatch, WebhookState};

/// Simultaneous webhook requests of one chain object. The runtime allows an invocation six
/// open outgoing connections
/// (<https://developers.cloudflare.com/workers/platform/limits/#simultaneous-open-connections>);
/// two stay free, and requests beyond these wait for one of them instead of stalling the
/// object's other work.
pub const MAX_PARALLEL_DELIVERIES: usize = 4;

/// A webhook request body stays under this (at least one event, whatever its size: an
/// event is at most `maxEventBytes`, 512 KiB at most).
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// An error body of a receiver kept in the state and shown to operators, at most this long.
pub const MAX_ERROR_CHARS: usize = 200;

/// The body of an operator's resume request is at most this long.
pub const MAX_RESUME_BODY_BYTES: usize = 4 * 1024;

/// Reads an operator's resume request body: empty, `{}`, or `{"from": "<offset>"}` (a
/// number is taken too). The error is the `400` message.
pub fn parse_resume_body(body: &[u8]) -> Result<Option<crate::log::Offset>, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let shape = "the body must be {} or {\"from\": \"<offset>\"}";
    // An object only: serde would also read a struct from an array (`[1]`).
    let serde_json::Value::Object(mut fields) = serde_json::from_slice(body).map_err(|e| format!("{shape}: {e}"))?
    else {
        return Err(format!("{shape}: not an object"));
    };
    let from = fields.remove("from");
    if let Some(other) = fields.keys().next() {
        return Err(format!("{shape}: unknown field {other:?}"));
    }
    match from {
        None => Ok(None),
        Some(serde_json::Value::String(s)) => crate::log::parse_offset(&s).map(Some).map_err(|e| format!("from: {e}")),
        Some(serde_json::Value::Number(n)) => {
            crate::log::parse_offset(&n.to_string()).map(Some).map_err(|e| format!("from: {e}"))
        }
        Some(other) => Err(format!("from must be an offset (a string of digits), got {other}")),
    }
}
