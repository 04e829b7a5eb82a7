//! The `smtp` prober against aiosmtpd (STARTTLS, implicit TLS, AUTH, forced
//! envelope failures) and against scripted misbehaving servers.

use std::time::Duration;

use checkit::probe::{Outcome, Phase, Reason};

use crate::support::module::{failure, run_block, secret_file, unix_time};
use crate::support::peers::{SmtpFailure, SmtpOpts, SmtpServer, SmtpStage};
use crate::support::{Leaf, ScriptStep, closed_port, hang_server, scripted_line_server};

const TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the `smtp` prober with `block` as the module's `smtp:` block.
async fn probe(block: &str, target: &str, timeout: Duration) -> Outcome {
    run_block("smtp", block, target, timeout).await
}

#[tokio::test]
async fn starttls_auth_and_envelope_check_succeed_without_sending_mail() {
    let smtp = crate::peer!(SmtpServer::start(SmtpOpts { auth_required: true, ..SmtpOpts::default() }).await);
    let secret = secret_file(&smtp.password);
    let block = format!(
        "tls: starttls\ntls_config:\n  ca_file: {ca}\nbanner_regexp: \"^220 smtp\\\\.checkit\\\\.test \"\n\
         ehlo: probe.checkit.test\nusername: {user}\npassword_file: {pw}\nmail_from: probe@checkit.test\n\
         rcpt_to: postmaster@checkit.test",
        ca = smtp.certs.ca.cert_path.display(),
        user = smtp.user,
        pw = secret.path().display(),
    );
    let outcome = probe(&block, &smtp.addr.to_string(), TIMEOUT).await;
    assert_eq!(failure(&outcome), None, "{:#?}\n{}", outcome.log, smtp.diagnostics());
    let registry = &outcome.registry;
    assert_eq!(registry.get("probe_success", &[]), Some(1.0));
    assert_eq!(registry.get("probe_smtp_ssl", &[]), Some(1.0));
    assert_eq!(registry.get("probe_smtp_status_code", &[]), Some(250.0), "RSET is the last reply");
    assert_eq!(registry.get("probe_smtp_server_info", &[("software", "aiosmtpd")]), Some(1.0));
    assert_eq!(registry.get("probe_ssl_earliest_cert_expiry", &[]), Some(unix_time(smtp.certs.valid.not_after)));
    assert!(registry.contains("probe_ssl_last_chain_info"));
    assert!(registry.contains("probe_tls_version_info"));
    for phase in ["resolve", "connect", "tls", "processing", "auth", "query"] {
        let seconds = registry.get("probe_smtp_duration_seconds", &[("phase", phase)]);
        assert!(seconds.is_some_and(|s| s >= 0.0), "{phase}: {seconds:?}");
    }
    assert!(registry.get("probe_smtp_duration_seconds", &[("phase", "tls")]).unwrap_or(0.0) > 0.0);
    assert_eq!(registry.get("probe_ip_protocol", &[]), Some(4.0));
    assert!(smtp.messages().is_empty(), "a probe never sends DATA");
    let log = outcome.log.join("\n");
    assert!(!log.contains(&smtp.password), "password in the log:\n{log}");
    assert!(log.contains("AUTH PLAIN <secret>"), "{log}");
}

#[tokio::test]
async fn implicit_tls_and_auth_login() {
    let smtp = crate::peer!(SmtpServer::start(SmtpOpts { implicit_tls: true, ..SmtpOpts::default() }).await);
    let secret = secret_file(&smtp.password);
    let block = format!(
        "tls: implicit\ntls_config:\n  ca_file: {ca}\n  server_name: localhost\nusername: {user}\n\
         password_file: {pw}\nauth_mechanism: LOGIN",
        ca = smtp.certs.ca.cert_path.display(),
        user = smtp.user,
        pw = secret.path().display(),
    );
    let tls_addr = smtp.tls_addr.expect("implicit TLS listener");
    let outcome = probe(&block, &tls_addr.to_string(), TIMEOUT).await;
    assert_eq!(failure(&outcome), None, "{:#?}\n{}", outcome.log, smtp.diagnostics());
    assert_eq!(outcome.registry.get("probe_smtp_ssl", &[]), Some(1.0));
    assert_eq!(outcome.registry.get("probe_smtp_status_code", &[]), Some(235.0));
    assert!(!outcome.log.join("\n").contains(&smtp.password));
}

#[tokio::test]
async fn wrong_password_is_auth_failed() {
    let smtp = crate::peer!(SmtpServer::start(SmtpOpts::default()).await);
    let secret = secret_file("not-the-password");
    let block = format!(
        "tls: starttls\ntls_config:\n  ca_file: {ca}\nusername: {user}\npassword_file: {pw}",
        ca = smtp.certs.ca.cert_path.display(),
        user = smtp.user,
        pw = secret.path().display(),
    );
    let outcome = probe(&block, &smtp.addr.to_string(), TIMEOUT).await;
    assert_eq!(failure(&outcome), Some((Phase::Auth, Reason::AuthFailed)), "{:#?}", outcome.log);
    assert_eq!(outcome.registry.get("probe_smtp_status_code", &[]), Some(535.0));
    assert_eq!(outcome.registry.get("probe_failure_info", &[("phase", "auth"), ("reason", "auth_failed")]), Some(1.0));
}

