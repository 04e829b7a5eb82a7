//! Running one database probe module in-process, and the servers that only
//! database probers need: one that answers with the wrong protocol.

use std::net::SocketAddr;
use std::time::Duration;

use checkit::probe::Outcome;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A background server task on `addr`, aborted (closing its sockets) on drop.
pub struct TaskServer {
    /// Where it listens.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl TaskServer {
    /// Wraps a running accept loop.
    pub fn new(addr: SocketAddr, task: tokio::task::JoinHandle<()>) -> Self {
        TaskServer { addr, task }
    }
}

impl Drop for TaskServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Parses a config with one module `m` (`prober: <prober>` plus the block
/// `<prober>: <block>`, a YAML flow mapping) and probes `target` with it.
pub async fn probe(prober: &str, block: &str, target: &str, timeout: Duration) -> Outcome {
    let yaml = format!("modules:\n  m:\n    prober: {prober}\n    {prober}: {block}\n");
    let config = checkit::settings::Config::parse(&yaml).unwrap_or_else(|err| panic!("{err}\n{yaml}"));
    crate::support::module::run_with(&config, &config.modules["m"], target, None, timeout).await
}

/// `(phase, reason)` of a failed probe, `None` on success.
pub fn failure(outcome: &Outcome) -> Option<(&'static str, &'static str)> {
    outcome.error.as_ref().map(|err| (err.phase.as_str(), err.reason.as_str()))
}

/// Asserts success and says why not, with the probe log; every family
/// emitted must be listed in `telemetry::METRIC_NAMES`.
#[track_caller]
pub fn assert_success(outcome: &Outcome) {
    assert_listed(outcome);
    assert!(outcome.success(), "probe failed: {:?}\nlog:\n{}", outcome.error, outcome.log.join("\n"));
    assert_eq!(outcome.registry.get("probe_success", &[]), Some(1.0));
    assert!(!outcome.registry.contains("probe_failure_info"));
}

/// Asserts a failure with `phase` and `reason`, and its `probe_failure_info`.
#[track_caller]
pub fn assert_failure(outcome: &Outcome, phase: &str, reason: &str) {
    assert_listed(outcome);
    assert_eq!(failure(outcome), Some((phase, reason)), "log:\n{}", outcome.log.join("\n"));
    assert_eq!(outcome.registry.get("probe_success", &[]), Some(0.0));
    assert_eq!(outcome.registry.get("probe_failure_info", &[("phase", phase), ("reason", reason)]), Some(1.0));
}

#[track_caller]
fn assert_listed(outcome: &Outcome) {
    for name in outcome.registry.names() {
        assert!(checkit::telemetry::is_metric_name(name), "{name} is not in telemetry::METRIC_NAMES");
    }
}

/// Asserts that `probe_<proto>_duration_seconds` has every phase and
/// `probe_<proto>_ssl` is `ssl`.
#[track_caller]
pub fn assert_db_families(outcome: &Outcome, proto: &str, ssl: bool) {
    let durations = format!("probe_{proto}_duration_seconds");
    for phase in ["resolve", "connect", "tls", "auth", "query"] {
        let value = outcome.registry.get(&durations, &[("phase", phase)]);
        assert!(value.is_some_and(|seconds| seconds >= 0.0), "{durations}{{phase={phase}}} = {value:?}");
    }
    let expected = if ssl { 1.0 } else { 0.0 };
    assert_eq!(outcome.registry.get(&format!("probe_{proto}_ssl"), &[]), Some(expected));
    for family in ["probe_ssl_earliest_cert_expiry", "probe_tls_version_info", "probe_ssl_last_chain_info"] {
        assert_eq!(outcome.registry.contains(family), ssl, "{family} presence");
    }
}

/// A value of `probe_ssl_earliest_cert_expiry` matches a certificate's notAfter.
#[track_caller]
pub fn assert_expiry(outcome: &Outcome, not_after: std::time::SystemTime) {
    let expected = not_after.duration_since(std::time::UNIX_EPOCH).expect("after epoch").as_secs() as f64;
    assert_eq!(outcome.registry.get("probe_ssl_earliest_cert_expiry", &[]), Some(expected));
}

/// A server that reads whatever arrives, answers every connection with
/// `reply` and closes it: a web server where a database was expected.
pub async fn wrong_protocol_server(reply: &'static [u8]) -> TaskServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("local addr");
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                // Give the client a moment to speak first (PostgreSQL, TDS do).
                let mut buf = [0u8; 1024];
                let _ = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await;
                let _ = stream.write_all(reply).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    TaskServer::new(addr, task)
}

/// Writes `password` to a file in `dir` and returns its path.
pub fn password_file(dir: &tempfile::TempDir, password: &str) -> String {
    let path = dir.path().join("password");
    // A trailing newline, as editors leave it, must not be part of the secret.
    std::fs::write(&path, format!("{password}\n")).expect("write password file");
    path.display().to_string()
}
