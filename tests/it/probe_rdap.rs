//! The `rdap` prober against a local RDAP server (axum) serving fixtures:
//! dates, no expiration, 404, malformed JSON, a rate limit and a hang; plus
//! the answer cache, bootstrap files, the target policy and a closed port.

use crate::support::closed_port;
use crate::support::module::{assert_listed, failure};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use checkit::probe::{Outcome, Phase, Reason};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Default)]
struct Seen {
    requests: Arc<Mutex<HashMap<String, usize>>>,
    accept: Arc<Mutex<Option<String>>>,
}

/// A local RDAP server under `/rdap/`; aborted on drop.
struct RdapServer {
    addr: SocketAddr,
    seen: Seen,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RdapServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RdapServer {
    fn url(&self) -> String {
        format!("http://{}/rdap/", self.addr)
    }

    fn requests(&self, domain: &str) -> usize {
        self.seen.requests.lock().expect("lock").get(domain).copied().unwrap_or(0)
    }
}

const FULL: &str = r#"{
  "objectClassName": "domain",
  "ldhName": "NAME",
  "status": ["client transfer prohibited"],
  "events": [
    {"eventAction": "registration", "eventDate": "1995-08-14T04:00:00Z"},
    {"eventAction": "expiration", "eventDate": "2026-08-13T04:00:00Z"},
    {"eventAction": "last changed", "eventDate": "2024-08-14T07:01:34Z"},
    {"eventAction": "last update of RDAP database", "eventDate": "2026-11-22T10:00:00Z"}
  ]
}"#;

const NO_EXPIRATION: &str = r#"{
  "objectClassName": "domain",
  "ldhName": "noexp.com",
  "events": [{"eventAction": "registration", "eventDate": "2001-02-03T04:05:06Z"}]
}"#;

async fn domain(State(seen): State<Seen>, Path(name): Path<String>, headers: HeaderMap) -> Response {
    *seen.requests.lock().expect("lock").entry(name.clone()).or_default() += 1;
    *seen.accept.lock().expect("lock") =
        headers.get(header::ACCEPT).map(|value| value.to_str().expect("ASCII header").to_string());
    let rdap = [(header::CONTENT_TYPE, "application/rdap+json")];
    match name.as_str() {
        "noexp.com" => (rdap, NO_EXPIRATION).into_response(),
        "missing.com" => (StatusCode::NOT_FOUND, rdap, r#"{"errorCode": 404, "title": "Not Found"}"#).into_response(),
        "broken.com" => (rdap, "{\"objectClassName\": \"domain\", \"events\": [").into_response(),
        "entity.com" => (rdap, r#"{"objectClassName": "entity", "handle": "X"}"#).into_response(),
        "limited.com" => (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, "600")], "slow down").into_response(),
        "hang.com" => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
        other => (rdap, FULL.replace("NAME", other)).into_response(),
    }
}

async fn rdap_server() -> RdapServer {
    let seen = Seen::default();
    let router = axum::Router::new().route("/rdap/domain/{name}", axum::routing::get(domain)).with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    RdapServer { addr, seen, task }
}

async fn probe_with(config_text: &str, target: &str, timeout: Duration) -> Outcome {
    let config = checkit::settings::Config::parse(config_text).unwrap_or_else(|err| panic!("{err}\n{config_text}"));
    crate::support::module::run_with(&config, &config.modules["m"], target, None, timeout).await
}

async fn probe(rdap_block: &str, target: &str, timeout: Duration) -> Outcome {
    let block: String = rdap_block.lines().map(|line| format!("      {line}\n")).collect();
    probe_with(&format!("modules:\n  m:\n    prober: rdap\n    rdap:\n{block}"), target, timeout).await
}

const EXPIRATION: f64 = 1_786_593_600.0;

