//! The `mysql` prober against a real MariaDB (password auth, TLS on and off)
//! and against servers that misbehave.

use std::time::{Duration, Instant};

use mysql_common::constants::{CapabilityFlags, StatusFlags};
use mysql_common::packets::HandshakePacket;
use mysql_common::proto::MySerialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::db::{
    TaskServer, assert_db_families, assert_expiry, assert_failure, assert_success, password_file, probe,
    wrong_protocol_server,
};
use crate::support::peers::{MariaDb, MariaDbOpts};
use crate::support::{closed_port, hang_server};

const TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn mysql_prober_against_a_real_mariadb() {
    let db = crate::peer!(MariaDb::start(MariaDbOpts::default()).await);
    let dir = tempfile::tempdir().expect("tempdir");
    let good = password_file(&dir, &db.password);
    let target = db.addr.to_string();
    let ca = db.certs.ca.cert_path.display().to_string();
    let login = format!("user: {}, password_file: {good}, database: {}", db.user, db.database);
    let run = |block: String| {
        let target = target.clone();
        async move { probe("mysql", &format!("{{{block}}}"), &target, TIMEOUT).await }
    };

    // Plain login and a query whose first value and row count are checked.
    let outcome = run(format!(
        "{login}, tls: disabled, query: 'select 42, 1 union all select 7, 2', expect_rows: 2, expect_value: '42', \
         expect_value_regex: '^4'"
    ))
    .await;
    assert_success(&outcome);
    assert_db_families(&outcome, "mysql", false);
    let encoded = outcome.registry.encode();
    let version = encoded.lines().find(|line| line.starts_with("probe_mysql_version_info{")).expect("version");
    assert!(version.starts_with("probe_mysql_version_info{version=\"10.") && version.contains("MariaDB"), "{version}");
    for phase in ["connect", "auth", "query"] {
        assert!(outcome.registry.get("probe_mysql_duration_seconds", &[("phase", phase)]).unwrap() > 0.0, "{phase}");
    }

    // VERIFY_IDENTITY against the test CA: the TLS families for expiry alerts.
    let outcome =
        run(format!("{login}, tls: VERIFY_IDENTITY, tls_config: {{ca_file: {ca}, server_name: localhost}}")).await;
    assert_success(&outcome);
    assert_db_families(&outcome, "mysql", true);
    assert_expiry(&outcome, db.certs.valid.not_after);
    assert!(outcome.registry.get("probe_ssl_last_chain_expiry_timestamp_seconds", &[]).unwrap() > 0.0);
    assert!(outcome.registry.get("probe_mysql_duration_seconds", &[("phase", "tls")]).unwrap() > 0.0);

    // The default (preferred) encrypts without verifying.
    let outcome = run(format!("{login}, query: \"show status like 'Ssl_cipher'\", expect_rows: 1")).await;
    assert_success(&outcome);
    assert_db_families(&outcome, "mysql", true);
    assert_eq!(outcome.registry.get("probe_ssl_last_chain_expiry_timestamp_seconds", &[]), Some(-62_135_596_800.0));

    // verify_ca ignores the name; verify_identity does not; untrusted fails.
    let wrong_name = format!("tls_config: {{ca_file: {ca}, server_name: wrong.example.test}}");
    assert_success(&run(format!("{login}, tls: verify_ca, {wrong_name}")).await);
    assert_failure(&run(format!("{login}, tls: verify_identity, {wrong_name}")).await, "tls", "tls_untrusted");
    let outcome = run(format!("{login}, tls: verify_identity, tls_config: {{server_name: localhost}}")).await;
    assert_failure(&outcome, "tls", "tls_untrusted");
    assert_db_families(&outcome, "mysql", false);

    // Wrong password (error 1045), over TLS and without.
    let bad = tempfile::tempdir().expect("tempdir");
    let wrong = password_file(&bad, "not-the-password");
    for tls in ["disabled", "required"] {
        let outcome = run(format!("user: {}, password_file: {wrong}, tls: {tls}", db.user)).await;
        assert_failure(&outcome, "auth", "auth_failed");
        assert!(outcome.registry.contains("probe_mysql_version_info"), "the greeting came before the login");
    }

    // Refusals that are not about credentials, query failures, expectations.
    assert_failure(
        &run(format!("user: {}, password_file: {good}, database: nope", db.user)).await,
        "auth",
        "auth_failed",
    );
    assert_failure(&run(format!("{login}, query: 'select * from no_such_table'")).await, "query", "query");
    assert_failure(&run(format!("{login}, query: 'select 1', expect_value: '2'")).await, "query", "query");
    assert_failure(
        &run(format!("{login}, query: 'select 1 from dual where false', expect_rows: 1")).await,
        "query",
        "query",
    );
    assert_failure(&run(format!("{login}, query: 'select null', expect_value_regex: '.*'")).await, "query", "query");
    assert_success(&run(format!("{login}, query: 'do 1'")).await);
}

