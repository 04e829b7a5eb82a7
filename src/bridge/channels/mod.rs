//! Channels: how a rendered message reaches a contact (email, SMS gateway,
//! Telegram, Slack, ntfy, generic webhook, or the process log).
//!
//! Like Alertmanager's `notify/` package, every channel returns either a
//! [`Receipt`] or a [`DeliveryError`] that says whether retrying can help and
//! why it failed, with the reason drawn from a closed enum ([`Reason`]) so
//! that it can become a metric label.

pub mod email;
pub mod log;
pub mod ntfy;
pub mod slack;
pub mod sms;
pub mod telegram;
pub mod webhook;

use crate::bridge::render::Outgoing;
use crate::config::Problems;
use crate::config::types::{GoDuration, Secret};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime};

/// Calls `$callback!` with the one list of channels, `Variant module;` each
/// with its doc. This line and the channel's file (with its `pub mod`) are
/// all a new channel needs: the enum, `bridge.channels`, the built
/// [`Channels`], a contact's addresses (`bridge::config::Contact`) and the
/// template overrides (`render::TemplatesConfig`) are generated from it.
macro_rules! for_each_channel {
    ($callback:ident) => {
        $callback! {
            /// SMTP email through one smarthost account.
            Email email;
            /// A generic HTTP SMS gateway.
            Sms sms;
            /// Telegram Bot API `sendMessage`.
            Telegram telegram;
            /// Slack incoming webhook, one URL per contact.
            Slack slack;
            /// ntfy publish to one topic per contact.
            Ntfy ntfy;
            /// Generic JSON POST to one URL per contact.
            Webhook webhook;
            /// The process log; always available, always succeeds.
            Log log;
        }
    };
}
pub(crate) use for_each_channel;

/// The text of a contact's address, whether the channel keeps it plain or
/// as a secret (hidden from `/config`).
pub trait AddressText {
    /// The address as the channel uses it.
    fn text(&self) -> &str;
}

impl AddressText for String {
    fn text(&self) -> &str {
        self
    }
}

impl AddressText for Secret {
    fn text(&self) -> &str {
        self.expose()
    }
}

/// What every channel is built with.
pub(crate) struct Build {
    /// The one HTTP client, with the attempt's timeout.
    pub(crate) http: reqwest::Client,
    /// Budget for one delivery attempt.
    pub(crate) timeout: Duration,
}

