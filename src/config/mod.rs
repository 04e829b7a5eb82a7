//! Configuration: parsed, validated and frozen.
//!
//! A blackbox.yml is a valid checkit config. checkit's own additions live
//! under new top-level keys (`exporter:`, `bridge:`) and new `prober:` kinds.
//! Loading gathers *every* problem with its YAML path instead of stopping at
//! the first one.

pub mod live;
pub mod paths;
pub mod secret;
pub mod types;
pub mod yaml;

use std::fmt;

/// One configuration problem, located by its YAML path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// YAML path such as `modules.http_2xx.http.valid_status_codes[0]`.
    pub path: String,
    /// What is wrong, lowercase, no trailing period.
    pub message: String,
}

impl Problem {
    /// Creates a problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem { path: path.into(), message: message.into() }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() { write!(f, "{}", self.message) } else { write!(f, "{}: {}", self.path, self.message) }
    }
}

/// Collects problems while validating.
#[derive(Debug, Default)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    /// Records a problem at `path`.
    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem::new(path, message));
    }
    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A config that failed to load, with every problem found.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file was read but is not a valid config.
    #[error("{} problem(s) in config:\n{}", .0.len(), .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
}

use crate::probe::policy::{PolicyConfig, TargetPolicy};
use crate::probe::{Module, Modules};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `exporter:` — checkit's additions for the probe exporter.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ExporterConfig {
    /// Which targets `/probe` may reach (SSRF guard).
    pub targets: PolicyConfig,
    /// Probes running at once; past it `/probe` answers 503.
    pub max_concurrent_probes: usize,
}

impl Default for ExporterConfig {
    fn default() -> Self {
        ExporterConfig { targets: PolicyConfig::default(), max_concurrent_probes: 1024 }
    }
}

/// The most probes that may run at once: far above what one host can run, and
/// far below what a semaphore can count (a bigger value panicked at startup).
pub const MAX_CONCURRENT_PROBES: usize = 1_000_000;

/// The whole, validated, immutable configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// Probe modules by name (blackbox.yml's only key).
    pub modules: Modules,
    /// checkit's exporter settings.
    pub exporter: ExporterConfig,
    /// The compiled target policy.
    #[serde(skip)]
    pub policy: TargetPolicy,
    /// Each module rendered as YAML once, for debug output and `/logs`.
    #[serde(skip)]
    module_yaml: BTreeMap<String, std::sync::Arc<str>>,
    /// The alert bridge, when enabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bridge: Option<std::sync::Arc<crate::bridge::Config>>,
    /// Scheduled checks (`checks:`, `check_files:`, `check_options:`).
    #[serde(skip)]
    pub checks: std::sync::Arc<crate::checks::config::Settings>,
    /// Heartbeat checks, when configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heartbeats: Option<std::sync::Arc<crate::heartbeat::Config>>,
    /// The directory relative paths were resolved against (the config
    /// file's, else the working directory); see [`paths`].
    #[serde(skip)]
    pub base_dir: std::path::PathBuf,
    /// The web UI's operators.
    #[serde(skip_serializing_if = "crate::web::config::UiConfig::is_default")]
    pub ui: crate::web::config::UiConfig,
    /// Where every part keeps its state (`storage:`), unless a deprecated
    /// per-part `store:` says otherwise; the SQLite default is `checkit.db`
    /// next to the config file.
    pub storage: StorageConfig,
    /// Status pages.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub status_pages: Vec<crate::web::config::StatusPage>,
}

use crate::storage::config::StorageConfig;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    modules: Option<BTreeMap<String, yaml::Value>>,
    #[serde(default)]
    exporter: Option<yaml::Value>,
    #[serde(default)]
    bridge: Option<yaml::Value>,
    #[serde(default)]
    checks: Option<yaml::Value>,
    #[serde(default)]
    check_files: Option<yaml::Value>,
    #[serde(default)]
    check_options: Option<yaml::Value>,
    #[serde(default)]
    heartbeats: Option<yaml::Value>,
    #[serde(default)]
    agents: Option<yaml::Value>,
    #[serde(default)]
    ui: Option<yaml::Value>,
    #[serde(default)]
    storage: Option<yaml::Value>,
    status_pages: Option<yaml::Value>,
}

impl Config {
    /// Parses and validates config text, gathering every problem; relative
    /// paths in it are relative to the working directory.
    pub fn parse(text: &str) -> Result<Config, Error> {
        Config::parse_in(text, &paths::base_dir_of(std::path::Path::new("checkit.yml")))
    }

