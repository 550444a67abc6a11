//! The chain's Durable Object: one per chain code (`idFromName(chainCode)`), owning that
//! chain's offset log in its `SQLite` storage. This file is only the runtime's entry points;
//! each forwards to the object's glue (`object`), which runs the plain-Rust core
//! (`chain::ChainCore`) over the object's storage (`sql`) and sockets (`sockets`) and
//! performs what it hands back.

mod answers;
mod object;
mod sockets;
mod sql;
mod webhook_post;

use std::rc::Rc;

use worker::{
    durable_object, DurableObject, Env, Request, Response, Result, State, WebSocket, WebSocketIncomingMessage,
};

use object::ChainObject;

/// The class is `ChainLog` because `wrangler.toml` binds the chains' storage to that class
/// name, and `#[durable_object]` exports the struct under its own name.
#[durable_object]
pub struct ChainLog {
    object: Rc<ChainObject>,
}

impl DurableObject for ChainLog {
    fn new(state: State, env: Env) -> Self {
        ChainLog { object: Rc::new(ChainObject::new(state, env)) }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        self.object.fetch(req).await
    }

    async fn alarm(&self) -> Result<Response> {
        self.object.alarm().await
    }

    async fn websocket_message(&self, ws: WebSocket, msg: WebSocketIncomingMessage) -> Result<()> {
        match msg {
            WebSocketIncomingMessage::String(text) => self.object.on_message(&ws, &text).await,
            WebSocketIncomingMessage::Binary(_) => Ok(()),
        }
    }

    async fn websocket_close(&self, ws: WebSocket, code: usize, _reason: String, _clean: bool) -> Result<()> {
        self.object.on_close(&ws, code).await
    }

    async fn websocket_error(&self, ws: WebSocket, _error: worker::Error) -> Result<()> {
        self.object.on_error(&ws).await
    }
}
