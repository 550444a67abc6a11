//! The chain object's side of streaming: a gateway attaches one internal socket per
//! subscription, and the object sends it batches of rendered `next` payloads from storage
//! at its cursor (subscriptions alike share them). What to send, when to fan out and where
//! to start are `stream::pump`'s, `stream::schedule`'s and `stream::spec`'s decisions; this
//! performs them over the attached sockets kept in memory, and keeps the registry of specs
//! and the saved-cursor moves waiting for their write (`stream::cursors`).

use std::collections::HashSet;
use std::rc::Rc;

use super::attached::{
    attached_list, socket_state, Attached, AttachedList, Delivered, LoadedSpec, SocketState, Spec, STATE_LOST,
};
use super::host::{ChainError, ChainTables, Effects, GatewaySockets};
use super::serve::{serve, ServeOutcome, ServeTurn};
use crate::log::{Gap, LogStore, Offset, OffsetLog, ValidEvent};
use crate::rpc::Refusal;
use crate::stream::cursors::{PendingCursors, CURSOR_FLUSH_MS};
use crate::stream::protocol::close;
use crate::stream::pump::{Cursor, RecentEvents};
use crate::stream::schedule::{FanOutSchedule, FanOutStart};
use crate::stream::spec::resolve_start;
use crate::stream::wire::DeliveryMessage;

/// A subscription accepted for attaching: where it starts, and the gap to report.
pub struct Admitted {
    pub loaded: LoadedSpec,
    pub start: Offset,
    pub gap: Option<Gap>,
}

/// The streaming state of a chain object.
pub struct Streaming<S> {
    /// The attached subscriptions (`None` until read from the runtime's sockets).
    attached: Option<AttachedList<S>>,
    schedule: FanOutSchedule,
    /// Events stored since the last fan-out, which it serves without reading them back.
    recent: RecentEvents,
    /// Saved-cursor moves acknowledged and not yet written (written together, see
    /// `stream::cursors`).
    cursors: PendingCursors,
    /// Registry rows of subscriptions that ended, to delete in the next flush (a woken
    /// object reads rows only for the sockets it has, and a start drops every row).
    unregistered: Vec<Rc<str>>,
    /// A flush is scheduled: it will write the cursors' moves, the sockets' attachments and
    /// the registry.
    flush_scheduled: bool,
    /// `next` frames sent since this instance started: the admin API's delivery count.
    /// Kept in memory, not storage: a write per fan-out would cost more than it is worth.
    deliveries: u64,
}

impl<S> Default for Streaming<S> {
    fn default() -> Self {
        Streaming {
            attached: None,
            schedule: FanOutSchedule::default(),
            recent: RecentEvents::default(),
            cursors: PendingCursors::default(),
            unregistered: Vec::new(),
            flush_scheduled: false,
            deliveries: 0,
        }
    }
}

impl<S: Clone> Streaming<S> {
    /// `next` frames sent since this instance started.
    pub fn deliveries(&self) -> u64 {
        self.deliveries
    }

    /// Whether a subscription to attach may, and where it starts. `saved` is its saved
    /// cursor as storage holds it.
    pub fn admit<L: LogStore>(
        &self,
        log: &OffsetLog<L>,
        tables: &impl ChainTables,
        spec: Spec,
        now_ms: u64,
    ) -> Result<Result<Admitted, Refusal>, ChainError> {
        let bounds = log.bounds()?;
        let loaded = LoadedSpec::of(spec);
        let saved = self.cursors.newest(&loaded.cursor_key, tables.saved_cursor(&loaded.cursor_key)?);
        let start = loaded.spec.start;
        let timed = match start {
            crate::stream::spec::Start::Time(at) => Some(log.start_at_time(at)?),
            _ => None,
        };
        Ok(match resolve_start(start, &bounds, saved, timed, now_ms) {
            Ok((start, gap)) => Ok(Admitted { loaded, start, gap }),
            Err(out) => Err(Refusal::offset_out_of_range("offset", out.requested, out.head)),
        })
    }

    /// Makes sure the list of attached subscriptions is read, before a new socket is
    /// accepted: a list rebuilt after it would hold it twice.
    pub fn load<K: GatewaySockets<Socket = S>>(
        &mut self,
        tables: &impl ChainTables,
        sockets: &K,
        now_ms: u64,
        fx: &mut Effects,
    ) {
        attached_list(&mut self.attached, tables, sockets, now_ms, fx);
    }

