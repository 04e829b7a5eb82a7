//! The UI's config blocks: `ui:` (who may operate the web UI, badge
//! tokens) and, re-exported from `status_config`, `status_pages:`; and
//! `Settings`, what the UI reads of the config in force.

pub use super::status_config::{StatusPage, from_yaml as status_pages_from_yaml};
use crate::config::Problems;
use serde::{Deserialize, Serialize};

/// What the UI reads from the config in force: `app` builds it from each
/// loaded config.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// `ui:`.
    pub ui: UiConfig,
    /// `status_pages:`.
    pub status_pages: Vec<StatusPage>,
    /// The bridge's contact names (the deliveries filter), none without a bridge.
    pub contacts: Vec<String>,
}

/// `ui:` in checkit's config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UiConfig {
    /// `--web.config.file` users who may pause and resume checks, open
    /// maintenance, edit incidents and reload the config. Every other
    /// web-config user only reads. Without web-config users everyone is an
    /// operator.
    pub operators: Vec<String>,
    /// A file holding a secret: with it, each check's badges are also served
    /// without a login to URLs carrying `?token=` (an HMAC of the check name
    /// under this secret, shown on the check page), so a private check's badge
    /// can go into an internal README. Changing the secret revokes every token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub badge_key_file: Option<String>,
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
        if let Some(file) = &self.badge_key_file {
            match crate::config::types::read_secret_file(file) {
                Ok(secret) if secret.expose().len() < 16 => {
                    problems.push(format!("{path}.badge_key_file"), "the secret must be at least 16 characters")
                }
                Ok(_) => {}
                Err(err) => problems.push(format!("{path}.badge_key_file"), err),
            }
        }
    }
}
