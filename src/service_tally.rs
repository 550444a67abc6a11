//! What the Worker's isolates count of the service: HTTP answers by route and status,
//! WebSocket closes by who closed and code, slow-consumer closes by client, refused
//! subscriptions by error code, and how long an accepted publish took. Each count belongs to
//! the enterprise it concerns (the chain's, the client's), or to none when the request names
//! none it can be trusted for ([`UNATTRIBUTED`]); an admin sees its own enterprise's counts
//! and the unattributed ones, never another enterprise's. Each isolate counts in memory and
//! adds what it counted to one object every so often; the object keeps the sum, which
//! `GET /admin/v1/metrics` shows. Every key is bounded: enterprises and client ids are
//! configured ones, routes and statuses the service's own, close codes a client chooses
//! outside the standard ones count as `other`, and each map holds at most [`MAX_KEYS`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::ServiceConfig;
use crate::routes::Route;

/// The most keys one map keeps; past it new keys count under [`OTHER`]. The service's own
/// labels are a few dozen: this bounds only what a change of configuration could add.
pub const MAX_KEYS: usize = 256;
/// The key of whatever is not counted by name.
pub const OTHER: &str = "other";
/// The enterprise key of counts no enterprise can be named for (no chain, an unknown one,
/// no credentials): shown to every admin.
pub const UNATTRIBUTED: &str = "";
/// The enterprise key of counts past [`MAX_KEYS`] enterprises: shown to nobody, so that no
/// enterprise's counts reach another's admin.
const OVERFLOW: &str = "~overflow";

/// Upper bounds of the publish-duration histogram's buckets, in milliseconds (a last,
/// unbounded bucket follows).
pub const PUBLISH_BUCKETS_MS: [u64; 11] = [5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000];

/// Who closed a WebSocket connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClosedBy {
    Server,
    Client,
}

impl ClosedBy {
    pub fn label(self) -> &'static str {
        match self {
            ClosedBy::Server => "server",
            ClosedBy::Client => "client",
        }
    }
}

/// The route label of an HTTP answer: the API it belongs to, never the chain or the path.
pub fn route_label(route: &Route) -> &'static str {
    match route {
        Route::Tokens => "tokens",
        Route::Publish { .. } => "publish",
        Route::Pull { .. } => "pull",
        Route::State { .. } => "state",
        Route::Subscriptions => "subscriptions",
        Route::AdminChains
        | Route::AdminChain { .. }
        | Route::AdminRestart { .. }
        | Route::AdminWebhooks { .. }
        | Route::AdminWebhookResume { .. }
        | Route::AdminConsumers { .. } => "admin",
        Route::AdminMetrics => "metrics",
        Route::Healthz => "healthz",
        Route::Docs | Route::OpenApi | Route::AsyncApi | Route::Jwks | Route::Static(_) => "static",
        Route::NotFound | Route::MethodNotAllowed { .. } => "unrouted",
    }
}

/// The code label of a close: the service's own codes and the standard ones (1000–1015) by
/// number, anything else a client chose as [`OTHER`].
pub fn close_code_label(code: u16, by: ClosedBy) -> String {
    match (by, code) {
        (ClosedBy::Server, _) | (ClosedBy::Client, 1000..=1015) => code.to_string(),
        (ClosedBy::Client, _) => OTHER.to_string(),
    }
}

/// A histogram of durations: a count per bucket of [`PUBLISH_BUCKETS_MS`] (not cumulative)
/// and one for longer, their sum and their number.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DurationHistogram {
    pub buckets: Vec<u64>,
    pub sum_ms: u64,
    pub count: u64,
}

impl DurationHistogram {
    pub fn observe(&mut self, ms: u64) {
        self.buckets.resize(PUBLISH_BUCKETS_MS.len() + 1, 0);
        let at = PUBLISH_BUCKETS_MS.iter().position(|&bound| ms <= bound).unwrap_or(PUBLISH_BUCKETS_MS.len());
        self.buckets[at] += 1;
        self.sum_ms = self.sum_ms.saturating_add(ms);
        self.count += 1;
    }

