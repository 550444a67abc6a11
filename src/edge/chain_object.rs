//! `ChainLog`: one Durable Object per chain code (`idFromName(chainCode)`), owning that
//! chain's offset log in its SQLite storage.
//!
//! Platform invariants this file relies on:
//! - SQL `exec` is synchronous. `append` runs head read, inserts and head write inside one
//!   `transactionSync`, so no other request interleaves and a statement that throws midway
//!   rolls the whole batch back: nothing of it is stored or delivered, and the publisher,
//!   told nothing was stored, resends it. (Should a store ever keep some rows anyway, the
//!   head is never read below the highest stored offset, so numbering cannot repeat.)
//! - The output gate holds the response until those writes are durable: a publisher never
//!   sees an offset that a crash could take back.
//! - A deploy or eviction restarts the object: nothing here lives only in memory except
//!   caches (head, subscription specs, the pending alarm, the fan-out pace) that are
//!   rebuilt from storage on demand.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use worker::{
    durable_object, DurableObject, Env, Headers, Request, Response, Result, SqlStorage, SqlStorageValue, State,
    WebSocket, WebSocketIncomingMessage, WebSocketPair,
};

use wasm_bindgen::prelude::*;

use crate::graphql::ProjectionPlan;
use crate::log::event_id::index_key;
use crate::log::{ChainLog as Log, LogStore, NewEvent, Offset, StoreError, StoredEvent};
use crate::rpc;
use crate::rpc::append::decode_batch;
use crate::rpc::delivery::parse_ack;
use crate::stream::fanout::{
    cursor_key, fan_out_pace_ms, projection_key, pump, resolve_start, Cursor, EventCache, StartError, SubscriptionSpec,
    TurnBudget, SAVED_CURSOR_TTL_MS,
};
use crate::stream::relay::WINDOW;

mod webhooks;

/// Durable Object SQL binds at most 100 parameters per statement.
const MAX_BOUND_PARAMETERS: usize = 100;

// `storage.transactionSync(fn)` commits what `fn` wrote, or rolls it all back if `fn` throws.
// The Rust body answers whether to commit; this wrapper throws for it, so no exception ever
// unwinds through wasm frames.
#[wasm_bindgen(
    inline_js = "export function transaction_sync(storage, body) { storage.transactionSync(() => { if (!body()) { throw new Error('rolled back'); } }); }"
)]
extern "C" {
    #[wasm_bindgen(catch)]
    fn transaction_sync(storage: &JsValue, body: &js_sys::Function) -> std::result::Result<(), JsValue>;
}

type Spec = SubscriptionSpec<ProjectionPlan>;
/// A spec and its projection key (subscriptions with equal keys share projections).
type LoadedSpec = (Rc<Spec>, Rc<str>);

/// Kept on each internal socket, so it survives hibernation. Small on purpose (the
/// runtime caps attachments at 2 KiB): the spec itself lives in the `subscriptions` table.
#[derive(Serialize, Deserialize)]
struct Attachment {
    key: String,
    cursor: Cursor,
}

#[durable_object]
pub struct ChainLog {
    core: Rc<Core>,
}

/// The object's state, shared with the fan-out task it schedules.
pub struct Core {
    state: State,
    env: Env,
    log: Log<SqlLogStore>,
    /// Specs of attached subscriptions, loaded from the `subscriptions` table on demand.
    specs: RefCell<HashMap<String, LoadedSpec>>,
    /// A fan-out is scheduled and has not run yet.
    fan_out_pending: Cell<bool>,
    /// When the last fan-out ran (ms) and to how many sockets: paces the next one.
    last_fan_out: Cell<(u64, usize)>,
    /// Fan-outs so far: where the next one starts among the sockets.
    fan_out_turn: Cell<usize>,
    /// When the alarm this instance set will fire (ms). Spares a storage round trip on
    /// every publish; lost on restart, when the next publish asks storage again.
    alarm_at: Cell<Option<u64>>,
    /// The chain this object holds (from the gateway's requests, kept in `names`): the
    /// alarm, which comes with no request, needs it to find the chain's webhooks.
    chain_code: RefCell<Option<String>>,
    /// Webhooks with an attempt in flight in this instance.
    webhooks_in_flight: RefCell<HashSet<String>>,
    /// Every configured webhook has a state row (see `register_webhooks`).
    webhooks_registered: Cell<bool>,
    /// `next` frames sent since `started_at` (ms): the admin API's delivery count. Kept in
    /// memory, not storage: a write per fan-out would cost more than the count is worth.
    deliveries: Cell<u64>,
    started_at: u64,
}

impl std::ops::Deref for ChainLog {
    type Target = Core;

    fn deref(&self) -> &Core {
        &self.core
    }
}

