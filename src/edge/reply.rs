//! JSON responses. Every error body is `{"error": <code>, "message": <text>}` unless a
//! standard (RFC 6749) says otherwise.

use serde::Serialize;
use worker::{Response, Result};

pub fn json<T: Serialize>(status: u16, body: &T) -> Result<Response> {
    let mut resp = Response::from_json(body)?.with_status(status);
    resp.headers_mut().set("Cache-Control", "no-store")?;
    Ok(resp)
}

pub fn error(status: u16, code: &str, message: impl AsRef<str>) -> Result<Response> {
    json(status, &serde_json::json!({"error": code, "message": message.as_ref()}))
}

pub fn with_header(mut resp: Response, name: &str, value: &str) -> Result<Response> {
    resp.headers_mut().set(name, value)?;
    Ok(resp)
}

/// A published API description: static JSON, cacheable, readable from browser tools on
/// other origins (a spec holds nothing that is not public).
pub fn spec(json: &'static str) -> Result<Response> {
    let mut resp = Response::ok(json)?;
    let headers = resp.headers_mut();
    headers.set("Content-Type", "application/json")?;
    headers.set("Cache-Control", "public, max-age=300")?;
    headers.set("Access-Control-Allow-Origin", "*")?;
    Ok(resp)
}
