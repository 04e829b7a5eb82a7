//! The Prometheus side of scheduled checks.
//!
//! - On `/metrics`: per check `checkit_check_*` gauges labelled `check`,
//!   `module`, `target` and the check's own labels (14 series a check: 5
//!   `state` values, 5 uptime windows and 4 single gauges), plus
//!   `checkit_checks_*` counters about the scheduler itself. Heartbeats (checks
//!   without a prober) are in the `checkit_check_*` families too, with empty
//!   `module` and `target`.
//! - `GET /metrics/checks`: each check's last result in blackbox's own
//!   families (`probe_success`, `probe_http_status_code`, …) labelled
//!   `instance` (the target) and `module`, for blackbox dashboards with
//!   `honor_labels: true` (probed checks only).
//! - `GET /api/v1/sd`: Prometheus HTTP service discovery listing the probed
//!   checks as `/probe` targets.
//!
//! The per-check gauges are a `prometheus_client` collector reading the
//! slots at scrape time; `/metrics/checks` is written by hand like `/probe`.

use super::Slot;
use super::rollup::WINDOWS;
use super::state::State;
use crate::probe::metrics::{escape_help, escape_label_value, format_float};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

/// Every metric family name of scheduled checks (as scraped).
pub const METRIC_NAMES: &[&str] = &[
    "checkit_check_state",
    "checkit_check_last_success",
    "checkit_check_last_run_timestamp_seconds",
    "checkit_check_last_duration_seconds",
    "checkit_check_paused",
    "checkit_check_uptime_ratio",
    "checkit_checks_runs_total",
    "checkit_checks_lateness_seconds",
    "checkit_checks_store_errors_total",
    "checkit_checks_notifications_total",
    "checkit_check_location_state",
    "checkit_check_location_last_success",
    "checkit_check_location_last_run_timestamp_seconds",
    "checkit_check_location_last_duration_seconds",
    "checkit_agent_batches_total",
    "checkit_agent_last_seen_timestamp_seconds",
    "checkit_agent_silent",
];

/// `{result="…"}`
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `success`, `failure` (or, for notifications, `submitted`, `failed`).
    pub result: &'static str,
}

/// `{agent="…",result="…"}`
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AgentLabels {
    /// The agent's name.
    pub agent: String,
    /// `stored` or `duplicate`.
    pub result: &'static str,
}

/// The scheduler's own metrics.
#[derive(Clone)]
pub struct Metrics {
    /// Runs by result.
    pub runs: Family<ResultLabels, Counter>,
    /// Actual minus planned start.
    pub lateness: Histogram,
    /// Results or state changes the store refused.
    pub store_errors: Counter,
    /// Notifications handed to the pipeline, by result.
    pub notifications: Family<ResultLabels, Counter>,
    /// Agent batches accepted, by agent and whether they were new.
    pub agent_batches: Family<AgentLabels, Counter>,
}

impl Metrics {
    /// Creates and registers the families.
    pub fn register(registry: &mut Registry) -> Metrics {
        let metrics = Metrics {
            runs: Family::default(),
            lateness: Histogram::new([0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            store_errors: Counter::default(),
            notifications: Family::default(),
            agent_batches: Family::default(),
        };
        for result in ["success", "failure"] {
            let _ = metrics.runs.get_or_create(&ResultLabels { result });
        }
        for result in ["submitted", "failed"] {
            let _ = metrics.notifications.get_or_create(&ResultLabels { result });
        }
        registry.register("checkit_checks_runs", "Scheduled check runs, by result", metrics.runs.clone());
        registry.register_with_unit(
            "checkit_checks_lateness",
            "How late scheduled checks started compared with their slot",
            Unit::Seconds,
            metrics.lateness.clone(),
        );
        registry.register(
            "checkit_checks_store_errors",
            "Check results or state changes the store could not write",
            metrics.store_errors.clone(),
        );
        registry.register(
            "checkit_checks_notifications",
            "Check notifications handed to the notification pipeline, by result",
            metrics.notifications.clone(),
        );
        registry.register(
            "checkit_agent_batches",
            "Result batches accepted from agents, by agent and result (stored, duplicate)",
            metrics.agent_batches.clone(),
        );
        metrics
    }
}

fn write_labels(out: &mut String, labels: &[(&str, &str)]) {
    out.push('{');
    for (index, (name, value)) in labels.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        let _ = write!(out, "{name}=\"{}\"", escape_label_value(value));
    }
    out.push('}');
}

/// One sample of a per-check family: an extra label and the value.
type Sample = (Option<(&'static str, &'static str)>, f64);
/// A per-check family: name, help and the samples of one check.
type CheckFamily<'a> = (&'a str, &'a str, &'a dyn Fn(&super::View) -> Vec<Sample>);

