//! The Worker's side of the internal wire (`crate::rpc`): one way to send a request to an
//! object and read its whole answer. (The WebSocket attach, whose answer is a socket, is
//! the gateway's own.)

use serde::de::DeserializeOwned;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use worker::web_sys;
use worker::{Env, Method, Response, Result};

use crate::rpc;

#[wasm_bindgen]
extern "C" {
    /// A Durable Object namespace binding as JavaScript has it.
    type JsNamespace;
    #[wasm_bindgen(method, catch, js_name = idFromName)]
    fn id_from_name(this: &JsNamespace, name: &str) -> std::result::Result<JsValue, JsValue>;
    #[wasm_bindgen(method, catch)]
    fn get(this: &JsNamespace, id: &JsValue) -> std::result::Result<JsStub, JsValue>;

    /// A Durable Object stub as JavaScript has it.
    type JsStub;
    #[wasm_bindgen(method, catch)]
    fn fetch(this: &JsStub, request: &web_sys::Request) -> std::result::Result<js_sys::Promise, JsValue>;
}

/// The stub of one Durable Object, kept as the runtime's own. The worker crate's `Stub`
/// wraps each answer in its own `Response` around the body's stream, which had to be made
/// a runtime `Response` again to read the body in one call: two conversions and a new
/// `Response`, ~50 µs of every publish under the profiler (`npm run profile`).
pub struct ObjectStub(JsStub);

impl ObjectStub {
    /// The object named `name` in the namespace bound as `binding`.
    pub fn of(env: &Env, binding: &str, name: &str) -> Result<Self> {
        let namespace = env.durable_object(binding)?;
        let namespace: &JsNamespace = AsRef::<JsValue>::as_ref(&namespace).unchecked_ref();
        let id = namespace.id_from_name(name)?;
        Ok(ObjectStub(namespace.get(&id)?))
    }

    async fn fetch_raw(&self, request: &web_sys::Request) -> Result<web_sys::Response> {
        let answer = JsFuture::from(self.0.fetch(request)?).await?;
        answer.dyn_into::<web_sys::Response>().map_err(worker::Error::from)
    }

    /// Sends a request whose answer is more than a body (the gateway's attach, answered
    /// with a socket).
    pub async fn fetch(&self, request: &worker::Request) -> Result<Response> {
        Ok(self.fetch_raw(request.inner()).await?.into())
    }
}

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
    stub: &ObjectStub,
    origin: &str,
    method: Method,
    path: &str,
    chain: Option<&str>,
    body: Ask<'_>,
) -> Result<Answer> {
    let init = web_sys::RequestInit::new();
    init.set_method(method.as_ref());
    if let Some(body) = body.into_js() {
        init.set_body(&body);
    }
    if let Some(chain) = chain {
        let headers = web_sys::Headers::new()?;
        headers.set(rpc::CHAIN_HEADER, chain)?;
        init.set_headers(&headers);
    }
    let request = web_sys::Request::new_with_str_and_init(&format!("{origin}{path}"), &init)?;
    let answer = stub.fetch_raw(&request).await?;
    Ok(Answer { status: answer.status(), body: whole_raw_body(&answer).await? })
}

/// Reads a body in one runtime call. `Response::bytes` pulls a stream chunk by chunk
/// through a JS reader, which cost about 0.1 ms of every publish (`npm run profile`).
async fn whole_raw_body(answer: &web_sys::Response) -> Result<Vec<u8>> {
    let buffer = JsFuture::from(answer.array_buffer()?).await?;
    Ok(js_sys::Uint8Array::new(&buffer).to_vec())
}

/// [`whole_raw_body`] of a worker crate `Response`.
pub async fn whole_body(resp: Response) -> Result<Vec<u8>> {
    whole_raw_body(&resp.into()).await
}
