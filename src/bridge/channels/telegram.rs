//! Telegram Bot API `sendMessage`. Plain text (no parse mode), so alert text
//! never needs escaping. Telegram caps a message at 4096 characters and
//! answers 429 with `parameters.retry_after` when a chat is flooded.

use super::{
    ChannelKind, DeliveryError, Error, Reason, Receipt, SecretSource, http_outcome, send_http, validate_config_url,
};
use crate::bridge::render::{self, Outgoing};
use crate::config::Problems;
use crate::config::types::Secret;
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime};

/// `bridge.channels.telegram`: the bot.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Bot API base URL; override for tests or a local Bot API server.
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// File holding the bot token (`123456:ABC-DEF…`).
    #[serde(default)]
    pub token_file: Option<String>,
    /// Environment variable holding the bot token.
    #[serde(default)]
    pub token_env: Option<String>,
}

fn default_api_url() -> String {
    "https://api.telegram.org".to_string()
}

impl Config {
    /// Records every problem of this block below `path`.
    pub fn validate(&self, path: &str, problems: &mut Problems) {
        validate_config_url(&format!("{path}.api_url"), &self.api_url, problems);
        SecretSource::from_pair(&self.token_file, &self.token_env).validate(
            path,
            "token_file",
            "token_env",
            true,
            problems,
        );
    }
}

/// The built Telegram channel.
pub(crate) struct Channel {
    http: reqwest::Client,
    send_message_url: String,
    secrets: Vec<Secret>,
}

#[derive(Serialize)]
struct SendMessage<'a> {
    chat_id: &'a str,
    text: &'a str,
    link_preview_options: LinkPreviewOptions,
}

#[derive(Serialize)]
struct LinkPreviewOptions {
    is_disabled: bool,
}

/// The parts of a Bot API answer that matter here.
#[derive(Deserialize, Default)]
struct Answer {
    #[serde(default)]
    result: Option<SentMessage>,
    #[serde(default)]
    parameters: Option<ResponseParameters>,
}

#[derive(Deserialize)]
struct SentMessage {
    message_id: i64,
}

#[derive(Deserialize)]
struct ResponseParameters {
    retry_after: Option<u64>,
}

impl Channel {
    pub(crate) fn new(config: &Config, build: &super::Build) -> Result<Self, Error> {
        let http = build.http.clone();
        let token = SecretSource::from_pair(&config.token_file, &config.token_env)
            .load()
            .map_err(|message| Error::Secret { channel: ChannelKind::Telegram, message })?;
        let send_message_url = format!("{}/bot{}/sendMessage", config.api_url.trim_end_matches('/'), token.expose());
        Ok(Channel { http, send_message_url, secrets: vec![token] })
    }

    pub(crate) async fn deliver(&self, address: &str, message: &Outgoing) -> Result<Receipt, DeliveryError> {
        let text = truncate(&message.body);
        if text.trim().is_empty() {
            return Err(DeliveryError::permanent(Reason::InvalidMessage, "telegram refuses empty messages"));
        }
        let request = self.http.post(&self.send_message_url).json(&SendMessage {
            chat_id: address,
            text: &text,
            link_preview_options: LinkPreviewOptions { is_disabled: true },
        });
        let answer = send_http(request, &self.secrets).await?;
        let parsed: Answer = serde_json::from_str(&answer.body).unwrap_or_default();
        match http_outcome(&answer, SystemTime::now()) {
            Ok(receipt) => Ok(match parsed.result {
                Some(sent) => {
                    Receipt { provider_response: format!("{} message_id={}", answer.status.as_u16(), sent.message_id) }
                }
                None => receipt,
            }),
            Err(mut err) => {
                if let Some(seconds) = parsed.parameters.and_then(|p| p.retry_after) {
                    err.retry_after = Some(Duration::from_secs(seconds));
                }
                Err(err)
            }
        }
    }
}

/// Telegram's limit per message (UTF-16 code units).
pub const MAX_UTF16: usize = 4096;

/// A contact's address on this channel: a chat id or `@channelname`.
pub type Address = String;

/// The block contacts use when `bridge.channels.telegram` is absent: none, it needs its block.
pub(crate) fn unconfigured() -> Option<Config> {
    None
}

/// The built-in templates of this channel.
pub(crate) const TEMPLATES: crate::bridge::render::Defaults = crate::bridge::render::Defaults::SHORT;

/// Checks a contact's address: a numeric chat id (negative for groups) or `@channelname`.
pub fn validate_address(address: &str) -> Result<(), String> {
    let numeric = address.strip_prefix('-').unwrap_or(address);
    let is_id = !numeric.is_empty() && numeric.len() <= 20 && numeric.bytes().all(|b| b.is_ascii_digit());
    let is_name = address.strip_prefix('@').is_some_and(|name| {
        (5..=32).contains(&name.len())
            && name.starts_with(|c: char| c.is_ascii_alphabetic())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    });
    if is_id || is_name {
        Ok(())
    } else {
        Err(format!("invalid telegram chat {address:?}: expected a numeric chat id or @channelname"))
    }
}

/// Cuts to Telegram's limit per message.
pub fn truncate(text: &str) -> String {
    render::truncate_by(text, MAX_UTF16, render::ELLIPSIS, char::len_utf16)
}
