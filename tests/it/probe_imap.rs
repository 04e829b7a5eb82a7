//! The `imap` prober against Dovecot (STARTTLS, IMAPS, plain) and against
//! scripted misbehaving servers.

use std::time::Duration;

use checkit::probe::{Outcome, Phase, Reason};

use crate::support::module::{failure, run_block, secret_file, unix_time};
use crate::support::peers::{Dovecot, DovecotOpts};
use crate::support::{Leaf, ScriptStep, closed_port, hang_server, scripted_line_server};

const TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the `imap` prober with `block` as the module's `imap:` block.
async fn probe(block: &str, target: &str, timeout: Duration) -> Outcome {
    run_block("imap", block, target, timeout).await
}

#[tokio::test]
async fn starttls_login_and_examine_succeed() {
    let dovecot = crate::peer!(Dovecot::start(DovecotOpts { messages: 3, ..DovecotOpts::default() }).await);
    let secret = secret_file(&dovecot.password);
    let block = dovecot.login_block(
        &secret,
        "tls: starttls\nbanner_regexp: \"^\\\\* OK .*Dovecot\"\nmailbox: INBOX\nmin_messages: 1\nmax_messages: 3",
    );
    let outcome = probe(&block, &dovecot.imap_addr.to_string(), TIMEOUT).await;
    assert_eq!(failure(&outcome), None, "{:#?}\n{}", outcome.log, dovecot.diagnostics());
    let registry = &outcome.registry;
    assert_eq!(registry.get("probe_imap_ssl", &[]), Some(1.0));
    assert_eq!(registry.get("probe_imap_mailbox_messages", &[]), Some(3.0));
    assert_eq!(registry.get("probe_imap_server_info", &[("software", "dovecot")]), Some(1.0));
    assert_eq!(registry.get("probe_ssl_earliest_cert_expiry", &[]), Some(unix_time(dovecot.certs.valid.not_after)));
    assert!(registry.contains("probe_tls_version_info"));
    for phase in ["resolve", "connect", "tls", "processing", "auth", "query"] {
        let seconds = registry.get("probe_imap_duration_seconds", &[("phase", phase)]);
        assert!(seconds.is_some_and(|s| s >= 0.0), "{phase}: {seconds:?}");
    }
    let log = outcome.log.join("\n");
    assert!(!log.contains(&dovecot.password), "password in the log:\n{log}");
}

#[tokio::test]
async fn imaps_and_plain_logins_succeed() {
    let dovecot = crate::peer!(Dovecot::start(DovecotOpts::default()).await);
    let secret = secret_file(&dovecot.password);
    let block = dovecot.login_block(&secret, "tls: implicit\nmailbox: INBOX");
    let outcome = probe(&block, &dovecot.imaps_addr.to_string(), TIMEOUT).await;
    assert_eq!(failure(&outcome), None, "{:#?}", outcome.log);
    assert_eq!(outcome.registry.get("probe_imap_ssl", &[]), Some(1.0));
    assert!(outcome.registry.contains("probe_ssl_last_chain_info"));

    let block = dovecot.login_block(&secret, "tls: none");
    let outcome = probe(&block, &dovecot.imap_addr.to_string(), TIMEOUT).await;
    assert_eq!(failure(&outcome), None, "{:#?}", outcome.log);
    assert_eq!(outcome.registry.get("probe_imap_ssl", &[]), Some(0.0));
    assert!(!outcome.registry.contains("probe_ssl_earliest_cert_expiry"));
    assert!(!outcome.registry.contains("probe_imap_mailbox_messages"), "no mailbox configured");
}

#[tokio::test]
async fn wrong_password_is_auth_failed() {
    let dovecot = crate::peer!(Dovecot::start(DovecotOpts::default()).await);
    let secret = secret_file("not-the-password");
    let outcome = probe(&dovecot.login_block(&secret, "tls: starttls"), &dovecot.imap_addr.to_string(), TIMEOUT).await;
    assert_eq!(failure(&outcome), Some((Phase::Auth, Reason::AuthFailed)), "{:#?}", outcome.log);
}

#[tokio::test]
async fn mailbox_checks_fail_the_query_phase() {
    let dovecot = crate::peer!(Dovecot::start(DovecotOpts { messages: 3, ..DovecotOpts::default() }).await);
    let secret = secret_file(&dovecot.password);
    let target = dovecot.imap_addr.to_string();
    let outcome = probe(&dovecot.login_block(&secret, "mailbox: INBOX\nmax_messages: 2"), &target, TIMEOUT).await;
    assert_eq!(failure(&outcome), Some((Phase::Query, Reason::Query)), "{:#?}", outcome.log);
    assert_eq!(outcome.registry.get("probe_imap_mailbox_messages", &[]), Some(3.0));
    let outcome = probe(&dovecot.login_block(&secret, "mailbox: INBOX\nmin_messages: 4"), &target, TIMEOUT).await;
    assert_eq!(failure(&outcome), Some((Phase::Query, Reason::Query)));
    let outcome = probe(&dovecot.login_block(&secret, "mailbox: Missing"), &target, TIMEOUT).await;
    assert_eq!(failure(&outcome), Some((Phase::Query, Reason::Query)), "{:#?}", outcome.log);
}

