//! Access tokens: `EdDSA` (Ed25519) JWTs signed by this service, and the one verification
//! function every endpoint uses. Time is always passed in (`now`, Unix seconds) so the
//! rules are tested without a clock.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use ed25519_compact::{KeyPair, PublicKey, SecretKey, Seed};
use jwt_compact::alg::Ed25519;
use jwt_compact::{AlgorithmExt, Claims, Header, UntrustedToken};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{Client, Grant, Scope};

/// Access tokens live 60 minutes.
pub const TOKEN_LIFETIME_SECONDS: u64 = 3600;
/// Clock skew tolerated between this service's isolates and the client (documented in the
/// README). Applies to `exp` and to an `iat` in the future.
pub const CLOCK_LEEWAY_SECONDS: u64 = 30;
/// The only algorithm this service signs or accepts.
pub const ALGORITHM: &str = "EdDSA";

/// A grant as it travels inside a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenGrant {
    pub chain: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<Vec<String>>,
}

/// Everything a token says about its holder, after verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub jti: String,
    pub scope: String,
    pub enterprise_id: String,
    pub app_key: String,
    pub chains: Vec<TokenGrant>,
}

impl AccessClaims {
    pub fn for_client(
        client: &Client,
        scopes: &BTreeSet<Scope>,
        issuer: &str,
        audience: &str,
        jti: String,
    ) -> AccessClaims {
        AccessClaims {
            iss: issuer.to_string(),
            aud: audience.to_string(),
            sub: client.id.clone(),
            jti,
            scope: scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" "),
            enterprise_id: client.enterprise.clone(),
            app_key: client.app_key.clone(),
            chains: client
                .grants
                .iter()
                .map(|g| TokenGrant {
                    chain: g.chain.clone(),
                    properties: g.properties.as_ref().map(|p| p.iter().cloned().collect()),
                })
                .collect(),
        }
    }

    pub fn has_scope(&self, scope: Scope) -> bool {
        self.scope.split(' ').any(|s| s == scope.as_str())
    }

    /// The grant for a chain, if the token holds one.
    pub fn grant(&self, chain: &str) -> Option<Grant> {
        self.chains.iter().find(|g| g.chain == chain).map(|g| Grant {
            chain: g.chain.clone(),
            properties: g.properties.as_ref().map(|p| p.iter().cloned().collect()),
        })
    }
}

/// A token that passed every check, with its validity window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    pub claims: AccessClaims,
    pub issued_at: u64,
    pub expires_at: u64,
}

impl VerifiedToken {
    /// The lifetime checks, run on every use of a token (also one verified before).
    fn check_time(&self, now: u64) -> Result<(), TokenError> {
        if now >= self.expires_at + CLOCK_LEEWAY_SECONDS {
            return Err(TokenError::Expired);
        }
        if self.issued_at > now + CLOCK_LEEWAY_SECONDS {
            return Err(TokenError::IssuedInFuture);
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    Malformed,
    WrongAlgorithm(String),
    UnknownKey,
    BadSignature,
    MissingClaim(&'static str),
    InvalidClaims,
    WrongIssuer,
    WrongAudience,
    Expired,
    IssuedInFuture,
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::Malformed => write!(f, "token is not a well-formed JWT"),
            TokenError::WrongAlgorithm(alg) => write!(f, "token algorithm {alg:?} is not accepted"),
            TokenError::UnknownKey => write!(f, "token is signed by an unknown key"),
            TokenError::BadSignature => write!(f, "token signature is invalid"),
            TokenError::MissingClaim(c) => write!(f, "token lacks the {c} claim"),
            TokenError::InvalidClaims => write!(f, "token claims are invalid"),
            TokenError::WrongIssuer => write!(f, "token issuer is not accepted"),
            TokenError::WrongAudience => write!(f, "token audience is not accepted"),
            TokenError::Expired => write!(f, "token expired"),
            TokenError::IssuedInFuture => write!(f, "token is issued in the future"),
        }
    }
}

struct SigningKeyEntry {
    kid: String,
    secret: SecretKey,
    public: PublicKey,
}

/// The service's signing keys. The first signs; every one verifies, so a key can be
/// rotated out while tokens it signed are still alive.
pub struct KeySet {
    keys: Vec<SigningKeyEntry>,
    /// Tokens these keys already verified, by SHA-256 of the token text. A signature check
    /// costs about a millisecond of wasm CPU, and a publisher or vendor sends the same token
    /// for up to an hour. Keyed by digest, not by the token: a lookup compares digests, so
    /// its timing says nothing about the text of a cached token. Owned by the key set, so
    /// an entry can never outlive the keys that verified it.
    verified: RefCell<HashMap<[u8; 32], VerifiedToken>>,
}

/// Verified tokens kept per isolate; when full, expired entries go first, then all.
pub const VERIFIED_TOKENS_KEPT: usize = 4096;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    kid: String,
    /// 32-byte Ed25519 seed, base64url without padding.
    seed: String,
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kids: Vec<&str> = self.keys.iter().map(|k| k.kid.as_str()).collect();
        write!(f, "KeySet{kids:?}")
    }
}

