//! Serving one subscription in a turn of the chain object: what its window and the turn's
//! read budget allow, from storage at its cursor, with the pages, projections and messages
//! the turn's other subscriptions share.

use std::collections::HashMap;
use std::rc::Rc;

use super::attached::{Attached, LoadedSpec};
use super::host::{ChainError, GatewaySockets};
use crate::log::{LogStore, Offset, OffsetLog, Page, TurnBudget};
use crate::stream::pump::{pump, EventCache, Pumped};
use crate::stream::spec::BatchEncoding;
use crate::stream::wire::WINDOW;

/// How serving a subscription ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ServeOutcome {
    /// It has what its window and the head allow.
    Waiting,
    /// The turn's budget ran out before it had: it needs another turn.
    CutShort,
    /// A frame over the limit ended it.
    Failed,
}

/// A pump shared in a turn, and the form its messages are sent in.
type SharedMessagesKey = (*const Pumped, BatchEncoding);

/// One turn's serving of subscriptions: the pages, projections and pumps they share, the
/// storage budget, and each shared message as the runtime's value, made once and sent to
/// every socket it is for.
pub(super) struct ServeTurn<M> {
    cache: EventCache,
    budget: TurnBudget,
    /// By the pump's address and the encoding; the `Rc` held here keeps that address unique
    /// in the turn.
    messages: HashMap<SharedMessagesKey, (Rc<Pumped>, Vec<M>)>,
}

impl<M> ServeTurn<M> {
    /// `recent`: the events the object stored since its last fan-out, up to the head.
    pub(super) fn new(recent: Option<Rc<Page>>) -> Self {
        ServeTurn { cache: EventCache::starting_with(recent), budget: TurnBudget::PER_TURN, messages: HashMap::new() }
    }

    /// Sends what `pump` gave a subscription from offset `from`. A pump the turn shares is
    /// made into the runtime's messages once; one it does not share (it is over the turn's
    /// `SHARED_PUMP_BYTES`) is sent and let go, so a turn never holds more.
    fn send<K: GatewaySockets<Message = M>>(
        &mut self,
        sockets: &K,
        sub: &Attached<K::Socket>,
        from: Offset,
        pumped: &Rc<Pumped>,
    ) -> Result<(), ChainError> {
        if pumped.messages.is_empty() {
            return Ok(());
        }
        let encoding = sub.loaded.spec.batches;
        if !self.cache.shares(&sub.loaded.keys, from, pumped) {
            for message in &pumped.messages {
                sockets.send_text(&sub.socket, message, encoding)?;
            }
            return Ok(());
        }
        let (_, messages) = self.messages.entry((Rc::as_ptr(pumped), encoding)).or_insert_with(|| {
            (pumped.clone(), pumped.messages.iter().map(|m| sockets.message(m, encoding)).collect())
        });
        for message in messages.iter() {
            sockets.send(&sub.socket, message)?;
        }
        Ok(())
    }
}

/// Sends a subscription what its window and the turn's budget allow, from storage at its
/// cursor, after `acked` window units were acknowledged. Its cursor moves in memory only
/// (see `attached`). Returns how it ended and the frames sent.
pub(super) fn serve<L: LogStore, K: GatewaySockets>(
    log: &OffsetLog<L>,
    sockets: &K,
    sub: &mut Attached<K::Socket>,
    head: Offset,
    turn: &mut ServeTurn<K::Message>,
    acked: u32,
) -> Result<(ServeOutcome, u32), ChainError> {
    if !sub.cursor.acknowledge(acked, head) {
        return Ok((ServeOutcome::Waiting, 0));
    }
    let LoadedSpec { spec, keys, .. } = &sub.loaded;
    let from = sub.cursor.next;
    let pumped = pump(log, spec, keys, &mut sub.cursor, head, WINDOW, &mut turn.cache, &mut turn.budget)?;
    turn.send(sockets, sub, from, &pumped)?;
    sub.delivered.frames += u64::from(pumped.frames);
    sub.delivered.bytes += pumped.messages.iter().map(|m| m.len() as u64).sum::<u64>();
    let outcome = if pumped.failed {
        ServeOutcome::Failed
    } else if pumped.cut_short {
        ServeOutcome::CutShort
    } else {
        ServeOutcome::Waiting
    };
    Ok((outcome, pumped.frames))
}
