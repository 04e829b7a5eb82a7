//! Slack incoming webhooks: one webhook URL per contact (the URL is the
//! secret, so it never appears in errors or receipts). Slack answers 429 with
//! `Retry-After` when a channel posts too fast. The text is sent as plain
//! text: `&`, `<` and `>` are escaped as Slack requires, so an alert saying
//! `latency > 1s` is shown as written (bare URLs are still linked by Slack).

use super::{DeliveryError, Error, Receipt, http_outcome, send_http};
use super::{is_loopback_host, parse_http_url};
use crate::bridge::render::{self, Outgoing};
use crate::config::Problems;
use serde::{Deserialize, Serialize};
use std::time::SystemTime;

/// `bridge.channels.slack`: nothing to set today, the URL comes from the
/// contact. The block exists so every channel is configured the same way.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {}

impl Config {
    /// Records every problem of this block below `path` (there are none).
    pub fn validate(&self, _path: &str, _problems: &mut Problems) {}
}

/// The built Slack channel.
pub(crate) struct Channel {
    http: reqwest::Client,
}

#[derive(Serialize)]
struct Payload<'a> {
    text: &'a str,
}

impl Channel {
    pub(crate) fn new(_config: &Config, build: &super::Build) -> Result<Self, Error> {
        let http = build.http.clone();
        Ok(Channel { http })
    }

    pub(crate) async fn deliver(&self, address: &str, message: &Outgoing) -> Result<Receipt, DeliveryError> {
        let text = escape_control_characters(&message.body);
        let request = self.http.post(address).json(&Payload { text: &text });
        let answer = send_http(request, &[]).await?;
        http_outcome(&answer, SystemTime::now())
    }
}

/// Escapes the three characters Slack treats as markup.
fn escape_control_characters(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Slack truncates `text` beyond 40,000 characters; stay below.
pub const MAX_CHARS: usize = 39_000;

/// A contact's address on this channel: an incoming-webhook URL (a secret: it carries the token).
pub type Address = crate::config::types::Secret;

/// The block contacts use when `bridge.channels.slack` is absent: contacts may use it with its defaults.
pub(crate) fn unconfigured() -> Option<Config> {
    Some(Config::default())
}

/// The built-in templates of this channel.
pub(crate) const TEMPLATES: crate::bridge::render::Defaults = crate::bridge::render::Defaults::SHORT;

/// Checks a contact's address: an `https://` URL (`http://` only to a loopback host).
pub fn validate_address(address: &str) -> Result<(), String> {
    let url = parse_http_url(address)?;
    if url.scheme() == "https" || is_loopback_host(&url) {
        Ok(())
    } else {
        Err("slack webhook URL must use https".to_string())
    }
}

/// Cuts to what Slack shows.
pub fn truncate(text: &str) -> String {
    render::truncate_chars(text, MAX_CHARS, render::ELLIPSIS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_characters_are_escaped() {
        assert_eq!(escape_control_characters("p99 > 1s & <rising>"), "p99 &gt; 1s &amp; &lt;rising&gt;");
    }
}
