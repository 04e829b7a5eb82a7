//! The alert bridge (placeholder until its engineers land it).

pub mod channels;
pub mod quiet;
pub mod ratelimit;
pub mod render;

use crate::config::Problems;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The `bridge:` section.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// A listener of its own for the bridge's routes.
    pub listen_address: Option<String>,
}

impl Config {
    /// Records every problem of this section.
    pub fn validate(&self, _path: &str, _problems: &mut Problems) {}
}

/// The running bridge.
pub struct Bridge;

impl Bridge {
    /// Starts the bridge.
    pub async fn start(
        _config: Arc<Config>,
        _registry: &mut prometheus_client::registry::Registry,
    ) -> anyhow::Result<Bridge> {
        anyhow::bail!("the bridge is not built yet")
    }
    /// The bridge's routes.
    pub fn router(&self) -> axum::Router {
        axum::Router::new()
    }
    /// Applies a new config.
    pub fn reload(&self, _config: Arc<Config>) {}
    /// Stops the workers.
    pub async fn shutdown(&self) {}
}
