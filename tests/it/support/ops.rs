//! The shipped examples (`examples/prometheus.yml`, `examples/alertmanager.yml`)
//! turned into configs for real Prometheus and Alertmanager peers on
//! loopback: the compose host names become local addresses and the intervals
//! shrink, everything else (relabeling, routing, auth) stays as shipped.

use checkit::config::yaml::{Value, parse_value, to_string};
use std::net::SocketAddr;
use std::path::Path;

fn example(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("read {}: {err}", path.display()))
}

/// Replaces `from` (which must occur) with `to`.
fn replace(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "the example no longer contains {from:?}");
    text.replace(from, to)
}

/// How to adapt `examples/prometheus.yml`.
pub struct PrometheusExample<'a> {
    /// Where both example exporters ("checkit" and "checkit-remote") are
    /// reached; one checkit then stands for two locations.
    pub exporter: SocketAddr,
    /// Directory holding `<module>.yml` target lists (replaces `targets/`).
    pub targets_dir: &'a Path,
    /// Glob of the rule files (replaces `../alerts/*.rules.yml`).
    pub rules_glob: &'a str,
    /// Alertmanager's address (replaces `alertmanager:9093`).
    pub alertmanager: SocketAddr,
    /// Scrape and evaluation interval (also the scrape timeout), e.g. `1s`.
    pub interval: &'a str,
    /// Extra constant labels for every probe series (what community
    /// dashboards filter on: `cluster`, `project`, `app`).
    pub extra_probe_labels: &'a [(&'a str, &'a str)],
}

impl PrometheusExample<'_> {
    /// The adapted `prometheus.yml`.
    pub fn render(&self) -> String {
        let mut text = example("prometheus.yml");
        let exporter = self.exporter.to_string();
        text = replace(&text, "\"checkit:9115\"", &format!("\"{exporter}\""));
        text = replace(&text, "\"checkit-remote:9115\"", &format!("\"{exporter}\""));
        text = replace(&text, "replacement: checkit:9115", &format!("replacement: \"{exporter}\""));
        text = replace(&text, "replacement: checkit-remote:9115", &format!("replacement: \"{exporter}\""));
        text = replace(&text, "\"targets/*.yml\"", &format!("\"{}/*.yml\"", self.targets_dir.display()));
        text = replace(&text, "../alerts/*.rules.yml", self.rules_glob);
        text = replace(&text, "\"alertmanager:9093\"", &format!("\"{}\"", self.alertmanager));
        text = replace(&text, "scrape_interval: 30s", &format!("scrape_interval: {}", self.interval));
        text = replace(&text, "scrape_timeout: 10s", &format!("scrape_timeout: {}", self.interval));
        text = replace(&text, "evaluation_interval: 30s", &format!("evaluation_interval: {}", self.interval));
        let mut config = parse_value(&text).expect("adapted prometheus.yml parses");
        let jobs = config.get_mut("scrape_configs").and_then(Value::as_sequence_mut).expect("scrape_configs");
        for job in jobs.iter_mut().filter(|job| job.get("metrics_path").and_then(Value::as_str) == Some("/probe")) {
            let relabel = job.get_mut("relabel_configs").and_then(Value::as_sequence_mut).expect("relabel_configs");
            for (label, value) in self.extra_probe_labels {
                let rule = format!("target_label: {label}\nreplacement: {value}");
                relabel.push(parse_value(&rule).expect("relabel rule"));
            }
        }
        to_string(&config)
    }
}

/// `examples/alertmanager.yml` delivering to `bridge` with the bearer token
/// in `token_file`, grouping fast enough for a test (`group_wait` 1s,
/// `group_interval` 2s).
pub fn alertmanager_example(bridge: SocketAddr, token_file: &Path) -> String {
    let mut text = example("alertmanager.yml");
    text = replace(&text, "http://checkit:9115/webhook", &format!("http://{bridge}/webhook"));
    text = replace(
        &text,
        "credentials_file: secrets/webhook-token",
        &format!("credentials_file: {}", token_file.display()),
    );
    text = replace(&text, "group_wait: 30s", "group_wait: 1s");
    text = replace(&text, "group_interval: 5m", "group_interval: 2s");
    text
}

/// Writes `<module>.yml` target lists in the examples' format into `dir`.
pub fn write_target_lists(dir: &Path, lists: &[(&str, Vec<String>)]) {
    for (module, targets) in lists {
        let targets: String = targets.iter().map(|target| format!("    - \"{target}\"\n")).collect();
        let text = format!("- labels:\n    module: {module}\n  targets:\n{targets}");
        std::fs::write(dir.join(format!("{module}.yml")), text).expect("write target list");
    }
}