macro_rules! channels {
    ($($(#[$doc:meta])* $variant:ident $module:ident;)*) => {
        /// The closed set of channel kinds (see `for_each_channel`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum ChannelKind {
            $($(#[$doc])* $variant,)*
        }

        impl ChannelKind {
            /// The lowercase name used in config and as a metric label value.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ChannelKind::$variant => stringify!($module),)*
                }
            }

            /// Every kind, in a stable order (for pre-creating metric label values).
            pub fn all() -> &'static [ChannelKind] {
                &[$(ChannelKind::$variant,)*]
            }

            /// The built-in templates of the channel.
            pub(crate) fn templates(self) -> crate::bridge::render::Defaults {
                match self {
                    $(ChannelKind::$variant => $module::TEMPLATES,)*
                }
            }
        }

/// The `bridge.channels:` section. A provider block that is absent leaves
/// that channel unconfigured, except `slack`, `webhook` and `log`, which need
/// no settings and work with their defaults, and `ntfy`, which defaults to
/// `https://ntfy.sh`. Secrets are only read from files (`*_file`, `file:`)
/// or environment variables (`*_env`, `env:`).
///
/// ```yaml
/// timeout: 10s
/// email:
///   smarthost: mail.example.com:587     # tls: starttls (required) unless port 465
///   from: "checkit <alerts@example.com>"
///   username: alerts@example.com
///   password_file: /run/secrets/smtp
/// sms:
///   url: https://sms.example/api/send
///   secret_headers: {Authorization: {file: /run/secrets/sms}}
///   body: '{"to": {{ to }}, "text": {{ text }}}'   # values arrive JSON-quoted
///   max_segments: 2
/// telegram: {token_file: /run/secrets/telegram}
/// ntfy: {server: https://ntfy.example, token_env: NTFY_TOKEN, priority: high, tags: [rotating_light]}
/// webhook: {secret_headers: {Authorization: {env: HOOK_AUTH}}}
/// ```
        #[derive(Debug, Clone, Serialize, Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct ChannelsConfig {
            /// Budget for one delivery attempt (HTTP request or SMTP command).
            pub timeout: GoDuration,
            $(
                #[doc = concat!("`", stringify!($module), "`: the channel's settings.")]
                pub $module: Option<$module::Config>,
            )*
        }

        impl Default for ChannelsConfig {
            fn default() -> Self {
                ChannelsConfig { timeout: GoDuration(Duration::from_secs(10)), $($module: None,)* }
            }
        }

        impl ChannelsConfig {
            /// Records every problem of this section below `path`
            /// (normally `bridge.channels`). Reads secret files to check they exist.
            pub fn validate(&self, path: &str, problems: &mut Problems) {
                if self.timeout.get().is_zero() {
                    problems.push(format!("{path}.timeout"), "timeout must be greater than zero");
                }
                $(
                    if let Some(block) = &self.$module {
                        block.validate(&format!("{path}.{}", stringify!($module)), problems);
                    }
                )*
            }

            /// Whether contacts may use `kind`: its block is set, or the
            /// channel works with its defaults.
            pub fn is_configured(&self, kind: ChannelKind) -> bool {
                match kind {
                    $(ChannelKind::$variant => self.$module.is_some() || $module::unconfigured().is_some(),)*
                }
            }
        }

        /// The built channels: secrets read, one HTTP client, one pooled SMTP
        /// transport. Cheap to share behind an `Arc`.
        pub struct Channels {
            $($module: Option<$module::Channel>,)*
        }

        impl fmt::Debug for Channels {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct("Channels")$(.field(stringify!($module), &self.$module.is_some()))*.finish()
            }
        }

        impl Channels {
            /// Builds every configured channel. Reads secret files and builds the
            /// shared HTTP client and the SMTP transport; nothing connects yet.
            pub fn new(config: &ChannelsConfig) -> Result<Channels, Error> {
                let timeout = config.timeout.get();
                let http = reqwest::Client::builder()
                    .timeout(timeout)
                    .connect_timeout(timeout)
                    .user_agent(concat!("checkit/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .map_err(|err| Error::HttpClient(err.to_string()))?;
                let build = Build { http, timeout };
                Ok(Channels {
                    $(
                        $module: config
                            .$module
                            .clone()
                            .or_else($module::unconfigured)
                            .map(|block| $module::Channel::new(&block, &build))
                            .transpose()?,
                    )*
                })
            }

            /// Delivers one rendered message to one address over one channel. Makes a
            /// single attempt: retries are the outbox's business.
            pub async fn deliver(
                &self,
                kind: ChannelKind,
                address: &str,
                message: &Outgoing,
            ) -> Result<Receipt, DeliveryError> {
                validate_address(kind, address)
                    .map_err(|message| DeliveryError::permanent(Reason::InvalidAddress, message))?;
                let not_configured = || {
                    DeliveryError::permanent(Reason::NotConfigured, format!("bridge.channels.{kind} is not configured"))
                };
                match kind {
                    $(ChannelKind::$variant => self.$module.as_ref().ok_or_else(not_configured)?.deliver(address, message).await,)*
                }
            }
        }

        /// Checks a contact's address for `kind` (each channel's
        /// `validate_address` says what it accepts), for use at config load.
        pub fn validate_address(kind: ChannelKind, address: &str) -> Result<(), String> {
            if address.is_empty() {
                return Err(format!("{kind} address must not be empty"));
            }
            match kind {
                $(ChannelKind::$variant => $module::validate_address(address),)*
            }
        }

        /// Cuts a rendered body to the size limit of `kind` (each channel's file
        /// knows its provider's limit).
        pub fn truncate(kind: ChannelKind, text: &str) -> String {
            match kind {
                $(ChannelKind::$variant => $module::truncate(text),)*
            }
        }
    };
}
for_each_channel!(channels);

impl fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A secret given by file or by environment variable name, never inline.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSource {
    /// File holding the secret (one trailing newline is trimmed).
    pub file: Option<String>,
    /// Name of the environment variable holding the secret.
    pub env: Option<String>,
}

