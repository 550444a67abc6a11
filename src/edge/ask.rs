//! The Worker's side of the internal wire (`crate::rpc`): one way to send a request to an
//! object and read its whole answer. (The WebSocket attach, whose answer is a socket, is
//! the gateway's own.)

use serde::de::DeserializeOwned;
use wasm_bindgen::JsValue;
use worker::{Method, Request, RequestInit, Response, Result, Stub};

use crate::rpc;

/// An object's answer, read in full.
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as the shared type both sides use.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| worker::Error::RustError(e.to_string()))
    }
}

/// A request body: bytes travel as a `Uint8Array`, not a string, which the runtime would
/// transcode on the way out and back in.
pub enum Ask<'a> {
    Empty,
    Json(String),
    Bytes(&'a [u8]),
}

impl Ask<'_> {
    /// A typed body, as JSON.
    pub fn json<T: serde::Serialize>(body: &T) -> Result<Self> {
        serde_json::to_string(body).map(Ask::Json).map_err(|e| worker::Error::RustError(e.to_string()))
    }

    fn into_js(self) -> Option<JsValue> {
        match self {
            Ask::Empty => None,
            Ask::Json(text) => Some(text.into()),
            Ask::Bytes(bytes) => Some(js_sys::Uint8Array::from(bytes).into()),
        }
    }
}

/// Sends `method path` to an object (`origin` is [`rpc::CHAIN_ORIGIN`] or
/// [`rpc::GUARD_ORIGIN`]); `chain` names a chain object to itself ([`rpc::CHAIN_HEADER`]).
pub async fn ask(
    stub: &Stub,
    origin: &str,
    method: Method,
    path: &str,
    chain: Option<&str>,
    body: Ask<'_>,
) -> Result<Answer> {
    let mut init = RequestInit::new();
    init.with_method(method).with_body(body.into_js());
    if let Some(chain) = chain {
        let headers = worker::Headers::new();
        headers.set(rpc::CHAIN_HEADER, chain)?;
        init.with_headers(headers);
    }
    let req = Request::new_with_init(&format!("{origin}{path}"), &init)?;
    let resp = stub.fetch_with_request(req).await?;
    let status = resp.status_code();
    Ok(Answer { status, body: whole_body(resp).await? })
}

/// Reads a body in one runtime call. `Response::bytes` pulls a stream chunk by chunk
/// through a JS reader, which cost about 0.1 ms of every publish (`npm run profile`).
pub async fn whole_body(resp: Response) -> Result<Vec<u8>> {
    let raw: worker::web_sys::Response = resp.into();
    let buffer = wasm_bindgen_futures::JsFuture::from(raw.array_buffer()?).await?;
    Ok(js_sys::Uint8Array::new(&buffer).to_vec())
}
