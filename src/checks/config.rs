//! `checks:`, `check_files:` and `check_options:`: what checkit watches by itself.
//!
//! A check is a module, a target and an interval, plus thresholds and who is
//! told. Checks come from the main file and from files matched by
//! `check_files:` globs (re-read on change, like Prometheus file_sd). Every
//! problem is reported with its YAML path; problems in a check file are
//! prefixed with the file's name.

use super::maintenance::Window;
use crate::config::types::GoDuration;
use crate::config::yaml::{self, Value};
use crate::config::{Problem, Problems};
use crate::probe::Modules;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Labels a check may not set: checkit sets them itself on every series.
pub const RESERVED_LABELS: &[&str] = &["check", "module", "target", "instance", "job", "state", "window", "alertname"];

/// `check_options:` — settings shared by every check.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    /// Deprecated: where results, roll-ups, incidents and pauses are kept
    /// when not in the top-level `storage:`; unset uses `storage:`.
    pub store: Option<StoreConfig>,
    /// Probes of scheduled checks running at once; later ones wait their turn.
    pub max_concurrent: usize,
    /// How long every raw result is kept.
    pub raw_retention: GoDuration,
    /// How long hourly and daily roll-ups, incidents and failed results are kept.
    pub rollup_retention: GoDuration,
    /// How often `check_files:` are looked at for changes.
    pub files_refresh_interval: GoDuration,
    /// Defaults for every check.
    pub defaults: Defaults,
    /// Maintenance windows that apply to every check whose labels match.
    pub maintenance: Vec<Window>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            store: None,
            max_concurrent: 64,
            raw_retention: GoDuration(Duration::from_secs(48 * 3600)),
            rollup_retention: GoDuration(Duration::from_secs(2 * 365 * 24 * 3600)),
            files_refresh_interval: GoDuration(Duration::from_secs(30)),
            defaults: Defaults::default(),
            maintenance: Vec::new(),
        }
    }
}

/// `check_options.store` (deprecated): the shape of `storage:`.
pub use crate::storage::config::StorageConfig as StoreConfig;

/// `check_options.defaults`: what a check gets when it does not say.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Defaults {
    /// How often a check runs.
    pub interval: GoDuration,
    /// Consecutive failures before a check is down.
    pub failures_before_down: u32,
    /// Consecutive successes before a down check is up again.
    pub successes_before_up: u32,
    /// Whether transitions notify people through the bridge (false leaves
    /// alerting to Prometheus and Alertmanager).
    pub notify: bool,
    /// Reminder interval while down; 0 means no reminders.
    pub repeat_interval: GoDuration,
    /// The `severity` label of notifications.
    pub severity: String,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            interval: GoDuration(Duration::from_secs(60)),
            failures_before_down: 2,
            successes_before_up: 1,
            notify: true,
            repeat_interval: GoDuration(Duration::ZERO),
            severity: "critical".into(),
        }
    }
}

/// One check as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    name: String,
    module: String,
    target: String,
    interval: Option<GoDuration>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    paused: bool,
    failures_before_down: Option<u32>,
    successes_before_up: Option<u32>,
    notify: Option<bool>,
    repeat_interval: Option<GoDuration>,
    severity: Option<String>,
    #[serde(default)]
    maintenance: Vec<Window>,
    #[serde(default)]
    locations: Vec<String>,
    down_when: Option<DownWhen>,
}

/// `down_when:` of a check run by agents: the quorum that takes it down.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DownWhen {
    /// Locations that must see the check down (each by its own thresholds).
    pub failing: u32,
    /// The number of locations, if written; must equal `locations`' length.
    pub of: Option<u32>,
}

/// `agents:` — one remote agent that runs the checks of its location and
/// pushes their results (`checkit agent`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Agent {
    /// Unique name, shown in logs, metrics and the agent's silence alert.
    pub name: String,
    /// The location it measures from (checks list it under `locations:`).
    pub location: String,
    /// A file holding the agent's bearer token.
    pub token_file: String,
    /// Silence after which the agent is an alert and its location counts as unknown.
    #[serde(default = "default_stale_after")]
    pub stale_after: GoDuration,
}

