//! The chain object's side of streaming: a gateway attaches one internal socket per
//! subscription (accepted with the hibernation API), and the object sends it batches of
//! rendered `next` payloads from storage at its cursor (subscriptions alike share them).
//! What to send, when to fan out and where to start are `stream::fanout`'s and
//! `stream::subscribe`'s decisions; this file performs them over the attached sockets kept
//! in memory (`attached`), and keeps the registry of specs and the saved-cursor moves
//! waiting for their write (`stream::cursors`).

use std::cell::RefMut;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use wasm_bindgen::JsValue;
use worker::{Headers, Request, Response, Result, WebSocket, WebSocketPair};

use super::attached::{Attached, AttachedList, LoadedSpec, Spec};
use super::object::{internal, refuse, ChainObject};
use crate::edge::js_socket::send_js;
use crate::edge::{audit, now_ms, settings};
use crate::log::{Offset, Page};
use crate::rpc;
use crate::rpc::delivery::{parse_ack, WINDOW};
use crate::stream::cursors::CURSOR_FLUSH_MS;
use crate::stream::fanout::{
    pump, resolve_start, BatchEncoding, Cursor, EventCache, FanOutStart, Pumped, SocketState, StartError, TurnBudget,
};
use crate::stream::protocol::close;
use crate::stream::subscribe::still_granted;

/// A socket's [`SocketState`], kept as its attachment (`None`: it has none). One that does
/// not decode is lost state: an error, which closes the socket so the gateway reattaches.
fn socket_state(ws: &WebSocket) -> Result<Option<SocketState>> {
    let Some(text) = ws.deserialize_attachment::<String>()? else {
        return Ok(None);
    };
    SocketState::decode(&text)
        .map(Some)
        .ok_or_else(|| worker::Error::RustError("a subscription socket's attachment does not decode".into()))
}

/// A pump shared in a turn, and the form its messages are sent in.
type SharedMessagesKey = (*const Pumped, BatchEncoding);

/// One turn's serving of subscriptions: the pages, projections and pumps they share, the
/// storage budget, and each shared message as the runtime's value, made once and sent to
/// every socket it is for.
struct ServeTurn {
    cache: EventCache,
    budget: TurnBudget,
    /// By the pump's address and the encoding; the `Rc` held here keeps that address unique
    /// in the turn.
    messages: HashMap<SharedMessagesKey, (Rc<Pumped>, Vec<JsValue>)>,
}

impl ServeTurn {
    /// `recent`: the events the object stored since its last fan-out, up to the head.
    fn new(recent: Option<Rc<Page>>) -> Self {
        ServeTurn { cache: EventCache::starting_with(recent), budget: TurnBudget::PER_TURN, messages: HashMap::new() }
    }

    /// Sends what `pump` gave a subscription with `keys` from offset `from`. A pump the
    /// turn shares is made into the runtime's messages once; one it does not share (it is over
    /// the turn's `SHARED_PUMP_BYTES`) is sent and let go, so a turn never holds more.
    fn send(&mut self, sub: &Attached, from: Offset, pumped: &Rc<Pumped>) -> Result<()> {
        if pumped.messages.is_empty() {
            return Ok(());
        }
        let (ws, encoding) = (&sub.ws, sub.loaded.spec.batches);
        if !self.cache.shares(&sub.loaded.keys, from, pumped) {
            for message in &pumped.messages {
                match encoding {
                    BatchEncoding::Binary => ws.send_with_bytes(message.as_bytes())?,
                    BatchEncoding::Text => ws.send_with_str(message)?,
                }
            }
            return Ok(());
        }
        let (_, messages) = self.messages.entry((Rc::as_ptr(pumped), encoding)).or_insert_with(|| {
            (pumped.clone(), pumped.messages.iter().map(|m| runtime_message(m, encoding)).collect())
        });
        for message in messages.iter() {
            send_js(ws, message)?;
        }
        Ok(())
    }
}

/// A message for a gateway as the runtime sends it (see `rpc::delivery`).
fn runtime_message(message: &str, encoding: BatchEncoding) -> JsValue {
    match encoding {
        BatchEncoding::Binary => js_sys::Uint8Array::from(message.as_bytes()).into(),
        BatchEncoding::Text => JsValue::from_str(message),
    }
}

/// Why an internal socket is closed when its subscription's state cannot be read.
const STATE_LOST: &str = "subscription state lost; resubscribe";

