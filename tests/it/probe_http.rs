//! The `http` prober against in-process HTTP/HTTPS servers and real nginx:
//! family sets per case (blackbox-compat §9), phases, redirects, cookies,
//! TLS outcomes, checks, auth, proxies and deadlines.

use crate::support::httpd::{self, TestServer};
use crate::support::module::{failure, unix_time};
use crate::support::peers::{NGINX_BIG_SIZE, NGINX_BODY, NGINX_LAST_MODIFIED_UNIX, Nginx, NginxOpts};
use crate::support::{Leaf, TestCerts, closed_port, hang_server};
use checkit::probe::{Outcome, Phase, Reason};
use checkit::settings::Config;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// Families every HTTP probe that got as far as connecting emits (§8.1, §8.2).
const HTTP_FAMILIES: [&str; 13] = [
    "probe_dns_lookup_time_seconds",
    "probe_duration_seconds",
    "probe_failed_due_to_regex",
    "probe_http_content_length",
    "probe_http_duration_seconds",
    "probe_http_redirects",
    "probe_http_ssl",
    "probe_http_status_code",
    "probe_http_uncompressed_body_length",
    "probe_http_version",
    "probe_ip_addr_hash",
    "probe_ip_protocol",
    "probe_success",
];

/// Families only present after a TLS handshake on the final response.
const TLS_FAMILIES: [&str; 5] = [
    "probe_ssl_earliest_cert_expiry",
    "probe_ssl_last_chain_expiry_timestamp_seconds",
    "probe_ssl_last_chain_info",
    "probe_tls_cipher_info",
    "probe_tls_version_info",
];

const PHASES: [&str; 5] = ["resolve", "connect", "tls", "processing", "transfer"];

/// A config with module `m` (prober http, `http:` block from `http`) plus `extra` top-level YAML.
fn config(http: &str, extra: &str) -> Config {
    let block: String = http.lines().map(|line| format!("      {line}\n")).collect();
    let text = format!("modules:\n  m:\n    prober: http\n    http:\n{block}{extra}");
    Config::parse(&text).unwrap_or_else(|err| panic!("config does not load: {err}\n{text}"))
}

async fn probe_with(http: &str, target: &str, hostname: Option<&str>, timeout: Duration) -> Outcome {
    let config = config(http, "");
    crate::support::module::run_with(&config, &config.modules["m"], target, hostname, timeout).await
}

async fn probe(http: &str, target: &str) -> Outcome {
    probe_with(http, target, None, Duration::from_secs(5)).await
}

fn gauge(outcome: &Outcome, name: &str) -> f64 {
    outcome.registry.get(name, &[]).unwrap_or_else(|| panic!("{name} missing:\n{}", outcome.registry.encode()))
}

fn assert_families(outcome: &Outcome, groups: &[&[&str]]) {
    let mut expected: BTreeSet<&str> = groups.iter().flat_map(|group| group.iter().copied()).collect();
    if outcome.error.is_some() {
        expected.insert("probe_failure_info");
    }
    let actual: BTreeSet<&str> = outcome.registry.names().collect();
    assert_eq!(actual, expected, "\n{}", outcome.registry.encode());
}

fn assert_phases_present(outcome: &Outcome) {
    for phase in PHASES {
        assert!(
            outcome.registry.get("probe_http_duration_seconds", &[("phase", phase)]).is_some(),
            "phase {phase} missing:\n{}",
            outcome.registry.encode()
        );
    }
}

fn phase(outcome: &Outcome, phase: &str) -> f64 {
    outcome.registry.get("probe_http_duration_seconds", &[("phase", phase)]).unwrap_or(f64::NAN)
}

/// Probes `target` (usually `/echo`, which answers with the request it got as
/// JSON) with a body regex, so the outcome says what the prober sent.
async fn echo_matches(http: &str, target: &str, pattern: &str) -> Outcome {
    let http = format!("{http}\nfail_if_body_not_matches_regexp: [{pattern:?}]");
    probe(&http, target).await
}

