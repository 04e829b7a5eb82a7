//! The `pop3` prober against Dovecot (STLS, POP3S, plain) and against
//! scripted misbehaving servers.

use std::time::Duration;

use checkit::probe::{Outcome, Phase, Reason};

use crate::support::module::{failure, run_block, secret_file, unix_time};
use crate::support::peers::{Dovecot, DovecotOpts};
use crate::support::{Leaf, ScriptStep, closed_port, hang_server, scripted_line_server};

const TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the `pop3` prober with `block` as the module's `pop3:` block.
async fn probe(block: &str, target: &str, timeout: Duration) -> Outcome {
    run_block("pop3", block, target, timeout).await
}

#[tokio::test]
async fn stls_login_and_stat_succeed() {
    let dovecot = crate::peer!(Dovecot::start(DovecotOpts { messages: 2, ..DovecotOpts::default() }).await);
    let secret = secret_file(&dovecot.password);
    let block = dovecot
        .login_block(&secret, "tls: starttls\nbanner_regexp: \"^\\\\+OK Dovecot\"\nmin_messages: 2\nmax_messages: 2");
    let outcome = probe(&block, &dovecot.pop3_addr.to_string(), TIMEOUT).await;
    assert_eq!(failure(&outcome), None, "{:#?}\n{}", outcome.log, dovecot.diagnostics());
    let registry = &outcome.registry;
    assert_eq!(registry.get("probe_pop3_ssl", &[]), Some(1.0));
    assert_eq!(registry.get("probe_pop3_messages", &[]), Some(2.0));
    assert!(registry.get("probe_pop3_maildrop_size_bytes", &[]).is_some_and(|bytes| bytes > 0.0));
    assert_eq!(registry.get("probe_pop3_server_info", &[("software", "dovecot")]), Some(1.0));
    assert_eq!(registry.get("probe_ssl_earliest_cert_expiry", &[]), Some(unix_time(dovecot.certs.valid.not_after)));
    assert!(registry.get("probe_pop3_duration_seconds", &[("phase", "auth")]).is_some_and(|s| s > 0.0));
    let log = outcome.log.join("\n");
    assert!(!log.contains(&dovecot.password), "password in the log:\n{log}");
    assert!(log.contains("PASS <secret>"), "{log}");
}

#[tokio::test]
async fn pop3s_opportunistic_and_plain_sessions_succeed() {
    let dovecot = crate::peer!(Dovecot::start(DovecotOpts::default()).await);
    let secret = secret_file(&dovecot.password);
    let outcome = probe(&dovecot.login_block(&secret, "tls: implicit"), &dovecot.pop3s_addr.to_string(), TIMEOUT).await;
    assert_eq!(failure(&outcome), None, "{:#?}", outcome.log);
    assert_eq!(outcome.registry.get("probe_pop3_ssl", &[]), Some(1.0));

    // Dovecot lists STLS in CAPA, so opportunistic mode upgrades.
    let block = dovecot.login_block(&secret, "tls: opportunistic");
    let outcome = probe(&block, &dovecot.pop3_addr.to_string(), TIMEOUT).await;
    assert_eq!(failure(&outcome), None, "{:#?}", outcome.log);
    assert_eq!(outcome.registry.get("probe_pop3_ssl", &[]), Some(1.0));

    let outcome = probe(&dovecot.login_block(&secret, "tls: none"), &dovecot.pop3_addr.to_string(), TIMEOUT).await;
    assert_eq!(failure(&outcome), None, "{:#?}", outcome.log);
    assert_eq!(outcome.registry.get("probe_pop3_ssl", &[]), Some(0.0));
    assert!(!outcome.registry.contains("probe_tls_version_info"));
}

#[tokio::test]
async fn wrong_password_is_auth_failed() {
    let dovecot = crate::peer!(Dovecot::start(DovecotOpts::default()).await);
    let secret = secret_file("not-the-password");
    let outcome = probe(&dovecot.login_block(&secret, "tls: starttls"), &dovecot.pop3_addr.to_string(), TIMEOUT).await;
    assert_eq!(failure(&outcome), Some((Phase::Auth, Reason::AuthFailed)), "{:#?}", outcome.log);
    assert!(!outcome.registry.contains("probe_pop3_messages"));
}

