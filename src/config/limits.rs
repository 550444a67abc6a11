//! Operational limits: every one has a default and a range, declared once below, so no value
//! an operator writes can wrap an arithmetic expression or switch a bound off. Upper bounds
//! keep every derived quantity (milliseconds, window sums, memory held) far inside its
//! integer type and inside the runtime's own limits (a Worker isolate has 128 MB).

use serde::Deserialize;

/// Declares the limits: the typed struct, its defaults, the document's optional fields and
/// the range each value must fall in, from one list.
macro_rules! limits {
    ($( $(#[$doc:meta])* $field:ident: $ty:ty = $default:expr, $name:literal in $min:expr, $max:expr; )*) => {
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct Limits {
            $( $(#[$doc])* pub $field: $ty, )*
        }

        impl Default for Limits {
            fn default() -> Self {
                Limits { $( $field: $default, )* }
            }
        }

        /// The `limits` object as an operator writes it: every field optional.
        #[derive(Deserialize, Default)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        pub(super) struct RawLimits {
            $( #[serde(default)] $field: Option<u64>, )*
        }

        /// Each limit's name in the document and its range, inclusive.
        pub const LIMIT_RANGES: &[(&str, u64, u64)] = &[ $( ($name, $min, $max), )* ];

        impl Limits {
            fn from_document(raw: &RawLimits) -> Result<Limits, String> {
                let defaults = Limits::default();
                Ok(Limits { $( $field: within($name, raw.$field, defaults.$field, $min, $max)?, )* })
            }
        }
    };
}

/// The value of one limit: the one given, else the default, refused outside its range.
fn within<T: TryFrom<u64>>(name: &str, given: Option<u64>, default: T, min: u64, max: u64) -> Result<T, String> {
    let Some(value) = given else { return Ok(default) };
    if value < min || value > max {
        return Err(format!("limits.{name} must be between {min} and {max} (got {value})"));
    }
    T::try_from(value).map_err(|_| format!("limits.{name}: {value} does not fit"))
}

limits! {
    max_events_per_batch: usize = 500, "maxEventsPerBatch" in 1, 10_000;
    /// An event's frame must fit one WebSocket message (1 MiB) with room for copies.
    max_event_bytes: usize = 64 * 1024, "maxEventBytes" in 1, 512 * 1024;
    max_batch_bytes: usize = 1024 * 1024, "maxBatchBytes" in 1, 16 * 1024 * 1024;
    /// Failed logins of one client id from one source address before that pair is locked.
    login_failures_before_lockout: u32 = 5, "loginFailuresBeforeLockout" in 1, 1_000;
    /// Failed logins of one client id from all sources together before the id is locked:
    /// higher, so that one address cannot lock a client out for everyone.
    login_failures_per_client: u32 = 50, "loginFailuresPerClient" in 1, 100_000;
    login_lockout_seconds: u64 = 300, "loginLockoutSeconds" in 1, 86_400;
    /// A streaming connection that leaves a server `ping` unanswered this long is closed
    /// (4413): it does not read what it is sent.
    slow_consumer_seconds: u64 = 30, "slowConsumerSeconds" in 1, 600;
    /// Bytes sent to a connection and not confirmed read (by the pong of a later ping)
    /// beyond which it is closed (4413), however young its oldest ping.
    slow_consumer_bytes: u64 = 16 * 1024 * 1024, "slowConsumerBytes" in 64 * 1024, 64 * 1024 * 1024;
    /// Frames sent this long before a connection dropped, and not confirmed read by an
    /// answered ping, are sent again to a resume without an offset; older ones count as read.
    resend_window_seconds: u64 = 30, "resendWindowSeconds" in 1, 600;
    connection_init_timeout_seconds: u64 = 5, "connectionInitTimeoutSeconds" in 1, 60;
    max_subscriptions_per_connection: usize = 100, "maxSubscriptionsPerConnection" in 1, 1_000;
    max_operation_id_bytes: usize = 128, "maxOperationIdBytes" in 1, 1_024;
    /// Open vendor connections of one app key, across every gateway isolate.
    max_connections_per_app_key: usize = 200, "maxConnectionsPerAppKey" in 1, 100_000;
    /// WebSocket upgrades of one app key per `upgrade_window_seconds` (all isolates).
    max_upgrades_per_app_key: u32 = 150, "maxUpgradesPerAppKey" in 1, 1_000_000;
    upgrade_window_seconds: u64 = 120, "upgradeWindowSeconds" in 1, 3_600;
    /// How many times one source field may appear in a subscription's output per event
    /// (aliases, repeated through lists and objects): bounds the output of one event.
    max_field_copies: u32 = 8, "maxFieldCopies" in 1, 100;
    /// A webhook request without an answer after this long has failed. Under the runtime's
    /// own bound on waiting for a response's headers.
    webhook_timeout_seconds: u64 = 10, "webhookTimeoutSeconds" in 1, 60;
    /// The wait before the first retry of a failed webhook request; it doubles per failure
    /// up to `webhook_max_retry_seconds`.
    webhook_first_retry_seconds: u64 = 5, "webhookFirstRetrySeconds" in 1, 3_600;
    webhook_max_retry_seconds: u64 = 600, "webhookMaxRetrySeconds" in 1, 86_400;
    /// A webhook failing for this long without a success is paused until an operator
    /// resumes it.
    webhook_pause_after_seconds: u64 = 24 * 3600, "webhookPauseAfterSeconds" in 1, 30 * 86_400;
    /// An entity's current state is dropped this long after its last event (independent of
    /// the events' retention): 90 days by default, at most 10 years.
    state_retention_seconds: u64 = 90 * 86_400, "stateRetentionSeconds" in 3_600, 3_650 * 86_400;
}

impl Limits {
    /// The limits of a document: each within its range, and the few that bound each other
    /// in order. The error names the limit at fault.
    pub(super) fn parse(raw: &RawLimits) -> Result<Limits, String> {
        let limits = Limits::from_document(raw)?;
        let refuse = |why: &str| Err(why.to_string());
        if limits.max_event_bytes > limits.max_batch_bytes {
            return refuse("limits.maxEventBytes must not exceed limits.maxBatchBytes");
        }
        if limits.login_failures_per_client < limits.login_failures_before_lockout {
            return refuse("limits.loginFailuresPerClient must not be below limits.loginFailuresBeforeLockout");
        }
        if limits.webhook_max_retry_seconds < limits.webhook_first_retry_seconds {
            return refuse("limits.webhookMaxRetrySeconds must not be below limits.webhookFirstRetrySeconds");
        }
        Ok(limits)
    }
}
