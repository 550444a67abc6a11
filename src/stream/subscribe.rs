//! From a validated `newEvent` subscription to what the chain object serves: authorization
//! from the token's claims (granted chain, granted properties), filters and start point.

use std::collections::BTreeSet;

use crate::auth::access::{chain_access, AccessError};
use crate::auth::token::AccessClaims;
use crate::config::{Chain, Grant, Scope, ServiceConfig};
use crate::graphql::{GraphQLError, PreparedSubscription, ProjectionPlan};
use crate::log::EventFilter;
use crate::stream::spec::{BatchEncoding, Projector, Start, SubscriptionSpec, WindowCount};

use crate::graphql::codes::{BAD_USER_INPUT, FORBIDDEN, QUERY_TOO_COMPLEX};

/// The chain to attach to, and the spec its object serves.
pub fn plan_subscription(
    config: &ServiceConfig,
    claims: &AccessClaims,
    operation_id: &str,
    connection_id: &str,
    prepared: PreparedSubscription,
) -> Result<(String, SubscriptionSpec<ProjectionPlan>), GraphQLError> {
    let (copies, path) = prepared.plan.max_field_copies();
    if copies > u64::from(config.limits.max_field_copies) {
        return Err(GraphQLError::coded(
            format!(
                "the selection outputs `{path}` {copies} times per event (aliases); at most {} copies of a field are \
                    allowed",
                config.limits.max_field_copies
            ),
            QUERY_TOO_COMPLEX,
        )
        .at(prepared.location));
    }
    let input = prepared.input;
    let (chain, grant) = chain_access(config, claims, Scope::Events, &input.chain_code).map_err(|e| match e {
        AccessError::Unauthorized(m) | AccessError::Forbidden(m) => GraphQLError::coded(m, FORBIDDEN),
    })?;
    let filter = event_filter(chain, &grant, input.hotel_code.as_deref(), input.event_names, input.module_names)?;
    let start = match (input.offset_type.as_deref(), input.offset.as_deref()) {
        (Some(t), _) if t.eq_ignore_ascii_case("highest") => Start::Highest,
        (Some(t), _) => {
            return Err(GraphQLError::coded(
                format!("offsetType {t:?} is not supported (use \"highest\")"),
                BAD_USER_INPUT,
            ));
        }
        (None, Some(o)) => Start::At(parse_offset(o)?),
        (None, None) => input.from_time.map_or(Start::Resume, Start::Time),
    };
    let spec = SubscriptionSpec {
        id: operation_id.to_string(),
        app_key: claims.app_key.clone(),
        client_id: claims.sub.clone(),
        connection_id: connection_id.to_string(),
        response_key: prepared.response_key,
        delta: input.delta,
        filter,
        start,
        plan: prepared.plan,
        window: WindowCount::Units,
        batches: BatchEncoding::Binary,
    };
    Ok((chain.code.clone(), spec))
}

/// The events of `chain` a reader receives: the grant's properties, narrowed by a
/// comma-separated `hotelCode` (each must be granted), and the name filters (empty lists are
/// refused: omitting one means every name). Subscriptions and the pull API share it.
pub fn event_filter(
    chain: &Chain,
    grant: &Grant,
    hotel_code: Option<&str>,
    event_names: Option<Vec<String>>,
    module_names: Option<Vec<String>>,
) -> Result<EventFilter, GraphQLError> {
    let properties = match hotel_code.map(str::trim).filter(|s| !s.is_empty()) {
        None => grant.properties.clone(),
        Some(list) => {
            let mut wanted = BTreeSet::new();
            for code in list.split(',').map(str::trim).filter(|c| !c.is_empty()) {
                let granted =
                    chain.properties.contains(code) && grant.properties.as_ref().is_none_or(|p| p.contains(code));
                if !granted {
                    return Err(GraphQLError::coded(
                        format!("hotelCode {code:?} is not granted to this client on chain {:?}", chain.code),
                        FORBIDDEN,
                    ));
                }
                wanted.insert(code.to_string());
            }
            Some(wanted)
        }
    };
    let names = |list: Option<Vec<String>>, field: &str| -> Result<Option<BTreeSet<String>>, GraphQLError> {
        match list {
            None => Ok(None),
            Some(l) if l.is_empty() => Err(GraphQLError::coded(
                format!("{field} must not be empty (omit it to receive every {field})"),
                BAD_USER_INPUT,
            )),
            Some(l) => Ok(Some(l.into_iter().collect())),
        }
    };
    Ok(EventFilter {
        properties,
        event_names: names(event_names, "eventNames")?,
        module_names: names(module_names, "moduleNames")?,
    })
}

/// Offsets travel as decimal strings.
pub fn parse_offset(s: &str) -> Result<u64, GraphQLError> {
    crate::log::parse_offset(s).map_err(|why| GraphQLError::coded(why, BAD_USER_INPUT))
}

impl Projector for ProjectionPlan {
    fn project_to_string(&self, event: &serde_json::Value, delta: bool, out: &mut String) {
        ProjectionPlan::project_to_string(self, event, delta, out);
    }
}

/// Whether a subscription's client still holds what it streams, against the configuration
/// a chain object runs with: the client, its app key and scope, the chain's grant, and
/// every property its filter delivers. Checked on every attach: a deploy (which is how a
/// configuration changes) restarts every object, so every subscription reattaches and a
/// revoked grant ends it.
pub fn still_granted<P>(config: &ServiceConfig, chain: Option<&str>, spec: &SubscriptionSpec<P>) -> Result<(), String> {
    let client = config
        .client(&spec.client_id)
        .filter(|c| c.app_key == spec.app_key && c.scopes.contains(&Scope::Events))
        .ok_or("the client is no longer configured for streaming")?;
    // A gateway of a build before the chain header names no chain: then only the client
    // is checked (its subscribe was authorized by that gateway).
    let Some(chain) = chain else {
        return Ok(());
    };
    let grant =
        client.grants.iter().find(|g| g.chain == chain).ok_or("the chain is no longer granted to this client")?;
    match (&grant.properties, &spec.filter.properties) {
        (None, _) => Ok(()),
        (Some(granted), Some(wanted)) if wanted.is_subset(granted) => Ok(()),
        _ => Err("a property of this subscription is no longer granted to this client".into()),
    }
}
