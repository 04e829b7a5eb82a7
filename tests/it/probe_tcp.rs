//! The `tcp` prober: plain connects, the query_response dialogue against
//! scripted servers, STARTTLS against aiosmtpd, an SSLRequest against
//! PostgreSQL, implicit TLS, and the failure cases.

use crate::peer;
use crate::support::fake::scripted_tls_server;
use crate::support::peers::{Postgres, PostgresOpts, SmtpOpts, SmtpServer};
use crate::support::{Leaf, ScriptStep, TestCerts, closed_port, hang_server, scripted_line_server};
use checkit::probe::{Outcome, Phase, Reason};
use checkit::settings::Config;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(5);

async fn run(yaml: &str, target: &str, hostname: Option<&str>, timeout: Duration) -> Outcome {
    let config = Config::parse(yaml).unwrap_or_else(|err| panic!("config parses: {err}\n{yaml}"));
    crate::support::module::run_with(&config, &config.modules["tcp"], target, hostname, timeout).await
}

fn failure(outcome: &Outcome) -> (Phase, Reason) {
    let error = outcome.error.as_ref().unwrap_or_else(|| panic!("probe should fail\n{}", outcome.log.join("\n")));
    (error.phase, error.reason)
}

fn assert_success(outcome: &Outcome) {
    assert!(outcome.success(), "{:?}\n{}", outcome.error, outcome.log.join("\n"));
    assert_eq!(outcome.registry.get("probe_success", &[]), Some(1.0));
}

fn names(outcome: &Outcome) -> Vec<&str> {
    outcome.registry.names().collect()
}

const TLS_FAMILIES: [&str; 4] = [
    "probe_ssl_earliest_cert_expiry",
    "probe_ssl_last_chain_expiry_timestamp_seconds",
    "probe_ssl_last_chain_info",
    "probe_tls_version_info",
];

#[tokio::test]
async fn connect_only_succeeds_with_the_blackbox_families() {
    let server = hang_server().await;
    let outcome = run("modules:\n  tcp:\n    prober: tcp\n", &server.addr.to_string(), None, TIMEOUT).await;
    assert_success(&outcome);
    assert_eq!(outcome.registry.get("probe_ip_protocol", &[]), Some(4.0));
    assert_eq!(outcome.registry.get("probe_ip_addr_hash", &[]), Some(3_668_918_509.0));
    assert_eq!(
        names(&outcome),
        [
            "probe_dns_lookup_time_seconds",
            "probe_duration_seconds",
            "probe_failed_due_to_bytes",
            "probe_failed_due_to_regex",
            "probe_ip_addr_hash",
            "probe_ip_protocol",
            "probe_success",
        ]
    );
}

/// Bare checks hand their disconnected sockets to the next check, and each
/// check still reports its own result: a refusal; a success that completes
/// only after a SYN retransmission, through the poller (where a pending
/// ECONNRESET left by the previous check's disconnect would have been read
/// as its failure); and the target's accept queue never holding a check.
#[tokio::test]
async fn bare_checks_reuse_their_sockets_and_report_their_own_results() {
    let config = Config::parse("modules:\n  tcp:\n    prober: tcp\n    tcp:\n      preferred_ip_protocol: ip4\n")
        .expect("config parses");
    let env = checkit::probe::Env::default();
    let probe = |target: String| {
        let (config, env) = (&config, &env);
        async move { checkit::probe::run(&config.modules["tcp"], &target, None, TIMEOUT, &config.policy, env).await }
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("non-blocking");
    let target = listener.local_addr().expect("address").to_string();
    for _ in 0..3 {
        assert_success(&probe(target.clone()).await);
        assert_eq!(env.tcp.idle_count(), 1, "one check at a time reuses one socket");
    }
    let refused = probe(closed_port().to_string()).await;
    assert_eq!(failure(&refused), (Phase::Connect, Reason::Refused));
    assert_eq!(env.tcp.idle_count(), 0, "a failed check's socket is closed");
    assert_success(&probe(target.clone()).await);
    match listener.accept() {
        Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the target's accept queue held a check's connection: {other:?}"),
    }
    // A listener whose accept queue (backlog 0: one connection) is full
    // drops the check's SYN; a connection is accepted after 200 ms, so the
    // SYN sent again after a second completes the handshake.
    let full = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    full.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into()).expect("bind");
    full.listen(0).expect("listen");
    let full: std::net::TcpListener = full.into();
    let full_target = full.local_addr().expect("address");
    let queued = std::net::TcpStream::connect(full_target).expect("fill the accept queue");
    let drain = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        full.accept().map(|_| full)
    });
    let slow = probe(full_target.to_string()).await;
    assert_success(&slow);
    assert!(slow.duration >= Duration::from_millis(500), "the SYN was not dropped: {:?}", slow.duration);
    assert_eq!(env.tcp.idle_count(), 1, "the socket is kept after a connect through the poller");
    drop((queued, drain.join().expect("drain thread")));
}

