//! ntfy: publishes the message to one topic per contact on a configurable
//! server (default `https://ntfy.sh`), with the subject as `Title` and the
//! configured `Priority` and `Tags` headers. ntfy answers 429 when the
//! visitor's request budget is spent and 5xx when it is unwell; both retry.

use super::{ChannelKind, DeliveryError, Error, Receipt, SecretSource, http_outcome, send_http, validate_config_url};
use crate::bridge::render::{self, Outgoing};
use crate::config::Problems;
use crate::config::types::Secret;
use base64::Engine;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};
use std::time::SystemTime;

/// `bridge.channels.ntfy`: the server and message defaults.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Server base URL.
    pub server: String,
    /// File holding an access token (sent as `Authorization: Bearer`).
    pub token_file: Option<String>,
    /// Environment variable holding an access token.
    pub token_env: Option<String>,
    /// `min`, `low`, `default`, `high`, `max`/`urgent` or `1`–`5`.
    pub priority: Option<String>,
    /// Tags (emoji short codes such as `rotating_light` show as icons).
    pub tags: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server: "https://ntfy.sh".to_string(),
            token_file: None,
            token_env: None,
            priority: None,
            tags: Vec::new(),
        }
    }
}

const PRIORITIES: &[&str] = &["min", "low", "default", "high", "max", "urgent", "1", "2", "3", "4", "5"];

impl Config {
    /// Records every problem of this block below `path`.
    pub fn validate(&self, path: &str, problems: &mut Problems) {
        validate_config_url(&format!("{path}.server"), &self.server, problems);
        SecretSource::from_pair(&self.token_file, &self.token_env).validate(
            path,
            "token_file",
            "token_env",
            false,
            problems,
        );
        if let Some(priority) = &self.priority {
            if !PRIORITIES.contains(&priority.as_str()) {
                problems.push(
                    format!("{path}.priority"),
                    format!("unknown priority {priority:?}: use one of {PRIORITIES:?}"),
                );
            }
        }
        for (index, tag) in self.tags.iter().enumerate() {
            if tag.is_empty() || tag.contains(',') || tag.chars().any(char::is_control) {
                problems.push(
                    format!("{path}.tags[{index}]"),
                    "a tag must be non-empty, without commas or control characters",
                );
            }
        }
    }
}

/// The built ntfy channel.
pub(crate) struct Channel {
    http: reqwest::Client,
    server: String,
    headers: HeaderMap,
    secrets: Vec<Secret>,
}

impl Channel {
    pub(crate) fn new(config: &Config, build: &super::Build) -> Result<Self, Error> {
        let http = build.http.clone();
        let invalid = |message: String| Error::Invalid { channel: ChannelKind::Ntfy, message };
        let mut headers = HeaderMap::new();
        let mut secrets = Vec::new();
        let token = SecretSource::from_pair(&config.token_file, &config.token_env)
            .load_optional()
            .map_err(|message| Error::Secret { channel: ChannelKind::Ntfy, message })?;
        if let Some(token) = token {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
                .map_err(|_| invalid("token is not a valid header value".to_string()))?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
            secrets.push(token);
        }
        if let Some(priority) = &config.priority {
            headers.insert(
                "Priority",
                HeaderValue::from_str(priority).map_err(|_| invalid(format!("invalid priority {priority:?}")))?,
            );
        }
        if !config.tags.is_empty() {
            headers.insert("Tags", header_text(&config.tags.join(",")));
        }
        Ok(Channel { http, server: config.server.trim_end_matches('/').to_string(), headers, secrets })
    }

    pub(crate) async fn deliver(&self, address: &str, message: &Outgoing) -> Result<Receipt, DeliveryError> {
        let mut headers = self.headers.clone();
        let title = render::truncate_bytes(message.subject.trim(), NTFY_TITLE_BYTES, "…");
        if !title.is_empty() {
            headers.insert("Title", header_text(&title));
        }
        let body = truncate(&message.body);
        let request = self.http.post(format!("{}/{address}", self.server)).headers(headers).body(body);
        let answer = send_http(request, &self.secrets).await?;
        http_outcome(&answer, SystemTime::now())
    }
}

/// ntfy keeps titles up to about 1 KB.
const NTFY_TITLE_BYTES: usize = 1024;

/// A header value for free text: printable ASCII as is, anything else as an
/// RFC 2047 encoded word, which ntfy decodes.
fn header_text(text: &str) -> HeaderValue {
    let single_line = text.replace(['\r', '\n'], " ");
    let plain = single_line.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'=');
    let encoded = if plain {
        single_line
    } else {
        format!("=?UTF-8?B?{}?=", base64::engine::general_purpose::STANDARD.encode(single_line.as_bytes()))
    };
    // Both branches are printable ASCII, which is always a valid header value.
    HeaderValue::from_str(&encoded).unwrap_or(HeaderValue::from_static(""))
}

/// ntfy turns longer messages into attachments.
pub const MAX_BYTES: usize = 4096;

/// A contact's address on this channel: a topic.
pub type Address = String;

/// The block contacts use when `bridge.channels.ntfy` is absent: contacts may use it with its defaults.
pub(crate) fn unconfigured() -> Option<Config> {
    Some(Config::default())
}

/// The built-in templates of this channel.
pub(crate) const TEMPLATES: crate::bridge::render::Defaults = crate::bridge::render::Defaults::SHORT;

/// Checks a contact's address: a topic: 1–64 of `A-Z a-z 0-9 _ -`.
pub fn validate_address(address: &str) -> Result<(), String> {
    let valid = address.len() <= 64 && address.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid { Ok(()) } else { Err(format!("invalid ntfy topic {address:?}: use 1 to 64 of A-Z, a-z, 0-9, _ and -")) }
}

/// Cuts to what ntfy shows as a message.
pub fn truncate(text: &str) -> String {
    render::truncate_bytes(text, MAX_BYTES, render::ELLIPSIS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_ascii_header_text_is_rfc2047_encoded() {
        assert_eq!(header_text("Disk full").to_str().unwrap(), "Disk full");
        assert_eq!(header_text("Störung ✓").to_str().unwrap(), "=?UTF-8?B?U3TDtnJ1bmcg4pyT?=");
        assert_eq!(header_text("a\nb").to_str().unwrap(), "a b");
    }

    #[test]
    fn validation_checks_priority_tags_and_server() {
        let config = Config {
            server: "ntfy.sh".into(),
            priority: Some("loud".into()),
            tags: vec!["ok".into(), "a,b".into()],
            ..Config::default()
        };
        let mut problems = Problems::default();
        config.validate("n", &mut problems);
        let paths = problems.paths();
        assert_eq!(paths, ["n.server", "n.priority", "n.tags[1]"]);
        let mut problems = Problems::default();
        Config::default().validate("n", &mut problems);
        assert!(problems.is_empty());
    }
}