pub struct SqlLogStore {
    pub sql: SqlStorage,
    storage: JsValue,
}

fn store_err(e: worker::Error) -> StoreError {
    StoreError(e.to_string())
}

fn int(v: u64) -> SqlStorageValue {
    // Offsets and millisecond times stay far below 2^53, the largest exact JS number.
    SqlStorageValue::from(v as i64)
}

#[derive(Deserialize)]
struct Row {
    seq: u64,
    unique_event_id: String,
    hotel_id: String,
    module_name: String,
    event_name: String,
    stored_at: u64,
    body: String,
}

impl SqlLogStore {
    fn new(sql: SqlStorage, storage: JsValue) -> Result<Self> {
        sql.exec(
            "CREATE TABLE IF NOT EXISTS events (
                seq INTEGER PRIMARY KEY,
                id_key INTEGER NOT NULL,
                unique_event_id TEXT NOT NULL,
                hotel_id TEXT NOT NULL,
                module_name TEXT NOT NULL,
                event_name TEXT NOT NULL,
                stored_at INTEGER NOT NULL,
                body TEXT NOT NULL
            )",
            None,
        )?;
        sql.exec("CREATE INDEX IF NOT EXISTS events_stored_at ON events(stored_at)", None)?;
        // Ids are looked up by an integer key (then compared in full; see `event_id`): an
        // integer index is a fraction of the size of one over the id text, and time-ordered
        // keys for UUIDv7 ids keep each batch's index writes on the index's last pages.
        sql.exec("CREATE INDEX IF NOT EXISTS events_id_key ON events(id_key)", None).map_err(|e| {
            worker::Error::RustError(format!(
                "{e}: this log's storage was written by a pre-release build (ids indexed another way) and is not migrated; remove the local state (.wrangler/state) or use a new chain code"
            ))
        })?;
        sql.exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)", None)?;
        // The last offset delivered per app key and filter (server-side resume, 24 h; see
        // `fanout::cursor_key`). It only moves forward.
        sql.exec(
            "CREATE TABLE IF NOT EXISTS stream_cursors (cursor_key TEXT PRIMARY KEY, offset_delivered INTEGER NOT NULL, updated_at INTEGER NOT NULL)",
            None,
        )?;
        // Specs of attached subscriptions (too large for a socket attachment).
        sql.exec("CREATE TABLE IF NOT EXISTS subscriptions (key TEXT PRIMARY KEY, spec TEXT NOT NULL)", None)?;
        sql.exec("CREATE TABLE IF NOT EXISTS names (key TEXT PRIMARY KEY, value TEXT NOT NULL)", None)?;
        // One row per webhook: its delivery state (`webhook::WebhookState`, JSON).
        sql.exec(webhooks::SCHEMA, None)?;
        Ok(SqlLogStore { sql, storage })
    }

    fn meta(&self, key: &str) -> std::result::Result<Option<u64>, StoreError> {
        #[derive(Deserialize)]
        struct V {
            value: u64,
        }
        let rows: Vec<V> = self
            .sql
            .exec("SELECT value FROM meta WHERE key = ?", vec![key.into()])
            .and_then(|c| c.to_array())
            .map_err(store_err)?;
        Ok(rows.first().map(|r| r.value))
    }

    fn set_meta(&self, key: &str, value: u64) -> std::result::Result<(), StoreError> {
        self.sql
            .exec(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                vec![key.into(), int(value)],
            )
            .map(|_| ())
            .map_err(store_err)
    }
}

impl LogStore for SqlLogStore {
    /// The recorded head, or the highest stored offset if that is higher: a batch whose
    /// rows were written but whose head update failed (an exception between the two
    /// statements) must not make the next batch reuse its offsets.
    fn head(&self) -> std::result::Result<Offset, StoreError> {
        #[derive(Deserialize)]
        struct H {
            head: u64,
        }
        let rows: Vec<H> = self
            .sql
            .exec(
                "SELECT MAX(COALESCE((SELECT value FROM meta WHERE key = 'head'), 0), COALESCE((SELECT MAX(seq) FROM events), 0)) AS head",
                None,
            )
            .and_then(|c| c.to_array())
            .map_err(store_err)?;
        Ok(rows.first().map(|r| r.head).unwrap_or(0))
    }

    fn set_head(&self, head: Offset) -> std::result::Result<(), StoreError> {
        self.set_meta("head", head)
    }