impl SecretSource {
    /// Builds a source from a `*_file` / `*_env` key pair.
    pub fn from_pair(file: &Option<String>, env: &Option<String>) -> Self {
        SecretSource { file: file.clone(), env: env.clone() }
    }

    /// True when neither key is set.
    pub fn is_empty(&self) -> bool {
        self.file.is_none() && self.env.is_none()
    }

    /// Checks that exactly one source is set (or none, if optional) and that
    /// it can be read. `file_key`/`env_key` name the YAML keys in messages.
    pub fn validate(&self, path: &str, file_key: &str, env_key: &str, required: bool, problems: &mut Problems) {
        match (&self.file, &self.env) {
            (Some(_), Some(_)) => problems.push(path, format!("{file_key} and {env_key} are mutually exclusive")),
            (None, None) if required => problems.push(path, format!("one of {file_key} or {env_key} must be set")),
            _ => {}
        }
        if self.file.is_some() || self.env.is_some() {
            if let Err(message) = self.load() {
                let key = if self.file.is_some() { file_key } else { env_key };
                problems.push(format!("{path}.{key}"), message);
            }
        }
    }

    /// Reads the secret. `Ok(None)` when no source is set.
    pub fn load_optional(&self) -> Result<Option<Secret>, String> {
        if self.is_empty() { Ok(None) } else { self.load().map(Some) }
    }

    /// Reads the secret from its file or environment variable.
    pub fn load(&self) -> Result<Secret, String> {
        let secret = crate::config::secret::read(self.file.as_deref(), self.env.as_deref())?
            .ok_or_else(|| "no secret source set".to_string())?;
        if secret.expose().is_empty() {
            return Err("secret is empty".to_string());
        }
        Ok(secret)
    }
}

/// Checks static and secret HTTP header maps shared by the SMS and webhook
/// channels.
pub(crate) fn validate_headers(
    path: &str,
    headers: &BTreeMap<String, String>,
    secret_headers: &BTreeMap<String, SecretSource>,
    problems: &mut Problems,
) {
    for (name, value) in headers {
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            problems.push(format!("{path}.headers.{name}"), "invalid HTTP header name");
        }
        if reqwest::header::HeaderValue::from_str(value).is_err() {
            problems.push(format!("{path}.headers.{name}"), "invalid HTTP header value");
        }
    }
    for (name, source) in secret_headers {
        let header_path = format!("{path}.secret_headers.{name}");
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            problems.push(header_path.clone(), "invalid HTTP header name");
        }
        if headers.contains_key(name) {
            problems.push(header_path.clone(), "header is also set in headers; set it in one place");
        }
        source.validate(&header_path, "file", "env", true, problems);
    }
}

/// How the SMS and webhook channels send: the one client, the configured
/// headers (secret values marked sensitive, so they never show in debug
/// output) and the secrets scrubbed from answers.
pub(crate) struct HeaderedHttp {
    http: reqwest::Client,
    headers: reqwest::header::HeaderMap,
    secrets: Vec<Secret>,
}

impl HeaderedHttp {
    /// Reads the secret headers; `content_type` is sent unless the headers set one.
    pub(crate) fn new(
        build: &Build,
        headers: &BTreeMap<String, String>,
        secret_headers: &BTreeMap<String, SecretSource>,
        channel: ChannelKind,
        content_type: Option<&'static str>,
    ) -> Result<Self, Error> {
        use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
        let invalid = |name: &str| Error::Invalid { channel, message: format!("invalid HTTP header {name:?}") };
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            let header_name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid(name))?;
            let header_value = HeaderValue::from_str(value).map_err(|_| invalid(name))?;
            map.insert(header_name, header_value);
        }
        let mut secrets = Vec::new();
        for (name, source) in secret_headers {
            let header_name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid(name))?;
            let secret = source.load().map_err(|message| Error::Secret { channel, message })?;
            let mut header_value = HeaderValue::from_str(secret.expose()).map_err(|_| invalid(name))?;
            header_value.set_sensitive(true);
            map.insert(header_name, header_value);
            secrets.push(secret);
        }
        if let Some(content_type) = content_type {
            map.entry(CONTENT_TYPE).or_insert(HeaderValue::from_static(content_type));
        }
        Ok(HeaderedHttp { http: build.http.clone(), headers: map, secrets })
    }

    /// The client to build a request with.
    pub(crate) fn client(&self) -> &reqwest::Client {
        &self.http
    }

    /// Sends `request` with the headers and reads the provider's verdict.
    pub(crate) async fn deliver(&self, request: reqwest::RequestBuilder) -> Result<Receipt, DeliveryError> {
        let answer = send_http(request.headers(self.headers.clone()), &self.secrets).await?;
        http_outcome(&answer, SystemTime::now())
    }
}

