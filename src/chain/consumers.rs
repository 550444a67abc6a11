//! Who consumes a chain, for operators: the attached subscriptions (in memory) and the saved
//! resume cursors (a range of their table), a bounded page at a time, each with its lag; and
//! per client the furthest-behind subscription, for the metrics endpoint.

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::attached::{Delivered, Spec};
use super::host::ChainTables;
use crate::log::{EventFilter, Offset, StoreError};
use crate::rpc::operators::{AttachedConsumer, Consumers, ConsumersRequest, SavedCursor, MAX_CONSUMERS_PAGE};
use crate::stream::pump::Cursor;

/// Where a page goes on: after a subscription's sort key, or after a saved cursor's key
/// (empty: from the first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumersCursor {
    Subscriptions(String),
    SavedCursors(String),
}

/// A cursor longer than this is not one the service wrote.
const MAX_CURSOR_CHARS: usize = 4096;

impl ConsumersCursor {
    pub fn encode(&self) -> String {
        let text = match self {
            ConsumersCursor::Subscriptions(key) => format!("s{key}"),
            ConsumersCursor::SavedCursors(key) => format!("c{key}"),
        };
        URL_SAFE_NO_PAD.encode(text)
    }

    pub fn decode(text: &str) -> Result<ConsumersCursor, String> {
        let refuse = || "after is not a cursor this service wrote (use the previous page's next)".to_string();
        if text.len() > MAX_CURSOR_CHARS {
            return Err(refuse());
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| refuse())?;
        let text = String::from_utf8(bytes).map_err(|_| refuse())?;
        match text.split_at_checked(1) {
            Some(("s", key)) => Ok(ConsumersCursor::Subscriptions(key.to_string())),
            Some(("c", key)) => Ok(ConsumersCursor::SavedCursors(key.to_string())),
            _ => Err(refuse()),
        }
    }
}

/// The order subscriptions are listed in: by client, connection and operation.
fn sort_key(spec: &Spec) -> String {
    format!("{}\u{1f}{}\u{1f}{}", spec.client_id, spec.connection_id, spec.id)
}

/// The app key and filter a saved cursor's key names (`stream::spec::cursor_key`: the app key,
/// `|`, the filter's JSON; an app key may itself hold a `|`).
pub fn parse_cursor_key(key: &str) -> Option<(String, EventFilter)> {
    key.match_indices('|')
        .find_map(|(at, _)| serde_json::from_str(&key[at + 1..]).ok().map(|filter| (key[..at].to_string(), filter)))
}

fn attached_consumer(spec: &Spec, cursor: Cursor, delivered: Delivered, head: Offset) -> AttachedConsumer {
    let delivered_through = cursor.delivered_through(head);
    AttachedConsumer {
        client_id: spec.client_id.clone(),
        app_key: spec.app_key.clone(),
        connection_id: spec.connection_id.clone(),
        operation_id: spec.id.clone(),
        filter: spec.filter.clone(),
        connected_since: delivered.since,
        delivered_through,
        read_through: delivered.read_through,
        lag_events: head - delivered_through,
        last_ack_at: delivered.last_ack_at,
        frames: delivered.frames,
        bytes: delivered.bytes,
    }
}

/// One page of the chain's consumers: `Err` with the refusal's message for a bad `after`.
/// At most `limit` entries (1–[`MAX_CONSUMERS_PAGE`]): the attached subscriptions after
/// the cursor, then as many saved cursors as fit, read as one range of their table.
pub fn consumers_page(
    chain_code: String,
    head: Offset,
    attached: &[(&Spec, Cursor, Delivered)],
    tables: &impl ChainTables,
    request: &ConsumersRequest,
) -> Result<Result<Consumers, String>, StoreError> {
    let limit = request.limit.clamp(1, MAX_CONSUMERS_PAGE);
    let after = match request.after.as_deref().map(ConsumersCursor::decode).transpose() {
        Ok(after) => after,
        Err(why) => return Ok(Err(why)),
    };
    let mut page =
        Consumers { chain_code, head_offset: head, subscriptions: Vec::new(), saved_cursors: Vec::new(), next: None };
    // Subscriptions after this sort key first ("": all of them), unless the walk is already
    // in the saved cursors.
    let (subscriptions_after, saved_after) = match after {
        None => (Some(String::new()), String::new()),
        Some(ConsumersCursor::Subscriptions(key)) => (Some(key), String::new()),
        Some(ConsumersCursor::SavedCursors(key)) => (None, key),
    };
    if let Some(from) = subscriptions_after {
        let mut listed: Vec<(String, &(&Spec, Cursor, Delivered))> =
            attached.iter().map(|entry| (sort_key(entry.0), entry)).filter(|(key, _)| *key > from).collect();
        listed.sort_by(|a, b| a.0.cmp(&b.0));
        if listed.len() > limit {
            page.next = Some(ConsumersCursor::Subscriptions(listed[limit - 1].0.clone()).encode());
            listed.truncate(limit);
        }
        page.subscriptions = listed
            .into_iter()
            .map(|(_, (spec, cursor, delivered))| attached_consumer(spec, *cursor, *delivered, head))
            .collect();
        if page.next.is_some() {
            return Ok(Ok(page));
        }
    }
    let room = limit - page.subscriptions.len();
    if room == 0 {
        page.next = Some(ConsumersCursor::SavedCursors(String::new()).encode());
        return Ok(Ok(page));
    }
    let mut saved = tables.saved_cursors(&saved_after, room + 1)?;
    if saved.len() > room {
        saved.truncate(room);
        page.next = saved.last().map(|(key, _, _)| ConsumersCursor::SavedCursors(key.clone()).encode());
    }
    page.saved_cursors = saved
        .into_iter()
        .filter_map(|(key, offset, updated_at)| {
            let (app_key, filter) = parse_cursor_key(&key)?;
            Some(SavedCursor { app_key, filter, offset, updated_at, lag_events: head.saturating_sub(offset) })
        })
        .collect();
    Ok(Ok(page))
}

/// Per client id, the lag of its furthest-behind attached subscription (head − delivered).
pub fn lag_by_client(attached: &[(&Spec, Cursor, Delivered)], head: Offset) -> BTreeMap<String, u64> {
    let mut lag = BTreeMap::new();
    for (spec, cursor, _) in attached {
        let behind = head - cursor.delivered_through(head);
        let worst: &mut u64 = lag.entry(spec.client_id.clone()).or_default();
        *worst = (*worst).max(behind);
    }
    lag
}
