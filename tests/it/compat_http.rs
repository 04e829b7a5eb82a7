//! Differential test: Debian's blackbox_exporter 0.23 and checkit's HTTP
//! prober probe the same loopback targets with the same config; the family
//! names, label names, HELP strings and the key values must agree.

use crate::support::app::{Family, parse_exposition};
use crate::support::httpd::TestServer;
use crate::support::peers::BlackboxExporter;
use crate::support::{Leaf, TestCerts, closed_port, hang_server};
use checkit::settings::Config;
use std::collections::{BTreeMap, BTreeSet};

/// Families checkit emits that blackbox 0.23 does not, with the reason.
const CHECKIT_EXTRAS: [(&str, &str); 2] = [
    ("probe_failure_info", "checkit's bounded failure reason (blackbox-compat §13.2), only on failure"),
    ("probe_tls_cipher_info", "added in blackbox 0.26 (#1203); 0.28 emits it on every HTTPS probe"),
];

/// Label names checkit emits that blackbox 0.23 does not, with the reason.
const LABEL_EXTRAS: [(&str, &str, &str); 1] =
    [("probe_ssl_last_chain_info", "serialnumber", "added in blackbox 0.26 (#1333)")];

/// Gauges whose values must be identical (the deterministic ones).
const SAME_VALUES: [&str; 13] = [
    "probe_success",
    "probe_http_status_code",
    "probe_http_redirects",
    "probe_http_ssl",
    "probe_ip_protocol",
    "probe_http_version",
    "probe_failed_due_to_regex",
    "probe_ip_addr_hash",
    "probe_http_content_length",
    "probe_http_uncompressed_body_length",
    "probe_http_last_modified_timestamp_seconds",
    "probe_ssl_earliest_cert_expiry",
    "probe_ssl_last_chain_expiry_timestamp_seconds",
];

/// Info families whose label values must be identical.
const SAME_LABEL_VALUES: [&str; 2] = ["probe_ssl_last_chain_info", "probe_tls_version_info"];

fn label_names(family: &Family) -> BTreeSet<String> {
    family.samples.iter().flat_map(|(labels, _)| labels.keys().cloned()).collect()
}

fn compare(case: &str, checkit: &BTreeMap<String, Family>, blackbox: &BTreeMap<String, Family>) {
    let extras: BTreeSet<&str> = CHECKIT_EXTRAS.iter().map(|(name, _)| *name).collect();
    let ours: BTreeSet<&str> = checkit.keys().map(String::as_str).filter(|name| !extras.contains(name)).collect();
    let theirs: BTreeSet<&str> = blackbox.keys().map(String::as_str).collect();
    assert_eq!(ours, theirs, "{case}: family names differ");
    for (name, family) in blackbox {
        let ours = &checkit[name];
        assert_eq!(ours.help, family.help, "{case}: HELP of {name}");
        assert_eq!(ours.kind, family.kind, "{case}: TYPE of {name}");
        let mut our_labels = label_names(ours);
        for (family_name, label, _) in LABEL_EXTRAS {
            if family_name == name {
                our_labels.remove(label);
            }
        }
        assert_eq!(our_labels, label_names(family), "{case}: label names of {name}");
        if name == "probe_http_duration_seconds" {
            let phases = |family: &Family| -> BTreeSet<String> {
                family.samples.iter().filter_map(|(labels, _)| labels.get("phase").cloned()).collect()
            };
            assert_eq!(phases(ours), phases(family), "{case}: phases");
        }
    }
    for name in SAME_LABEL_VALUES {
        let labels = |families: &BTreeMap<String, Family>| {
            families.get(name).map(|family| {
                let mut labels = family.samples[0].0.clone();
                labels.remove("serialnumber");
                labels
            })
        };
        assert_eq!(labels(checkit), labels(blackbox), "{case}: labels of {name}");
    }
    for name in SAME_VALUES {
        let value = |families: &BTreeMap<String, Family>| families.get(name).map(|family| family.samples[0].1);
        assert_eq!(value(checkit), value(blackbox), "{case}: value of {name}");
    }
}

#[tokio::test]
async fn checkit_matches_blackbox_0_23_on_http() {
    let certs = TestCerts::generate();
    let yaml = format!(
        r#"modules:
  plain:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
  insecure:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      tls_config:
        insecure_skip_verify: true
  verify:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      tls_config:
        ca_file: {ca:?}
  body_regex:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      fail_if_body_matches_regexp: ["hello"]
  header_regex:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      fail_if_header_not_matches: [{{header: X-Multi, regexp: "^three$"}}]
  no_follow:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      follow_redirects: false
  gzip:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      compression: gzip
      headers: {{Accept-Encoding: gzip}}
  limited:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      body_size_limit: 1KB
  quick:
    prober: http
    timeout: 1s
    http:
      preferred_ip_protocol: ip4
"#,
        ca = certs.ca.cert_path
    );
    let blackbox = crate::peer!(BlackboxExporter::start(&yaml).await);
    let config = Config::parse(&yaml).expect("checkit loads the blackbox config");
    let plain = TestServer::http().await;
    let valid = TestServer::https(certs.server_config(Leaf::Valid)).await;
    let untrusted = TestServer::https(certs.server_config(Leaf::Untrusted)).await;
    let refused = closed_port();
    let hang = hang_server().await;
    let cases = [
        ("success", "plain", plain.url("/")),
        ("404", "plain", plain.url("/status/404")),
        ("redirect", "plain", plain.url("/redirect/1")),
        ("tls insecure", "insecure", valid.url("/")),
        ("tls verified", "verify", valid.localhost_url("/")),
        ("tls untrusted", "verify", untrusted.localhost_url("/")),
        ("refused", "plain", format!("http://{refused}/")),
        ("body regex failure", "body_regex", plain.url("/")),
        ("no scheme", "plain", plain.addr.to_string()),
        ("header regex failure", "header_regex", plain.url("/headers")),
        ("redirect loop", "plain", plain.url("/loop")),
        ("redirect not followed", "no_follow", plain.url("/redirect/0")),
        ("gzip", "gzip", plain.url("/gzip")),
        ("gzip expected, identity sent", "gzip", plain.url("/")),
        ("body size limit", "limited", plain.url("/big?size=1025")),
        ("silent server", "quick", format!("http://{}/", hang.addr)),
        ("stalled body", "quick", plain.url("/stall-body")),
        ("cookies across redirects", "plain", plain.url("/cookie/set")),
        ("cross-host redirect", "plain", format!("{}?url={}", plain.url("/to"), plain.localhost_url("/"))),
        ("no content", "plain", plain.url("/status/204")),
    ];
    for (case, module, target) in cases {
        let (status, body) = blackbox.probe(&target, module).await;
        assert_eq!(status, 200, "{case}: {body}\n{}", blackbox.diagnostics());
        let theirs = parse_exposition(&body);
        // Without a scrape-timeout header both use min(module timeout, 120 s − 0.5 s).
        let module = &config.modules[module];
        let timeout = checkit::probe::effective_timeout(module.timeout.get(), None, 0.5);
        let outcome = crate::support::module::run_with(&config, module, &target, None, timeout).await;
        let ours = parse_exposition(&outcome.registry.encode());
        compare(case, &ours, &theirs);
    }
    // Sanity: the cases really differ from each other.
    let success = parse_exposition(&blackbox.probe(&plain.url("/"), "plain").await.1);
    let failed = parse_exposition(&blackbox.probe(&format!("http://{refused}/"), "plain").await.1);
    assert_ne!(success.get("probe_success"), failed.get("probe_success"), "{}", blackbox.diagnostics());
}
