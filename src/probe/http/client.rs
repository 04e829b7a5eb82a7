//! prometheus/common's `HTTPClientConfig` pieces that blackbox inlines into
//! `http:`: authentication, `http_headers` and proxies, with their validation
//! and their use at probe time.

use super::Config;
use crate::config::Problems;
use crate::config::types::{Secret, read_secret_file};
use crate::config::yaml::Value;
use crate::probe::tls::TlsConfig;
use crate::probe::{Phase, ProbeError, Reason};
use base64::Engine as _;
use http::{HeaderName, HeaderValue};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

/// `basic_auth`.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BasicAuth {
    /// User name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub username: String,
    /// File holding the user name.
    pub username_file: Option<String>,
    /// Secret-manager reference (not supported by checkit).
    pub username_ref: Option<String>,
    /// Password.
    pub password: Option<Secret>,
    /// File holding the password.
    pub password_file: Option<String>,
    /// Secret-manager reference (not supported by checkit).
    pub password_ref: Option<String>,
}

/// `authorization`: an `Authorization: <type> <credentials>` header.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Authorization {
    /// Scheme; defaults to `Bearer`. `Basic` is rejected (use `basic_auth`).
    #[serde(rename = "type", skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// The credentials.
    pub credentials: Option<Secret>,
    /// File holding the credentials.
    pub credentials_file: Option<String>,
    /// Secret-manager reference (not supported by checkit).
    pub credentials_ref: Option<String>,
}

impl Authorization {
    fn scheme(&self) -> &str {
        let kind = self.kind.trim();
        if kind.is_empty() { "Bearer" } else { kind }
    }
}

/// `oauth2`: the client credentials flow, a fresh token for every probe.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OAuth2 {
    /// Client id.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub client_id: String,
    /// Client secret.
    pub client_secret: Option<Secret>,
    /// File holding the client secret.
    pub client_secret_file: Option<String>,
    /// Secret-manager reference (not supported by checkit).
    pub client_secret_ref: Option<String>,
    /// JWT bearer grant (not supported by checkit).
    pub client_certificate_key_id: Option<String>,
    /// JWT bearer grant (not supported by checkit).
    pub client_certificate_key: Option<Secret>,
    /// JWT bearer grant (not supported by checkit).
    pub client_certificate_key_file: Option<String>,
    /// JWT bearer grant (not supported by checkit).
    pub client_certificate_key_ref: Option<String>,
    /// `client_credentials` (the default) is the only grant checkit performs.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub grant_type: String,
    /// JWT bearer grant (not supported by checkit).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub signature_algorithm: String,
    /// JWT bearer grant (not supported by checkit).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub iss: String,
    /// JWT bearer grant (not supported by checkit).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub audience: String,
    /// JWT bearer grant (not supported by checkit).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub claims: BTreeMap<String, Value>,
    /// Requested scopes, sent space-separated as `scope`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Token endpoint.
    #[serde(skip_serializing_if = "String::is_empty", serialize_with = "crate::config::types::serialize_redacted_url")]
    pub token_url: String,
    /// Extra form parameters for the token request.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub endpoint_params: BTreeMap<String, String>,
    /// TLS settings for the token endpoint.
    pub tls_config: TlsConfig,
    /// Proxy for the token endpoint.
    #[serde(serialize_with = "crate::config::types::serialize_redacted_url_option")]
    pub proxy_url: Option<String>,
    /// Hosts that bypass `proxy_url`.
    pub no_proxy: Option<String>,
    /// Use the proxy environment variables.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub proxy_from_environment: bool,
    /// Headers for the proxy's `CONNECT`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub proxy_connect_header: BTreeMap<String, Vec<Secret>>,
}

impl OAuth2 {
    fn proxy(&self) -> ProxySettings<'_> {
        ProxySettings {
            url: self.proxy_url.as_deref(),
            no_proxy: self.no_proxy.as_deref(),
            from_environment: self.proxy_from_environment,
            connect_header: &self.proxy_connect_header,
        }
    }
}

/// One `http_headers` entry: every value, secret and file content is sent.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpHeader {
    /// Plain values.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    /// Values hidden in `/config`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<Secret>,
    /// Files whose trimmed content is a value, read for each probe.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
}

