//! The `ftp` prober against vsftpd (plain, explicit and implicit FTPS, named
//! and anonymous logins) and against scripted misbehaving servers.

use std::time::Duration;

use checkit::probe::{Outcome, Phase, Reason};

use crate::support::module::{failure, run_block, secret_file, unix_time};
use crate::support::peers::{FtpOpts, FtpServer};
use crate::support::{Leaf, ScriptStep, closed_port, hang_server, scripted_line_server};

const TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the `ftp` prober with `block` as the module's `ftp:` block.
async fn probe(block: &str, target: &str, timeout: Duration) -> Outcome {
    run_block("ftp", block, target, timeout).await
}

/// A block that logs in as the vsftpd user, plus `extra`.
fn login_block(ftp: &FtpServer, password_file: &tempfile::NamedTempFile, extra: &str) -> String {
    format!(
        "tls_config:\n  ca_file: {ca}\nusername: {user}\npassword_file: {pw}\n{extra}",
        ca = ftp.certs.ca.cert_path.display(),
        user = ftp.user,
        pw = password_file.path().display(),
    )
}

#[tokio::test]
async fn explicit_ftps_login_listing_and_file_check_succeed() {
    let ftp = crate::peer!(FtpServer::start(FtpOpts { require_tls: true, ..FtpOpts::default() }).await);
    let secret = secret_file(&ftp.password);
    let extra = format!("tls: starttls\nbanner_regexp: \"^220 \"\nlist_directory: .\nfile_exists: {}", ftp.file_name);
    let started = std::time::SystemTime::now();
    let outcome = probe(&login_block(&ftp, &secret, &extra), &ftp.addr.to_string(), TIMEOUT).await;
    assert_eq!(failure(&outcome), None, "{:#?}\n{}", outcome.log, ftp.diagnostics());
    let registry = &outcome.registry;
    assert_eq!(registry.get("probe_ftp_ssl", &[]), Some(1.0));
    assert_eq!(registry.get("probe_ftp_status_code", &[]), Some(213.0));
    assert_eq!(registry.get("probe_ftp_directory_entries", &[]), Some(1.0));
    let modified = registry.get("probe_ftp_file_modified_timestamp_seconds", &[]).expect("MDTM metric");
    assert!((modified - unix_time(started)).abs() < 600.0, "mtime {modified} far from now");
    assert_eq!(registry.get("probe_ssl_earliest_cert_expiry", &[]), Some(unix_time(ftp.certs.valid.not_after)));
    assert!(registry.contains("probe_tls_version_info"));
    for phase in ["resolve", "connect", "tls", "processing", "auth", "query"] {
        let seconds = registry.get("probe_ftp_duration_seconds", &[("phase", phase)]);
        assert!(seconds.is_some_and(|s| s >= 0.0), "{phase}: {seconds:?}");
    }
    let log = outcome.log.join("\n");
    assert!(!log.contains(&ftp.password), "password in the log:\n{log}");
}

#[tokio::test]
async fn implicit_ftps_lists_over_a_protected_data_connection() {
    let ftp = crate::peer!(FtpServer::start(FtpOpts { implicit_tls: true, ..FtpOpts::default() }).await);
    let secret = secret_file(&ftp.password);
    let target = ftp.implicit_tls_addr.expect("implicit listener").to_string();
    let outcome = probe(&login_block(&ftp, &secret, "tls: implicit\nlist_directory: ."), &target, TIMEOUT).await;
    assert_eq!(failure(&outcome), None, "{:#?}\n{}", outcome.log, ftp.diagnostics());
    let registry = &outcome.registry;
    assert_eq!(registry.get("probe_ftp_ssl", &[]), Some(1.0));
    assert_eq!(registry.get("probe_ftp_directory_entries", &[]), Some(1.0));
    assert_eq!(registry.get("probe_ftp_server_info", &[("software", "vsftpd")]), Some(1.0));
    for phase in ["connect", "tls", "processing"] {
        let seconds = registry.get("probe_ftp_duration_seconds", &[("phase", phase)]);
        assert!(seconds.is_some_and(|s| s > 0.0), "{phase} timed apart: {seconds:?}");
    }
}

#[tokio::test]
async fn anonymous_plain_login_lists_the_root() {
    let ftp = crate::peer!(FtpServer::start(FtpOpts { anonymous: true, ..FtpOpts::default() }).await);
    let outcome = probe("username: anonymous\nlist_directory: .", &ftp.addr.to_string(), TIMEOUT).await;
    assert_eq!(failure(&outcome), None, "{:#?}\n{}", outcome.log, ftp.diagnostics());
    assert_eq!(outcome.registry.get("probe_ftp_ssl", &[]), Some(0.0));
    assert_eq!(outcome.registry.get("probe_ftp_directory_entries", &[]), Some(1.0));
    assert!(!outcome.registry.contains("probe_ssl_earliest_cert_expiry"));
}

#[tokio::test]
async fn wrong_password_is_auth_failed() {
    let ftp = crate::peer!(FtpServer::start(FtpOpts::default()).await);
    let secret = secret_file("not-the-password");
    let outcome = probe(&login_block(&ftp, &secret, "tls: starttls"), &ftp.addr.to_string(), TIMEOUT).await;
    assert_eq!(failure(&outcome), Some((Phase::Auth, Reason::AuthFailed)), "{:#?}", outcome.log);
    assert_eq!(outcome.registry.get("probe_ftp_status_code", &[]), Some(530.0));
}

