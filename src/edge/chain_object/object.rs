//! The chain object's state and its requests: append, stats, the pull API's reads, the
//! operator's restart, and the alarm (retention, stale cursors, webhook retries).
//! Streaming is in `subscriptions`, webhook deliveries in `webhooks`.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::rc::Rc;

use worker::{Env, Method, Request, Response, Result, State};

use super::attached::AttachedList;
use super::sql::ChainStorage;
use super::webhooks;
use crate::edge::{audit, now_ms, settings};
use crate::log::{OffsetLog, StoreError};
use crate::rpc;
use crate::rpc::append::decode_batch;
use crate::stream::cursors::PendingCursors;
use crate::stream::fanout::{FanOutSchedule, RecentEvents, SAVED_CURSOR_TTL_MS};

pub struct ChainObject {
    pub(super) state: State,
    pub(super) env: Env,
    pub(super) log: OffsetLog<ChainStorage>,
    /// The attached subscriptions (`None` until read from the runtime's sockets).
    pub(super) attached: RefCell<Option<AttachedList>>,
    pub(super) fan_out: RefCell<FanOutSchedule>,
    /// Events stored since the last fan-out, which it serves without reading them back.
    pub(super) recent: RefCell<RecentEvents>,
    /// Saved-cursor moves acknowledged and not yet written (written together, see
    /// `stream::cursors`).
    pub(super) cursors: RefCell<PendingCursors>,
    /// Registry rows of subscriptions that ended, to delete in the next flush (a woken
    /// object reads rows only for the sockets it has, and a start drops every row).
    pub(super) unregistered: RefCell<Vec<Rc<str>>>,
    /// A timer will write the cursors' moves, the sockets' attachments and the registry.
    pub(super) flush_scheduled: Cell<bool>,
    /// When the alarm this instance set will fire (ms). Spares a storage round trip on
    /// every publish; lost on restart, when the next publish asks storage again.
    alarm_at: Cell<Option<u64>>,
    /// The chain this object holds (from the gateway's requests, kept in storage): the
    /// alarm, which comes with no request, needs it to find the chain's webhooks.
    chain_code: RefCell<Option<String>>,
    /// Webhooks with an attempt in flight in this instance.
    pub(super) webhooks_in_flight: RefCell<HashSet<String>>,
    /// Every configured webhook has a state row (see `register_webhooks`).
    pub(super) webhooks_registered: Cell<bool>,
    /// `next` frames sent since `started_at` (ms): the admin API's delivery count. Kept in
    /// memory, not storage: a write per fan-out would cost more than the count is worth.
    pub(super) deliveries: Cell<u64>,
    started_at: u64,
}

/// A log failure, as the runtime's error.
pub(super) fn internal(e: StoreError) -> worker::Error {
    worker::Error::RustError(e.0)
}

/// A refusal the gateway turns into the vendor's or operator's error.
pub(super) fn refuse(status: u16, refusal: &rpc::Refusal) -> Result<Response> {
    Response::from_json(refusal).map(|r| r.with_status(status))
}

/// An absolute alarm time. (A bare integer would be read as an offset from now.)
#[allow(clippy::cast_precision_loss, reason = "millisecond times stay far below 2^53")]
fn scheduled_at(ms: u64) -> worker::ScheduledTime {
    worker::ScheduledTime::new(js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms as f64)))
}

impl ChainObject {
    pub fn new(state: State, env: Env) -> Self {
        let storage = state.storage();
        let raw_storage: wasm_bindgen::JsValue = AsRef::<wasm_bindgen::JsValue>::as_ref(storage.as_raw()).clone();
        let object = ChainObject {
            log: OffsetLog::new(ChainStorage::open(storage.sql(), raw_storage)),
            state,
            env,
            attached: RefCell::new(None),
            fan_out: RefCell::new(FanOutSchedule::default()),
            recent: RefCell::new(RecentEvents::default()),
            cursors: RefCell::new(PendingCursors::default()),
            unregistered: RefCell::new(Vec::new()),
            flush_scheduled: Cell::new(false),
            alarm_at: Cell::new(None),
            chain_code: RefCell::new(None),
            webhooks_in_flight: RefCell::new(HashSet::new()),
            webhooks_registered: Cell::new(false),
            deliveries: Cell::new(0),
            started_at: now_ms(),
        };
        object.drop_orphans();
        object
    }

    /// The object's storage: the log's rows and its own tables.
    pub(super) fn storage(&self) -> &ChainStorage {
        self.log.store()
    }

