//! Claim building and every rejection of the one verification function.

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::{demo_config, keys, SEED_A, SEED_B};
use pms_events::auth::token::{AccessClaims, KeySet, TokenError, CLOCK_LEEWAY_SECONDS, VERIFIED_TOKENS_KEPT};
use pms_events::config::Scope;

const ISS: &str = "http://127.0.0.1:8787";
const AUD: &str = "pms-events";
const NOW: u64 = 1_800_000_000;

fn claims(client: &str) -> AccessClaims {
    let config = demo_config();
    let c = config.client(client).unwrap();
    AccessClaims::for_client(c, &c.scopes, ISS, AUD, "jti-1".into())
}

fn b64(v: &serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

fn forge(header: serde_json::Value, payload: serde_json::Value, sig: &[u8]) -> String {
    format!("{}.{}.{}", b64(&header), b64(&payload), URL_SAFE_NO_PAD.encode(sig))
}

fn payload_of(token: &str) -> serde_json::Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[test]
fn claims_carry_client_enterprise_app_key_scope_and_grants() {
    let c = claims("client-app-002");
    assert_eq!(c.sub, "client-app-002");
    assert_eq!(c.enterprise_id, "BROWNS");
    assert_eq!(c.app_key, "APPKEY002");
    assert_eq!(c.scope, "urn:pms:events");
    assert!(c.has_scope(Scope::Events) && !c.has_scope(Scope::Publish));
    let g = c.grant("TTE").unwrap();
    assert_eq!(g.properties.unwrap().into_iter().collect::<Vec<_>>(), vec!["TTE01"]);
    assert!(c.grant("HTBTTE").is_none());
}

#[test]
fn issued_token_verifies_and_has_header_and_times() {
    let ks = keys(&[("k1", SEED_A)]);
    let token = ks.issue(&claims("client-app-001"), NOW).unwrap();
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap()).unwrap()).unwrap();
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["kid"], "k1");
    let p = payload_of(&token);
    assert_eq!(p["exp"].as_u64().unwrap(), NOW + 3600);
    assert_eq!(p["iat"].as_u64().unwrap(), NOW);
    assert_eq!(p["iss"], ISS);
    assert_eq!(p["aud"], AUD);
    assert_eq!(p["jti"], "jti-1");
    assert_eq!(p["enterpriseId"], "BROWNS");
    assert_eq!(p["appKey"], "APPKEY001");
    assert_eq!(p["chains"][0]["chain"], "TTE");
    assert_eq!(p["chains"][1]["chain"], "HTBTTE");
    let v = ks.verify(&token, ISS, AUD, NOW + 10).unwrap();
    assert_eq!(v.claims, claims("client-app-001"));
    assert_eq!(v.expires_at, NOW + 3600);
}

#[test]
fn expired_token_is_refused_after_leeway() {
    let ks = keys(&[("k1", SEED_A)]);
    let token = ks.issue(&claims("client-app-001"), NOW).unwrap();
    assert!(ks.verify(&token, ISS, AUD, NOW + 3600 + CLOCK_LEEWAY_SECONDS - 1).is_ok());
    assert_eq!(ks.verify(&token, ISS, AUD, NOW + 3600 + CLOCK_LEEWAY_SECONDS), Err(TokenError::Expired));
}

#[test]
fn token_from_the_future_is_refused() {
    let ks = keys(&[("k1", SEED_A)]);
    let token = ks.issue(&claims("client-app-001"), NOW + 1000).unwrap();
    assert_eq!(ks.verify(&token, ISS, AUD, NOW), Err(TokenError::IssuedInFuture));
}

#[test]
fn wrong_issuer_and_audience_are_refused() {
    let ks = keys(&[("k1", SEED_A)]);
    let token = ks.issue(&claims("client-app-001"), NOW).unwrap();
    assert_eq!(ks.verify(&token, "https://evil", AUD, NOW), Err(TokenError::WrongIssuer));
    assert_eq!(ks.verify(&token, ISS, "other", NOW), Err(TokenError::WrongAudience));
}

#[test]
fn tampered_payload_fails_the_signature() {
    let ks = keys(&[("k1", SEED_A)]);
    let token = ks.issue(&claims("client-app-002"), NOW).unwrap();
    let mut p = payload_of(&token);
    p["chains"] = serde_json::json!([{"chain": "TTE"}]);
    let parts: Vec<&str> = token.split('.').collect();
    let forged = format!("{}.{}.{}", parts[0], b64(&p), parts[2]);
    assert_eq!(ks.verify(&forged, ISS, AUD, NOW), Err(TokenError::BadSignature));
}