    /// Adds `other` in. Buckets of another shape (a deploy that changed them) start over:
    /// Prometheus reads a counter that went down as a reset.
    fn merge(&mut self, other: &DurationHistogram) {
        if other.count == 0 {
            return;
        }
        if other.buckets.len() != PUBLISH_BUCKETS_MS.len() + 1 {
            return;
        }
        if self.buckets.len() != other.buckets.len() {
            *self = DurationHistogram::default();
            self.buckets.resize(other.buckets.len(), 0);
        }
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            *mine = mine.saturating_add(*theirs);
        }
        self.sum_ms = self.sum_ms.saturating_add(other.sum_ms);
        self.count = self.count.saturating_add(other.count);
    }

    /// `(upper bound in seconds, cumulative count)` per bucket, the last `+Inf`.
    pub fn cumulative(&self) -> Vec<(Option<f64>, u64)> {
        let mut total = 0;
        let mut out = Vec::with_capacity(PUBLISH_BUCKETS_MS.len() + 1);
        for (i, bound) in PUBLISH_BUCKETS_MS.iter().map(Some).chain([None]).enumerate() {
            total += self.buckets.get(i).copied().unwrap_or(0);
            #[allow(clippy::cast_precision_loss, reason = "bounds are a few thousand milliseconds")]
            out.push((bound.map(|&ms| ms as f64 / 1000.0), total));
        }
        out
    }
}

/// Counts by key, bounded by [`MAX_KEYS`].
pub type Counts = BTreeMap<String, u64>;

fn add(counts: &mut Counts, key: &str, n: u64) {
    if n == 0 {
        return;
    }
    // Looked up before any allocation: the key is nearly always there already.
    if let Some(slot) = counts.get_mut(key) {
        *slot = slot.saturating_add(n);
        return;
    }
    let key = if counts.len() < MAX_KEYS { key } else { OTHER };
    let slot = counts.entry(key.to_string()).or_default();
    *slot = slot.saturating_add(n);
}

fn add_all(into: &mut Counts, from: &Counts) {
    for (key, n) in from {
        add(into, key, *n);
    }
}

/// One enterprise's counts. Two-level maps are keyed by their first label, then their second.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tally {
    /// Route, then status.
    #[serde(default)]
    pub responses: BTreeMap<String, Counts>,
    /// Who closed (`server`, `client`), then code.
    #[serde(default)]
    pub closes: BTreeMap<String, Counts>,
    /// Client id.
    #[serde(default)]
    pub slow_consumer_closes: Counts,
    /// Error code (`FORBIDDEN`, `BAD_USER_INPUT`, …).
    #[serde(default)]
    pub subscriptions_refused: Counts,
    #[serde(default)]
    pub publish_duration: DurationHistogram,
}

fn add_nested(into: &mut BTreeMap<String, Counts>, first: &str, second: &str, n: u64) {
    if let Some(counts) = into.get_mut(first) {
        add(counts, second, n);
        return;
    }
    let first = if into.len() < MAX_KEYS { first } else { OTHER };
    add(into.entry(first.to_string()).or_default(), second, n);
}

impl Tally {
    pub fn is_empty(&self) -> bool {
        self.responses.is_empty()
            && self.closes.is_empty()
            && self.slow_consumer_closes.is_empty()
            && self.subscriptions_refused.is_empty()
            && self.publish_duration.count == 0
    }

    /// An HTTP answer (`101` for an accepted WebSocket upgrade).
    pub fn count_response(&mut self, route: &Route, status: u16) {
        add_nested(&mut self.responses, route_label(route), &status.to_string(), 1);
    }

    /// A closed WebSocket connection; `client` is who it belonged to (if it said).
    pub fn count_close(&mut self, by: ClosedBy, code: u16, client: Option<&str>) {
        add_nested(&mut self.closes, by.label(), &close_code_label(code, by), 1);
        if by == ClosedBy::Server && code == crate::stream::protocol::close::TOO_SLOW {
            add(&mut self.slow_consumer_closes, client.unwrap_or(OTHER), 1);
        }
    }

