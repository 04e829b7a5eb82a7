//! `ui:` — who may operate the web UI.

use crate::config::Problems;
use serde::{Deserialize, Serialize};

/// `ui:` in checkit's config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UiConfig {
    /// `--web.config.file` users who may pause and resume checks, open
    /// maintenance, edit incidents and reload the config. Every other
    /// web-config user only reads. Without web-config users everyone is an
    /// operator.
    pub operators: Vec<String>,
}

impl UiConfig {
    /// True when nothing is set (the block is left out of `/config`).
    pub fn is_default(&self) -> bool {
        *self == UiConfig::default()
    }

    /// Records every problem below `path`.
    pub fn validate(&self, path: &str, problems: &mut Problems) {
        for (index, operator) in self.operators.iter().enumerate() {
            if operator.is_empty() || operator.contains(':') {
                problems.push(format!("{path}.operators[{index}]"), "must be a web-config user name (no colon)");
            }
        }
    }
}