impl KeySet {
    /// Parses the `SIGNING_KEYS` secret: `[{"kid": "...", "seed": "<base64url 32 bytes>"}]`.
    pub fn parse(json: &str) -> Result<KeySet, String> {
        let raw: Vec<RawKey> =
            serde_json::from_str(json).map_err(|e| format!("SIGNING_KEYS is not a JSON list of {{kid, seed}}: {e}"))?;
        if raw.is_empty() {
            return Err("SIGNING_KEYS holds no key".into());
        }
        let mut keys: Vec<SigningKeyEntry> = Vec::new();
        for (i, k) in raw.into_iter().enumerate() {
            if k.kid.is_empty() {
                return Err(format!("SIGNING_KEYS[{i}] has an empty kid"));
            }
            if keys.iter().any(|e| e.kid == k.kid) {
                return Err(format!("SIGNING_KEYS has kid {:?} twice", k.kid));
            }
            let seed = URL_SAFE_NO_PAD
                .decode(k.seed.trim_end_matches('='))
                .map_err(|_| format!("SIGNING_KEYS[{}] seed is not base64url", k.kid))?;
            let seed: [u8; 32] =
                seed.try_into().map_err(|_| format!("SIGNING_KEYS[{}] seed is not 32 bytes", k.kid))?;
            let pair = KeyPair::from_seed(Seed::new(seed));
            keys.push(SigningKeyEntry { kid: k.kid, secret: pair.sk, public: pair.pk });
        }
        Ok(KeySet { keys, verified: RefCell::default() })
    }

    pub fn signing_kid(&self) -> &str {
        &self.keys[0].kid
    }

    /// Signs a token valid from `now` for [`TOKEN_LIFETIME_SECONDS`].
    pub fn issue(&self, claims: &AccessClaims, now: u64) -> Result<String, String> {
        let key = &self.keys[0];
        let header = Header::empty().with_key_id(key.kid.clone()).with_token_type("JWT");
        let mut jwt_claims = Claims::new(claims.clone());
        jwt_claims.issued_at = Some(timestamp(now)?);
        jwt_claims.expiration = Some(timestamp(now + TOKEN_LIFETIME_SECONDS)?);
        Ed25519.token(&header, &jwt_claims, &key.secret).map_err(|e| format!("token signing failed: {e}"))
    }

