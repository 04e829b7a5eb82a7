//! The `tls` prober: implicit TLS against rustls servers presenting each test
//! leaf, STARTTLS against aiosmtpd and PostgreSQL and scripted IMAP, POP3 and
//! FTP dialogues, a closed port, a silent server and a plain-text server.

use crate::peer;
use crate::support::module::{assert_listed, failure};
use crate::support::peers::{Postgres, PostgresOpts, SmtpOpts, SmtpServer};
use crate::support::{Leaf, ScriptStep, TestCerts, closed_port, hang_server, scripted_line_server};
use checkit::probe::{Outcome, Phase, Reason};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

async fn probe(tls_block: &str, target: &str, timeout: Duration) -> Outcome {
    let block: String = tls_block.lines().map(|line| format!("      {line}\n")).collect();
    let text = format!("modules:\n  m:\n    prober: tls\n    tls:\n{block}");
    let config = checkit::settings::Config::parse(&text).unwrap_or_else(|err| panic!("{err}\n{text}"));
    crate::support::module::run_with(&config, &config.modules["m"], target, None, timeout).await
}

fn block(certs: &TestCerts, extra: &str) -> String {
    format!("preferred_ip_protocol: ip4\ntls_config:\n  ca_file: {}\n{extra}", certs.ca.cert_path.display())
}

fn unix(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH).expect("after epoch").as_secs() as f64
}

/// A TLS server presenting `leaf` that closes after the handshake.
async fn tls_server(certs: &TestCerts, leaf: Leaf) -> crate::support::fake::FakeServer {
    crate::support::fake::scripted_tls_server(certs.server_config(leaf), Vec::new()).await
}

const BLACKBOX_TLS_FAMILIES: [&str; 5] = [
    "probe_ssl_earliest_cert_expiry",
    "probe_ssl_last_chain_expiry_timestamp_seconds",
    "probe_ssl_last_chain_info",
    "probe_tls_cipher_info",
    "probe_tls_version_info",
];

#[tokio::test]
async fn valid_certificate_succeeds_with_every_tls_family() {
    let certs = TestCerts::generate();
    let server = tls_server(&certs, Leaf::Valid).await;
    let outcome = probe(&block(&certs, ""), &format!("localhost:{}", server.addr.port()), Duration::from_secs(5)).await;
    assert!(outcome.success(), "{:?}\n{}", outcome.error, outcome.log.join("\n"));
    assert_listed(&outcome);
    let registry = &outcome.registry;
    assert_eq!(
        registry.names().collect::<Vec<_>>(),
        [
            "probe_dns_lookup_time_seconds",
            "probe_duration_seconds",
            "probe_ip_addr_hash",
            "probe_ip_protocol",
            "probe_ssl_earliest_cert_expiry",
            "probe_ssl_last_chain_expiry_timestamp_seconds",
            "probe_ssl_last_chain_info",
            "probe_success",
            "probe_tls_certificate_verified",
            "probe_tls_cipher_info",
            "probe_tls_duration_seconds",
            "probe_tls_leaf_certificate_expiry_timestamp_seconds",
            "probe_tls_version_info",
        ]
    );
    let leaf_expiry = unix(certs.valid.not_after);
    assert_eq!(registry.get("probe_tls_leaf_certificate_expiry_timestamp_seconds", &[]), Some(leaf_expiry));
    assert_eq!(registry.get("probe_ssl_earliest_cert_expiry", &[]), Some(leaf_expiry));
    assert_eq!(registry.get("probe_ssl_last_chain_expiry_timestamp_seconds", &[]), Some(leaf_expiry));
    assert_eq!(registry.get("probe_tls_certificate_verified", &[]), Some(1.0));
    assert_eq!(registry.get("probe_tls_version_info", &[("version", "TLS 1.3")]), Some(1.0));
    for phase in ["resolve", "connect", "tls"] {
        assert!(registry.get("probe_tls_duration_seconds", &[("phase", phase)]).is_some(), "{phase}");
    }
    assert!(registry.get("probe_tls_duration_seconds", &[("phase", "tls")]).unwrap() > 0.0);
}