fn default_stale_after() -> GoDuration {
    GoDuration(Duration::from_secs(180))
}

/// What produces a check's results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// checkit probes it on its schedule (or agents do, at their locations).
    #[default]
    Probe,
    /// A heartbeat: no prober; its pings and missed deadlines are its results.
    Heartbeat,
}

impl Kind {
    /// The JSON and page value.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// One check with every default applied.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// Unique name (among checks and heartbeats); used in URLs, labels and notifications.
    pub name: String,
    /// Probed, or a heartbeat.
    pub kind: Kind,
    /// The module of `modules:` that runs.
    pub module: String,
    /// What is probed.
    pub target: String,
    /// How often.
    #[serde(with = "humantime_secs")]
    pub interval: Duration,
    /// Extra labels on metrics and notifications.
    pub labels: BTreeMap<String, String>,
    /// Paused by config (an API pause or resume overrides it).
    pub paused: bool,
    /// Consecutive failures before down.
    pub failures_before_down: u32,
    /// Consecutive successes before up.
    pub successes_before_up: u32,
    /// Whether transitions notify.
    pub notify: bool,
    /// Reminder interval while down.
    #[serde(with = "humantime_secs")]
    pub repeat_interval: Duration,
    /// Notification severity.
    pub severity: String,
    /// The check's own maintenance windows.
    pub maintenance: Vec<Window>,
    /// Where agents run it; empty: checkit runs it itself.
    pub locations: Vec<String>,
    /// Locations that must see it down for the check to be down (0 without locations).
    pub down_when: u32,
}

impl Check {
    /// A check without a prober whose results come from its owner (a
    /// heartbeat): one result moves it, and its owner notifies by itself.
    /// `interval` is the expected gap between results, zero when irregular.
    pub fn unprobed(name: String, interval: Duration, labels: BTreeMap<String, String>, paused: bool) -> Check {
        Check {
            name,
            kind: Kind::Heartbeat,
            module: String::new(),
            target: String::new(),
            interval,
            labels,
            paused,
            failures_before_down: 1,
            successes_before_up: 1,
            notify: false,
            repeat_interval: Duration::ZERO,
            severity: String::new(),
            maintenance: Vec::new(),
            locations: Vec::new(),
            down_when: 0,
        }
    }
}

/// Durations as seconds in JSON and `/config`.
mod humantime_secs {
    use std::time::Duration;

    pub(super) fn serialize<S: serde::Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(value.as_secs_f64())
    }
}

/// Everything about checks in one config: options, inline checks, and the
/// file globs (read by [`Settings::checks`]).
#[derive(Debug, Clone, Serialize, Default)]
pub struct Settings {
    /// `check_options:`.
    pub options: Options,
    /// `checks:` of the main file.
    pub inline: Vec<Check>,
    /// `check_files:` globs as written.
    pub files: Vec<String>,
    /// `agents:`.
    pub agents: Vec<Agent>,
    /// Directory that relative paths resolve against.
    #[serde(skip)]
    pub base_dir: Option<PathBuf>,
}

impl Settings {
    /// Decodes the three top-level keys, recording every problem.
    pub fn from_yaml(
        checks: Option<Value>,
        files: Option<Value>,
        options: Option<Value>,
        agents: Option<Value>,
        base_dir: Option<&Path>,
        modules: &Modules,
        problems: &mut Problems,
    ) -> Settings {
        let agents: Vec<Agent> = match agents {
            Some(value) if !value.is_null() => yaml::from_value(value, "agents").unwrap_or_else(|problem| {
                problems.0.push(problem);
                Vec::new()
            }),
            _ => Vec::new(),
        };
        validate_agents(&agents, problems);
        let options: Options = match options {
            Some(value) if !value.is_null() => yaml::from_value(value, "check_options").unwrap_or_else(|problem| {
                problems.0.push(problem);
                Options::default()
            }),
            _ => Options::default(),
        };
        validate_options(&options, problems);
        let inline = match checks {
            Some(value) if !value.is_null() => decode_list(value, "checks", &options, modules, problems),
            _ => Vec::new(),
        };
        let files: Vec<String> = match files {
            Some(value) if !value.is_null() => yaml::from_value(value, "check_files").unwrap_or_else(|problem| {
                problems.0.push(problem);
                Vec::new()
            }),
            _ => Vec::new(),
        };
        for (index, pattern) in files.iter().enumerate() {
            if let Err(err) = glob::Pattern::new(pattern) {
                problems.push(format!("check_files[{index}]"), format!("invalid glob {pattern:?}: {err}"));
            }
        }
        let settings = Settings { options, inline, files, agents, base_dir: base_dir.map(Path::to_path_buf) };
        if problems.is_empty() {
            if let Err(file_problems) = settings.checks(modules) {
                problems.0.extend(file_problems);
            }
        }
        settings
    }

