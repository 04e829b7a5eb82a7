//! The `mssql` prober against a protocol-level TDS fake (no real SQL Server
//! runs here, see `support::tds_fake`) and against servers that misbehave.

use std::time::{Duration, Instant};

use crate::support::db::{
    assert_db_families, assert_expiry, assert_failure, assert_success, password_file, probe, wrong_protocol_server,
};
use crate::support::tds_fake::{Login, TdsFake, TdsOpts, VERSION_TEXT};
use crate::support::{Leaf, TestCerts, closed_port, hang_server};

const TIMEOUT: Duration = Duration::from_secs(10);
const ENCRYPT_ON: u8 = 1;
const ENCRYPT_NOT_SUP: u8 = 2;
const ENCRYPT_REQ: u8 = 3;

#[tokio::test]
async fn mssql_prober_without_encryption() {
    let fake = TdsFake::start(TdsOpts::default()).await;
    let opts = TdsOpts::default();
    let dir = tempfile::tempdir().expect("tempdir");
    let good = password_file(&dir, &opts.password);
    let target = fake.addr().to_string();
    let login = format!("user: {}, password_file: {good}, encryption: off", opts.user);

    let block = format!("{{{login}, database: probes, query: 'SELECT 42', expect_rows: 1, expect_value: '42'}}");
    let outcome = probe("mssql", &block, &target, TIMEOUT).await;
    assert_success(&outcome);
    assert_db_families(&outcome, "mssql", false);
    assert_eq!(outcome.registry.get("probe_mssql_version_info", &[("version", "16.0.1000")]), Some(1.0));
    for phase in ["connect", "auth", "query"] {
        assert!(outcome.registry.get("probe_mssql_duration_seconds", &[("phase", phase)]).unwrap() > 0.0, "{phase}");
    }
    assert_eq!(
        fake.logins(),
        [Login {
            user: opts.user.clone(),
            password: opts.password.clone(),
            app_name: "checkit".into(),
            database: "probes".into(),
            tls: false,
        }]
    );

    let regex = format!("{{{login}, query: 'SELECT @@VERSION', expect_value_regex: '^Microsoft SQL Server 2022'}}");
    assert_success(&probe("mssql", &regex, &target, TIMEOUT).await);
    assert!(VERSION_TEXT.starts_with("Microsoft SQL Server 2022"));

    // `on` falls back to plain text when the server cannot encrypt.
    let on = format!("{{user: {}, password_file: {good}, encryption: on}}", opts.user);
    let outcome = probe("mssql", &on, &target, TIMEOUT).await;
    assert_success(&outcome);
    assert_db_families(&outcome, "mssql", false);

    // Wrong password: error 18456.
    let bad = tempfile::tempdir().expect("tempdir");
    let wrong = format!("{{user: {}, password_file: {}, encryption: off}}", opts.user, password_file(&bad, "nope"));
    let outcome = probe("mssql", &wrong, &target, TIMEOUT).await;
    assert_failure(&outcome, "auth", "auth_failed");
    assert!(outcome.registry.contains("probe_mssql_version_info"), "PRELOGIN came before the login");

    // Query failures and unmet expectations.
    let run = |extra: &str| format!("{{{login}, {extra}}}");
    for extra in [
        "query: 'SELECT * FROM no_such_table'",
        "query: 'SELECT 1', expect_value: '2'",
        "query: 'SELECT 1 WHERE 1=0', expect_rows: 1",
    ] {
        assert_failure(&probe("mssql", &run(extra), &target, TIMEOUT).await, "query", "query");
    }

    // `required` refuses a server that cannot encrypt.
    let required = format!("{{user: {}, password_file: {good}, encryption: required}}", opts.user);
    assert_failure(&probe("mssql", &required, &target, TIMEOUT).await, "tls", "tls_policy");
}

