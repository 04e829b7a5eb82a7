//! The log channel: writes the rendered message to the process log. It needs
//! no server, always succeeds, and is what the default config uses, so a
//! fresh checkit delivers somewhere visible without any setup.

use super::Receipt;
use crate::bridge::render::Outgoing;
use crate::config::Problems;
use serde::{Deserialize, Serialize};

/// `bridge.channels.log`: nothing to set today; the block exists so that
/// every channel is configured the same way.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {}

impl Config {
    /// Records every problem of this block below `path` (there are none).
    pub fn validate(&self, _path: &str, _problems: &mut Problems) {}
}

/// The built log channel.
pub(crate) struct Channel;

impl Channel {
    pub(crate) fn new(_config: &Config) -> Self {
        Channel
    }

    pub(crate) fn deliver(&self, address: &str, message: &Outgoing) -> Receipt {
        tracing::info!(
            contact = %address,
            subject = %message.subject,
            body = %message.body,
            "Notification written to the log channel"
        );
        Receipt { provider_response: "logged".to_string() }
    }
}

/// Checks a contact's address: any non-empty single-line label.
pub fn validate_address(address: &str) -> Result<(), String> {
    if address.chars().any(char::is_control) { Err("log address must be a single line".to_string()) } else { Ok(()) }
}

/// The log keeps the body whole.
pub fn truncate(text: &str) -> String {
    text.to_string()
}