#[tokio::test]
async fn closed_port_is_refused() {
    let outcome = run("modules:\n  tcp:\n    prober: tcp\n", &closed_port().to_string(), None, TIMEOUT).await;
    assert_eq!(failure(&outcome), (Phase::Connect, Reason::Refused));
    // As blackbox 0.23: the regex gauge exists (at 0) even when the dial fails.
    assert_eq!(outcome.registry.get("probe_failed_due_to_regex", &[]), Some(0.0));
    assert_eq!(outcome.registry.get("probe_failed_due_to_bytes", &[]), Some(0.0));
    assert_eq!(outcome.registry.get("probe_failure_info", &[("phase", "connect"), ("reason", "refused")]), Some(1.0));
}

#[tokio::test]
async fn target_without_port_is_a_config_failure() {
    let outcome = run("modules:\n  tcp:\n    prober: tcp\n", "127.0.0.1", None, TIMEOUT).await;
    assert_eq!(failure(&outcome), (Phase::Resolve, Reason::Config));
}

#[tokio::test]
async fn silent_server_times_out_within_the_deadline() {
    let server = hang_server().await;
    let yaml = "modules:\n  tcp:\n    prober: tcp\n    tcp:\n      query_response:\n        - expect: ^SSH\n";
    let timeout = Duration::from_millis(700);
    let outcome = run(yaml, &server.addr.to_string(), None, timeout).await;
    assert_eq!(failure(&outcome), (Phase::Processing, Reason::Timeout));
    // A deadline is not a regex failure (as blackbox).
    assert_eq!(outcome.registry.get("probe_failed_due_to_regex", &[]), Some(0.0));
    assert!(outcome.duration < timeout + Duration::from_millis(500), "took {:?}", outcome.duration);
}

#[tokio::test]
async fn ssh_banner_labels_and_capture_expansion() {
    let server = scripted_line_server(vec![
        ScriptStep::send("Welcome, this line is skipped"),
        ScriptStep::send("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3"),
        ScriptStep::expect("^client saw OpenSSH_9.2p1$"),
        ScriptStep::send("bye"),
    ])
    .await;
    let yaml = r#"
modules:
  tcp:
    prober: tcp
    tcp:
      query_response:
        - expect: "^SSH-2.0-([^ -]+)(?: (.*))?$"
          labels:
            - name: ssh_version
              value: "${1}"
            - name: comment
              value: "${2}"
          send: "client saw ${1}"
        - expect: "^bye$"
"#;
    let outcome = run(yaml, &server.addr.to_string(), None, TIMEOUT).await;
    assert_success(&outcome);
    assert_eq!(
        outcome.registry.get("probe_expect_info", &[("ssh_version", "OpenSSH_9.2p1"), ("comment", "Debian-2+deb12u3")]),
        Some(1.0)
    );
    assert_eq!(server.received_lines(), ["client saw OpenSSH_9.2p1"]);
}

#[tokio::test]
async fn regex_failure_when_no_line_matches() {
    let server = scripted_line_server(vec![ScriptStep::send("220 not an ssh server"), ScriptStep::Close]).await;
    let yaml = "modules:\n  tcp:\n    prober: tcp\n    tcp:\n      query_response:\n        - expect: ^SSH-2.0\n";
    let outcome = run(yaml, &server.addr.to_string(), None, TIMEOUT).await;
    assert_eq!(failure(&outcome), (Phase::Check, Reason::Regex));
    assert_eq!(outcome.registry.get("probe_failed_due_to_regex", &[]), Some(1.0));
    assert!(!outcome.registry.contains("probe_expect_info"));
}

#[tokio::test]
async fn server_closing_at_once_is_an_unexpected_response() {
    let server = scripted_line_server(vec![ScriptStep::Close]).await;
    let yaml = "modules:\n  tcp:\n    prober: tcp\n    tcp:\n      query_response:\n        - expect: ^SSH-2.0\n";
    let outcome = run(yaml, &server.addr.to_string(), None, TIMEOUT).await;
    assert_eq!(failure(&outcome), (Phase::Check, Reason::UnexpectedResponse));
}

fn smtp_starttls_module(ca_file: &str) -> String {
    // blackbox's example.yml recipe, verbatim apart from the CA.
    format!(
        r#"
modules:
  tcp:
    prober: tcp
    timeout: 5s
    tcp:
      tls_config:
        ca_file: {ca_file}
      query_response:
        - expect: "^220 ([^ ]+) (.+)$"
        - send: "EHLO prober\r"
        - expect: "^250-STARTTLS"
        - send: "STARTTLS\r"
        - expect: "^220"
        - starttls: true
        - send: "EHLO prober\r"
        - expect: "^250-AUTH"
        - send: "QUIT\r"
"#
    )
}

