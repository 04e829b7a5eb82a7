//! The `heartbeats:` section: checks that report in instead of being probed.
//!
//! ```yaml
//! heartbeats:
//!   ping_key_file: /etc/checkit/ping-key   # enables /ping/<key>/<name>
//!   checks:
//!     - name: nightly-backup
//!       uuid: 0b5a0c5e-3c55-4a39-9d2b-0f0e1e6f6a51
//!       schedule: "30 2 * * *"
//!       timezone: Europe/Berlin
//!       grace: 1h
//!       start_grace: 3h
//!       min_interval: 12h
//! ```

use super::schedule::{self, Schedule};
use super::state::Spec;
use crate::checks::maintenance::Window;
use crate::config::Problems;
use crate::config::types::GoDuration;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

/// The `heartbeats:` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// A file holding the ping key: `/ping/<key>/<name>` then reaches a check
    /// by name as well as by UUID.
    pub ping_key_file: Option<String>,
    /// Deprecated: where pings and states are kept when not in the
    /// top-level `storage:`; unset uses `storage:`.
    pub store: Option<StoreConfig>,
    /// Pings a check accepts per minute; more get 429 and change nothing.
    pub max_pings_per_minute: u32,
    /// Pings (with their bodies) kept per check.
    pub keep_pings: u32,
    /// The Alertmanager-style receiver name notifications carry, for routes.
    pub receiver: String,
    /// Maintenance windows for every heartbeat whose labels (its `labels` and
    /// `check`, its name) the window's `matchers` select.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub maintenance: Vec<Window>,
    /// The checks.
    pub checks: Vec<Check>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            ping_key_file: None,
            store: None,
            max_pings_per_minute: 60,
            keep_pings: 100,
            receiver: "heartbeats".into(),
            maintenance: Vec::new(),
            checks: Vec::new(),
        }
    }
}

/// `heartbeats.store` (deprecated): the shape of `storage:`.
pub use crate::storage::config::StorageConfig as StoreConfig;

/// One heartbeat check.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// The name: the `check` label, the slug of `/ping/<key>/<name>` and the
    /// `<name>` of the API.
    pub name: String,
    /// The UUID of `/ping/<uuid>`.
    pub uuid: Option<String>,
    /// Simple schedule: a success is expected this often.
    pub period: Option<GoDuration>,
    /// Cron schedule: 5 fields, in `timezone`.
    pub schedule: Option<String>,
    /// IANA time zone of `schedule`.
    #[serde(default = "utc")]
    pub timezone: String,
    /// How long past due before the check is down.
    pub grace: GoDuration,
    /// How long a run may take after `/start` (default: `grace`).
    pub start_grace: Option<GoDuration>,
    /// Successes closer together than this raise `HeartbeatTooOften`.
    pub min_interval: Option<GoDuration>,
    /// A file holding the token for `POST /api/v1/checks/<name>/results`.
    pub token_file: Option<String>,
    /// Paused: no alerts.
    #[serde(default)]
    pub paused: bool,
    /// Labels added to this check's alerts.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// This check's own maintenance windows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub maintenance: Vec<Window>,
}

fn utc() -> String {
    "UTC".into()
}

/// Labels checkit sets on heartbeat alerts itself.
const RESERVED_LABELS: &[&str] = &["alertname", "check"];

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name != "."
        && name != ".."
}

fn chrono(duration: GoDuration) -> chrono::Duration {
    chrono::Duration::from_std(duration.get()).unwrap_or(chrono::Duration::MAX)
}

