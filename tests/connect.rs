//! Admission: the URL key in both forms, and the connection_init credentials.

mod common;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use common::{demo_config, keys, SEED_A};
use pms_events::auth::token::AccessClaims;
use pms_events::config::Scope;
use pms_events::stream::connect::{check_init, hex_sha256, resolve_url_key};
use serde_json::{json, Map, Value};

const NOW: u64 = 1_800_000_000;

#[test]
fn url_key_as_base64_or_sha256_hex() {
    let config = demo_config();
    assert_eq!(resolve_url_key(Some("QVBQS0VZMDAx"), &config).unwrap().id, "client-app-001");
    let hex = hex_sha256("APPKEY002");
    assert_eq!(resolve_url_key(Some(&hex), &config).unwrap().id, "client-app-002");
    assert_eq!(resolve_url_key(Some(&hex.to_uppercase()), &config).unwrap().id, "client-app-002");
    assert!(resolve_url_key(None, &config).unwrap_err().contains("missing"));
    assert!(resolve_url_key(Some("!!!"), &config).unwrap_err().contains("malformed"));
    assert!(resolve_url_key(Some(&STANDARD.encode("NOPE")), &config).unwrap_err().contains("unknown"));
    assert!(resolve_url_key(Some(&hex_sha256("NOPE")), &config).unwrap_err().contains("unknown"));
}

fn payload(token: &str, app_key: &str) -> Map<String, Value> {
    serde_json::from_value(
        json!({"Authorization": format!("Bearer {token}"), "x-app-key": app_key, "enterpriseId": "BROWNS"}),
    )
    .unwrap()
}

fn token_for(client: &str, scopes: Option<&[Scope]>, now: u64) -> String {
    let config = demo_config();
    let c = config.client(client).unwrap();
    let scopes = scopes.map(|s| s.iter().copied().collect()).unwrap_or_else(|| c.scopes.clone());
    let claims = AccessClaims::for_client(c, &scopes, &config.issuer, &config.audience, "j".into());
    keys(&[("k", SEED_A)]).issue(&claims, now).unwrap()
}

#[test]
fn init_checks() {
    let config = demo_config();
    let ks = keys(&[("k", SEED_A)]);
    let app1 = config.client("client-app-001").unwrap();
    let good = token_for("client-app-001", None, NOW);
    assert!(check_init(&payload(&good, "APPKEY001"), app1, &ks, &config, NOW).is_ok());
    // Bad token: 4401.
    assert_eq!(check_init(&payload("junk", "APPKEY001"), app1, &ks, &config, NOW).unwrap_err().code, 4401);
    assert_eq!(check_init(&Map::new(), app1, &ks, &config, NOW).unwrap_err().code, 4401);
    let expired = check_init(&payload(&good, "APPKEY001"), app1, &ks, &config, NOW + 7200).unwrap_err();
    assert_eq!((expired.code, expired.reason.as_str()), (4401, "token expired"));
    // Valid token, wrong app key (payload or URL) or scope: 4403.
    assert_eq!(check_init(&payload(&good, "APPKEY002"), app1, &ks, &config, NOW).unwrap_err().code, 4403);
    let app2 = config.client("client-app-002").unwrap();
    assert_eq!(check_init(&payload(&good, "APPKEY001"), app2, &ks, &config, NOW).unwrap_err().code, 4403);
    let publisher = token_for("pms-core-001", None, NOW);
    let pms = config.client("pms-core-001").unwrap();
    assert_eq!(check_init(&payload(&publisher, "PMSKEY001"), pms, &ks, &config, NOW).unwrap_err().code, 4403);
    let mut no_key = payload(&good, "x");
    no_key.remove("x-app-key");
    assert_eq!(check_init(&no_key, app1, &ks, &config, NOW).unwrap_err().code, 4403);
}
