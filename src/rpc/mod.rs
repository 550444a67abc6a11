//! The internal wire between the Worker and its Durable Objects: every path is a constant
//! here and every body a type both sides use, so the two cannot drift. The publish batch
//! has its codec, both directions, next to its type ([`append`]); the guard objects' bodies
//! are in [`guard`]. (The frames a chain object streams to a gateway are streaming's own:
//! `stream::wire`.)

use serde::{Deserialize, Serialize};

use crate::log::Offset;

pub mod append;
pub mod guard;
mod offset_text;
pub mod operators;
pub mod tally;

/// Internal requests need an absolute URL; the host is never resolved.
pub const CHAIN_ORIGIN: &str = "https://chain.internal";
pub const GUARD_ORIGIN: &str = "https://guard.internal";

/// Chain object paths.
pub mod chain {
    /// `POST`, body [`super::append::encode_batch`]; answer [`super::Stored`].
    pub const APPEND: &str = "/append";
    /// `GET`; answer [`super::ChainNumbers`].
    pub const STATS: &str = "/stats";
    /// `POST`; the object answers, then resets itself.
    pub const RESTART: &str = "/restart";
    /// `GET` with `Upgrade: websocket`, headers [`super::SUBSCRIPTION_HEADER`] and
    /// [`super::CHAIN_HEADER`]; `101` with [`super::START_HEADER`] (and [`super::GAP_HEADER`]),
    /// or a [`super::Refusal`].
    pub const SUBSCRIBE: &str = "/subscribe";
    /// `GET ?appKey=&connection=`; answer [`super::Active`].
    pub const ACTIVE: &str = "/active";
    /// `POST` a `pull::ReadRequest`; answer the pull API's body, or a [`super::Refusal`] (409).
    pub const READ: &str = "/read";
    /// `POST` a `current_state::StateRequest`; answer the state API's page, or a
    /// [`super::Refusal`] (400: a cursor that is not this chain's).
    pub const STATE: &str = "/state";
    /// `GET` with [`super::CHAIN_HEADER`]; answer [`super::Webhooks`].
    pub const WEBHOOKS: &str = "/webhooks";
    /// `POST` a [`super::operators::ConsumersRequest`]; answer [`super::operators::Consumers`],
    /// or a [`super::Refusal`] (400: an `after` that is not one of this chain's).
    pub const CONSUMERS: &str = "/consumers";
    /// `GET` with [`super::CHAIN_HEADER`]; answer [`super::operators::ChainMetrics`].
    pub const METRICS: &str = "/metrics";
    /// `POST` a [`super::ResumeWebhook`] with [`super::CHAIN_HEADER`]; answer
    /// [`super::WebhookResumed`], or a [`super::Refusal`] (404 unknown webhook, 409 `from`
    /// past the head).
    pub const RESUME_WEBHOOK: &str = "/webhooks/resume";
}

/// The subscription spec (`stream::spec::encode_spec`).
pub const SUBSCRIPTION_HEADER: &str = "x-subscription";
/// The chain code the gateway attaches to (grants are re-checked against it).
pub const CHAIN_HEADER: &str = "x-chain-code";
/// The first offset the object will consider.
pub const START_HEADER: &str = "x-start-offset";
/// Retention dropped events from this offset on (the gap to report).
pub const GAP_HEADER: &str = "x-gap-requested";

/// The offsets of an appended batch, one per event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    pub offsets: Vec<Offset>,
}

/// A chain's numbers as its object knows them, and as operators read them (offsets as
/// strings, exact in JavaScript).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChainNumbers {
    pub chain_code: String,
    #[serde(with = "offset_text")]
    pub head_offset: Offset,
    #[serde(with = "offset_text::optional")]
    pub oldest_offset: Option<Offset>,
    pub retained_events: u64,
    pub subscribers: usize,
    pub last_publish_at: Option<u64>,
    /// `next` frames the object sent to its subscriptions since `counting_since` (ms), when
    /// this instance of the object started: a restart or a deploy starts a new count.
    pub deliveries: u64,
    pub counting_since: u64,
    /// The entities whose current state the chain keeps, and the bytes of their state.
    pub entities: crate::log::entity::EntityTotals,
    /// The offset the state is folded through (the state API's `asOfOffset`).
    #[serde(with = "offset_text")]
    pub state_through: Offset,
}

/// Whether an app key streams on a connection other than `connection`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActiveQuery {
    pub app_key: String,
    pub connection: String,
}

impl ActiveQuery {
    /// The [`chain::ACTIVE`] request's path and query.
    pub fn path(&self) -> String {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("appKey", &self.app_key)
            .append_pair("connection", &self.connection)
            .finish();
        format!("{}?{query}", chain::ACTIVE)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Active {
    pub active: bool,
}

/// A subscription the object refuses: the GraphQL error code and message for the vendor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub code: String,
    pub message: String,
}

impl Refusal {
    /// `param` (an offset a request named: `offset`, `from`) is past the next offset the
    /// chain will assign.
    pub fn offset_out_of_range(param: &str, requested: Offset, head: Offset) -> Refusal {
        Refusal {
            code: crate::graphql::codes::OFFSET_OUT_OF_RANGE.into(),
            message: format!(
                "{param} {requested} is beyond the chain's head {head}: the next event will be {}",
                head + 1
            ),
        }
    }
}

/// A chain's webhooks as its object knows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Webhooks {
    pub head_offset: Offset,
    pub webhooks: Vec<crate::webhook::Status>,
}

/// An operator's resume of one webhook: from `from` when given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeWebhook {
    pub id: String,
    pub from: Option<Offset>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookResumed {
    pub was_paused: bool,
    pub webhook: crate::webhook::Status,
}

/// Where a [`chain::SUBSCRIBE`] attached the subscription, from the `101`'s
/// [`START_HEADER`] and [`GAP_HEADER`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttachedAt {
    pub start: Offset,
    /// Retention dropped events from this offset on: the gap to report.
    pub gap: Option<Offset>,
}

impl AttachedAt {
    /// Read from the two headers' values: an unreadable gap is none, an unreadable start 0.
    pub fn from_headers(start: Option<&str>, gap: Option<&str>) -> AttachedAt {
        AttachedAt { start: start.and_then(|s| s.parse().ok()).unwrap_or(0), gap: gap.and_then(|g| g.parse().ok()) }
    }
}

/// The hibernation tag of every internal socket of one vendor connection.
pub fn connection_tag(connection_id: &str) -> String {
    format!("conn:{connection_id}")
}