#[tokio::test]
async fn message_count_out_of_bounds_fails_the_query_phase() {
    let dovecot = crate::peer!(Dovecot::start(DovecotOpts { messages: 3, ..DovecotOpts::default() }).await);
    let secret = secret_file(&dovecot.password);
    let outcome =
        probe(&dovecot.login_block(&secret, "max_messages: 1"), &dovecot.pop3_addr.to_string(), TIMEOUT).await;
    assert_eq!(failure(&outcome), Some((Phase::Query, Reason::Query)), "{:#?}", outcome.log);
    assert_eq!(outcome.registry.get("probe_pop3_messages", &[]), Some(3.0));
}

#[tokio::test]
async fn untrusted_certificate_fails_the_handshake() {
    let dovecot = crate::peer!(Dovecot::start(DovecotOpts { leaf: Leaf::Untrusted, ..DovecotOpts::default() }).await);
    let block = format!("tls: implicit\ntls_config:\n  ca_file: {}", dovecot.certs.ca.cert_path.display());
    let outcome = probe(&block, &dovecot.pop3s_addr.to_string(), TIMEOUT).await;
    assert_eq!(failure(&outcome), Some((Phase::Tls, Reason::TlsUntrusted)), "{:#?}", outcome.log);
    assert_eq!(outcome.registry.get("probe_pop3_ssl", &[]), Some(0.0));
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
            "probe_ip_addr_hash",
            "probe_ip_protocol",
            "probe_pop3_duration_seconds",
            "probe_pop3_ssl",
            "probe_success"
        ]
    );
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
    let server = scripted_line_server(vec![ScriptStep::send("220 smtp.example ESMTP")]).await;
    let outcome = probe("", &server.addr.to_string(), TIMEOUT).await;
    assert_eq!(failure(&outcome), Some((Phase::Processing, Reason::UnexpectedResponse)), "{:#?}", outcome.log);

    let server = scripted_line_server(vec![ScriptStep::send("-ERR [SYS/TEMP] Too many connections")]).await;
    let outcome = probe("", &server.addr.to_string(), TIMEOUT).await;
    assert_eq!(failure(&outcome), Some((Phase::Processing, Reason::UnexpectedResponse)));

    // STAT answered with garbage after a good login.
    let server = scripted_line_server(vec![
        ScriptStep::send("+OK ready"),
        ScriptStep::expect("^USER u$"),
        ScriptStep::send("+OK"),
        ScriptStep::expect("^PASS "),
        ScriptStep::send("+OK logged in"),
        ScriptStep::expect("^STAT$"),
        ScriptStep::send("+OK lots"),
    ])
    .await;
    let secret = secret_file("pw");
    let block = format!("username: u\npassword_file: {}", secret.path().display());
    let outcome = probe(&block, &server.addr.to_string(), TIMEOUT).await;
    assert_eq!(failure(&outcome), Some((Phase::Query, Reason::UnexpectedResponse)), "{:#?}", outcome.log);
}

#[tokio::test]
async fn stls_not_offered_fails_unless_opportunistic() {
    let server = scripted_line_server(vec![
        ScriptStep::send("+OK plain only"),
        ScriptStep::expect("^STLS$"),
        ScriptStep::send("-ERR unknown command"),
    ])
    .await;
    let outcome = probe("tls: starttls", &server.addr.to_string(), TIMEOUT).await;
    assert_eq!(failure(&outcome), Some((Phase::Tls, Reason::UnexpectedResponse)), "{:#?}", outcome.log);

    let server = scripted_line_server(vec![
        ScriptStep::send("+OK plain only"),
        ScriptStep::expect("^CAPA$"),
        ScriptStep::send("+OK"),
        ScriptStep::send("USER"),
        ScriptStep::send("."),
        ScriptStep::expect("^QUIT$"),
        ScriptStep::send("+OK bye"),
    ])
    .await;
    let outcome = probe("tls: opportunistic", &server.addr.to_string(), TIMEOUT).await;
    assert_eq!(failure(&outcome), None, "{:#?}", outcome.log);
    assert_eq!(outcome.registry.get("probe_pop3_ssl", &[]), Some(0.0));
    assert_eq!(server.received_lines(), ["CAPA", "QUIT"], "STLS is not sent when CAPA lacks it");
}