    /// A subscription refused with these error codes: once per distinct code (a refusal with
    /// several errors of one code is one refusal).
    pub fn count_subscription_refused<'a>(&mut self, codes: impl IntoIterator<Item = &'a str>) {
        let distinct: std::collections::BTreeSet<&str> = codes.into_iter().collect();
        for code in distinct {
            add(&mut self.subscriptions_refused, code, 1);
        }
    }

    /// An HTTP answer given `elapsed_ms` after the request arrived: an accepted publish's
    /// time is observed too.
    pub fn count_answer(&mut self, route: &Route, status: u16, elapsed_ms: u64) {
        self.count_response(route, status);
        if matches!(route, Route::Publish { .. }) && (200..300).contains(&status) {
            self.observe_publish(elapsed_ms);
        }
    }

    pub fn observe_publish(&mut self, ms: u64) {
        self.publish_duration.observe(ms);
    }

    /// Adds another tally's counts to this one.
    pub fn merge(&mut self, other: &Tally) {
        for (first, counts) in &other.responses {
            for (second, n) in counts {
                add_nested(&mut self.responses, first, second, *n);
            }
        }
        for (first, counts) in &other.closes {
            for (second, n) in counts {
                add_nested(&mut self.closes, first, second, *n);
            }
        }
        add_all(&mut self.slow_consumer_closes, &other.slow_consumer_closes);
        add_all(&mut self.subscriptions_refused, &other.subscriptions_refused);
        self.publish_duration.merge(&other.publish_duration);
    }
}

/// The counts of every enterprise, by enterprise id ([`UNATTRIBUTED`]: of none).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceTally {
    #[serde(default)]
    pub enterprises: BTreeMap<String, Tally>,
}

impl ServiceTally {
    pub fn is_empty(&self) -> bool {
        self.enterprises.values().all(Tally::is_empty)
    }

    /// The counts of `enterprise` (to count into).
    pub fn of(&mut self, enterprise: &str) -> &mut Tally {
        let known = self.enterprises.contains_key(enterprise) || self.enterprises.len() < MAX_KEYS;
        let key = if known { enterprise } else { OVERFLOW };
        if !self.enterprises.contains_key(key) {
            self.enterprises.insert(key.to_string(), Tally::default());
        }
        self.enterprises.get_mut(key).unwrap_or_else(|| unreachable!("inserted above"))
    }

    pub fn merge(&mut self, other: &ServiceTally) {
        for (enterprise, tally) in &other.enterprises {
            self.of(enterprise).merge(tally);
        }
    }

    /// What an admin of `enterprise` sees: its counts and the unattributed ones.
    pub fn seen_by(&self, enterprise: &str) -> Tally {
        let mut seen = Tally::default();
        for key in [UNATTRIBUTED, enterprise] {
            if let Some(tally) = self.enterprises.get(key).filter(|_| key != OVERFLOW) {
                seen.merge(tally);
            }
        }
        seen
    }
}

/// The enterprise an HTTP answer on `route` concerns, when its path names a configured chain.
pub fn enterprise_of_route<'c>(route: &Route, config: &'c ServiceConfig) -> Option<&'c str> {
    let (Route::Publish { chain }
    | Route::Pull { chain }
    | Route::State { chain }
    | Route::AdminChain { chain }
    | Route::AdminRestart { chain }
    | Route::AdminWebhooks { chain }
    | Route::AdminWebhookResume { chain, .. }
    | Route::AdminConsumers { chain }) = route
    else {
        return None;
    };
    config.chain(chain).map(|c| c.enterprise.as_str())
}

/// When an isolate adds its counts to the object: at most once per [`FLUSH_INTERVAL_MS`],
/// so a flood of requests costs the object one request per isolate per interval, and a
/// count waits at most that long after the isolate's next request.
pub const FLUSH_INTERVAL_MS: u64 = 1_000;

/// An isolate's counts not yet added to the object, and when it last added them.
#[derive(Debug, Default)]
pub struct PendingTally {
    pub tally: ServiceTally,
    last_flush_ms: u64,
}

impl PendingTally {
    /// The counts to send now, if there are any and the interval has passed (taken: a
    /// failed send gives them back with [`PendingTally::restore`]).
    pub fn take_due(&mut self, now_ms: u64) -> Option<ServiceTally> {
        if self.tally.is_empty() || now_ms.saturating_sub(self.last_flush_ms) < FLUSH_INTERVAL_MS {
            return None;
        }
        self.take(now_ms)
    }

    /// The counts to send now whatever the interval (a scrape reads its own isolate's).
    pub fn take(&mut self, now_ms: u64) -> Option<ServiceTally> {
        if self.tally.is_empty() {
            return None;
        }
        self.last_flush_ms = now_ms;
        Some(std::mem::take(&mut self.tally))
    }

    /// Counts whose send failed: kept for the next one, so nothing counted is lost.
    pub fn restore(&mut self, tally: &ServiceTally) {
        self.tally.merge(tally);
    }
}
