//! The `dns` prober against dnsmasq (authoritative for `example.test`) over
//! UDP and TCP, a protocol-level DNS-over-TLS server (dnsmasq has no DoT),
//! and silent or closed ports.

use crate::peer;
use crate::support::peers::{DNS_ZONE, Dnsmasq, DnsmasqOpts};
use crate::support::{Leaf, TestCerts, closed_port, hang_server};
use checkit::probe::{Outcome, Phase, Reason};
use checkit::settings::Config;
use hickory_proto::op::{Message, MessageType};
use hickory_proto::rr::{RData, Record, rdata::A};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TIMEOUT: Duration = Duration::from_secs(5);

fn module(body: &str) -> String {
    format!("modules:\n  dns:\n    prober: dns\n    dns:\n      preferred_ip_protocol: ip4\n{body}")
}

async fn run(yaml: &str, target: &str, timeout: Duration) -> Outcome {
    let config = Config::parse(yaml).unwrap_or_else(|err| panic!("config parses: {err}\n{yaml}"));
    crate::support::module::run_with(&config, &config.modules["dns"], target, None, timeout).await
}

fn failure(outcome: &Outcome) -> (Phase, Reason) {
    let error = outcome.error.as_ref().unwrap_or_else(|| panic!("probe should fail\n{}", outcome.log.join("\n")));
    (error.phase, error.reason)
}

fn assert_success(outcome: &Outcome) {
    assert!(outcome.success(), "{:?}\n{}", outcome.error, outcome.log.join("\n"));
}

fn get(outcome: &Outcome, name: &str) -> Option<f64> {
    outcome.registry.get(name, &[])
}

#[tokio::test]
async fn a_record_over_udp_and_tcp() {
    let dns = peer!(Dnsmasq::start(DnsmasqOpts::default()).await);
    for transport in ["udp", "tcp"] {
        let yaml = module(&format!(
            "      query_name: www.{DNS_ZONE}\n      query_type: A\n      transport_protocol: {transport}\n"
        ));
        let outcome = run(&yaml, &dns.addr.to_string(), TIMEOUT).await;
        assert_success(&outcome);
        assert_eq!(get(&outcome, "probe_dns_answer_rrs"), Some(1.0), "{transport}");
        assert_eq!(get(&outcome, "probe_dns_query_succeeded"), Some(1.0));
        assert_eq!(get(&outcome, "probe_ip_protocol"), Some(4.0));
        let names: Vec<&str> = outcome.registry.names().collect();
        assert_eq!(
            names,
            [
                "probe_dns_additional_rrs",
                "probe_dns_answer_rrs",
                "probe_dns_authority_rrs",
                "probe_dns_duration_seconds",
                "probe_dns_lookup_time_seconds",
                "probe_dns_query_succeeded",
                "probe_duration_seconds",
                "probe_ip_addr_hash",
                "probe_ip_protocol",
                "probe_success",
            ]
        );
        for phase in ["resolve", "connect", "request"] {
            assert!(outcome.registry.get("probe_dns_duration_seconds", &[("phase", phase)]).is_some(), "{phase}");
        }
        let request = outcome.registry.get("probe_dns_duration_seconds", &[("phase", "request")]).unwrap();
        assert!(request > 0.0, "request phase measured: {request}");
    }
}

/// A YAML single-quoted regex matching exactly `record` (tabs included).
fn exact(record: &str) -> String {
    format!("'^{}$'", regex::escape(record).replace('\'', "''"))
}

#[tokio::test]
async fn soa_serial_and_record_strings() {
    let dns = peer!(Dnsmasq::start(DnsmasqOpts { serial: 2_024_010_101, ..DnsmasqOpts::default() }).await);
    let zone = DNS_ZONE;
    // Each regex must match the record exactly as blackbox (miekg/dns) prints it.
    let soa = format!("{zone}.\t300\tIN\tSOA\tns1.{zone}. hostmaster.{zone}. 2024010101 1200 120 604800 300");
    let yaml = module(&format!(
        "      query_name: {zone}\n      query_type: SOA\n      validate_answer_rrs:\n        \
         fail_if_not_matches_regexp: [{}]\n",
        exact(&soa)
    ));
    let outcome = run(&yaml, &dns.addr.to_string(), TIMEOUT).await;
    assert_success(&outcome);
    assert_eq!(get(&outcome, "probe_dns_serial"), Some(2_024_010_101.0));
    let encoded = outcome.registry.encode();
    assert_eq!(
        encoded.lines().find(|line| line.starts_with("probe_dns_serial ")),
        Some("probe_dns_serial 2.024010101e+09")
    );

    for (query_type, name, record) in [
        ("MX", zone.to_string(), format!("{zone}.\t300\tIN\tMX\t10 mail.{zone}.")),
        ("TXT", zone.to_string(), format!("{zone}.\t300\tIN\tTXT\t\"v=spf1 -all\"")),
        ("AAAA", zone.to_string(), format!("{zone}.\t300\tIN\tAAAA\t2001:db8::10")),
        ("CNAME", format!("alias.{zone}"), format!("alias.{zone}.\t300\tIN\tCNAME\twww.{zone}.")),
    ] {
        let yaml = module(&format!(
            "      query_name: {name}\n      query_type: {query_type}\n      validate_answer_rrs:\n        \
             fail_if_not_matches_regexp: [{}]\n",
            exact(&record)
        ));
        let outcome = run(&yaml, &dns.addr.to_string(), TIMEOUT).await;
        assert_success(&outcome);
        assert!(!outcome.registry.contains("probe_dns_serial"), "serial only for SOA queries");
    }
}