    fn offsets_of(&self, ids: &[&str]) -> std::result::Result<HashMap<String, Offset>, StoreError> {
        #[derive(Deserialize)]
        struct Found {
            unique_event_id: String,
            seq: u64,
        }
        let mut found = HashMap::new();
        for chunk in ids.chunks(MAX_BOUND_PARAMETERS) {
            let query = format!(
                "SELECT unique_event_id, seq FROM events WHERE id_key IN ({})",
                vec!["?"; chunk.len()].join(", ")
            );
            let rows: Vec<Found> = self
                .sql
                .exec(&query, chunk.iter().map(|id| int(index_key(id))).collect::<Vec<_>>())
                .and_then(|c| c.to_array())
                .map_err(store_err)?;
            // Two ids may share a key: only the ids asked for count.
            found.extend(
                rows.into_iter()
                    .filter(|r| chunk.contains(&r.unique_event_id.as_str()))
                    .map(|r| (r.unique_event_id, r.seq)),
            );
        }
        Ok(found)
    }

    fn insert_all(&self, events: &[NewEvent<'_>]) -> std::result::Result<(), StoreError> {
        // Eight parameters a row, as many rows as the parameter limit allows per statement.
        for chunk in events.chunks(MAX_BOUND_PARAMETERS / 8) {
            let query = format!(
                "INSERT INTO events (seq, id_key, unique_event_id, hotel_id, module_name, event_name, stored_at, body) VALUES {}",
                vec!["(?, ?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ")
            );
            let mut bindings = Vec::with_capacity(chunk.len() * 8);
            for &NewEvent { offset, stored_at, event: e } in chunk {
                bindings.extend([
                    int(offset),
                    int(index_key(&e.unique_event_id)),
                    e.unique_event_id.as_str().into(),
                    e.hotel_id.as_str().into(),
                    e.module_name.as_str().into(),
                    e.event_name.as_str().into(),
                    int(stored_at),
                    e.body.as_str().into(),
                ]);
            }
            self.sql.exec(&query, bindings).map_err(store_err)?;
        }
        Ok(())
    }

    fn oldest(&self) -> std::result::Result<Option<(Offset, u64)>, StoreError> {
        #[derive(Deserialize)]
        struct O {
            seq: u64,
            stored_at: u64,
        }
        let rows: Vec<O> = self
            .sql
            .exec("SELECT seq, stored_at FROM events ORDER BY seq LIMIT 1", None)
            .and_then(|c| c.to_array())
            .map_err(store_err)?;
        Ok(rows.first().map(|r| (r.seq, r.stored_at)))
    }

    fn count(&self) -> std::result::Result<u64, StoreError> {
        #[derive(Deserialize)]
        struct N {
            n: u64,
        }
        let rows: Vec<N> =
            self.sql.exec("SELECT COUNT(*) AS n FROM events", None).and_then(|c| c.to_array()).map_err(store_err)?;
        Ok(rows.first().map(|r| r.n).unwrap_or(0))
    }

    fn read_from(&self, from: Offset, limit: usize) -> std::result::Result<Vec<StoredEvent>, StoreError> {
        let rows: Vec<Row> = self
            .sql
            .exec(
                "SELECT seq, unique_event_id, hotel_id, module_name, event_name, stored_at, body FROM events WHERE seq >= ? ORDER BY seq LIMIT ?",
                vec![int(from), int(limit as u64)],
            )
            .and_then(|c| c.to_array())
            .map_err(store_err)?;
        Ok(rows
            .into_iter()
            .map(|r| StoredEvent {
                offset: r.seq,
                unique_event_id: r.unique_event_id,
                hotel_id: r.hotel_id,
                module_name: r.module_name,
                event_name: r.event_name,
                stored_at: r.stored_at,
                body: r.body,
            })
            .collect())
    }

    fn atomically<T>(
        &self,
        f: impl FnOnce() -> std::result::Result<T, StoreError>,
    ) -> std::result::Result<T, StoreError> {
        let mut f = Some(f);
        let mut outcome: Option<std::result::Result<T, StoreError>> = None;
        {
            let mut body = || {
                let result = f.take().map(|f| f());
                let commit = matches!(result, Some(Ok(_)));
                outcome = result;
                commit
            };
            let body: Box<dyn FnMut() -> bool + '_> = Box::new(&mut body);
            // SAFETY: the closure is called only by `transactionSync`, synchronously, inside
            // this block, and dropped at its end: it never outlives the borrows it holds.
            let body: Box<dyn FnMut() -> bool + 'static> = unsafe { std::mem::transmute(body) };
            let closure = Closure::wrap(body);
            let thrown = transaction_sync(&self.storage, closure.as_ref().unchecked_ref());
            drop(closure);
            if let (Err(e), None | Some(Ok(_))) = (&thrown, &outcome) {
                // The commit itself failed: nothing was written.
                return Err(StoreError(format!(
                    "transaction failed: {}",
                    e.as_string().unwrap_or_else(|| format!("{e:?}"))
                )));
            }
        }
        outcome.unwrap_or_else(|| Err(StoreError("the transaction did not run".into())))
    }

    fn delete_stored_before(&self, cutoff: u64, limit: usize) -> std::result::Result<usize, StoreError> {
        self.sql
            .exec(
                "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE stored_at < ? ORDER BY seq LIMIT ?)",
                vec![int(cutoff), int(limit as u64)],
            )
            .map(|c| c.rows_written())
            .map_err(store_err)
    }
}

/// An absolute alarm time. (A bare integer would be read as an offset from now.)
fn scheduled_at(ms: u64) -> worker::ScheduledTime {
    worker::ScheduledTime::new(js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms as f64)))
}

