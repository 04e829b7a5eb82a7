//! Relative paths in a config file are relative to the file's directory, as
//! in Prometheus and Alertmanager, so a config works from any working
//! directory.
//!
//! [`resolve`] is the one rule; [`resolve_file_paths`] applies it to every
//! path-valued key of a parsed document before it is decoded, so each typed
//! section (modules, exporter, bridge, and new ones such as `check_files`)
//! receives absolute paths without knowing where the file lives. A path key is
//! one ending in `_file` (a string) or `_files` (a list of paths or globs),
//! `storage.sqlite.path` (and the deprecated `*.store.sqlite.path`), and the
//! `file` of a `secret_headers` entry.
//! Mappings whose keys are user-chosen names (`headers`, `groups`, …) are not
//! searched, so a header or group that happens to end in `_file` is left alone.

use super::yaml::{Mapping, Value};
use std::path::{Path, PathBuf};

/// The directory relative paths are resolved against: the config file's
/// directory, made absolute (so a later change of working directory cannot
/// move it). An unreadable working directory leaves the path as given.
pub fn base_dir_of(config_file: &Path) -> PathBuf {
    let parent = config_file.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::path::absolute(parent).unwrap_or_else(|_| parent.to_path_buf())
}

/// `path` joined to `base_dir` when it is relative; absolute and empty paths
/// (an empty one is a config problem reported elsewhere) are returned as given.
pub fn resolve(base_dir: &Path, path: &str) -> String {
    if path.is_empty() || Path::new(path).is_absolute() {
        return path.to_string();
    }
    let relative = path.strip_prefix("./").unwrap_or(path);
    base_dir.join(relative).display().to_string()
}

/// Mappings keyed by user-chosen names rather than config keys.
const USER_NAMED: &[&str] =
    &["headers", "groups", "contacts", "modules", "rate_limits", "labels", "basic_auth_users", "tokens"];

/// Rewrites every relative path of a parsed config document (see the module
/// doc) to one below `base_dir`.
pub fn resolve_file_paths(document: &mut Value, base_dir: &Path) {
    walk(document, base_dir, &mut Vec::new());
}

fn walk(value: &mut Value, base_dir: &Path, keys: &mut Vec<String>) {
    match value {
        Value::Mapping(mapping) => walk_mapping(mapping, base_dir, keys),
        Value::Sequence(items) => items.iter_mut().for_each(|item| walk(item, base_dir, keys)),
        Value::Tagged(tagged) => walk(&mut tagged.value, base_dir, keys),
        _ => {}
    }
}

fn walk_mapping(mapping: &mut Mapping, base_dir: &Path, keys: &mut Vec<String>) {
    let parent = keys.last().cloned().unwrap_or_default();
    let grandparent = keys.len().checked_sub(2).and_then(|index| keys.get(index)).cloned().unwrap_or_default();
    let user_named = USER_NAMED.contains(&parent.as_str());
    for (key, value) in mapping.iter_mut() {
        let Some(key) = key.as_str() else { continue };
        let is_path = !user_named
            && (key.ends_with("_file")
                || (key == "path" && parent == "sqlite" && (grandparent == "store" || grandparent == "storage"))
                || (key == "file" && grandparent == "secret_headers"));
        match value {
            Value::String(path) if is_path && path.as_str() != ":memory:" => *path = resolve(base_dir, path),
            Value::Sequence(items) if !user_named && key.ends_with("_files") => {
                for item in items {
                    if let Value::String(path) = item {
                        *path = resolve(base_dir, path);
                    }
                }
            }
            _ => {
                keys.push(key.to_string());
                walk(value, base_dir, keys);
                keys.pop();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(text: &str) -> String {
        let mut document = super::super::yaml::parse_value(text).unwrap();
        resolve_file_paths(&mut document, Path::new("/etc/checkit"));
        super::super::yaml::to_string(&document)
    }

    #[test]
    fn relative_paths_move_below_the_config_directory() {
        assert_eq!(resolve(Path::new("/etc/checkit"), "secrets/token"), "/etc/checkit/secrets/token");
        assert_eq!(resolve(Path::new("/etc/checkit"), "./token"), "/etc/checkit/token");
        assert_eq!(resolve(Path::new("/etc/checkit"), "/run/token"), "/run/token");
        assert_eq!(resolve(Path::new("/etc/checkit"), ""), "");
    }

    #[test]
    fn every_path_key_is_resolved_and_nothing_else() {
        let text = "\
modules:
  db_file: {prober: tcp, tcp: {tls_config: {ca_file: ca.pem}}}
bridge:
  auth: {bearer: {token_file: secrets/token}}
  store: {sqlite: {path: state/bridge.db}}
  groups: {ops_files: [alice]}
  channels:
    webhook:
      headers: {x_file: keep}
      secret_headers: {Authorization: {file: auth}}
check_files: [checks/*.yml, /abs/*.yml]
basic_auth_users: {admin_file: $2y$hash}
";
        let out = resolved(text);
        for expected in [
            "ca_file: /etc/checkit/ca.pem",
            "token_file: /etc/checkit/secrets/token",
            "path: /etc/checkit/state/bridge.db",
            "- alice",
            "admin_file: $2y$hash",
            "x_file: keep",
            "file: /etc/checkit/auth",
            "- /etc/checkit/checks/*.yml",
            "- /abs/*.yml",
        ] {
            assert!(out.contains(expected), "{expected:?} not in\n{out}");
        }
        assert!(!out.contains("/etc/checkit/alice") && !out.contains("/etc/checkit/keep"), "{out}");
    }

    #[test]
    fn in_memory_sqlite_stays_in_memory() {
        assert!(resolved("bridge: {store: {sqlite: {path: ':memory:'}}}").contains("path: ':memory:'"));
    }

    #[test]
    fn the_base_is_the_config_files_directory() {
        assert_eq!(base_dir_of(Path::new("/etc/checkit/checkit.yml")), Path::new("/etc/checkit"));
        let here = std::env::current_dir().unwrap();
        assert_eq!(base_dir_of(Path::new("checkit.yml")), here);
        assert_eq!(base_dir_of(Path::new("examples/checkit.yml")), here.join("examples"));
    }
}