/// The per-check `checkit_check_*` gauges, encoded at each scrape of
/// `/metrics` from the slots (registered into the long-lived registry).
pub(crate) struct Collector(pub(crate) Arc<super::Shared>);

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("checks::metrics::Collector").finish_non_exhaustive()
    }
}

impl prometheus_client::collector::Collector for Collector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let views: Vec<super::View> = self.0.slots().iter().map(|slot| slot.view()).collect();
        let families: [CheckFamily; 6] = [
            (
                "checkit_check_state",
                "The state of a scheduled check: 1 for the current state, 0 for the others",
                &|view| {
                    State::ALL
                        .iter()
                        .map(|state| (Some(("state", state.as_str())), f64::from(u8::from(*state == view.state))))
                        .collect()
                },
            ),
            ("checkit_check_last_success", "Whether the last run of a scheduled check succeeded", &|view| {
                view.last.as_ref().map(|last| (None, f64::from(u8::from(last.success)))).into_iter().collect()
            }),
            (
                "checkit_check_last_run_timestamp_seconds",
                "When the last run of a scheduled check started, Unix seconds",
                &|view| {
                    view.last
                        .as_ref()
                        .map(|last| (None, last.at.timestamp_millis() as f64 / 1000.0))
                        .into_iter()
                        .collect()
                },
            ),
            ("checkit_check_last_duration_seconds", "How long the last run of a scheduled check took", &|view| {
                view.last.as_ref().and_then(|last| Some((None, last.duration_seconds?))).into_iter().collect()
            }),
            ("checkit_check_paused", "Whether a scheduled check is paused (by config or API)", &|view| {
                vec![(None, f64::from(u8::from(view.paused)))]
            }),
            (
                "checkit_check_uptime_ratio",
                "Share of successful runs outside maintenance over the window, from hourly (24h, 7d) or daily roll-ups",
                &|view| {
                    WINDOWS
                        .iter()
                        .zip(view.uptime)
                        .filter_map(|((window, _), uptime)| uptime.map(|ratio| (Some(("window", *window)), ratio)))
                        .collect()
                },
            ),
        ];
        encode_locations(&views, &mut encoder)?;
        encode_agents(&self.0, &mut encoder)?;
        for (name, help, samples_of) in families {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for view in &views {
                for (extra, value) in samples_of(view) {
                    let mut labels: Vec<(&str, &str)> = vec![
                        ("check", view.check.name.as_str()),
                        ("module", view.check.module.as_str()),
                        ("target", view.check.target.as_str()),
                    ];
                    labels.extend(view.check.labels.iter().map(|(name, value)| (name.as_str(), value.as_str())));
                    labels.extend(extra);
                    ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
                }
            }
        }
        Ok(())
    }
}

/// Per agent location of checks with `locations`: `checkit_check_location_state`
/// (unknown, up, down; a silent agent's location is unknown) and the last result.
fn encode_locations(views: &[super::View], encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let located: Vec<&super::View> = views.iter().filter(|view| !view.check.locations.is_empty()).collect();
    {
        let mut family = encoder.encode_descriptor(
            "checkit_check_location_state",
            "The state of a check at one agent location: 1 for the current state, 0 for the others",
            None,
            MetricType::Gauge,
        )?;
        for view in &located {
            for location in &view.check.locations {
                let health = view.locations.get(location).map_or(State::Unknown, |entry| entry.machine.health);
                for state in [State::Unknown, State::Up, State::Down] {
                    let labels = [
                        ("check", view.check.name.as_str()),
                        ("module", view.check.module.as_str()),
                        ("target", view.check.target.as_str()),
                        ("location", location.as_str()),
                        ("state", state.as_str()),
                    ];
                    ConstGauge::new(f64::from(u8::from(state == health))).encode(family.encode_family(&labels)?)?;
                }
            }
        }
    }
    // The per-check last-run families, per location.
    type Read = fn(&super::agents::LocationState) -> Option<f64>;
    let families: [(&str, &str, Read); 3] = [
        (
            "checkit_check_location_last_success",
            "Whether the last result of a check pushed from one agent location succeeded",
            |entry| entry.last_success.map(|success| f64::from(u8::from(success))),
        ),
        (
            "checkit_check_location_last_run_timestamp_seconds",
            "When the last result of a check pushed from one agent location started, Unix seconds",
            |entry| entry.last_at.map(|at| at.timestamp_millis() as f64 / 1000.0),
        ),
        (
            "checkit_check_location_last_duration_seconds",
            "How long the last run of a check at one agent location took",
            |entry| entry.last_duration_seconds,
        ),
    ];
    for (name, help, read) in families {
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for view in &located {
            for (location, entry) in &view.locations {
                let Some(value) = read(entry) else { continue };
                let labels = [
                    ("check", view.check.name.as_str()),
                    ("module", view.check.module.as_str()),
                    ("target", view.check.target.as_str()),
                    ("location", location.as_str()),
                ];
                ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
            }
        }
    }
    Ok(())
}

