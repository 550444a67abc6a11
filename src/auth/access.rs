//! Authorization of a verified token for one chain, on every request. The token's grants
//! are checked against the configuration in force, so removing a client or a grant takes
//! effect at once, not when its tokens expire.

use crate::auth::token::AccessClaims;
use crate::config::{Chain, Grant, Scope, ServiceConfig};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessError {
    /// 401: no usable credentials.
    Unauthorized(String),
    /// 403: valid credentials that do not allow this.
    Forbidden(String),
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer_token(header: Option<&str>) -> Result<&str, AccessError> {
    let header =
        header.ok_or_else(|| AccessError::Unauthorized("an Authorization: Bearer token is required".into()))?;
    bearer(header)
        .ok_or_else(|| AccessError::Unauthorized("the Authorization header must be \"Bearer <token>\"".into()))
}

/// The token of a `Bearer <token>` credential (a header's, or `connection_init`'s
/// `Authorization`): the scheme in any case, the token not empty.
pub fn bearer(credential: &str) -> Option<&str> {
    let (scheme, token) = credential.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The chain and the grant (property subset) the token holder may use with `scope`.
pub fn chain_access<'c>(
    config: &'c ServiceConfig,
    claims: &AccessClaims,
    scope: Scope,
    chain_code: &str,
) -> Result<(&'c Chain, Grant), AccessError> {
    if !claims.has_scope(scope) {
        return Err(AccessError::Forbidden(format!("the token lacks the {} scope", scope.as_str())));
    }
    let client = config
        .client(&claims.sub)
        .filter(|c| c.app_key == claims.app_key && c.enterprise == claims.enterprise_id && c.scopes.contains(&scope))
        .ok_or_else(|| AccessError::Unauthorized("the token's client is no longer configured".into()))?;
    let forbidden = || AccessError::Forbidden(format!("chain {chain_code:?} is not granted to this client"));
    let chain = config.chain(chain_code).filter(|c| c.enterprise == client.enterprise).ok_or_else(forbidden)?;
    let configured = client.grants.iter().find(|g| g.chain == chain.code).ok_or_else(forbidden)?;
    let in_token = claims.grant(&chain.code).ok_or_else(forbidden)?;
    // The narrower of the two, should they differ (a grant narrowed after the token was issued).
    let properties = match (&configured.properties, &in_token.properties) {
        (None, None) => None,
        (Some(p), None) | (None, Some(p)) => Some(p.clone()),
        (Some(a), Some(b)) => Some(a.intersection(b).cloned().collect()),
    };
    Ok((chain, Grant { chain: chain.code.clone(), properties }))
}

/// Every chain the token holder may use with `scope`, in the token's order: the chains it
/// names that the configuration in force still grants (a chain withdrawn since the token
/// was issued is left out, as [`chain_access`] would refuse it).
pub fn granted_chains<'c>(
    config: &'c ServiceConfig,
    claims: &AccessClaims,
    scope: Scope,
) -> Result<Vec<(&'c Chain, Grant)>, AccessError> {
    let mut chains = Vec::new();
    for granted in &claims.chains {
        match chain_access(config, claims, scope, &granted.chain) {
            Ok(access) => chains.push(access),
            Err(AccessError::Forbidden(_)) if claims.has_scope(scope) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(chains)
}
