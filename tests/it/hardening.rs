//! Hostile input and faults (issue 13): each test here failed on the code
//! before its fix. Requests that must be refused get a 4xx with a reason;
//! nothing a client sends may panic a handler or leak a permit.

use crate::bridge_support::TestBridge;
use crate::support::app::{parse_exposition, start_app, value};
use crate::support::httpd::TestServer;
use checkit::config::Config;

const LOOPBACK_DENIED: &str = r#"
modules:
  http_2xx:
    prober: http
    timeout: 2s
  tcp_connect:
    prober: tcp
    timeout: 2s
exporter:
  targets:
    deny: ["127.0.0.1/32", "::1/128"]
"#;

/// Defect 1: an absurd scrape-timeout header is clamped, never a panic, and
/// the in-flight gauge returns to zero.
#[tokio::test]
async fn scrape_timeout_header_never_panics() {
    let server = TestServer::http().await;
    let app = start_app("modules:\n  http_2xx:\n    prober: http\n    timeout: 2s\n  bare:\n    prober: http\n").await;
    let client = reqwest::Client::new();
    for module in ["http_2xx", "bare"] {
        for header in ["inf", "+Inf", "-Inf", "1e300", "1e19", "NaN", "-5", "0", "1.5"] {
            let response = client
                .get(app.url(&format!("/probe?module={module}&target={}", server.url("/"))))
                .header("X-Prometheus-Scrape-Timeout-Seconds", header)
                .send()
                .await
                .unwrap_or_else(|err| panic!("header {header}: no answer: {err}"));
            assert_eq!(response.status().as_u16(), 200, "header {header}");
            let families = parse_exposition(&response.text().await.expect("body"));
            assert_eq!(value(&families, "probe_success"), Some(1.0), "module {module} header {header}");
        }
    }
    let (_, metrics) = app.get("/metrics").await;
    assert!(metrics.contains("checkit_probes_in_flight 0"), "{metrics}");
}

/// Defect 2: every numeric key is range-checked at load, so what passes the
/// check also starts.
#[test]
fn numeric_keys_are_range_checked_at_load() {
    let err = Config::parse("exporter:\n  max_concurrent_probes: 18446744073709551615\n")
        .expect_err("a semaphore cannot hold that many permits");
    assert!(err.to_string().contains("exporter.max_concurrent_probes"), "{err}");
    // Durations past Go's int64 nanoseconds would overflow clock arithmetic.
    let err = Config::parse("modules:\n  m:\n    prober: tcp\n    timeout: 5000000h\n").expect_err("too long");
    assert!(err.to_string().contains("modules.m.timeout"), "{err}");
}

