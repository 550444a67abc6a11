//! The pull API: `GET /events/v1/chains/{chainCode}/events?from=N&limit=M` (or `since=` a
//! time),
//! for systems that cannot hold a socket and for re-reading history. The same grants,
//! property restriction and filters as a subscription, full `EventHeader`s, and the same
//! retention-gap signal; one chain-object turn per request, bounded like any other.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::log::read::{start_at, OutOfRange, PAGE, PAGE_BYTES};
use crate::log::{write_event_header, EventFilter, Gap, LogStore, Offset, OffsetLog, StoreError, TurnBudget};

pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1_000;
/// Bodies one answer carries at most (at least one event, whatever its size): an answer
/// stays a few MiB however large `limit` and the events are.
pub const MAX_ANSWER_BYTES: usize = 4 << 20;

/// The query parameters, as a vendor writes them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullParams {
    pub from: Option<Offset>,
    /// `since`: ms since the epoch.
    pub since: Option<u64>,
    pub limit: usize,
    pub hotel_code: Option<String>,
    pub event_names: Option<Vec<String>>,
    pub module_names: Option<Vec<String>>,
}

/// Parses the query string; the error is the `400` message.
pub fn parse_params(query: &str) -> Result<PullParams, String> {
    let mut params = PullParams { limit: DEFAULT_LIMIT, ..Default::default() };
    for (key, value) in crate::query_string::unique_params(query)? {
        let list = || value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect::<Vec<_>>();
        match key.as_ref() {
            "from" => {
                params.from = Some(crate::log::parse_offset(&value).map_err(|e| format!("from: {e}"))?);
            }
            "since" => params.since = Some(crate::log::read::parse_time("since", &value)?),
            "limit" => params.limit = crate::query_string::parse_limit(&value, MAX_LIMIT)?,
            "hotelCode" => params.hotel_code = Some(value.into_owned()),
            "eventNames" => params.event_names = Some(list()),
            "moduleNames" => params.module_names = Some(list()),
            other => {
                return Err(format!(
                    "unknown parameter {other:?} (known: from, since, limit, hotelCode, eventNames, moduleNames)"
                ))
            }
        }
    }
    if params.from.is_some() && params.since.is_some() {
        return Err("give from or since, not both".into());
    }
    Ok(params)
}

/// What the chain object is asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadRequest {
    /// `None`: from the oldest retained event (or from `since`).
    pub from: Option<Offset>,
    /// From the first event stored at or after this time (ms), when `from` is `None`.
    #[serde(default)]
    pub since: Option<u64>,
    pub limit: usize,
    pub filter: EventFilter,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    OutOfRange { requested: Offset, head: Offset },
    Store(StoreError),
}

impl From<StoreError> for ReadError {
    fn from(e: StoreError) -> Self {
        ReadError::Store(e)
    }
}

/// Reads one answer of the pull API: the answer's JSON text,
/// `{"events":[EventHeader…],"next":"<offset>","head":"<offset>"[,"gap":{…}]}`. `next` is
/// where the following request starts; it can move past events without returning any (a
/// filter that matched none within the turn's budget), so a client pages on until `next`
/// is past `head`.
pub fn read<S: LogStore>(log: &OffsetLog<S>, request: &ReadRequest) -> Result<String, ReadError> {
    let bounds = log.bounds()?;
    let head = bounds.head_offset;
    let (mut next, mut gap) = match (request.from, request.since) {
        (None, Some(since)) => log.start_at_time(since)?,
        (from, _) => match start_at(from.unwrap_or_else(|| bounds.oldest_offset.unwrap_or(head + 1)), &bounds) {
            Ok(resolved) => resolved,
            Err(OutOfRange { requested, head }) => return Err(ReadError::OutOfRange { requested, head }),
        },
    };
    let limit = request.limit.clamp(1, MAX_LIMIT);
    let mut budget = TurnBudget::PER_TURN;
    let mut events = String::from("[");
    let mut count = 0;
    let mut bytes = 0;
    'scan: while next <= head && count < limit && !budget.exhausted() {
        let page = log.read_page(next, PAGE, PAGE_BYTES.min(budget.bytes))?;
        budget.spend(&page);
        // A page past `next` (or none below the head): retention overtook this read.
        let first = page.events.first().map_or(head + 1, |e| e.offset);
        if first > next && gap.is_none() {
            gap = Some(Gap { requested: next, resumed_at: first });
        }
        next = next.max(first);
        for e in &page.events {
            if count >= limit || (count > 0 && bytes + e.body.len() > MAX_ANSWER_BYTES) {
                break 'scan;
            }
            next = e.offset + 1;
            if !request.filter.matches(e) {
                continue;
            }
            if count > 0 {
                events.push(',');
            }
            write_event_header(&e.body, e.offset, &mut events);
            count += 1;
            bytes += e.body.len();
        }
        if page.at_end {
            next = head + 1;
        }
    }
    events.push(']');
    let mut out = format!("{{\"events\":{events},\"next\":\"{next}\",\"head\":\"{head}\"");
    if let Some(g) = gap {
        let _ = write!(out, ",\"gap\":{{\"requested\":\"{}\",\"resumedAt\":\"{}\"}}", g.requested, g.resumed_at);
    }
    out.push('}');
    Ok(out)
}