#[tokio::test]
async fn dates_are_exported_and_the_answer_is_cached() {
    let server = rdap_server().await;
    let block = format!("server_url: {}", server.url());
    let outcome = probe(&block, "example.com", Duration::from_secs(5)).await;
    assert!(outcome.success(), "{:?}\n{}", outcome.error, outcome.log.join("\n"));
    assert_listed(&outcome);
    let registry = &outcome.registry;
    assert_eq!(
        registry.names().collect::<Vec<_>>(),
        [
            "probe_domain_expiration_timestamp_seconds",
            "probe_domain_last_changed_timestamp_seconds",
            "probe_domain_registration_timestamp_seconds",
            "probe_duration_seconds",
            "probe_rdap_cache_age_seconds",
            "probe_rdap_duration_seconds",
            "probe_rdap_status_code",
            "probe_success",
        ]
    );
    assert_eq!(registry.get("probe_domain_expiration_timestamp_seconds", &[]), Some(EXPIRATION));
    assert_eq!(registry.get("probe_domain_registration_timestamp_seconds", &[]), Some(808_372_800.0));
    assert_eq!(registry.get("probe_domain_last_changed_timestamp_seconds", &[]), Some(1_723_618_894.0));
    assert_eq!(registry.get("probe_rdap_status_code", &[]), Some(200.0));
    assert_eq!(registry.get("probe_rdap_cache_age_seconds", &[]), Some(0.0));
    assert!(registry.get("probe_rdap_duration_seconds", &[("phase", "request")]).unwrap() > 0.0);
    assert!(registry.get("probe_rdap_duration_seconds", &[("phase", "transfer")]).is_some());
    assert_eq!(server.requests("example.com"), 1);
    assert!(server.seen.accept.lock().unwrap().as_deref().unwrap().starts_with("application/rdap+json"));

    // Same domain, spelled differently: answered from the cache.
    for target in ["example.com", "EXAMPLE.com."] {
        let cached = probe(&block, target, Duration::from_secs(5)).await;
        assert!(cached.success(), "{:?}", cached.error);
        assert_eq!(cached.registry.get("probe_domain_expiration_timestamp_seconds", &[]), Some(EXPIRATION));
        assert_eq!(cached.registry.get("probe_rdap_status_code", &[]), Some(200.0));
        assert!(cached.registry.get("probe_rdap_cache_age_seconds", &[]).unwrap() > 0.0);
    }
    assert_eq!(server.requests("example.com"), 1, "the registry was asked again");

    // cache_ttl 0 turns caching off (for what this module fetches).
    let uncached = format!("{block}\ncache_ttl: 0s");
    for _ in 0..2 {
        assert!(probe(&uncached, "other.com", Duration::from_secs(5)).await.success());
    }
    assert_eq!(server.requests("other.com"), 2);
}

#[tokio::test]
async fn missing_expiration_fails_unless_allowed() {
    let server = rdap_server().await;
    let block = format!("server_url: {}", server.url());
    let outcome = probe(&block, "noexp.com", Duration::from_secs(5)).await;
    assert_eq!(failure(&outcome), Some((Phase::Check, Reason::Query)));
    assert!(!outcome.registry.contains("probe_domain_expiration_timestamp_seconds"));
    assert_eq!(outcome.registry.get("probe_domain_registration_timestamp_seconds", &[]), Some(981_173_106.0));

    let outcome = probe(&format!("{block}\nfail_if_no_expiration: false"), "noexp.com", Duration::from_secs(5)).await;
    assert!(outcome.success(), "{:?}", outcome.error);
    assert_eq!(server.requests("noexp.com"), 1);
}

#[tokio::test]
async fn unknown_domain_is_a_status_failure_cached_briefly() {
    let server = rdap_server().await;
    let block = format!("server_url: {}", server.url());
    let no_failure_cache = format!("{block}\nfailure_cache_ttl: 0s");
    for _ in 0..2 {
        let outcome = probe(&no_failure_cache, "missing.com", Duration::from_secs(5)).await;
        assert_eq!(failure(&outcome), Some((Phase::Request, Reason::Status)));
        assert_eq!(outcome.registry.get("probe_rdap_status_code", &[]), Some(404.0));
    }
    assert_eq!(server.requests("missing.com"), 2);
    for _ in 0..2 {
        let outcome = probe(&block, "missing.com", Duration::from_secs(5)).await;
        assert_eq!(failure(&outcome), Some((Phase::Request, Reason::Status)));
        assert_eq!(outcome.registry.get("probe_rdap_status_code", &[]), Some(404.0));
        assert!(!outcome.registry.contains("probe_domain_expiration_timestamp_seconds"));
    }
    assert_eq!(server.requests("missing.com"), 3, "the failure was not cached");
}

#[tokio::test]
async fn rate_limit_retry_after_is_honoured() {
    let server = rdap_server().await;
    let block = format!("server_url: {}\nfailure_cache_ttl: 0s", server.url());
    for _ in 0..2 {
        let outcome = probe(&block, "limited.com", Duration::from_secs(5)).await;
        assert_eq!(failure(&outcome), Some((Phase::Request, Reason::Status)));
        assert_eq!(outcome.registry.get("probe_rdap_status_code", &[]), Some(429.0));
    }
    assert_eq!(server.requests("limited.com"), 1);
}

