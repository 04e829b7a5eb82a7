//! The `unix` prober: PostgreSQL's own socket, scripted socket servers (plain
//! and TLS), and the failure cases. No IP families are emitted.

use crate::peer;
use crate::support::peers::{Postgres, PostgresOpts};
use crate::support::{Leaf, TestCerts};
use checkit::probe::{Outcome, Phase, Reason};
use checkit::settings::Config;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;

const TIMEOUT: Duration = Duration::from_secs(5);

async fn run(yaml: &str, target: &Path, timeout: Duration) -> Outcome {
    let config = Config::parse(yaml).unwrap_or_else(|err| panic!("config parses: {err}\n{yaml}"));
    let target = target.display().to_string();
    crate::support::module::run_with(&config, &config.modules["unix"], &target, None, timeout).await
}

fn failure(outcome: &Outcome) -> (Phase, Reason) {
    let error = outcome.error.as_ref().unwrap_or_else(|| panic!("probe should fail\n{}", outcome.log.join("\n")));
    (error.phase, error.reason)
}

fn assert_success(outcome: &Outcome) {
    assert!(outcome.success(), "{:?}\n{}", outcome.error, outcome.log.join("\n"));
}

/// Serves every connection on `path`: optional TLS, then `banner`, then
/// echoes each line it reads back as `echo: <line>`.
fn line_server(
    path: &Path,
    tls: Option<Arc<rustls::ServerConfig>>,
    banner: &'static str,
) -> tokio::task::JoinHandle<()> {
    let listener = UnixListener::bind(path).expect("bind unix socket");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    Some(config) => {
                        if let Ok(stream) = tokio_rustls::TlsAcceptor::from(config).accept(stream).await {
                            let _ = converse(stream, banner).await;
                        }
                    }
                    None => {
                        let _ = converse(stream, banner).await;
                    }
                }
            });
        }
    })
}

async fn converse<S: AsyncRead + AsyncWrite + Unpin>(stream: S, banner: &str) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    reader.get_mut().write_all(banner.as_bytes()).await?;
    reader.get_mut().flush().await?;
    let mut line = String::new();
    while reader.read_line(&mut line).await? > 0 {
        let reply = format!("echo: {}\r\n", line.trim_end());
        reader.get_mut().write_all(reply.as_bytes()).await?;
        reader.get_mut().flush().await?;
        line.clear();
    }
    Ok(())
}

fn socket_path(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

#[tokio::test]
async fn postgres_socket_answers_sslrequest_with_n() {
    let pg = peer!(Postgres::start(PostgresOpts::default()).await);
    let socket = pg.socket_dir.join(format!(".s.PGSQL.{}", pg.addr.port()));
    // PostgreSQL never offers TLS on its Unix socket: the SSLRequest gets 'N'.
    let yaml = "modules:\n  unix:\n    prober: unix\n    unix:\n      query_response:\n        \
                - send: !!binary AAAACATSFi8=\n        - expect_bytes: N\n";
    let outcome = run(yaml, &socket, TIMEOUT).await;
    assert_success(&outcome);
    let names: Vec<&str> = outcome.registry.names().collect();
    assert_eq!(
        names,
        ["probe_duration_seconds", "probe_failed_due_to_bytes", "probe_failed_due_to_regex", "probe_success"],
        "no IP families for unix sockets"
    );
    let yaml = yaml.replace("expect_bytes: N", "expect_bytes: S");
    let outcome = run(&yaml, &socket, TIMEOUT).await;
    assert_eq!(failure(&outcome), (Phase::Check, Reason::Bytes));
    assert_eq!(outcome.registry.get("probe_failed_due_to_bytes", &[]), Some(1.0));
}

#[tokio::test]
async fn dialogue_with_labels_over_a_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = socket_path(&dir, "banner.sock");
    let server = line_server(&path, None, "hello\r\nSERVICE v1.2.3 ready\r\n");
    let yaml = r#"
modules:
  unix:
    prober: unix
    unix:
      query_response:
        - expect: "^SERVICE v([0-9.]+) ready$"
          labels: [{name: version, value: "${1}"}]
          send: "PING ${1}"
        - expect: "^echo: PING 1.2.3$"
"#;
    let outcome = run(yaml, &path, TIMEOUT).await;
    assert_success(&outcome);
    assert_eq!(outcome.registry.get("probe_expect_info", &[("version", "1.2.3")]), Some(1.0));
    server.abort();
}

#[tokio::test]
async fn tls_over_a_socket() {
    let dir = tempfile::tempdir().unwrap();
    let certs = TestCerts::generate();
    let path = socket_path(&dir, "tls.sock");
    let server = line_server(&path, Some(certs.server_config(Leaf::Valid)), "READY\r\n");
    let yaml = format!(
        "modules:\n  unix:\n    prober: unix\n    unix:\n      tls: true\n      tls_config:\n        ca_file: {}\n      \
         query_response:\n        - expect: ^READY$\n",
        certs.ca.cert_path.display()
    );
    // With no server_name and no `hostname`, unix TLS verifies `localhost`.
    let outcome = run(&yaml, &path, TIMEOUT).await;
    assert_success(&outcome);
    assert_eq!(outcome.registry.get("probe_tls_version_info", &[("version", "TLS 1.3")]), Some(1.0));
    assert!(outcome.registry.contains("probe_ssl_last_chain_expiry_timestamp_seconds"));
    server.abort();

    let untrusted = socket_path(&dir, "untrusted.sock");
    let server = line_server(&untrusted, Some(certs.server_config(Leaf::Untrusted)), "READY\r\n");
    let outcome = run(&yaml, &untrusted, TIMEOUT).await;
    assert_eq!(failure(&outcome), (Phase::Tls, Reason::TlsUntrusted));
    assert!(!outcome.registry.contains("probe_tls_version_info"));
    server.abort();
}

#[tokio::test]
async fn missing_and_stale_sockets() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "modules:\n  unix:\n    prober: unix\n";
    let outcome = run(yaml, &socket_path(&dir, "missing.sock"), TIMEOUT).await;
    assert_eq!(failure(&outcome), (Phase::Connect, Reason::Connect));
    // A socket file whose listener is gone refuses connections.
    let stale = socket_path(&dir, "stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let outcome = run(yaml, &stale, TIMEOUT).await;
    assert_eq!(failure(&outcome), (Phase::Connect, Reason::Refused));
}

#[tokio::test]
async fn silent_socket_times_out_within_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let path = socket_path(&dir, "silent.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let yaml = "modules:\n  unix:\n    prober: unix\n    unix:\n      query_response:\n        - expect: ^never\n";
    let timeout = Duration::from_millis(600);
    let outcome = run(yaml, &path, timeout).await;
    assert_eq!(failure(&outcome), (Phase::Processing, Reason::Timeout));
    assert!(outcome.duration < timeout + Duration::from_millis(500), "took {:?}", outcome.duration);
    server.abort();
}

#[test]
fn shipped_example_modules_parse() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples.d/unix.yml");
    let fragment = std::fs::read_to_string(&path).expect("example file");
    let config =
        Config::parse(&format!("modules:\n{fragment}")).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    assert!(config.modules.values().all(|module| module.prober.as_str() == "unix"));
    assert!(!config.modules.is_empty());
    // `/config` shows the modules with defaults filled in; that text loads again.
    let shown = config.to_yaml();
    let again = Config::parse(&shown).unwrap_or_else(|err| panic!("/config output does not load: {err}\n{shown}"));
    assert_eq!(again.to_yaml(), shown);
}