/// Header names prometheus/common refuses in `http_headers`.
const RESERVED_HEADERS: [&str; 18] = [
    "Authorization",
    "Host",
    "Content-Encoding",
    "Content-Length",
    "Content-Type",
    "User-Agent",
    "Connection",
    "Keep-Alive",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Www-Authenticate",
    "Accept-Encoding",
    "X-Prometheus-Remote-Write-Version",
    "X-Prometheus-Remote-Read-Version",
    "X-Prometheus-Scrape-Timeout-Seconds",
    "X-Amz-Date",
    "X-Amz-Security-Token",
    "X-Amz-Content-Sha256",
];

const SECRET_REF: &str = "secret references (*_ref) are not supported by checkit; use the inline or *_file form";

fn present(value: &Option<String>) -> bool {
    value.as_deref().is_some_and(|value| !value.is_empty())
}

fn present_secret(value: &Option<Secret>) -> bool {
    value.as_ref().is_some_and(|value| !value.expose().is_empty())
}

/// The authentication rules of prometheus/common's `HTTPClientConfig.Validate`.
pub(super) fn validate_auth(config: &Config, path: &str, problems: &mut Problems) {
    let bearer = present_secret(&config.bearer_token) || present(&config.bearer_token_file);
    if present_secret(&config.bearer_token) && present(&config.bearer_token_file) {
        problems.push(
            format!("{path}.bearer_token_file"),
            "at most one of bearer_token & bearer_token_file must be configured",
        );
    }
    let methods = [config.basic_auth.is_some(), config.oauth2.is_some(), config.authorization.is_some(), bearer];
    if methods.iter().filter(|used| **used).count() > 1 {
        problems.push(
            path.to_string(),
            "at most one of basic_auth, oauth2, authorization & bearer_token must be configured",
        );
    }
    if let Some(basic) = &config.basic_auth {
        let at = format!("{path}.basic_auth");
        if !basic.username.is_empty() && present(&basic.username_file) {
            problems.push(
                format!("{at}.username_file"),
                "at most one of basic_auth username, username_file & username_ref must be configured",
            );
        }
        if present_secret(&basic.password) && present(&basic.password_file) {
            problems.push(
                format!("{at}.password_file"),
                "at most one of basic_auth password, password_file & password_ref must be configured",
            );
        }
        for (reference, field) in [(&basic.username_ref, "username_ref"), (&basic.password_ref, "password_ref")] {
            if present(reference) {
                problems.push(format!("{at}.{field}"), SECRET_REF);
            }
        }
    }
    if let Some(authorization) = &config.authorization {
        let at = format!("{path}.authorization");
        if present_secret(&authorization.credentials) && present(&authorization.credentials_file) {
            problems.push(
                format!("{at}.credentials_file"),
                "at most one of authorization credentials & credentials_file must be configured",
            );
        }
        if present(&authorization.credentials_ref) {
            problems.push(format!("{at}.credentials_ref"), SECRET_REF);
        }
        if authorization.scheme().eq_ignore_ascii_case("basic") {
            problems.push(
                format!("{at}.type"),
                "authorization type cannot be set to \"basic\", use \"basic_auth\" instead",
            );
        } else if HeaderValue::from_str(authorization.scheme()).is_err() || authorization.scheme().contains(' ') {
            problems.push(format!("{at}.type"), format!("invalid authorization type {:?}", authorization.scheme()));
        }
    }
    if let Some(oauth2) = &config.oauth2 {
        let at = format!("{path}.oauth2");
        if oauth2.client_id.is_empty() {
            problems.push(format!("{at}.client_id"), "oauth2 client_id must be configured");
        }
        if oauth2.token_url.is_empty() {
            problems.push(format!("{at}.token_url"), "oauth2 token_url must be configured");
        } else if !url::Url::parse(&oauth2.token_url).is_ok_and(|url| matches!(url.scheme(), "http" | "https")) {
            problems.push(format!("{at}.token_url"), format!("invalid oauth2 token_url {:?}", oauth2.token_url));
        }
        if !oauth2.grant_type.is_empty() && oauth2.grant_type != "client_credentials" {
            problems.push(
                format!("{at}.grant_type"),
                format!(
                    "oauth2 grant_type {:?} is not supported by checkit (only client_credentials)",
                    oauth2.grant_type
                ),
            );
        }
        if present_secret(&oauth2.client_secret) && present(&oauth2.client_secret_file) {
            problems.push(
                format!("{at}.client_secret_file"),
                "at most one of oauth2 client_secret, client_secret_file & client_secret_ref must be configured using grant-type=client_credentials",
            );
        }
        if present(&oauth2.client_secret_ref) {
            problems.push(format!("{at}.client_secret_ref"), SECRET_REF);
        }
        let jwt_keys = [
            present(&oauth2.client_certificate_key_id),
            present_secret(&oauth2.client_certificate_key),
            present(&oauth2.client_certificate_key_file),
            present(&oauth2.client_certificate_key_ref),
            !oauth2.signature_algorithm.is_empty(),
            !oauth2.iss.is_empty(),
            !oauth2.audience.is_empty(),
            !oauth2.claims.is_empty(),
        ];
        if jwt_keys.iter().any(|set| *set) {
            problems.push(at.clone(), "the oauth2 JWT bearer grant (client_certificate_key*, signature_algorithm, iss, audience, claims) is not supported by checkit");
        }
        if !oauth2.scopes.is_empty() && oauth2.endpoint_params.contains_key("scope") {
            problems.push(format!("{at}.endpoint_params.scope"), "oauth2: cannot overwrite parameter \"scope\"");
        }
        oauth2.tls_config.validate(&format!("{at}.tls_config"), problems);
        oauth2.proxy().validate(&at, problems);
    }
}

