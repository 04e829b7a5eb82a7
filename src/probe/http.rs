//! The `http` prober: blackbox_exporter's HTTP probe, timed phase by phase.
//!
//! Each probe resolves the target once (through [`resolve::resolve`], so the
//! target policy applies), opens a fresh connection to the chosen address per
//! hop with hyper's connection-level client (so connect, TLS, processing and
//! transfer can be timed exactly), follows up to ten redirects with a per-probe
//! cookie jar, reads the final body to the end, then checks status, headers,
//! body, HTTP version and TLS use in blackbox's order.

mod client;
mod exchange;
mod response;
mod urls;

pub use client::{Authorization, BasicAuth, HttpHeader, OAuth2};

use super::metrics::Registry;
use super::resolve::{self, IpProtocol};
use super::tls::{self, TlsConfig};
use super::{Phase, ProbeCtx, ProbeError, ProbeResult, Reason};
use crate::config::Problems;
use crate::config::types::{ByteSize, Regex, Secret};
use exchange::{Hop, Route};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use response::{check_body, check_headers, content_length, proto, redirect};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::time::Instant;
use url::Url;
use urls::{join_host_port, referer, same_site, strip_port, url_host, written_authority};

/// The `User-Agent` sent unless the module sets one. blackbox sends
/// `Blackbox-Exporter/<version>`; checkit names itself so that server logs
/// tell the two apart. A module that must look like blackbox sets
/// `headers: {User-Agent: Blackbox-Exporter/0.28.0}`.
pub const USER_AGENT: &str = concat!("checkit/", env!("CARGO_PKG_VERSION"));

/// blackbox follows at most this many redirects (Go's `CheckRedirect`).
const MAX_REDIRECTS: u32 = 10;

/// One entry of `valid_status_codes`: blackbox's integer, or checkit's
/// `"2xx"` / `"200-299"` extension (blackbox issues #171, #757).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusCodes {
    /// One status code.
    Code(u16),
    /// An inclusive range.
    Range(u16, u16),
}

impl StatusCodes {
    /// True when `status` is in this entry.
    pub fn contains(self, status: u16) -> bool {
        match self {
            StatusCodes::Code(code) => code == status,
            StatusCodes::Range(from, to) => (from..=to).contains(&status),
        }
    }

    fn parse(text: &str) -> Result<StatusCodes, String> {
        let text = text.trim();
        let bad = || format!("invalid status code {text:?}: expected a code (200), a class (2xx) or a range (200-299)");
        if let Some(class) = text.strip_suffix("xx").or_else(|| text.strip_suffix("XX")) {
            let digit: u16 = class.parse().map_err(|_| bad())?;
            if !(1..=9).contains(&digit) || class.len() != 1 {
                return Err(bad());
            }
            return Ok(StatusCodes::Range(digit * 100, digit * 100 + 99));
        }
        if let Some((from, to)) = text.split_once('-') {
            let from: u16 = from.trim().parse().map_err(|_| bad())?;
            let to: u16 = to.trim().parse().map_err(|_| bad())?;
            return Ok(StatusCodes::Range(from, to));
        }
        text.parse().map(StatusCodes::Code).map_err(|_| bad())
    }
}

impl fmt::Display for StatusCodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            StatusCodes::Code(code) => write!(f, "{code}"),
            StatusCodes::Range(from, to) if from % 100 == 0 && to == from + 99 => write!(f, "{}xx", from / 100),
            StatusCodes::Range(from, to) => write!(f, "{from}-{to}"),
        }
    }
}

impl<'de> Deserialize<'de> for StatusCodes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = StatusCodes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a status code (200), a class (\"2xx\") or a range (\"200-299\")")
            }
            fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<StatusCodes, E> {
                u16::try_from(value)
                    .map(StatusCodes::Code)
                    .map_err(|_| E::custom(format!("invalid status code {value}")))
            }
            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<StatusCodes, E> {
                u16::try_from(value)
                    .map(StatusCodes::Code)
                    .map_err(|_| E::custom(format!("invalid status code {value}")))
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<StatusCodes, E> {
                StatusCodes::parse(value).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl Serialize for StatusCodes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match *self {
            StatusCodes::Code(code) => serializer.serialize_u16(code),
            range => serializer.collect_str(&range),
        }
    }
}

/// One `fail_if_header_matches` / `fail_if_header_not_matches` entry.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HeaderMatch {
    /// Header name (case-insensitive).
    pub header: String,
    /// Regex matched against each value of the header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regexp: Option<Regex>,
    /// A missing header passes instead of failing.
    #[serde(skip_serializing_if = "is_false")]
    pub allow_missing: bool,
}

fn is_false(value: &bool) -> bool {
    !*value
}

fn default_true() -> bool {
    true
}

