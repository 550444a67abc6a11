//! The chain object's glue: each runtime event and internal request goes to the core
//! (`chain::ChainCore`) in one synchronous call, and what the core hands back (`Effects`)
//! is performed here: timers, webhook attempts, the alarm, log lines.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use wasm_bindgen_futures::spawn_local;
use worker::{Env, Headers, Method, Request, Response, Result, State, WebSocket, WebSocketPair};

use super::answers::{answer, answer_text, internal, json_body, refuse, scheduled_at};
use super::sockets::RuntimeSockets;
use super::sql::ChainStorage;
use super::webhook_post::post;
use crate::chain::alarm::AlarmStep;
use crate::chain::attached::{SocketState, Spec};
use crate::chain::host::{Effects, WebhookPost};
use crate::chain::{ChainCore, WebhookAnswer};
use crate::edge::settings::{self, Settings};
use crate::edge::{audit, now_ms};
use crate::rpc;
use crate::stream::pump::Cursor;
use crate::stream::spec::decode_spec;

type Core = ChainCore<ChainStorage, RuntimeSockets>;

pub struct ChainObject {
    state: State,
    env: Env,
    core: RefCell<Core>,
}

impl ChainObject {
    pub fn new(state: State, env: Env) -> Self {
        let storage = state.storage();
        let raw: wasm_bindgen::JsValue = AsRef::<wasm_bindgen::JsValue>::as_ref(storage.as_raw()).clone();
        let store = ChainStorage::open(storage.sql(), raw);
        // The runtime's state object, held a second time by the sockets' glue.
        let raw_state: wasm_bindgen::JsValue = AsRef::<wasm_bindgen::JsValue>::as_ref(state.as_raw()).clone();
        let raw_state = wasm_bindgen::JsCast::unchecked_into::<worker::worker_sys::DurableObjectState>(raw_state);
        let sockets = RuntimeSockets { state: State::from(raw_state) };
        let core = ChainCore::new(store, sockets, now_ms());
        ChainObject { state, env, core: RefCell::new(core) }
    }

    fn settings(&self) -> Result<Rc<Settings>> {
        settings::load(&self.env).map_err(worker::Error::RustError)
    }

    /// Runs one call of the core and performs its effects (the alarm before returning).
    async fn call<T>(self: &Rc<Self>, f: impl FnOnce(&mut Core, &mut Effects) -> T) -> Result<T> {
        let mut fx = Effects::default();
        let out = f(&mut self.core.borrow_mut(), &mut fx);
        self.perform(fx).await?;
        Ok(out)
    }

    /// Performs what a call of the core handed back. The alarm is awaited (an answer that
    /// follows must find it set); everything else runs as tasks of its own.
    async fn perform(self: &Rc<Self>, fx: Effects) -> Result<()> {
        if !fx.audit.is_empty() {
            // Every line of the chain's object names its chain.
            let chain = self.core.borrow_mut().chain_code();
            for mut line in fx.audit {
                if let (Some(fields), Some(chain)) = (line.fields.as_object_mut(), &chain) {
                    fields.entry("chain").or_insert_with(|| chain.clone().into());
                }
                audit(line.event, line.fields);
            }
        }
        for error in fx.errors {
            worker::console_error!("{error}");
        }
        if let Some(wait) = fx.fan_out_after {
            self.later(wait, |core, fx| core.fan_out(now_ms(), fx));
        }
        if let Some(wait) = fx.flush_after {
            self.later(wait, Core::flush);
        }
        if let Some(wait) = fx.fold_after {
            let settings = self.settings()?;
            self.later(wait, move |core, fx| {
                if let Err(e) = core.fold_state(&settings.config, now_ms(), fx) {
                    fx.error(format!("state fold: {e}"));
                }
            });
        }
        if fx.webhooks_again {
            let settings = self.settings()?;
            self.later(0, move |core, fx| core.wake_webhooks(&settings.config, now_ms(), fx));
        }
        for attempt in fx.posts {
            self.attempt(attempt);
        }
        if let Some(at) = fx.alarm_by {
            self.wake_by(at).await?;
        }
        Ok(())
    }

    /// Calls the core after `wait` ms, in a turn of its own (0: after the work waiting).
    fn later(self: &Rc<Self>, wait: u64, f: impl FnOnce(&mut Core, &mut Effects) + 'static) {
        let object = self.clone();
        spawn_local(async move {
            worker::Delay::from(Duration::from_millis(wait)).await;
            if let Err(e) = object.call(f).await {
                worker::console_error!("chain log: {e}");
            }
        });
    }