#[tokio::test]
async fn bodies_that_are_not_domain_objects_fail() {
    let server = rdap_server().await;
    let block = format!("server_url: {}", server.url());
    for domain in ["broken.com", "entity.com"] {
        let outcome = probe(&block, domain, Duration::from_secs(5)).await;
        assert_eq!(failure(&outcome), Some((Phase::Transfer, Reason::Body)), "{domain}");
        assert_eq!(outcome.registry.get("probe_rdap_status_code", &[]), Some(200.0), "{domain}");
    }
}

#[tokio::test]
async fn hanging_server_times_out_and_the_timeout_is_cached() {
    let server = rdap_server().await;
    let block = format!("server_url: {}", server.url());
    let timeout = Duration::from_millis(800);
    let outcome = probe(&block, "hang.com", timeout).await;
    assert_eq!(failure(&outcome), Some((Phase::Request, Reason::Timeout)));
    assert!(outcome.duration < timeout + Duration::from_secs(2), "took {:?}", outcome.duration);
    assert_eq!(outcome.registry.get("probe_rdap_status_code", &[]), Some(0.0));

    let again = probe(&block, "hang.com", timeout).await;
    assert_eq!(failure(&again), Some((Phase::Request, Reason::Timeout)));
    assert!(again.duration < Duration::from_millis(200), "took {:?}", again.duration);
    assert_eq!(server.requests("hang.com"), 1);
}

#[tokio::test]
async fn closed_port_is_refused() {
    let addr = closed_port();
    let outcome = probe(&format!("server_url: http://{addr}/"), "closed.example", Duration::from_secs(5)).await;
    assert_eq!(failure(&outcome), Some((Phase::Connect, Reason::Refused)), "{}", outcome.log.join("\n"));
    assert_eq!(outcome.registry.get("probe_rdap_status_code", &[]), Some(0.0));
}

#[tokio::test]
async fn bootstrap_file_chooses_the_server() {
    let server = rdap_server().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dns.json");
    std::fs::write(
        &file,
        format!(r#"{{"version": "1.0", "services": [[["test", "example"], ["{}"]]]}}"#, server.url()),
    )
    .unwrap();
    let outcome = probe(&format!("bootstrap_file: {}", file.display()), "bootstrap.test", Duration::from_secs(5)).await;
    assert!(outcome.success(), "{:?}\n{}", outcome.error, outcome.log.join("\n"));
    assert_eq!(server.requests("bootstrap.test"), 1);

    // The bundled bootstrap knows no server for .test (and the test has no network).
    let outcome = probe("", "bootstrap.test", Duration::from_secs(5)).await;
    assert_eq!(failure(&outcome), Some((Phase::Resolve, Reason::Config)));
}

#[tokio::test]
async fn targets_are_domain_names_under_the_target_policy() {
    let server = rdap_server().await;
    let block = format!("server_url: {}", server.url());
    for target in ["http://example.com", "127.0.0.1", "com", "example.com/x"] {
        let outcome = probe(&block, target, Duration::from_secs(5)).await;
        assert_eq!(failure(&outcome), Some((Phase::Resolve, Reason::Config)), "{target}");
    }
    let text = format!(
        "exporter:\n  targets:\n    deny: ['*.denied.com']\nmodules:\n  m:\n    prober: rdap\n    rdap:\n      {block}\n"
    );
    let outcome = probe_with(&text, "www.denied.com", Duration::from_secs(5)).await;
    assert_eq!(failure(&outcome), Some((Phase::Resolve, Reason::Denied)));
    assert_eq!(server.requests("www.denied.com"), 0);
}

#[tokio::test]
async fn config_problems_are_reported_with_their_paths() {
    let text = "modules:\n  m:\n    prober: rdap\n    rdap:\n      server_url: 'ftp://x'\n      cache_ttl: 1d\n";
    let err = checkit::settings::Config::parse(text).unwrap_err().to_string();
    assert!(err.contains("modules.m.rdap"), "{err}");
    let text = "modules:\n  m:\n    prober: rdap\n    rdap:\n      server_url: 'ftp://x'\n";
    let err = checkit::settings::Config::parse(text).unwrap_err().to_string();
    assert!(err.contains("modules.m.rdap.server_url"), "{err}");
}

#[test]
fn shipped_examples_parse() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/examples.d/rdap.yml");
    let text = std::fs::read_to_string(path).expect("read example");
    let config = checkit::settings::Config::parse(&format!("modules:\n{text}")).unwrap_or_else(|err| panic!("{err}"));
    assert!(config.modules.values().all(|module| module.prober.as_str() == "rdap"));
}