/// The `http:` block of a module: blackbox's `HTTPProbe` with prometheus/common's
/// `HTTPClientConfig` inlined at the same level.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Accepted status codes; empty means 2xx.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub valid_status_codes: Vec<StatusCodes>,
    /// Accepted `HTTP/x.y` strings (`HTTP/1.0`, `HTTP/1.1`, `HTTP/2.0`); empty means any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub valid_http_versions: Vec<String>,
    /// Address family tried first.
    pub preferred_ip_protocol: IpProtocol,
    /// Use the other family when the preferred one has no address.
    pub ip_protocol_fallback: bool,
    /// With a proxy: no local lookup, the proxy resolves the name.
    #[serde(skip_serializing_if = "is_false")]
    pub skip_resolve_phase_with_proxy: bool,
    /// Deprecated inverse of `follow_redirects`; wins when set. Hidden from `/config`.
    #[serde(skip_serializing)]
    pub no_follow_redirects: Option<bool>,
    /// Fail when the final response came over TLS.
    #[serde(skip_serializing_if = "is_false")]
    pub fail_if_ssl: bool,
    /// Fail when the final response did not come over TLS.
    #[serde(skip_serializing_if = "is_false")]
    pub fail_if_not_ssl: bool,
    /// Request method.
    pub method: String,
    /// Request headers; `Host` sets the Host header and the default TLS server name.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Fail when any of these matches the body.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fail_if_body_matches_regexp: Vec<Regex>,
    /// Fail unless every one of these matches the body.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fail_if_body_not_matches_regexp: Vec<Regex>,
    /// blackbox 0.27 CEL check; parsed, rejected at validation.
    pub fail_if_body_json_matches_cel: Option<String>,
    /// blackbox 0.27 CEL check; parsed, rejected at validation.
    pub fail_if_body_json_not_matches_cel: Option<String>,
    /// Fail when a header value matches.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fail_if_header_matches: Vec<HeaderMatch>,
    /// Fail when no header value matches.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fail_if_header_not_matches: Vec<HeaderMatch>,
    /// Request body.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub body: String,
    /// File whose content is the request body, read for each probe.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub body_file: String,
    /// Decode the response body with `gzip`, `br`, `deflate` or `identity`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub compression: String,
    /// Largest accepted (decompressed) body; zero or negative is unlimited.
    #[serde(skip_serializing_if = "is_zero_size")]
    pub body_size_limit: ByteSize,
    /// HTTP/3 (blackbox 0.28); parsed, rejected at validation.
    #[serde(skip_serializing_if = "is_false")]
    pub enable_http3: bool,

    // prometheus/common HTTPClientConfig, inlined.
    /// HTTP basic authentication.
    pub basic_auth: Option<BasicAuth>,
    /// `Authorization` header credentials.
    pub authorization: Option<Authorization>,
    /// OAuth 2.0 client credentials flow.
    pub oauth2: Option<OAuth2>,
    /// Deprecated: `authorization.credentials` with type Bearer.
    pub bearer_token: Option<Secret>,
    /// Deprecated: `authorization.credentials_file` with type Bearer.
    pub bearer_token_file: Option<String>,
    /// TLS settings for HTTPS targets.
    pub tls_config: TlsConfig,
    /// Follow 3xx redirects (at most ten).
    pub follow_redirects: bool,
    /// Offer HTTP/2 through ALPN on TLS connections.
    pub enable_http2: bool,
    /// HTTP proxy (`http://user:pass@host:port`).
    #[serde(serialize_with = "crate::config::types::serialize_redacted_url_option")]
    pub proxy_url: Option<String>,
    /// Comma-separated hosts, domains and CIDRs that bypass `proxy_url`.
    pub no_proxy: Option<String>,
    /// Use `HTTP_PROXY`, `HTTPS_PROXY` and `NO_PROXY`.
    #[serde(skip_serializing_if = "is_false")]
    pub proxy_from_environment: bool,
    /// Headers sent to the proxy with `CONNECT`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub proxy_connect_header: BTreeMap<String, Vec<Secret>>,
    /// Extra headers from values, secrets and files (prometheus/common).
    pub http_headers: Option<BTreeMap<String, HttpHeader>>,
}

fn is_zero_size(size: &ByteSize) -> bool {
    size.0 == 0
}

impl Default for Config {
    fn default() -> Self {
        Config {
            valid_status_codes: Vec::new(),
            valid_http_versions: Vec::new(),
            preferred_ip_protocol: IpProtocol::Ip6,
            ip_protocol_fallback: default_true(),
            skip_resolve_phase_with_proxy: false,
            no_follow_redirects: None,
            fail_if_ssl: false,
            fail_if_not_ssl: false,
            method: "GET".into(),
            headers: BTreeMap::new(),
            fail_if_body_matches_regexp: Vec::new(),
            fail_if_body_not_matches_regexp: Vec::new(),
            fail_if_body_json_matches_cel: None,
            fail_if_body_json_not_matches_cel: None,
            fail_if_header_matches: Vec::new(),
            fail_if_header_not_matches: Vec::new(),
            body: String::new(),
            body_file: String::new(),
            compression: String::new(),
            body_size_limit: ByteSize(0),
            enable_http3: false,
            basic_auth: None,
            authorization: None,
            oauth2: None,
            bearer_token: None,
            bearer_token_file: None,
            tls_config: TlsConfig::default(),
            follow_redirects: default_true(),
            enable_http2: default_true(),
            proxy_url: None,
            no_proxy: None,
            proxy_from_environment: false,
            proxy_connect_header: BTreeMap::new(),
            http_headers: None,
        }
    }
}

/// The `Host` value of a module's `headers`, if any (names are case-insensitive).
/// The server compares it with the `hostname` URL parameter, as blackbox does.
pub fn host_header(config: &Config) -> Option<&str> {
    config.headers.iter().find(|(name, _)| name.eq_ignore_ascii_case("host")).map(|(_, value)| value.as_str())
}

/// Compression names blackbox accepts (any case).
const COMPRESSIONS: [&str; 4] = ["gzip", "br", "deflate", "identity"];

impl Config {
    /// Whether redirects are followed: the legacy `no_follow_redirects` wins.
    pub fn follows_redirects(&self) -> bool {
        match self.no_follow_redirects {
            Some(no_follow) => !no_follow,
            None => self.follow_redirects,
        }
    }