#[tokio::test]
async fn success_over_plain_http_has_blackbox_families() {
    let server = TestServer::http().await;
    let outcome = probe("preferred_ip_protocol: ip4", &server.url("/")).await;
    assert_eq!(failure(&outcome), None, "{:?}", outcome.log);
    assert_families(&outcome, &[&HTTP_FAMILIES, &["probe_http_last_modified_timestamp_seconds"]]);
    assert_phases_present(&outcome);
    assert_eq!(gauge(&outcome, "probe_http_status_code"), 200.0);
    assert_eq!(gauge(&outcome, "probe_http_version"), 1.1);
    assert_eq!(gauge(&outcome, "probe_http_ssl"), 0.0);
    assert_eq!(gauge(&outcome, "probe_http_redirects"), 0.0);
    assert_eq!(gauge(&outcome, "probe_http_content_length"), httpd::BODY.len() as f64);
    assert_eq!(gauge(&outcome, "probe_http_uncompressed_body_length"), httpd::BODY.len() as f64);
    assert_eq!(gauge(&outcome, "probe_http_last_modified_timestamp_seconds"), httpd::LAST_MODIFIED_UNIX);
    assert_eq!(gauge(&outcome, "probe_ip_protocol"), 4.0);
    assert_eq!(gauge(&outcome, "probe_ip_addr_hash"), 3_668_918_509.0);
    assert_eq!(phase(&outcome, "tls"), 0.0, "no TLS on plain HTTP");
    assert!(phase(&outcome, "connect") > 0.0 && phase(&outcome, "processing") > 0.0);
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn ipv6_target_is_bracketed_in_host() {
    let Some(server) = TestServer::http_ipv6().await else {
        eprintln!("skipping: no IPv6 loopback on this host");
        return;
    };
    let pattern = format!(r#"\["host","\[::1\]:{}"\]"#, server.addr.port());
    // Default preferred_ip_protocol (ip6).
    let outcome = echo_matches("", &server.url("/echo"), &pattern).await;
    assert_eq!(failure(&outcome), None, "{:?}", outcome.log);
    assert_eq!(gauge(&outcome, "probe_ip_protocol"), 6.0);
}

#[tokio::test]
async fn target_without_scheme_gets_http() {
    let server = TestServer::http().await;
    let outcome = probe("preferred_ip_protocol: ip4", &server.addr.to_string()).await;
    assert_eq!(failure(&outcome), None, "{:?}", outcome.log);
    assert_eq!(gauge(&outcome, "probe_http_status_code"), 200.0);
}

#[tokio::test]
async fn https_with_ca_file_emits_tls_families() {
    let certs = TestCerts::generate();
    let server = TestServer::https(certs.server_config(Leaf::Valid)).await;
    let http = format!("preferred_ip_protocol: ip4\ntls_config: {{ca_file: {:?}}}", certs.ca.cert_path);
    let outcome = probe(&http, &server.localhost_url("/")).await;
    assert_eq!(failure(&outcome), None, "{:?}", outcome.log);
    assert_families(&outcome, &[&HTTP_FAMILIES, &TLS_FAMILIES, &["probe_http_last_modified_timestamp_seconds"]]);
    assert_eq!(gauge(&outcome, "probe_http_ssl"), 1.0);
    assert_eq!(gauge(&outcome, "probe_http_version"), 2.0, "h2 is negotiated by ALPN by default");
    assert!(phase(&outcome, "tls") > 0.0);
    let leaf_expiry = unix_time(certs.valid.not_after);
    assert_eq!(gauge(&outcome, "probe_ssl_earliest_cert_expiry"), leaf_expiry);
    assert_eq!(
        gauge(&outcome, "probe_ssl_last_chain_expiry_timestamp_seconds"),
        leaf_expiry,
        "the CA outlives the leaf"
    );
    let encoded = outcome.registry.encode();
    assert!(encoded.contains("probe_tls_version_info{version=\"TLS 1.3\"} 1"), "{encoded}");
    assert!(encoded.contains("probe_tls_cipher_info{cipher=\"TLS_"), "{encoded}");
    assert!(encoded.contains("subject=\"CN=checkit valid\""), "{encoded}");
}

#[tokio::test]
async fn http2_can_be_turned_off() {
    let certs = TestCerts::generate();
    let server = TestServer::https(certs.server_config(Leaf::Valid)).await;
    let http = format!(
        "preferred_ip_protocol: ip4\nenable_http2: false\ntls_config: {{ca_file: {:?}}}\nvalid_http_versions: [HTTP/1.1]",
        certs.ca.cert_path
    );
    let outcome = probe(&http, &server.localhost_url("/")).await;
    assert_eq!(failure(&outcome), None, "{:?}", outcome.log);
    assert_eq!(gauge(&outcome, "probe_http_version"), 1.1);
}

#[tokio::test]
async fn expired_and_untrusted_certificates_fail_without_tls_families() {
    let certs = TestCerts::generate();
    for (leaf, reason) in [(Leaf::Expired, Reason::TlsExpired), (Leaf::Untrusted, Reason::TlsUntrusted)] {
        let server = TestServer::https(certs.server_config(leaf)).await;
        let http = format!("preferred_ip_protocol: ip4\ntls_config: {{ca_file: {:?}}}", certs.ca.cert_path);
        let outcome = probe(&http, &server.localhost_url("/")).await;
        assert_eq!(failure(&outcome), Some((Phase::Tls, reason)), "{leaf:?}");
        assert_families(&outcome, &[&HTTP_FAMILIES]);
        assert_eq!(gauge(&outcome, "probe_http_status_code"), 0.0);
        assert_eq!(gauge(&outcome, "probe_http_ssl"), 0.0);
        // blackbox adds connect and tls only once a connection is established.
        assert_eq!(phase(&outcome, "connect"), 0.0);
        assert_eq!(phase(&outcome, "tls"), 0.0);
    }
}

#[tokio::test]
async fn insecure_skip_verify_exposes_an_expired_certificate() {
    let certs = TestCerts::generate();
    let server = TestServer::https(certs.server_config(Leaf::Expired)).await;
    let outcome = probe("preferred_ip_protocol: ip4\ntls_config: {insecure_skip_verify: true}", &server.url("/")).await;
    assert_eq!(failure(&outcome), None, "{:?}", outcome.log);
    assert_families(&outcome, &[&HTTP_FAMILIES, &TLS_FAMILIES, &["probe_http_last_modified_timestamp_seconds"]]);
    let expiry = unix_time(certs.expired.not_after);
    assert_eq!(gauge(&outcome, "probe_ssl_earliest_cert_expiry"), expiry);
    assert_eq!(gauge(&outcome, "probe_ssl_last_chain_expiry_timestamp_seconds"), -62_135_596_800.0, "Go's zero time");
}

#[tokio::test]
async fn redirect_chain_is_followed_with_a_connection_per_hop() {
    let server = TestServer::http().await;
    let outcome = probe("preferred_ip_protocol: ip4", &server.url("/redirect/3")).await;
    assert_eq!(failure(&outcome), None, "{:?}", outcome.log);
    assert_eq!(gauge(&outcome, "probe_http_redirects"), 4.0);
    assert_eq!(gauge(&outcome, "probe_http_status_code"), 200.0);
    assert_families(&outcome, &[&HTTP_FAMILIES, &["probe_http_last_modified_timestamp_seconds"]]);
    assert_eq!(server.connections(), 5, "no keep-alive reuse across hops");
}

#[tokio::test]
async fn redirect_loop_stops_after_ten() {
    let server = TestServer::http().await;
    let outcome = probe("preferred_ip_protocol: ip4", &server.url("/loop")).await;
    assert_eq!(failure(&outcome), Some((Phase::Check, Reason::Status)));
    assert_eq!(gauge(&outcome, "probe_http_redirects"), 11.0, "Go counts the refused 11th redirect");
    assert_eq!(gauge(&outcome, "probe_http_status_code"), 302.0);
    assert_eq!(server.connections(), 11);
}

#[tokio::test]
async fn redirects_can_be_refused() {
    let server = TestServer::http().await;
    for http in ["follow_redirects: false", "no_follow_redirects: true"] {
        let outcome = probe(&format!("preferred_ip_protocol: ip4\n{http}"), &server.url("/redirect/0")).await;
        assert_eq!(failure(&outcome), Some((Phase::Check, Reason::Status)), "{http}");
        assert_eq!(gauge(&outcome, "probe_http_redirects"), 1.0, "{http}");
        assert_eq!(gauge(&outcome, "probe_http_status_code"), 302.0, "{http}");
    }
    let http = "preferred_ip_protocol: ip4\nfollow_redirects: false\nvalid_status_codes: [302]";
    let outcome = probe(http, &server.url("/redirect/0")).await;
    assert_eq!(failure(&outcome), None);
}

#[tokio::test]
async fn cookies_survive_redirects() {
    let server = TestServer::http().await;
    let outcome = probe("preferred_ip_protocol: ip4", &server.url("/cookie/set")).await;
    assert_eq!(failure(&outcome), None, "{:?}", outcome.log);
    assert_eq!(gauge(&outcome, "probe_http_status_code"), 200.0);
    // A second probe starts with an empty jar.
    let outcome = probe("preferred_ip_protocol: ip4", &server.url("/cookie/check")).await;
    assert_eq!(gauge(&outcome, "probe_http_status_code"), 403.0);
}

#[tokio::test]
async fn cross_host_redirect_drops_server_name_and_takes_the_new_host() {
    let certs = TestCerts::generate();
    let server = TestServer::https(certs.server_config(Leaf::Valid)).await;
    let target = format!("{}?url={}", server.localhost_url("/to"), server.url("/echo"));
    let http = format!(
        "preferred_ip_protocol: ip4\ntls_config: {{ca_file: {:?}, server_name: localhost}}",
        certs.ca.cert_path
    );
    // The second hop goes to 127.0.0.1: no SNI (an IP), and (HTTP/2) the new authority.
    let outcome = echo_matches(&http, &target, r#""sni":null"#).await;
    assert_eq!(failure(&outcome), None, "server name kept across hosts: {:?}", outcome.log);
    assert_eq!(gauge(&outcome, "probe_http_redirects"), 1.0);
    let authority = format!(r#""authority":"127\.0\.0\.1:{}""#, server.addr.port());
    let outcome = echo_matches(&http, &target, &authority).await;
    assert_eq!(failure(&outcome), None, "{:?}", outcome.log);
    // The same redirect target without the redirect: the configured name is sent.
    let outcome = echo_matches(&http, &server.url("/echo"), r#""sni":"localhost""#).await;
    assert_eq!(failure(&outcome), None, "{:?}", outcome.log);
}

#[tokio::test]
async fn redirect_to_a_denied_address_is_refused_before_connecting() {
    let server = TestServer::http().await;
    let config = config("preferred_ip_protocol: ip4", "exporter:\n  targets:\n    allow: [127.0.0.1/32]\n");
    let target = format!("{}?url=http://127.0.0.2:{}/", server.url("/to"), server.addr.port());
    let outcome =
        crate::support::module::run_with(&config, &config.modules["m"], &target, None, Duration::from_secs(5)).await;
    assert_eq!(failure(&outcome), Some((Phase::Resolve, Reason::Denied)));
    assert_eq!(gauge(&outcome, "probe_http_redirects"), 1.0);
    assert_eq!(gauge(&outcome, "probe_http_status_code"), 0.0, "no final response");
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn body_and_header_regexes() {
    let server = TestServer::http().await;
    let url = server.url("/headers");
    for (http, expected) in [
        ("fail_if_body_not_matches_regexp: [\"^headers\"]", None),
        ("fail_if_body_matches_regexp: [\"head\"]", Some(Reason::Regex)),
        ("fail_if_body_not_matches_regexp: [\"absent\"]", Some(Reason::Regex)),
        ("fail_if_header_matches: [{header: x-multi, regexp: \"^two$\"}]", Some(Reason::Regex)),
        ("fail_if_header_not_matches: [{header: X-Multi, regexp: \"^two$\"}]", None),
        ("fail_if_header_not_matches: [{header: X-Absent, regexp: \".\"}]", Some(Reason::Regex)),
        ("fail_if_header_not_matches: [{header: X-Absent, regexp: \".\", allow_missing: true}]", None),
    ] {
        let outcome = probe(&format!("preferred_ip_protocol: ip4\n{http}"), &url).await;
        assert_eq!(failure(&outcome).map(|(_, reason)| reason), expected, "{http}");
        assert_eq!(gauge(&outcome, "probe_failed_due_to_regex"), if expected.is_some() { 1.0 } else { 0.0 }, "{http}");
        assert_eq!(gauge(&outcome, "probe_http_status_code"), 200.0, "{http}");
        assert_families(&outcome, &[&HTTP_FAMILIES]);
    }
}

#[tokio::test]
async fn valid_status_codes_take_lists_classes_and_ranges() {
    let server = TestServer::http().await;
    for (http, path, ok) in [
        ("", "/status/404", false),
        ("valid_status_codes: [404]", "/status/404", true),
        ("valid_status_codes: [\"4xx\"]", "/status/418", true),
        ("valid_status_codes: [\"200-204\", 500]", "/status/204", true),
        ("valid_status_codes: [\"200-204\", 500]", "/status/205", false),
        ("", "/status/204", true),
    ] {
        let outcome = probe(&format!("preferred_ip_protocol: ip4\n{http}"), &server.url(path)).await;
        let expected = if ok { None } else { Some((Phase::Check, Reason::Status)) };
        assert_eq!(failure(&outcome), expected, "{http} {path}");
    }
}

#[tokio::test]
async fn valid_http_versions_compare_exactly() {
    let server = TestServer::http().await;
    let outcome = probe("preferred_ip_protocol: ip4\nvalid_http_versions: [HTTP/1.1]", &server.url("/")).await;
    assert_eq!(failure(&outcome), None);
    let outcome = probe("preferred_ip_protocol: ip4\nvalid_http_versions: [HTTP/2.0]", &server.url("/")).await;
    assert_eq!(failure(&outcome), Some((Phase::Check, Reason::HttpVersion)));
    assert_eq!(gauge(&outcome, "probe_http_version"), 1.1);
}

#[tokio::test]
async fn ssl_policy() {
    let certs = TestCerts::generate();
    let tls = TestServer::https(certs.server_config(Leaf::Valid)).await;
    let plain = TestServer::http().await;
    let insecure = "preferred_ip_protocol: ip4\ntls_config: {insecure_skip_verify: true}";
    let outcome = probe(&format!("{insecure}\nfail_if_ssl: true"), &tls.url("/")).await;
    assert_eq!(failure(&outcome), Some((Phase::Check, Reason::TlsPolicy)));
    let outcome = probe(&format!("{insecure}\nfail_if_not_ssl: true"), &plain.url("/")).await;
    assert_eq!(failure(&outcome), Some((Phase::Check, Reason::TlsPolicy)));
    let outcome = probe(&format!("{insecure}\nfail_if_not_ssl: true"), &tls.url("/")).await;
    assert_eq!(failure(&outcome), None);
}

#[tokio::test]
async fn gzip_bodies_are_decoded_when_configured() {
    let server = TestServer::http().await;
    let http = "preferred_ip_protocol: ip4\ncompression: gzip\nheaders: {Accept-Encoding: gzip}\nfail_if_body_not_matches_regexp: [\"hello from\"]";
    let outcome = probe(http, &server.url("/gzip")).await;
    assert_eq!(failure(&outcome), None, "{:?}", outcome.log);
    assert_eq!(gauge(&outcome, "probe_http_uncompressed_body_length"), httpd::BODY.len() as f64);
    assert!(gauge(&outcome, "probe_http_content_length") < httpd::BODY.len() as f64 + 30.0);
    // A body that is not gzip fails the probe, as in blackbox.
    let outcome = probe("preferred_ip_protocol: ip4\ncompression: gzip", &server.url("/")).await;
    assert_eq!(failure(&outcome), Some((Phase::Transfer, Reason::Body)));
}

#[tokio::test]
async fn body_size_limit_applies_to_the_decoded_body() {
    let server = TestServer::http().await;
    let outcome = probe("preferred_ip_protocol: ip4\nbody_size_limit: 1KB", &server.url("/big?size=1024")).await;
    assert_eq!(failure(&outcome), None);
    assert_eq!(gauge(&outcome, "probe_http_uncompressed_body_length"), 1024.0);
    let outcome = probe("preferred_ip_protocol: ip4\nbody_size_limit: 1KB", &server.url("/big?size=1025")).await;
    assert_eq!(failure(&outcome), Some((Phase::Transfer, Reason::Body)));
    assert_eq!(gauge(&outcome, "probe_http_uncompressed_body_length"), 1024.0);
    assert_eq!(gauge(&outcome, "probe_http_status_code"), 200.0);
}

#[tokio::test]
async fn credentials_and_headers_are_sent() {
    let server = TestServer::http().await;
    let url = server.url("/echo");
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, "from-file\n").unwrap();
    for (http, pattern) in [
        // base64("user:pass")
        ("basic_auth: {username: user, password: pass}", r#"\["authorization","Basic dXNlcjpwYXNz"\]"#.to_string()),
        (
            &*format!("basic_auth: {{username: user, password_file: {password_file:?}}}"),
            // base64("user:from-file")
            r#"\["authorization","Basic dXNlcjpmcm9tLWZpbGU="\]"#.to_string(),
        ),
        ("bearer_token: t0k3n", r#"\["authorization","Bearer t0k3n"\]"#.to_string()),
        ("authorization: {type: Token, credentials: abc}", r#"\["authorization","Token abc"\]"#.to_string()),
        ("", format!(r#"\["user-agent","checkit/{}"\]"#, env!("CARGO_PKG_VERSION"))),
        ("enable_http2: false", r#"\["connection","close"\]"#.to_string()),
        (
            "headers: {User-Agent: Blackbox-Exporter/0.28.0}",
            r#"\["user-agent","Blackbox-Exporter/0.28.0"\]"#.to_string(),
        ),
        (
            "http_headers: {X-Extra: {values: [v1], secrets: [s1]}}",
            r#"\["x-extra","v1"\],\["x-extra","s1"\]"#.to_string(),
        ),
    ] {
        let outcome = echo_matches(&format!("preferred_ip_protocol: ip4\n{http}"), &url, &pattern).await;
        assert_eq!(failure(&outcome), None, "{http}: {:?}", outcome.log);
    }
    let outcome =
        probe("preferred_ip_protocol: ip4\nbasic_auth: {username: u, password_file: /nonexistent}", &url).await;
    assert_eq!(failure(&outcome), Some((Phase::Auth, Reason::Config)));
}

#[tokio::test]
async fn post_sends_the_body_and_307_keeps_it() {
    let server = TestServer::http().await;
    let http = "preferred_ip_protocol: ip4\nmethod: POST\nbody: '{\"ping\": 1}'";
    let outcome = echo_matches(http, &server.url("/echo"), r#""body":"\{\\"ping\\": 1\}".*"method":"POST""#).await;
    assert_eq!(failure(&outcome), None, "{:?}", outcome.log);
    let target = format!("{}?url=/echo", server.url("/to307"));
    let outcome = echo_matches(http, &target, r#""body":"\{\\"ping\\": 1\}".*"method":"POST""#).await;
    assert_eq!(failure(&outcome), None, "{:?}", outcome.log);
    let target = format!("{}?url=/echo", server.url("/to"));
    let outcome = echo_matches(http, &target, r#""body":"".*"method":"GET""#).await;
    assert_eq!(failure(&outcome), None, "302 turns POST into GET: {:?}", outcome.log);
    let dir = tempfile::tempdir().unwrap();
    let body_file = dir.path().join("body.txt");
    std::fs::write(&body_file, "from a file").unwrap();
    let http = format!("preferred_ip_protocol: ip4\nmethod: PUT\nbody_file: {body_file:?}");
    let outcome = echo_matches(&http, &server.url("/echo"), r#""body":"from a file".*"method":"PUT""#).await;
    assert_eq!(failure(&outcome), None, "{:?}", outcome.log);
}

#[tokio::test]
async fn hostname_parameter_sets_host_and_server_name() {
    let certs = TestCerts::generate();
    let server = TestServer::https(certs.server_config(Leaf::Valid)).await;
    let http = format!(
        "preferred_ip_protocol: ip4\nenable_http2: false\ntls_config: {{ca_file: {:?}}}\nfail_if_body_not_matches_regexp: ['\"host\",\"localhost\"', '\"sni\":\"localhost\"']",
        certs.ca.cert_path
    );
    let outcome = probe_with(&http, &server.url("/echo"), Some("localhost"), Duration::from_secs(5)).await;
    assert_eq!(failure(&outcome), None, "{:?}", outcome.log);
    // A Host header in the module does the same.
    let http = format!("{http}\nheaders: {{Host: localhost}}");
    let outcome = probe(&http, &server.url("/echo")).await;
    assert_eq!(failure(&outcome), None, "{:?}", outcome.log);
}

#[tokio::test]
async fn oauth2_client_credentials_token_is_used() {
    let server = TestServer::http().await;
    let http = format!(
        "preferred_ip_protocol: ip4\noauth2: {{client_id: probe, client_secret: probe-secret, token_url: {:?}, scopes: [read, write], endpoint_params: {{audience: probes}}}}",
        server.url("/token")
    );
    let pattern = format!(r#"\["authorization","Bearer {}"\]"#, httpd::TOKEN);
    let outcome = echo_matches(&http, &server.url("/echo"), &pattern).await;
    assert_eq!(failure(&outcome), None, "{:?}", outcome.log);
    let http = http.replace("probe-secret", "wrong");
    let outcome = probe(&http, &server.url("/echo")).await;
    assert_eq!(failure(&outcome), Some((Phase::Auth, Reason::AuthFailed)));
    assert_eq!(gauge(&outcome, "probe_http_status_code"), 0.0);
}

#[tokio::test]
async fn closed_port_is_refused() {
    let addr = closed_port();
    let outcome = probe("preferred_ip_protocol: ip4", &format!("http://{addr}/")).await;
    assert_eq!(failure(&outcome), Some((Phase::Connect, Reason::Refused)));
    assert_families(&outcome, &[&HTTP_FAMILIES]);
    assert_phases_present(&outcome);
    assert_eq!(gauge(&outcome, "probe_http_status_code"), 0.0);
    assert_eq!(gauge(&outcome, "probe_http_content_length"), 0.0);
    assert_eq!(gauge(&outcome, "probe_http_version"), 0.0);
}

#[tokio::test]
async fn unresolvable_name_fails_in_resolve_with_only_the_resolve_phase() {
    let outcome = probe("preferred_ip_protocol: ip4", "http://name.invalid/").await;
    assert_eq!(failure(&outcome), Some((Phase::Resolve, Reason::Resolve)));
    assert_eq!(gauge(&outcome, "probe_ip_protocol"), 0.0);
    assert!(outcome.registry.get("probe_http_duration_seconds", &[("phase", "resolve")]).is_some());
    assert!(outcome.registry.get("probe_http_duration_seconds", &[("phase", "connect")]).is_none());
}

#[tokio::test]
async fn silent_server_times_out_within_the_deadline() {
    let server = hang_server().await;
    let timeout = Duration::from_secs(1);
    let started = Instant::now();
    let outcome = probe_with("preferred_ip_protocol: ip4", &format!("http://{}/", server.addr), None, timeout).await;
    assert_eq!(failure(&outcome), Some((Phase::Processing, Reason::Timeout)));
    assert!(started.elapsed() < timeout + Duration::from_secs(2), "took {:?}", started.elapsed());
    assert_eq!(gauge(&outcome, "probe_http_status_code"), 0.0);
    assert!(phase(&outcome, "connect") > 0.0, "the connection was made");
    assert_eq!(phase(&outcome, "processing"), 0.0, "no response, no processing time (as blackbox)");
    assert_families(&outcome, &[&HTTP_FAMILIES]);
}

#[tokio::test]
async fn stalled_body_times_out_in_transfer_with_the_response_metrics() {
    let server = TestServer::http().await;
    let outcome =
        probe_with("preferred_ip_protocol: ip4", &server.url("/stall-body"), None, Duration::from_secs(1)).await;
    assert_eq!(failure(&outcome), Some((Phase::Transfer, Reason::Timeout)));
    assert_eq!(gauge(&outcome, "probe_http_status_code"), 200.0);
    assert_eq!(gauge(&outcome, "probe_http_content_length"), -1.0, "chunked");
    assert!(phase(&outcome, "transfer") > 0.5);
}

/// A minimal HTTP proxy: `CONNECT` tunnels and absolute-form requests, each
/// recorded as its first line.
async fn start_proxy()
-> (std::net::SocketAddr, std::sync::Arc<std::sync::Mutex<Vec<String>>>, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let task = tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut client = BufReader::new(client);
                let mut head = Vec::new();
                loop {
                    let mut line = String::new();
                    if client.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let done = line == "\r\n";
                    head.push(line);
                    if done {
                        break;
                    }
                }
                let first = head[0].trim().to_string();
                log.lock().expect("lock").push(first.clone());
                let mut parts = first.split_whitespace();
                let (method, target) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
                if method == "CONNECT" {
                    let Ok(mut upstream) = tokio::net::TcpStream::connect(target).await else { return };
                    let mut client = client.into_inner();
                    client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").await.expect("reply");
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                } else {
                    let url = url::Url::parse(target).expect("absolute-form target");
                    let authority =
                        format!("{}:{}", url.host_str().expect("host"), url.port_or_known_default().expect("port"));
                    let Ok(mut upstream) = tokio::net::TcpStream::connect(authority).await else { return };
                    let path = match url.query() {
                        Some(query) => format!("{}?{query}", url.path()),
                        None => url.path().to_string(),
                    };
                    let mut request = format!("{method} {path} HTTP/1.1\r\n");
                    for line in &head[1..] {
                        if !line.to_ascii_lowercase().starts_with("proxy-authorization") {
                            request.push_str(line);
                        }
                    }
                    upstream.write_all(request.as_bytes()).await.expect("forward");
                    let mut client = client.into_inner();
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                }
            });
        }
    });
    (addr, seen, task)
}

#[tokio::test]
async fn proxies_get_absolute_form_and_connect() {
    let (proxy, seen, task) = start_proxy().await;
    let plain = TestServer::http().await;
    let http = format!("preferred_ip_protocol: ip4\nproxy_url: http://user:pw@{proxy}");
    let outcome = probe(&http, &plain.url("/")).await;
    assert_eq!(failure(&outcome), None, "{:?}", outcome.log);
    assert_eq!(seen.lock().unwrap().as_slice(), [format!("GET http://127.0.0.1:{}/ HTTP/1.1", plain.addr.port())]);

    let certs = TestCerts::generate();
    let tls = TestServer::https(certs.server_config(Leaf::Valid)).await;
    let http = format!(
        "preferred_ip_protocol: ip4\nproxy_url: http://{proxy}\nproxy_connect_header: {{X-Tunnel: [yes]}}\ntls_config: {{ca_file: {:?}}}",
        certs.ca.cert_path
    );
    let outcome = probe(&http, &tls.localhost_url("/")).await;
    assert_eq!(failure(&outcome), None, "{:?}", outcome.log);
    assert_eq!(gauge(&outcome, "probe_http_ssl"), 1.0);
    assert_eq!(seen.lock().unwrap()[1], format!("CONNECT 127.0.0.1:{} HTTP/1.1", tls.addr.port()));

    // The proxy resolves: no lookup, no probe_ip_* families, the name goes to the proxy.
    let http = format!("preferred_ip_protocol: ip4\nproxy_url: http://{proxy}\nskip_resolve_phase_with_proxy: true");
    let outcome = probe(&http, &plain.localhost_url("/")).await;
    assert_eq!(failure(&outcome), None, "{:?}", outcome.log);
    assert!(!outcome.registry.contains("probe_ip_protocol"));
    assert!(outcome.registry.get("probe_http_duration_seconds", &[("phase", "resolve")]).is_none());
    assert_eq!(seen.lock().unwrap()[2], format!("GET http://localhost:{}/ HTTP/1.1", plain.addr.port()));
    task.abort();
}

#[tokio::test]
async fn nginx_redirects_keep_alive_and_http2() {
    let nginx = crate::peer!(Nginx::start(NginxOpts::default()).await);
    let outcome = probe("preferred_ip_protocol: ip4", &nginx.url("/redirect-chain")).await;
    assert_eq!(failure(&outcome), None, "{:?}\n{}", outcome.log, nginx.diagnostics());
    assert_eq!(gauge(&outcome, "probe_http_redirects"), 3.0);
    assert_eq!(gauge(&outcome, "probe_http_uncompressed_body_length"), NGINX_BODY.len() as f64);
    // nginx keeps connections alive unless asked not to; every hop must have
    // asked (Connection: close) and used its own connection.
    // nginx writes a line when it finalizes a request, which may be just after
    // the client has read the response: wait (bounded) for the fourth line.
    let mut log = String::new();
    for _ in 0..50 {
        log = std::fs::read_to_string(&nginx.access_log).expect("access log");
        if log.lines().count() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let hops: Vec<&str> = log.lines().filter(|line| line.contains("/redirect-chain") || line.contains(" / ")).collect();
    assert_eq!(hops.len(), 4, "{log}");
    let connections: BTreeSet<&str> = hops.iter().map(|line| line.split(' ').next().unwrap_or_default()).collect();
    assert_eq!(connections.len(), 4, "a new connection per hop: {log}");
    assert!(hops.iter().all(|line| line.contains("requests=1 ") && line.contains("connection=close")), "{log}");

    let outcome = probe("preferred_ip_protocol: ip4", &nginx.url("/static.txt")).await;
    assert_eq!(gauge(&outcome, "probe_http_last_modified_timestamp_seconds"), NGINX_LAST_MODIFIED_UNIX as f64);
    let outcome = probe("preferred_ip_protocol: ip4\nbody_size_limit: 512KB", &nginx.url("/big")).await;
    assert_eq!(failure(&outcome), Some((Phase::Transfer, Reason::Body)));
    let outcome = probe("preferred_ip_protocol: ip4", &nginx.url("/big")).await;
    assert_eq!(gauge(&outcome, "probe_http_content_length"), NGINX_BIG_SIZE as f64);

    let http = format!("preferred_ip_protocol: ip4\ntls_config: {{ca_file: {:?}}}", nginx.certs.ca.cert_path);
    let outcome = probe(&http, &nginx.tls_url("/")).await;
    assert_eq!(failure(&outcome), None, "{:?}", outcome.log);
    assert_eq!(gauge(&outcome, "probe_http_version"), 2.0);
    assert_families(&outcome, &[&HTTP_FAMILIES, &TLS_FAMILIES, &["probe_http_last_modified_timestamp_seconds"]]);

    let (user, password) = &nginx.basic_auth;
    let http = format!("preferred_ip_protocol: ip4\nbasic_auth: {{username: {user}, password: {password}}}");
    let outcome = probe(&http, &nginx.url("/basic-auth")).await;
    assert_eq!(failure(&outcome), None);
    let outcome = probe("preferred_ip_protocol: ip4", &nginx.url("/basic-auth")).await;
    assert_eq!(gauge(&outcome, "probe_http_status_code"), 401.0);
}

#[test]
fn shipped_example_modules_load() {
    let examples = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/examples.d/http.yml"))
        .expect("config/examples.d/http.yml");
    let config = Config::parse(&format!("modules:\n{examples}")).unwrap_or_else(|err| panic!("{err}"));
    assert!(config.modules.len() >= 6);
    assert!(!config.modules["http_2xx"].http.tls_config.insecure_skip_verify);
    use checkit::probe::http::StatusCodes;
    let codes = &config.modules["http_post_json"].http.valid_status_codes;
    assert_eq!(codes, &[StatusCodes::Code(200), StatusCodes::Range(201, 204)]);
    assert_eq!(checkit::probe::http::host_header(&config.modules["http_post_json"].http), Some("api.example.com"));
}