    /// The agent whose token is `presented`, compared in constant time.
    pub fn agent_by_token(&self, presented: &str) -> Option<&Agent> {
        use subtle::ConstantTimeEq;
        self.agents.iter().find(|agent| {
            crate::config::types::read_secret_file(&agent.token_file)
                .is_ok_and(|token| bool::from(token.expose().as_bytes().ct_eq(presented.as_bytes())))
        })
    }

    /// Whether the config lists any check or check file.
    pub fn is_configured(&self) -> bool {
        !self.inline.is_empty() || !self.files.is_empty()
    }

    /// `path` resolved against the config file's directory.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        match &self.base_dir {
            Some(base) if path.is_relative() => base.join(path),
            _ => path.to_path_buf(),
        }
    }

    /// The files `check_files:` matches now, sorted.
    pub fn matched_files(&self) -> Vec<(usize, PathBuf)> {
        let mut matched = Vec::new();
        for (index, pattern) in self.files.iter().enumerate() {
            let pattern = self.resolve(Path::new(pattern));
            let Ok(paths) = glob::glob(&pattern.to_string_lossy()) else { continue };
            let mut paths: Vec<PathBuf> = paths.filter_map(Result::ok).filter(|path| path.is_file()).collect();
            paths.sort();
            matched.extend(paths.into_iter().map(|path| (index, path)));
        }
        matched
    }

    /// Every check: the inline ones, then those of each matched file. Fails
    /// with every problem (unreadable files, bad checks, duplicate names).
    pub fn checks(&self, modules: &Modules) -> Result<Vec<Check>, Vec<Problem>> {
        let mut problems = Problems::default();
        let mut checks = self.inline.clone();
        for (index, file) in self.matched_files() {
            let base = format!("check_files[{index}] ({})", file.display());
            let text = match std::fs::read_to_string(&file) {
                Ok(text) => text,
                Err(err) => {
                    problems.push(base, format!("cannot read: {err}"));
                    continue;
                }
            };
            match yaml::parse_value(&text) {
                Ok(Value::Null) => {}
                Ok(value) => checks.extend(decode_list(value, &base, &self.options, modules, &mut problems)),
                Err(problem) => problems.push(base, problem.to_string()),
            }
        }
        let known: HashSet<&str> = self.agents.iter().map(|agent| agent.location.as_str()).collect();
        for (index, check) in checks.iter().enumerate() {
            for location in &check.locations {
                if !known.contains(location.as_str()) {
                    let origin = if index < self.inline.len() {
                        format!("checks[{index}].locations")
                    } else {
                        format!("check_files ({})", check.name)
                    };
                    problems.push(origin, format!("no agent runs at location {location:?}"));
                }
            }
        }
        let mut seen = HashSet::new();
        for (index, check) in checks.iter().enumerate() {
            if !seen.insert(check.name.as_str()) {
                let origin =
                    if index < self.inline.len() { format!("checks[{index}].name") } else { "check_files".into() };
                problems.push(origin, format!("duplicate check name {:?}", check.name));
            }
        }
        if problems.is_empty() { Ok(checks) } else { Err(problems.0) }
    }
}