    /// One webhook attempt, as a task of its own; its answer goes back to the core.
    fn attempt(self: &Rc<Self>, attempt: WebhookPost) {
        let object = self.clone();
        spawn_local(async move {
            let started_ms = now_ms();
            let batch = &attempt.batch;
            let outcome = post(&attempt.webhook, &batch.id, &batch.body, started_ms / 1000, attempt.timeout_ms).await;
            let answer = WebhookAnswer { outcome, started_ms, answered_ms: now_ms(), jitter: js_sys::Math::random() };
            let done = match object.settings() {
                Ok(settings) => {
                    object.call(|core, fx| core.webhook_answered(&attempt, answer, &settings.config, fx)).await
                }
                Err(e) => Err(e),
            };
            if let Err(e) = done.and_then(|moved| moved.map_err(internal)) {
                worker::console_error!("webhook {}: {e}", attempt.webhook.id);
            }
        });
    }

    /// The alarm fires at or before `at`, as the core's alarm clock decides.
    async fn wake_by(&self, at: u64) -> Result<()> {
        let mut step = self.core.borrow_mut().alarm_wish(at, now_ms());
        if step == AlarmStep::ReadStored {
            let stored = self.state.storage().get_alarm().await?.and_then(|set| u64::try_from(set).ok());
            step = self.core.borrow_mut().alarm_read(stored, at, now_ms());
        }
        if let AlarmStep::Set(at) = step {
            self.state.storage().set_alarm(scheduled_at(at)).await?;
        }
        Ok(())
    }

    pub async fn fetch(self: &Rc<Self>, mut req: Request) -> Result<Response> {
        let chain = req.headers().get(rpc::CHAIN_HEADER)?;
        self.core.borrow_mut().remember_chain(chain.as_deref()).map_err(internal)?;
        match (req.method(), req.path().as_str()) {
            (Method::Post, rpc::chain::APPEND) => {
                // The Worker validated and encoded the batch (`rpc::append`): here it is only sliced.
                let batch = rpc::append::decode_batch(&req.bytes().await?).map_err(worker::Error::RustError)?;
                let settings = self.settings()?;
                let stored = self.call(|core, fx| core.append(&batch, &settings.config, now_ms(), fx)).await?;
                Response::from_json(&stored.map_err(internal)?)
            }
            (Method::Get, rpc::chain::STATS) => {
                let subscribers = self.state.get_websockets().len();
                Response::from_json(&self.core.borrow_mut().numbers(subscribers).map_err(internal)?)
            }
            (Method::Post, rpc::chain::RESTART) => self.restart().await,
            (Method::Get, rpc::chain::SUBSCRIBE) => self.subscribe(&req, chain.as_deref()).await,
            (Method::Get, rpc::chain::ACTIVE) => self.active(&req),
            (Method::Post, rpc::chain::READ) => {
                let request: crate::pull::ReadRequest = json_body(&req.bytes().await?)?;
                answer_text(match crate::pull::read(self.core.borrow().log(), &request) {
                    Ok(body) => Ok(body),
                    Err(crate::pull::ReadError::OutOfRange { requested, head }) => {
                        Err((409, rpc::Refusal::offset_out_of_range("from", requested, head)))
                    }
                    Err(crate::pull::ReadError::Store(e)) => return Err(internal(e.into())),
                })
            }
            (Method::Post, rpc::chain::STATE) => {
                let request: crate::current_state::StateRequest = json_body(&req.bytes().await?)?;
                let settings = self.settings()?;
                let page = self.call(|core, fx| core.state_page(&request, &settings.config, now_ms(), fx)).await?;
                answer_text(page.map_err(internal)?)
            }
            (Method::Get, rpc::chain::WEBHOOKS) => {
                let settings = self.settings()?;
                Response::from_json(&self.core.borrow_mut().webhooks(&settings.config, now_ms()).map_err(internal)?)
            }
            (Method::Post, rpc::chain::CONSUMERS) => {
                let request: rpc::operators::ConsumersRequest = json_body(&req.bytes().await?)?;
                answer(self.call(|core, fx| core.consumers(&request, now_ms(), fx)).await?.map_err(internal)?)
            }
            (Method::Get, rpc::chain::METRICS) => {
                let subscribers = self.state.get_websockets().len();
                let settings = self.settings()?;
                let figures = self.call(|core, fx| core.metrics(subscribers, &settings.config, now_ms(), fx)).await?;
                Response::from_json(&figures.map_err(internal)?)
            }
            (Method::Post, rpc::chain::RESUME_WEBHOOK) => {
                let ask: rpc::ResumeWebhook = json_body(&req.bytes().await?)?;
                let settings = self.settings()?;
                let resumed = self
                    .call(|core, fx| core.resume_webhook(&ask.id, ask.from, &settings.config, now_ms(), fx))
                    .await?;
                answer(resumed.map_err(internal)?)
            }
            _ => Response::error("unknown chain log operation", 404),
        }
    }