fn internal(e: StoreError) -> worker::Error {
    worker::Error::RustError(e.0)
}

/// A refusal the gateway turns into the vendor's or operator's error.
fn refuse(status: u16, refusal: &rpc::Refusal) -> Result<Response> {
    Response::from_json(refusal).map(|r| r.with_status(status))
}

impl Core {
    fn retention_ms(&self) -> u64 {
        super::settings::load(&self.env)
            .map(|s| s.config.retention_seconds)
            .unwrap_or(crate::config::DEFAULT_RETENTION_SECONDS)
            * 1000
    }

    /// Makes sure a retention alarm is pending while events are retained. Only an alarm in
    /// the future counts: one firing right now still reads as set in storage (and is cleared
    /// when its handler ends). An alarm this instance set for later needs no storage read.
    async fn ensure_alarm(&self, now: u64) -> Result<()> {
        if self.alarm_at.get().is_some_and(|at| at > now) {
            return Ok(());
        }
        if let Some(at) = self.log.next_expiry(self.retention_ms()).map_err(internal)? {
            self.wake_by(at).await?;
        }
        Ok(())
    }

    /// An alarm at or before `at` (ms) is pending: the one already set, or this one. Safe
    /// against callers interleaving at its awaits: the time is recorded before the write is
    /// issued, and storage applies alarm writes in the order they were issued, so the
    /// earliest request wins.
    async fn wake_by(&self, at: u64) -> Result<()> {
        let now = super::now_ms();
        let covered = |set: Option<u64>| set.is_some_and(|set| set > now && set <= at);
        if covered(self.alarm_at.get()) {
            return Ok(());
        }
        let storage = self.state.storage();
        if self.alarm_at.get().is_none() {
            // Not known in this instance (it restarted): storage may hold an earlier one.
            if let Some(set) = storage.get_alarm().await?.filter(|set| *set > now as i64) {
                let set = set as u64;
                if self.alarm_at.get().is_none_or(|known| set < known) {
                    self.alarm_at.set(Some(set));
                }
            }
            if covered(self.alarm_at.get()) {
                return Ok(());
            }
        }
        let at = at.max(now + 1);
        self.alarm_at.set(Some(at));
        storage.set_alarm(scheduled_at(at)).await?;
        Ok(())
    }

    /// The chain code, from memory or storage.
    fn chain_code(&self) -> Option<String> {
        if let Some(code) = self.chain_code.borrow().as_ref() {
            return Some(code.clone());
        }
        #[derive(Deserialize)]
        struct Row {
            value: String,
        }
        let rows: Vec<Row> = self
            .log
            .store()
            .sql
            .exec("SELECT value FROM names WHERE key = 'chain'", None)
            .and_then(|c| c.to_array())
            .ok()?;
        let code = rows.into_iter().next()?.value;
        *self.chain_code.borrow_mut() = Some(code.clone());
        Some(code)
    }

    /// Keeps the chain code a gateway request names (the object's name: it never changes).
    fn remember_chain(&self, req: &Request) -> Result<()> {
        if self.chain_code.borrow().is_some() {
            return Ok(());
        }
        let Some(code) = req.headers().get(rpc::CHAIN_HEADER)? else { return Ok(()) };
        self.log.store().sql.exec(
            "INSERT INTO names (key, value) VALUES ('chain', ?) ON CONFLICT(key) DO NOTHING",
            vec![code.as_str().into()],
        )?;
        *self.chain_code.borrow_mut() = Some(code);
        Ok(())
    }

    async fn append(self: &Rc<Self>, mut req: Request) -> Result<Response> {
        self.remember_chain(&req)?;
        self.register_webhooks()?;
        // The Worker validated and encoded the batch (`wire`): here it is only sliced.
        let batch = decode_batch(&req.bytes().await?).map_err(worker::Error::RustError)?;
        let now = super::now_ms();
        // One synchronous turn: offsets assigned and rows written together (see top).
        let offsets = self.log.append(&batch, now).map_err(internal)?;
        self.log.store().set_meta("last_publish_at", now).map_err(internal)?;
        Core::schedule_fan_out(self);
        self.ensure_alarm(now).await?;
        // Before the answer: once a batch is acknowledged, its webhook deliveries are begun
        // or scheduled in storage (a restart right after still makes them).
        if let Err(e) = self.wake_webhooks(1).await {
            worker::console_error!("webhooks after a publish: {e}");
        }
        Response::from_json(&rpc::Stored { offsets })
    }