    /// Attaches an accepted socket under `key` at `start`; its registry row is written by
    /// the next flush, within a second.
    pub fn attach(&mut self, socket: S, key: Rc<str>, admitted: Admitted, now_ms: u64, fx: &mut Effects) {
        let cursor = Cursor { next: admitted.start, inflight: 0 };
        let list = self.attached.get_or_insert_with(AttachedList::default);
        list.insert(Attached::attaching(socket, key, cursor, admitted.loaded, now_ms));
        self.flush_later(true, fx);
    }

    /// A message from a gateway: an acknowledgement (`A <count> <through>`) moves the saved
    /// cursor (written with the others within [`CURSOR_FLUSH_MS`]) and frees the window.
    #[allow(clippy::too_many_arguments, reason = "the object's parts a message touches, each borrowed apart")]
    pub fn on_message<L: LogStore, K: GatewaySockets<Socket = S>>(
        &mut self,
        log: &OffsetLog<L>,
        tables: &impl ChainTables,
        sockets: &K,
        socket: &S,
        text: &str,
        now_ms: u64,
        fx: &mut Effects,
    ) -> Result<(), ChainError> {
        let Some(DeliveryMessage::Ack { count, through }) = DeliveryMessage::decode(text) else {
            return Ok(());
        };
        // The attachment's key never changes; its cursor may be behind the one in memory.
        let Some(SocketState { key, .. }) = socket_state(sockets, socket)? else { return Ok(()) };
        let head = log.head()?;
        let list = attached_list(&mut self.attached, tables, sockets, now_ms, fx);
        let Some(sub) = list.get_mut(&key) else { return Ok(()) };
        // Every acknowledgement says what the vendor has read: the saved cursor only ever
        // moves forward to it (the first one, at an offset's start, creates it).
        self.cursors.record(&sub.loaded.cursor_key, through, now_ms);
        sub.delivered.read_through = sub.delivered.read_through.max(through);
        sub.delivered.last_ack_at = Some(now_ms);
        let served = serve(log, sockets, sub, head, &mut ServeTurn::new(None), count);
        audit_lag_crossing(sub, head, fx);
        match served {
            Ok((outcome, frames)) => {
                self.deliveries += u64::from(frames);
                match outcome {
                    ServeOutcome::CutShort => self.request_fan_out(true, log, tables, sockets, now_ms, fx),
                    ServeOutcome::Waiting => {}
                    ServeOutcome::Failed => {
                        self.fail(sockets, socket, fx);
                        return Ok(());
                    }
                }
                // The cursor's move waits for the flush.
                self.flush_later(true, fx);
            }
            Err(e) => {
                fx.error(format!("chain log serve: {e}"));
                sockets.close(socket, close::INTERNAL_ERROR, STATE_LOST);
            }
        }
        Ok(())
    }

    /// A batch was stored: kept for the next fan-out only where one will serve it (a chain
    /// nobody streams pays no copies); a publish not recorded leaves a hole, so the next
    /// fan-out reads storage.
    pub fn stored(&mut self, head_before: Offset, batch: &[ValidEvent], offsets: &[Offset], now_ms: u64) {
        if self.schedule.found_subscribers() {
            self.recent.record(head_before, batch, offsets, now_ms);
        } else {
            self.recent.clear();
        }
    }

    /// Rows were deleted (retention): what the next fan-out would serve from memory may be
    /// among them.
    pub fn rows_deleted(&mut self) {
        self.recent.clear();
    }

    /// A fan-out is wanted, after a publish or (`resume`) after one ran out of budget: run
    /// now, or after a wait, as `FanOutSchedule` decides. The output gate still holds its
    /// frames until the rows they carry are durable.
    pub fn request_fan_out<L: LogStore, K: GatewaySockets<Socket = S>>(
        &mut self,
        resume: bool,
        log: &OffsetLog<L>,
        tables: &impl ChainTables,
        sockets: &K,
        now_ms: u64,
        fx: &mut Effects,
    ) {
        let attached = self.attached.as_ref().map(AttachedList::len);
        let any = || attached.map_or_else(|| !sockets.all().is_empty(), |n| n > 0);
        match self.schedule.request(resume, now_ms, any) {
            None => {}
            Some(FanOutStart::ThisTurn) => {
                let behind = self.fan_out(log, tables, sockets, now_ms, fx);
                if behind {
                    self.request_fan_out(true, log, tables, sockets, now_ms, fx);
                }
            }
            Some(FanOutStart::After(wait)) => fx.fan_out_after = Some(wait),
        }
    }