fn validate_options(options: &Options, problems: &mut Problems) {
    if let Some(store) = &options.store {
        store.validate("check_options.store", problems);
    }
    if options.max_concurrent == 0 {
        problems.push("check_options.max_concurrent", "must be at least 1");
    }
    if options.raw_retention.get() < Duration::from_secs(3600) {
        problems.push("check_options.raw_retention", "must be at least 1h");
    }
    if options.rollup_retention.get() < Duration::from_secs(2 * 24 * 3600) {
        problems.push("check_options.rollup_retention", "must be at least 48h");
    }
    if options.files_refresh_interval.get() < Duration::from_millis(100) {
        problems.push("check_options.files_refresh_interval", "must be at least 100ms");
    }
    let defaults = &options.defaults;
    validate_numbers(
        "check_options.defaults",
        defaults.interval.get(),
        defaults.failures_before_down,
        defaults.successes_before_up,
        problems,
    );
    for (index, window) in options.maintenance.iter().enumerate() {
        window.validate(&format!("check_options.maintenance[{index}]"), true, problems);
    }
}

fn validate_agents(agents: &[Agent], problems: &mut Problems) {
    let mut names = HashSet::new();
    for (index, agent) in agents.iter().enumerate() {
        let at = format!("agents[{index}]");
        if !valid_label_name(&agent.name.replace('-', "_")) {
            problems.push(format!("{at}.name"), "must be letters, digits, '_' or '-'");
        } else if !names.insert(agent.name.as_str()) {
            problems.push(format!("{at}.name"), format!("duplicate agent name {:?}", agent.name));
        }
        if !valid_label_name(&agent.location.replace('-', "_")) {
            problems.push(format!("{at}.location"), "must be letters, digits, '_' or '-'");
        }
        match crate::config::types::read_secret_file(&agent.token_file) {
            Ok(token) if token.expose().len() < 16 => {
                problems.push(format!("{at}.token_file"), "the token must be at least 16 characters")
            }
            Ok(_) => {}
            Err(message) => problems.push(format!("{at}.token_file"), message),
        }
        if agent.stale_after.get() < Duration::from_secs(5) {
            problems.push(format!("{at}.stale_after"), "must be at least 5s");
        }
    }
}

fn validate_numbers(path: &str, interval: Duration, failures: u32, successes: u32, problems: &mut Problems) {
    if interval < Duration::from_secs(1) {
        problems.push(format!("{path}.interval"), "must be at least 1s");
    }
    if interval > Duration::from_secs(7 * 24 * 3600) {
        problems.push(format!("{path}.interval"), "must be at most 168h");
    }
    if failures == 0 {
        problems.push(format!("{path}.failures_before_down"), "must be at least 1");
    }
    if successes == 0 {
        problems.push(format!("{path}.successes_before_up"), "must be at least 1");
    }
}

/// Decodes a YAML list of checks, each on its own so every bad one is reported.
fn decode_list(value: Value, path: &str, options: &Options, modules: &Modules, problems: &mut Problems) -> Vec<Check> {
    let Value::Sequence(items) = value else {
        problems.push(path, "must be a list of checks");
        return Vec::new();
    };
    let mut checks = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        let item_path = format!("{path}[{index}]");
        match yaml::from_value::<RawCheck>(item, &item_path) {
            Ok(raw) => {
                if let Some(check) = resolve(raw, &item_path, options, modules, problems) {
                    checks.push(check);
                }
            }
            Err(problem) => problems.0.push(problem),
        }
    }
    checks
}

fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

fn validate_locations(path: &str, check: &Check, down_when: Option<DownWhen>, problems: &mut Problems) {
    let count = u32::try_from(check.locations.len()).unwrap_or(u32::MAX);
    let mut seen = HashSet::new();
    for (index, location) in check.locations.iter().enumerate() {
        if !seen.insert(location.as_str()) {
            problems.push(format!("{path}.locations[{index}]"), format!("duplicate location {location:?}"));
        }
    }
    let Some(down_when) = down_when else { return };
    if count == 0 {
        problems.push(format!("{path}.down_when"), "needs `locations`");
        return;
    }
    if down_when.failing == 0 || down_when.failing > count {
        problems.push(format!("{path}.down_when.failing"), format!("must be between 1 and {count} (the locations)"));
    }
    if down_when.of.is_some_and(|of| of != count) {
        problems.push(format!("{path}.down_when.of"), format!("must equal the number of locations ({count})"));
    }
}

