//! A chain object's core as the runtime runs it, with its internal sockets recorded: what a
//! native test needs to drive `chain::ChainCore` through publishes, attaches, gateway
//! acknowledgements, timers and restarts.
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use pms_events::auth::token::AccessClaims;
use pms_events::chain::alarm::AlarmStep;
use pms_events::chain::attached::Spec;
use pms_events::chain::host::{ChainError, Effects, GatewaySockets};
use pms_events::chain::memory::MemoryChainStore;
use pms_events::chain::ChainCore;
use pms_events::config::ServiceConfig;
use pms_events::graphql::{Api, Operation, SubscribePayload};
use pms_events::log::ValidEvent;
use pms_events::stream::spec::BatchEncoding;
use pms_events::stream::subscribe::plan_subscription;

/// One internal socket: what the object sent on it, its attachment, and its close.
#[derive(Debug, Default)]
pub struct RecordedSocket {
    pub received: RefCell<Vec<String>>,
    pub attachment: RefCell<Option<String>>,
    pub closed: RefCell<Option<(u16, String)>>,
}

impl RecordedSocket {
    /// What arrived since the last call.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.received.borrow_mut())
    }
}

/// The object's sockets. Clones share them: a core started again over the same sockets is
/// an object woken from hibernation.
#[derive(Debug, Default, Clone)]
pub struct RecordingSockets {
    pub sockets: Rc<RefCell<Vec<Rc<RecordedSocket>>>>,
    /// Messages made into the runtime's form: one per shared pump.
    pub made: Rc<Cell<usize>>,
}

impl RecordingSockets {
    /// A socket the runtime accepted, with the attachment the object gave it.
    pub fn accept(&self, attachment: String) -> Rc<RecordedSocket> {
        let socket = Rc::new(RecordedSocket { attachment: RefCell::new(Some(attachment)), ..Default::default() });
        self.sockets.borrow_mut().push(socket.clone());
        socket
    }
}

impl GatewaySockets for RecordingSockets {
    type Socket = Rc<RecordedSocket>;
    type Message = Rc<str>;

    fn all(&self) -> Vec<Rc<RecordedSocket>> {
        self.sockets.borrow().iter().filter(|s| s.closed.borrow().is_none()).cloned().collect()
    }

    fn attachment(&self, socket: &Rc<RecordedSocket>) -> Result<Option<String>, ChainError> {
        Ok(socket.attachment.borrow().clone())
    }

    fn set_attachment(&self, socket: &Rc<RecordedSocket>, text: &str) -> Result<(), ChainError> {
        *socket.attachment.borrow_mut() = Some(text.to_string());
        Ok(())
    }

    fn message(&self, text: &str, _encoding: BatchEncoding) -> Rc<str> {
        self.made.set(self.made.get() + 1);
        Rc::from(text)
    }

    fn send(&self, socket: &Rc<RecordedSocket>, message: &Rc<str>) -> Result<(), ChainError> {
        socket.received.borrow_mut().push(message.to_string());
        Ok(())
    }

    fn send_text(&self, socket: &Rc<RecordedSocket>, text: &str, _encoding: BatchEncoding) -> Result<(), ChainError> {
        socket.received.borrow_mut().push(text.to_string());
        Ok(())
    }

    fn close(&self, socket: &Rc<RecordedSocket>, code: u16, reason: &str) {
        socket.closed.borrow_mut().get_or_insert((code, reason.to_string()));
    }
}

pub type Core = ChainCore<Rc<MemoryChainStore>, RecordingSockets>;

/// An attached subscription's socket, first offset, and retention gap.
pub type AttachedSocket = (Rc<RecordedSocket>, u64, Option<u64>);

