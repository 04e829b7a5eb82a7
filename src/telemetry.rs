//! The exporter's own long-lived metrics, served on `/metrics`.
//!
//! Kept apart from the per-probe registries: nothing here ever appears in a
//! `/probe` answer. blackbox_exporter's own names are kept where dashboards
//! and alert rules use them (`blackbox_exporter_config_last_reload_successful`).

pub mod process;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

/// `checkit_build_info`'s labels: version, git revision, target OS and architecture.
fn build_labels() -> Vec<(String, String)> {
    [
        ("version", env!("CARGO_PKG_VERSION")),
        ("revision", env!("CHECKIT_REVISION")),
        ("os", std::env::consts::OS),
        ("arch", std::env::consts::ARCH),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_string(), value.to_string()))
    .collect()
}

/// Labels of `checkit_probes_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProbeLabels {
    /// Module name (bounded by the config).
    pub module: String,
    /// `success` or the failure reason (a closed set).
    pub result: String,
}

/// Labels of `checkit_probe_requests_rejected_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectLabels {
    /// `unknown_module`, `missing_target`, `denied`, `overloaded`, `bad_request`.
    pub reason: String,
}

/// Handles to every exporter metric.
#[derive(Clone)]
pub struct Telemetry {
    /// The registry (the bridge registers into it too).
    pub registry: Arc<Mutex<Registry>>,
    /// blackbox-compatible reload status.
    pub reload_successful: Gauge,
    /// blackbox-compatible reload timestamp.
    pub reload_success_timestamp: Gauge<f64, AtomicU64>,
    /// blackbox-compatible unknown-module counter.
    pub module_unknown: Counter,
    /// Probes run, by module and result.
    pub probes: Family<ProbeLabels, Counter>,
    /// Probe requests refused before running.
    pub rejected: Family<RejectLabels, Counter>,
    /// Probes running now.
    pub in_flight: Gauge,
}

impl Telemetry {
    /// Creates and registers every exporter metric.
    pub fn new() -> Telemetry {
        let mut registry = Registry::default();
        let reload_successful = Gauge::default();
        registry.register(
            "blackbox_exporter_config_last_reload_successful",
            "Blackbox exporter config loaded successfully",
            reload_successful.clone(),
        );
        let reload_success_timestamp = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "blackbox_exporter_config_last_reload_success_timestamp_seconds",
            "Timestamp of the last successful configuration reload",
            reload_success_timestamp.clone(),
        );
        let module_unknown = Counter::default();
        registry.register(
            "blackbox_module_unknown",
            "Count of unknown modules requested by probes",
            module_unknown.clone(),
        );
        let build_info = Family::<Vec<(String, String)>, Gauge>::default();
        registry.register(
            "checkit_build_info",
            "A metric with a constant '1' value labeled by version, revision and the Rust target it was built for",
            build_info.clone(),
        );
        build_info.get_or_create(&build_labels()).set(1);
        registry.register_collector(Box::new(process::ProcessCollector));
        let probes = Family::<ProbeLabels, Counter>::default();
        registry.register(
            "checkit_probes",
            "Probes run, by module and result (success or failure reason)",
            probes.clone(),
        );
        let rejected = Family::<RejectLabels, Counter>::default();
        registry.register(
            "checkit_probe_requests_rejected",
            "Probe requests answered without probing, by reason",
            rejected.clone(),
        );
        let in_flight = Gauge::default();
        registry.register("checkit_probes_in_flight", "Probes running now", in_flight.clone());
        Telemetry {
            registry: Arc::new(Mutex::new(registry)),
            reload_successful,
            reload_success_timestamp,
            module_unknown,
            probes,
            rejected,
            in_flight,
        }
    }

    /// Counts a refused probe request.
    pub fn reject(&self, reason: &str) {
        self.rejected.get_or_create(&RejectLabels { reason: reason.to_string() }).inc();
    }

    /// Records a reload attempt.
    pub fn reloaded(&self, ok: bool) {
        self.reload_successful.set(i64::from(ok));
        if ok {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            self.reload_success_timestamp.set(now.as_secs_f64());
        }
    }

    /// Encodes the registry in the Prometheus text format 0.0.4, which every
    /// scraper and `promtool check metrics` read (see [`to_text_format`]).
    pub fn encode_text(&self) -> String {
        to_text_format(&self.encode())
    }

    /// Encodes the registry (OpenMetrics text).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Ok(registry) = self.registry.lock() {
            if let Err(err) = prometheus_client::encoding::text::encode(&mut out, &registry) {
                tracing::error!(error = %err, "Cannot encode metrics");
            }
        }
        out
    }
}