    fn stats(&self) -> Result<Response> {
        let stats = self.log.stats().map_err(internal)?;
        Response::from_json(&rpc::ChainNumbers {
            head_offset: stats.head_offset,
            oldest_offset: stats.oldest_offset,
            retained_events: stats.retained_events,
            subscribers: self.state.get_websockets().len(),
            last_publish_at: self.log.store().meta("last_publish_at").map_err(internal)?,
            deliveries: self.deliveries.get(),
            counting_since: self.started_at,
        })
    }
}

impl Core {
    /// A subscription's spec and projection key, from memory or from the registry table.
    fn spec(&self, key: &str) -> Result<LoadedSpec> {
        if let Some(entry) = self.specs.borrow().get(key) {
            return Ok(entry.clone());
        }
        #[derive(Deserialize)]
        struct Row {
            spec: String,
        }
        let rows: Vec<Row> =
            self.log.store().sql.exec("SELECT spec FROM subscriptions WHERE key = ?", vec![key.into()])?.to_array()?;
        let row =
            rows.first().ok_or_else(|| worker::Error::RustError(format!("subscription {key} is not registered")))?;
        let spec: Spec = serde_json::from_str(&row.spec).map_err(|e| worker::Error::RustError(e.to_string()))?;
        let projection = projection_key(&spec);
        let entry = (Rc::new(spec), projection);
        self.specs.borrow_mut().insert(key.to_string(), entry.clone());
        Ok(entry)
    }

    /// Sends a subscription what its window and the turn's budget allow, from storage at
    /// its cursor. Returns whether the budget cut it short (it needs another turn).
    fn serve(
        &self,
        ws: &WebSocket,
        head: Offset,
        cache: &mut EventCache,
        budget: &mut TurnBudget,
        acked: u32,
    ) -> Result<bool> {
        let Some(mut att) = ws.deserialize_attachment::<Attachment>()? else {
            return Ok(false);
        };
        att.cursor.inflight = att.cursor.inflight.saturating_sub(acked);
        if att.cursor.next > head && acked == 0 {
            return Ok(false);
        }
        let (spec, projection) = self.spec(&att.key)?;
        let pumped =
            pump(&self.log, &spec, &projection, &mut att.cursor, head, WINDOW, cache, budget).map_err(internal)?;
        for message in &pumped.messages {
            ws.send_with_str(message)?;
        }
        self.deliveries.set(self.deliveries.get() + u64::from(pumped.frames));
        if pumped.failed {
            // The `E` message said why; the gateway ends the operation.
            self.forget(ws);
            let _ = ws.close(Some(crate::stream::protocol::close::NORMAL), Some("subscription failed"));
            return Ok(false);
        }
        ws.serialize_attachment(&att)?;
        Ok(pumped.cut_short)
    }

    /// Fan-out runs in a turn of its own, right after this one, or once the pace for this
    /// many subscriptions allows ([`fan_out_pace_ms`]). Under load, several publishes land
    /// before it runs and their events go out as one batch per subscriber: fewer, larger
    /// messages exactly when messages are what saturates the object. Frames
    /// still come from storage at each cursor, so timing cannot change what is delivered,
    /// and the output gate still holds them until the rows are durable.
    fn schedule_fan_out(self: &Rc<Self>) {
        Core::schedule(self, false);
    }

    /// `resume`: the last fan-out ran out of budget; the next runs in the next turn, unpaced
    /// (a timer of 0 still lets everything already waiting run first).
    fn schedule(self: &Rc<Self>, resume: bool) {
        if self.fan_out_pending.get() {
            return;
        }
        // With no socket attached there is nobody to send to; a subscription attaching later
        // reads from storage at its cursor, so skipping this misses nothing. The sockets are
        // listed only when the last fan-out found none: listing them is an array of every
        // socket, which the fan-out itself builds again.
        let (last_at, sockets) = self.last_fan_out.get();
        if sockets == 0 && self.state.get_websockets().is_empty() {
            return;
        }
        self.fan_out_pending.set(true);
        let core = self.clone();
        let wait = if resume { 0 } else { (last_at + fan_out_pace_ms(sockets)).saturating_sub(super::now_ms()) };
        wasm_bindgen_futures::spawn_local(async move {
            worker::Delay::from(std::time::Duration::from_millis(wait)).await;
            core.fan_out_pending.set(false);
            if core.fan_out() {
                // The turn's budget ran out: go on in a later turn, after whatever else
                // (publishes, acknowledgements) is waiting.
                Core::schedule(&core, true);
            }
        });
    }

