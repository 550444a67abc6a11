//! Sending a message that already is a JavaScript string. The worker crate's
//! `send_with_str` copies its `&str` out of wasm (a text decoding) on every call; the chain
//! object sends one shared batch to many sockets, and the gateway slices one batch text
//! into many frames, so both make the JavaScript string once and send it as it is.

use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use worker::WebSocket;

#[wasm_bindgen]
extern "C" {
    /// A WebSocket as JavaScript has it.
    type JsSocket;
    #[wasm_bindgen(method, catch, js_name = send)]
    fn send_value(this: &JsSocket, message: &JsValue) -> Result<(), JsValue>;
}

/// `ws.send(message)`, where `message` is a JavaScript string.
pub fn send_js(ws: &WebSocket, message: &JsValue) -> worker::Result<()> {
    let socket: &JsSocket = AsRef::<worker::web_sys::WebSocket>::as_ref(ws).unchecked_ref();
    socket.send_value(message).map_err(worker::Error::from)
}