/// Reserved names and invalid names in `http_headers`.
pub(super) fn validate_http_headers(headers: &BTreeMap<String, HttpHeader>, path: &str, problems: &mut Problems) {
    for (name, header) in headers {
        if let Some(reserved) = RESERVED_HEADERS.iter().find(|reserved| reserved.eq_ignore_ascii_case(name)) {
            problems.push(format!("{path}.{name}"), format!("setting header {reserved:?} is not allowed"));
        } else if HeaderName::from_bytes(name.as_bytes()).is_err() {
            problems.push(format!("{path}.{name}"), format!("invalid header name {name:?}"));
        }
        for value in &header.values {
            if HeaderValue::from_str(value).is_err() {
                problems
                    .push(format!("{path}.{name}.values"), "invalid header value (control characters are not allowed)");
            }
        }
    }
}

/// Reads a `*_file` secret, trimmed like prometheus/common's `FileSecret`.
fn read_trimmed(path: &str) -> Result<String, String> {
    read_secret_file(path).map(|secret| secret.expose().trim().to_string())
}

fn inline_or_file(inline: Option<&Secret>, file: Option<&String>) -> Result<String, String> {
    match (inline, file) {
        (Some(secret), _) if !secret.expose().is_empty() => Ok(secret.expose().to_string()),
        (_, Some(file)) if !file.is_empty() => read_trimmed(file),
        _ => Ok(String::new()),
    }
}

/// `Basic <base64(user:password)>`.
pub(super) fn basic_credentials(username: &str, password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}")))
}

/// The `Authorization` value the module's auth settings produce, if any.
/// OAuth2 fetches a token (each probe builds a new client, as blackbox does).
pub(super) async fn authorization_value(config: &Config, timeout: Duration) -> Result<Option<String>, ProbeError> {
    let unreadable = |err: String| ProbeError::new(Phase::Auth, Reason::Config, err);
    if let Some(basic) = &config.basic_auth {
        let username = match &basic.username_file {
            Some(file) if !file.is_empty() => read_trimmed(file).map_err(unreadable)?,
            _ => basic.username.clone(),
        };
        let password = inline_or_file(basic.password.as_ref(), basic.password_file.as_ref()).map_err(unreadable)?;
        return Ok(Some(basic_credentials(&username, &password)));
    }
    if let Some(authorization) = &config.authorization {
        let credentials = inline_or_file(authorization.credentials.as_ref(), authorization.credentials_file.as_ref())
            .map_err(unreadable)?;
        return Ok(Some(format!("{} {credentials}", authorization.scheme())));
    }
    if present_secret(&config.bearer_token) || present(&config.bearer_token_file) {
        let credentials =
            inline_or_file(config.bearer_token.as_ref(), config.bearer_token_file.as_ref()).map_err(unreadable)?;
        return Ok(Some(format!("Bearer {credentials}")));
    }
    if let Some(oauth2) = &config.oauth2 {
        return fetch_token(oauth2, timeout)
            .await
            .map(Some)
            .map_err(|err| ProbeError::new(Phase::Auth, Reason::AuthFailed, err));
    }
    Ok(None)
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    token_type: String,
}

