//! The `tcp` prober (placeholder until its engineer lands it).

use super::{Phase, ProbeCtx, ProbeError, ProbeResult, Reason};
use crate::config::Problems;
use serde::{Deserialize, Serialize};

/// The `tcp:` block of a module.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {}

impl Config {
    /// Records every problem of this block.
    pub fn validate(&self, _path: &str, _problems: &mut Problems) {}
}

/// Runs one probe.
pub async fn probe(_ctx: &mut ProbeCtx<'_>, _config: &Config) -> ProbeResult {
    Err(ProbeError::new(Phase::Connect, Reason::Config, "the tcp prober is not built yet"))
}