    /// Parses and validates config text whose relative paths are relative
    /// to `base_dir`.
    pub fn parse_in(text: &str, base_dir: &std::path::Path) -> Result<Config, Error> {
        let mut problems = Problems::default();
        let value = yaml::parse_value(text).map_err(|problem| Error::Invalid(vec![problem]))?;
        let mut value = if value.is_null() { yaml::Value::Mapping(Default::default()) } else { value };
        paths::resolve_file_paths(&mut value, base_dir);
        // An unknown top-level key is one problem among the others, not the only one.
        let partial = yaml::from_value_each::<RawConfig>(value, "");
        problems.0.extend(partial.problems);
        let Some(raw) = partial.value else {
            return Err(Error::Invalid(problems.0));
        };
        let mut modules = Modules::new();
        for (name, module) in raw.modules.unwrap_or_default() {
            let path = format!("modules.{name}");
            if let Some(module) = Module::from_yaml(module, &path, &mut problems) {
                modules.insert(name, module);
            }
        }
        let exporter: ExporterConfig = match raw.exporter {
            Some(value) => {
                let partial = yaml::from_value_each(value, "exporter");
                problems.0.extend(partial.problems);
                partial.value.unwrap_or_default()
            }
            None => ExporterConfig::default(),
        };
        if !(1..=MAX_CONCURRENT_PROBES).contains(&exporter.max_concurrent_probes) {
            problems.push("exporter.max_concurrent_probes", format!("must be between 1 and {MAX_CONCURRENT_PROBES}"));
        }
        let policy = TargetPolicy::new(&exporter.targets, "exporter.targets", &mut problems);
        let bridge = match raw.bridge {
            Some(value) if !value.is_null() => {
                // Every key of the section is decoded even when one fails, and
                // what decoded is validated, so a bad matcher does not hide a
                // bad rate limit, time zone or template. Problems under a key
                // that failed to decode are not repeated by validation.
                let partial = yaml::from_value_each::<crate::bridge::Config>(value, "bridge");
                let broken = partial.broken;
                problems.0.extend(partial.problems);
                partial.value.map(|bridge| {
                    let mut checked = Problems::default();
                    bridge.validate("bridge", &mut checked);
                    problems.0.extend(checked.0.into_iter().filter(|problem| {
                        !broken.iter().any(|key| {
                            problem.path == *key
                                || problem.path.starts_with(&format!("{key}."))
                                || problem.path.starts_with(&format!("{key}["))
                        })
                    }));
                    std::sync::Arc::new(bridge)
                })
            }
            _ => None,
        };
        let checks = crate::checks::config::Settings::from_yaml(
            raw.checks,
            raw.check_files,
            raw.check_options,
            raw.agents,
            Some(base_dir),
            &modules,
            &mut problems,
        );
        let heartbeats = section(raw.heartbeats, "heartbeats", &mut problems, crate::heartbeat::Config::validate);
        let ui = match raw.ui {
            Some(value) if !value.is_null() => match yaml::from_value::<crate::web::config::UiConfig>(value, "ui") {
                Ok(ui) => {
                    ui.validate("ui", &mut problems);
                    ui
                }
                Err(problem) => {
                    problems.0.push(problem);
                    Default::default()
                }
            },
            _ => Default::default(),
        };
        let storage = match raw.storage.filter(|value| !value.is_null()) {
            Some(value) => match yaml::from_value::<StorageConfig>(value, "storage") {
                Ok(storage) => {
                    storage.validate("storage", &mut problems);
                    storage
                }
                Err(problem) => {
                    problems.0.push(problem);
                    StorageConfig::default()
                }
            },
            None => {
                let path = paths::resolve(base_dir, crate::storage::config::DEFAULT_SQLITE_PATH);
                let storage = StorageConfig::sqlite(path);
                // The default is checked only when a part keeps state in it,
                // so a plain exporter config never needs a writable directory.
                let used = bridge.as_ref().is_some_and(|bridge| bridge.store.is_none())
                    || (checks.is_configured() && checks.options.store.is_none())
                    || heartbeats.as_ref().is_some_and(|heartbeats| heartbeats.store.is_none());
                if used {
                    storage.validate("storage", &mut problems);
                }
                storage
            }
        };
        // A check file that does not load is reported by the checks; group
        // names are then not checked against it.
        let loaded = checks.checks(&modules).ok();
        let mut check_names: Option<std::collections::HashSet<&str>> =
            loaded.as_ref().map(|loaded| loaded.iter().map(|check| check.name.as_str()).collect());
        // Heartbeats are checks too: one namespace, and status pages may name them.
        for (index, heartbeat) in heartbeats.iter().flat_map(|heartbeats| heartbeats.checks.iter()).enumerate() {
            if loaded.iter().flatten().any(|check| check.name == heartbeat.name) {
                problems.push(
                    format!("heartbeats.checks[{index}].name"),
                    format!("{:?} is also the name of a check (checks and heartbeats share names)", heartbeat.name),
                );
            }
            if let Some(names) = check_names.as_mut() {
                names.insert(heartbeat.name.as_str());
            }
        }
        let status_pages =
            crate::web::config::status_pages_from_yaml(raw.status_pages, check_names.as_ref(), &mut problems);
        if !problems.is_empty() {
            return Err(Error::Invalid(problems.0));
        }
        let module_yaml = modules.iter().map(|(name, module)| (name.clone(), yaml::to_string(module).into())).collect();
        Ok(Config {
            modules,
            exporter,
            policy,
            module_yaml,
            bridge,
            checks: std::sync::Arc::new(checks),
            heartbeats,
            ui,
            status_pages,
            base_dir: base_dir.to_path_buf(),
            storage,
        })
    }