#[test]
fn alg_none_is_refused() {
    let ks = keys(&[("k1", SEED_A)]);
    let token = ks.issue(&claims("client-app-001"), NOW).unwrap();
    let forged = forge(serde_json::json!({"alg": "none", "kid": "k1"}), payload_of(&token), b"");
    assert!(matches!(
        ks.verify(&forged, ISS, AUD, NOW),
        Err(TokenError::WrongAlgorithm(_)) | Err(TokenError::Malformed)
    ));
}

#[test]
fn hs256_made_with_the_public_key_is_refused() {
    use hmac::{Hmac, Mac};
    let ks = keys(&[("k1", SEED_A)]);
    let token = ks.issue(&claims("client-app-001"), NOW).unwrap();
    let jwks = ks.jwks();
    let public = URL_SAFE_NO_PAD.decode(jwks["keys"][0]["x"].as_str().unwrap()).unwrap();
    let header = serde_json::json!({"alg": "HS256", "kid": "k1", "typ": "JWT"});
    let signing_input = format!("{}.{}", b64(&header), b64(&payload_of(&token)));
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&public).unwrap();
    mac.update(signing_input.as_bytes());
    let forged = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()));
    assert_eq!(ks.verify(&forged, ISS, AUD, NOW), Err(TokenError::WrongAlgorithm("HS256".into())));
}

#[test]
fn token_signed_by_an_unknown_key_is_refused() {
    let ours = keys(&[("k1", SEED_A)]);
    let theirs = keys(&[("k1", SEED_B)]);
    let token = theirs.issue(&claims("client-app-001"), NOW).unwrap();
    assert_eq!(ours.verify(&token, ISS, AUD, NOW), Err(TokenError::BadSignature));
    let other_kid = keys(&[("k9", SEED_B)]).issue(&claims("client-app-001"), NOW).unwrap();
    assert_eq!(ours.verify(&other_kid, ISS, AUD, NOW), Err(TokenError::UnknownKey));
}

#[test]
fn token_without_kid_is_refused() {
    let ks = keys(&[("k1", SEED_A)]);
    let token = ks.issue(&claims("client-app-001"), NOW).unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let forged = format!("{}.{}.{}", b64(&serde_json::json!({"alg": "EdDSA"})), parts[1], parts[2]);
    assert_eq!(ks.verify(&forged, ISS, AUD, NOW), Err(TokenError::UnknownKey));
}

#[test]
fn missing_claims_are_refused_by_name() {
    // A token we signed ourselves but without exp, and one without appKey.
    let ks = keys(&[("k1", SEED_A)]);
    let token = ks.issue(&claims("client-app-001"), NOW).unwrap();
    for (claim, expected) in [("exp", TokenError::MissingClaim("exp")), ("appKey", TokenError::MissingClaim("appKey"))]
    {
        let mut p = payload_of(&token);
        p.as_object_mut().unwrap().remove(claim);
        let forged = sign_raw(SEED_A, "k1", &p);
        assert_eq!(ks.verify(&forged, ISS, AUD, NOW), Err(expected), "{claim}");
    }
}

fn sign_raw(seed: &str, kid: &str, payload: &serde_json::Value) -> String {
    let seed: [u8; 32] = URL_SAFE_NO_PAD.decode(seed).unwrap().try_into().unwrap();
    let pair = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new(seed));
    let input = format!("{}.{}", b64(&serde_json::json!({"alg": "EdDSA", "kid": kid})), b64(payload));
    let sig = pair.sk.sign(input.as_bytes(), None);
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
}

#[test]
fn garbage_is_malformed() {
    let ks = keys(&[("k1", SEED_A)]);
    assert_eq!(ks.verify("not-a-jwt", ISS, AUD, NOW), Err(TokenError::Malformed));
    assert_eq!(ks.verify("", ISS, AUD, NOW), Err(TokenError::Malformed));
}

#[test]
fn rotation_first_key_signs_all_keys_verify() {
    let old = keys(&[("old", SEED_A)]);
    let rotated = keys(&[("new", SEED_B), ("old", SEED_A)]);
    let old_token = old.issue(&claims("client-app-001"), NOW).unwrap();
    assert!(rotated.verify(&old_token, ISS, AUD, NOW).is_ok());
    let new_token = rotated.issue(&claims("client-app-001"), NOW).unwrap();
    assert!(new_token.starts_with(&b64(&serde_json::json!({"alg":"EdDSA","kid":"new","typ":"JWT"}))[..10]));
    assert_eq!(rotated.signing_kid(), "new");
    let jwks = rotated.jwks();
    let kids: Vec<&str> = jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert_eq!(kids, vec!["new", "old"]);
    assert_eq!(jwks["keys"][0]["kty"], "OKP");
    assert_eq!(jwks["keys"][0]["crv"], "Ed25519");
}