/// `checkit_agent_last_seen_timestamp_seconds` and `checkit_agent_silent` per configured agent.
fn encode_agents(shared: &super::Shared, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let config = shared.config();
    let seen = shared.agents.snapshot();
    {
        let mut family = encoder.encode_descriptor(
            "checkit_agent_last_seen_timestamp_seconds",
            "When an agent's last request was accepted, Unix seconds",
            None,
            MetricType::Gauge,
        )?;
        for agent in &config.checks.agents {
            let Some(entry) = seen.get(&agent.name) else { continue };
            let labels = [("agent", agent.name.as_str()), ("location", agent.location.as_str())];
            ConstGauge::new(entry.last_seen.timestamp_millis() as f64 / 1000.0)
                .encode(family.encode_family(&labels)?)?;
        }
    }
    let mut family = encoder.encode_descriptor(
        "checkit_agent_silent",
        "Whether an agent has been silent longer than its stale_after",
        None,
        MetricType::Gauge,
    )?;
    for agent in &config.checks.agents {
        let stale = seen.get(&agent.name).is_some_and(|entry| entry.stale);
        let labels = [("agent", agent.name.as_str()), ("location", agent.location.as_str())];
        ConstGauge::new(f64::from(u8::from(stale))).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// Every check's last result in blackbox's families, labelled `instance` and `module`.
pub fn encode_blackbox(slots: &[Arc<Slot>]) -> String {
    // name → (help, lines), families sorted by name as blackbox's registry gathers them.
    let mut families: BTreeMap<String, (String, String)> = BTreeMap::new();
    for slot in slots {
        let view = slot.view();
        let Some(last) = &view.last else { continue };
        if view.check.kind != super::config::Kind::Probe {
            continue;
        }
        for (name, help, labels, value) in last.registry.samples() {
            let (_, lines) = families.entry(name.to_string()).or_insert_with(|| (help.to_string(), String::new()));
            let mut all: Vec<(&str, &str)> =
                labels.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
            all.push(("instance", view.check.target.as_str()));
            all.push(("module", view.check.module.as_str()));
            all.sort_unstable();
            lines.push_str(name);
            write_labels(lines, &all);
            lines.push(' ');
            lines.push_str(&format_float(value));
            lines.push('\n');
        }
    }
    let mut out = String::new();
    for (name, (help, lines)) in families {
        let _ = writeln!(out, "# HELP {name} {}", escape_help(&help));
        let _ = writeln!(out, "# TYPE {name} gauge");
        out.push_str(&lines);
    }
    out
}

/// The Prometheus HTTP SD document: one target group per check.
pub fn service_discovery(slots: &[Arc<Slot>]) -> serde_json::Value {
    let groups: Vec<serde_json::Value> = slots
        .iter()
        .map(|slot| slot.check())
        .filter(|check| check.kind == super::config::Kind::Probe)
        .map(|check| {
            let mut labels: BTreeMap<String, String> = check.labels.clone();
            labels.insert("module".into(), check.module.clone());
            labels.insert("check".into(), check.name.clone());
            labels.insert("__param_module".into(), check.module.clone());
            serde_json::json!({"targets": [check.target], "labels": labels})
        })
        .collect();
    serde_json::Value::Array(groups)
}
