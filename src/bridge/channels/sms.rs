//! A generic HTTP SMS gateway: the request body is a minijinja template over
//! `to`, `text` and `from`, producing JSON (values are JSON-escaped by
//! auto-escaping, so write `{"to": {{ to }}}` without quotes) or a form body
//! (values arrive already URL-encoded, so write `to={{ to }}&msg={{ text }}`).
//! The text is cut to `max_segments` SMS segments before rendering, since
//! carriers bill per segment.

use super::{
    ChannelKind, DeliveryError, Error, HeaderedHttp, Reason, Receipt, SecretSource, validate_config_url,
    validate_headers,
};
use crate::bridge::render::{self, Outgoing};
use crate::config::Problems;
use minijinja::Environment;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// HTTP method of the gateway request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    /// Body in the request (default).
    #[default]
    Post,
    /// Body in the request.
    Put,
    /// The rendered form body becomes the query string.
    Get,
}

/// How the rendered body is encoded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `application/json`; template values are JSON-escaped.
    #[default]
    Json,
    /// `application/x-www-form-urlencoded`; template values are URL-encoded.
    Form,
}

/// `bridge.channels.sms`: the gateway.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Gateway endpoint.
    #[serde(serialize_with = "crate::config::types::serialize_redacted_url")]
    pub url: String,
    /// `POST` (default), `PUT` or `GET` (needs `format: form`).
    #[serde(default)]
    pub method: Method,
    /// `json` (default) or `form`.
    #[serde(default)]
    pub format: Format,
    /// Body template over `to`, `text` and `from`. Default
    /// `{"to": {{ to }}, "text": {{ text }}}` for JSON,
    /// `to={{ to }}&text={{ text }}` for forms.
    #[serde(default)]
    pub body: Option<String>,
    /// Sender id or number, available to the template as `from`.
    #[serde(default)]
    pub from: Option<String>,
    /// Extra request headers with plain values.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Extra request headers whose values are secrets (`file:` or `env:`).
    #[serde(default)]
    pub secret_headers: BTreeMap<String, SecretSource>,
    /// Longest message in SMS segments (1–10); longer text is cut.
    #[serde(default = "default_max_segments")]
    pub max_segments: u32,
}

fn default_max_segments() -> u32 {
    3
}

/// Hard cap on `max_segments`: most carriers refuse to concatenate more.
pub const MAX_SEGMENTS_LIMIT: u32 = 10;

const DEFAULT_JSON_BODY: &str = r#"{"to": {{ to }}, "text": {{ text }}}"#;
const DEFAULT_FORM_BODY: &str = "to={{ to }}&text={{ text }}";
/// Template names pick minijinja's auto-escaping: `.json` escapes as JSON.
const JSON_TEMPLATE: &str = "sms-body.json";
const FORM_TEMPLATE: &str = "sms-body.txt";

impl Config {
    /// Records every problem of this block below `path`; compiles and
    /// test-renders the body template.
    pub fn validate(&self, path: &str, problems: &mut Problems) {
        validate_config_url(&format!("{path}.url"), &self.url, problems);
        if self.method == Method::Get && self.format != Format::Form {
            problems.push(format!("{path}.method"), "method GET sends the body as query string and needs format: form");
        }
        if !(1..=MAX_SEGMENTS_LIMIT).contains(&self.max_segments) {
            problems.push(
                format!("{path}.max_segments"),
                format!("max_segments must be between 1 and {MAX_SEGMENTS_LIMIT}"),
            );
        }
        validate_headers(path, &self.headers, &self.secret_headers, problems);
        match self.environment() {
            Ok(environment) => {
                let sample = "FIRING: \"disk\" 95% full & rising <db-1>";
                if let Err(message) = self.render_body(&environment, "+491701234567", sample) {
                    problems.push(format!("{path}.body"), message);
                }
            }
            Err(message) => problems.push(format!("{path}.body"), message),
        }
    }

    fn template_name(&self) -> &'static str {
        match self.format {
            Format::Json => JSON_TEMPLATE,
            Format::Form => FORM_TEMPLATE,
        }
    }

    fn environment(&self) -> Result<Environment<'static>, String> {
        let source = self.body.clone().unwrap_or_else(|| {
            match self.format {
                Format::Json => DEFAULT_JSON_BODY,
                Format::Form => DEFAULT_FORM_BODY,
            }
            .to_string()
        });
        let mut environment = Environment::new();
        environment.set_fuel(Some(100_000));
        environment
            .add_template_owned(self.template_name(), source)
            .map_err(|err| format!("invalid template: {err:#}"))?;
        Ok(environment)
    }

    /// Renders the gateway body for one message; for JSON also checks that
    /// the result parses, so a quoting mistake fails at load, not at 3 am.
    fn render_body(&self, environment: &Environment<'static>, to: &str, text: &str) -> Result<String, String> {
        let template =
            environment.get_template(self.template_name()).map_err(|err| format!("invalid template: {err:#}"))?;
        let from = self.from.clone().unwrap_or_default();
        let rendered = match self.format {
            Format::Json => template.render(minijinja::context! { to, text, from }),
            Format::Form => template.render(minijinja::context! {
                to => form_encode(to),
                text => form_encode(text),
                from => form_encode(&from),
            }),
        }
        .map_err(|err| format!("cannot render template: {err:#}"))?;
        if self.format == Format::Json {
            serde_json::from_str::<serde_json::Value>(&rendered).map_err(|err| {
                format!("template does not produce JSON ({err}); values are already quoted, write {{{{ text }}}} not \"{{{{ text }}}}\"")
            })?;
        }
        Ok(rendered)
    }
}

