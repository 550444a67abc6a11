//! `POST /oauth/v1/tokens`: the OAuth 2.0 client-credentials grant (RFC 6749 §4.4), as
//! docs/protocol.md (Tokens) describes it. Parsing and authentication are pure; the Worker adds the
//! login guard and the clock.

use std::collections::BTreeSet;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::config::secret_hash;
use crate::config::{Client, Scope, ServiceConfig};

/// An RFC 6749 §5.2 error, with the HTTP status it travels with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub status: u16,
    pub error: &'static str,
    pub description: String,
}

impl OAuthError {
    fn invalid_request(description: impl Into<String>) -> Self {
        OAuthError { status: 400, error: "invalid_request", description: description.into() }
    }

    /// The one answer to every failed login: it never says which part was wrong.
    pub fn invalid_client() -> Self {
        OAuthError { status: 401, error: "invalid_client", description: "client authentication failed".into() }
    }

    pub fn locked_out(retry_after: u64) -> Self {
        OAuthError {
            status: 429,
            error: "temporarily_unavailable",
            description: format!("too many failed logins for this client; retry after {retry_after} seconds"),
        }
    }

    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({ "error": self.error, "error_description": self.description })
    }
}

/// The parts of the HTTP request the endpoint reads.
#[derive(Debug, Default, Clone)]
pub struct TokenHttpRequest<'a> {
    pub content_type: Option<&'a str>,
    pub authorization: Option<&'a str>,
    pub app_key: Option<&'a str>,
    pub enterprise_id: Option<&'a str>,
    pub body: &'a str,
}

/// A well-formed client-credentials request, not yet authenticated.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenRequest {
    pub client_id: String,
    client_secret: String,
    pub app_key: String,
    pub enterprise_id: String,
    pub scope: Option<String>,
}

impl std::fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRequest")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("app_key", &self.app_key)
            .field("enterprise_id", &self.enterprise_id)
            .field("scope", &self.scope)
            .finish()
    }
}

fn basic_credentials(header: &str) -> Result<(String, String), OAuthError> {
    let (scheme, encoded) = header.trim().split_once(' ').unwrap_or((header, ""));
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::invalid_client());
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| OAuthError::invalid_client())?;
    let decoded = String::from_utf8(decoded).map_err(|_| OAuthError::invalid_client())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(OAuthError::invalid_client)?;
    // RFC 6749 §2.3.1: both parts are form-urlencoded before the base64 step.
    Ok((form_decode(id), form_decode(secret)))
}

/// The client id of a Basic `Authorization` header, if it is one (the secret is not kept).
pub fn basic_client_id(header: &str) -> Option<String> {
    basic_credentials(header).ok().map(|(id, _)| id)
}

fn form_decode(s: &str) -> String {
    form_urlencoded::parse(format!("v={s}").as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default()
}

/// Checks the request's shape; every failure here is specific, as nothing is secret yet.
pub fn parse(req: &TokenHttpRequest<'_>) -> Result<TokenRequest, OAuthError> {
    let media_type = req.content_type.unwrap_or("").split(';').next().unwrap_or("").trim();
    if !media_type.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(OAuthError::invalid_request("Content-Type must be application/x-www-form-urlencoded"));
    }
    let mut grant_type = None;
    let mut scope = None;
    let mut body_id = None;
    let mut body_secret = None;
    for (key, value) in form_urlencoded::parse(req.body.as_bytes()) {
        let slot = match key.as_ref() {
            "grant_type" => &mut grant_type,
            "scope" => &mut scope,
            "client_id" => &mut body_id,
            "client_secret" => &mut body_secret,
            _ => continue,
        };
        if slot.is_some() {
            return Err(OAuthError::invalid_request(format!("parameter {key} is repeated")));
        }
        *slot = Some(value.into_owned());
    }
    let (client_id, client_secret) = match (req.authorization, body_id, body_secret) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err(OAuthError::invalid_request(
                "client credentials must be sent either in the Authorization header or in the body, not both",
            ));
        }
        (Some(header), None, None) => basic_credentials(header)?,
        (None, Some(id), Some(secret)) => (id, secret),
        (None, Some(_), None) | (None, None, Some(_)) => {
            return Err(OAuthError::invalid_request("client_id and client_secret must be sent together"));
        }
        (None, None, None) => return Err(OAuthError::invalid_client()),
    };
    match grant_type.as_deref() {
        None => return Err(OAuthError::invalid_request("grant_type is required")),
        Some("client_credentials") => {}
        Some(_) => {
            return Err(OAuthError {
                status: 400,
                error: "unsupported_grant_type",
                description: "only grant_type=client_credentials is supported".into(),
            });
        }
    }
    let app_key = header_value(req.app_key, "x-app-key")?;
    let enterprise_id = header_value(req.enterprise_id, "enterpriseId")?;
    Ok(TokenRequest { client_id, client_secret, app_key, enterprise_id, scope })
}

fn header_value(value: Option<&str>, name: &str) -> Result<String, OAuthError> {
    match value.map(str::trim) {
        Some(v) if !v.is_empty() => Ok(v.to_string()),
        _ => Err(OAuthError::invalid_request(format!("the {name} header is required"))),
    }
}

/// Finds the client and checks secret, app key and enterprise. Every mismatch gives the
/// same answer, and an unknown client id costs the same hashing work as a wrong secret.
pub fn authenticate<'c>(config: &'c ServiceConfig, req: &TokenRequest) -> Result<&'c Client, OAuthError> {
    let Some(client) = config.client(&req.client_id) else {
        secret_hash::decoy_verify(&req.client_secret, decoy_iterations(config));
        return Err(OAuthError::invalid_client());
    };
    let secret_ok = client.secret_matches(&req.client_secret);
    let app_key_ok = crate::constant_time_eq(client.app_key.as_bytes(), req.app_key.as_bytes());
    let enterprise_ok = client.enterprise == req.enterprise_id;
    if secret_ok && app_key_ok && enterprise_ok {
        Ok(client)
    } else {
        Err(OAuthError::invalid_client())
    }
}

fn decoy_iterations(config: &ServiceConfig) -> u32 {
    config
        .clients()
        .find_map(|c| c.secrets.first())
        .map_or(secret_hash::MIN_ITERATIONS, secret_hash::SecretHash::iterations)
}

/// The scopes the token will carry: those asked for (all must be held), or all held.
pub fn select_scopes(client: &Client, requested: Option<&str>) -> Result<BTreeSet<Scope>, OAuthError> {
    let Some(requested) = requested.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(client.scopes.clone());
    };
    let mut scopes = BTreeSet::new();
    for name in requested.split(' ').filter(|s| !s.is_empty()) {
        match Scope::parse(name) {
            Some(scope) if client.scopes.contains(&scope) => {
                scopes.insert(scope);
            }
            _ => {
                return Err(OAuthError {
                    status: 400,
                    error: "invalid_scope",
                    description: format!("scope {name:?} is unknown or not granted to this client"),
                });
            }
        }
    }
    Ok(scopes)
}

/// The `200` body of a token request.
pub fn success_body(access_token: &str, scopes: &BTreeSet<Scope>) -> serde_json::Value {
    serde_json::json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": crate::auth::token::TOKEN_LIFETIME_SECONDS,
        "scope": scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" "),
    })
}