    /// Serves every subscription behind the head within one turn's budget, starting where
    /// the schedule says. Returns whether some were left unserved (the caller asks for
    /// another turn).
    pub fn fan_out<L: LogStore, K: GatewaySockets<Socket = S>>(
        &mut self,
        log: &OffsetLog<L>,
        tables: &impl ChainTables,
        sockets: &K,
        now_ms: u64,
        fx: &mut Effects,
    ) -> bool {
        let attached = attached_list(&mut self.attached, tables, sockets, now_ms, fx).len();
        // The run is recorded before the head is read: a fan-out that cannot read it must
        // not leave the schedule waiting for a fan-out that never comes. The next publish or
        // acknowledgement asks for another.
        let Some(first) = self.schedule.run(now_ms, attached) else { return false };
        let head = match log.head() {
            Ok(head) => head,
            Err(e) => {
                fx.error(format!("chain log fan-out: {e}"));
                return false;
            }
        };
        let recent = self.recent.take_page(head);
        let mut turn = ServeTurn::new(recent);
        let (mut behind, mut unwritten, mut frames) = (false, false, 0u64);
        let mut failed = Vec::new();
        let list = self.attached.get_or_insert_with(AttachedList::default);
        for sub in list.rotated_from(first) {
            let served = serve(log, sockets, sub, head, &mut turn, 0);
            audit_lag_crossing(sub, head, fx);
            match served {
                Ok((outcome, sent)) => {
                    frames += u64::from(sent);
                    match outcome {
                        ServeOutcome::Waiting => {}
                        ServeOutcome::CutShort => behind = true,
                        ServeOutcome::Failed => failed.push(sub.socket.clone()),
                    }
                }
                Err(e) => {
                    // One broken subscription must not stop delivery to the others.
                    fx.error(format!("chain log fan-out: {e}"));
                    sockets.close(&sub.socket, close::INTERNAL_ERROR, STATE_LOST);
                }
            }
            unwritten |= sub.unwritten();
        }
        self.deliveries += frames;
        for socket in failed {
            self.fail(sockets, &socket, fx);
        }
        self.flush_later(unwritten, fx);
        behind
    }

    /// A subscription failed (its `E` message said why; the gateway ends the operation).
    fn fail<K: GatewaySockets<Socket = S>>(&mut self, sockets: &K, socket: &S, fx: &mut Effects) {
        self.forget(sockets, socket, fx);
        sockets.close(socket, close::NORMAL, "subscription failed");
    }

    /// The gateway closed a subscription's socket: forget it and complete the close.
    pub fn on_close<K: GatewaySockets<Socket = S>>(&mut self, sockets: &K, socket: &S, code: u16, fx: &mut Effects) {
        self.forget(sockets, socket, fx);
        sockets.close(socket, close::echo(code), "closed");
    }

    /// A socket ended (closed or failed): it is no longer served, and its registry row is
    /// deleted by the next flush.
    pub fn forget<K: GatewaySockets<Socket = S>>(&mut self, sockets: &K, socket: &S, fx: &mut Effects) {
        let Ok(Some(state)) = socket_state(sockets, socket) else { return };
        // A list not read yet has nothing to remove; its row is deleted all the same.
        let removed = self.attached.as_mut().and_then(|list| list.remove(&state.key));
        // One never written has no row to delete.
        if removed.is_none_or(|sub| sub.registered) {
            self.unregistered.push(state.key.into());
            self.flush_later(true, fx);
        }
    }

    /// When `needed`, makes sure a flush runs within [`CURSOR_FLUSH_MS`]: of the saved
    /// cursors' moves and of the sockets' attachments.
    fn flush_later(&mut self, needed: bool, fx: &mut Effects) {
        if needed && !self.flush_scheduled {
            self.flush_scheduled = true;
            fx.flush_after = Some(CURSOR_FLUSH_MS);
        }
    }