#[tokio::test]
async fn smtp_starttls_against_aiosmtpd() {
    let smtp = peer!(SmtpServer::start(SmtpOpts::default()).await);
    let yaml = smtp_starttls_module(&smtp.certs.ca.cert_path.display().to_string());
    // The test leaf is for localhost; the target is the address, so name it.
    let outcome = run(&yaml, &smtp.addr.to_string(), Some("localhost"), TIMEOUT).await;
    assert_success(&outcome);
    for family in TLS_FAMILIES {
        assert!(outcome.registry.contains(family), "{family} missing: {:?}", names(&outcome));
    }
    assert!(!outcome.registry.contains("probe_tls_cipher_info"), "tcp has no cipher family");
    let expiry = smtp.certs.valid.not_after.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as f64;
    assert_eq!(outcome.registry.get("probe_ssl_earliest_cert_expiry", &[]), Some(expiry));
    let version = outcome.registry.get("probe_tls_version_info", &[("version", "TLS 1.3")]);
    assert_eq!(version, Some(1.0), "{}", outcome.registry.encode());
}

#[tokio::test]
async fn starttls_with_untrusted_or_expired_certificates_fails_in_tls() {
    for (leaf, reason) in [(Leaf::Untrusted, Reason::TlsUntrusted), (Leaf::Expired, Reason::TlsExpired)] {
        let smtp = peer!(SmtpServer::start(SmtpOpts { leaf, ..SmtpOpts::default() }).await);
        let yaml = smtp_starttls_module(&smtp.certs.ca.cert_path.display().to_string());
        let outcome = run(&yaml, &smtp.addr.to_string(), Some("localhost"), TIMEOUT).await;
        assert_eq!(failure(&outcome), (Phase::Tls, reason), "{leaf:?}");
        // blackbox's presence rule: no TLS family without a handshake.
        for family in TLS_FAMILIES {
            assert!(!outcome.registry.contains(family), "{family} present for {leaf:?}");
        }
    }
}

fn postgres_module(expect: &str, ca_file: &str) -> String {
    // blackbox's example.yml PostgreSQL recipe: SSLRequest as !!binary.
    format!(
        r#"
modules:
  tcp:
    prober: tcp
    tcp:
      tls_config:
        ca_file: {ca_file}
        server_name: localhost
      query_response:
        - send: !!binary AAAACATSFi8=
        - expect_bytes: {expect}
        - starttls: true
"#
    )
}

#[tokio::test]
async fn postgres_sslrequest_then_starttls() {
    let pg = peer!(Postgres::start(PostgresOpts::default()).await);
    let ca = pg.certs.ca.cert_path.display().to_string();
    let outcome = run(&postgres_module("S", &ca), &pg.addr.to_string(), None, TIMEOUT).await;
    assert_success(&outcome);
    assert_eq!(outcome.registry.get("probe_failed_due_to_bytes", &[]), Some(0.0));
    for family in TLS_FAMILIES {
        assert!(outcome.registry.contains(family), "{family} missing");
    }

    let outcome = run(&postgres_module("N", &ca), &pg.addr.to_string(), None, TIMEOUT).await;
    assert_eq!(failure(&outcome), (Phase::Check, Reason::Bytes));
    assert_eq!(outcome.registry.get("probe_failed_due_to_bytes", &[]), Some(1.0));
    assert!(!outcome.registry.contains("probe_tls_version_info"));
}

#[tokio::test]
async fn implicit_tls_and_the_hostname_parameter() {
    let certs = TestCerts::generate();
    let server = scripted_tls_server(certs.server_config(Leaf::WrongHost), vec![ScriptStep::send("* OK ready")]).await;
    let yaml = format!(
        "modules:\n  tcp:\n    prober: tcp\n    tcp:\n      tls: true\n      tls_config:\n        ca_file: {}\n      \
         query_response:\n        - expect: '^\\* OK'\n",
        certs.ca.cert_path.display()
    );
    let target = server.addr.to_string();
    // The certificate names wrong.example.test: the target's IP does not verify…
    let outcome = run(&yaml, &target, None, TIMEOUT).await;
    assert_eq!(failure(&outcome), (Phase::Tls, Reason::TlsUntrusted));
    // …but `hostname` supplies the server name, as in blackbox.
    let outcome = run(&yaml, &target, Some("wrong.example.test"), TIMEOUT).await;
    assert_success(&outcome);
    let leaf = outcome.registry.encode();
    assert!(leaf.contains("subjectalternative=\"wrong.example.test\""), "{leaf}");
    assert!(outcome.registry.get("probe_ssl_last_chain_expiry_timestamp_seconds", &[]).is_some_and(|v| v > 0.0));
}