impl Check {
    /// The parsed schedule, or why it is invalid.
    pub fn schedule(&self) -> Result<Schedule, Vec<(&'static str, String)>> {
        let mut problems = Vec::new();
        let timezone = match schedule::parse_timezone(&self.timezone) {
            Ok(zone) => Some(zone),
            Err(message) => {
                problems.push(("timezone", message));
                None
            }
        };
        let schedule = match (&self.period, &self.schedule) {
            (Some(_), Some(_)) => {
                problems.push(("", "set either period or schedule, not both".to_string()));
                None
            }
            (None, None) => {
                problems.push(("", "set period (simple) or schedule (cron)".to_string()));
                None
            }
            (Some(period), None) if period.get() < Duration::from_secs(1) => {
                problems.push(("period", "must be at least 1s".to_string()));
                None
            }
            (Some(period), None) => Some(Schedule::Period(chrono(*period))),
            (None, Some(expression)) => match schedule::parse_cron(expression) {
                Ok(cron) => timezone.map(|timezone| Schedule::Cron { cron: Box::new(cron), timezone }),
                Err(message) => {
                    problems.push(("schedule", message));
                    None
                }
            },
        };
        match schedule {
            Some(schedule) if problems.is_empty() => Ok(schedule),
            _ => Err(problems),
        }
    }

    /// The check's expectations; `None` when its schedule is invalid (which
    /// validation reports).
    pub fn spec(&self) -> Option<Spec> {
        Some(Spec {
            schedule: self.schedule().ok()?,
            grace: chrono(self.grace),
            start_grace: chrono(self.start_grace.unwrap_or(self.grace)),
            min_interval: self.min_interval.map(chrono),
            paused: self.paused,
        })
    }
}