#[tokio::test]
async fn bad_certificates_fail_but_their_expiry_and_verification_are_visible() {
    let certs = TestCerts::generate();
    for (leaf, reason, expiry) in [
        (Leaf::Expired, Reason::TlsExpired, certs.expired.not_after),
        (Leaf::Untrusted, Reason::TlsUntrusted, certs.untrusted.not_after),
        (Leaf::WrongHost, Reason::TlsUntrusted, certs.wrong_host.not_after),
    ] {
        let server = tls_server(&certs, leaf).await;
        let outcome =
            probe(&block(&certs, ""), &format!("localhost:{}", server.addr.port()), Duration::from_secs(5)).await;
        assert_eq!(failure(&outcome), Some((Phase::Tls, reason)), "{leaf:?}");
        assert_listed(&outcome);
        let registry = &outcome.registry;
        assert_eq!(registry.get("probe_tls_certificate_verified", &[]), Some(0.0), "{leaf:?}");
        assert_eq!(
            registry.get("probe_tls_leaf_certificate_expiry_timestamp_seconds", &[]),
            Some(unix(expiry)),
            "{leaf:?}"
        );
        // Blackbox's families keep their rule: only after a successful handshake.
        for family in BLACKBOX_TLS_FAMILIES {
            assert!(!registry.contains(family), "{leaf:?}: {family} present");
        }
    }
}

#[tokio::test]
async fn insecure_skip_verify_succeeds_and_still_reports_the_verification() {
    let certs = TestCerts::generate();
    let server = tls_server(&certs, Leaf::Expired).await;
    let outcome = probe(
        &block(&certs, "  insecure_skip_verify: true"),
        &format!("localhost:{}", server.addr.port()),
        Duration::from_secs(5),
    )
    .await;
    assert!(outcome.success(), "{:?}", outcome.error);
    let registry = &outcome.registry;
    assert_eq!(registry.get("probe_tls_certificate_verified", &[]), Some(0.0));
    assert_eq!(registry.get("probe_ssl_earliest_cert_expiry", &[]), Some(unix(certs.expired.not_after)));
    // Blackbox reports Go's zero time when no chain was verified.
    assert_eq!(registry.get("probe_ssl_last_chain_expiry_timestamp_seconds", &[]), Some(-62_135_596_800.0));
}

#[tokio::test]
async fn closed_port_is_refused_without_certificate_families() {
    let addr = closed_port();
    let outcome = probe("preferred_ip_protocol: ip4", &addr.to_string(), Duration::from_secs(5)).await;
    assert_eq!(failure(&outcome), Some((Phase::Connect, Reason::Refused)));
    assert!(!outcome.registry.contains("probe_tls_certificate_verified"));
    assert!(!outcome.registry.contains("probe_tls_leaf_certificate_expiry_timestamp_seconds"));
    assert_eq!(outcome.registry.get("probe_tls_duration_seconds", &[("phase", "tls")]), Some(0.0));
}

#[tokio::test]
async fn silent_server_times_out_within_the_deadline() {
    let server = hang_server().await;
    let timeout = Duration::from_millis(800);
    let outcome = probe("preferred_ip_protocol: ip4", &server.addr.to_string(), timeout).await;
    assert_eq!(failure(&outcome), Some((Phase::Tls, Reason::Timeout)));
    assert!(outcome.duration < timeout + Duration::from_secs(2), "took {:?}", outcome.duration);
    assert!(outcome.registry.get("probe_tls_duration_seconds", &[("phase", "tls")]).unwrap() > 0.5);
}

#[tokio::test]
async fn plain_text_server_is_a_tls_failure() {
    let server = scripted_line_server(vec![ScriptStep::send("220 plain text here"), ScriptStep::Close]).await;
    let outcome = probe("preferred_ip_protocol: ip4", &server.addr.to_string(), Duration::from_secs(5)).await;
    assert_eq!(failure(&outcome), Some((Phase::Tls, Reason::Tls)));
    assert!(!outcome.registry.contains("probe_tls_certificate_verified"));
}

#[tokio::test]
async fn target_without_port_is_a_config_failure() {
    let outcome = probe("preferred_ip_protocol: ip4", "localhost", Duration::from_secs(1)).await;
    assert_eq!(failure(&outcome), Some((Phase::Resolve, Reason::Config)));
}

#[tokio::test]
async fn starttls_smtp_against_aiosmtpd() {
    let smtp = peer!(SmtpServer::start(SmtpOpts::default()).await);
    let outcome = probe(
        &block(&smtp.certs, "starttls: smtp"),
        &format!("localhost:{}", smtp.addr.port()),
        Duration::from_secs(10),
    )
    .await;
    assert!(outcome.success(), "{:?}\n{}", outcome.error, outcome.log.join("\n"));
    assert_eq!(outcome.registry.get("probe_tls_certificate_verified", &[]), Some(1.0));
    assert!(outcome.registry.get("probe_tls_duration_seconds", &[("phase", "processing")]).unwrap() > 0.0);
}