impl ChainObject {
    /// Attaches a gateway's internal socket for one subscription.
    pub(super) fn subscribe(self: &Rc<Self>, req: &Request) -> Result<Response> {
        let header = req.headers().get(rpc::SUBSCRIPTION_HEADER)?.unwrap_or_default();
        let spec: Spec =
            rpc::decode_spec(&header).ok_or_else(|| worker::Error::RustError("malformed subscription spec".into()))?;
        self.remember_chain(req)?;
        let chain = req.headers().get(rpc::CHAIN_HEADER)?;
        let granted =
            settings::load(&self.env).and_then(|settings| still_granted(&settings.config, chain.as_deref(), &spec));
        if let Err(why) = granted {
            audit(
                "subscription.revoked",
                serde_json::json!({
                    "clientId": spec.client_id, "connectionId": spec.connection_id, "operationId": spec.id,
                    "reason": why,
                }),
            );
            return refuse(403, &rpc::Refusal { code: crate::graphql::codes::FORBIDDEN.into(), message: why });
        }
        let bounds = self.log.bounds().map_err(internal)?;
        let loaded = LoadedSpec::of(spec);
        let saved = self.cursors.borrow().newest(&loaded.cursor_key, self.storage().saved_cursor(&loaded.cursor_key)?);
        let spec = &loaded.spec;
        let (start, gap) = match resolve_start(spec.start, &bounds, saved, now_ms()) {
            Ok(s) => s,
            Err(StartError::OutOfRange { requested, head }) => {
                return refuse(409, &rpc::Refusal::offset_out_of_range("offset", requested, head));
            }
        };
        // Before the new socket is accepted: a list rebuilt after it would hold it twice.
        drop(self.attached());
        let key = crate::auth::token::random_id();
        let pair = WebSocketPair::new()?;
        let conn_tag = rpc::connection_tag(&spec.connection_id);
        self.state.accept_websocket_with_tags(&pair.server, &[key.as_str(), spec.app_key.as_str(), conn_tag.as_str()]);
        let cursor = Cursor { next: start, inflight: 0 };
        pair.server.serialize_attachment(SocketState { key: key.clone(), cursor }.encode())?;
        // Its registry row is written by the next flush, within a second (see `attached`).
        self.attached().insert(Attached::attaching(pair.server, key.into(), cursor, loaded));
        self.flush_later(true);
        let headers = Headers::new();
        headers.set(rpc::START_HEADER, &start.to_string())?;
        // The gateway keeps the gap until a frame it forwards carries it.
        if let Some(gap) = gap {
            headers.set(rpc::GAP_HEADER, &gap.requested.to_string())?;
        }
        Ok(Response::from_websocket(pair.client)?.with_headers(headers))
    }