impl Config {
    /// Records every problem below `path`.
    pub fn validate(&self, path: &str, problems: &mut Problems) {
        if self.max_pings_per_minute == 0 {
            problems.push(format!("{path}.max_pings_per_minute"), "must be at least 1");
        }
        if self.keep_pings == 0 {
            problems.push(format!("{path}.keep_pings"), "must be at least 1");
        }
        if let Some(store) = &self.store {
            store.validate(&format!("{path}.store"), problems);
        }
        if let Some(file) = &self.ping_key_file {
            match crate::config::types::read_secret_file(file) {
                Ok(key) if key.expose().len() < 16 => {
                    problems.push(format!("{path}.ping_key_file"), "the key must be at least 16 characters")
                }
                Ok(key) if !valid_name(key.expose()) => {
                    problems.push(format!("{path}.ping_key_file"), "the key may hold only letters, digits, - _ .")
                }
                Ok(_) => {}
                Err(message) => problems.push(format!("{path}.ping_key_file"), message),
            }
        }
        for (index, window) in self.maintenance.iter().enumerate() {
            window.validate(&format!("{path}.maintenance[{index}]"), true, problems);
        }
        let mut names = HashSet::new();
        let mut uuids = HashSet::new();
        for (index, check) in self.checks.iter().enumerate() {
            let at = format!("{path}.checks[{index}]");
            for (window_index, window) in check.maintenance.iter().enumerate() {
                window.validate(&format!("{at}.maintenance[{window_index}]"), false, problems);
            }
            if !valid_name(&check.name) {
                problems.push(format!("{at}.name"), "must be 1-128 letters, digits, '-', '_' or '.'");
            } else if !names.insert(check.name.as_str()) {
                problems.push(format!("{at}.name"), format!("{:?} is used by another heartbeat", check.name));
            }
            match &check.uuid {
                Some(text) => match uuid::Uuid::parse_str(text) {
                    Ok(parsed) if !uuids.insert(parsed) => {
                        problems.push(format!("{at}.uuid"), "is used by another heartbeat")
                    }
                    Ok(_) => {}
                    Err(_) => problems.push(format!("{at}.uuid"), format!("{text:?} is not a UUID")),
                },
                None if self.ping_key_file.is_none() => problems.push(
                    format!("{at}.uuid"),
                    "must be set unless heartbeats.ping_key_file is (the check would be unreachable)",
                ),
                None => {}
            }
            match check.schedule() {
                Ok(schedule) => {
                    let now = chrono::Utc::now();
                    if let (Some(min), Some(gap)) = (check.min_interval, schedule.shortest_gap(now)) {
                        if chrono(min) > gap {
                            problems.push(
                                format!("{at}.min_interval"),
                                "is longer than the schedule's shortest gap: every run would be too often",
                            );
                        }
                    }
                }
                Err(list) => {
                    for (field, message) in list {
                        let field_path = if field.is_empty() { at.clone() } else { format!("{at}.{field}") };
                        problems.push(field_path, message);
                    }
                }
            }
            if let Some(file) = &check.token_file {
                match crate::config::types::read_secret_file(file) {
                    Ok(token) if token.expose().is_empty() => {
                        problems.push(format!("{at}.token_file"), "the token is empty")
                    }
                    Ok(_) => {}
                    Err(message) => problems.push(format!("{at}.token_file"), message),
                }
            }
            for label in check.labels.keys() {
                if RESERVED_LABELS.contains(&label.as_str()) {
                    problems.push(format!("{at}.labels.{label}"), "is set by checkit");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(yaml: &str) -> Vec<String> {
        let value = crate::config::yaml::parse_value(yaml).unwrap();
        let config: Config = crate::config::yaml::from_value(value, "heartbeats").unwrap();
        let mut problems = Problems::default();
        config.validate("heartbeats", &mut problems);
        problems.0.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let found = problems(
            "checks:\n\
             - {name: a, uuid: not-a-uuid, grace: 1m}\n\
             - {name: a, uuid: 5b0c8f7e-3c55-4a39-9d2b-0f0e1e6f6a51, period: 1h, schedule: '* * * * *', grace: 1m}\n\
             - {name: 'bad name', period: 1h, grace: 1m, labels: {check: x}}\n\
             - {name: c, uuid: 5b0c8f7e-3c55-4a39-9d2b-0f0e1e6f6a51, schedule: '0 30 2 * * *', timezone: Nowhere/City, grace: 1m}\n\
             - {name: d, uuid: 6b0c8f7e-3c55-4a39-9d2b-0f0e1e6f6a51, schedule: '*/5 * * * *', grace: 1m, min_interval: 1h}\n",
        );
        let expected = [
            "heartbeats.checks[0].uuid: \"not-a-uuid\" is not a UUID",
            "heartbeats.checks[0]: set period (simple) or schedule (cron)",
            "heartbeats.checks[1].name: \"a\" is used by another heartbeat",
            "heartbeats.checks[1]: set either period or schedule, not both",
            "heartbeats.checks[2].name: must be 1-128",
            "heartbeats.checks[2].uuid: must be set unless",
            "heartbeats.checks[2].labels.check: is set by checkit",
            "heartbeats.checks[3].uuid: is used by another heartbeat",
            "heartbeats.checks[3].timezone: unknown IANA time zone",
            "heartbeats.checks[3].schedule: expected 5 fields",
            "heartbeats.checks[4].min_interval: is longer than the schedule's shortest gap",
        ];
        for want in expected {
            assert!(found.iter().any(|problem| problem.starts_with(want)), "missing {want:?} in {found:#?}");
        }
        assert_eq!(found.len(), expected.len(), "{found:#?}");
    }

    #[test]
    fn maintenance_windows_are_checked_with_their_paths() {
        let found = problems(
            "maintenance:\n\
             - {start: '2026-03-02T12:00:00Z', end: '2026-03-02T13:00:00Z'}\n\
             checks:\n\
             - name: a\n  uuid: 5b0c8f7e-3c55-4a39-9d2b-0f0e1e6f6a51\n  period: 1h\n  grace: 1m\n  maintenance:\n\
             \x20   - {start: '2026-03-02T12:00:00Z', end: '2026-03-02T11:00:00Z'}\n",
        );
        // The section's windows select by labels, as `check_options.maintenance`.
        assert_eq!(
            found,
            [
                "heartbeats.maintenance[0].matchers: a shared window needs matchers selecting its checks",
                "heartbeats.checks[0].maintenance[0].end: must be after start",
            ]
        );
    }

    #[test]
    fn start_grace_defaults_to_grace() {
        let check = Check {
            name: "x".into(),
            uuid: None,
            period: Some(GoDuration(Duration::from_secs(60))),
            schedule: None,
            timezone: utc(),
            grace: GoDuration(Duration::from_secs(30)),
            start_grace: None,
            min_interval: None,
            token_file: None,
            paused: false,
            labels: BTreeMap::new(),
            maintenance: Vec::new(),
        };
        assert_eq!(check.spec().unwrap().start_grace, chrono::Duration::seconds(30));
    }
}