/// A chain object over shared storage and sockets, with the timers its calls asked for.
pub struct Object {
    pub store: Rc<MemoryChainStore>,
    pub sockets: RecordingSockets,
    pub core: Core,
    pub config: ServiceConfig,
    /// Timers asked for and not yet run: (due at, what).
    pub fan_out_due: Option<u64>,
    pub flush_due: Option<u64>,
    pub fold_due: Option<u64>,
    /// The alarm as storage holds it (it survives a restart), set as the glue sets it.
    pub alarm_at: Option<u64>,
    pub webhooks_again: bool,
    pub effects: Vec<Effects>,
}

impl Object {
    pub fn start(config: ServiceConfig, now: u64) -> Object {
        let store = Rc::new(MemoryChainStore::default());
        let sockets = RecordingSockets::default();
        let mut core = ChainCore::new(store.clone(), sockets.clone(), now);
        // As the glue does with the chain header of the first request.
        core.remember_chain(Some("TTE")).unwrap();
        Object {
            store,
            sockets,
            core,
            config,
            fan_out_due: None,
            flush_due: None,
            fold_due: None,
            alarm_at: None,
            webhooks_again: false,
            effects: Vec::new(),
        }
    }

    /// The object restarts (a deploy, an eviction): its memory is gone, and with it every
    /// socket (the gateways see them close).
    pub fn restart(&mut self, now: u64) {
        for socket in self.sockets.all() {
            socket.closed.borrow_mut().get_or_insert((1012, "restarted".into()));
        }
        self.sockets = RecordingSockets::default();
        self.core = ChainCore::new(self.store.clone(), self.sockets.clone(), now);
        self.fan_out_due = None;
        self.flush_due = None;
        self.fold_due = None;
    }

    /// The object wakes from hibernation: its memory is gone, its sockets are not.
    pub fn wake(&mut self, now: u64) {
        self.core = ChainCore::new(self.store.clone(), self.sockets.clone(), now);
        self.fan_out_due = None;
        self.flush_due = None;
        self.fold_due = None;
    }

    /// Keeps the timers an effect asked for, and the effect itself for the test to read.
    pub fn note(&mut self, fx: Effects, now: u64) {
        if let Some(wait) = fx.fan_out_after {
            self.fan_out_due.get_or_insert(now + wait);
        }
        if let Some(wait) = fx.flush_after {
            self.flush_due.get_or_insert(now + wait);
        }
        if let Some(wait) = fx.fold_after {
            self.fold_due = Some(self.fold_due.map_or(now + wait, |due| due.min(now + wait)));
        }
        if let Some(at) = fx.alarm_by {
            let mut step = self.core.alarm_wish(at, now);
            if step == AlarmStep::ReadStored {
                step = self.core.alarm_read(self.alarm_at, at, now);
            }
            if let AlarmStep::Set(at) = step {
                self.alarm_at = Some(at);
            }
        }
        self.webhooks_again |= fx.webhooks_again;
        self.effects.push(fx);
    }

    pub fn publish(&mut self, batch: &[ValidEvent], now: u64) -> Vec<u64> {
        let mut fx = Effects::default();
        let stored = self.core.append(batch, &self.config, now, &mut fx).expect("append");
        self.note(fx, now);
        stored.offsets
    }

    /// Runs the timers due by `now`, in order.
    pub fn run_timers(&mut self, now: u64) {
        if self.fan_out_due.is_some_and(|at| at <= now) {
            self.fan_out_due = None;
            let mut fx = Effects::default();
            self.core.fan_out(now, &mut fx);
            self.note(fx, now);
        }
        if self.flush_due.is_some_and(|at| at <= now) {
            self.flush_due = None;
            let mut fx = Effects::default();
            self.core.flush(&mut fx);
            self.note(fx, now);
        }
        if self.fold_due.is_some_and(|at| at <= now) {
            self.fold_due = None;
            let mut fx = Effects::default();
            self.core.fold_state(&self.config, now, &mut fx).expect("fold");
            self.note(fx, now);
        }
    }