    /// Writes what is kept in memory only, in one commit (no await between the writes):
    /// every pending saved-cursor move, the registry rows of subscriptions attached or
    /// ended since the last flush, and every socket's cursor into its attachment. A
    /// registry row that failed to write is tried again by another flush: a woken object
    /// needs it.
    pub fn flush<K: GatewaySockets<Socket = S>>(&mut self, tables: &impl ChainTables, sockets: &K, fx: &mut Effects) {
        self.flush_scheduled = false;
        for (key, (through, at)) in self.cursors.take() {
            if let Err(e) = tables.save_cursor(&key, through, at) {
                // The cursor stays where it was saved: a resume repeats events, loses none.
                fx.error(format!("saving a stream cursor: {e}"));
            }
        }
        for key in std::mem::take(&mut self.unregistered) {
            // A row left behind is dropped when the object next starts (`drop_orphans`).
            if let Err(e) = tables.unregister_subscription(&key) {
                fx.error(format!("deleting a subscription's registry row: {e}"));
            }
        }
        let mut left = false;
        for sub in self.attached.iter_mut().flat_map(AttachedList::iter_mut) {
            if !sub.registered {
                let written = sub
                    .spec_json()
                    .map_err(|e| ChainError(e.to_string()))
                    .and_then(|json| Ok(tables.register_subscription(&sub.key, &json)?));
                match written {
                    Ok(()) => sub.registered = true,
                    Err(e) => {
                        fx.error(format!("writing a subscription's registry row: {e}"));
                        left = true;
                    }
                }
            }
            if let Some(text) = sub.attachment_to_write() {
                match sockets.set_attachment(&sub.socket, &text) {
                    Ok(()) => sub.written = sub.cursor,
                    Err(e) => fx.error(format!("writing a subscription's attachment: {e}")),
                }
            }
        }
        self.flush_later(left, fx);
    }

    /// Registry rows whose socket is gone (the object restarted): sockets never survive a
    /// restart, only hibernation, so a row without a socket is dead.
    pub fn drop_orphans<K: GatewaySockets<Socket = S>>(tables: &impl ChainTables, sockets: &K) {
        let live: HashSet<String> = sockets
            .all()
            .iter()
            .filter_map(|socket| socket_state(sockets, socket).ok().flatten().map(|state| state.key))
            .collect();
        let Ok(keys) = tables.subscription_keys() else { return };
        for key in keys.into_iter().filter(|k| !live.contains(k)) {
            let _ = tables.unregister_subscription(&key);
        }
    }

    /// Every attached subscription, with what it was delivered (the list is read first if
    /// need be).
    pub fn each_attached<K: GatewaySockets<Socket = S>>(
        &mut self,
        tables: &impl ChainTables,
        sockets: &K,
        now_ms: u64,
        fx: &mut Effects,
    ) -> Vec<(&Spec, Cursor, Delivered)> {
        attached_list(&mut self.attached, tables, sockets, now_ms, fx)
            .iter()
            .map(|sub| (&sub.loaded.spec, sub.cursor, sub.delivered))
            .collect()
    }

    /// Saved-cursor moves not yet written, for a reader of the saved cursors.
    pub fn pending_cursor(&self, key: &str) -> Option<(Offset, u64)> {
        self.cursors.newest(key, None)
    }
}

/// One audit line when a subscription crosses the lag threshold, either way
/// (`attached::LAGGING_EVENTS`): its lag is the events published after what it was delivered.
fn audit_lag_crossing<S>(sub: &mut Attached<S>, head: Offset, fx: &mut Effects) {
    let delivered = sub.cursor.delivered_through(head);
    let lag = head - delivered;
    if let Some(lagging) = sub.delivered.lag_crossing(lag) {
        let spec = &sub.loaded.spec;
        fx.audit(
            if lagging { "consumer.lagging" } else { "consumer.caught_up" },
            serde_json::json!({
                "clientId": spec.client_id, "appKey": spec.app_key, "connectionId": spec.connection_id,
                "operationId": spec.id, "lagEvents": lag, "deliveredThrough": delivered.to_string(),
            }),
        );
    }
}