    /// The attached subscriptions, rebuilt from the runtime's sockets if this instance has
    /// not yet (it started, or woke from hibernation). A socket whose state cannot be read
    /// is closed, so that its gateway reattaches.
    pub(super) fn attached(&self) -> RefMut<'_, AttachedList> {
        let mut attached = self.attached.borrow_mut();
        if attached.is_none() {
            let mut list = AttachedList::default();
            for ws in self.state.get_websockets() {
                match self.read_attached(&ws) {
                    Ok(Some(sub)) => list.insert(sub),
                    Ok(None) => {}
                    Err(e) => {
                        worker::console_error!("chain log attached socket: {e}");
                        let _ = ws.close(Some(close::INTERNAL_ERROR), Some(STATE_LOST));
                    }
                }
            }
            *attached = Some(list);
        }
        RefMut::map(attached, |a| a.get_or_insert_with(AttachedList::default))
    }

    /// A socket's subscription as its attachment and the registry table hold it.
    fn read_attached(&self, ws: &WebSocket) -> Result<Option<Attached>> {
        let Some(state) = socket_state(ws)? else { return Ok(None) };
        let json = self
            .storage()
            .subscription(&state.key)?
            .ok_or_else(|| worker::Error::RustError(format!("subscription {} is not registered", state.key)))?;
        let spec: Spec = serde_json::from_str(&json).map_err(|e| worker::Error::RustError(e.to_string()))?;
        Ok(Some(Attached::new(ws.clone(), state.key.into(), state.cursor, LoadedSpec::of(spec))))
    }

    /// A gateway's acknowledgement (`A <count> <through>`): the cursor to save (with the
    /// others moved within [`CURSOR_FLUSH_MS`]), and room in the window to fill.
    pub fn on_gateway_message(self: &Rc<Self>, ws: &WebSocket, text: &str) -> Result<()> {
        let Some((count, through)) = parse_ack(text) else {
            return Ok(());
        };
        // The attachment's key never changes; its cursor may be behind the one in memory.
        let Some(SocketState { key, .. }) = socket_state(ws)? else { return Ok(()) };
        let head = self.log.head().map_err(internal)?;
        let served = {
            let mut attached = self.attached();
            let Some(sub) = attached.get_mut(&key) else { return Ok(()) };
            if through > 0 {
                self.cursors.borrow_mut().record(&sub.loaded.cursor_key, through, now_ms());
            }
            let served = self.serve(sub, head, &mut ServeTurn::new(None), count);
            (served, through > 0 || sub.unwritten())
        };
        match served {
            (Ok(Served::CutShort), unwritten) => {
                self.schedule_fan_out(true);
                self.flush_later(unwritten);
            }
            (Ok(Served::Waiting), unwritten) => self.flush_later(unwritten),
            (Ok(Served::Failed), _) => self.fail(ws),
            (Err(e), _) => {
                worker::console_error!("chain log serve: {e}");
                let _ = ws.close(Some(close::INTERNAL_ERROR), Some(STATE_LOST));
            }
        }
        Ok(())
    }

    /// The gateway closed a subscription's socket: forget it and complete the close.
    pub fn on_gateway_close(self: &Rc<Self>, ws: &WebSocket, code: usize) {
        self.forget(ws);
        let code = close::echo(u16::try_from(code).unwrap_or(0));
        let _ = ws.close(Some(code), Some("closed"));
    }

    /// Sends a subscription what its window and the turn's budget allow, from storage at
    /// its cursor. Its cursor moves in memory only (see `attached`).
    fn serve(&self, sub: &mut Attached, head: Offset, turn: &mut ServeTurn, acked: u32) -> Result<Served> {
        if !sub.cursor.acknowledge(acked, head) {
            return Ok(Served::Waiting);
        }
        let LoadedSpec { spec, keys, .. } = &sub.loaded;
        let from = sub.cursor.next;
        let pumped = pump(&self.log, spec, keys, &mut sub.cursor, head, WINDOW, &mut turn.cache, &mut turn.budget)
            .map_err(internal)?;
        turn.send(sub, from, &pumped)?;
        self.deliveries.set(self.deliveries.get() + u64::from(pumped.frames));
        Ok(if pumped.failed {
            Served::Failed
        } else if pumped.cut_short {
            Served::CutShort
        } else {
            Served::Waiting
        })
    }

    /// A subscription failed (its `E` message said why; the gateway ends the operation).
    fn fail(self: &Rc<Self>, ws: &WebSocket) {
        self.forget(ws);
        let _ = ws.close(Some(close::NORMAL), Some("subscription failed"));
    }

    /// Schedules a fan-out as `FanOutSchedule` decides: after a publish, or `resume` after
    /// one ran out of budget. The output gate still holds its frames until the rows they
    /// carry are durable.
    pub(super) fn schedule_fan_out(self: &Rc<Self>, resume: bool) {
        let start = self.fan_out.borrow_mut().request(resume, now_ms(), || !self.attached().is_empty());
        match start {
            None => {}
            Some(FanOutStart::ThisTurn) => self.fan_out_and_go_on(),
            Some(FanOutStart::After(wait)) => {
                let object = self.clone();
                wasm_bindgen_futures::spawn_local(async move {
                    worker::Delay::from(std::time::Duration::from_millis(wait)).await;
                    object.fan_out_and_go_on();
                });
            }
        }
    }

    fn fan_out_and_go_on(self: &Rc<Self>) {
        if self.fan_out() {
            // The turn's budget ran out: go on in a later turn, after whatever else
            // (publishes, acknowledgements) is waiting.
            self.schedule_fan_out(true);
        }
    }

    /// Serves every subscription behind the head within one turn's budget, starting where
    /// the schedule says. Returns whether some were left unserved.
    fn fan_out(self: &Rc<Self>) -> bool {
        let Ok(head) = self.log.head() else { return false };
        let mut behind = false;
        let mut unwritten = false;
        let mut failed = Vec::new();
        {
            let mut attached = self.attached();
            let Some(first) = self.fan_out.borrow_mut().run(now_ms(), attached.len()) else {
                return false;
            };
            let mut turn = ServeTurn::new(self.recent.borrow_mut().take_page(head));
            for sub in attached.rotated_from(first) {
                match self.serve(sub, head, &mut turn, 0) {
                    Ok(Served::Waiting) => {}
                    Ok(Served::CutShort) => behind = true,
                    Ok(Served::Failed) => failed.push(sub.ws.clone()),
                    Err(e) => {
                        // One broken subscription must not stop delivery to the others.
                        worker::console_error!("chain log fan-out: {e}");
                        let _ = sub.ws.close(Some(close::INTERNAL_ERROR), Some(STATE_LOST));
                    }
                }
                unwritten |= sub.unwritten();
            }
        }
        for ws in failed {
            self.fail(&ws);
        }
        self.flush_later(unwritten);
        behind
    }

    /// When `needed`, makes sure a flush runs within [`CURSOR_FLUSH_MS`]: of the saved
    /// cursors' moves and of the sockets' attachments.
    fn flush_later(self: &Rc<Self>, needed: bool) {
        if !needed || self.flush_scheduled.replace(true) {
            return;
        }
        let object = self.clone();
        wasm_bindgen_futures::spawn_local(async move {
            worker::Delay::from(std::time::Duration::from_millis(CURSOR_FLUSH_MS)).await;
            object.flush_scheduled.set(false);
            let left = object.flush();
            // A registry row that failed to write is tried again: a woken object needs it.
            object.flush_later(left);
        });
    }

    /// Writes what is kept in memory only, in one commit (no await between the writes):
    /// every pending saved-cursor move, the registry rows of subscriptions attached or
    /// ended since the last flush, and every socket's cursor into its attachment. Returns
    /// whether a registry row is left unwritten.
    pub(super) fn flush(&self) -> bool {
        let storage = self.storage();
        let moved = self.cursors.borrow_mut().take();
        for (key, (through, at)) in moved {
            if let Err(e) = storage.save_cursor(&key, through, at) {
                // The cursor stays where it was saved: a resume repeats events, loses none.
                worker::console_error!("saving a stream cursor: {e}");
            }
        }
        for key in self.unregistered.take() {
            // A row left behind is dropped when the object next starts (`drop_orphans`).
            if let Err(e) = storage.unregister_subscription(&key) {
                worker::console_error!("deleting a subscription's registry row: {e}");
            }
        }
        let mut left = false;
        if let Some(attached) = self.attached.borrow_mut().as_mut() {
            for sub in attached.iter_mut() {
                if !sub.registered {
                    match sub.spec_json().and_then(|json| storage.register_subscription(&sub.key, &json)) {
                        Ok(()) => sub.registered = true,
                        Err(e) => {
                            worker::console_error!("writing a subscription's registry row: {e}");
                            left = true;
                        }
                    }
                }
                if let Err(e) = sub.write_attachment() {
                    worker::console_error!("writing a subscription's attachment: {e}");
                }
            }
        }
        left
    }

    pub(super) fn forget(self: &Rc<Self>, ws: &WebSocket) {
        if let Ok(Some(state)) = socket_state(ws) {
            // Rebuilt first if need be: a list rebuilt later could still find the socket.
            let removed = self.attached().remove(&state.key);
            // One never written has no row to delete.
            if removed.is_none_or(|sub| sub.registered) {
                self.unregistered.borrow_mut().push(state.key.into());
                self.flush_later(true);
            }
        }
    }

    /// Registry rows whose socket is gone (the object restarted): sockets never survive
    /// a restart, only hibernation, so a row without a socket is dead.
    pub(super) fn drop_orphans(&self) {
        let live: HashSet<String> = self
            .state
            .get_websockets()
            .iter()
            .filter_map(|ws| socket_state(ws).ok().flatten().map(|state| state.key))
            .collect();
        let Ok(keys) = self.storage().subscription_keys() else { return };
        for key in keys.into_iter().filter(|k| !live.contains(k)) {
            let _ = self.storage().unregister_subscription(&key);
        }
    }
}

/// How serving a subscription ended.
enum Served {
    /// It has what its window and the head allow.
    Waiting,
    /// The turn's budget ran out before it had: it needs another turn.
    CutShort,
    /// A frame over the limit ended it.
    Failed,
}
