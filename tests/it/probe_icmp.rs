//! The `icmp` prober against the loopback interface (this machine's own kernel
//! answers the echo requests).

use checkit::probe::{Outcome, Phase, Reason};
use checkit::settings::Config;
use std::time::Duration;

async fn run(yaml: &str, target: &str, timeout: Duration) -> Outcome {
    let config = Config::parse(yaml).expect("config parses");
    crate::support::module::run_with(&config, &config.modules["icmp"], target, None, timeout).await
}

fn ipv6_loopback_available() -> bool {
    std::net::UdpSocket::bind("[::1]:0").is_ok()
}

#[tokio::test]
async fn echo_to_ipv4_loopback() {
    let outcome = run("modules:\n  icmp:\n    prober: icmp\n", "127.0.0.1", Duration::from_secs(5)).await;
    assert!(outcome.success(), "{:?}\n{}", outcome.error, outcome.log.join("\n"));
    let registry = &outcome.registry;
    assert_eq!(registry.get("probe_ip_protocol", &[]), Some(4.0));
    assert_eq!(registry.get("probe_ip_addr_hash", &[]), Some(3_668_918_509.0));
    assert_eq!(registry.get("probe_icmp_reply_hop_limit", &[]), Some(64.0));
    let rtt = registry.get("probe_icmp_duration_seconds", &[("phase", "rtt")]).unwrap();
    assert!(rtt > 0.0 && rtt < 5.0, "rtt {rtt}");
    for phase in ["resolve", "setup"] {
        assert!(registry.get("probe_icmp_duration_seconds", &[("phase", phase)]).is_some(), "{phase}");
    }
    let names: Vec<&str> = registry.names().collect();
    assert_eq!(
        names,
        [
            "probe_dns_lookup_time_seconds",
            "probe_duration_seconds",
            "probe_icmp_duration_seconds",
            "probe_icmp_reply_hop_limit",
            "probe_ip_addr_hash",
            "probe_ip_protocol",
            "probe_success",
        ]
    );
}

#[tokio::test]
async fn echo_to_ipv6_loopback() {
    if !ipv6_loopback_available() {
        eprintln!("skipping: no IPv6 loopback on this machine");
        return;
    }
    let outcome = run("modules:\n  icmp:\n    prober: icmp\n", "::1", Duration::from_secs(5)).await;
    assert!(outcome.success(), "{:?}\n{}", outcome.error, outcome.log.join("\n"));
    assert_eq!(outcome.registry.get("probe_ip_protocol", &[]), Some(6.0));
    assert_eq!(outcome.registry.get("probe_icmp_reply_hop_limit", &[]), Some(64.0));
}

#[tokio::test]
async fn custom_ttl_payload_and_dont_fragment() {
    // dont_fragment forces a raw socket with our own IPv4 header (the tests run as root).
    let yaml = "modules:\n  icmp:\n    prober: icmp\n    icmp:\n      preferred_ip_protocol: ip4\n      \
                ttl: 9\n      payload_size: 1200\n      dont_fragment: true\n";
    let outcome = run(yaml, "127.0.0.1", Duration::from_secs(5)).await;
    assert!(outcome.success(), "{:?}\n{}", outcome.error, outcome.log.join("\n"));
    // The reply is the kernel's own, with its default TTL, whatever ours was.
    assert_eq!(outcome.registry.get("probe_icmp_reply_hop_limit", &[]), Some(64.0));
}

#[tokio::test]
async fn unresolvable_target_fails_in_resolve() {
    let outcome = run("modules:\n  icmp:\n    prober: icmp\n", "does-not-exist.invalid", Duration::from_secs(5)).await;
    let error = outcome.error.expect("fails");
    assert_eq!((error.phase, error.reason), (Phase::Resolve, Reason::Resolve));
    assert_eq!(outcome.registry.get("probe_ip_protocol", &[]), Some(0.0));
    for phase in ["resolve", "setup", "rtt"] {
        assert_eq!(outcome.registry.get("probe_icmp_duration_seconds", &[("phase", phase)]), Some(0.0), "{phase}");
    }
}

#[tokio::test]
async fn ttl_above_255_is_a_config_error() {
    let err = Config::parse("modules:\n  icmp:\n    prober: icmp\n    icmp:\n      ttl: 256\n").unwrap_err();
    assert!(err.to_string().contains("modules.icmp.icmp.ttl: \"ttl\" cannot exceed 255"), "{err}");
}

#[test]
fn shipped_example_modules_parse() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples.d/icmp.yml");
    let fragment = std::fs::read_to_string(&path).expect("example file");
    let config =
        Config::parse(&format!("modules:\n{fragment}")).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    assert!(config.modules.values().all(|module| module.prober.as_str() == "icmp"));
    assert!(!config.modules.is_empty());
    // `/config` shows the modules with defaults filled in; that text loads again.
    let shown = config.to_yaml();
    let again = Config::parse(&shown).unwrap_or_else(|err| panic!("/config output does not load: {err}\n{shown}"));
    assert_eq!(again.to_yaml(), shown);
}