fn resolve(raw: RawCheck, path: &str, options: &Options, modules: &Modules, problems: &mut Problems) -> Option<Check> {
    let before = problems.0.len();
    if raw.name.trim().is_empty() {
        problems.push(format!("{path}.name"), "must not be empty");
    } else if raw.name.len() > 200 || raw.name.contains('/') || raw.name.chars().any(char::is_control) {
        problems.push(format!("{path}.name"), "must be at most 200 characters without '/' or control characters");
    }
    if !modules.contains_key(&raw.module) {
        let known: Vec<&str> = modules.keys().map(String::as_str).collect();
        problems
            .push(format!("{path}.module"), format!("unknown module {:?} (known: {})", raw.module, known.join(", ")));
    }
    if raw.target.trim().is_empty() {
        problems.push(format!("{path}.target"), "must not be empty");
    }
    for name in raw.labels.keys() {
        if !valid_label_name(name) {
            problems.push(format!("{path}.labels.{name}"), "is not a valid Prometheus label name");
        } else if RESERVED_LABELS.contains(&name.as_str()) {
            problems.push(format!("{path}.labels.{name}"), "is set by checkit itself");
        }
    }
    let defaults = &options.defaults;
    let check = Check {
        name: raw.name,
        kind: Kind::Probe,
        module: raw.module,
        target: raw.target,
        interval: raw.interval.unwrap_or(defaults.interval).get(),
        labels: raw.labels,
        paused: raw.paused,
        failures_before_down: raw.failures_before_down.unwrap_or(defaults.failures_before_down),
        successes_before_up: raw.successes_before_up.unwrap_or(defaults.successes_before_up),
        notify: raw.notify.unwrap_or(defaults.notify),
        repeat_interval: raw.repeat_interval.unwrap_or(defaults.repeat_interval).get(),
        severity: raw.severity.unwrap_or_else(|| defaults.severity.clone()),
        maintenance: raw.maintenance,
        down_when: match (&raw.down_when, raw.locations.len()) {
            (_, 0) => 0,
            (Some(down_when), _) => down_when.failing,
            (None, count) => u32::try_from(count / 2 + 1).unwrap_or(u32::MAX),
        },
        locations: raw.locations,
    };
    validate_locations(path, &check, raw.down_when, problems);
    validate_numbers(path, check.interval, check.failures_before_down, check.successes_before_up, problems);
    for (index, window) in check.maintenance.iter().enumerate() {
        window.validate(&format!("{path}.maintenance[{index}]"), false, problems);
    }
    (problems.0.len() == before).then_some(check)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn modules() -> Modules {
        let mut problems = Problems::default();
        let module = crate::probe::Module::from_yaml(yaml::parse_value("prober: tcp").unwrap(), "m", &mut problems);
        [("tcp_connect".to_string(), module.unwrap())].into_iter().collect()
    }

    fn settings(text: &str) -> (Settings, Vec<String>) {
        let Value::Mapping(mut map) = yaml::parse_value(text).unwrap() else { panic!() };
        let mut problems = Problems::default();
        let settings = Settings::from_yaml(
            map.remove("checks"),
            map.remove("check_files"),
            map.remove("check_options"),
            map.remove("agents"),
            None,
            &modules(),
            &mut problems,
        );
        (settings, problems.0.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn defaults_apply_and_overrides_win() {
        let (settings, problems) = settings(
            "check_options: {defaults: {interval: 15s, failures_before_down: 3}}\n\
             checks:\n- {name: a, module: tcp_connect, target: 'localhost:1'}\n\
             - {name: b, module: tcp_connect, target: 'localhost:2', interval: 1m, failures_before_down: 1, notify: false}\n",
        );
        assert!(problems.is_empty(), "{problems:?}");
        let [a, b] = &settings.inline[..] else { panic!() };
        assert_eq!(
            (a.interval, a.failures_before_down, a.successes_before_up, a.notify),
            (Duration::from_secs(15), 3, 1, true)
        );
        assert_eq!((b.interval, b.failures_before_down, b.notify), (Duration::from_secs(60), 1, false));
    }

    #[test]
    fn every_problem_has_its_path() {
        let (_, problems) = settings(
            "check_options: {max_concurrent: 0}\n\
             checks:\n- {name: a, module: nope, target: '', interval: 0s, labels: {check: x, 'bad-name': y}}\n\
             - {name: a, module: tcp_connect, target: x, extra: 1}\n\
             - {name: b, module: tcp_connect, target: x, failures_before_down: 0}\n",
        );
        let joined = problems.join("\n");
        for expected in [
            "check_options.max_concurrent: must be at least 1",
            "checks[0].module: unknown module \"nope\"",
            "checks[0].target: must not be empty",
            "checks[0].interval: must be at least 1s",
            "checks[0].labels.check: is set by checkit itself",
            "checks[0].labels.bad-name: is not a valid Prometheus label name",
            "checks[1].extra: unknown field `extra`",
            "checks[2].failures_before_down: must be at least 1",
        ] {
            assert!(joined.contains(expected), "missing {expected:?} in:\n{joined}");
        }
    }

    #[test]
    fn agents_locations_and_quorums_are_checked_with_their_paths() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "0123456789abcdef0123\n").unwrap();
        let short = dir.path().join("short");
        std::fs::write(&short, "short\n").unwrap();
        let (_, problems) = settings(&format!(
            "agents:\n- {{name: a, location: fra, token_file: {}}}\n- {{name: a, location: par, token_file: {}}}\n\
             checks:\n- {{name: x, module: tcp_connect, target: t, locations: [fra, nyc, fra], down_when: {{failing: 4, of: 2}}}}\n\
             - {{name: y, module: tcp_connect, target: t, down_when: {{failing: 1}}}}\n\
             - {{name: z, module: tcp_connect, target: t, locations: [fra, par]}}\n",
            token.display(),
            short.display()
        ));
        let joined = problems.join("\n");
        for expected in [
            "agents[1].name: duplicate agent name \"a\"",
            "agents[1].token_file: the token must be at least 16 characters",
            "checks[0].locations[2]: duplicate location \"fra\"",
            "checks[0].down_when.failing: must be between 1 and 3",
            "checks[0].down_when.of: must equal the number of locations (3)",
            "checks[1].down_when: needs `locations`",
        ] {
            assert!(joined.contains(expected), "missing {expected:?} in:\n{joined}");
        }
        let (settings_ok, problems) = settings(&format!(
            "agents:\n- {{name: a, location: fra, token_file: {}}}\n\
             checks:\n- {{name: z, module: tcp_connect, target: t, locations: [fra]}}\n\
             - {{name: w, module: tcp_connect, target: t, locations: [nyc]}}\n",
            token.display()
        ));
        assert!(
            problems.iter().any(|problem| problem.contains("checks[1].locations: no agent runs at location \"nyc\"")),
            "{problems:?}"
        );
        assert_eq!(settings_ok.inline[0].down_when, 1, "a majority of one location");
    }

    #[test]
    fn duplicate_names_across_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("one.yml"), "- {name: a, module: tcp_connect, target: x}\n").unwrap();
        std::fs::write(dir.path().join("two.yml"), "- {name: b, module: nope, target: x}\n").unwrap();
        let mut problems = Problems::default();
        let value = yaml::parse_value("- {name: a, module: tcp_connect, target: y}").unwrap();
        let files = yaml::parse_value("['*.yml']").unwrap();
        Settings::from_yaml(Some(value), Some(files), None, None, Some(dir.path()), &modules(), &mut problems);
        let joined: Vec<String> = problems.0.iter().map(ToString::to_string).collect();
        let joined = joined.join("\n");
        assert!(joined.contains("two.yml)[0].module: unknown module"), "{joined}");
        assert!(joined.contains("duplicate check name \"a\""), "{joined}");
        std::fs::write(dir.path().join("two.yml"), "- {name: b, module: tcp_connect, target: x}\n").unwrap();
        let mut problems = Problems::default();
        let value = yaml::parse_value("- {name: a, module: tcp_connect, target: y}").unwrap();
        let files = yaml::parse_value("['*.yml']").unwrap();
        Settings::from_yaml(Some(value), Some(files), None, None, Some(dir.path()), &modules(), &mut problems);
        assert_eq!(problems.0.len(), 1, "{:?}", problems.0);
        assert!(problems.0[0].message.contains("duplicate check name \"a\""));
    }
}
