//! The alert bridge (placeholder until its engineers land it).

use crate::config::Problems;
use serde::{Deserialize, Serialize};

/// The `bridge:` section.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {}

impl Config {
    /// Records every problem of this section.
    pub fn validate(&self, _path: &str, _problems: &mut Problems) {}
}