    /// The alarm fires if it is due.
    pub fn run_alarm(&mut self, now: u64) {
        if self.alarm_at.is_some_and(|at| at <= now) {
            self.alarm_at = None;
            let mut fx = Effects::default();
            self.core.alarm(&self.config.clone(), now, &mut fx).expect("alarm");
            self.note(fx, now);
        }
    }

    /// Attaches a subscription as the runtime does: admitted, accepted, attached. Its socket,
    /// where it starts and the gap to report; or the refusal's status and code.
    pub fn attach(&mut self, spec: Spec, now: u64) -> Result<AttachedSocket, (u16, String)> {
        let mut fx = Effects::default();
        let admitted = self.core.admit(spec, Some("TTE"), &self.config, now, &mut fx).expect("admit");
        self.note(fx, now);
        let admitted = admitted.map_err(|(status, refusal)| (status, refusal.code))?;
        let key = format!("key-{}", self.sockets.sockets.borrow().len());
        let state = pms_events::chain::attached::SocketState {
            key: key.clone(),
            cursor: pms_events::stream::pump::Cursor { next: admitted.start, inflight: 0 },
        };
        let socket = self.sockets.accept(state.encode());
        let (start, gap) = (admitted.start, admitted.gap.map(|g| g.requested));
        let mut fx = Effects::default();
        self.core.attach(socket.clone(), key.into(), admitted, now, &mut fx);
        self.note(fx, now);
        Ok((socket, start, gap))
    }

    /// A gateway's message on a socket.
    pub fn gateway_says(&mut self, socket: &Rc<RecordedSocket>, text: &str, now: u64) {
        let mut fx = Effects::default();
        self.core.on_gateway_message(socket, text, now, &mut fx).expect("gateway message");
        self.note(fx, now);
    }
}

/// A subscription of client-app-001 as its gateway would describe it, from a real GraphQL
/// document: `input` is `newEvent`'s input, `selection` its selection set.
pub fn subscription(config: &ServiceConfig, id: &str, input: &str, selection: &str) -> Spec {
    subscription_of(config, "client-app-001", id, input, selection)
}

pub fn subscription_of(config: &ServiceConfig, client: &str, id: &str, input: &str, selection: &str) -> Spec {
    let client = config.client(client).expect("a demo client");
    let claims = AccessClaims::for_client(client, &client.scopes, &config.issuer, &config.audience, "jti".into());
    let payload = SubscribePayload {
        query: format!("subscription {{ newEvent(input: {input}) {{ {selection} }} }}"),
        operation_name: None,
        variables: None,
        extensions: None,
    };
    let Ok(Operation::Subscription(prepared)) = Api::new().prepare(&payload) else { panic!("a valid subscription") };
    plan_subscription(config, &claims, id, "connection-1", prepared).expect("a granted subscription").1
}

/// An event of hotel TTE01 with id `id`, padded by `pad` bytes in its detail.
pub fn event(id: &str, pad: usize) -> ValidEvent {
    event_at(id, "TTE01", "CHECKIN", pad)
}

pub fn event_at(id: &str, hotel: &str, name: &str, pad: usize) -> ValidEvent {
    let detail = if pad == 0 {
        serde_json::json!([])
    } else {
        serde_json::json!([{"elementName": "Note", "newValue": "x".repeat(pad)}])
    };
    let body = serde_json::json!({
        "metadata": {"uniqueEventId": id}, "moduleName": "Reservation", "eventName": name, "primaryKey": id,
        "timestamp": "2026-12-07T10:00:00Z", "hotelId": hotel, "detail": detail,
    });
    ValidEvent {
        unique_event_id: id.into(),
        hotel_id: hotel.into(),
        module_name: "Reservation".into(),
        event_name: name.into(),
        body: body.to_string(),
        minted: false,
    }
}

pub fn events(from: usize, count: usize, pad: usize) -> Vec<ValidEvent> {
    (from..from + count).map(|i| event(&format!("e{i}"), pad)).collect()
}
