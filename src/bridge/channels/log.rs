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
    pub(crate) fn new(_config: &Config, _build: &super::Build) -> Result<Self, super::Error> {
        Ok(Channel)
    }

    pub(crate) async fn deliver(&self, address: &str, message: &Outgoing) -> Result<Receipt, super::DeliveryError> {
        tracing::info!(
            contact = %address,
            subject = %message.subject,
            body = %message.body,
            "Notification written to the log channel"
        );
        Ok(Receipt { provider_response: "logged".to_string() })
    }
}

/// A contact's address on this channel: a label for the log line.
pub type Address = String;

/// The block contacts use when `bridge.channels.log` is absent: contacts may use it with its defaults.
pub(crate) fn unconfigured() -> Option<Config> {
    Some(Config::default())
}

/// The built-in templates of this channel.
pub(crate) const TEMPLATES: crate::bridge::render::Defaults = crate::bridge::render::Defaults::SHORT;

/// Checks a contact's address: any non-empty single-line label.
pub fn validate_address(address: &str) -> Result<(), String> {
    if address.chars().any(char::is_control) { Err("log address must be a single line".to_string()) } else { Ok(()) }
}

/// The log keeps the body whole.
pub fn truncate(text: &str) -> String {
    text.to_string()
}