#[tokio::test]
async fn missing_file_fails_the_query_phase() {
    let ftp = crate::peer!(FtpServer::start(FtpOpts::default()).await);
    let secret = secret_file(&ftp.password);
    let outcome =
        probe(&login_block(&ftp, &secret, "file_exists: no-such-file.txt"), &ftp.addr.to_string(), TIMEOUT).await;
    assert_eq!(failure(&outcome), Some((Phase::Query, Reason::Query)), "{:#?}", outcome.log);
    assert_eq!(outcome.registry.get("probe_ftp_status_code", &[]), Some(550.0));
}

#[tokio::test]
async fn untrusted_certificate_fails_the_handshake() {
    let opts = FtpOpts { leaf: Leaf::Untrusted, implicit_tls: true, ..FtpOpts::default() };
    let ftp = crate::peer!(FtpServer::start(opts).await);
    let ca = ftp.certs.ca.cert_path.display();
    let implicit = ftp.implicit_tls_addr.expect("implicit listener").to_string();
    for (tls, target) in [("starttls", ftp.addr.to_string()), ("implicit", implicit)] {
        let outcome = probe(&format!("tls: {tls}\ntls_config:\n  ca_file: {ca}"), &target, TIMEOUT).await;
        assert_eq!(failure(&outcome), Some((Phase::Tls, Reason::TlsUntrusted)), "{tls}: {:#?}", outcome.log);
        assert_eq!(outcome.registry.get("probe_ftp_ssl", &[]), Some(0.0));
        assert!(!outcome.registry.contains("probe_tls_version_info"), "{tls}");
    }
}

#[tokio::test]
async fn closed_port_is_refused() {
    for tls in ["none", "implicit"] {
        let outcome = probe(&format!("tls: {tls}"), &closed_port().to_string(), TIMEOUT).await;
        assert_eq!(failure(&outcome), Some((Phase::Connect, Reason::Refused)), "{tls}: {:#?}", outcome.log);
        let names: Vec<&str> = outcome.registry.names().collect();
        assert_eq!(
            names,
            [
                "probe_dns_lookup_time_seconds",
                "probe_duration_seconds",
                "probe_failure_info",
                "probe_ftp_duration_seconds",
                "probe_ftp_ssl",
                "probe_ftp_status_code",
                "probe_ip_addr_hash",
                "probe_ip_protocol",
                "probe_success"
            ],
            "{tls}"
        );
    }
}

#[tokio::test]
async fn silent_server_times_out_within_the_deadline() {
    let server = hang_server().await;
    let timeout = Duration::from_millis(800);
    for (tls, phase) in [("none", Phase::Processing), ("starttls", Phase::Processing), ("implicit", Phase::Tls)] {
        let outcome = probe(&format!("tls: {tls}"), &server.addr.to_string(), timeout).await;
        assert_eq!(failure(&outcome), Some((phase, Reason::Timeout)), "{tls}: {:#?}", outcome.log);
        assert!(outcome.duration < timeout + Duration::from_secs(2), "{tls}: took {:?}", outcome.duration);
        let spent = outcome.registry.get("probe_ftp_duration_seconds", &[("phase", phase.as_str())]);
        assert!(spent.is_some_and(|seconds| seconds > 0.5), "{tls}: {spent:?}");
    }
}

#[tokio::test]
async fn protocol_surprises_are_unexpected_responses() {
    for script in [
        vec![ScriptStep::send("HTTP/1.1 400 Bad Request"), ScriptStep::send("")],
        vec![ScriptStep::send("SSH-2.0-OpenSSH_9.2p1 Debian-2")],
        vec![ScriptStep::send("421 Too many users")],
    ] {
        let server = scripted_line_server(script).await;
        let outcome = probe("", &server.addr.to_string(), TIMEOUT).await;
        assert_eq!(failure(&outcome), Some((Phase::Processing, Reason::UnexpectedResponse)), "{:#?}", outcome.log);
    }
}

#[tokio::test]
async fn auth_tls_refused_fails_unless_opportunistic() {
    let server = scripted_line_server(vec![
        ScriptStep::send("220 plain ftp"),
        ScriptStep::expect("^AUTH TLS$"),
        ScriptStep::send("500 AUTH not understood"),
    ])
    .await;
    let outcome = probe("tls: starttls", &server.addr.to_string(), TIMEOUT).await;
    assert_eq!(failure(&outcome), Some((Phase::Tls, Reason::UnexpectedResponse)), "{:#?}", outcome.log);
    assert_eq!(outcome.registry.get("probe_ftp_status_code", &[]), Some(500.0));

    let server = scripted_line_server(vec![
        ScriptStep::send("220 plain ftp"),
        ScriptStep::expect("^FEAT$"),
        ScriptStep::send("211-Features:"),
        ScriptStep::send(" PASV"),
        ScriptStep::send("211 End"),
        ScriptStep::expect("^QUIT$"),
        ScriptStep::send("221 Goodbye"),
    ])
    .await;
    let outcome = probe("tls: opportunistic", &server.addr.to_string(), TIMEOUT).await;
    assert_eq!(failure(&outcome), None, "{:#?}", outcome.log);
    assert_eq!(outcome.registry.get("probe_ftp_ssl", &[]), Some(0.0));
    assert_eq!(server.received_lines(), ["FEAT", "QUIT"], "AUTH TLS is not sent when FEAT lacks it");
}