    fn proxy(&self) -> client::ProxySettings<'_> {
        client::ProxySettings {
            url: self.proxy_url.as_deref(),
            no_proxy: self.no_proxy.as_deref(),
            from_environment: self.proxy_from_environment,
            connect_header: &self.proxy_connect_header,
        }
    }

    /// Records every problem of this block.
    pub fn validate(&self, path: &str, problems: &mut Problems) {
        for (index, codes) in self.valid_status_codes.iter().enumerate() {
            let ok = match *codes {
                StatusCodes::Code(code) => (100..=999).contains(&code),
                StatusCodes::Range(from, to) => (100..=999).contains(&from) && (100..=999).contains(&to) && from <= to,
            };
            if !ok {
                problems.push(
                    format!("{path}.valid_status_codes[{index}]"),
                    format!("{codes} is not a status code or range between 100 and 999"),
                );
            }
        }
        for (index, version) in self.valid_http_versions.iter().enumerate() {
            if version == "HTTP/3.0" && !self.enable_http3 {
                problems.push(
                    format!("{path}.valid_http_versions[{index}]"),
                    "HTTP/3 cannot be used as a valid HTTP version when enable_http3 is false",
                );
            }
        }
        if self.enable_http3 {
            problems.push(
                format!("{path}.enable_http3"),
                "HTTP/3 is not supported by checkit (it needs a QUIC stack); remove enable_http3",
            );
        }
        if Method::from_bytes(self.method.as_bytes()).is_err() || self.method.is_empty() {
            problems.push(format!("{path}.method"), format!("invalid HTTP method {:?}", self.method));
        }
        validate_header_map(
            self.headers.iter().map(|(name, value)| (name.as_str(), Some(value.as_str()))),
            &format!("{path}.headers"),
            problems,
        );
        for (key, field) in [
            (&self.fail_if_body_json_matches_cel, "fail_if_body_json_matches_cel"),
            (&self.fail_if_body_json_not_matches_cel, "fail_if_body_json_not_matches_cel"),
        ] {
            if key.is_some() {
                problems.push(format!("{path}.{field}"), "CEL is not supported by checkit; use fail_if_body_matches_regexp or fail_if_body_not_matches_regexp");
            }
        }
        for (list, field) in [
            (&self.fail_if_header_matches, "fail_if_header_matches"),
            (&self.fail_if_header_not_matches, "fail_if_header_not_matches"),
        ] {
            for (index, matcher) in list.iter().enumerate() {
                let at = format!("{path}.{field}[{index}]");
                if matcher.header.is_empty() {
                    problems.push(format!("{at}.header"), "header name must be set for HTTP header matchers");
                } else if HeaderName::from_bytes(matcher.header.as_bytes()).is_err() {
                    problems.push(format!("{at}.header"), format!("invalid header name {:?}", matcher.header));
                }
                if matcher.regexp.as_ref().is_none_or(|regexp| regexp.as_str().is_empty()) {
                    problems.push(format!("{at}.regexp"), "regexp must be set for HTTP header matchers");
                }
            }
        }
        if !self.body.is_empty() && !self.body_file.is_empty() {
            problems.push(format!("{path}.body_file"), "setting body and body_file both are not allowed");
        }
        if !self.compression.is_empty()
            && !COMPRESSIONS.iter().any(|known| known.eq_ignore_ascii_case(&self.compression))
        {
            problems.push(
                format!("{path}.compression"),
                format!("unsupported compression {:?} (known: {})", self.compression, COMPRESSIONS.join(", ")),
            );
        }
        for (name, value) in &self.headers {
            if name.eq_ignore_ascii_case("accept-encoding") && !compression_accepted(&self.compression, value) {
                problems.push(
                    format!("{path}.headers.{name}"),
                    format!("invalid configuration \"{name}: {value}\", \"compression: {}\"", self.compression),
                );
            }
        }
        self.tls_config.validate(&format!("{path}.tls_config"), problems);
        client::validate_auth(self, path, problems);
        self.proxy().validate(path, problems);
        if let Some(headers) = &self.http_headers {
            client::validate_http_headers(headers, &format!("{path}.http_headers"), problems);
        }
    }
}

/// Checks header names and values, and names given twice in different case.
fn validate_header_map<'a>(
    headers: impl Iterator<Item = (&'a str, Option<&'a str>)>,
    path: &str,
    problems: &mut Problems,
) {
    let mut seen: Vec<String> = Vec::new();
    for (name, value) in headers {
        if HeaderName::from_bytes(name.as_bytes()).is_err() {
            problems.push(format!("{path}.{name}"), format!("invalid header name {name:?}"));
        }
        if let Some(value) = value {
            if HeaderValue::from_str(value).is_err() {
                problems.push(format!("{path}.{name}"), "invalid header value (control characters are not allowed)");
            }
        }
        let lower = name.to_ascii_lowercase();
        if seen.contains(&lower) {
            problems.push(
                format!("{path}.{name}"),
                format!("header {name:?} is set more than once (names are case-insensitive)"),
            );
        }
        seen.push(lower);
    }
}

