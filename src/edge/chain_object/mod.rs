//! The chain's Durable Object: one per chain code (`idFromName(chainCode)`), owning that
//! chain's offset log in its `SQLite` storage. This file is only the runtime's entry points;
//! each forwards to [`ChainObject`], which performs what the plain-Rust core decides
//! (`log`, `stream::fanout`, `stream::subscribe`, `webhook`).
//!
//! Platform invariants the object relies on:
//! - SQL `exec` is synchronous. `append` runs head read, inserts and head write inside one
//!   `transactionSync`, so no other request interleaves and a statement that throws midway
//!   rolls the whole batch back: nothing of it is stored or delivered, and the publisher,
//!   told nothing was stored, resends it. (Should a store ever keep some rows anyway, the
//!   head is never read below the highest stored offset, so numbering cannot repeat.)
//! - The output gate holds the response until those writes are durable: a publisher never
//!   sees an offset that a crash could take back.
//! - A deploy or eviction restarts the object: nothing lives only in memory except caches
//!   (head, the attached subscriptions, the pending alarm, the fan-out schedule) that are
//!   rebuilt from storage and the sockets' attachments on demand, and what waits at most a
//!   second for its write: saved-cursor moves (`stream::cursors`; an operator's restart
//!   writes them first) and the sockets' cursors (`attached`; only hibernation reads them,
//!   and a pending timer keeps the object awake).

mod attached;
mod object;
mod sql;
mod subscriptions;
mod webhooks;

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
            WebSocketIncomingMessage::String(text) => self.object.on_gateway_message(&ws, &text),
            WebSocketIncomingMessage::Binary(_) => Ok(()),
        }
    }

    async fn websocket_close(&self, ws: WebSocket, code: usize, _reason: String, _clean: bool) -> Result<()> {
        self.object.on_gateway_close(&ws, code);
        Ok(())
    }

    async fn websocket_error(&self, ws: WebSocket, _error: worker::Error) -> Result<()> {
        self.object.forget(&ws);
        Ok(())
    }
}