/// The client credentials grant (RFC 6749 §4.4), as golang.org/x/oauth2 does
/// it: credentials in a Basic header first, in the form body if refused.
async fn fetch_token(oauth2: &OAuth2, timeout: Duration) -> Result<String, String> {
    let secret = inline_or_file(oauth2.client_secret.as_ref(), oauth2.client_secret_file.as_ref())?;
    let tls = crate::probe::tls::Client::new(&oauth2.tls_config, &[])?;
    let mut builder = reqwest::Client::builder()
        .use_preconfigured_tls((*tls.config).clone())
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none());
    match oauth2.proxy_url.as_deref() {
        Some(proxy_url) if !proxy_url.is_empty() => {
            let mut proxy = reqwest::Proxy::all(proxy_url).map_err(|err| format!("invalid oauth2 proxy_url: {err}"))?;
            if let Some(no_proxy) = oauth2.no_proxy.as_deref() {
                proxy = proxy.no_proxy(reqwest::NoProxy::from_string(no_proxy));
            }
            let mut headers = http::HeaderMap::new();
            for (name, values) in &oauth2.proxy_connect_header {
                for value in values {
                    if let (Ok(name), Ok(value)) =
                        (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value.expose()))
                    {
                        headers.append(name, value);
                    }
                }
            }
            builder = builder.proxy(proxy.headers(headers));
        }
        _ if oauth2.proxy_from_environment => {}
        _ => builder = builder.no_proxy(),
    }
    let client = builder.build().map_err(|err| format!("cannot build oauth2 client: {err}"))?;
    let mut form: Vec<(String, String)> = vec![("grant_type".into(), "client_credentials".into())];
    if !oauth2.scopes.is_empty() {
        form.push(("scope".into(), oauth2.scopes.join(" ")));
    }
    for (key, value) in &oauth2.endpoint_params {
        form.retain(|(existing, _)| existing != key);
        form.push((key.clone(), value.clone()));
    }
    let encode = |text: &str| url::form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();
    let in_header = client
        .post(&oauth2.token_url)
        .header(http::header::AUTHORIZATION, basic_credentials(&encode(&oauth2.client_id), &encode(&secret)))
        .form(&form)
        .send()
        .await
        .map_err(|err| format!("oauth2 token request failed: {err}"))?;
    let response = if matches!(in_header.status().as_u16(), 400 | 401) {
        let mut in_body = form.clone();
        in_body.push(("client_id".into(), oauth2.client_id.clone()));
        in_body.push(("client_secret".into(), secret.clone()));
        client
            .post(&oauth2.token_url)
            .form(&in_body)
            .send()
            .await
            .map_err(|err| format!("oauth2 token request failed: {err}"))?
    } else {
        in_header
    };
    let status = response.status();
    let form_encoded =
        response.headers().get(http::header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).is_some_and(|value| {
            value.starts_with("application/x-www-form-urlencoded") || value.starts_with("text/plain")
        });
    let body = response.bytes().await.map_err(|err| format!("oauth2 token response unreadable: {err}"))?;
    if !status.is_success() {
        return Err(format!("oauth2 token endpoint answered {status}"));
    }
    let token: TokenResponse = if form_encoded {
        let fields: BTreeMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
        TokenResponse {
            access_token: fields.get("access_token").cloned().unwrap_or_default(),
            token_type: fields.get("token_type").cloned().unwrap_or_default(),
        }
    } else {
        serde_json::from_slice(&body).map_err(|err| format!("oauth2 token response is not valid JSON: {err}"))?
    };
    if token.access_token.is_empty() {
        return Err("oauth2 token response has no access_token".into());
    }
    // golang.org/x/oauth2 `Token.Type()`.
    let kind = match token.token_type.to_ascii_lowercase().as_str() {
        "" | "bearer" => "Bearer".to_string(),
        "mac" => "MAC".to_string(),
        "basic" => "Basic".to_string(),
        _ => token.token_type.clone(),
    };
    Ok(format!("{kind} {}", token.access_token))
}