#[test]
fn signing_keys_secret_is_validated() {
    assert!(KeySet::parse("[]").unwrap_err().contains("no key"));
    assert!(KeySet::parse("[{\"kid\":\"a\",\"seed\":\"AAAA\"}]").unwrap_err().contains("32 bytes"));
    let dup = format!("[{{\"kid\":\"a\",\"seed\":\"{SEED_A}\"}},{{\"kid\":\"a\",\"seed\":\"{SEED_B}\"}}]");
    assert!(KeySet::parse(&dup).unwrap_err().contains("twice"));
    assert!(!format!("{:?}", keys(&[("k1", SEED_A)])).contains(SEED_A));
}

#[test]
fn a_verified_token_is_kept_but_still_checked_for_issuer_audience_and_lifetime() {
    let ks = keys(&[("k1", SEED_A)]);
    let token = ks.issue(&claims("client-app-001"), NOW).unwrap();
    assert_eq!(ks.verified_tokens_kept(), 0);
    let first = ks.verify(&token, ISS, AUD, NOW).unwrap();
    assert_eq!(ks.verified_tokens_kept(), 1);
    assert_eq!(ks.verify(&token, ISS, AUD, NOW + 60).unwrap(), first, "served from the cache");
    assert_eq!(ks.verified_tokens_kept(), 1);
    assert_eq!(ks.verify(&token, "https://evil", AUD, NOW), Err(TokenError::WrongIssuer));
    assert_eq!(ks.verify(&token, ISS, "other", NOW), Err(TokenError::WrongAudience));
    assert_eq!(ks.verify(&token, ISS, AUD, NOW + 3600 + CLOCK_LEEWAY_SECONDS), Err(TokenError::Expired));
    assert_eq!(ks.verify(&token, ISS, AUD, NOW - CLOCK_LEEWAY_SECONDS - 1), Err(TokenError::IssuedInFuture));
}

#[test]
fn a_refused_token_is_never_kept() {
    let ks = keys(&[("k1", SEED_A)]);
    let token = ks.issue(&claims("client-app-001"), NOW).unwrap();
    let mut forged = token.clone();
    forged.pop();
    forged.push(if token.ends_with('A') { 'B' } else { 'A' });
    assert!(ks.verify(&forged, ISS, AUD, NOW).is_err());
    assert!(ks.verify(&token, "https://evil", AUD, NOW).is_err());
    assert_eq!(ks.verified_tokens_kept(), 0);
    // Another key set (a rotated deployment) keeps its own: nothing carries over.
    ks.verify(&token, ISS, AUD, NOW).unwrap();
    let other = keys(&[("k2", SEED_B)]);
    assert_eq!(other.verify(&token, ISS, AUD, NOW), Err(TokenError::UnknownKey));
}

#[test]
fn the_kept_tokens_are_bounded() {
    let ks = keys(&[("k1", SEED_A)]);
    for i in 0..VERIFIED_TOKENS_KEPT + 10 {
        let mut c = claims("client-app-001");
        c.jti = format!("jti-{i}");
        // The first half expire early, so they go first when the cache is full.
        let issued = if i < VERIFIED_TOKENS_KEPT / 2 { NOW - 7200 } else { NOW };
        let token = ks.issue(&c, issued).unwrap();
        ks.verify(&token, ISS, AUD, issued + 1).unwrap();
        assert!(ks.verified_tokens_kept() <= VERIFIED_TOKENS_KEPT);
    }
    assert!(ks.verified_tokens_kept() > VERIFIED_TOKENS_KEPT / 2 - 100, "only the expired ones were dropped");
}

#[test]
fn granted_chains_lists_the_token_chains_the_configuration_still_grants() {
    use pms_events::auth::access::{granted_chains, AccessError};
    let config = demo_config();
    let ops = claims("ops-admin");
    let codes = |list: Vec<(&pms_events::config::Chain, pms_events::config::Grant)>| {
        list.into_iter().map(|(c, _)| c.code.clone()).collect::<Vec<_>>()
    };
    assert_eq!(codes(granted_chains(&config, &ops, Scope::Admin).unwrap()), ["TTE", "HTBTTE"]);
    // A chain withdrawn from the configuration after the token was issued is left out.
    let mut json = common::demo_json();
    let ops_grants = json["clients"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|c| c["id"] == "ops-admin")
        .map(|c| &mut c["grants"])
        .unwrap();
    *ops_grants = serde_json::json!([{ "chain": "HTBTTE" }]);
    let narrowed = pms_events::config::ServiceConfig::parse(&json.to_string()).unwrap();
    assert_eq!(codes(granted_chains(&narrowed, &ops, Scope::Admin).unwrap()), ["HTBTTE"]);
    // A vendor's token holds no admin scope: refused, not an empty list.
    let vendor = claims("client-app-001");
    assert!(matches!(granted_chains(&config, &vendor, Scope::Admin), Err(AccessError::Forbidden(_))));
}
