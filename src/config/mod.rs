//! What every part's config is read with: YAML (every call in `yaml`), the
//! relative-path rule (`paths`), secrets (`secret`), typed values (`types`),
//! problems located by their YAML path, and the holder of the config in force
//! (`live`).
//!
//! **Architecture invariant:** a leaf — it names no other module of checkit.
//! Each part decodes and validates its own block with these pieces; the
//! top-level config that gathers the blocks is `crate::settings`.

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
    /// The problems' paths, in order (what tests compare).
    pub fn paths(&self) -> Vec<&str> {
        self.0.iter().map(|problem| problem.path.as_str()).collect()
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