fn form_encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// The built SMS channel.
pub(crate) struct Channel {
    config: Config,
    environment: Environment<'static>,
    http: HeaderedHttp,
}

impl Channel {
    pub(crate) fn new(config: &Config, build: &super::Build) -> Result<Self, Error> {
        let environment =
            config.environment().map_err(|message| Error::Invalid { channel: ChannelKind::Sms, message })?;
        let content_type = match (config.method, config.format) {
            (Method::Get, _) => None,
            (_, Format::Json) => Some("application/json"),
            (_, Format::Form) => Some("application/x-www-form-urlencoded"),
        };
        let http = HeaderedHttp::new(build, &config.headers, &config.secret_headers, ChannelKind::Sms, content_type)?;
        Ok(Channel { config: config.clone(), environment, http })
    }

    pub(crate) async fn deliver(&self, address: &str, message: &Outgoing) -> Result<Receipt, DeliveryError> {
        let text = render::truncate_sms(message.body.trim(), self.config.max_segments);
        let body = self
            .config
            .render_body(&self.environment, address, &text)
            .map_err(|detail| DeliveryError::permanent(Reason::InvalidMessage, detail))?;
        let request = match self.config.method {
            Method::Get => {
                let separator = if self.config.url.contains('?') { '&' } else { '?' };
                self.http.client().get(format!("{}{separator}{body}", self.config.url))
            }
            Method::Post => self.http.client().post(&self.config.url).body(body),
            Method::Put => self.http.client().put(&self.config.url).body(body),
        };
        self.http.deliver(request).await
    }
}

/// A contact's address on this channel: a phone number in E.164 form.
pub type Address = String;

/// The block contacts use when `bridge.channels.sms` is absent: none, it needs its block.
pub(crate) fn unconfigured() -> Option<Config> {
    None
}

/// The built-in templates of this channel.
pub(crate) const TEMPLATES: crate::bridge::render::Defaults =
    crate::bridge::render::Defaults { body: Some("checkit/sms.txt"), html: None, json: false };

/// Checks a contact's address: e.164: `+`, then 7–15 digits, no separators.
pub fn validate_address(address: &str) -> Result<(), String> {
    let digits = address.strip_prefix('+').unwrap_or("");
    let valid =
        (7..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0');
    if valid { Ok(()) } else { Err(format!("invalid phone number {address:?}: expected E.164 such as +491701234567")) }
}

/// Cuts to the most segments any gateway config may allow ([`MAX_SEGMENTS_LIMIT`]);
/// `deliver` cuts again to the configured `max_segments`.
pub fn truncate(text: &str) -> String {
    render::truncate_sms(text, MAX_SEGMENTS_LIMIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(format: Format, body: Option<&str>) -> Config {
        Config {
            url: "https://sms.example/send".into(),
            method: Method::Post,
            format,
            body: body.map(str::to_string),
            from: Some("checkit".into()),
            headers: BTreeMap::new(),
            secret_headers: BTreeMap::new(),
            max_segments: 3,
        }
    }

    fn render(config: &Config, text: &str) -> Result<String, String> {
        let environment = config.environment()?;
        config.render_body(&environment, "+491701234567", text)
    }

    #[test]
    fn json_bodies_escape_values() {
        let body = render(&config(Format::Json, None), "say \"hi\"\n").unwrap();
        assert_eq!(body, r#"{"to": "+491701234567", "text": "say \"hi\"\n"}"#);
        let custom = config(
            Format::Json,
            Some(r#"{"messages": [{"destinations": [{"to": {{ to }}}], "from": {{ from }}, "text": {{ text }}}]}"#),
        );
        let body: serde_json::Value = serde_json::from_str(&render(&custom, "x").unwrap()).unwrap();
        assert_eq!(body["messages"][0]["from"], "checkit");
    }

    #[test]
    fn form_bodies_url_encode_values() {
        let body = render(&config(Format::Form, None), "a&b=c ü").unwrap();
        assert_eq!(body, "to=%2B491701234567&text=a%26b%3Dc+%C3%BC");
    }

    #[test]
    fn validation_catches_quoted_json_and_bad_settings() {
        let mut bad = config(Format::Json, Some(r#"{"text": "{{ text }}"}"#));
        bad.method = Method::Get;
        bad.max_segments = 0;
        let mut problems = Problems::default();
        bad.validate("s", &mut problems);
        let paths = problems.paths();
        assert_eq!(paths, ["s.method", "s.max_segments", "s.body"]);
        assert!(problems.0[2].message.contains("not \"{{ text }}\""), "{}", problems.0[2]);

        let mut problems = Problems::default();
        config(Format::Json, Some("{{ text ")).validate("s", &mut problems);
        assert_eq!(problems.0.len(), 1);
        assert!(problems.0[0].message.starts_with("invalid template"));
    }
}