#[tokio::test]
async fn expect_and_expect_bytes_together_is_a_config_error() {
    let err = Config::parse(
        "modules:\n  tcp:\n    prober: tcp\n    tcp:\n      query_response:\n        - {expect: a, expect_bytes: b}\n",
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("modules.tcp.tcp.query_response[0]: expect and expect_bytes are mutually exclusive"),
        "{err}"
    );
}

#[test]
fn shipped_example_modules_parse() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples.d/tcp.yml");
    let fragment = std::fs::read_to_string(&path).expect("example file");
    let config =
        Config::parse(&format!("modules:\n{fragment}")).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    assert!(config.modules.values().all(|module| module.prober.as_str() == "tcp"));
    assert!(!config.modules.is_empty());
    // `/config` shows the modules with defaults filled in; that text loads again.
    let shown = config.to_yaml();
    let again = Config::parse(&shown).unwrap_or_else(|err| panic!("/config output does not load: {err}\n{shown}"));
    assert_eq!(again.to_yaml(), shown);
}

#[tokio::test]
async fn source_ip_address_is_the_local_end() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let target = listener.local_addr().expect("addr").to_string();
    let accepted = tokio::spawn(async move { listener.accept().await.map(|(_, peer)| peer.ip()) });
    // All of 127.0.0.0/8 is local on Linux, so 127.0.0.2 is a usable source.
    // A dialogue completes the handshake, so the target sees where it came from.
    let yaml = "modules:\n  tcp:\n    prober: tcp\n    tcp:\n      source_ip_address: 127.0.0.2\n      \
                query_response:\n        - send: ping\n";
    let outcome = run(yaml, &target, None, TIMEOUT).await;
    assert_success(&outcome);
    assert_eq!(accepted.await.expect("join").expect("accept").to_string(), "127.0.0.2");

    // A bare connect never completes the handshake (SYN, SYN-ACK, reset), so
    // no target sees it: its source shows in that a local address works and a
    // foreign one cannot be bound.
    let bare = "modules:\n  tcp:\n    prober: tcp\n    tcp:\n      source_ip_address: 127.0.0.2\n";
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let target = listener.local_addr().expect("addr").to_string();
    assert_success(&run(bare, &target, None, TIMEOUT).await);
    let outcome = run(&bare.replace("127.0.0.2", "192.0.2.1"), &target, None, TIMEOUT).await;
    assert_eq!(failure(&outcome), (Phase::Connect, Reason::Connect));

    // A source of the other family cannot reach the target.
    let yaml = "modules:\n  tcp:\n    prober: tcp\n    tcp:\n      source_ip_address: '::1'\n";
    let outcome = run(yaml, &closed_port().to_string(), None, TIMEOUT).await;
    assert_eq!(failure(&outcome), (Phase::Connect, Reason::Connect));
}

#[tokio::test]
async fn ipv6_loopback_target() {
    let Ok(listener) = tokio::net::TcpListener::bind("[::1]:0").await else {
        eprintln!("skipping: no IPv6 loopback on this machine");
        return;
    };
    let target = listener.local_addr().expect("addr").to_string();
    assert!(target.starts_with("[::1]:"), "{target}");
    let outcome = run("modules:\n  tcp:\n    prober: tcp\n", &target, None, TIMEOUT).await;
    assert_success(&outcome);
    assert_eq!(outcome.registry.get("probe_ip_protocol", &[]), Some(6.0));
}

/// A connect the kernel cannot complete at once (the target's accept queue is
/// full, so its SYNs are dropped) is awaited, and times out in `connect`.
#[tokio::test]
async fn connect_still_in_progress_times_out_in_connect() {
    let listener = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    listener.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into()).unwrap();
    listener.listen(0).unwrap();
    let addr = listener.local_addr().unwrap().as_socket().unwrap();
    // Fill the queue (backlog 0 holds one connection, never accepted).
    let mut held = Vec::new();
    for _ in 0..4 {
        let client = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM.nonblocking(), None).unwrap();
        let _ = client.connect(&addr.into());
        held.push(client);
    }
    let timeout = Duration::from_millis(700);
    let outcome = run("modules:\n  tcp:\n    prober: tcp\n", &addr.to_string(), None, timeout).await;
    assert_eq!(failure(&outcome), (Phase::Connect, Reason::Timeout));
    assert!(outcome.duration < timeout + Duration::from_millis(500), "took {:?}", outcome.duration);
}
