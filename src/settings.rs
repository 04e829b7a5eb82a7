//! The whole configuration: parsed, validated and frozen.
//!
//! A blackbox.yml is a valid checkit config. checkit's own additions live
//! under new top-level keys (`exporter:`, `bridge:`, `checks:`, …) and new
//! `prober:` kinds. This module only gathers the blocks: each part decodes and
//! validates its own (with `crate::config`'s pieces), and loading gathers
//! *every* problem with its YAML path instead of stopping at the first one.
//!
//! It sits above the parts it gathers, so only `app`, `cli` and `http` (the
//! exporter's `/config` and reload) name it; a part receives its own block.

use crate::config::{Error, Problems, paths, yaml};
use crate::probe::policy::{ExporterConfig, TargetPolicy};
use crate::probe::{Module, Modules};
use crate::storage::config::StorageConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The whole, validated, immutable configuration.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// Probe modules by name (blackbox.yml's only key).
    pub modules: Modules,
    /// checkit's exporter settings.
    pub exporter: ExporterConfig,
    /// The compiled target policy.
    #[serde(skip)]
    pub policy: TargetPolicy,
    /// Each module rendered as YAML on first use (debug output, `/logs`, agents'
    /// assignments): rendering every module at load ran the YAML serializer
    /// and every prober's `Serialize`, code whose pages then stayed resident
    /// in a process that may never show a module.
    #[serde(skip)]
    module_yaml: BTreeMap<String, std::sync::OnceLock<Arc<str>>>,
    /// The alert bridge, when enabled.
    pub bridge: Option<Arc<crate::bridge::Config>>,
    /// Scheduled checks (`checks:`, `check_files:`, `check_options:`).
    #[serde(skip)]
    pub checks: Arc<crate::checks::config::Settings>,
    /// Heartbeat checks, when configured.
    pub heartbeats: Option<Arc<crate::heartbeat::Config>>,
    /// The directory relative paths were resolved against (the config
    /// file's, else the working directory); see [`paths`].
    #[serde(skip)]
    pub base_dir: PathBuf,
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

/// The top-level keys, each decoded by its part (a missing key is `None`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    modules: Option<BTreeMap<String, yaml::Value>>,
    exporter: Option<yaml::Value>,
    bridge: Option<yaml::Value>,
    checks: Option<yaml::Value>,
    check_files: Option<yaml::Value>,
    check_options: Option<yaml::Value>,
    heartbeats: Option<yaml::Value>,
    agents: Option<yaml::Value>,
    ui: Option<yaml::Value>,
    storage: Option<yaml::Value>,
    status_pages: Option<yaml::Value>,
}

impl Config {
    /// Parses and validates config text, gathering every problem; relative
    /// paths in it are relative to the working directory.
    pub fn parse(text: &str) -> Result<Config, Error> {
        Config::parse_in(text, &paths::base_dir_of(Path::new("checkit.yml")))
    }

    /// Parses and validates config text whose relative paths are relative
    /// to `base_dir`.
    pub fn parse_in(text: &str, base_dir: &Path) -> Result<Config, Error> {
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
        let modules = crate::probe::modules_from_yaml(raw.modules.unwrap_or_default(), &mut problems);
        let exporter: ExporterConfig = match raw.exporter {
            Some(value) => {
                let partial = yaml::from_value_each(value, "exporter");
                problems.0.extend(partial.problems);
                partial.value.unwrap_or_default()
            }
            None => ExporterConfig::default(),
        };
        let policy = exporter.policy("exporter", &mut problems);
        let bridge = yaml::block(raw.bridge, "bridge", &mut problems, crate::bridge::Config::validate).map(Arc::new);
        let checks = crate::checks::config::Settings::from_yaml(
            raw.checks,
            raw.check_files,
            raw.check_options,
            raw.agents,
            Some(base_dir),
            &modules,
            &mut problems,
        );
        let heartbeats =
            yaml::block(raw.heartbeats, "heartbeats", &mut problems, crate::heartbeat::Config::validate).map(Arc::new);
        let ui = yaml::block(raw.ui, "ui", &mut problems, crate::web::config::UiConfig::validate).unwrap_or_default();
        let storage = match raw.storage.filter(|value| !value.is_null()) {
            Some(value) => {
                yaml::block(Some(value), "storage", &mut problems, StorageConfig::validate).unwrap_or_default()
            }
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
        let module_yaml = modules.keys().map(|name| (name.clone(), std::sync::OnceLock::new())).collect();
        Ok(Config {
            modules,
            exporter,
            policy,
            module_yaml,
            bridge,
            checks: Arc::new(checks),
            heartbeats,
            ui,
            status_pages,
            base_dir: base_dir.to_path_buf(),
            storage,
        })
    }

    /// Reads and parses a config file; relative paths in it are relative to
    /// the file's directory.
    pub fn load(path: &Path) -> Result<Config, Error> {
        let text =
            std::fs::read_to_string(path).map_err(|source| Error::Read { path: path.display().to_string(), source })?;
        Config::parse_in(&text, &paths::base_dir_of(path))
    }

    /// The module called `name`.
    pub fn module(&self, name: &str) -> Option<&Module> {
        self.modules.get(name)
    }

    /// The module called `name` as YAML (empty when there is none).
    pub fn module_yaml(&self, name: &str) -> Arc<str> {
        match (self.modules.get(name), self.module_yaml.get(name)) {
            (Some(module), Some(rendered)) => rendered.get_or_init(|| yaml::to_string(module).into()).clone(),
            _ => "".into(),
        }
    }

    /// The store of a part: its own (deprecated) `store:` when given, else `storage:`.
    pub fn storage_of<'a>(&'a self, own: Option<&'a StorageConfig>) -> &'a StorageConfig {
        own.unwrap_or(&self.storage)
    }

    /// What the scheduled checks read: the modules, the target policy and their blocks.
    pub fn for_checks(&self) -> Arc<crate::checks::Inputs> {
        Arc::new(crate::checks::Inputs {
            modules: self.modules.clone(),
            policy: self.policy.clone(),
            checks: Arc::clone(&self.checks),
        })
    }

    /// What the web UI reads: `ui:`, the status pages and the contacts' names.
    pub fn for_web(&self) -> crate::web::config::Settings {
        crate::web::config::Settings {
            ui: self.ui.clone(),
            status_pages: self.status_pages.clone(),
            contacts: self.bridge.iter().flat_map(|bridge| bridge.contacts.keys().cloned()).collect(),
        }
    }

    /// The config as YAML with defaults filled in and secrets hidden (`/config`).
    pub fn to_yaml(&self) -> String {
        yaml::to_string(self)
    }
}

/// The config compiled into the binary (`config/default.yml`), used when no
/// config file is given and `blackbox.yml` does not exist.
pub const DEFAULT_CONFIG: &str = include_str!("../config/default.yml");
