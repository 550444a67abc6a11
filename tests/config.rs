//! One test per operator mistake: each is refused with an error naming the bad entry.

mod common;

use common::{demo_config, demo_json};
use pms_events::config::{Scope, ServiceConfig};
use serde_json::{json, Value};

fn refused(doc: Value) -> String {
    ServiceConfig::parse(&doc.to_string()).expect_err("must be refused").to_string()
}

fn with(mut doc: Value, edit: impl FnOnce(&mut Value)) -> Value {
    edit(&mut doc);
    doc
}

fn assert_names(doc: Value, needles: &[&str]) {
    let msg = refused(doc);
    for n in needles {
        assert!(msg.contains(n), "{msg:?} should name {n:?}");
    }
}

#[test]
fn demo_configuration_loads_with_the_documented_values() {
    let c = demo_config();
    assert_eq!(c.retention_seconds, 7 * 24 * 3600);
    let app2 = c.client("client-app-002").unwrap();
    assert_eq!(app2.app_key, "APPKEY002");
    assert_eq!(app2.enterprise, "BROWNS");
    assert_eq!(app2.grants.len(), 1);
    assert_eq!(app2.grants[0].properties.as_ref().unwrap().iter().collect::<Vec<_>>(), vec!["TTE01"]);
    assert!(c.client("pms-core-001").unwrap().scopes.contains(&Scope::Publish));
    assert!(c.client("client-app-001").unwrap().secret_matches("secret-001"));
    assert!(!c.client("client-app-001").unwrap().secret_matches("secret-002"));
    assert_eq!(c.chain("TTE").unwrap().properties.len(), 2);
    assert_eq!(c.client_by_app_key("OPSKEY001").unwrap().id, "ops-admin");
}

#[test]
fn not_json_is_refused() {
    assert!(ServiceConfig::parse("{").unwrap_err().to_string().contains("not a valid configuration"));
}

#[test]
fn unknown_field_is_refused_by_name() {
    assert_names(with(demo_json(), |d| d["retension"] = json!(1)), &["retension"]);
}

#[test]
fn missing_issuer_is_refused() {
    assert_names(with(demo_json(), |d| d["issuer"] = json!(" ")), &["issuer"]);
}

#[test]
fn zero_retention_is_refused() {
    assert_names(with(demo_json(), |d| d["retentionSeconds"] = json!(0)), &["retentionSeconds"]);
}

#[test]
fn zero_limit_is_refused_by_name() {
    assert_names(with(demo_json(), |d| d["limits"] = json!({"maxEventsPerBatch": 0})), &["limits.maxEventsPerBatch"]);
}

#[test]
fn event_limit_over_batch_limit_is_refused() {
    assert_names(
        with(demo_json(), |d| d["limits"] = json!({"maxEventBytes": 10, "maxBatchBytes": 5})),
        &["maxEventBytes"],
    );
}

#[test]
fn duplicate_enterprise_is_refused() {
    assert_names(with(demo_json(), |d| d["enterprises"] = json!(["BROWNS", "BROWNS", "OTHER"])), &["BROWNS", "twice"]);
}

#[test]
fn bad_enterprise_code_is_refused() {
    assert_names(with(demo_json(), |d| d["enterprises"][0] = json!("BR OWNS")), &["BR OWNS"]);
}

#[test]
fn chain_of_unknown_enterprise_is_refused() {
    assert_names(with(demo_json(), |d| d["chains"][2]["enterprise"] = json!("NOPE")), &["OTH", "NOPE"]);
}

#[test]
fn duplicate_chain_is_refused() {
    assert_names(
        with(demo_json(), |d| {
            d["chains"]
                .as_array_mut()
                .unwrap()
                .push(json!({"code": "TTE", "enterprise": "BROWNS", "properties": ["X1"]}))
        }),
        &["TTE", "defined twice"],
    );
}

#[test]
fn chain_with_bad_code_is_refused() {
    assert_names(with(demo_json(), |d| d["chains"][0]["code"] = json!("T/E")), &["T/E"]);
}

#[test]
fn chain_without_properties_is_refused() {
    assert_names(with(demo_json(), |d| d["chains"][1]["properties"] = json!([])), &["HTBTTE", "no properties"]);
}

