//! The chain object's attached subscriptions in memory: each internal socket with its
//! registry key, cursor and loaded spec, in fan-out order. Serving one reads and writes
//! nothing of the runtime's: a socket's attachment (its key and cursor, what survives
//! hibernation) is written within a second of the cursor's move (`ChainObject::flush`),
//! and the timer that will write it keeps the object from hibernating until then (the
//! runtime hibernates an object only when no timer is set). Reading the attachment back
//! and writing it again on every serve had cost ~2 µs of the object's ~8 µs per
//! subscription served, on the chain's one thread. A new subscription's registry row (its
//! spec, which a woken object needs and which does not fit an attachment) is written by the
//! same flush, so an attach waits for no commit and a reconnecting crowd costs one commit,
//! not one each; a subscription closed within the second is never written at all. After a
//! start or a wake from hibernation the memory is empty; the list is rebuilt from the
//! runtime's sockets (and the registry) at first use.

use std::rc::Rc;

use worker::{Result, WebSocket};

use crate::graphql::ProjectionPlan;
use crate::stream::fanout::{cursor_key, Cursor, SharingKeys, SocketState, SubscriptionSpec};
use crate::stream::keyed::{Keyed, KeyedList};

pub type Spec = SubscriptionSpec<ProjectionPlan>;

/// An attached subscription's spec, with what is derived from it on every serve or
/// acknowledgement: the keys by which subscriptions alike share projections and messages,
/// and the key of its saved cursor.
pub struct LoadedSpec {
    pub spec: Spec,
    pub keys: SharingKeys,
    pub cursor_key: Rc<str>,
}

impl LoadedSpec {
    pub fn of(spec: Spec) -> Self {
        LoadedSpec { keys: SharingKeys::of(&spec), cursor_key: cursor_key(&spec).into(), spec }
    }
}

/// One attached subscription.
pub struct Attached {
    pub ws: WebSocket,
    /// Its row in the registry table, and its socket's tag.
    pub key: Rc<str>,
    pub cursor: Cursor,
    /// The cursor as the socket's attachment holds it.
    pub written: Cursor,
    /// Whether its registry row is written.
    pub registered: bool,
    pub loaded: LoadedSpec,
}

impl Attached {
    /// A registered subscription whose socket's attachment holds `cursor`.
    pub fn new(ws: WebSocket, key: Rc<str>, cursor: Cursor, loaded: LoadedSpec) -> Self {
        Attached { ws, key, cursor, written: cursor, registered: true, loaded }
    }

    /// A subscription attached in this turn: its registry row is not written yet.
    pub fn attaching(ws: WebSocket, key: Rc<str>, cursor: Cursor, loaded: LoadedSpec) -> Self {
        Attached { registered: false, ..Attached::new(ws, key, cursor, loaded) }
    }

    /// Whether a flush has something of it to write.
    pub fn unwritten(&self) -> bool {
        self.cursor != self.written || !self.registered
    }

    /// Its spec as the registry row holds it.
    pub fn spec_json(&self) -> Result<String> {
        serde_json::to_string(&self.loaded.spec).map_err(|e| worker::Error::RustError(e.to_string()))
    }

    /// Writes the cursor into the socket's attachment, if it moved since the last write.
    pub fn write_attachment(&mut self) -> Result<()> {
        if self.cursor != self.written {
            self.ws.serialize_attachment(SocketState { key: self.key.to_string(), cursor: self.cursor }.encode())?;
            self.written = self.cursor;
        }
        Ok(())
    }
}

impl Keyed for Attached {
    fn key(&self) -> &Rc<str> {
        &self.key
    }
}

/// The attached subscriptions, in fan-out order, found by key in constant time.
pub type AttachedList = KeyedList<Attached>;