#[tokio::test]
async fn untrusted_and_expired_certificates_fail_the_handshake() {
    for (leaf, reason) in [(Leaf::Untrusted, Reason::TlsUntrusted), (Leaf::Expired, Reason::TlsExpired)] {
        let smtp = crate::peer!(SmtpServer::start(SmtpOpts { leaf, ..SmtpOpts::default() }).await);
        let block = format!("tls: starttls\ntls_config:\n  ca_file: {}", smtp.certs.ca.cert_path.display());
        let outcome = probe(&block, &smtp.addr.to_string(), TIMEOUT).await;
        assert_eq!(failure(&outcome), Some((Phase::Tls, reason)), "{leaf:?}: {:#?}", outcome.log);
        assert_eq!(outcome.registry.get("probe_smtp_ssl", &[]), Some(0.0));
        assert!(!outcome.registry.contains("probe_tls_version_info"), "no TLS families without a handshake");
    }
}

#[tokio::test]
async fn rejected_recipient_fails_the_query_phase() {
    let smtp = crate::peer!(SmtpServer::start(SmtpOpts::default()).await);
    smtp.set_failure(SmtpStage::Rcpt, Some(SmtpFailure::Permanent));
    let outcome = probe("tls: none\nrcpt_to: nobody@checkit.test", &smtp.addr.to_string(), TIMEOUT).await;
    assert_eq!(failure(&outcome), Some((Phase::Query, Reason::Query)), "{:#?}", outcome.log);
    assert_eq!(outcome.registry.get("probe_smtp_status_code", &[]), Some(550.0));
    assert_eq!(outcome.registry.get("probe_smtp_ssl", &[]), Some(0.0));
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
            "probe_smtp_duration_seconds",
            "probe_smtp_ssl",
            "probe_smtp_status_code",
            "probe_success"
        ]
    );
    assert_eq!(outcome.registry.get("probe_smtp_status_code", &[]), Some(0.0));
    assert_eq!(outcome.registry.get("probe_smtp_duration_seconds", &[("phase", "auth")]), Some(0.0));
}

#[tokio::test]
async fn silent_server_times_out_within_the_deadline() {
    let server = hang_server().await;
    let timeout = Duration::from_millis(800);
    for (tls, phase) in [("none", Phase::Processing), ("implicit", Phase::Tls)] {
        let outcome = probe(&format!("tls: {tls}"), &server.addr.to_string(), timeout).await;
        assert_eq!(failure(&outcome), Some((phase, Reason::Timeout)), "{tls}: {:#?}", outcome.log);
        assert!(outcome.duration < timeout + Duration::from_secs(2), "{tls}: took {:?}", outcome.duration);
        let spent = outcome.registry.get("probe_smtp_duration_seconds", &[("phase", phase.as_str())]);
        assert!(spent.is_some_and(|seconds| seconds > 0.5), "{tls}: {spent:?}");
    }
}

#[tokio::test]
async fn http_server_instead_of_smtp_is_an_unexpected_response() {
    let server = scripted_line_server(vec![
        ScriptStep::send("HTTP/1.1 400 Bad Request"),
        ScriptStep::send("Content-Length: 0"),
        ScriptStep::send(""),
    ])
    .await;
    let outcome = probe("", &server.addr.to_string(), TIMEOUT).await;
    assert_eq!(failure(&outcome), Some((Phase::Processing, Reason::UnexpectedResponse)), "{:#?}", outcome.log);
}

#[tokio::test]
async fn greeting_must_match_banner_regexp() {
    let server = scripted_line_server(vec![ScriptStep::send("220 mx.example ESMTP Postfix")]).await;
    let outcome = probe("banner_regexp: \"Exim\"", &server.addr.to_string(), TIMEOUT).await;
    assert_eq!(failure(&outcome), Some((Phase::Processing, Reason::Regex)));
    assert_eq!(outcome.registry.get("probe_smtp_server_info", &[("software", "postfix")]), Some(1.0));
}

/// A server whose EHLO reply does not offer STARTTLS.
async fn server_without_starttls() -> crate::support::fake::FakeServer {
    scripted_line_server(vec![
        ScriptStep::send("220 plain.example ESMTP"),
        ScriptStep::expect("^EHLO "),
        ScriptStep::send("250-plain.example"),
        ScriptStep::send("250 PIPELINING"),
        ScriptStep::expect("^QUIT"),
        ScriptStep::send("221 bye"),
    ])
    .await
}

#[tokio::test]
async fn starttls_not_offered_fails_unless_opportunistic() {
    let server = server_without_starttls().await;
    let outcome = probe("tls: starttls", &server.addr.to_string(), TIMEOUT).await;
    assert_eq!(failure(&outcome), Some((Phase::Tls, Reason::UnexpectedResponse)), "{:#?}", outcome.log);

    let server = server_without_starttls().await;
    let outcome = probe("tls: opportunistic", &server.addr.to_string(), TIMEOUT).await;
    assert_eq!(failure(&outcome), None, "{:#?}", outcome.log);
    assert_eq!(outcome.registry.get("probe_smtp_ssl", &[]), Some(0.0));
    let sent = server.received_lines();
    assert!(sent[0].starts_with("EHLO [127.0.0.1]"), "default EHLO name is the address literal: {sent:?}");
}

#[tokio::test]
async fn data_after_the_starttls_go_ahead_is_refused() {
    // Command injection (CVE-2011-0411 class): bytes sent before the handshake
    // must not be read as if they came over TLS.
    let server = scripted_line_server(vec![
        ScriptStep::send("220 evil.example ESMTP"),
        ScriptStep::expect("^EHLO "),
        ScriptStep::send("250-evil.example"),
        ScriptStep::send("250 STARTTLS"),
        ScriptStep::expect("^STARTTLS"),
        ScriptStep::send("220 go ahead\r\n250 injected"),
        ScriptStep::Sleep(Duration::from_secs(2)),
    ])
    .await;
    let outcome = probe("tls: starttls", &server.addr.to_string(), TIMEOUT).await;
    assert_eq!(failure(&outcome), Some((Phase::Tls, Reason::UnexpectedResponse)), "{:#?}", outcome.log);
}