#[test]
fn property_in_two_chains_is_refused() {
    assert_names(
        with(demo_json(), |d| d["chains"][1]["properties"] = json!(["HTB01", "TTE02"])),
        &["TTE02", "TTE", "HTBTTE"],
    );
}

#[test]
fn duplicate_client_is_refused() {
    assert_names(
        with(demo_json(), |d| d["clients"][1]["id"] = json!("client-app-001")),
        &["client-app-001", "defined twice"],
    );
}

#[test]
fn duplicate_app_key_is_refused() {
    assert_names(
        with(demo_json(), |d| d["clients"][1]["appKey"] = json!("APPKEY001")),
        &["client-app-002", "APPKEY001", "client-app-001"],
    );
}

#[test]
fn plain_secret_is_refused() {
    assert_names(
        with(demo_json(), |d| {
            d["clients"][0].as_object_mut().unwrap().remove("secretHash");
            d["clients"][0]["secret"] = json!("secret-001");
        }),
        &["client-app-001", "plain \"secret\""],
    );
}

#[test]
fn unhashed_secret_hash_is_refused_without_echoing_it() {
    let msg = refused(with(demo_json(), |d| d["clients"][0]["secretHash"] = json!("secret-001")));
    assert!(msg.contains("client-app-001") && msg.contains("secretHash"), "{msg}");
    assert!(!msg.contains("secret-001\""), "the value must not be echoed: {msg}");
}

