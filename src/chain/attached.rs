//! The chain object's attached subscriptions in memory: each internal socket with its
//! registry key, cursor and loaded spec, in fan-out order. Serving one reads and writes
//! nothing of the runtime's: a socket's attachment (its key and cursor, what survives
//! hibernation) is written within a second of the cursor's move (the object's flush), and
//! the timer that will write it keeps the object from hibernating until then (the runtime
//! hibernates an object only when no timer is set). Reading the attachment back and
//! writing it again on every serve had cost a quarter of the object's time per subscription
//! served, on the chain's one thread. A new subscription's registry row (its spec, which a
//! woken object needs and which does not fit an attachment) is written by the same flush,
//! so an attach waits for no commit and a reconnecting crowd costs one commit, not one
//! each; a subscription closed within the second is never written at all. After a start or
//! a wake from hibernation the memory is empty; the list is rebuilt from the runtime's
//! sockets (and the registry) at first use.

use std::rc::Rc;

use super::host::{ChainError, ChainTables, Effects, GatewaySockets};
use crate::graphql::ProjectionPlan;
use crate::log::Offset;
use crate::stream::keyed::{Keyed, KeyedList};
use crate::stream::protocol::close;
use crate::stream::pump::Cursor;
use crate::stream::spec::{cursor_key, SharingKeys, SubscriptionSpec};

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

/// What the object keeps on a subscription's internal socket, so that it survives
/// hibernation: the key of its registry row (the spec itself is too large for the
/// runtime's 2 KiB attachment) and its cursor, as one short string (`<next> <inflight>
/// <key>`), which costs the runtime far less than an object of fields to clone in and out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketState {
    pub key: String,
    pub cursor: Cursor,
}

impl SocketState {
    pub fn encode(&self) -> String {
        format!("{} {} {}", self.cursor.next, self.cursor.inflight, self.key)
    }

    pub fn decode(text: &str) -> Option<SocketState> {
        let mut parts = text.splitn(3, ' ');
        let next = parts.next()?.parse().ok()?;
        let inflight = parts.next()?.parse().ok()?;
        let key = parts.next().filter(|k| !k.is_empty())?.to_string();
        Some(SocketState { key, cursor: Cursor { next, inflight } })
    }
}

/// What operators see of an attached subscription: counted in memory since it attached to
/// this instance of the object (a restart or a wake from hibernation starts them again).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivered {
    /// When it attached to this instance (ms).
    pub since: u64,
    pub frames: u64,
    pub bytes: u64,
    /// The last offset its gateway acknowledged as read, and when (ms).
    pub read_through: Offset,
    pub last_ack_at: Option<u64>,
    /// Whether it was last audited as lagging ([`LAGGING_EVENTS`]).
    pub lagging: bool,
}

/// A subscription this many events or more behind the head is audited as lagging, once; it
/// is audited as caught up once it is under [`CAUGHT_UP_EVENTS`] again (the gap between the two
/// keeps a lag that hovers at the threshold to one line, not one per event).
pub const LAGGING_EVENTS: u64 = 1_000;
pub const CAUGHT_UP_EVENTS: u64 = 500;

impl Delivered {
    /// Its lag is now `lag` events: `Some(true)` when it just became lagging, `Some(false)`
    /// when it just caught up, `None` when neither.
    pub fn lag_crossing(&mut self, lag: u64) -> Option<bool> {
        let crossed = if self.lagging { lag < CAUGHT_UP_EVENTS } else { lag >= LAGGING_EVENTS };
        crossed.then(|| {
            self.lagging = !self.lagging;
            self.lagging
        })
    }
}

/// One attached subscription.
pub struct Attached<S> {
    pub socket: S,
    /// Its row in the registry table, and its socket's tag.
    pub key: Rc<str>,
    pub cursor: Cursor,
    /// The cursor as the socket's attachment holds it.
    pub written: Cursor,
    /// Whether its registry row is written.
    pub registered: bool,
    pub loaded: LoadedSpec,
    pub delivered: Delivered,
}