    /// Serves every subscription behind the head within one turn's budget, starting at a
    /// different socket each time so that none always waits for the others' scans. Returns
    /// whether some were left unserved.
    fn fan_out(&self) -> bool {
        let sockets = self.state.get_websockets();
        self.last_fan_out.set((super::now_ms(), sockets.len()));
        if sockets.is_empty() {
            return false;
        }
        let Ok(head) = self.log.head() else { return false };
        let mut cache = EventCache::default();
        let mut budget = TurnBudget::PER_TURN;
        let first = self.fan_out_turn.get() % sockets.len();
        self.fan_out_turn.set(self.fan_out_turn.get().wrapping_add(1));
        let mut behind = false;
        for ws in sockets[first..].iter().chain(&sockets[..first]) {
            match self.serve(ws, head, &mut cache, &mut budget, 0) {
                Ok(cut_short) => behind |= cut_short,
                Err(e) => {
                    // One broken subscription must not stop delivery to the others.
                    worker::console_error!("chain log fan-out: {e}");
                    let _ = ws.close(
                        Some(crate::stream::protocol::close::INTERNAL_ERROR),
                        Some("subscription state lost; resubscribe"),
                    );
                }
            }
        }
        behind
    }

    /// Attaches a gateway's internal socket for one subscription.
    fn subscribe(&self, req: &Request) -> Result<Response> {
        let header = req.headers().get(rpc::SUBSCRIPTION_HEADER)?.unwrap_or_default();
        let spec: Spec = URL_SAFE_NO_PAD
            .decode(header)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(|| worker::Error::RustError("malformed subscription spec".into()))?;
        // Checked again on every attach, against the configuration this object runs with: a
        // deploy (which is how a configuration changes) restarts every object, so every
        // subscription reattaches here and a revoked grant ends it.
        self.remember_chain(req)?;
        let chain = req.headers().get(rpc::CHAIN_HEADER)?;
        if let Err(why) = self.still_granted(chain.as_deref(), &spec) {
            super::audit(
                "subscription.revoked",
                serde_json::json!({"clientId": spec.client_id, "connectionId": spec.connection_id, "operationId": spec.id, "reason": why}),
            );
            return refuse(403, &rpc::Refusal { code: crate::graphql::codes::FORBIDDEN.into(), message: why });
        }
        let bounds = self.log.bounds().map_err(internal)?;
        let saved = self.saved_cursor(&cursor_key(&spec))?;
        let (start, gap) = match resolve_start(spec.start, &bounds, saved, super::now_ms()) {
            Ok(s) => s,
            Err(StartError::OutOfRange { requested, head }) => {
                return refuse(409, &rpc::Refusal::offset_out_of_range("offset", requested, head));
            }
        };
        let key = crate::auth::token::random_id();
        self.log.store().sql.exec(
            "INSERT INTO subscriptions (key, spec) VALUES (?, ?)",
            vec![
                key.as_str().into(),
                serde_json::to_string(&spec).map_err(|e| worker::Error::RustError(e.to_string()))?.into(),
            ],
        )?;
        let pair = WebSocketPair::new()?;
        let conn_tag = rpc::connection_tag(&spec.connection_id);
        self.state.accept_websocket_with_tags(&pair.server, &[key.as_str(), spec.app_key.as_str(), conn_tag.as_str()]);
        pair.server
            .serialize_attachment(&Attachment { key: key.clone(), cursor: Cursor { next: start, inflight: 0 } })?;
        let projection = projection_key(&spec);
        self.specs.borrow_mut().insert(key, (Rc::new(spec), projection));
        let headers = Headers::new();
        headers.set(rpc::START_HEADER, &start.to_string())?;
        // The gateway keeps the gap until a frame it forwards carries it.
        if let Some(gap) = gap {
            headers.set(rpc::GAP_HEADER, &gap.requested.to_string())?;
        }
        Ok(Response::from_websocket(pair.client)?.with_headers(headers))
    }

    /// Whether the subscription's client still holds what it streams: the client, its app
    /// key and scope, the chain's grant, and every property its filter delivers.
    fn still_granted(&self, chain: Option<&str>, spec: &Spec) -> std::result::Result<(), String> {
        let settings = super::settings::load(&self.env)?;
        let config = &settings.config;
        let client = config
            .client(&spec.client_id)
            .filter(|c| c.app_key == spec.app_key && c.scopes.contains(&crate::config::Scope::Events))
            .ok_or("the client is no longer configured for streaming")?;
        // A gateway of a build before the chain header names no chain: then only the
        // client is checked (its subscribe was authorized by that gateway).
        let Some(chain) = chain else {
            return Ok(());
        };
        let grant =
            client.grants.iter().find(|g| g.chain == chain).ok_or("the chain is no longer granted to this client")?;
        match (&grant.properties, &spec.filter.properties) {
            (None, _) => Ok(()),
            (Some(granted), Some(wanted)) if wanted.is_subset(granted) => Ok(()),
            _ => Err("a property of this subscription is no longer granted to this client".into()),
        }
    }