#[tokio::test]
async fn failing_regex_keeps_query_succeeded() {
    let dns = peer!(Dnsmasq::start(DnsmasqOpts::default()).await);
    let yaml = module(&format!(
        "      query_name: www.{DNS_ZONE}\n      query_type: A\n      validate_answer_rrs:\n        \
         fail_if_matches_regexp: ['\\tA\\t192\\.0\\.2\\.11$']\n"
    ));
    let outcome = run(&yaml, &dns.addr.to_string(), TIMEOUT).await;
    assert_eq!(failure(&outcome), (Phase::Check, Reason::Regex));
    assert_eq!(get(&outcome, "probe_dns_query_succeeded"), Some(1.0));
    assert_eq!(get(&outcome, "probe_dns_answer_rrs"), Some(1.0));

    // An empty additional section fails fail_if_none_matches_regexp.
    let yaml = module(&format!(
        "      query_name: www.{DNS_ZONE}\n      query_type: A\n      validate_additional_rrs:\n        \
         fail_if_none_matches_regexp: ['.']\n"
    ));
    let outcome = run(&yaml, &dns.addr.to_string(), TIMEOUT).await;
    assert_eq!(failure(&outcome), (Phase::Check, Reason::Regex));
}

#[tokio::test]
async fn nxdomain_and_valid_rcodes() {
    let dns = peer!(Dnsmasq::start(DnsmasqOpts::default()).await);
    let base = format!("      query_name: missing.{DNS_ZONE}\n      query_type: A\n");
    let outcome = run(&module(&base), &dns.addr.to_string(), TIMEOUT).await;
    assert_eq!(failure(&outcome), (Phase::Check, Reason::Status));
    assert_eq!(get(&outcome, "probe_dns_query_succeeded"), Some(1.0));
    assert_eq!(get(&outcome, "probe_dns_authority_rrs"), Some(1.0), "the SOA comes with NXDOMAIN");

    let outcome =
        run(&module(&format!("{base}      valid_rcodes: [NXDOMAIN]\n")), &dns.addr.to_string(), TIMEOUT).await;
    assert_success(&outcome);

    // As blackbox, an unknown rcode name loads and fails at probe time.
    let outcome =
        run(&module(&format!("{base}      valid_rcodes: [NOSUCHCODE]\n")), &dns.addr.to_string(), TIMEOUT).await;
    assert_eq!(failure(&outcome), (Phase::Check, Reason::Config));
}

#[tokio::test]
async fn silent_servers_time_out_within_the_deadline() {
    let silent_udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let silent_tcp = hang_server().await;
    let timeout = Duration::from_millis(700);
    for (transport, target) in
        [("udp", silent_udp.local_addr().unwrap().to_string()), ("tcp", silent_tcp.addr.to_string())]
    {
        let yaml = module(&format!("      query_name: x.test\n      transport_protocol: {transport}\n"));
        let outcome = run(&yaml, &target, timeout).await;
        assert_eq!(failure(&outcome), (Phase::Request, Reason::Timeout), "{transport}");
        assert_eq!(get(&outcome, "probe_dns_query_succeeded"), Some(0.0));
        assert!(outcome.duration < timeout + Duration::from_millis(500), "took {:?}", outcome.duration);
    }
}