    /// Reads and parses a config file; relative paths in it are relative to
    /// the file's directory.
    pub fn load(path: &std::path::Path) -> Result<Config, Error> {
        let text =
            std::fs::read_to_string(path).map_err(|source| Error::Read { path: path.display().to_string(), source })?;
        Config::parse_in(&text, &paths::base_dir_of(path))
    }

    /// A config of only `modules` (name → the module as YAML, as
    /// [`Config::module_yaml`] renders it): what a remote agent runs its
    /// assigned checks with.
    pub fn from_module_yaml(modules: &BTreeMap<String, String>) -> Result<Config, Error> {
        let mut document = yaml::Mapping::new();
        let mut problems = Problems::default();
        for (name, text) in modules {
            match yaml::parse_value(text) {
                Ok(value) => {
                    document.insert(yaml::Value::String(name.clone()), value);
                }
                Err(problem) => problems.push(format!("modules.{name}"), problem.message),
            }
        }
        if !problems.is_empty() {
            return Err(Error::Invalid(problems.0));
        }
        let mut root = yaml::Mapping::new();
        root.insert(yaml::Value::String("modules".into()), yaml::Value::Mapping(document));
        Config::parse(&yaml::to_string(&yaml::Value::Mapping(root)))
    }

    /// The module called `name`.
    pub fn module(&self, name: &str) -> Option<&Module> {
        self.modules.get(name)
    }

    /// The module called `name` as YAML (empty when there is none).
    pub fn module_yaml(&self, name: &str) -> std::sync::Arc<str> {
        self.module_yaml.get(name).cloned().unwrap_or_else(|| "".into())
    }

    /// The store of a part: its own (deprecated) `store:` when given, else `storage:`.
    pub fn storage_of<'a>(&'a self, own: Option<&'a StorageConfig>) -> &'a StorageConfig {
        own.unwrap_or(&self.storage)
    }

    /// The config as YAML with defaults filled in and secrets hidden (`/config`).
    pub fn to_yaml(&self) -> String {
        yaml::to_string(self)
    }
}

/// Decodes and validates an optional top-level section (absent or `null`:
/// `None`), recording every problem under `path`.
fn section<T: serde::de::DeserializeOwned>(
    value: Option<yaml::Value>,
    path: &str,
    problems: &mut Problems,
    validate: impl Fn(&T, &str, &mut Problems),
) -> Option<std::sync::Arc<T>> {
    let value = value.filter(|value| !value.is_null())?;
    match yaml::from_value::<T>(value, path) {
        Ok(decoded) => {
            validate(&decoded, path, problems);
            Some(std::sync::Arc::new(decoded))
        }
        Err(problem) => {
            problems.0.push(problem);
            None
        }
    }
}

/// The config compiled into the binary (`config/default.yml`), used when no
/// config file is given and `blackbox.yml` does not exist.
pub const DEFAULT_CONFIG: &str = include_str!("../../config/default.yml");