/// Rewrites OpenMetrics text (what `prometheus-client` writes) as text format
/// 0.0.4: counter families are named with their `_total` suffix, and `# UNIT`
/// and `# EOF` lines are dropped.
pub fn to_text_format(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = line
            .strip_prefix("# HELP ")
            .map(|rest| ("# HELP ", rest))
            .or_else(|| line.strip_prefix("# TYPE ").map(|rest| ("# TYPE ", rest)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let name = if counters.contains(name) { format!("{name}_total") } else { name.to_string() };
                out.push_str(&format!("{prefix}{name} {tail}\n"));
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

/// Every metric family name the exporter can emit, on `/probe` and `/metrics`,
/// as it appears in a scrape; the bridge keeps its own list next to its
/// registrations, and [`metric_names`] joins the two. The tidy test checks `alerts/` and `dashboards/`
/// against this list; each prober's tests check that what it emits is listed.
pub const METRIC_NAMES: &[&str] = &[
    // Handler.
    "probe_success",
    "probe_duration_seconds",
    "probe_failure_info",
    // Address selection.
    "probe_dns_lookup_time_seconds",
    "probe_ip_protocol",
    "probe_ip_addr_hash",
    // TLS, any prober.
    "probe_ssl_earliest_cert_expiry",
    "probe_ssl_last_chain_expiry_timestamp_seconds",
    "probe_ssl_last_chain_info",
    "probe_tls_version_info",
    "probe_tls_cipher_info",
    // HTTP.
    "probe_http_duration_seconds",
    "probe_http_status_code",
    "probe_http_content_length",
    "probe_http_uncompressed_body_length",
    "probe_http_redirects",
    "probe_http_ssl",
    "probe_http_version",
    "probe_http_last_modified_timestamp_seconds",
    "probe_failed_due_to_regex",
    // TCP / unix.
    "probe_failed_due_to_bytes",
    "probe_expect_info",
    // ICMP.
    "probe_icmp_duration_seconds",
    "probe_icmp_reply_hop_limit",
    // DNS.
    "probe_dns_duration_seconds",
    "probe_dns_answer_rrs",
    "probe_dns_authority_rrs",
    "probe_dns_additional_rrs",
    "probe_dns_query_succeeded",
    "probe_dns_serial",
    // gRPC.
    "probe_grpc_duration_seconds",
    "probe_grpc_status_code",
    "probe_grpc_healthcheck_response",
    "probe_grpc_ssl",
    // TLS handshake only (checkit).
    "probe_tls_duration_seconds",
    "probe_tls_leaf_certificate_expiry_timestamp_seconds",
    "probe_tls_certificate_verified",
    // RDAP (checkit).
    "probe_rdap_duration_seconds",
    "probe_rdap_status_code",
    "probe_rdap_cache_age_seconds",
    "probe_domain_expiration_timestamp_seconds",
    "probe_domain_registration_timestamp_seconds",
    "probe_domain_last_changed_timestamp_seconds",
    // Mail and FTP (checkit).
    "probe_smtp_duration_seconds",
    "probe_smtp_ssl",
    "probe_smtp_status_code",
    "probe_smtp_server_info",
    "probe_imap_duration_seconds",
    "probe_imap_ssl",
    "probe_imap_server_info",
    "probe_imap_mailbox_messages",
    "probe_pop3_duration_seconds",
    "probe_pop3_ssl",
    "probe_pop3_server_info",
    "probe_pop3_messages",
    "probe_pop3_maildrop_size_bytes",
    "probe_ftp_duration_seconds",
    "probe_ftp_ssl",
    "probe_ftp_status_code",
    "probe_ftp_server_info",
    "probe_ftp_directory_entries",
    "probe_ftp_file_modified_timestamp_seconds",
    // Databases (checkit).
    "probe_postgres_duration_seconds",
    "probe_postgres_ssl",
    "probe_postgres_version_info",
    "probe_mysql_duration_seconds",
    "probe_mysql_ssl",
    "probe_mysql_version_info",
    "probe_mssql_duration_seconds",
    "probe_mssql_ssl",
    "probe_mssql_version_info",
    // Exporter.
    "blackbox_exporter_config_last_reload_successful",
    "blackbox_exporter_config_last_reload_success_timestamp_seconds",
    "blackbox_module_unknown_total",
    "checkit_build_info",
    "checkit_probes_total",
    "checkit_probe_requests_rejected_total",
    "checkit_probes_in_flight",
];

/// Every metric family name checkit can emit: exporter, process, bridge and checks.
pub fn metric_names() -> impl Iterator<Item = &'static str> {
    METRIC_NAMES
        .iter()
        .chain(process::METRIC_NAMES)
        .chain(crate::bridge::metrics::METRIC_NAMES)
        .chain(crate::checks::metrics::METRIC_NAMES)
        .chain(crate::heartbeat::METRIC_NAMES)
        .chain(crate::agent::METRIC_NAMES)
        .copied()
}

/// Whether checkit can emit a family called `name`.
pub fn is_metric_name(name: &str) -> bool {
    metric_names().any(|known| known == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmetrics_counters_become_text_format_counters() {
        let telemetry = Telemetry::new();
        telemetry.module_unknown.inc();
        let text = telemetry.encode_text();
        assert!(
            text.contains("# HELP blackbox_module_unknown_total Count of unknown modules requested by probes"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE blackbox_module_unknown_total counter\nblackbox_module_unknown_total 1\n"),
            "{text}"
        );
        assert!(!text.contains("# EOF"), "{text}");
    }
}
