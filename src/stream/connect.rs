//! Admission of a vendor connection: the `key` URL parameter before the upgrade, then the
//! credentials of `connection_init`.

use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use base64::Engine;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::auth::token::{KeySet, TokenError};
use crate::config::{Client, Scope, ServiceConfig};
use crate::stream::protocol::{close, init_credentials, Close, InitCheck};

/// Finds the client of the URL's `key`: the app key as base64, or the lowercase hex
/// SHA-256 of the app key (as Oracle OHIP streaming clients send it). The error is the
/// short explanation of the HTTP 400.
pub fn resolve_url_key<'c>(key: Option<&str>, config: &'c ServiceConfig) -> Result<&'c Client, &'static str> {
    let key = key
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or("missing key parameter: pass ?key=<base64 of the app key>")?;
    if key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit()) {
        let wanted = key.to_ascii_lowercase();
        return config
            .clients()
            .find(|c| hex_sha256(&c.app_key) == wanted)
            .ok_or("unknown key: no application has this key");
    }
    let decoded = STANDARD
        .decode(key)
        .or_else(|_| URL_SAFE.decode(key))
        .map_err(|_| "malformed key: expected the app key as base64, or its SHA-256 as 64 hex digits")?;
    let app_key = String::from_utf8(decoded).map_err(|_| "malformed key: the decoded key is not text")?;
    config.client_by_app_key(&app_key).ok_or("unknown key: no application has this key")
}

pub fn hex_sha256(s: &str) -> String {
    crate::text::hex(&Sha256::digest(s.as_bytes()))
}

/// Checks `connection_init.payload`: a valid, unexpired token (else 4401) that holds
/// `urn:pms:events` and names the same app key as the payload and the URL (else 4403).
pub fn check_init(
    payload: &Map<String, Value>,
    url_client: &Client,
    keys: &KeySet,
    config: &ServiceConfig,
    now: u64,
) -> InitCheck {
    let (authorization, app_key) = init_credentials(payload);
    let token = authorization.and_then(crate::auth::access::bearer).ok_or_else(|| {
        Close::new(close::UNAUTHORIZED, "Unauthorized: connection_init needs \"Authorization\": \"Bearer <token>\"")
    })?;
    let verified = keys.verify(token, &config.issuer, &config.audience, now).map_err(|e| match e {
        TokenError::Expired => Close::new(close::UNAUTHORIZED, "token expired"),
        other => Close::new(close::UNAUTHORIZED, format!("Unauthorized: {other}")),
    })?;
    let claims = &verified.claims;
    if !claims.has_scope(Scope::Events) {
        return Err(Close::new(close::FORBIDDEN, "Forbidden: the token lacks the urn:pms:events scope"));
    }
    let Some(app_key) = app_key else {
        return Err(Close::new(close::FORBIDDEN, "Forbidden: connection_init needs \"x-app-key\""));
    };
    if !crate::constant_time_eq(app_key.as_bytes(), claims.app_key.as_bytes())
        || !crate::constant_time_eq(url_client.app_key.as_bytes(), claims.app_key.as_bytes())
    {
        return Err(Close::new(close::FORBIDDEN, "Forbidden: the app key does not match the token"));
    }
    if config.client(&claims.sub).is_none_or(|c| c.app_key != claims.app_key) {
        return Err(Close::new(close::UNAUTHORIZED, "Unauthorized: the token's client is no longer configured"));
    }
    Ok(verified)
}
