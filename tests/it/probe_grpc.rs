//! The `grpc` prober against a real gRPC server (tonic + tonic-health), nginx
//! as a port that is not gRPC, a closed port and a server that never answers.

use crate::support::module::{assert_listed, failure};
use crate::support::{Leaf, TestCerts, closed_port, hang_server};
use checkit::probe::{Outcome, Phase, Reason};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// A tonic health server; aborted on drop.
pub(crate) struct GrpcServer {
    pub(crate) addr: SocketAddr,
    pub(crate) reporter: HealthReporter,
    /// Values of the `x-checkit` metadata key seen in requests.
    pub(crate) seen_metadata: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a health server on 127.0.0.1, with TLS when `tls` names a leaf.
pub(crate) async fn grpc_server(tls: Option<(&TestCerts, Leaf)>) -> GrpcServer {
    let (reporter, health) = tonic_health::server::health_reporter();
    let seen_metadata: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = seen_metadata.clone();
    let service = InterceptedService::new(health, move |request: tonic::Request<()>| {
        if let Some(value) = request.metadata().get("x-checkit") {
            seen.lock().expect("lock").push(value.to_str().expect("ASCII metadata").to_string());
        }
        Ok(request)
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let mut builder = Server::builder();
    if let Some((certs, leaf)) = tls {
        let files = certs.leaf(leaf);
        let identity = Identity::from_pem(&files.cert_pem, &files.key_pem);
        builder = builder.tls_config(ServerTlsConfig::new().identity(identity)).expect("tls config");
    }
    let router = builder.add_service(service);
    let task = tokio::spawn(async move {
        let _ = router.serve_with_incoming(TcpIncoming::from(listener)).await;
    });
    GrpcServer { addr, reporter, seen_metadata, task }
}

/// Runs module `m` (the YAML of its `grpc:` block) against `target`.
async fn probe(grpc_block: &str, target: &str, timeout: Duration) -> Outcome {
    let text = format!("modules:\n  m:\n    prober: grpc\n    grpc:\n{}", indent(grpc_block, 6));
    let config = checkit::settings::Config::parse(&text).unwrap_or_else(|err| panic!("{err}\n{text}"));
    crate::support::module::run_with(&config, &config.modules["m"], target, None, timeout).await
}

fn indent(text: &str, spaces: usize) -> String {
    text.lines().map(|line| format!("{}{line}\n", " ".repeat(spaces))).collect()
}

fn serving_statuses(outcome: &Outcome) -> Vec<(String, f64)> {
    ["UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"]
        .iter()
        .map(|status| {
            let value = outcome.registry.get("probe_grpc_healthcheck_response", &[("serving_status", status)]);
            (status.to_string(), value.unwrap_or_else(|| panic!("{status} missing")))
        })
        .collect()
}

fn only(status: &str) -> Vec<(String, f64)> {
    ["UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"]
        .iter()
        .map(|name| (name.to_string(), if *name == status { 1.0 } else { 0.0 }))
        .collect()
}

const TLS_FAMILIES: [&str; 4] = [
    "probe_ssl_earliest_cert_expiry",
    "probe_ssl_last_chain_expiry_timestamp_seconds",
    "probe_ssl_last_chain_info",
    "probe_tls_version_info",
];

#[tokio::test]
async fn serving_server_succeeds_with_blackbox_families() {
    let server = grpc_server(None).await;
    let outcome = probe(
        "preferred_ip_protocol: ip4\nmetadata:\n  x-checkit: [probe-1]\n  X-Upper: [kept]",
        &server.addr.to_string(),
        Duration::from_secs(5),
    )
    .await;
    assert!(outcome.success(), "{:?}\n{}", outcome.error, outcome.log.join("\n"));
    assert_listed(&outcome);
    let registry = &outcome.registry;
    assert_eq!(
        registry.names().collect::<Vec<_>>(),
        [
            "probe_dns_lookup_time_seconds",
            "probe_duration_seconds",
            "probe_grpc_duration_seconds",
            "probe_grpc_healthcheck_response",
            "probe_grpc_ssl",
            "probe_grpc_status_code",
            "probe_ip_addr_hash",
            "probe_ip_protocol",
            "probe_success",
        ]
    );
    assert_eq!(registry.get("probe_grpc_status_code", &[]), Some(0.0));
    assert_eq!(registry.get("probe_grpc_ssl", &[]), Some(0.0));
    assert_eq!(registry.get("probe_ip_protocol", &[]), Some(4.0));
    assert_eq!(serving_statuses(&outcome), only("SERVING"));
    assert!(registry.get("probe_grpc_duration_seconds", &[("phase", "check")]).unwrap() > 0.0);
    assert!(registry.get("probe_grpc_duration_seconds", &[("phase", "resolve")]).is_some());
    assert_eq!(*server.seen_metadata.lock().unwrap(), ["probe-1"]);
    let text = registry.encode();
    assert!(text.contains("# HELP probe_grpc_healthcheck_response Response HealthCheck response\n"), "{text}");
    assert!(text.contains("# HELP probe_grpc_duration_seconds Duration of gRPC request by phase\n"), "{text}");
}

#[tokio::test]
async fn not_serving_service_fails_with_its_status() {
    let server = grpc_server(None).await;
    server.reporter.set_service_status("db", ServingStatus::NotServing).await;
    let outcome =
        probe("service: db\npreferred_ip_protocol: ip4", &server.addr.to_string(), Duration::from_secs(5)).await;
    assert_eq!(failure(&outcome), Some((Phase::Check, Reason::NotServing)));
    assert_eq!(outcome.registry.get("probe_grpc_status_code", &[]), Some(0.0));
    assert_eq!(serving_statuses(&outcome), only("NOT_SERVING"));
    assert_eq!(outcome.registry.get("probe_failure_info", &[("phase", "check"), ("reason", "not_serving")]), Some(1.0));

    server.reporter.set_service_status("db", ServingStatus::Serving).await;
    let outcome =
        probe("service: db\npreferred_ip_protocol: ip4", &server.addr.to_string(), Duration::from_secs(5)).await;
    assert!(outcome.success(), "{:?}", outcome.error);
}

#[tokio::test]
async fn unknown_service_reports_grpc_not_found() {
    let server = grpc_server(None).await;
    let outcome =
        probe("service: no.such.Service\npreferred_ip_protocol: ip4", &server.addr.to_string(), Duration::from_secs(5))
            .await;
    assert_eq!(failure(&outcome), Some((Phase::Request, Reason::Status)));
    assert_eq!(outcome.registry.get("probe_grpc_status_code", &[]), Some(5.0));
    assert_eq!(serving_statuses(&outcome), only("none"));
}

#[tokio::test]
async fn tls_server_succeeds_and_emits_tls_families_without_last_chain_expiry() {
    let certs = TestCerts::generate();
    let server = grpc_server(Some((&certs, Leaf::Valid))).await;
    let block =
        format!("tls: true\npreferred_ip_protocol: ip4\ntls_config:\n  ca_file: {}", certs.ca.cert_path.display());
    // The certificate names localhost: the name is the target's, the address the resolved one.
    let outcome = probe(&block, &format!("localhost:{}", server.addr.port()), Duration::from_secs(5)).await;
    assert!(outcome.success(), "{:?}\n{}", outcome.error, outcome.log.join("\n"));
    assert_listed(&outcome);
    let registry = &outcome.registry;
    assert_eq!(registry.get("probe_grpc_ssl", &[]), Some(1.0));
    assert_eq!(serving_statuses(&outcome), only("SERVING"));
    let not_after = certs.valid.not_after.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as f64;
    assert_eq!(registry.get("probe_ssl_earliest_cert_expiry", &[]), Some(not_after));
    assert!(registry.contains("probe_ssl_last_chain_info"));
    assert!(registry.contains("probe_tls_version_info"));
    assert!(!registry.contains("probe_ssl_last_chain_expiry_timestamp_seconds"));
    assert!(!registry.contains("probe_tls_cipher_info"));
}

#[tokio::test]
async fn untrusted_certificate_fails_before_any_tls_family() {
    let certs = TestCerts::generate();
    let server = grpc_server(Some((&certs, Leaf::Untrusted))).await;
    let block =
        format!("tls: true\npreferred_ip_protocol: ip4\ntls_config:\n  ca_file: {}", certs.ca.cert_path.display());
    let outcome = probe(&block, &format!("localhost:{}", server.addr.port()), Duration::from_secs(5)).await;
    assert_eq!(failure(&outcome), Some((Phase::Tls, Reason::TlsUntrusted)));
    assert_eq!(outcome.registry.get("probe_grpc_status_code", &[]), Some(14.0));
    assert_eq!(outcome.registry.get("probe_grpc_ssl", &[]), Some(0.0));
    for family in TLS_FAMILIES {
        assert!(!outcome.registry.contains(family), "{family} present");
    }
}

#[tokio::test]
async fn closed_port_is_unavailable() {
    let addr = closed_port();
    let outcome = probe("preferred_ip_protocol: ip4", &addr.to_string(), Duration::from_secs(5)).await;
    assert_eq!(failure(&outcome), Some((Phase::Connect, Reason::Refused)));
    assert_eq!(outcome.registry.get("probe_grpc_status_code", &[]), Some(14.0));
    assert_eq!(serving_statuses(&outcome), only("none"));
}

#[tokio::test]
async fn hanging_server_times_out_within_the_deadline() {
    let server = hang_server().await;
    let timeout = Duration::from_millis(800);
    let outcome = probe("preferred_ip_protocol: ip4", &server.addr.to_string(), timeout).await;
    assert_eq!(failure(&outcome), Some((Phase::Request, Reason::Timeout)));
    // DEADLINE_EXCEEDED, as grpc-go reports a call that ran out of time.
    assert_eq!(outcome.registry.get("probe_grpc_status_code", &[]), Some(4.0));
    assert!(outcome.duration < timeout + Duration::from_secs(2), "took {:?}", outcome.duration);
    assert!(outcome.registry.get("probe_grpc_duration_seconds", &[("phase", "check")]).unwrap() > 0.5);
}

#[tokio::test]
async fn http_servers_that_are_not_grpc_fail_as_grpc_clients_report() {
    use crate::peer;
    use crate::support::peers::{Nginx, NginxOpts};
    let nginx = peer!(Nginx::start(NginxOpts::default()).await);

    // HTTP/1.1 only: the HTTP/2 preface gets an HTTP/1 error page.
    let outcome = probe("preferred_ip_protocol: ip4", &nginx.addr.to_string(), Duration::from_secs(5)).await;
    assert_eq!(failure(&outcome), Some((Phase::Request, Reason::UnexpectedResponse)), "{}", outcome.log.join("\n"));
    assert_eq!(outcome.registry.get("probe_grpc_status_code", &[]), Some(14.0));
    assert_eq!(serving_statuses(&outcome), only("none"));

    // HTTP/2 over TLS, but an ordinary web server: its HTTP status is mapped.
    let block = format!(
        "tls: true\npreferred_ip_protocol: ip4\ntls_config:\n  ca_file: {}",
        nginx.certs.ca.cert_path.display()
    );
    let outcome = probe(&block, &format!("localhost:{}", nginx.tls_addr.port()), Duration::from_secs(5)).await;
    assert_eq!(failure(&outcome), Some((Phase::Request, Reason::Status)), "{}", outcome.log.join("\n"));
    // nginx answers 404, which gRPC maps to UNIMPLEMENTED.
    assert_eq!(outcome.registry.get("probe_grpc_status_code", &[]), Some(12.0));
    assert_eq!(outcome.registry.get("probe_grpc_ssl", &[]), Some(1.0));
    assert!(outcome.registry.contains("probe_ssl_earliest_cert_expiry"));
}

#[tokio::test]
async fn bad_targets_and_metadata_are_refused() {
    let outcome = probe("preferred_ip_protocol: ip4", "http://", Duration::from_secs(1)).await;
    assert_eq!(failure(&outcome), Some((Phase::Resolve, Reason::Config)));
    let text = "modules:\n  m:\n    prober: grpc\n    grpc:\n      metadata:\n        'bad key': [x]\n";
    let err = checkit::settings::Config::parse(text).unwrap_err().to_string();
    assert!(err.contains("modules.m.grpc.metadata.bad key"), "{err}");
}

#[test]
fn shipped_examples_parse() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/examples.d/grpc.yml");
    let text = std::fs::read_to_string(path).expect("read example");
    let config = checkit::settings::Config::parse(&format!("modules:\n{text}")).unwrap_or_else(|err| panic!("{err}"));
    assert!(config.modules.values().all(|module| module.prober.as_str() == "grpc"));
}