#[test]
fn weak_hash_iterations_are_refused() {
    assert_names(
        with(demo_json(), |d| {
            d["clients"][0]["secretHash"] =
                json!("pbkdf2-sha256$10$c2FsdHNhbHQ=$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
        }),
        &["client-app-001", "iteration"],
    );
}

#[test]
fn missing_secret_hash_is_refused() {
    assert_names(
        with(demo_json(), |d| {
            d["clients"][0].as_object_mut().unwrap().remove("secretHash");
        }),
        &["client-app-001", "no secretHash"],
    );
}

#[test]
fn client_of_unknown_enterprise_is_refused() {
    assert_names(with(demo_json(), |d| d["clients"][0]["enterprise"] = json!("ACME")), &["client-app-001", "ACME"]);
}

#[test]
fn unknown_scope_is_refused() {
    assert_names(
        with(demo_json(), |d| d["clients"][0]["scopes"] = json!(["urn:pms:everything"])),
        &["client-app-001", "urn:pms:everything"],
    );
}

#[test]
fn client_without_scopes_is_refused() {
    assert_names(with(demo_json(), |d| d["clients"][0]["scopes"] = json!([])), &["client-app-001", "no scopes"]);
}

#[test]
fn client_without_grants_is_refused() {
    assert_names(with(demo_json(), |d| d["clients"][0]["grants"] = json!([])), &["client-app-001", "no grants"]);
}

#[test]
fn grant_of_unknown_chain_is_refused() {
    assert_names(
        with(demo_json(), |d| d["clients"][0]["grants"][0]["chain"] = json!("XYZ")),
        &["client-app-001", "XYZ"],
    );
}

#[test]
fn grant_of_other_enterprise_chain_is_refused() {
    assert_names(
        with(demo_json(), |d| d["clients"][0]["grants"][0]["chain"] = json!("OTH")),
        &["client-app-001", "OTH", "OTHER"],
    );
}

#[test]
fn grant_of_foreign_property_is_refused() {
    assert_names(
        with(demo_json(), |d| d["clients"][1]["grants"][0]["properties"] = json!(["HTB01"])),
        &["client-app-002", "HTB01", "TTE"],
    );
}

#[test]
fn empty_property_list_in_grant_is_refused() {
    assert_names(
        with(demo_json(), |d| d["clients"][1]["grants"][0]["properties"] = json!([])),
        &["client-app-002", "empty property list"],
    );
}

#[test]
fn duplicate_grant_is_refused() {
    assert_names(
        with(demo_json(), |d| d["clients"][0]["grants"] = json!([{"chain": "TTE"}, {"chain": "TTE"}])),
        &["client-app-001", "TTE", "twice"],
    );
}

#[test]
fn bad_app_key_is_refused() {
    assert_names(with(demo_json(), |d| d["clients"][0]["appKey"] = json!("APP KEY")), &["client-app-001", "app key"]);
}

#[test]
fn defaults_apply_when_omitted() {
    let doc = with(demo_json(), |d| {
        d.as_object_mut().unwrap().remove("retentionSeconds");
    });
    let c = ServiceConfig::parse(&doc.to_string()).unwrap();
    assert_eq!(c.retention_seconds, 604800);
    assert_eq!(c.limits.max_events_per_batch, 500);
}

#[test]
fn debug_output_never_shows_hash_material() {
    let c = demo_config();
    let dump = format!("{:?}", c.client("client-app-001").unwrap());
    assert!(!dump.contains("pbkdf2-sha256$"), "{dump}");
}

#[test]
fn zero_slow_consumer_seconds_is_refused() {
    assert_names(
        with(demo_json(), |d| d["limits"] = json!({"slowConsumerSeconds": 0})),
        &["limits.slowConsumerSeconds"],
    );
    let ok = with(demo_json(), |d| d["limits"] = json!({"slowConsumerSeconds": 45}));
    assert_eq!(ServiceConfig::parse(&ok.to_string()).unwrap().limits.slow_consumer_seconds, 45);
    assert_eq!(demo_config().limits.slow_consumer_seconds, 30, "on by default");
}

#[test]
fn every_limit_has_bounds_and_a_value_past_them_is_refused_by_name() {
    use pms_events::config::LIMIT_RANGES;
    for &(name, min, max) in LIMIT_RANGES {
        let over = with(demo_json(), |d| d["limits"] = json!({ name: max + 1 }));
        assert_names(over, &[&format!("limits.{name}"), &max.to_string()]);
        if min > 0 {
            let under = with(demo_json(), |d| d["limits"] = json!({ name: min - 1 }));
            assert_names(under, &[&format!("limits.{name}")]);
        }
        // The bounds themselves are accepted (alone, other limits at their defaults), except
        // where they contradict a default: a per-event size over the batch size, a
        // per-source login limit over the per-client ceiling, or a first webhook retry
        // later than the longest.
        for value in [min, max] {
            let doc = with(demo_json(), |d| d["limits"] = json!({ name: value }));
            let contradicts = (name == "maxBatchBytes" && value < 64 * 1024)
                || (name == "maxEventBytes" && value > 1024 * 1024)
                || (name == "loginFailuresBeforeLockout" && value > 50)
                || (name == "loginFailuresPerClient" && value < 5)
                || (name == "webhookFirstRetrySeconds" && value > 600)
                || (name == "webhookMaxRetrySeconds" && value < 5);
            assert_eq!(ServiceConfig::parse(&doc.to_string()).is_ok(), !contradicts, "{name} = {value}");
        }
    }
}

#[test]
fn a_first_webhook_retry_later_than_the_longest_is_refused() {
    let doc =
        with(demo_json(), |d| d["limits"] = json!({"webhookFirstRetrySeconds": 60, "webhookMaxRetrySeconds": 30}));
    assert_names(doc, &["limits.webhookMaxRetrySeconds", "webhookFirstRetrySeconds"]);
}

#[test]
fn huge_values_cannot_wrap_into_tiny_ones() {
    // u64::MAX seconds of retention would wrap to a small number of milliseconds.
    assert_names(with(demo_json(), |d| d["retentionSeconds"] = json!(u64::MAX)), &["retentionSeconds", "366 days"]);
    assert_names(
        with(demo_json(), |d| d["limits"] = json!({"loginLockoutSeconds": u64::MAX})),
        &["limits.loginLockoutSeconds"],
    );
    assert_names(
        with(demo_json(), |d| d["limits"] = json!({"slowConsumerSeconds": 18_446_744_073_709_552u64})),
        &["limits.slowConsumerSeconds"],
    );
    let max_retention = with(demo_json(), |d| d["retentionSeconds"] = json!(366 * 24 * 3600));
    assert_eq!(ServiceConfig::parse(&max_retention.to_string()).unwrap().retention_seconds, 366 * 24 * 3600);
}

/// A client rotating its secret holds two hashes: either secret is accepted until one hash is
/// removed; `config check` names it.
#[test]
fn a_client_may_hold_two_secret_hashes_while_its_secret_rotates() {
    use pms_events::config::secret_hash::SecretHash;
    let next = SecretHash::new("the-next-secret-of-client-app-001", b"a salt for tests", 1_000).encode();
    let doc = with(demo_json(), |d| {
        let current = d["clients"][0]["secretHash"].clone();
        d["clients"][0]["secretHash"] = json!([current, next.clone()]);
    });
    let config = ServiceConfig::parse(&doc.to_string()).unwrap();
    let client = config.client("client-app-001").unwrap();
    assert!(client.secret_matches("secret-001"), "the current secret");
    assert!(client.secret_matches("the-next-secret-of-client-app-001"), "and the next");
    assert!(!client.secret_matches("secret-002"));
    assert!(client.in_rotation());
    assert!(config.summary().ends_with("secret in rotation (two hashes): client-app-001"), "{}", config.summary());
    assert!(!demo_config().summary().contains("rotation"));

    let three = with(demo_json(), |d| {
        let current = d["clients"][0]["secretHash"].clone();
        d["clients"][0]["secretHash"] = json!([current.clone(), next.clone(), current]);
    });
    assert_names(three, &["client-app-001", "3 secret hashes", "at most 2"]);
    let same = with(demo_json(), |d| {
        let current = d["clients"][0]["secretHash"].clone();
        d["clients"][0]["secretHash"] = json!([current.clone(), current]);
    });
    assert_names(same, &["client-app-001", "secretHash[1]", "repeats"]);
    assert_names(
        with(demo_json(), |d| d["clients"][0]["secretHash"] = json!([])),
        &["client-app-001", "empty secretHash"],
    );
    assert_names(
        with(demo_json(), |d| d["clients"][0]["secretHash"] = json!(["pbkdf2-sha256$10000$AAAA$BBBB"])),
        &["client-app-001", "secretHash"],
    );
}

#[test]
fn operator_tools_check_says_what_the_worker_says() {
    use pms_events::config::operator_tools::check_document;
    let ok = check_document(&demo_json().to_string());
    assert_eq!((ok.status, ok.stderr.as_str()), (0, ""));
    assert!(ok.stdout.starts_with("ok: 2 enterprise(s), 3 chain(s)"), "{}", ok.stdout);
    let bad = with(demo_json(), |d| d["retentionSeconds"] = json!(0));
    let refused = check_document(&bad.to_string());
    assert_eq!(refused.status, 1);
    assert_eq!(refused.stderr, ServiceConfig::parse(&bad.to_string()).unwrap_err().to_string());
}

#[test]
fn operator_tools_hash_a_secret_that_verifies_and_refuse_weak_input() {
    use pms_events::config::operator_tools::hash_secret;
    use pms_events::config::secret_hash::SecretHash;
    let done = hash_secret("s3cret-value\r\n", Some("2000"), &[7; 16]);
    assert_eq!(done.status, 0, "{}", done.stderr);
    let hash = SecretHash::parse(&done.stdout).expect("the printed hash parses");
    assert!(hash.verify("s3cret-value"), "the line end is not part of the secret");
    assert!(!hash.verify("s3cret-value\r\n"));
    assert_eq!(hash.iterations(), 2000);
    assert_eq!(hash_secret("x", Some("999"), &[7; 16]).status, 2, "too few iterations");
    assert_eq!(hash_secret("x", Some("many"), &[7; 16]).status, 2);
    assert_eq!(hash_secret("\n", None, &[7; 16]).status, 2, "an empty secret");
}

/// `config/bench.json` (scripts/bench-config.mjs) is the demo configuration plus 100 chains
/// of one property each, granted to the demo vendor and publisher.
#[test]
fn the_bench_configuration_is_valid_and_grants_its_hundred_chains() {
    let config = ServiceConfig::parse(include_str!("../config/bench.json")).expect("config/bench.json is valid");
    let bench: Vec<_> = config.chains().filter(|c| c.code.starts_with("BENCH")).collect();
    assert_eq!(bench.len(), 100);
    assert!(bench.iter().all(|c| c.properties.len() == 1 && c.properties.contains(&format!("{}H1", c.code))));
    for id in ["client-app-001", "pms-core-001"] {
        let client = config.client(id).unwrap();
        assert!(
            bench.iter().all(|c| client.grants.iter().any(|g| g.chain == c.code)),
            "{id} is granted every bench chain"
        );
    }
    assert!(config.chain("TTE").is_some(), "and everything of the demo configuration");
}