    fn saved_cursor(&self, key: &str) -> Result<Option<(Offset, u64)>> {
        #[derive(Deserialize)]
        struct Row {
            offset_delivered: u64,
            updated_at: u64,
        }
        let rows: Vec<Row> = self
            .log
            .store()
            .sql
            .exec("SELECT offset_delivered, updated_at FROM stream_cursors WHERE cursor_key = ?", vec![key.into()])?
            .to_array()?;
        Ok(rows.first().map(|r| (r.offset_delivered, r.updated_at)))
    }

    /// Moves the saved cursor forward (never back: a replay of old events that ends early
    /// must not make the next resume repeat what was delivered since).
    fn save_cursor(&self, key: &str, through: Offset) -> Result<()> {
        self.log.store().sql.exec(
            "INSERT INTO stream_cursors (cursor_key, offset_delivered, updated_at) VALUES (?, ?, ?)
             ON CONFLICT(cursor_key) DO UPDATE SET offset_delivered = MAX(offset_delivered, excluded.offset_delivered), updated_at = excluded.updated_at",
            vec![key.into(), int(through), int(super::now_ms())],
        )?;
        Ok(())
    }

    /// One answer of the pull API, read in this turn within its budget.
    async fn read(&self, mut req: Request) -> Result<Response> {
        let request: crate::pull::ReadRequest =
            serde_json::from_slice(&req.bytes().await?).map_err(|e| worker::Error::RustError(e.to_string()))?;
        match crate::pull::read(&self.log, &request) {
            Ok(body) => {
                let mut resp = Response::ok(body)?;
                resp.headers_mut().set("Content-Type", "application/json")?;
                Ok(resp)
            }
            Err(crate::pull::ReadError::OutOfRange { requested, head }) => {
                refuse(409, &rpc::Refusal::offset_out_of_range("from", requested, head))
            }
            Err(crate::pull::ReadError::Store(e)) => Err(internal(e)),
        }
    }

    fn active(&self, req: &Request) -> Result<Response> {
        let q: rpc::ActiveQuery = req.query()?;
        let own = rpc::connection_tag(&q.connection);
        let active =
            self.state.get_websockets_with_tag(&q.app_key).iter().any(|ws| !self.state.get_tags(ws).contains(&own));
        Response::from_json(&rpc::Active { active })
    }

    fn forget(&self, ws: &WebSocket) {
        if let Ok(Some(att)) = ws.deserialize_attachment::<Attachment>() {
            self.specs.borrow_mut().remove(&att.key);
            let _ = self.log.store().sql.exec("DELETE FROM subscriptions WHERE key = ?", vec![att.key.as_str().into()]);
        }
    }

    /// Registry rows whose socket is gone (the object restarted): sockets never survive
    /// a restart, only hibernation, so a row without a socket is dead.
    fn drop_orphans(&self) {
        let live: HashSet<String> = self
            .state
            .get_websockets()
            .iter()
            .filter_map(|ws| ws.deserialize_attachment::<Attachment>().ok().flatten().map(|a| a.key))
            .collect();
        #[derive(Deserialize)]
        struct Row {
            key: String,
        }
        let Ok(rows) =
            self.log.store().sql.exec("SELECT key FROM subscriptions", None).and_then(|c| c.to_array::<Row>())
        else {
            return;
        };
        for row in rows.into_iter().filter(|r| !live.contains(&r.key)) {
            let _ = self.log.store().sql.exec("DELETE FROM subscriptions WHERE key = ?", vec![row.key.as_str().into()]);
        }
    }
}