#[tokio::test]
async fn starttls_postgres_against_postgresql() {
    let postgres = peer!(Postgres::start(PostgresOpts::default()).await);
    let outcome = probe(
        &block(&postgres.certs, "starttls: postgres"),
        &format!("localhost:{}", postgres.addr.port()),
        Duration::from_secs(10),
    )
    .await;
    assert!(outcome.success(), "{:?}\n{}", outcome.error, outcome.log.join("\n"));
    assert_eq!(outcome.registry.get("probe_tls_certificate_verified", &[]), Some(1.0));
    assert!(outcome.registry.contains("probe_ssl_last_chain_info"));
}

#[tokio::test]
async fn starttls_dialogues_upgrade_or_fail_on_refusal() {
    let certs = TestCerts::generate();
    let upgrade = || ScriptStep::StartTls(certs.server_config(Leaf::Valid));
    let cases = [
        (
            "imap",
            vec![
                ScriptStep::send("* OK IMAP4rev1 ready"),
                ScriptStep::expect("^c1 STARTTLS$"),
                ScriptStep::send("* CAPABILITY IMAP4rev1"),
                ScriptStep::send("c1 OK Begin TLS negotiation now"),
                upgrade(),
            ],
            None,
        ),
        (
            "imap",
            vec![
                ScriptStep::send("* OK IMAP4rev1 ready"),
                ScriptStep::expect("^c1 STARTTLS$"),
                ScriptStep::send("c1 NO STARTTLS disabled"),
            ],
            Some((Phase::Processing, Reason::UnexpectedResponse)),
        ),
        (
            "pop3",
            vec![
                ScriptStep::send("+OK POP3 ready"),
                ScriptStep::expect("^STLS$"),
                ScriptStep::send("+OK go"),
                upgrade(),
            ],
            None,
        ),
        (
            "ftp",
            vec![
                ScriptStep::send("220-Welcome"),
                ScriptStep::send("220 FTP ready"),
                ScriptStep::expect("^AUTH TLS$"),
                ScriptStep::send("234 AUTH TLS OK"),
                upgrade(),
            ],
            None,
        ),
        (
            "smtp",
            vec![
                ScriptStep::send("220 mail ready"),
                ScriptStep::expect("^EHLO "),
                ScriptStep::send("250 mail"),
                ScriptStep::expect("^STARTTLS$"),
                ScriptStep::send("454 TLS not available"),
            ],
            Some((Phase::Processing, Reason::UnexpectedResponse)),
        ),
        (
            // Bytes pipelined after the go-ahead would be injected into the TLS session.
            "pop3",
            vec![
                ScriptStep::send("+OK POP3 ready"),
                ScriptStep::expect("^STLS$"),
                ScriptStep::send("+OK go\r\n+OK injected"),
                upgrade(),
            ],
            Some((Phase::Processing, Reason::UnexpectedResponse)),
        ),
    ];
    for (protocol, script, expected) in cases {
        let server = scripted_line_server(script).await;
        let outcome = probe(
            &block(&certs, &format!("starttls: {protocol}")),
            &format!("localhost:{}", server.addr.port()),
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(failure(&outcome), expected, "{protocol}: {}", outcome.log.join("\n"));
        if expected.is_none() {
            assert_eq!(outcome.registry.get("probe_tls_certificate_verified", &[]), Some(1.0), "{protocol}");
        }
    }
}

#[test]
fn shipped_examples_parse() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/examples.d/tls.yml");
    let text = std::fs::read_to_string(path).expect("read example");
    let config = checkit::settings::Config::parse(&format!("modules:\n{text}")).unwrap_or_else(|err| panic!("{err}"));
    assert!(config.modules.values().all(|module| module.prober.as_str() == "tls"));
}

#[tokio::test]
async fn hostname_parameter_names_the_server_behind_an_address() {
    let certs = TestCerts::generate();
    let server = tls_server(&certs, Leaf::Valid).await;
    let text = format!("modules:\n  m:\n    prober: tls\n    tls:\n{}", {
        let block: String = block(&certs, "").lines().map(|line| format!("      {line}\n")).collect();
        block
    });
    let config = checkit::settings::Config::parse(&text).expect("config");
    let target = server.addr.to_string();
    let named = crate::support::module::run_with(
        &config,
        &config.modules["m"],
        &target,
        Some("localhost"),
        Duration::from_secs(5),
    )
    .await;
    assert!(named.success(), "{:?}", named.error);
    // Without it the name is 127.0.0.1, which the certificate also carries;
    // a name it does not carry fails verification.
    let wrong = crate::support::module::run_with(
        &config,
        &config.modules["m"],
        &target,
        Some("other.test"),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(failure(&wrong), Some((Phase::Tls, Reason::TlsUntrusted)));
}
