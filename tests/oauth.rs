//! The token endpoint's request parsing, authentication and scope selection.

mod common;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use common::demo_config;
use pms_events::auth::oauth::{self, OAuthError, TokenHttpRequest};
use pms_events::config::Scope;

const FORM: &str = "application/x-www-form-urlencoded";

fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

fn req<'a>(auth: Option<&'a str>, body: &'a str) -> TokenHttpRequest<'a> {
    TokenHttpRequest {
        content_type: Some(FORM),
        authorization: auth,
        app_key: Some("APPKEY001"),
        enterprise_id: Some("BROWNS"),
        body,
    }
}

#[test]
fn basic_credentials_authenticate() {
    let auth = basic("client-app-001", "secret-001");
    let parsed = oauth::parse(&req(Some(&auth), "grant_type=client_credentials")).unwrap();
    let config = demo_config();
    let client = oauth::authenticate(&config, &parsed).unwrap();
    assert_eq!(client.id, "client-app-001");
    assert!(!format!("{parsed:?}").contains("secret-001"), "debug output must redact the secret");
}

#[test]
fn body_credentials_authenticate() {
    let parsed =
        oauth::parse(&req(None, "grant_type=client_credentials&client_id=client-app-001&client_secret=secret-001"))
            .unwrap();
    assert_eq!(oauth::authenticate(&demo_config(), &parsed).unwrap().id, "client-app-001");
}

#[test]
fn both_credential_forms_at_once_are_refused() {
    let auth = basic("client-app-001", "secret-001");
    let e = oauth::parse(&req(
        Some(&auth),
        "grant_type=client_credentials&client_id=client-app-001&client_secret=secret-001",
    ))
    .unwrap_err();
    assert_eq!((e.status, e.error), (400, "invalid_request"));
}

#[test]
fn no_credentials_is_invalid_client() {
    assert_eq!(oauth::parse(&req(None, "grant_type=client_credentials")).unwrap_err(), OAuthError::invalid_client());
}

#[test]
fn wrong_content_type_is_invalid_request() {
    let auth = basic("client-app-001", "secret-001");
    let mut r = req(Some(&auth), "grant_type=client_credentials");
    r.content_type = Some("application/json");
    assert_eq!(oauth::parse(&r).unwrap_err().error, "invalid_request");
}

#[test]
fn grant_type_rules() {
    let auth = basic("client-app-001", "secret-001");
    assert_eq!(oauth::parse(&req(Some(&auth), "")).unwrap_err().error, "invalid_request");
    let e = oauth::parse(&req(Some(&auth), "grant_type=password")).unwrap_err();
    assert_eq!((e.status, e.error), (400, "unsupported_grant_type"));
    assert_eq!(
        oauth::parse(&req(Some(&auth), "grant_type=client_credentials&grant_type=client_credentials"))
            .unwrap_err()
            .error,
        "invalid_request"
    );
}

#[test]
fn app_key_and_enterprise_headers_are_required() {
    let auth = basic("client-app-001", "secret-001");
    let mut r = req(Some(&auth), "grant_type=client_credentials");
    r.app_key = None;
    assert!(oauth::parse(&r).unwrap_err().description.contains("x-app-key"));
    let mut r = req(Some(&auth), "grant_type=client_credentials");
    r.enterprise_id = Some("");
    assert!(oauth::parse(&r).unwrap_err().description.contains("enterpriseId"));
}

#[test]
fn every_login_mismatch_gives_the_same_answer() {
    let config = demo_config();
    let cases = [
        ("client-app-001", "wrong", "APPKEY001", "BROWNS"),
        ("nobody", "secret-001", "APPKEY001", "BROWNS"),
        ("client-app-001", "secret-001", "APPKEY002", "BROWNS"),
        ("client-app-001", "secret-001", "APPKEY001", "OTHER"),
    ];
    for (id, secret, key, ent) in cases {
        let auth = basic(id, secret);
        let mut r = req(Some(&auth), "grant_type=client_credentials");
        r.app_key = Some(key);
        r.enterprise_id = Some(ent);
        let parsed = oauth::parse(&r).unwrap();
        assert_eq!(
            oauth::authenticate(&config, &parsed).unwrap_err(),
            OAuthError::invalid_client(),
            "{id}/{key}/{ent}"
        );
    }
}

#[test]
fn malformed_basic_header_is_invalid_client() {
    for header in ["Bearer abc", "Basic !!!", &format!("Basic {}", STANDARD.encode("no-colon"))] {
        assert_eq!(
            oauth::parse(&req(Some(header), "grant_type=client_credentials")).unwrap_err().status,
            401,
            "{header}"
        );
    }
}

#[test]
fn basic_credentials_are_form_decoded() {
    let auth = basic("client-app-001", "secret%2D001");
    let parsed = oauth::parse(&req(Some(&auth), "grant_type=client_credentials")).unwrap();
    assert!(oauth::authenticate(&demo_config(), &parsed).is_ok());
}

#[test]
fn scope_selection() {
    let config = demo_config();
    let admin = config.client("ops-admin").unwrap();
    assert_eq!(oauth::select_scopes(admin, None).unwrap().into_iter().collect::<Vec<_>>(), vec![Scope::Admin]);
    assert_eq!(oauth::select_scopes(admin, Some("urn:pms:admin")).unwrap().len(), 1);
    let e = oauth::select_scopes(admin, Some("urn:pms:admin urn:pms:publish")).unwrap_err();
    assert_eq!((e.status, e.error), (400, "invalid_scope"));
    assert_eq!(oauth::select_scopes(admin, Some("bogus")).unwrap_err().error, "invalid_scope");
}

#[test]
fn success_body_shape() {
    let scopes = [Scope::Events].into_iter().collect();
    let body = oauth::success_body("tok", &scopes);
    assert_eq!(
        body,
        serde_json::json!({"access_token": "tok", "token_type": "Bearer", "expires_in": 3600, "scope": "urn:pms:events"})
    );
}
