//! The `postgres` prober against a real PostgreSQL (password auth, TLS on
//! and off) and against servers that misbehave.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::db::{
    TaskServer, assert_db_families, assert_expiry, assert_failure, assert_success, failure, password_file, probe,
    wrong_protocol_server,
};
use crate::support::peers::{Postgres, PostgresOpts};
use crate::support::{closed_port, hang_server};

const TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn postgres_prober_against_a_real_server() {
    let pg = crate::peer!(Postgres::start(PostgresOpts::default()).await);
    let dir = tempfile::tempdir().expect("tempdir");
    let good = password_file(&dir, &pg.password);
    let target = pg.addr.to_string();
    let ca = pg.certs.ca.cert_path.display().to_string();
    let login = format!("user: {}, password_file: {good}, database: {}", pg.user, pg.database);
    let run = |block: String| {
        let target = target.clone();
        async move { probe("postgres", &format!("{{{block}}}"), &target, TIMEOUT).await }
    };

    // Plain login and a query whose first value and row count are checked.
    let outcome = run(format!(
        "{login}, sslmode: disable, query: 'select current_user, 2', expect_rows: 1, expect_value: {}, \
         expect_value_regex: '^check'",
        pg.user
    ))
    .await;
    assert_success(&outcome);
    assert_db_families(&outcome, "postgres", false);
    assert_eq!(outcome.registry.get("probe_ip_protocol", &[]), Some(4.0));
    let versions: Vec<String> = outcome
        .registry
        .encode()
        .lines()
        .filter(|line| line.starts_with("probe_postgres_version_info{"))
        .map(str::to_string)
        .collect();
    assert_eq!(versions.len(), 1, "{versions:?}");
    let version =
        versions[0].strip_prefix("probe_postgres_version_info{version=\"").and_then(|rest| rest.strip_suffix("\"} 1"));
    let version = version.unwrap_or_else(|| panic!("{versions:?}"));
    assert!(version.starts_with("15.") && !version.contains(' '), "only the number: {version:?}");
    for phase in ["auth", "query"] {
        let seconds = outcome.registry.get("probe_postgres_duration_seconds", &[("phase", phase)]).unwrap();
        assert!(seconds > 0.0, "{phase} was timed");
    }
    assert_eq!(outcome.registry.get("probe_postgres_duration_seconds", &[("phase", "tls")]), Some(0.0));

    // verify-full against the test CA: TLS families for cert expiry alerts.
    let outcome =
        run(format!("{login}, sslmode: verify-full, tls_config: {{ca_file: {ca}, server_name: localhost}}")).await;
    assert_success(&outcome);
    assert_db_families(&outcome, "postgres", true);
    assert_expiry(&outcome, pg.certs.valid.not_after);
    assert_eq!(outcome.registry.get("probe_tls_version_info", &[("version", "TLS 1.3")]), Some(1.0));
    let chain = outcome.registry.get("probe_ssl_last_chain_expiry_timestamp_seconds", &[]).unwrap();
    assert!(chain > 0.0, "a verified chain has a real expiry: {chain}");
    assert!(outcome.registry.get("probe_postgres_duration_seconds", &[("phase", "tls")]).unwrap() > 0.0);

    // The default sslmode (prefer) encrypts without verifying, as libpq does.
    let outcome = run(login.clone()).await;
    assert_success(&outcome);
    assert_db_families(&outcome, "postgres", true);
    assert_eq!(outcome.registry.get("probe_ssl_last_chain_expiry_timestamp_seconds", &[]), Some(-62_135_596_800.0));

    // verify-ca checks the chain only; verify-full also the name.
    let wrong_name = format!("tls_config: {{ca_file: {ca}, server_name: wrong.example.test}}");
    assert_success(&run(format!("{login}, sslmode: verify-ca, {wrong_name}")).await);
    let outcome = run(format!("{login}, sslmode: verify-full, {wrong_name}")).await;
    assert_failure(&outcome, "tls", "tls_untrusted");

    // Untrusted: the system roots do not know the test CA. No TLS families,
    // as blackbox does for a handshake that fails verification.
    let outcome = run(format!("{login}, sslmode: verify-full, tls_config: {{server_name: localhost}}")).await;
    assert_failure(&outcome, "tls", "tls_untrusted");
    assert_db_families(&outcome, "postgres", false);

    // Wrong password (SQLSTATE 28P01).
    let bad = tempfile::tempdir().expect("tempdir");
    let wrong = password_file(&bad, "not-the-password");
    let outcome = run(format!("user: {}, password_file: {wrong}, sslmode: disable", pg.user)).await;
    assert_failure(&outcome, "auth", "auth_failed");
    assert!(!outcome.registry.contains("probe_postgres_version_info"));
    assert!(outcome.log.iter().all(|line| !line.contains(&pg.password)), "the password never reaches the log");

    // No password configured, but the server asks for one.
    let outcome = run(format!("user: {}, sslmode: disable", pg.user)).await;
    assert_failure(&outcome, "auth", "config");

    // A refusal that is not about credentials: an unknown database.
    let outcome = run(format!("user: {}, password_file: {good}, database: nope", pg.user)).await;
    assert_failure(&outcome, "auth", "status");

    // Query failures and unmet expectations.
    let outcome = run(format!("{login}, query: 'select * from no_such_table'")).await;
    assert_failure(&outcome, "query", "query");
    let outcome = run(format!("{login}, query: 'select 1', expect_value: '2'")).await;
    assert_failure(&outcome, "query", "query");
    let outcome = run(format!("{login}, query: 'select 1 where false', expect_rows: 1")).await;
    assert_failure(&outcome, "query", "query");
    let outcome = run(format!("{login}, query: 'select null::text', expect_value_regex: '.*'")).await;
    assert_failure(&outcome, "query", "query");
}