#[tokio::test]
async fn untrusted_certificate_fails_the_handshake() {
    let dovecot = crate::peer!(Dovecot::start(DovecotOpts { leaf: Leaf::Untrusted, ..DovecotOpts::default() }).await);
    let block = format!("tls: implicit\ntls_config:\n  ca_file: {}", dovecot.certs.ca.cert_path.display());
    let outcome = probe(&block, &dovecot.imaps_addr.to_string(), TIMEOUT).await;
    assert_eq!(failure(&outcome), Some((Phase::Tls, Reason::TlsUntrusted)), "{:#?}", outcome.log);
    assert!(!outcome.registry.contains("probe_ssl_earliest_cert_expiry"));
    let block = format!("tls: starttls\ntls_config:\n  ca_file: {}", dovecot.certs.ca.cert_path.display());
    let outcome = probe(&block, &dovecot.imap_addr.to_string(), TIMEOUT).await;
    assert_eq!(failure(&outcome), Some((Phase::Tls, Reason::TlsUntrusted)), "{:#?}", outcome.log);
}

#[tokio::test]
async fn closed_port_is_refused() {
    let outcome = probe("", &closed_port().to_string(), TIMEOUT).await;
    assert_eq!(failure(&outcome), Some((Phase::Connect, Reason::Refused)));
    let names: Vec<&str> = outcome.registry.names().collect();
    assert_eq!(
        names,
        [
            "probe_dns_lookup_time_seconds",
            "probe_duration_seconds",
            "probe_failure_info",
            "probe_imap_duration_seconds",
            "probe_imap_ssl",
            "probe_ip_addr_hash",
            "probe_ip_protocol",
            "probe_success"
        ]
    );
    assert_eq!(outcome.registry.get("probe_imap_duration_seconds", &[("phase", "query")]), Some(0.0));
}

#[tokio::test]
async fn silent_server_times_out_within_the_deadline() {
    let server = hang_server().await;
    let timeout = Duration::from_millis(800);
    for (tls, phase) in [("none", Phase::Processing), ("implicit", Phase::Tls)] {
        let outcome = probe(&format!("tls: {tls}"), &server.addr.to_string(), timeout).await;
        assert_eq!(failure(&outcome), Some((phase, Reason::Timeout)), "{tls}: {:#?}", outcome.log);
        assert!(outcome.duration < timeout + Duration::from_secs(2), "{tls}: took {:?}", outcome.duration);
    }
}

#[tokio::test]
async fn protocol_surprises_are_unexpected_responses() {
    for script in [
        vec![ScriptStep::send("HTTP/1.1 400 Bad Request"), ScriptStep::send("")],
        vec![ScriptStep::send("* BYE Too many connections")],
        vec![ScriptStep::send("SSH-2.0-OpenSSH_9.2p1 Debian-2")],
    ] {
        let server = scripted_line_server(script).await;
        let outcome = probe("", &server.addr.to_string(), TIMEOUT).await;
        assert_eq!(failure(&outcome), Some((Phase::Processing, Reason::UnexpectedResponse)), "{:#?}", outcome.log);
    }
}

#[tokio::test]
async fn refused_starttls_fails_unless_opportunistic() {
    let script = vec![
        ScriptStep::send("* OK [CAPABILITY IMAP4rev1] plain only"),
        ScriptStep::expect("STARTTLS"),
        ScriptStep::send("a1 BAD STARTTLS not supported"),
        ScriptStep::expect("LOGOUT"),
        ScriptStep::send("* BYE"),
        ScriptStep::send("a2 OK bye"),
    ];
    let server = scripted_line_server(script.clone()).await;
    let outcome = probe("tls: starttls", &server.addr.to_string(), TIMEOUT).await;
    assert_eq!(failure(&outcome), Some((Phase::Tls, Reason::UnexpectedResponse)), "{:#?}", outcome.log);
    let server = scripted_line_server(script).await;
    let outcome = probe("tls: opportunistic", &server.addr.to_string(), TIMEOUT).await;
    assert_eq!(failure(&outcome), None, "{:#?}", outcome.log);
    assert_eq!(outcome.registry.get("probe_imap_ssl", &[]), Some(0.0));
}
