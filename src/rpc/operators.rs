//! What a chain's object tells operators beyond its numbers: who consumes the chain and how
//! far behind each one is ([`Consumers`], a page at a time), and the figures the metrics
//! endpoint renders ([`ChainMetrics`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::offset_text;
use super::ChainNumbers;
use crate::log::{EventFilter, Offset};

/// Entries of a consumers page at most, and by default.
pub const MAX_CONSUMERS_PAGE: usize = 1_000;
pub const DEFAULT_CONSUMERS_PAGE: usize = 100;

/// A page of the chain's consumers: attached subscriptions first, then saved resume cursors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Consumers {
    pub chain_code: String,
    #[serde(with = "offset_text")]
    pub head_offset: Offset,
    pub subscriptions: Vec<AttachedConsumer>,
    pub saved_cursors: Vec<SavedCursor>,
    /// Pass as `after` for the next page; `None` at the end.
    pub next: Option<String>,
}

/// A subscription attached to the chain now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachedConsumer {
    pub client_id: String,
    pub app_key: String,
    pub connection_id: String,
    /// The vendor's operation id on its connection.
    pub operation_id: String,
    pub filter: EventFilter,
    /// When it attached to the chain's object as it runs now (ms; a restart reattaches).
    pub connected_since: u64,
    /// The last offset delivered: sent towards the vendor (the window of unacknowledged
    /// frames stops it while the vendor does not read).
    #[serde(with = "offset_text")]
    pub delivered_through: Offset,
    /// The last offset the vendor is known to have read (a later ping answered, or the resend
    /// window passed): where a resume without an offset would start after.
    #[serde(with = "offset_text")]
    pub read_through: Offset,
    /// Events published after `delivered_through` (head − delivered-through).
    pub lag_events: u64,
    pub last_ack_at: Option<u64>,
    pub frames: u64,
    pub bytes: u64,
}

/// Where an app key resumes with a filter (kept 24 h after its last move).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavedCursor {
    pub app_key: String,
    pub filter: EventFilter,
    /// The last offset read.
    #[serde(with = "offset_text")]
    pub offset: Offset,
    pub updated_at: u64,
    pub lag_events: u64,
}

/// A consumers page request (the object's query string).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ConsumersRequest {
    pub after: Option<String>,
    pub limit: usize,
}

/// A chain's figures for the metrics endpoint: its numbers, and per client and per webhook
/// how far behind they are. Bounded by the clients and webhooks configured, never by
/// connections.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChainMetrics {
    pub numbers: ChainNumbers,
    /// Per client id, the lag of its furthest-behind attached subscription (head − delivered).
    pub consumer_lag: BTreeMap<String, u64>,
    /// Per webhook id: its lag in events, and whether it is paused.
    pub webhooks: BTreeMap<String, WebhookFigures>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookFigures {
    pub lag_events: u64,
    pub paused: bool,
}

impl ConsumersRequest {
    /// The admin API's query string: `after` (a page's `next`) and `limit` (1–1,000, default
    /// 100); anything else, or a parameter given twice, is refused with why.
    pub fn from_query(query: &str) -> Result<ConsumersRequest, String> {
        let mut request = ConsumersRequest { after: None, limit: DEFAULT_CONSUMERS_PAGE };
        for (key, value) in crate::query_string::unique_params(query)? {
            match key.as_ref() {
                "after" => request.after = Some(value.into_owned()),
                "limit" => request.limit = crate::query_string::parse_limit(&value, MAX_CONSUMERS_PAGE)?,
                other => return Err(format!("unknown parameter {other:?} (known: after, limit)")),
            }
        }
        Ok(request)
    }
}