#[tokio::test]
async fn closed_ports_are_refused() {
    let target = closed_port().to_string();
    let outcome = run(&module("      query_name: x.test\n      transport_protocol: tcp\n"), &target, TIMEOUT).await;
    assert_eq!(failure(&outcome), (Phase::Connect, Reason::Refused));
    // UDP learns of the closed port from the ICMP error on the connected socket.
    let outcome = run(&module("      query_name: x.test\n"), &target, TIMEOUT).await;
    assert_eq!(failure(&outcome), (Phase::Request, Reason::Refused));
    assert_eq!(get(&outcome, "probe_dns_query_succeeded"), Some(0.0));
}

/// A DNS-over-TLS server (RFC 7858) that answers every query with one A record.
async fn dot_server(config: Arc<rustls::ServerConfig>) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = tokio_rustls::TlsAcceptor::from(config.clone());
            tokio::spawn(async move {
                if let Ok(stream) = acceptor.accept(stream).await {
                    let _ = answer_one(stream).await;
                }
            });
        }
    });
    (addr, task)
}

async fn answer_one<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(mut stream: S) -> std::io::Result<()> {
    let invalid = |err: hickory_proto::ProtoError| std::io::Error::new(std::io::ErrorKind::InvalidData, err);
    let length = stream.read_u16().await?;
    let mut query = vec![0; usize::from(length)];
    stream.read_exact(&mut query).await?;
    let query = Message::from_vec(&query).map_err(invalid)?;
    let mut response = Message::new();
    response.set_id(query.id()).set_message_type(MessageType::Response).set_authoritative(true);
    if let Some(question) = query.queries().first() {
        let record = Record::from_rdata(question.name().clone(), 60, RData::A(A::new(192, 0, 2, 53)));
        response.add_query(question.clone()).add_answer(record);
    }
    let bytes = response.to_vec().map_err(invalid)?;
    stream.write_u16(bytes.len() as u16).await?;
    stream.write_all(&bytes).await?;
    stream.flush().await
}

#[tokio::test]
async fn dns_over_tls() {
    let certs = TestCerts::generate();
    let yaml = module(&format!(
        "      query_name: www.example.org\n      query_type: A\n      transport_protocol: tcp\n      \
         dns_over_tls: true\n      tls_config:\n        ca_file: {}\n        server_name: localhost\n      \
         validate_answer_rrs:\n        fail_if_not_matches_regexp: [{}]\n",
        certs.ca.cert_path.display(),
        exact("www.example.org.\t60\tIN\tA\t192.0.2.53")
    ));
    let (addr, server) = dot_server(certs.server_config(Leaf::Valid)).await;
    let outcome = run(&yaml, &addr.to_string(), TIMEOUT).await;
    assert_success(&outcome);
    assert_eq!(get(&outcome, "probe_dns_answer_rrs"), Some(1.0));
    // blackbox's dns prober emits no TLS families, even with DNS over TLS.
    assert!(!outcome.registry.contains("probe_tls_version_info"));
    server.abort();

    let (addr, server) = dot_server(certs.server_config(Leaf::Untrusted)).await;
    let outcome = run(&yaml, &addr.to_string(), TIMEOUT).await;
    assert_eq!(failure(&outcome), (Phase::Tls, Reason::TlsUntrusted));
    assert_eq!(get(&outcome, "probe_dns_query_succeeded"), Some(0.0));
    server.abort();
}

#[test]
fn config_errors_are_reported_like_blackbox() {
    let err = Config::parse("modules:\n  dns:\n    prober: dns\n    dns:\n      query_type: A\n").unwrap_err();
    assert!(err.to_string().contains("modules.dns.dns.query_name: query name must be set for DNS module"), "{err}");
    let err = Config::parse("modules:\n  dns:\n    prober: dns\n").unwrap_err();
    assert!(err.to_string().contains("query name must be set for DNS module"), "{err}");
    let err =
        Config::parse("modules:\n  dns:\n    prober: dns\n    dns:\n      query_name: x\n      query_type: AAA\n")
            .unwrap_err();
    assert!(err.to_string().contains("modules.dns.dns.query_type: query type 'AAA' is not valid"), "{err}");
}

#[test]
fn shipped_example_modules_parse() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples.d/dns.yml");
    let fragment = std::fs::read_to_string(&path).expect("example file");
    let config =
        Config::parse(&format!("modules:\n{fragment}")).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    assert!(config.modules.values().all(|module| module.prober.as_str() == "dns"));
    assert!(!config.modules.is_empty());
    // `/config` shows the modules with defaults filled in; that text loads again.
    let shown = config.to_yaml();
    let again = Config::parse(&shown).unwrap_or_else(|err| panic!("/config output does not load: {err}\n{shown}"));
    assert_eq!(again.to_yaml(), shown);
}
