//! How the chain object's glue answers the Worker's requests: the core's answers and
//! refusals as responses, request bodies read, the alarm's time for the runtime.

use worker::{Response, Result};

use crate::chain::host::ChainError;
use crate::rpc;

/// A core failure, as the runtime's error.
#[allow(clippy::needless_pass_by_value, reason = "the shape `map_err` takes")]
pub(super) fn internal(e: ChainError) -> worker::Error {
    worker::Error::RustError(e.0)
}

/// A refusal the gateway turns into the vendor's or operator's error.
pub(super) fn refuse(status: u16, refusal: &rpc::Refusal) -> Result<Response> {
    Response::from_json(refusal).map(|r| r.with_status(status))
}

/// The core's answer as JSON, or its refusal.
pub(super) fn answer<T: serde::Serialize>(outcome: std::result::Result<T, (u16, rpc::Refusal)>) -> Result<Response> {
    outcome.map_or_else(|(status, refusal)| refuse(status, &refusal), |body| Response::from_json(&body))
}

/// A body the core wrote as JSON text already, or its refusal.
pub(super) fn answer_text(outcome: std::result::Result<String, (u16, rpc::Refusal)>) -> Result<Response> {
    let body = match outcome {
        Ok(body) => body,
        Err((status, refusal)) => return refuse(status, &refusal),
    };
    let mut resp = Response::ok(body)?;
    resp.headers_mut().set("Content-Type", "application/json")?;
    Ok(resp)
}

/// An absolute alarm time. (A bare integer would be read as an offset from now.)
#[allow(clippy::cast_precision_loss, reason = "millisecond times stay far below 2^53")]
pub(super) fn scheduled_at(ms: u64) -> worker::ScheduledTime {
    worker::ScheduledTime::new(js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms as f64)))
}

pub(super) fn json_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| worker::Error::RustError(e.to_string()))
}
