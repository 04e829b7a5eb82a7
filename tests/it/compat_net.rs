//! Differential test: Debian's blackbox_exporter (0.23) and checkit's
//! `probe::run` probe the same targets with the same blackbox.yml, and their
//! `/probe` outputs must agree on family names, label names, HELP strings and
//! the values that do not depend on timing.

use crate::peer;
use crate::support::app::{Family, parse_exposition};
use crate::support::peers::{BlackboxExporter, DNS_ZONE, Dnsmasq, DnsmasqOpts};
use crate::support::{ScriptStep, closed_port, hang_server, scripted_line_server};
use checkit::settings::Config;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Families checkit may emit that blackbox 0.23 does not, and why.
const ALLOWED_EXTRAS: &[(&str, &str)] = &[
    ("probe_failure_info", "checkit's bounded failure reason, present only on failure"),
    ("probe_failed_due_to_bytes", "added in blackbox 0.28 with expect_bytes (#1441); 0.23 predates it"),
];

/// Values that must be identical (the rest are durations or hashes of time).
const SAME_VALUES: &[&str] = &[
    "probe_success",
    "probe_ip_protocol",
    "probe_ip_addr_hash",
    "probe_failed_due_to_regex",
    "probe_dns_query_succeeded",
    "probe_dns_answer_rrs",
    "probe_dns_authority_rrs",
    "probe_dns_additional_rrs",
    "probe_dns_serial",
    "probe_icmp_reply_hop_limit",
];

fn config_yaml() -> String {
    format!(
        r#"modules:
  tcp_connect:
    prober: tcp
    timeout: 5s
    tcp:
      preferred_ip_protocol: ip4
  tcp_ssh_banner:
    prober: tcp
    timeout: 5s
    tcp:
      preferred_ip_protocol: ip4
      query_response:
        - expect: "^SSH-2.0-([^ -]+)"
  icmp:
    prober: icmp
    timeout: 5s
    icmp:
      preferred_ip_protocol: ip4
  dns_a:
    prober: dns
    timeout: 5s
    dns:
      preferred_ip_protocol: ip4
      query_name: www.{DNS_ZONE}
      query_type: A
  dns_soa:
    prober: dns
    timeout: 5s
    dns:
      preferred_ip_protocol: ip4
      query_name: {DNS_ZONE}
      query_type: SOA
  dns_nxdomain:
    prober: dns
    timeout: 5s
    dns:
      preferred_ip_protocol: ip4
      transport_protocol: tcp
      query_name: missing.{DNS_ZONE}
      query_type: A
"#
    )
}

fn label_names(family: &Family) -> BTreeSet<Vec<String>> {
    family.samples.iter().map(|(labels, _)| labels.keys().cloned().collect()).collect()
}

/// Compares one case; returns a description of every difference.
fn differences(case: &str, blackbox: &BTreeMap<String, Family>, checkit: &BTreeMap<String, Family>) -> Vec<String> {
    let mut found = Vec::new();
    for name in blackbox.keys().filter(|name| !checkit.contains_key(*name)) {
        found.push(format!("{case}: checkit lacks {name}"));
    }
    for name in checkit.keys().filter(|name| !blackbox.contains_key(*name)) {
        if !ALLOWED_EXTRAS.iter().any(|(extra, _)| extra == name) {
            found.push(format!("{case}: checkit has extra {name}"));
        }
    }
    for (name, theirs) in blackbox {
        let Some(ours) = checkit.get(name) else { continue };
        if theirs.help != ours.help {
            found.push(format!("{case}: HELP of {name}: blackbox {:?}, checkit {:?}", theirs.help, ours.help));
        }
        if theirs.kind != ours.kind {
            found.push(format!("{case}: TYPE of {name}: blackbox {}, checkit {}", theirs.kind, ours.kind));
        }
        if label_names(theirs) != label_names(ours) {
            found.push(format!(
                "{case}: labels of {name}: blackbox {:?}, checkit {:?}",
                label_names(theirs),
                label_names(ours)
            ));
        }
        if SAME_VALUES.contains(&name.as_str()) && theirs.samples != ours.samples {
            found.push(format!("{case}: {name}: blackbox {:?}, checkit {:?}", theirs.samples, ours.samples));
        }
    }
    found
}

#[tokio::test]
async fn net_probers_match_blackbox_exporter() {
    let yaml = config_yaml();
    let blackbox = peer!(BlackboxExporter::start(&yaml).await);
    let dns = peer!(Dnsmasq::start(DnsmasqOpts::default()).await);
    let config = Config::parse(&yaml).expect("the shared config parses in checkit");
    let listening = hang_server().await;
    let not_ssh = scripted_line_server(vec![ScriptStep::send("220 smtp.example.test ESMTP"), ScriptStep::Close]).await;

    let cases: Vec<(&str, &str, String, bool)> = vec![
        ("tcp success", "tcp_connect", listening.addr.to_string(), true),
        ("tcp refused", "tcp_connect", closed_port().to_string(), false),
        ("tcp regex failure", "tcp_ssh_banner", not_ssh.addr.to_string(), false),
        ("icmp 127.0.0.1", "icmp", "127.0.0.1".to_string(), true),
        ("dns A", "dns_a", dns.addr.to_string(), true),
        ("dns SOA", "dns_soa", dns.addr.to_string(), true),
        ("dns NXDOMAIN over tcp", "dns_nxdomain", dns.addr.to_string(), false),
    ];
    let mut all = Vec::new();
    for (case, module, target, expect_success) in cases {
        let (status, body) = blackbox.probe(&target, module).await;
        assert_eq!(status, 200, "{case}: blackbox answered {status}: {body}\n{}", blackbox.diagnostics());
        let theirs = parse_exposition(&body);
        let outcome =
            crate::support::module::run_with(&config, &config.modules[module], &target, None, Duration::from_secs(5))
                .await;
        let ours = parse_exposition(&outcome.registry.encode());
        assert_eq!(outcome.success(), expect_success, "{case}: {:?}\n{}", outcome.error, outcome.log.join("\n"));
        let success = if expect_success { 1.0 } else { 0.0 };
        assert_eq!(crate::support::app::value(&theirs, "probe_success"), Some(success), "{case}: blackbox\n{body}");
        all.extend(differences(case, &theirs, &ours));
    }
    assert!(all.is_empty(), "differences from blackbox_exporter:\n{}", all.join("\n"));
}