    /// Attaches a gateway's internal socket for one subscription.
    async fn subscribe(self: &Rc<Self>, req: &Request, chain: Option<&str>) -> Result<Response> {
        let header = req.headers().get(rpc::SUBSCRIPTION_HEADER)?.unwrap_or_default();
        let spec: Spec =
            decode_spec(&header).ok_or_else(|| worker::Error::RustError("malformed subscription spec".into()))?;
        let settings = self.settings()?;
        let (app_key, connection_tag) = (spec.app_key.clone(), rpc::connection_tag(&spec.connection_id));
        let now = now_ms();
        let admitted = self.call(|core, fx| core.admit(spec, chain, &settings.config, now, fx)).await?;
        let admitted = match admitted.map_err(internal)? {
            Ok(admitted) => admitted,
            Err((status, refusal)) => return refuse(status, &refusal),
        };
        let key = crate::auth::token::random_id();
        let pair = WebSocketPair::new()?;
        self.state.accept_websocket_with_tags(&pair.server, &[key.as_str(), app_key.as_str(), &connection_tag]);
        let cursor = Cursor { next: admitted.start, inflight: 0 };
        pair.server.serialize_attachment(SocketState { key: key.clone(), cursor }.encode())?;
        let headers = Headers::new();
        headers.set(rpc::START_HEADER, &admitted.start.to_string())?;
        // The gateway keeps the gap until a frame it forwards carries it.
        if let Some(gap) = admitted.gap {
            headers.set(rpc::GAP_HEADER, &gap.requested.to_string())?;
        }
        self.call(|core, fx| core.attach(pair.server, key.into(), admitted, now, fx)).await?;
        Ok(Response::from_websocket(pair.client)?.with_headers(headers))
    }

    /// Whether an app key streams on a connection other than the asking one.
    fn active(&self, req: &Request) -> Result<Response> {
        let q: rpc::ActiveQuery = req.query()?;
        let own = rpc::connection_tag(&q.connection);
        let active =
            self.state.get_websockets_with_tag(&q.app_key).iter().any(|ws| !self.state.get_tags(ws).contains(&own));
        Response::from_json(&rpc::Active { active })
    }

    /// `ctx.abort()` resets this object, as a deploy would. It throws, so it runs from a JS
    /// timer after this answer: an exception unwinding through wasm frames would leave the
    /// isolate's future executor stuck mid-poll, and every request of the isolate would hang.
    async fn restart(self: &Rc<Self>) -> Result<Response> {
        // A restart the service chose loses no cursor move.
        self.call(Core::flush).await?;
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

    pub async fn alarm(self: &Rc<Self>) -> Result<Response> {
        let settings = self.settings()?;
        let ran = self.call(|core, fx| core.alarm(&settings.config, now_ms(), fx)).await?;
        // The runtime retries a failed alarm, saying nothing of why: say it here.
        if let Err(e) = &ran {
            worker::console_error!("chain log alarm: {e}");
        }
        ran.map_err(internal)?;
        Response::ok("")
    }

    pub async fn on_message(self: &Rc<Self>, ws: &WebSocket, text: &str) -> Result<()> {
        self.call(|core, fx| core.on_gateway_message(ws, text, now_ms(), fx)).await?.map_err(internal)
    }

    pub async fn on_close(self: &Rc<Self>, ws: &WebSocket, code: usize) -> Result<()> {
        let code = u16::try_from(code).unwrap_or(0);
        self.call(|core, fx| core.on_gateway_close(ws, code, fx)).await
    }

    pub async fn on_error(self: &Rc<Self>, ws: &WebSocket) -> Result<()> {
        self.call(|core, fx| core.on_gateway_error(ws, fx)).await
    }
}
