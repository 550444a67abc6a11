//! The socket calls the worker crate makes costlier than they need be, on hot paths.
//! - Sending a message that already is a JavaScript string ([`send_js`]): `send_with_str`
//!   copies its `&str` out of wasm (a text decoding) on every call; the chain object sends
//!   one shared batch to many sockets, and the gateway slices one batch text into many
//!   frames, so both make the JavaScript string once and send it as it is.
//! - Listening ([`listen`]): handlers called in the socket's own events.

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
}

/// `ws.send(message)`, where `message` is a JavaScript string.
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

/// Calls `on_message` with each text message (`None` for a binary one), and `on_end` when
/// the socket closes or fails.
pub fn listen(
    ws: &WebSocket,
    mut on_message: impl FnMut(Option<String>) + 'static,
    mut on_end: impl FnMut() + 'static,
) -> worker::Result<Listening> {
    let socket = AsRef::<worker::web_sys::WebSocket>::as_ref(ws).clone();
    let message =
        Closure::<dyn FnMut(worker::web_sys::MessageEvent)>::new(move |event: worker::web_sys::MessageEvent| {
            on_message(event.data().as_string());
        });
    let end = Closure::<dyn FnMut(JsValue)>::new(move |_event: JsValue| on_end());
    let listening = Listening { socket, message, end };
    listening.socket.add_event_listener_with_callback("message", listening.message.as_ref().unchecked_ref())?;
    for kind in ["close", "error"] {
        listening.socket.add_event_listener_with_callback(kind, listening.end.as_ref().unchecked_ref())?;
    }
    Ok(listening)
}

impl Drop for Listening {
    fn drop(&mut self) {
        let _ = self.socket.remove_event_listener_with_callback("message", self.message.as_ref().unchecked_ref());
        for kind in ["close", "error"] {
            let _ = self.socket.remove_event_listener_with_callback(kind, self.end.as_ref().unchecked_ref());
        }
    }
}