#[tokio::test]
async fn postgres_prober_when_tls_is_required_by_the_server() {
    let pg = crate::peer!(Postgres::start(PostgresOpts { require_tls: true, ..PostgresOpts::default() }).await);
    let dir = tempfile::tempdir().expect("tempdir");
    let login = format!("user: {}, password_file: {}", pg.user, password_file(&dir, &pg.password));
    let target = pg.addr.to_string();
    // pg_hba rejects the plain connection (SQLSTATE 28000): an auth failure.
    let outcome = probe("postgres", &format!("{{{login}, sslmode: disable}}"), &target, TIMEOUT).await;
    assert_failure(&outcome, "auth", "auth_failed");
    let outcome = probe("postgres", &format!("{{{login}, sslmode: require}}"), &target, TIMEOUT).await;
    assert_success(&outcome);
    assert_db_families(&outcome, "postgres", true);
}

#[tokio::test]
async fn postgres_prober_against_broken_servers() {
    let block = "{user: checkit, sslmode: prefer}";

    let closed = closed_port();
    let outcome = probe("postgres", block, &closed.to_string(), TIMEOUT).await;
    assert_failure(&outcome, "connect", "refused");
    assert_db_families(&outcome, "postgres", false);

    // Accepts, never answers: the deadline holds, in the phase that waited.
    let hang = hang_server().await;
    let timeout = Duration::from_secs(1);
    let start = Instant::now();
    let outcome = probe("postgres", block, &hang.addr.to_string(), timeout).await;
    assert_failure(&outcome, "tls", "timeout");
    assert!(start.elapsed() < timeout + Duration::from_secs(2), "took {:?}", start.elapsed());
    assert!(outcome.duration < timeout + Duration::from_millis(500), "reported {:?}", outcome.duration);
    let outcome = probe("postgres", "{user: checkit, sslmode: disable}", &hang.addr.to_string(), timeout).await;
    assert_failure(&outcome, "auth", "timeout");

    // A web server where PostgreSQL was expected.
    let web = wrong_protocol_server(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n").await;
    for sslmode in ["prefer", "disable"] {
        let outcome =
            probe("postgres", &format!("{{user: checkit, sslmode: {sslmode}}}"), &web.addr.to_string(), TIMEOUT).await;
        assert_eq!(failure(&outcome).map(|(_, reason)| reason), Some("unexpected_response"), "sslmode {sslmode}");
    }

    // A server that declines TLS fails sslmode=require with tls_policy.
    let declines = declining_server().await;
    let outcome = probe("postgres", "{user: checkit, sslmode: require}", &declines.addr.to_string(), TIMEOUT).await;
    assert_failure(&outcome, "tls", "tls_policy");
}

/// Answers the SSL request with `N` (no TLS) and then says nothing.
async fn declining_server() -> TaskServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut request = [0u8; 8];
            if stream.read_exact(&mut request).await.is_ok() {
                let _ = stream.write_all(b"N").await;
            }
            held.push(stream);
        }
    });
    TaskServer::new(addr, task)
}

#[test]
fn database_examples_load_and_mistakes_are_all_reported() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples.d");
    let mut yaml = String::from("modules:\n");
    for kind in ["postgres", "mysql", "mssql"] {
        yaml.push_str(&std::fs::read_to_string(root.join(format!("{kind}.yml"))).expect("example"));
    }
    let config = checkit::settings::Config::parse(&yaml).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(config.modules.len(), 3);

    let broken = format!(
        "modules:
  pg:
    prober: postgres
    postgres: {{sslmode: verify-full, tls_config: {{insecure_skip_verify: true}}, expect_rows: 1}}
  my:
    prober: mysql
    mysql: {{user: u, password_file: /nonexistent/checkit, password_env: X, tls: VERIFY_CA}}
  ms:
    prober: mssql
    mssql: {{user: u, query: ' ', application_name: {}}}
",
        "x".repeat(129)
    );
    let Err(checkit::config::Error::Invalid(problems)) = checkit::settings::Config::parse(&broken) else {
        panic!("the broken config loaded");
    };
    let mut paths: Vec<&str> = problems.iter().map(|problem| problem.path.as_str()).collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "modules.ms.mssql.application_name",
            "modules.ms.mssql.query",
            "modules.my.mysql.password_file",
            "modules.my.mysql.password_file",
            "modules.pg.postgres.expect_rows",
            "modules.pg.postgres.tls_config.insecure_skip_verify",
            "modules.pg.postgres.user",
        ],
        "{problems:#?}"
    );
}