/// Checks a URL from the config (gateway, API base): http or https with a host.
pub(crate) fn validate_config_url(path: &str, url: &str, problems: &mut Problems) {
    match url::Url::parse(url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.has_host() => {}
        Ok(_) => problems.push(path, format!("{url:?} must be an http or https URL")),
        Err(err) => problems.push(path, format!("invalid URL {url:?}: {err}")),
    }
}

/// A channel that could not be built from its (validated) config.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A secret file or environment variable could not be read.
    #[error("{channel}: {message}")]
    Secret {
        /// The channel.
        channel: ChannelKind,
        /// What went wrong (never the secret).
        message: String,
    },
    /// A setting is invalid (the config check should have caught it).
    #[error("{channel}: {message}")]
    Invalid {
        /// The channel.
        channel: ChannelKind,
        /// What is wrong.
        message: String,
    },
    /// The shared HTTP client could not be built.
    #[error("cannot build HTTP client: {0}")]
    HttpClient(String),
}

/// What the provider said when it accepted a message: status and a trimmed
/// body, never a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// For HTTP `"200 OK: <trimmed body>"`, for SMTP `"250 <reply>"`.
    pub provider_response: String,
}

/// Why a delivery attempt failed: a closed set whose names are metric label
/// values and the first word of the error in the delivery history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum Reason {
    /// The attempt ran out of time (retryable).
    Timeout,
    /// No connection, or it broke mid-request (retryable).
    Connect,
    /// The TLS handshake failed (retryable: certificates get fixed).
    Tls,
    /// The provider answered 429 (retryable, often with a retry-after hint).
    RateLimited,
    /// The provider answered 5xx or 408 (retryable).
    ServerError,
    /// The provider rejected the request with a 4xx (not retryable).
    ClientError,
    /// The provider answered 401 or 403 (not retryable).
    Auth,
    /// The SMTP server answered 4xx (retryable).
    SmtpTransient,
    /// The SMTP server answered 5xx (not retryable).
    SmtpPermanent,
    /// The contact's address is not valid for the channel (not retryable).
    InvalidAddress,
    /// The message could not be built for the channel (not retryable).
    InvalidMessage,
    /// The template could not be rendered (not retryable).
    Template,
    /// The channel has no config block (not retryable).
    NotConfigured,
}

impl Reason {
    /// Every reason, for pre-creating label values.
    pub const ALL: [Reason; 13] = [
        Reason::Timeout,
        Reason::Connect,
        Reason::Tls,
        Reason::RateLimited,
        Reason::ServerError,
        Reason::ClientError,
        Reason::Auth,
        Reason::SmtpTransient,
        Reason::SmtpPermanent,
        Reason::InvalidAddress,
        Reason::InvalidMessage,
        Reason::Template,
        Reason::NotConfigured,
    ];

    /// The snake_case name (a metric label value).
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for Reason {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// A failed delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct DeliveryError {
    /// Whether another attempt may succeed.
    pub retryable: bool,
    /// The provider's hint (`Retry-After`, Telegram `retry_after`), if any.
    pub retry_after: Option<Duration>,
    /// Why, from a closed set.
    pub reason: Reason,
    /// Human-readable detail: status and trimmed body, or the error chain.
    pub detail: String,
}

impl DeliveryError {
    /// A failure worth retrying.
    pub fn retryable(reason: Reason, detail: impl Into<String>) -> Self {
        DeliveryError { retryable: true, retry_after: None, reason, detail: detail.into() }
    }

    /// A failure that will not go away by retrying.
    pub fn permanent(reason: Reason, detail: impl Into<String>) -> Self {
        DeliveryError { retryable: false, retry_after: None, reason, detail: detail.into() }
    }

    fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.retry_after = retry_after;
        self
    }
}

