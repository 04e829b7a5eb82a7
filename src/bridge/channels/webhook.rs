//! Generic webhook: POSTs the notification as JSON to the contact's URL.
//! The body is what `render` produced for the webhook channel: by default the
//! whole notification view as JSON. 2xx succeeds, 5xx, 408, 429 and network
//! failures are retryable (honouring `Retry-After`), other 4xx are not.

use super::parse_http_url;
use super::{ChannelKind, DeliveryError, Error, HeaderedHttp, Receipt, SecretSource, validate_headers};
use crate::bridge::render::Outgoing;
use crate::config::Problems;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `bridge.channels.webhook`: settings shared by every webhook contact.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Extra request headers with plain values.
    pub headers: BTreeMap<String, String>,
    /// Extra request headers whose values are secrets (`file:` or `env:`),
    /// e.g. `Authorization: {file: /run/secrets/hook-auth}`.
    pub secret_headers: BTreeMap<String, SecretSource>,
}

impl Config {
    /// Records every problem of this block below `path`.
    pub fn validate(&self, path: &str, problems: &mut Problems) {
        validate_headers(path, &self.headers, &self.secret_headers, problems);
    }
}

/// The built webhook channel.
pub(crate) struct Channel {
    http: HeaderedHttp,
}

impl Channel {
    pub(crate) fn new(config: &Config, build: &super::Build) -> Result<Self, Error> {
        let json = Some("application/json");
        let http = HeaderedHttp::new(build, &config.headers, &config.secret_headers, ChannelKind::Webhook, json)?;
        Ok(Channel { http })
    }

    pub(crate) async fn deliver(&self, address: &str, message: &Outgoing) -> Result<Receipt, DeliveryError> {
        self.http.deliver(self.http.client().post(address).body(message.body.clone())).await
    }
}

/// A contact's address on this channel: a URL (a secret: URLs often carry tokens).
pub type Address = crate::config::types::Secret;

/// The block contacts use when `bridge.channels.webhook` is absent: contacts may use it with its defaults.
pub(crate) fn unconfigured() -> Option<Config> {
    Some(Config::default())
}

/// The built-in templates of this channel.
pub(crate) const TEMPLATES: crate::bridge::render::Defaults =
    crate::bridge::render::Defaults { body: None, html: None, json: true };

/// Checks a contact's address: an `http://` or `https://` URL.
pub fn validate_address(address: &str) -> Result<(), String> {
    parse_http_url(address).map(|_| ())
}

/// JSON receivers take the body whole.
pub fn truncate(text: &str) -> String {
    text.to_string()
}
