//! The chain object's internal sockets as the runtime has them: accepted with the
//! hibernation API, each with its attachment, and a shared message made into a JavaScript
//! value once and sent as it is to every socket it is for.

use wasm_bindgen::JsValue;
use worker::{State, WebSocket};

use crate::chain::host::{ChainError, GatewaySockets};
use crate::edge::js_socket::send_js;
use crate::stream::spec::BatchEncoding;

pub struct RuntimeSockets {
    pub state: State,
}

#[allow(clippy::needless_pass_by_value, reason = "the shape `map_err` takes")]
fn chain_error(e: worker::Error) -> ChainError {
    ChainError(e.to_string())
}

impl GatewaySockets for RuntimeSockets {
    type Socket = WebSocket;
    type Message = JsValue;

    fn all(&self) -> Vec<WebSocket> {
        self.state.get_websockets()
    }

    fn attachment(&self, socket: &WebSocket) -> Result<Option<String>, ChainError> {
        socket.deserialize_attachment::<String>().map_err(chain_error)
    }

    fn set_attachment(&self, socket: &WebSocket, text: &str) -> Result<(), ChainError> {
        socket.serialize_attachment(text).map_err(chain_error)
    }

    fn message(&self, text: &str, encoding: BatchEncoding) -> JsValue {
        match encoding {
            BatchEncoding::Binary => js_sys::Uint8Array::from(text.as_bytes()).into(),
            BatchEncoding::Text => JsValue::from_str(text),
        }
    }

    fn send(&self, socket: &WebSocket, message: &JsValue) -> Result<(), ChainError> {
        send_js(socket, message).map_err(chain_error)
    }

    fn send_text(&self, socket: &WebSocket, text: &str, encoding: BatchEncoding) -> Result<(), ChainError> {
        match encoding {
            BatchEncoding::Binary => socket.send_with_bytes(text.as_bytes()),
            BatchEncoding::Text => socket.send_with_str(text),
        }
        .map_err(chain_error)
    }

    fn close(&self, socket: &WebSocket, code: u16, reason: &str) {
        let _ = socket.close(Some(code), Some(reason));
    }
}