/// Parses an http(s) URL without echoing it in errors: contact URLs such as
/// Slack webhooks carry their secret in the path.
pub(crate) fn parse_http_url(address: &str) -> Result<url::Url, String> {
    match url::Url::parse(address) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Ok(url),
        Ok(_) => Err("URL must use http or https and name a host".to_string()),
        Err(err) => Err(format!("invalid URL: {err}")),
    }
}

pub(crate) fn is_loopback_host(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Longest provider body kept in receipts and errors.
const RESPONSE_SNIPPET_CHARS: usize = 300;
/// Most bytes read from a provider's answer.
const RESPONSE_READ_LIMIT: usize = 64 * 1024;
/// Longest provider retry hint honoured; anything longer is clamped so that a
/// confused provider cannot park a delivery for weeks.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// A provider's HTTP answer, with the body read up to a limit.
pub(crate) struct HttpAnswer {
    pub(crate) status: reqwest::StatusCode,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: String,
}

/// Sends a request and reads the answer; transport failures become
/// [`DeliveryError`]s with every secret scrubbed from the detail.
pub(crate) async fn send_http(
    request: reqwest::RequestBuilder,
    secrets: &[Secret],
) -> Result<HttpAnswer, DeliveryError> {
    let mut response = request.send().await.map_err(|err| transport_error(err, secrets))?;
    let status = response.status();
    let headers = response.headers().clone();
    let mut bytes = Vec::new();
    // A body that breaks off after the status line still leaves the status as
    // the provider's verdict, so read errors end the loop instead of failing.
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = RESPONSE_READ_LIMIT.saturating_sub(bytes.len());
        bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if bytes.len() >= RESPONSE_READ_LIMIT {
            break;
        }
    }
    Ok(HttpAnswer { status, headers, body: scrub(&String::from_utf8_lossy(&bytes), secrets) })
}

fn transport_error(err: reqwest::Error, secrets: &[Secret]) -> DeliveryError {
    let reason = if err.is_timeout() {
        Reason::Timeout
    } else if is_tls_failure(&err) {
        Reason::Tls
    } else {
        Reason::Connect
    };
    // `without_url` drops URLs that carry tokens (Telegram, Slack).
    let detail = scrub(&error_chain(&err.without_url()), secrets);
    DeliveryError::retryable(reason, detail)
}

/// Whether a rustls error sits anywhere in the chain. Client libraries
/// report failed handshakes as connection errors wrapping an `io::Error`
/// that wraps the rustls error; `io::Error::source` skips that layer, so
/// look inside with `get_ref`.
pub(crate) fn is_tls_failure(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(error) = current {
        if error.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        if let Some(inner) = error.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            if is_tls_failure(inner) {
                return true;
            }
        }
        current = error.source();
    }
    false
}

/// Formats an error with its sources, the way logs want it.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        let inner_text = inner.to_string();
        if !text.contains(&inner_text) {
            text.push_str(": ");
            text.push_str(&inner_text);
        }
        source = inner.source();
    }
    text
}

/// Replaces every secret value in `text` by `<secret>`.
pub(crate) fn scrub(text: &str, secrets: &[Secret]) -> String {
    secrets
        .iter()
        .filter(|secret| !secret.expose().is_empty())
        .fold(text.to_string(), |acc, secret| acc.replace(secret.expose(), "<secret>"))
}

/// `"<code> <reason>"` plus `": <body>"` when the body says something.
pub(crate) fn describe(status: reqwest::StatusCode, body: &str) -> String {
    let head = format!("{} {}", status.as_u16(), status.canonical_reason().unwrap_or(""));
    let head = head.trim_end().to_string();
    let snippet = snippet(body);
    if snippet.is_empty() { head } else { format!("{head}: {snippet}") }
}

/// Collapses whitespace and keeps the first few hundred characters.
pub(crate) fn snippet(body: &str) -> String {
    let collapsed = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.chars().count() > RESPONSE_SNIPPET_CHARS {
        let cut: String = collapsed.chars().take(RESPONSE_SNIPPET_CHARS).collect();
        format!("{cut}…")
    } else {
        collapsed
    }
}

