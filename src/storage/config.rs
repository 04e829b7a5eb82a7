//! The `storage:` section (and the deprecated per-area `store:` blocks of
//! the same shape): exactly one of SQLite or PostgreSQL.
//!
//! ```yaml
//! storage: {sqlite: {path: checkit.db}}          # the default
//! storage: {postgres: {url_file: /etc/checkit/pg-url, max_connections: 8}}
//! ```

use crate::config::Problems;
use crate::config::types::Secret;
use serde::{Deserialize, Serialize};

/// The file used when nothing is configured, relative to the config file's directory.
pub const DEFAULT_SQLITE_PATH: &str = "checkit.db";

/// Exactly one storage backend.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Embedded SQLite (WAL), for a single process.
    #[serde(default)]
    pub sqlite: Option<SqliteConfig>,
    /// PostgreSQL, for several replicas sharing state and work.
    #[serde(default)]
    pub postgres: Option<PostgresConfig>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig { sqlite: Some(SqliteConfig { path: DEFAULT_SQLITE_PATH.into() }), postgres: None }
    }
}

impl StorageConfig {
    /// An SQLite store at `path`.
    pub fn sqlite(path: impl Into<String>) -> StorageConfig {
        StorageConfig { sqlite: Some(SqliteConfig { path: path.into() }), postgres: None }
    }

    /// Records every problem below `path` (`storage`, `bridge.store`, …).
    pub fn validate(&self, path: &str, problems: &mut Problems) {
        match (&self.sqlite, &self.postgres) {
            (Some(sqlite), None) => {
                if sqlite.path.trim().is_empty() {
                    problems.push(format!("{path}.sqlite.path"), "must not be empty");
                } else if let Err(message) = sqlite.check_location() {
                    problems.push(format!("{path}.sqlite.path"), message);
                }
            }
            (None, Some(postgres)) => {
                let postgres_path = format!("{path}.postgres");
                if let Err(err) = postgres.url() {
                    problems.push(&postgres_path, err);
                }
                if let Some(tls_config) = &postgres.tls_config {
                    tls_config.validate(&format!("{postgres_path}.tls_config"), problems);
                }
                if postgres.max_connections == 0 || postgres.max_connections > 64 {
                    problems.push(format!("{postgres_path}.max_connections"), "must be between 1 and 64");
                }
            }
            _ => problems.push(path, "set exactly one of sqlite and postgres"),
        }
    }

    /// A short description for logs: the SQLite file, or `postgres`.
    pub fn describe(&self) -> String {
        match &self.sqlite {
            Some(sqlite) => std::path::absolute(&sqlite.path)
                .map(|path| path.display().to_string())
                .unwrap_or_else(|_| sqlite.path.clone()),
            None => "postgres".into(),
        }
    }
}

/// SQLite database file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SqliteConfig {
    /// Database file; created when missing.
    pub path: String,
}

impl SqliteConfig {
    /// Checks that the database can be created or opened for writing (SQLite
    /// also writes its journal beside it), and says what to do when not.
    pub fn check_location(&self) -> Result<(), String> {
        use nix::unistd::{AccessFlags, access};
        let path = std::path::Path::new(&self.path);
        if self.path == ":memory:" {
            return Ok(());
        }
        let dir = path.parent().filter(|dir| !dir.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
        // Name the directory absolutely: "." says nothing in a log.
        let dir = &std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        if !dir.is_dir() {
            return Err(format!(
                "directory {dir:?} does not exist: create it (mkdir -p {}) for the user checkit runs as, \
                 or choose a path in an existing directory",
                dir.display()
            ));
        }
        if access(dir, AccessFlags::W_OK).is_err() {
            return Err(format!(
                "directory {dir:?} is not writable by this user: give it to the user checkit runs as (chown), \
                 or choose a path in a writable directory"
            ));
        }
        if path.exists() && access(path, AccessFlags::W_OK).is_err() {
            return Err(format!("{path:?} is not writable by this user: give it to the user checkit runs as (chown)"));
        }
        Ok(())
    }
}

/// PostgreSQL connection; the URL is a secret read from a file or an env var.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresConfig {
    /// File holding a `postgres://…` URL or a `key=value` connection string.
    pub url_file: Option<String>,
    /// Environment variable holding the same.
    pub url_env: Option<String>,
    /// Connections per process.
    pub max_connections: usize,
    /// TLS to the server (`ca_file`, `cert_file`/`key_file`, `server_name`,
    /// `insecure_skip_verify`); unset connects in plain text. Add
    /// `sslmode=require` to the URL to refuse a server without TLS.
    pub tls_config: Option<crate::net::tls::TlsConfig>,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        PostgresConfig { url_file: None, url_env: None, max_connections: 4, tls_config: None }
    }
}

impl PostgresConfig {
    /// Reads the connection string from its file or env var.
    pub fn url(&self) -> Result<Secret, String> {
        match (&self.url_file, &self.url_env) {
            (Some(_), None) | (None, Some(_)) => {
                crate::config::secret::read(self.url_file.as_deref(), self.url_env.as_deref())?
                    .ok_or_else(|| "exactly one of url_file and url_env must be set".into())
            }
            _ => Err("exactly one of url_file and url_env must be set".into()),
        }
    }
}