    pub async fn fetch(self: &Rc<Self>, req: Request) -> Result<Response> {
        match (req.method(), req.path().as_str()) {
            (Method::Post, rpc::chain::APPEND) => self.append(req).await,
            (Method::Get, rpc::chain::STATS) => self.stats(),
            (Method::Post, rpc::chain::RESTART) => self.restart(),
            (Method::Get, rpc::chain::SUBSCRIBE) => self.subscribe(&req),
            (Method::Get, rpc::chain::ACTIVE) => self.active(&req),
            (Method::Post, rpc::chain::READ) => self.read(req).await,
            (Method::Get, rpc::chain::WEBHOOKS) => {
                self.remember_chain(&req)?;
                self.webhooks()
            }
            (Method::Post, rpc::chain::RESUME_WEBHOOK) => {
                self.remember_chain(&req)?;
                self.resume_webhook(req).await
            }
            _ => Response::error("unknown chain log operation", 404),
        }
    }

    pub(super) fn retention_ms(&self) -> u64 {
        settings::load(&self.env).map_or(crate::config::DEFAULT_RETENTION_SECONDS, |s| s.config.retention_seconds)
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
    pub(super) async fn wake_by(&self, at: u64) -> Result<()> {
        let now = now_ms();
        let covered = |set: Option<u64>| set.is_some_and(|set| set > now && set <= at);
        if covered(self.alarm_at.get()) {
            return Ok(());
        }
        let storage = self.state.storage();
        if self.alarm_at.get().is_none() {
            // Not known in this instance (it restarted): storage may hold an earlier one.
            let alarm = storage.get_alarm().await?.and_then(|set| u64::try_from(set).ok());
            if let Some(set) = alarm.filter(|set| *set > now) {
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

    pub async fn alarm(self: &Rc<Self>) -> Result<Response> {
        self.alarm_at.set(None);
        // Webhooks first: a retention error below must not hold up their retries.
        if let Err(e) = self.wake_webhooks(webhooks::SKIPS_PER_WAKE).await {
            worker::console_error!("webhooks from the alarm: {e}");
        }
        // What the next fan-out would serve from memory may be among the rows deleted.
        self.recent.borrow_mut().clear();
        let outcome = self.log.apply_retention(now_ms(), self.retention_ms()).map_err(internal)?;
        if outcome.deleted > 0 {
            audit("retention.applied", serde_json::json!({"deleted": outcome.deleted}));
        }
        // Saved cursors are only read within a day of their last move.
        self.storage().drop_cursors_before(now_ms().saturating_sub(SAVED_CURSOR_TTL_MS))?;
        if let Some(at) = outcome.next_alarm {
            self.wake_by(at).await?;
        }
        Response::ok("")
    }

    /// The chain code, from memory or storage.
    pub(super) fn chain_code(&self) -> Option<String> {
        if let Some(code) = self.chain_code.borrow().as_ref() {
            return Some(code.clone());
        }
        let code = self.storage().chain_code().ok()??;
        *self.chain_code.borrow_mut() = Some(code.clone());
        Some(code)
    }

    /// Keeps the chain code a gateway request names (the object's name: it never changes).
    pub(super) fn remember_chain(&self, req: &Request) -> Result<()> {
        if self.chain_code.borrow().is_some() {
            return Ok(());
        }
        let Some(code) = req.headers().get(rpc::CHAIN_HEADER)? else { return Ok(()) };
        self.storage().set_chain_code(&code)?;
        *self.chain_code.borrow_mut() = Some(code);
        Ok(())
    }

    async fn append(self: &Rc<Self>, mut req: Request) -> Result<Response> {
        self.remember_chain(&req)?;
        self.register_webhooks()?;
        // The Worker validated and encoded the batch (`rpc::append`): here it is only sliced.
        let batch = decode_batch(&req.bytes().await?).map_err(worker::Error::RustError)?;
        let now = now_ms();
        // One synchronous turn: offsets assigned and rows written together (see `mod.rs`).
        let head_before = self.log.head().map_err(internal)?;
        let offsets = self.log.append(&batch, now).map_err(internal)?;
        // Kept for the fan-out only where one will serve them (a chain nobody streams pays
        // no copies); a publish not recorded leaves a hole, so the next fan-out reads storage.
        if self.fan_out.borrow().found_subscribers() {
            self.recent.borrow_mut().record(head_before, &batch, &offsets, now);
        } else {
            self.recent.borrow_mut().clear();
        }
        self.schedule_fan_out(false);
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
            last_publish_at: self.storage().last_publish_at().map_err(internal)?,
            deliveries: self.deliveries.get(),
            counting_since: self.started_at,
        })
    }

    /// `ctx.abort()` resets this object, as a deploy would. It throws, so it runs from a JS
    /// timer after this answer: an exception unwinding through wasm frames would leave the
    /// isolate's future executor stuck mid-poll, and every request of the isolate would hang.
    fn restart(&self) -> Result<Response> {
        // A restart the service chose loses no cursor move.
        self.flush();
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
}