impl<S> Attached<S> {
    /// A registered subscription whose socket's attachment holds `cursor`.
    pub fn new(socket: S, key: Rc<str>, cursor: Cursor, loaded: LoadedSpec, now_ms: u64) -> Self {
        let delivered = Delivered { since: now_ms, ..Delivered::default() };
        Attached { socket, key, cursor, written: cursor, registered: true, loaded, delivered }
    }

    /// A subscription attached in this turn: its registry row is not written yet.
    pub fn attaching(socket: S, key: Rc<str>, cursor: Cursor, loaded: LoadedSpec, now_ms: u64) -> Self {
        Attached { registered: false, ..Attached::new(socket, key, cursor, loaded, now_ms) }
    }

    /// Whether a flush has something of it to write.
    pub fn unwritten(&self) -> bool {
        self.cursor != self.written || !self.registered
    }

    /// Its spec as the registry row holds it.
    pub fn spec_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(&self.loaded.spec)
    }

    /// The attachment to write, if the cursor moved since the last write.
    pub fn attachment_to_write(&self) -> Option<String> {
        (self.cursor != self.written).then(|| SocketState { key: self.key.to_string(), cursor: self.cursor }.encode())
    }
}

impl<S> Keyed for Attached<S> {
    fn key(&self) -> &Rc<str> {
        &self.key
    }
}

/// The attached subscriptions, in fan-out order, found by key in constant time.
pub type AttachedList<S> = KeyedList<Attached<S>>;

/// Why an internal socket is closed when its subscription's state cannot be read.
pub const STATE_LOST: &str = "subscription state lost; resubscribe";

/// The attached subscriptions, rebuilt from the runtime's sockets if this instance has not
/// yet (it started, or woke from hibernation). A socket whose state cannot be read is
/// closed, so that its gateway reattaches.
pub(super) fn attached_list<'a, K: GatewaySockets>(
    attached: &'a mut Option<AttachedList<K::Socket>>,
    tables: &impl ChainTables,
    sockets: &K,
    now_ms: u64,
    fx: &mut Effects,
) -> &'a mut AttachedList<K::Socket> {
    attached.get_or_insert_with(|| {
        let mut list = AttachedList::default();
        for socket in sockets.all() {
            match read_attached(tables, sockets, &socket, now_ms) {
                Ok(Some(sub)) => list.insert(sub),
                Ok(None) => {}
                Err(e) => {
                    fx.error(format!("chain log attached socket: {e}"));
                    sockets.close(&socket, close::INTERNAL_ERROR, STATE_LOST);
                }
            }
        }
        list
    })
}

/// A socket's [`SocketState`], kept as its attachment (`None`: it has none). One that does
/// not decode is lost state: an error, which closes the socket so the gateway reattaches.
pub(super) fn socket_state<K: GatewaySockets>(
    sockets: &K,
    socket: &K::Socket,
) -> Result<Option<SocketState>, ChainError> {
    let Some(text) = sockets.attachment(socket)? else { return Ok(None) };
    SocketState::decode(&text)
        .map(Some)
        .ok_or_else(|| ChainError("a subscription socket's attachment does not decode".into()))
}

/// A socket's subscription as its attachment and the registry table hold it.
fn read_attached<K: GatewaySockets>(
    tables: &impl ChainTables,
    sockets: &K,
    socket: &K::Socket,
    now_ms: u64,
) -> Result<Option<Attached<K::Socket>>, ChainError> {
    let Some(state) = socket_state(sockets, socket)? else { return Ok(None) };
    let json = tables
        .subscription(&state.key)?
        .ok_or_else(|| ChainError(format!("subscription {} is not registered", state.key)))?;
    let spec: Spec = serde_json::from_str(&json).map_err(|e| ChainError(e.to_string()))?;
    Ok(Some(Attached::new(socket.clone(), state.key.into(), state.cursor, LoadedSpec::of(spec), now_ms)))
}
