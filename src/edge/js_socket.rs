//! The socket calls the worker crate makes costlier than they need be, on hot paths.
//! - Sending a message that already is a JavaScript value ([`send_js`]): `send_with_str`
//!   and `send_with_bytes` copy it out of wasm on every call; the chain object sends one
//!   shared batch to many sockets, so it makes the JavaScript value once and sends it as it
//!   is.
//! - Listening ([`listen`]): handlers called in the socket's own events, with text and
//!   binary messages alike as text.

use wasm_bindgen::closure::Closure;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use worker::WebSocket;

#[wasm_bindgen]
extern "C" {
    /// A WebSocket as JavaScript has it.
    type JsSocket;
    #[wasm_bindgen(method, catch, js_name = send)]
    fn send_value(this: &JsSocket, message: &JsValue) -> Result<(), JsValue>;
    /// An `ArrayBuffer` as JavaScript has it.
    type JsBuffer;
    /// `ArrayBuffer.prototype.transfer`: moves the bytes to a new buffer of `length` and
    /// detaches this one.
    #[wasm_bindgen(method, catch, js_name = transfer)]
    fn transfer(this: &JsBuffer, length: u32) -> Result<JsValue, JsValue>;
}

/// `ws.send(message)`, where `message` is a JavaScript string or byte array.
pub fn send_js(ws: &WebSocket, message: &JsValue) -> worker::Result<()> {
    let socket: &JsSocket = AsRef::<worker::web_sys::WebSocket>::as_ref(ws).unchecked_ref();
    socket.send_value(message).map_err(worker::Error::from)
}

/// Listeners that call Rust straight from the runtime's socket events, rather than through
/// the worker crate's event stream, which passes every message through a channel, a waker
/// and a microtask (~5 µs per message under the profiler: half a µs per delivery on the
/// gateway at batches of ten). Removed when this is dropped, which must not happen inside
/// one of its own callbacks (they signal, and their owner drops it afterwards).
pub struct Listening {
    socket: worker::web_sys::WebSocket,
    message: Closure<dyn FnMut(worker::web_sys::MessageEvent)>,
    end: Closure<dyn FnMut(JsValue)>,
}

/// Calls `on_message` with each message as text (`None` for a binary one that is not
/// UTF-8), and `on_end` when the socket closes or fails. Binary messages are copied into
/// wasm as they are; a text message is encoded to UTF-8 on its way in, by wasm-bindgen's
/// loop over its characters in JavaScript (~2 µs for a chain object's batch of ten small
/// events under the profiler, one such message per subscription and publish).
pub fn listen(
    ws: &WebSocket,
    mut on_message: impl FnMut(Option<String>) + 'static,
    mut on_end: impl FnMut() + 'static,
) -> worker::Result<Listening> {
    let socket = AsRef::<worker::web_sys::WebSocket>::as_ref(ws).clone();
    // The runtime's default for binary messages is a `Blob`, which only reads asynchronously.
    js_sys::Reflect::set(&socket, &"binaryType".into(), &"arraybuffer".into())?;
    let message =
        Closure::<dyn FnMut(worker::web_sys::MessageEvent)>::new(move |event: worker::web_sys::MessageEvent| {
            on_message(message_text(&event.data()));
        });
    let end = Closure::<dyn FnMut(JsValue)>::new(move |_event: JsValue| on_end());
    let listening = Listening { socket, message, end };
    listening.socket.add_event_listener_with_callback("message", listening.message.as_ref().unchecked_ref())?;
    for kind in ["close", "error"] {
        listening.socket.add_event_listener_with_callback(kind, listening.end.as_ref().unchecked_ref())?;
    }
    Ok(listening)
}

/// A message's data as text: a string as it is, a byte array if it is UTF-8.
///
/// A byte array's buffer is emptied once its bytes are copied into wasm. The runtime keeps
/// each received message alive past the next minor collection, so its buffer would be
/// promoted with it and its bytes counted as external memory until the next full
/// collection: at a chain object's ~1.3 KiB per batch and subscription, that held V8's
/// old-generation limit at 17–38 MiB where a text-only isolate grew to ~63, and made full
/// collections 1.6 times as frequent (100 × 200, README's Benchmarks). Emptied
/// (`transfer(0)` detaches it), only the small buffer object survives.
fn message_text(data: &JsValue) -> Option<String> {
    if let Some(text) = data.as_string() {
        return Some(text);
    }
    let buffer = data.dyn_ref::<js_sys::ArrayBuffer>()?;
    let bytes = js_sys::Uint8Array::new(buffer).to_vec();
    // A buffer the runtime will not let go of stays as it is: only its memory is at stake.
    let _ = buffer.unchecked_ref::<JsBuffer>().transfer(0);
    String::from_utf8(bytes).ok()
}

impl Drop for Listening {
    fn drop(&mut self) {
        let _ = self.socket.remove_event_listener_with_callback("message", self.message.as_ref().unchecked_ref());
        for kind in ["close", "error"] {
            let _ = self.socket.remove_event_listener_with_callback(kind, self.end.as_ref().unchecked_ref());
        }
    }
}