    /// The one verification function of the service: signature by a known key with the
    /// only accepted algorithm, then issuer, audience, lifetime and claim shape. A token
    /// verified before skips the signature check but never the issuer, audience and
    /// lifetime checks.
    pub fn verify(&self, token: &str, issuer: &str, audience: &str, now: u64) -> Result<VerifiedToken, TokenError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let cached = self.verified.borrow().get(&digest).cloned();
        if let Some(known) = cached {
            check_audience(&known.claims, issuer, audience)?;
            known.check_time(now)?;
            return Ok(known);
        }
        let verified = self.verify_signed(token, issuer, audience, now)?;
        let mut kept = self.verified.borrow_mut();
        if kept.len() >= VERIFIED_TOKENS_KEPT {
            kept.retain(|_, t| t.check_time(now).is_ok());
            if kept.len() >= VERIFIED_TOKENS_KEPT {
                kept.clear();
            }
        }
        kept.insert(digest, verified.clone());
        Ok(verified)
    }

    /// How many verified tokens are kept.
    pub fn verified_tokens_kept(&self) -> usize {
        self.verified.borrow().len()
    }

    fn verify_signed(&self, token: &str, issuer: &str, audience: &str, now: u64) -> Result<VerifiedToken, TokenError> {
        let untrusted = UntrustedToken::new(token).map_err(|_| TokenError::Malformed)?;
        // Checked before any key is touched: refuses `none`, HS256 made with the public
        // key as secret, and every other algorithm confusion.
        if untrusted.algorithm() != ALGORITHM {
            return Err(TokenError::WrongAlgorithm(untrusted.algorithm().chars().take(16).collect()));
        }
        let kid = untrusted.header().key_id.as_deref().ok_or(TokenError::UnknownKey)?;
        let key = self.keys.iter().find(|k| k.kid == kid).ok_or(TokenError::UnknownKey)?;
        let checked =
            Ed25519.validator::<serde_json::Value>(&key.public).validate(&untrusted).map_err(|e| match e {
                jwt_compact::ValidationError::InvalidSignature
                | jwt_compact::ValidationError::MalformedSignature(_) => TokenError::BadSignature,
                _ => TokenError::Malformed,
            })?;
        let jwt_claims = checked.claims();
        let expires_at = jwt_claims.expiration.ok_or(TokenError::MissingClaim("exp"))?;
        let issued_at = jwt_claims.issued_at.ok_or(TokenError::MissingClaim("iat"))?;
        let claims: AccessClaims = serde_json::from_value(jwt_claims.custom.clone()).map_err(|e| {
            for name in ["iss", "aud", "sub", "jti", "scope", "enterpriseId", "appKey", "chains"] {
                if e.to_string().contains(&format!("`{name}`")) {
                    return TokenError::MissingClaim(name);
                }
            }
            TokenError::InvalidClaims
        })?;
        check_audience(&claims, issuer, audience)?;
        let verified = VerifiedToken { claims, issued_at: seconds(issued_at), expires_at: seconds(expires_at) };
        verified.check_time(now)?;
        Ok(verified)
    }

    /// `GET /.well-known/jwks.json`: every verifying key, the signing one first.
    pub fn jwks(&self) -> serde_json::Value {
        let keys: Vec<serde_json::Value> = self
            .keys
            .iter()
            .map(|k| {
                serde_json::json!({
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "x": URL_SAFE_NO_PAD.encode(k.public.as_ref()),
                    "kid": k.kid,
                    "alg": ALGORITHM,
                    "use": "sig",
                })
            })
            .collect();
        serde_json::json!({ "keys": keys })
    }
}

fn check_audience(claims: &AccessClaims, issuer: &str, audience: &str) -> Result<(), TokenError> {
    if claims.iss != issuer {
        return Err(TokenError::WrongIssuer);
    }
    if claims.aud != audience {
        return Err(TokenError::WrongAudience);
    }
    Ok(())
}

fn timestamp(secs: u64) -> Result<DateTime<Utc>, String> {
    i64::try_from(secs).ok().and_then(|s| DateTime::from_timestamp(s, 0)).ok_or_else(|| "time out of range".to_string())
}

fn seconds(t: DateTime<Utc>) -> u64 {
    u64::try_from(t.timestamp()).unwrap_or(0)
}

/// 128 random bits as hex: token ids and generated request ids.
pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    // getrandom only fails where no entropy source exists at all; an empty id then is
    // refused by every caller that needs uniqueness (token ids, event ids).
    if getrandom::getrandom(&mut bytes).is_err() {
        return String::new();
    }
    crate::text::hex(&bytes)
}