/// Headers from `http_headers`, with file contents read now.
pub(super) fn http_header_values(headers: &BTreeMap<String, HttpHeader>) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (name, header) in headers {
        out.extend(header.values.iter().map(|value| (name.clone(), value.clone())));
        out.extend(header.secrets.iter().map(|secret| (name.clone(), secret.expose().to_string())));
        for file in &header.files {
            out.push((name.clone(), read_trimmed(file)?));
        }
    }
    Ok(out)
}

/// A borrowed view of the proxy keys (they appear in `http:` and in `oauth2:`).
pub(super) struct ProxySettings<'a> {
    pub(super) url: Option<&'a str>,
    pub(super) no_proxy: Option<&'a str>,
    pub(super) from_environment: bool,
    pub(super) connect_header: &'a BTreeMap<String, Vec<Secret>>,
}

/// A proxy chosen for one request.
#[derive(Debug, Clone)]
pub(super) struct Proxy {
    /// Host to dial.
    pub(super) host: String,
    /// Port to dial.
    pub(super) port: u16,
    /// `Proxy-Authorization` from the proxy URL's user info.
    pub(super) authorization: Option<String>,
    /// Headers for `CONNECT`.
    pub(super) connect_headers: Vec<(String, String)>,
}

impl ProxySettings<'_> {
    /// True when some proxy may be used.
    pub(super) fn configured(&self) -> bool {
        self.url.is_some_and(|url| !url.is_empty()) || self.from_environment
    }

    /// prometheus/common's `ProxyConfig.Validate`, plus checkit's limits.
    pub(super) fn validate(&self, path: &str, problems: &mut Problems) {
        let has_url = self.url.is_some_and(|url| !url.is_empty());
        if !self.connect_header.is_empty() && !self.from_environment && !has_url {
            problems.push(
                format!("{path}.proxy_connect_header"),
                "if proxy_connect_header is configured, proxy_url or proxy_from_environment must also be configured",
            );
        }
        if self.from_environment && has_url {
            problems.push(
                format!("{path}.proxy_url"),
                "if proxy_from_environment is configured, proxy_url must not be configured",
            );
        }
        if self.from_environment && self.no_proxy.is_some() {
            problems.push(
                format!("{path}.no_proxy"),
                "if proxy_from_environment is configured, no_proxy must not be configured",
            );
        }
        if !has_url && self.no_proxy.is_some() {
            problems.push(format!("{path}.no_proxy"), "if no_proxy is configured, proxy_url must also be configured");
        }
        if let Some(url) = self.url.filter(|url| !url.is_empty()) {
            if let Err(err) = parse_proxy(url) {
                problems.push(format!("{path}.proxy_url"), err);
            }
        }
        for name in self.connect_header.keys() {
            if HeaderName::from_bytes(name.as_bytes()).is_err() {
                problems.push(format!("{path}.proxy_connect_header.{name}"), format!("invalid header name {name:?}"));
            }
        }
    }

    /// The proxy for a request to `scheme://host:port` (resolved to `ip`, if
    /// known), or `None` for a direct connection.
    pub(super) fn select(
        &self,
        scheme: &str,
        host: &str,
        ip: Option<IpAddr>,
        port: u16,
    ) -> Result<Option<Proxy>, String> {
        let connect_headers: Vec<(String, String)> = self
            .connect_header
            .iter()
            .flat_map(|(name, values)| values.iter().map(move |value| (name.clone(), value.expose().to_string())))
            .collect();
        if let Some(url) = self.url.filter(|url| !url.is_empty()) {
            // Go's `http.ProxyURL` proxies everything; with `no_proxy` prometheus/common
            // switches to `httpproxy` rules, which never proxy loopback.
            if let Some(no_proxy) = self.no_proxy {
                if bypasses(no_proxy, host, ip, port) {
                    return Ok(None);
                }
            }
            return parse_proxy(url).map(|proxy| Some(Proxy { connect_headers, ..proxy }));
        }
        if !self.from_environment {
            return Ok(None);
        }
        let env =
            |names: [&str; 2]| names.iter().find_map(|name| std::env::var(name).ok().filter(|value| !value.is_empty()));
        let proxy =
            if scheme == "https" { env(["HTTPS_PROXY", "https_proxy"]) } else { env(["HTTP_PROXY", "http_proxy"]) };
        let Some(proxy) = proxy else { return Ok(None) };
        let no_proxy = env(["NO_PROXY", "no_proxy"]).unwrap_or_default();
        if bypasses(&no_proxy, host, ip, port) {
            return Ok(None);
        }
        let proxy = if proxy.contains("://") { proxy } else { format!("http://{proxy}") };
        parse_proxy(&proxy).map(|proxy| Some(Proxy { connect_headers, ..proxy }))
    }
}

