//! What a running operation is to its connection, and what it needs of it: the operation's
//! relay state and internal socket, and the connection's side as a trait, so that neither
//! file imports the other's type.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use serde_json::Value;
use worker::{Env, WebSocket};

use crate::auth::token::VerifiedToken;
use crate::config::ServiceConfig;
use crate::edge::now_ms;
use crate::graphql::GraphQLError;
use crate::stream::protocol::close;
use crate::stream::relay::{Relay, RenderedFrames};

/// How far the vendor has read what its connection was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Reading {
    /// Behind in reading: acknowledgements wait.
    pub behind: bool,
    /// Bytes of the connection's output sent so far, and known read.
    pub sent_bytes: u64,
    pub confirmed_bytes: u64,
}

/// What an operation needs of its connection.
pub(super) trait OperationHost: 'static {
    fn env(&self) -> &Env;
    fn config(&self) -> &ServiceConfig;
    fn connection_id(&self) -> &str;
    fn principal(&self) -> Option<VerifiedToken>;
    /// Whether `op` is still the running operation `id` (not stopped, not replaced by a new
    /// operation reusing the id while this one awaited).
    fn owns(&self, id: &str, op: &Rc<RunningOperation>) -> bool;
    /// Operation `id` failed: an `error` for it, unless it is no longer `op`.
    fn fail(self: &Rc<Self>, id: &str, op: &Rc<RunningOperation>, errors: &[GraphQLError]);
    /// Operation `id` is a query with this result (JSON text): `next`, then `complete`.
    fn answer(self: &Rc<Self>, id: &str, result_json: &str);
    fn audit(&self, event: &str, fields: Value);
    /// Sends a batch's frames to the vendor.
    fn send_frames(self: &Rc<Self>, frames: &RenderedFrames);
    fn reading(&self) -> Reading;
}

/// One running operation (a subscription's pipeline).
pub(super) struct RunningOperation {
    pub(super) stopped: Cell<bool>,
    pub(super) internal: RefCell<Option<WebSocket>>,
    /// The subscription's relay decisions (forwarding, acknowledgement, reattach).
    pub(super) relay: RefCell<Relay>,
}

impl RunningOperation {
    /// `resend_window_ms`: frames sent this long ago count as read (see `relay`).
    pub(super) fn new(resend_window_ms: u64) -> Self {
        let relay = Relay::with_resend_window(resend_window_ms);
        RunningOperation { stopped: Cell::new(false), internal: RefCell::new(None), relay: RefCell::new(relay) }
    }

    /// Stops forwarding; the object is told where the vendor has read up to, so that a
    /// resume without an offset continues there.
    pub(super) fn stop(&self, reading: Reading) {
        self.stopped.set(true);
        if let Some(ws) = self.internal.borrow_mut().take() {
            // Sent before the close, so it arrives first.
            let _ = ws.send_with_str(self.relay.borrow_mut().final_ack(reading.confirmed_bytes, now_ms()));
            let _ = ws.close(Some(close::NORMAL), Some("subscription complete"));
        }
    }

    /// The acknowledgement held while the vendor was behind, if it is due now.
    pub(super) fn send_held_ack(&self, reading: Reading) {
        let Some(internal) = self.internal.borrow().clone() else { return };
        let ack = self.relay.borrow_mut().ack(reading.behind, reading.confirmed_bytes, now_ms());
        if let Some(ack) = ack {
            let _ = internal.send_with_str(ack);
        }
    }
}