impl DurableObject for ChainLog {
    fn new(state: State, env: Env) -> Self {
        let storage = state.storage();
        let raw_storage: JsValue = AsRef::<JsValue>::as_ref(storage.as_raw()).clone();
        let store = match SqlLogStore::new(state.storage().sql(), raw_storage.clone()) {
            Ok(s) => s,
            // Schema creation only fails if storage itself is broken; every request will
            // then fail with a 500 from the store, which is the honest answer.
            Err(e) => {
                worker::console_error!("chain log schema: {e}");
                SqlLogStore { sql: state.storage().sql(), storage: raw_storage }
            }
        };
        let core = Core {
            state,
            env,
            log: Log::new(store),
            specs: RefCell::new(HashMap::new()),
            fan_out_pending: Cell::new(false),
            last_fan_out: Cell::new((0, 0)),
            fan_out_turn: Cell::new(0),
            alarm_at: Cell::new(None),
            chain_code: RefCell::new(None),
            webhooks_in_flight: RefCell::new(HashSet::new()),
            webhooks_registered: Cell::new(false),
            deliveries: Cell::new(0),
            started_at: super::now_ms(),
        };
        core.drop_orphans();
        ChainLog { core: Rc::new(core) }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        match (req.method(), req.path().as_str()) {
            (worker::Method::Post, rpc::chain::APPEND) => self.core.append(req).await,
            (worker::Method::Get, rpc::chain::STATS) => self.stats(),
            (worker::Method::Post, rpc::chain::RESTART) => {
                // `ctx.abort()` resets this object, as a deploy would. It throws, so it runs
                // from a JS timer after this answer: an exception unwinding through wasm
                // frames would leave the isolate's future executor stuck mid-poll, and every
                // request of the isolate would hang.
                let state = self.state.as_raw();
                let abort = js_sys::Reflect::get(state, &"abort".into())?;
                let abort: &js_sys::Function = wasm_bindgen::JsCast::unchecked_ref(&abort);
                let later = abort.bind1(state, &"restarted by an operator".into());
                let global = js_sys::global();
                let set_timeout = js_sys::Reflect::get(&global, &"setTimeout".into())?;
                let set_timeout: &js_sys::Function = wasm_bindgen::JsCast::unchecked_ref(&set_timeout);
                set_timeout.call2(&global, &later, &0.into())?;
                Response::ok("")
            }
            (worker::Method::Get, rpc::chain::SUBSCRIBE) => self.subscribe(&req),
            (worker::Method::Get, rpc::chain::ACTIVE) => self.active(&req),
            (worker::Method::Post, rpc::chain::READ) => self.read(req).await,
            (worker::Method::Get, rpc::chain::WEBHOOKS) => {
                self.remember_chain(&req)?;
                self.webhooks()
            }
            (worker::Method::Post, rpc::chain::RESUME_WEBHOOK) => {
                self.remember_chain(&req)?;
                self.core.resume_webhook(req).await
            }
            _ => Response::error("unknown chain log operation", 404),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        self.alarm_at.set(None);
        // Webhooks first: a retention error below must not hold up their retries.
        if let Err(e) = self.core.wake_webhooks(webhooks::SKIPS_PER_WAKE).await {
            worker::console_error!("webhooks from the alarm: {e}");
        }
        let outcome = self.log.apply_retention(super::now_ms(), self.retention_ms()).map_err(internal)?;
        if outcome.deleted > 0 {
            super::audit("retention.applied", serde_json::json!({"deleted": outcome.deleted}));
        }
        // Saved cursors are only read within a day of their last move.
        let stale = super::now_ms().saturating_sub(SAVED_CURSOR_TTL_MS);
        self.log.store().sql.exec("DELETE FROM stream_cursors WHERE updated_at < ?", vec![int(stale)])?;
        if let Some(at) = outcome.next_alarm {
            self.wake_by(at).await?;
        }
        Response::ok("")
    }

    async fn websocket_message(&self, ws: WebSocket, msg: WebSocketIncomingMessage) -> Result<()> {
        let WebSocketIncomingMessage::String(text) = msg else {
            return Ok(());
        };
        let Some((count, through)) = parse_ack(&text) else {
            return Ok(());
        };
        let head = self.log.head().map_err(internal)?;
        if through > 0 {
            if let Some(att) = ws.deserialize_attachment::<Attachment>()? {
                let (spec, _) = self.spec(&att.key)?;
                self.save_cursor(&cursor_key(&spec), through)?;
            }
        }
        let mut budget = TurnBudget::PER_TURN;
        match self.serve(&ws, head, &mut EventCache::default(), &mut budget, count) {
            Ok(true) => Core::schedule(&self.core, true),
            Ok(false) => {}
            Err(e) => {
                worker::console_error!("chain log serve: {e}");
                let _ = ws.close(
                    Some(crate::stream::protocol::close::INTERNAL_ERROR),
                    Some("subscription state lost; resubscribe"),
                );
            }
        }
        Ok(())
    }

    async fn websocket_close(&self, ws: WebSocket, code: usize, _reason: String, _clean: bool) -> Result<()> {
        self.forget(&ws);
        let code = crate::stream::protocol::close::echo(u16::try_from(code).unwrap_or(0));
        let _ = ws.close(Some(code), Some("closed"));
        Ok(())
    }

    async fn websocket_error(&self, ws: WebSocket, _error: worker::Error) -> Result<()> {
        self.forget(&ws);
        Ok(())
    }
}