#[tokio::test]
async fn mysql_prober_against_broken_servers() {
    let block = "{user: checkit}";

    let closed = closed_port();
    let outcome = probe("mysql", block, &closed.to_string(), TIMEOUT).await;
    assert_failure(&outcome, "connect", "refused");
    assert_db_families(&outcome, "mysql", false);

    // Accepts, never greets: the deadline holds.
    let hang = hang_server().await;
    let timeout = Duration::from_secs(1);
    let start = Instant::now();
    let outcome = probe("mysql", block, &hang.addr.to_string(), timeout).await;
    assert_failure(&outcome, "connect", "timeout");
    assert!(start.elapsed() < timeout + Duration::from_secs(2), "took {:?}", start.elapsed());
    assert!(outcome.duration < timeout + Duration::from_millis(500), "reported {:?}", outcome.duration);

    // A web server, and a greeting of an unknown protocol version.
    let web = wrong_protocol_server(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n").await;
    assert_failure(&probe("mysql", block, &web.addr.to_string(), TIMEOUT).await, "connect", "unexpected_response");
    let old = greeting_server(9, CapabilityFlags::CLIENT_PROTOCOL_41).await;
    assert_failure(&probe("mysql", block, &old.addr.to_string(), TIMEOUT).await, "connect", "unexpected_response");

    // A server without TLS: `required` refuses to log in, `preferred` goes
    // on in the clear (and this one denies everyone).
    let plain =
        greeting_server(10, CapabilityFlags::CLIENT_PROTOCOL_41 | CapabilityFlags::CLIENT_SECURE_CONNECTION).await;
    let outcome = probe("mysql", "{user: checkit, tls: required}", &plain.addr.to_string(), TIMEOUT).await;
    assert_failure(&outcome, "tls", "tls_policy");
    let outcome = probe("mysql", "{user: checkit, tls: preferred}", &plain.addr.to_string(), TIMEOUT).await;
    assert_failure(&outcome, "auth", "auth_failed");
    assert_eq!(outcome.registry.get("probe_mysql_version_info", &[("version", "8.0.36-fake")]), Some(1.0));
}

/// Greets with `protocol` and `capabilities`, then answers any login with
/// error 1045 (access denied).
async fn greeting_server(protocol: u8, capabilities: CapabilityFlags) -> TaskServer {
    let mut greeting = Vec::new();
    HandshakePacket::new(
        protocol,
        &b"8.0.36-fake"[..],
        7,
        *b"12345678",
        Some(&b"abcdefghijkl"[..]),
        capabilities,
        45,
        StatusFlags::empty(),
        Some(&b"mysql_native_password"[..]),
    )
    .serialize(&mut greeting);
    let mut denied = vec![0xFF, 0x15, 0x04, b'#'];
    denied.extend_from_slice(b"28000Access denied for user 'checkit'");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let greeting = greeting.clone();
            let denied = denied.clone();
            tokio::spawn(async move {
                let _ = write_packet(&mut stream, 0, &greeting).await;
                let mut header = [0u8; 4];
                if stream.read_exact(&mut header).await.is_err() {
                    return;
                }
                let length = usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
                let mut body = vec![0u8; length];
                if stream.read_exact(&mut body).await.is_ok() {
                    let _ = write_packet(&mut stream, header[3].wrapping_add(1), &denied).await;
                }
            });
        }
    });
    TaskServer::new(addr, task)
}

async fn write_packet(stream: &mut tokio::net::TcpStream, seq: u8, payload: &[u8]) -> std::io::Result<()> {
    let mut packet = (payload.len() as u32).to_le_bytes()[..3].to_vec();
    packet.push(seq);
    packet.extend_from_slice(payload);
    stream.write_all(&packet).await
}
