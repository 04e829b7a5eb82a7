//! Running one prober module in-process: build a config around a YAML block,
//! run the probe, and read the outcome.

use std::time::Duration;

use checkit::probe::{Outcome, Phase, Reason};

/// Runs a module `prober: <prober>` whose `<prober>:` block is `block`
/// (YAML, indented as at the top level) against `target`.
pub async fn run_block(prober: &str, block: &str, target: &str, timeout: Duration) -> Outcome {
    let block: String = block.lines().map(|line| format!("      {line}\n")).collect();
    let yaml = format!("modules:\n  m:\n    prober: {prober}\n    {prober}:\n{block}");
    let config = checkit::settings::Config::parse(&yaml).unwrap_or_else(|err| panic!("{err}\n{yaml}"));
    run_with(&config, &config.modules["m"], target, None, timeout).await
}

/// The probe environment the tests share, as one process shares its app's:
/// the rdap cache then carries over between the probes of a test.
pub fn probe_env() -> &'static checkit::probe::Env {
    static ENV: std::sync::LazyLock<checkit::probe::Env> = std::sync::LazyLock::new(checkit::probe::Env::default);
    &ENV
}

/// Runs `module` of `config` against `target` with the shared [`probe_env`].
pub async fn run_with(
    config: &checkit::settings::Config,
    module: &checkit::probe::Module,
    target: &str,
    hostname: Option<&str>,
    timeout: Duration,
) -> Outcome {
    checkit::probe::run(module, target, hostname, timeout, &config.policy, probe_env()).await
}

/// The failure's phase and reason, `None` on success.
pub fn failure(outcome: &Outcome) -> Option<(Phase, Reason)> {
    outcome.error.as_ref().map(|err| (err.phase, err.reason))
}

/// A temp file holding `secret` plus a newline, as `*_file` keys read it.
pub fn secret_file(secret: &str) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), format!("{secret}\n")).expect("write secret");
    file
}

/// Whole seconds since the Unix epoch, as `probe_ssl_earliest_cert_expiry` reports.
pub fn unix_time(at: std::time::SystemTime) -> f64 {
    at.duration_since(std::time::UNIX_EPOCH).expect("after epoch").as_secs() as f64
}

/// Every family emitted is in the exporter's list of metric names.
pub fn assert_listed(outcome: &Outcome) {
    for name in outcome.registry.names() {
        assert!(checkit::telemetry::is_metric_name(name), "{name} is not in telemetry::METRIC_NAMES");
    }
}