/// Maps an HTTP answer onto the delivery contract, the way Alertmanager's
/// `Retrier` does, plus provider retry hints: 2xx succeeds; 429 is
/// `rate_limited`; 408 and 5xx are `server_error` (retryable); 401/403 are
/// `auth`; any other status is `client_error` (not retryable).
pub(crate) fn http_outcome(answer: &HttpAnswer, now: SystemTime) -> Result<Receipt, DeliveryError> {
    let status = answer.status;
    let detail = describe(status, &answer.body);
    if status.is_success() {
        return Ok(Receipt { provider_response: detail });
    }
    let retry_after = answer
        .headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| parse_retry_after(value, now));
    let error = match status.as_u16() {
        429 => DeliveryError::retryable(Reason::RateLimited, detail),
        408 => DeliveryError::retryable(Reason::Timeout, detail),
        500..=599 => DeliveryError::retryable(Reason::ServerError, detail),
        401 | 403 => DeliveryError::permanent(Reason::Auth, detail),
        _ => DeliveryError::permanent(Reason::ClientError, detail),
    };
    Err(error.with_retry_after(retry_after))
}

/// Parses a `Retry-After` value: delay seconds or an HTTP-date (all three
/// RFC 9110 formats). A date in the past means "now" (zero). Clamped to a day.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let delay = if let Ok(seconds) = value.parse::<u64>() {
        Duration::from_secs(seconds)
    } else {
        let when = httpdate::parse_http_date(value).ok()?;
        when.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(delay.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use reqwest::StatusCode;
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

    fn answer(status: u16, retry_after: Option<&str>, body: &str) -> HttpAnswer {
        let mut headers = HeaderMap::new();
        if let Some(value) = retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
        }
        HttpAnswer { status: StatusCode::from_u16(status).unwrap(), headers, body: body.to_string() }
    }

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        let cases = [
            ("120", Some(120)),
            (" 5 ", Some(5)),
            ("Wed, 21 Oct 2015 07:29:30 GMT", Some(90)),
            ("Wednesday, 21-Oct-15 07:28:10 GMT", Some(10)),
            ("Wed Oct 21 07:28:20 2015", Some(20)),
            ("Wed, 21 Oct 2015 07:00:00 GMT", Some(0)),
            ("999999999", Some(24 * 3600)),
            ("soon", None),
            ("-5", None),
        ];
        for (value, expected) in cases {
            assert_eq!(parse_retry_after(value, now), expected.map(Duration::from_secs), "{value}");
        }
    }

    #[test]
    fn http_statuses_map_to_reasons_like_alertmanager() {
        let now = SystemTime::UNIX_EPOCH;
        let cases = [
            (429, Reason::RateLimited, true),
            (500, Reason::ServerError, true),
            (503, Reason::ServerError, true),
            (408, Reason::Timeout, true),
            (400, Reason::ClientError, false),
            (404, Reason::ClientError, false),
            (401, Reason::Auth, false),
            (403, Reason::Auth, false),
        ];
        for (status, expected_reason, retryable) in cases {
            let err = http_outcome(&answer(status, Some("7"), " oops \n"), now).unwrap_err();
            assert_eq!(err.reason, expected_reason, "{status}");
            assert_eq!(err.retryable, retryable, "{status}");
            assert_eq!(err.retry_after, Some(Duration::from_secs(7)), "{status}");
            assert!(err.detail.starts_with(&status.to_string()), "{}", err.detail);
            assert!(err.detail.ends_with(": oops"), "{}", err.detail);
        }
        let receipt = http_outcome(&answer(202, None, "queued\n"), now).unwrap();
        assert_eq!(receipt.provider_response, "202 Accepted: queued");
        let receipt = http_outcome(&answer(204, None, ""), now).unwrap();
        assert_eq!(receipt.provider_response, "204 No Content");
    }

    #[test]
    fn every_reason_is_listed_once() {
        let mut sorted = Reason::ALL.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), Reason::ALL.len());
    }

    #[test]
    fn snippets_are_bounded_and_scrubbed() {
        let long = "x".repeat(1000);
        assert_eq!(snippet(&long).chars().count(), RESPONSE_SNIPPET_CHARS + 1);
        let secrets = [Secret("t0k3n".into())];
        assert_eq!(scrub("bad token t0k3n here", &secrets), "bad token <secret> here");
    }

    #[test]
    fn addresses_are_checked_per_channel() {
        use ChannelKind::*;
        let good = [
            (Email, "ops@example.com"),
            (Email, "Ops Team <ops@example.com>"),
            (Sms, "+491701234567"),
            (Telegram, "123456789"),
            (Telegram, "-1001234567890"),
            (Telegram, "@checkit_alerts"),
            (Slack, "https://hooks.slack.com/services/T0/B0/XYZ"),
            (Slack, "http://127.0.0.1:8080/hook"),
            (Ntfy, "ops-alerts_1"),
            (Webhook, "http://alerts.internal:8080/hook"),
            (Webhook, "https://example.com/hook"),
            (Log, "ops"),
        ];
        for (kind, address) in good {
            assert_eq!(validate_address(kind, address), Ok(()), "{kind} {address}");
        }
        let bad = [
            (Email, "not-an-address"),
            (Email, ""),
            (Sms, "01701234567"),
            (Sms, "+49 170 1234567"),
            (Sms, "+0123456789"),
            (Sms, "+12"),
            (Telegram, "@abc"),
            (Telegram, "chat"),
            (Slack, "http://hooks.slack.com/services/x"),
            (Slack, "hooks.slack.com"),
            (Ntfy, "has space"),
            (Ntfy, &"a".repeat(65)),
            (Webhook, "ftp://example.com/"),
            (Webhook, "/relative"),
            (Log, "two\nlines"),
        ];
        for (kind, address) in bad {
            assert!(validate_address(kind, address).is_err(), "{kind} {address} should be rejected");
        }
    }

    #[test]
    fn url_errors_do_not_echo_the_secret_path() {
        let err = validate_address(ChannelKind::Slack, "http://hooks.slack.com/T/B/s3cr3t").unwrap_err();
        assert!(!err.contains("s3cr3t"), "{err}");
    }

    /// The YAML example of a doc comment in `source`, found after `marker`.
    pub(crate) fn doc_example(source: &str, marker: &str) -> String {
        let start = source.find(marker).unwrap();
        source[start..]
            .lines()
            .map(|line| line.trim_start().trim_start_matches("///"))
            .skip_while(|line| line.trim() != "```yaml")
            .skip(1)
            .take_while(|line| line.trim() != "```")
            .map(|line| line.strip_prefix(' ').unwrap_or(line))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn the_documented_example_parses() {
        let yaml = doc_example(include_str!("mod.rs"), "/// The `bridge.channels:` section.");
        let value = crate::config::yaml::parse_value(&yaml).unwrap();
        let config: ChannelsConfig = crate::config::yaml::from_value(value, "bridge.channels").unwrap();
        assert!(config.email.is_some() && config.sms.is_some() && config.telegram.is_some());
        assert_eq!(config.ntfy.unwrap().priority.as_deref(), Some("high"));
    }

    #[test]
    fn built_channels_can_be_shared_across_tasks() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Channels>();
        assert_send_sync::<crate::bridge::render::Templates>();
    }

    #[test]
    fn kinds_round_trip_through_serde() {
        for kind in ChannelKind::all() {
            let text = serde_json::to_string(kind).unwrap();
            assert_eq!(text, format!("\"{}\"", kind.as_str()));
            let back: ChannelKind = serde_json::from_str(&text).unwrap();
            assert_eq!(back, *kind);
        }
    }

    #[test]
    fn secret_sources_report_every_problem() {
        let mut problems = Problems::default();
        SecretSource::default().validate("a", "token_file", "token_env", true, &mut problems);
        SecretSource { file: Some("/nonexistent/secret".into()), env: Some("X".into()) }.validate(
            "b",
            "token_file",
            "token_env",
            true,
            &mut problems,
        );
        SecretSource { file: None, env: Some("CHECKIT_TEST_SURELY_UNSET_VARIABLE".into()) }.validate(
            "c",
            "token_file",
            "token_env",
            false,
            &mut problems,
        );
        let shown: Vec<String> = problems.0.iter().map(ToString::to_string).collect();
        assert_eq!(shown.len(), 4, "{shown:#?}");
        assert!(shown[0].starts_with("a: one of token_file or token_env"));
        assert!(shown[1].starts_with("b: token_file and token_env are mutually exclusive"));
        assert!(shown[2].starts_with("b.token_file: cannot read secret file"));
        assert!(shown[3].starts_with("c.token_env: environment variable"));
    }
}