/// Defect 3: the unspecified addresses reach the local host, so a deny of the
/// loopback addresses covers them too, also after a redirect.
#[tokio::test]
async fn unspecified_addresses_do_not_bypass_the_deny_list() {
    let denied = TestServer::http().await;
    let port = denied.addr.port();
    let app = start_app(LOOPBACK_DENIED).await;
    for target in [
        format!("http://0.0.0.0:{port}/"),
        format!("http://0:{port}/"),
        format!("http://[::]:{port}/"),
        format!("http://[::ffff:0.0.0.0]:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
    ] {
        let (status, body) = app.probe("http_2xx", &target).await;
        assert_eq!(status, 403, "{target}: {body}");
        assert!(body.contains("exporter.targets.deny"), "{target}: {body}");
    }
    for target in [format!("0.0.0.0:{port}"), format!("[::]:{port}"), format!("[::ffff:0.0.0.0]:{port}")] {
        let (status, body) = app.probe("tcp_connect", &target).await;
        assert_eq!(status, 403, "{target}: {body}");
    }
    // An allowed host redirecting to the unspecified address.
    let allowed = TestServer::http_on("127.0.0.2").await;
    let target = allowed.url(&format!("/to?url=http://0.0.0.0:{port}/"));
    let (status, body) = app.probe("http_2xx", &target).await;
    assert_eq!(status, 403, "{target}: {body}");
    assert_eq!(denied.connections(), 0, "the denied server was reached");
}

/// Defect 4: allow/deny entries that look numeric but are not addresses are
/// config errors, not host patterns that never match.
#[test]
fn numeric_looking_policy_entries_are_config_errors() {
    for entry in ["300.1.1.1", "127.1", "010.0.0.1", "0", "0x7f.0.0.1"] {
        let yaml = format!("exporter:\n  targets:\n    deny: [\"{entry}\"]\n");
        let err = Config::parse(&yaml).expect_err(entry);
        assert!(err.to_string().contains("exporter.targets.deny[0]"), "{entry}: {err}");
    }
    assert!(Config::parse("exporter:\n  targets:\n    deny: [\"db1.example\", \"10.0.0.1\"]\n").is_ok());
}

/// Defect 10: a body that is not an object with an `alerts` array of objects
/// is a 400 with the reason, never "accepted".
#[tokio::test]
async fn webhook_bodies_of_the_wrong_shape_are_400() {
    let bridge = TestBridge::start("contacts: {ops: {log: ops}}\nroutes: [{contacts: [ops]}]\n").await;
    for body in [
        "[null,null,null,null,null,[{}]]",
        "[]",
        r#"{"alerts":[[]]}"#,
        r#"{"alerts":[null]}"#,
        r#"{"alerts":[{"labels":{"a":"b"}}, ["x"]]}"#,
        r#"{"alerts":{}}"#,
        r#""alerts""#,
        "null",
    ] {
        let (status, text) = bridge.post(body).await;
        assert_eq!(status, 400, "{body}: {text}");
        assert!(text.contains("invalid webhook body"), "{body}: {text}");
    }
    assert_eq!(bridge.metric("checkit_bridge_notifications_accepted_total"), 0.0);
    bridge.stop().await;
}

/// Defect 9: out-of-range numbers in the deliveries API are a 400 with the
/// reason, not a storage error.
#[tokio::test]
async fn deliveries_api_refuses_out_of_range_numbers() {
    let bridge = TestBridge::start("contacts: {ops: {log: ops}}\nroutes: [{contacts: [ops]}]\n").await;
    for query in ["offset=9223372036854775808", "offset=18446744073709551615", "offset=-1", "limit=4294967296"] {
        let response =
            bridge.client.get(bridge.url(&format!("/api/v1/deliveries?{query}"))).send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        assert_eq!(status, 400, "{query}: {text}");
        assert!(text.contains("invalid"), "{query}: {text}");
    }
    let page = bridge.history("offset=9223372036854775807").await;
    assert_eq!(page["items"], serde_json::json!([]));
    bridge.stop().await;
}

/// Defect 12: blackbox.yml files that blackbox accepts load here too: merge
/// keys and several documents (the first is the config, as in blackbox).
#[test]
fn merge_keys_and_multi_document_files_load_like_blackbox() {
    let config = Config::parse(
        "modules:\n  a: &base\n    prober: http\n    timeout: 3s\n  b:\n    <<: *base\n    timeout: 7s\n    http:\n      method: POST\n",
    )
    .expect("merge keys load");
    let b = config.module("b").expect("module b");
    assert_eq!((b.timeout.get().as_secs(), b.http.method.as_str()), (7, "POST"));
    assert_eq!(config.module("a").expect("module a").timeout.get().as_secs(), 3);
    let config = Config::parse("modules:\n  first:\n    prober: tcp\n---\nmodules:\n  second:\n    prober: tcp\n")
        .expect("multi-document loads");
    assert!(config.module("first").is_some() && config.module("second").is_none());
}

/// Defect 12: a repeated query parameter uses its first value, as Go's
/// `url.Values.Get` does.
#[tokio::test]
async fn repeated_probe_parameters_use_the_first_value() {
    let server = TestServer::http().await;
    let app = start_app("modules:\n  http_2xx:\n    prober: http\n    timeout: 2s\n").await;
    let (status, body) =
        app.get(&format!("/probe?module=http_2xx&module=nope&target={}&target=x", server.url("/"))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(value(&parse_exposition(&body), "probe_success"), Some(1.0));
    let (status, body) = app.get(&format!("/probe?module=&module=nope&target={}", server.url("/"))).await;
    assert_eq!(status, 200, "an empty first module is the default http_2xx: {body}");
}
