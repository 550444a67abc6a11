//! The current state of a chain's entities as of an offset (docs/protocol.md, Current state):
//! `GET /events/v1/chains/{chainCode}/state` and `Query.currentState` over the socket. A vendor
//! walks the pages, then streams from `asOfOffset + 1`.
//!
//! Consistency: the state is folded from the log in steps (`log::entity`), each moving the
//! offset the state is through, so when a page is read every entity reflects every event up
//! to that offset. The walk's first page fixes it as `asOfOffset` and carries it in `next`;
//! later pages may show newer events (an entity's `lastOffset` above `asOfOffset`), never
//! older ones; the log holds every event after it.
//!
//! Cost: each page is one turn of the chain's object, of at most `limit` entities, about
//! [`MAX_ANSWER_BYTES`], and [`MAX_SEEKS`] index seeks (one per hotel, or per hotel and module
//! when modules are named): a filter that matches little goes on from its cursor in the next
//! page instead of scanning the chain in one turn.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::auth::access::{chain_access, AccessError};
use crate::auth::token::AccessClaims;
use crate::config::{Scope, ServiceConfig};
use crate::log::entity::{group_range, render_state};
use crate::log::{EntityStore, LogStore, Offset, OffsetLog, StoreError};

pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1_000;
/// State texts one page carries at most (at least one entity, whatever its size).
pub const MAX_ANSWER_BYTES: usize = 4 << 20;
/// Index seeks one page makes at most: one per hotel (and module) group it walks.
pub const MAX_SEEKS: usize = 64;
/// A cursor longer than this is not one the service wrote.
const MAX_CURSOR_CHARS: usize = 2_048;
/// Module names one request may name.
pub const MAX_MODULE_NAMES: usize = 50;

/// The query parameters, as a vendor writes them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateParams {
    pub hotel_code: Option<String>,
    pub module_names: Option<Vec<String>>,
    pub after: Option<String>,
    pub limit: usize,
}

/// Parses the query string; the error is the `400` message.
pub fn parse_params(query: &str) -> Result<StateParams, String> {
    let mut params = StateParams { limit: DEFAULT_LIMIT, ..Default::default() };
    for (key, value) in crate::query_string::unique_params(query)? {
        match key.as_ref() {
            "hotelCode" => params.hotel_code = Some(value.into_owned()),
            "moduleNames" => {
                params.module_names =
                    Some(value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect());
            }
            "after" => params.after = Some(value.into_owned()),
            "limit" => params.limit = parse_limit(&value)?,
            other => return Err(format!("unknown parameter {other:?} (known: hotelCode, moduleNames, after, limit)")),
        }
    }
    Ok(params)
}

/// `limit` / `first`: 1 to [`MAX_LIMIT`].
pub fn parse_limit(text: &str) -> Result<usize, String> {
    crate::query_string::parse_limit(text, MAX_LIMIT)
}

/// Checks a list of module names: not empty, not too many.
pub fn check_module_names(names: Option<Vec<String>>) -> Result<Option<BTreeSet<String>>, String> {
    match names {
        None => Ok(None),
        Some(list) if list.is_empty() => Err("moduleNames must not be empty (omit it for every module)".into()),
        Some(list) if list.len() > MAX_MODULE_NAMES => {
            Err(format!("moduleNames names over {MAX_MODULE_NAMES} modules"))
        }
        Some(list) => Ok(Some(list.into_iter().collect())),
    }
}

/// Where a walk stands, carried by `next`: its `asOfOffset` and the storage key it has passed
/// (`log::entity::EntityKey::storage_key`; exclusive).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateCursor {
    #[serde(rename = "o")]
    pub as_of: Offset,
    #[serde(rename = "p")]
    pub passed: String,
}

impl StateCursor {
    /// Opaque to clients: base64url of a small JSON object.
    pub fn encode(&self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    pub fn decode(text: &str) -> Result<StateCursor, String> {
        let bad =
            || format!("after {:?} is not a cursor this service wrote (use the previous page's next)", short(text));
        if text.len() > MAX_CURSOR_CHARS {
            return Err(bad());
        }
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).map_err(|_| bad())?;
        serde_json::from_slice(&bytes).map_err(|_| bad())
    }
}

fn short(text: &str) -> String {
    text.chars().take(64).collect()
}

/// What the chain's object is asked for one page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateRequest {
    pub chain_code: String,
    /// The hotels the reader may see and asked for (never empty).
    pub hotels: BTreeSet<String>,
    pub module_names: Option<BTreeSet<String>>,
    /// The previous page's `next`.
    pub after: Option<String>,
    pub limit: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateError {
    /// `400`: a cursor this service did not write, or one ahead of the log.
    BadCursor(String),
    Store(StoreError),
}