#[tokio::test]
async fn mssql_prober_with_tls_inside_prelogin() {
    let certs = TestCerts::generate();
    let opts = TdsOpts { encryption: ENCRYPT_ON, tls: Some(certs.server_config(Leaf::Valid)), ..TdsOpts::default() };
    let fake = TdsFake::start(opts.clone()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let login = format!("user: {}, password_file: {}", opts.user, password_file(&dir, &opts.password));
    let ca = certs.ca.cert_path.display().to_string();
    let target = fake.addr().to_string();

    let block = format!(
        "{{{login}, tls_config: {{ca_file: {ca}, server_name: localhost}}, query: 'SELECT 7', expect_value: '7'}}"
    );
    let outcome = probe("mssql", &block, &target, TIMEOUT).await;
    assert_success(&outcome);
    assert_db_families(&outcome, "mssql", true);
    assert_expiry(&outcome, certs.valid.not_after);
    assert_eq!(outcome.registry.get("probe_tls_version_info", &[("version", "TLS 1.3")]), Some(1.0));
    assert!(outcome.registry.get("probe_ssl_last_chain_expiry_timestamp_seconds", &[]).unwrap() > 0.0);
    assert!(fake.logins().iter().all(|login| login.tls), "LOGIN7 travelled encrypted");

    // SQL Server negotiates TLS 1.2 on TDS 7.x; the same framing works.
    let block = format!(
        "{{{login}, encryption: required, tls_config: {{ca_file: {ca}, server_name: localhost, max_version: TLS12}}}}"
    );
    let outcome = probe("mssql", &block, &target, TIMEOUT).await;
    assert_success(&outcome);
    assert_eq!(outcome.registry.get("probe_tls_version_info", &[("version", "TLS 1.2")]), Some(1.0));

    // Without the test CA the certificate is untrusted; insecure_skip_verify
    // accepts it and still describes it.
    let outcome =
        probe("mssql", &format!("{{{login}, tls_config: {{server_name: localhost}}}}"), &target, TIMEOUT).await;
    assert_failure(&outcome, "tls", "tls_untrusted");
    assert_db_families(&outcome, "mssql", false);
    let insecure = format!("{{{login}, tls_config: {{insecure_skip_verify: true}}}}");
    let outcome = probe("mssql", &insecure, &target, TIMEOUT).await;
    assert_success(&outcome);
    assert_expiry(&outcome, certs.valid.not_after);

    // Wrong password over TLS.
    let bad = tempfile::tempdir().expect("tempdir");
    let wrong = format!(
        "{{user: {}, password_file: {}, tls_config: {{insecure_skip_verify: true}}}}",
        opts.user,
        password_file(&bad, "nope")
    );
    assert_failure(&probe("mssql", &wrong, &target, TIMEOUT).await, "auth", "auth_failed");
}

#[tokio::test]
async fn mssql_prober_against_an_untrusted_or_demanding_server() {
    let certs = TestCerts::generate();
    let untrusted = TdsFake::start(TdsOpts {
        encryption: ENCRYPT_REQ,
        tls: Some(certs.server_config(Leaf::Untrusted)),
        ..TdsOpts::default()
    })
    .await;
    let ca = certs.ca.cert_path.display().to_string();
    let block = format!("{{user: checkit, tls_config: {{ca_file: {ca}, server_name: localhost}}}}");
    let outcome = probe("mssql", &block, &untrusted.addr().to_string(), TIMEOUT).await;
    assert_failure(&outcome, "tls", "tls_untrusted");
    assert!(untrusted.logins().is_empty(), "no LOGIN7 after a failed handshake");

    // `off` against a server that requires encryption.
    let outcome = probe("mssql", "{user: checkit, encryption: off}", &untrusted.addr().to_string(), TIMEOUT).await;
    assert_failure(&outcome, "tls", "tls_policy");
}

#[tokio::test]
async fn mssql_prober_against_broken_servers() {
    let block = "{user: checkit, encryption: off}";

    let closed = closed_port();
    let outcome = probe("mssql", block, &closed.to_string(), TIMEOUT).await;
    assert_failure(&outcome, "connect", "refused");
    assert_db_families(&outcome, "mssql", false);

    // Accepts, never answers PRELOGIN: the deadline holds.
    let hang = hang_server().await;
    let timeout = Duration::from_secs(1);
    let start = Instant::now();
    let outcome = probe("mssql", block, &hang.addr.to_string(), timeout).await;
    assert_failure(&outcome, "connect", "timeout");
    assert!(start.elapsed() < timeout + Duration::from_secs(2), "took {:?}", start.elapsed());
    assert!(outcome.duration < timeout + Duration::from_millis(500), "reported {:?}", outcome.duration);

    // A web server; a TDS reply with a broken option table.
    let web = wrong_protocol_server(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n").await;
    assert_failure(&probe("mssql", block, &web.addr.to_string(), TIMEOUT).await, "connect", "unexpected_response");
    let broken = wrong_protocol_server(&[0x04, 0x01, 0x00, 0x0E, 0, 0, 1, 0, 0x01, 0x02, 0x03, 0x00, 0x01, 0xFF]).await;
    assert_failure(&probe("mssql", block, &broken.addr.to_string(), TIMEOUT).await, "connect", "unexpected_response");

    // A server whose login reply is not a token stream.
    let garbled = TdsFake::start(TdsOpts { garbled_login_reply: true, ..TdsOpts::default() }).await;
    let outcome = probe("mssql", block, &garbled.addr().to_string(), TIMEOUT).await;
    assert_failure(&outcome, "auth", "unexpected_response");
    assert_eq!(ENCRYPT_NOT_SUP, TdsOpts::default().encryption);
}