/// blackbox's `isCompressionAcceptEncodingValid`: a configured
/// `Accept-Encoding` must accept the configured compression with q > 0.
fn compression_accepted(compression: &str, accept_encoding: &str) -> bool {
    if compression.is_empty() || accept_encoding.is_empty() {
        return true;
    }
    let mut encodings: Vec<(&str, f32)> = accept_encoding
        .split(',')
        .map(|part| match part.rsplit_once(';') {
            None => (part.trim(), 1.0),
            Some((encoding, quality)) => {
                let quality = quality.trim();
                let quality = quality.strip_prefix("q=").unwrap_or(quality);
                let quality: f32 =
                    quality.parse::<f64>().map(|q| ((q * 1000.0).round() / 1000.0) as f32).unwrap_or(0.0);
                (encoding.trim(), quality)
            }
        })
        .collect();
    // Stable sort, highest quality first, as blackbox does.
    encodings.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap_or(std::cmp::Ordering::Equal));
    encodings
        .iter()
        .find(|(encoding, _)| *encoding == compression || *encoding == "*")
        .is_some_and(|(_, quality)| *quality > 0.0)
}

const DURATION: &str = "probe_http_duration_seconds";
const HELP_DURATION: &str = "Duration of http request by phase, summed over all redirects";
const CONTENT_LENGTH: &str = "probe_http_content_length";
const HELP_CONTENT_LENGTH: &str = "Length of http content response";
const BODY_LENGTH: &str = "probe_http_uncompressed_body_length";
const HELP_BODY_LENGTH: &str = "Length of uncompressed response body";
const REDIRECTS: &str = "probe_http_redirects";
const HELP_REDIRECTS: &str = "The number of redirects";
const SSL: &str = "probe_http_ssl";
const HELP_SSL: &str = "Indicates if SSL was used for the final redirect";
const STATUS: &str = "probe_http_status_code";
const HELP_STATUS: &str = "Response HTTP status code";
const VERSION: &str = "probe_http_version";
const HELP_VERSION: &str = "Returns the version of HTTP of the probe response";
const REGEX: &str = "probe_failed_due_to_regex";
const HELP_REGEX: &str = "Indicates if probe failed due to regex";
const LAST_MODIFIED: &str = "probe_http_last_modified_timestamp_seconds";
const HELP_LAST_MODIFIED: &str = "Returns the Last-Modified HTTP response header in unixtime";

/// The families blackbox registers on every HTTP probe, at 0 until known.
fn register_families(registry: &mut Registry) {
    for (name, help) in [
        (CONTENT_LENGTH, HELP_CONTENT_LENGTH),
        (BODY_LENGTH, HELP_BODY_LENGTH),
        (REDIRECTS, HELP_REDIRECTS),
        (SSL, HELP_SSL),
        (STATUS, HELP_STATUS),
        (VERSION, HELP_VERSION),
        (REGEX, HELP_REGEX),
    ] {
        registry.set(name, help, 0.0);
    }
}

/// Values of `probe_ip_*` and `probe_dns_lookup_time_seconds`, so that a later
/// hop's lookup (needed for the target policy) leaves the first hop's values,
/// as in blackbox where only the first lookup sets them.
struct AddressFamilies([(&'static str, &'static str, Option<f64>); 3]);

impl AddressFamilies {
    const NAMES: [(&'static str, &'static str); 3] = [
        ("probe_ip_protocol", "Specifies whether probe ip protocol is IP4 or IP6"),
        ("probe_dns_lookup_time_seconds", "Returns the time taken for probe dns lookup in seconds"),
        ("probe_ip_addr_hash", "Specifies the hash of IP address. It's useful to detect if the IP address changes."),
    ];

    fn save(registry: &Registry) -> AddressFamilies {
        AddressFamilies(Self::NAMES.map(|(name, help)| (name, help, registry.get(name, &[]))))
    }

    fn restore(self, registry: &mut Registry) {
        for (name, help, value) in self.0 {
            match value {
                Some(value) => registry.set(name, help, value),
                None => registry.remove(name),
            }
        }
    }
}

/// Resolves a host for a hop after the first (or for a direct connection when
/// the first lookup was skipped), adding the lookup to the `resolve` phase.
async fn resolve_again(ctx: &mut ProbeCtx<'_>, config: &Config, host: &str) -> Result<IpAddr, ProbeError> {
    let saved = AddressFamilies::save(&ctx.registry);
    let start = Instant::now();
    let resolved = resolve::resolve(ctx, host, config.preferred_ip_protocol, config.ip_protocol_fallback).await;
    saved.restore(&mut ctx.registry);
    ctx.registry.add_phase(DURATION, HELP_DURATION, "resolve", start.elapsed().as_secs_f64());
    resolved.map(|resolved| resolved.ip)
}

/// The request body of the module (`body_file` is read for each probe).
fn request_body(config: &Config) -> Result<bytes::Bytes, ProbeError> {
    if !config.body_file.is_empty() {
        return std::fs::read(&config.body_file).map(bytes::Bytes::from).map_err(|err| {
            ProbeError::new(
                Phase::Request,
                Reason::Config,
                format!("cannot read body_file {:?}: {err}", config.body_file),
            )
        });
    }
    Ok(bytes::Bytes::from(config.body.clone()))
}

fn header_name(name: &str) -> Result<HeaderName, ProbeError> {
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|err| ProbeError::new(Phase::Request, Reason::Config, format!("invalid header name {name:?}: {err}")))
}

fn header_value(value: &str) -> Result<HeaderValue, ProbeError> {
    HeaderValue::from_str(value)
        .map_err(|err| ProbeError::new(Phase::Request, Reason::Config, format!("invalid header value: {err}")))
}