impl From<StoreError> for StateError {
    fn from(e: StoreError) -> Self {
        StateError::Store(e)
    }
}

/// Why a state request is refused before it reaches the chain's object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateRefusal {
    /// `403` / `FORBIDDEN`: the chain or a named hotel is not granted.
    Forbidden(String),
    /// `400` / `BAD_USER_INPUT`.
    BadRequest(String),
}

/// Authorizes a reader's request (scope `urn:pms:events`, the chain's grant, `hotelCode`
/// within it) and says what to ask the chain's object: the hotels it may see and asked for.
pub fn plan_state_request(
    config: &ServiceConfig,
    claims: &AccessClaims,
    chain_code: &str,
    hotel_code: Option<&str>,
    module_names: Option<Vec<String>>,
    after: Option<String>,
    limit: usize,
) -> Result<StateRequest, StateRefusal> {
    let (chain, grant) = chain_access(config, claims, Scope::Events, chain_code).map_err(|e| match e {
        AccessError::Unauthorized(m) | AccessError::Forbidden(m) => StateRefusal::Forbidden(m),
    })?;
    let filter = crate::stream::subscribe::event_filter(chain, &grant, hotel_code, None, None)
        .map_err(|e| StateRefusal::Forbidden(e.message))?;
    let hotels = filter.properties.unwrap_or_else(|| chain.properties.clone());
    let module_names = check_module_names(module_names).map_err(StateRefusal::BadRequest)?;
    if let Some(after) = &after {
        StateCursor::decode(after).map_err(StateRefusal::BadRequest)?;
    }
    Ok(StateRequest { chain_code: chain.code.clone(), hotels, module_names, after, limit })
}

/// Reads one page: the answer's JSON text,
/// `{"chainCode","asOfOffset","entities":[…],"next":"<cursor>"|null}`.
pub fn read_state<S: LogStore + EntityStore>(log: &OffsetLog<S>, request: &StateRequest) -> Result<String, StateError> {
    let through = log.store().state_through()?;
    let (as_of, passed) = match request.after.as_deref().map(StateCursor::decode).transpose() {
        Err(why) => return Err(StateError::BadCursor(why)),
        Ok(None) => (through, String::new()),
        Ok(Some(cursor)) if cursor.as_of > through => {
            return Err(StateError::BadCursor(format!(
                "after names offset {} beyond the chain's state ({through}): it is not a cursor of this chain",
                cursor.as_of
            )))
        }
        Ok(Some(c)) => (c.as_of, c.passed),
    };
    let limit = request.limit.clamp(1, MAX_LIMIT);
    // The walk's groups in key order, those wholly passed left out: one seek each.
    let groups: Vec<(String, String)> = request
        .hotels
        .iter()
        .flat_map(|h| match &request.module_names {
            None => vec![group_range(h, None)],
            Some(modules) => modules.iter().map(|m| group_range(h, Some(m))).collect(),
        })
        .filter(|(_, before)| *before > passed)
        .collect();
    let mut entities = String::from("[");
    let (mut count, mut bytes) = (0, 0);
    let mut next: Option<String> = None;
    'walk: for (seeks, (group_after, before)) in groups.iter().enumerate() {
        if seeks == MAX_SEEKS || count == limit {
            // Go on from this group's start in the next page.
            next = Some(group_after.clone());
            break;
        }
        let after = if passed > *group_after { passed.as_str() } else { group_after.as_str() };
        let remaining = limit - count;
        let rows = log.store().entity_range(after, before, remaining + 1)?;
        for (i, (_, stored)) in rows.iter().enumerate() {
            if i == remaining || (count > 0 && bytes + stored.len() > MAX_ANSWER_BYTES) {
                next = Some(if i == 0 { group_after.clone() } else { rows[i - 1].0.clone() });
                break 'walk;
            }
            // A row that does not read back (none should) is passed over, not served.
            let Some(state) = render_state(stored) else { continue };
            if count > 0 {
                entities.push(',');
            }
            entities.push_str(&serde_json::to_string(&state).unwrap_or_default());
            count += 1;
            bytes += stored.len();
        }
    }
    entities.push(']');
    let next = next.map(|passed| StateCursor { as_of, passed }.encode());
    let mut out = String::with_capacity(entities.len() + 128);
    out.push_str("{\"chainCode\":");
    crate::text::write_json_str(&mut out, &request.chain_code);
    let _ = write!(out, ",\"asOfOffset\":\"{as_of}\",\"entities\":");
    out.push_str(&entities);
    out.push_str(",\"next\":");
    match next {
        Some(cursor) => crate::text::write_json_str(&mut out, &cursor),
        None => out.push_str("null"),
    }
    out.push('}');
    Ok(out)
}