fn parse_proxy(text: &str) -> Result<Proxy, String> {
    let url = url::Url::parse(text).map_err(|err| format!("invalid proxy URL {text:?}: {err}"))?;
    if url.scheme() != "http" {
        return Err(format!("proxy scheme {:?} is not supported by checkit (only http:// proxies)", url.scheme()));
    }
    let host = match url.host() {
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        Some(host) => host.to_string(),
        None => return Err(format!("proxy URL {text:?} has no host")),
    };
    let authorization = (!url.username().is_empty()).then(|| {
        let decode = |text: &str| percent_encoding::percent_decode_str(text).decode_utf8_lossy().into_owned();
        basic_credentials(&decode(url.username()), &decode(url.password().unwrap_or("")))
    });
    Ok(Proxy { host, port: url.port().unwrap_or(80), authorization, connect_headers: Vec::new() })
}

/// golang.org/x/net/http/httpproxy's `useProxy`, inverted. Unlike blackbox
/// (which asks with the resolved IP only) both the name and the IP are tried,
/// so a `no_proxy` entry naming the target host works as users expect.
pub(super) fn bypasses(no_proxy: &str, host: &str, ip: Option<IpAddr>, port: u16) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
    let host_ip = host.parse::<IpAddr>().ok();
    if host == "localhost" || host_ip.is_some_and(|ip| ip.is_loopback()) || ip.is_some_and(|ip| ip.is_loopback()) {
        return true;
    }
    let ips: Vec<IpAddr> = host_ip.into_iter().chain(ip).collect();
    for entry in no_proxy.split(',').map(|entry| entry.trim().to_ascii_lowercase()).filter(|entry| !entry.is_empty()) {
        if entry == "*" {
            return true;
        }
        if let Ok(net) = entry.parse::<IpNet>() {
            if ips.iter().any(|ip| net.contains(ip)) {
                return true;
            }
            continue;
        }
        if let Ok(entry_ip) = entry.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
            if ips.contains(&entry_ip) {
                return true;
            }
            continue;
        }
        let (pattern, entry_port) = match entry.rsplit_once(':') {
            Some((pattern, entry_port)) if entry_port.parse::<u16>().is_ok() => {
                (pattern, entry_port.parse::<u16>().ok())
            }
            _ => (entry.as_str(), None),
        };
        if entry_port.is_some_and(|entry_port| entry_port != port) {
            continue;
        }
        let pattern = pattern.strip_prefix('*').unwrap_or(pattern);
        let matched = match pattern.strip_prefix('.') {
            Some(suffix) => host.ends_with(&format!(".{suffix}")),
            None => host == pattern || host.ends_with(&format!(".{pattern}")),
        };
        if matched {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_proxy_follows_httpproxy_rules() {
        assert!(bypasses("", "localhost", None, 80));
        assert!(bypasses("", "example.com", Some("127.0.0.1".parse().unwrap()), 80));
        assert!(!bypasses("", "example.com", Some("10.0.0.1".parse().unwrap()), 80));
        assert!(bypasses("example.com", "example.com", None, 80));
        assert!(bypasses("example.com", "www.example.com", None, 80));
        assert!(!bypasses(".example.com", "example.com", None, 80));
        assert!(bypasses("*.example.com", "a.example.com", None, 80));
        assert!(bypasses("10.0.0.0/8", "name", Some("10.1.2.3".parse().unwrap()), 80));
        assert!(bypasses("example.com:8080", "example.com", None, 8080));
        assert!(!bypasses("example.com:8080", "example.com", None, 80));
        assert!(bypasses("*", "anything", None, 80));
    }

    #[test]
    fn proxy_urls_parse_with_credentials() {
        let proxy = parse_proxy("http://user:p%40ss@proxy.example:3128").unwrap();
        assert_eq!((proxy.host.as_str(), proxy.port), ("proxy.example", 3128));
        assert_eq!(proxy.authorization.as_deref(), Some(basic_credentials("user", "p@ss").as_str()));
        assert!(parse_proxy("socks5://proxy:1080").is_err());
    }
}