/// Headers sent on every hop: the module's `headers` (except Host), the
/// default User-Agent, and `http_headers`.
fn base_headers(config: &Config) -> Result<HeaderMap, ProbeError> {
    let mut headers = HeaderMap::new();
    for (name, value) in &config.headers {
        if !name.eq_ignore_ascii_case("host") {
            headers.insert(header_name(name)?, header_value(value)?);
        }
    }
    if !headers.contains_key(http::header::USER_AGENT) {
        headers.insert(http::header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
    }
    if let Some(http_headers) = &config.http_headers {
        let values = client::http_header_values(http_headers)
            .map_err(|err| ProbeError::new(Phase::Request, Reason::Config, err))?;
        for (name, value) in values {
            headers.append(header_name(&name)?, header_value(&value)?);
        }
    }
    Ok(headers)
}

/// Where the request of the current hop goes and how it is named.
struct Target {
    url: Url,
    host: String,
    port: u16,
    /// The resolved address, when resolved locally.
    ip: Option<IpAddr>,
    /// `Host` header value.
    host_header: String,
    tls: Option<exchange::TlsSettings>,
}

/// Runs one probe.
pub async fn probe(ctx: &mut ProbeCtx<'_>, config: &Config) -> ProbeResult {
    register_families(&mut ctx.registry);
    let lower = ctx.target.to_ascii_lowercase();
    let target = if lower.starts_with("http://") || lower.starts_with("https://") {
        ctx.target.to_string()
    } else {
        format!("http://{}", ctx.target)
    };
    let url = Url::parse(&target).map_err(|err| {
        ctx.log.error(format!("Could not parse target URL err={err}"));
        ProbeError::new(Phase::Resolve, Reason::Config, format!("could not parse target URL {target:?}: {err}"))
    })?;
    let (Some(host), Some(port)) = (url_host(&url), url.port_or_known_default()) else {
        return Err(ProbeError::new(Phase::Resolve, Reason::Config, format!("target URL {target:?} has no host")));
    };
    // The `hostname` parameter acts as a `Host` header (blackbox's setHTTPHost).
    let host_override =
        ctx.hostname.filter(|name| !name.is_empty()).or_else(|| host_header(config)).map(str::to_string);
    let proxy = config.proxy();
    let resolve_locally = !(config.skip_resolve_phase_with_proxy && proxy.configured());
    let ip = if resolve_locally {
        ctx.registry.seed_phases(DURATION, HELP_DURATION, &["resolve"]);
        let resolved = resolve::resolve(ctx, &host, config.preferred_ip_protocol, config.ip_protocol_fallback).await?;
        ctx.registry.add_phase(DURATION, HELP_DURATION, "resolve", resolved.lookup_time.as_secs_f64());
        Some(resolved.ip)
    } else {
        ctx.policy.check_host(&host).map_err(|why| ProbeError::new(Phase::Resolve, Reason::Denied, why))?;
        None
    };
    let body = request_body(config)?;
    ctx.registry.seed_phases(DURATION, HELP_DURATION, &["connect", "tls", "processing", "transfer"]);
    let base = base_headers(config)?;
    let authorization = ctx.within(Phase::Auth, client::authorization_value(config, ctx.remaining())).await??;

    let first_host = host.clone();
    let first_authority = (host.clone(), port);
    let tls_for = |url: &Url, default_server_name: String, drop_server_name: bool| {
        (url.scheme() == "https").then(|| {
            let mut tls = config.tls_config.clone();
            if drop_server_name {
                tls.server_name = None;
            }
            exchange::TlsSettings { config: tls, default_server_name }
        })
    };
    let server_name = host_override.as_deref().map(strip_port).unwrap_or(&host).to_string();
    let mut current = Target {
        tls: tls_for(&url, server_name, false),
        host_header: host_override
            .clone()
            .or_else(|| written_authority(&target))
            .unwrap_or_else(|| join_host_port(&host, port)),
        url,
        host,
        port,
        ip,
    };
    let mut method = Method::from_bytes(config.method.as_bytes()).unwrap_or(Method::GET);
    let mut body = body;
    let mut redirects: u32 = 0;
    let mut referer_value: Option<String> = None;
    let mut jar = cookie_store::CookieStore::default();
    let follow = config.follows_redirects();

    let (mut response, request_errored) = loop {
        let mut headers = base.clone();
        if !same_site(&current.host, &first_host) {
            for name in ["authorization", "www-authenticate", "cookie", "cookie2"] {
                headers.remove(name);
            }
        }
        if !headers.contains_key(http::header::AUTHORIZATION) {
            let from_url = (!current.url.username().is_empty()).then(|| {
                let decode = |text: &str| percent_encoding::percent_decode_str(text).decode_utf8_lossy().into_owned();
                client::basic_credentials(
                    &decode(current.url.username()),
                    &decode(current.url.password().unwrap_or("")),
                )
            });
            if let Some(value) = from_url.as_ref().or(authorization.as_ref()) {
                headers.insert(http::header::AUTHORIZATION, header_value(value)?);
            }
        }
        let cookies: Vec<String> =
            jar.get_request_values(&current.url).map(|(name, value)| format!("{name}={value}")).collect();
        if !cookies.is_empty() {
            let mut cookie = cookies.join("; ");
            if let Some(existing) = headers.get(http::header::COOKIE).and_then(|value| value.to_str().ok()) {
                cookie = format!("{existing}; {cookie}");
            }
            headers.insert(http::header::COOKIE, header_value(&cookie)?);
        }
        if let Some(referer) = &referer_value {
            if !headers.contains_key(http::header::REFERER) {
                headers.insert(http::header::REFERER, header_value(referer)?);
            }
        }
        let proxy_choice = proxy
            .select(current.url.scheme(), &current.host, current.ip, current.port)
            .map_err(|err| ProbeError::new(Phase::Connect, Reason::Config, err))?;
        let route = match proxy_choice {
            Some(chosen) => {
                let authority = match current.ip {
                    Some(ip) => join_host_port(&ip.to_string(), current.port),
                    None => join_host_port(&current.host, current.port),
                };
                Route::Proxy { proxy: chosen, authority }
            }
            None => {
                let ip = match current.ip {
                    Some(ip) => ip,
                    None => {
                        let ip = resolve_again(ctx, config, &current.host).await?;
                        current.ip = Some(ip);
                        ip
                    }
                };
                Route::Direct(std::net::SocketAddr::new(ip, current.port))
            }
        };
        let path_and_query = match current.url.query() {
            Some(query) => format!("{}?{query}", current.url.path()),
            None => current.url.path().to_string(),
        };
        let hop = Hop {
            route,
            tls: current.tls.clone(),
            method: method.clone(),
            path_and_query,
            host: current.host_header.clone(),
            headers,
            body: body.clone(),
        };
        // Never log a password given in the target URL.
        let mut shown = current.url.clone();
        if shown.password().is_some() {
            let _ = shown.set_password(Some("<secret>"));
        }
        ctx.log.debug(format!("Making HTTP request url={shown} host={}", hop.host));
        let response = exchange::send(ctx, &hop, config.enable_http2).await.inspect_err(|err| {
            ctx.log.error(format!("Error for HTTP request err={err}"));
        })?;
        ctx.log.debug(format!("Received HTTP response status_code={}", response.status));
        for value in response.headers.get_all(http::header::SET_COOKIE) {
            if let Ok(value) = value.to_str() {
                // A cookie the jar refuses (bad domain, …) is simply not kept, as in Go.
                let _ = jar.parse(value, &current.url);
            }
        }
        let Some((location, next_method, keep_body)) = redirect(response.status, &method, &response.headers) else {
            break (response, false);
        };
        let next_url = match current.url.join(&location) {
            Ok(next) if matches!(next.scheme(), "http" | "https") => next,
            _ => {
                ctx.log.error(format!("Failed to parse Location header location={location:?}"));
                break (response, true);
            }
        };
        ctx.log.info(format!("Received redirect location={location}"));
        redirects += 1;
        ctx.registry.set(REDIRECTS, HELP_REDIRECTS, f64::from(redirects));
        if redirects > MAX_REDIRECTS || !follow {
            ctx.log.info("Not following redirect");
            break (response, true);
        }
        // Closes this hop's connection before the next one opens.
        drop(response);
        let absolute = Url::parse(&location).is_ok() || location.starts_with("//");
        referer_value = referer(&current.url, &next_url);
        method = next_method;
        if !keep_body {
            body = bytes::Bytes::new();
        }
        let Some(next_host) = url_host(&next_url) else {
            return Err(ProbeError::new(Phase::Resolve, Reason::Config, format!("redirect to {next_url} has no host")));
        };
        let next_port = next_url.port_or_known_default().unwrap_or(80);
        if absolute {
            // A redirect elsewhere drops the configured server name (blackbox's
            // NoServerNameTransport); Host becomes the new authority.
            let same_authority = (next_host.as_str(), next_port) == (first_authority.0.as_str(), first_authority.1);
            let tls = if same_authority {
                tls_for(
                    &next_url,
                    current.tls.as_ref().map_or_else(|| next_host.clone(), |tls| tls.default_server_name.clone()),
                    false,
                )
            } else {
                tls_for(&next_url, next_host.clone(), true)
            };
            let ip = if resolve_locally { Some(resolve_again(ctx, config, &next_host).await?) } else { None };
            if !resolve_locally {
                ctx.policy
                    .check_host(&next_host)
                    .map_err(|why| ProbeError::new(Phase::Resolve, Reason::Denied, why))?;
            }
            current = Target {
                host_header: written_authority(next_url.as_str())
                    .unwrap_or_else(|| join_host_port(&next_host, next_port)),
                tls,
                url: next_url,
                host: next_host,
                port: next_port,
                ip,
            };
        } else {
            // A relative redirect stays on the same connection target and Host.
            current.url = next_url;
        }
    };

    // The final response: blackbox's checks, in blackbox's order; the first
    // failure is the reason, later gauges are still set.
    let mut failure: Option<ProbeError> = None;
    let status = response.status;
    ctx.registry.set(STATUS, HELP_STATUS, f64::from(status));
    ctx.registry.set(CONTENT_LENGTH, HELP_CONTENT_LENGTH, content_length(status, &response.headers));
    let status_ok = if config.valid_status_codes.is_empty() {
        (200..300).contains(&status)
    } else {
        config.valid_status_codes.iter().any(|codes| codes.contains(status))
    };
    if !status_ok {
        ctx.log.error(format!("Invalid HTTP response status code status_code={status}"));
        failure = Some(ProbeError::new(Phase::Check, Reason::Status, format!("unexpected status code {status}")));
    }
    if failure.is_none() && !(config.fail_if_header_matches.is_empty() && config.fail_if_header_not_matches.is_empty())
    {
        if let Some(why) = check_headers(config, &response.headers) {
            ctx.log.error(why.clone());
            ctx.registry.set(REGEX, HELP_REGEX, 1.0);
            failure = Some(ProbeError::new(Phase::Check, Reason::Regex, why));
        }
    }
    let body_regexes =
        !(config.fail_if_body_matches_regexp.is_empty() && config.fail_if_body_not_matches_regexp.is_empty());
    let mut sink = exchange::Sink::new(config.body_size_limit.limit(), body_regexes && failure.is_none());
    let mut body_failure = None;
    if !request_errored {
        let read =
            ctx.within(Phase::Transfer, exchange::read_body(&mut response.body, &config.compression, &mut sink)).await;
        body_failure = match read {
            Ok(Ok(())) => None,
            Ok(Err(err)) => Some(err.into_probe_error(sink.exceeded, config.body_size_limit.0)),
            Err(timeout) => Some(timeout),
        };
    }
    ctx.registry.add_phase(DURATION, HELP_DURATION, "transfer", response.first_byte.elapsed().as_secs_f64());
    ctx.registry.set(BODY_LENGTH, HELP_BODY_LENGTH, sink.length as f64);
    if failure.is_none() && body_failure.is_none() && body_regexes {
        match check_body(config, &sink.data) {
            Some(why) => {
                ctx.log.error(why.clone());
                ctx.registry.set(REGEX, HELP_REGEX, 1.0);
                failure = Some(ProbeError::new(Phase::Check, Reason::Regex, why));
            }
            None => ctx.registry.set(REGEX, HELP_REGEX, 0.0),
        }
    }
    if let Some(err) = body_failure {
        ctx.log.error(format!("Failed to read HTTP response body err={err}"));
        failure.get_or_insert(err);
    }
    if let Some(modified) = response.headers.get(http::header::LAST_MODIFIED).and_then(|value| value.to_str().ok()) {
        if let Ok(time) = httpdate::parse_http_date(modified) {
            let seconds = match time.duration_since(std::time::UNIX_EPOCH) {
                Ok(after) => after.as_secs() as f64,
                Err(before) => -(before.duration().as_secs() as f64),
            };
            ctx.registry.set(LAST_MODIFIED, HELP_LAST_MODIFIED, seconds);
        }
    }
    let (proto_name, version_number) = proto(response.version);
    ctx.registry.set(VERSION, HELP_VERSION, version_number);
    if !config.valid_http_versions.is_empty() && !config.valid_http_versions.iter().any(|valid| valid == proto_name) {
        ctx.log.error(format!("Invalid HTTP version number version={proto_name}"));
        failure.get_or_insert(ProbeError::new(
            Phase::Check,
            Reason::HttpVersion,
            format!("HTTP version {proto_name} is not valid"),
        ));
    }
    match &response.tls {
        Some(info) => {
            ctx.registry.set(SSL, HELP_SSL, 1.0);
            tls::record(info, &mut ctx.registry, tls::Families { cipher: true, last_chain_expiry: true });
            if config.fail_if_ssl {
                ctx.log.error("Final request was over SSL");
                failure.get_or_insert(ProbeError::new(Phase::Check, Reason::TlsPolicy, "final request was over TLS"));
            }
        }
        None if config.fail_if_not_ssl && failure.is_none() => {
            ctx.log.error("Final request was not over SSL");
            failure = Some(ProbeError::new(Phase::Check, Reason::TlsPolicy, "final request was not over TLS"));
        }
        None => {}
    }
    failure.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> (Config, Vec<(String, String)>) {
        let value = crate::config::yaml::parse_value(yaml).unwrap();
        let config: Config = crate::config::yaml::from_value(value, "modules.m.http").unwrap();
        let mut problems = Problems::default();
        config.validate("modules.m.http", &mut problems);
        (config, problems.0.into_iter().map(|problem| (problem.path, problem.message)).collect())
    }

    #[test]
    fn defaults_match_blackbox() {
        let (config, problems) = parse("{}");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(config.preferred_ip_protocol, IpProtocol::Ip6);
        assert!(config.ip_protocol_fallback && config.follow_redirects && config.enable_http2);
        assert_eq!(config.method, "GET");
        assert!(config.valid_status_codes.is_empty());
        assert_eq!(config.body_size_limit.limit(), None);
    }

    #[test]
    fn every_blackbox_key_parses() {
        let (config, problems) = parse(
            r#"
valid_status_codes: [200, "2xx", "300-302"]
valid_http_versions: ["HTTP/1.1", "HTTP/2.0"]
preferred_ip_protocol: ip4
ip_protocol_fallback: false
skip_resolve_phase_with_proxy: true
no_follow_redirects: true
fail_if_ssl: false
fail_if_not_ssl: true
method: POST
headers: {Host: vhost.example.com, Accept-Encoding: "gzip, br;q=0.5"}
fail_if_body_matches_regexp: ["error"]
fail_if_body_not_matches_regexp: ["ok"]
fail_if_header_matches: [{header: X-A, regexp: "x", allow_missing: true}]
fail_if_header_not_matches: [{header: X-B, regexp: "y"}]
body: '{"a": 1}'
compression: gzip
body_size_limit: 1MB
enable_http3: false
basic_auth: {username: u, password: p}
tls_config: {insecure_skip_verify: true, server_name: s}
follow_redirects: true
enable_http2: false
proxy_url: http://proxy:3128
no_proxy: localhost,10.0.0.0/8
proxy_connect_header: {X-P: [secret]}
http_headers: {X-Custom: {values: [a], secrets: [b]}}
"#,
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            config.valid_status_codes,
            [StatusCodes::Code(200), StatusCodes::Range(200, 299), StatusCodes::Range(300, 302)]
        );
        assert!(!config.follows_redirects(), "no_follow_redirects wins");
        assert_eq!(config.body_size_limit.limit(), Some(1 << 20));
        assert_eq!(host_header(&config), Some("vhost.example.com"));
        let shown = crate::config::yaml::to_string(&config);
        assert!(!shown.contains("no_follow_redirects"), "{shown}");
        assert!(!shown.contains("secret\n") && shown.contains("<secret>"), "{shown}");
        assert!(shown.contains("- 2xx") && shown.contains("- 300-302"), "{shown}");
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let (_, problems) = parse(
            r#"
valid_status_codes: [42]
valid_http_versions: ["HTTP/3.0"]
enable_http3: true
method: "GE T"
headers: {Accept-Encoding: "br", host: a, Host: b}
body: x
body_file: /tmp/x
compression: gzip
fail_if_header_matches: [{header: "", regexp: ""}]
fail_if_body_json_matches_cel: "body.a == 1"
basic_auth: {username: u, username_file: /f, password_ref: r}
bearer_token: t
bearer_token_file: /t
authorization: {type: Basic, credentials: c}
oauth2: {client_secret: s, grant_type: password}
no_proxy: x
http_headers: {Authorization: {values: [x]}, user-agent: {values: [y]}}
"#,
        );
        let paths: Vec<&str> = problems.iter().map(|(path, _)| path.as_str()).collect();
        for expected in [
            "modules.m.http.valid_status_codes[0]",
            "modules.m.http.enable_http3",
            "modules.m.http.method",
            "modules.m.http.headers.host",
            "modules.m.http.headers.Accept-Encoding",
            "modules.m.http.fail_if_body_json_matches_cel",
            "modules.m.http.fail_if_header_matches[0].header",
            "modules.m.http.fail_if_header_matches[0].regexp",
            "modules.m.http.body_file",
            "modules.m.http.bearer_token_file",
            "modules.m.http",
            "modules.m.http.basic_auth.username_file",
            "modules.m.http.basic_auth.password_ref",
            "modules.m.http.authorization.type",
            "modules.m.http.oauth2.client_id",
            "modules.m.http.oauth2.token_url",
            "modules.m.http.oauth2.grant_type",
            "modules.m.http.no_proxy",
            "modules.m.http.http_headers.Authorization",
            "modules.m.http.http_headers.user-agent",
        ] {
            assert!(paths.contains(&expected), "missing {expected} in {problems:#?}");
        }
        let message = |path: &str| problems.iter().find(|(at, _)| at == path).map(|(_, message)| message.as_str());
        assert_eq!(message("modules.m.http.body_file"), Some("setting body and body_file both are not allowed"));
        assert_eq!(
            message("modules.m.http.headers.Accept-Encoding"),
            Some("invalid configuration \"Accept-Encoding: br\", \"compression: gzip\"")
        );
        assert!(
            message("modules.m.http.fail_if_body_json_matches_cel")
                .unwrap()
                .contains("CEL is not supported by checkit")
        );
        assert!(message("modules.m.http.enable_http3").unwrap().contains("not supported"));
        assert_eq!(
            message("modules.m.http.http_headers.user-agent"),
            Some("setting header \"User-Agent\" is not allowed")
        );
        let (_, problems) = parse("valid_http_versions: [\"HTTP/1.1\", \"HTTP/3.0\"]");
        assert_eq!(
            problems,
            [(
                "modules.m.http.valid_http_versions[1]".to_string(),
                "HTTP/3 cannot be used as a valid HTTP version when enable_http3 is false".to_string()
            )]
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_rejected() {
        for (yaml, path) in [
            ("bogus: 1", "modules.m.http"),
            ("valid_status_codes: [\"2yy\"]", "modules.m.http.valid_status_codes[0]"),
            ("fail_if_body_matches_regexp: [\"(\"]", "modules.m.http.fail_if_body_matches_regexp[0]"),
            ("basic_auth: {user: x}", "modules.m.http.basic_auth"),
            ("preferred_ip_protocol: ip5", "modules.m.http.preferred_ip_protocol"),
        ] {
            let value = crate::config::yaml::parse_value(yaml).unwrap();
            let problem = crate::config::yaml::from_value::<Config>(value, "modules.m.http").unwrap_err();
            assert!(problem.path.starts_with(path), "{yaml}: {problem}");
        }
    }

    #[test]
    fn status_code_extension_grammar() {
        assert_eq!(StatusCodes::parse("2xx").unwrap(), StatusCodes::Range(200, 299));
        assert_eq!(StatusCodes::parse("200-204").unwrap(), StatusCodes::Range(200, 204));
        assert_eq!(StatusCodes::parse("404").unwrap(), StatusCodes::Code(404));
        assert!(StatusCodes::parse("0xx").is_err() && StatusCodes::parse("22xx").is_err());
        assert!(StatusCodes::Range(200, 299).contains(204) && !StatusCodes::Range(200, 299).contains(300));
        assert_eq!(StatusCodes::Range(500, 599).to_string(), "5xx");
    }

    #[test]
    fn accept_encoding_rules_match_blackbox() {
        assert!(compression_accepted("gzip", "gzip"));
        assert!(compression_accepted("gzip", "br, gzip;q=0.5"));
        assert!(compression_accepted("gzip", "*"));
        assert!(!compression_accepted("gzip", "gzip;q=0"));
        assert!(!compression_accepted("gzip", "br"));
        assert!(compression_accepted("", "br"));
        assert!(compression_accepted("gzip", ""));
    }
}
