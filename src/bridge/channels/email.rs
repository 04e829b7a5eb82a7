//! Email over SMTP with lettre: one pooled transport per account, TLS by
//! rustls, SMTP replies split into transient (4xx) and permanent (5xx).

use super::{ChannelKind, DeliveryError, Error, Reason, Receipt, SecretSource, error_chain, is_tls_failure};
use crate::bridge::render::Outgoing;
use crate::config::Problems;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::{self, PoolConfig};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};

/// How the connection to the smarthost is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain connection upgraded with STARTTLS; refusing to send if the
    /// upgrade fails (Alertmanager's `require_tls: true`).
    Starttls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Implicit,
    /// No TLS at all: only for a relay on the same host or network.
    None,
}

/// The SMTP account (`bridge.channels.email`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Relay host, `host` or `host:port` as in Alertmanager.
    pub smarthost: String,
    /// Port; overrides one in `smarthost`. Default 587.
    #[serde(default)]
    pub port: Option<u16>,
    /// `starttls`, `implicit` or `none`. Default: `implicit` on port 465,
    /// otherwise `starttls` (required, never opportunistic).
    #[serde(default)]
    pub tls: Option<TlsMode>,
    /// Sender, `alerts@example.com` or `checkit <alerts@example.com>`.
    pub from: String,
    /// Name sent in EHLO; default the local host name.
    #[serde(default)]
    pub hello: Option<String>,
    /// SMTP AUTH user; needs a password.
    #[serde(default)]
    pub username: Option<String>,
    /// File holding the SMTP AUTH password.
    #[serde(default)]
    pub password_file: Option<String>,
    /// Environment variable holding the SMTP AUTH password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// PEM file with extra CA certificates to trust for the server.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// Accept any server certificate. For tests only.
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// Most simultaneous SMTP connections (SMTP cannot multiplex).
    #[serde(default = "default_pool_size")]
    pub pool_size: u32,
}

/// Most SMTP connections kept per relay; relays throttle far below this.
const MAX_POOL_SIZE: u32 = 64;

fn default_pool_size() -> u32 {
    4
}

const DEFAULT_PORT: u16 = 587;
const IMPLICIT_TLS_PORT: u16 = 465;

impl Config {
    /// Records every problem of this block below `path`.
    pub fn validate(&self, path: &str, problems: &mut Problems) {
        let host = match self.host_and_port() {
            Ok((host, _)) => Some(host),
            Err(message) => {
                problems.push(format!("{path}.smarthost"), message);
                None
            }
        };
        if let Err(err) = self.from.parse::<Mailbox>() {
            problems.push(format!("{path}.from"), format!("invalid sender address {:?}: {err}", self.from));
        }
        if let Some(hello) = &self.hello {
            if hello.is_empty() || hello.contains(char::is_whitespace) {
                problems.push(format!("{path}.hello"), "hello must be a host name");
            }
        }
        let password = SecretSource::from_pair(&self.password_file, &self.password_env);
        match &self.username {
            Some(_) => password.validate(path, "password_file", "password_env", true, problems),
            None if !password.is_empty() => {
                problems.push(format!("{path}.username"), "username must be set when a password is given")
            }
            None => {}
        }
        let is_loopback = host.as_deref().is_some_and(is_loopback_host);
        if self.tls_mode() == TlsMode::None && self.username.is_some() && !is_loopback {
            problems.push(format!("{path}.tls"), "tls: none would send the password in clear text to a remote host");
        }
        if self.tls_mode() == TlsMode::None && (self.ca_file.is_some() || self.insecure_skip_verify) {
            problems.push(format!("{path}.tls"), "ca_file and insecure_skip_verify need tls: starttls or implicit");
        }
        if let Some(ca_file) = &self.ca_file {
            match std::fs::read(ca_file) {
                Ok(pem) => {
                    if Certificate::from_pem(&pem).is_err() {
                        problems.push(format!("{path}.ca_file"), format!("{ca_file:?} holds no PEM certificate"));
                    }
                }
                Err(err) => problems.push(format!("{path}.ca_file"), format!("cannot read {ca_file:?}: {err}")),
            }
        }
        if !(1..=MAX_POOL_SIZE).contains(&self.pool_size) {
            problems.push(format!("{path}.pool_size"), format!("pool_size must be between 1 and {MAX_POOL_SIZE}"));
        }
    }

    /// The relay host and port after applying defaults.
    pub fn host_and_port(&self) -> Result<(String, u16), String> {
        let text = self.smarthost.trim();
        if text.is_empty() {
            return Err("smarthost must be set".to_string());
        }
        let (host, port_in_host) =
            split_host_port(text).ok_or_else(|| format!("invalid smarthost {text:?}: expected host or host:port"))?;
        if let (Some(a), Some(b)) = (port_in_host, self.port) {
            if a != b {
                return Err(format!("smarthost names port {a} but port is {b}; set the port once"));
            }
        }
        Ok((host, self.port.or(port_in_host).unwrap_or(DEFAULT_PORT)))
    }

    /// The TLS mode after applying the port-based default.
    pub fn tls_mode(&self) -> TlsMode {
        match self.tls {
            Some(mode) => mode,
            None => match self.host_and_port() {
                Ok((_, IMPLICIT_TLS_PORT)) => TlsMode::Implicit,
                _ => TlsMode::Starttls,
            },
        }
    }
}

/// Splits `host`, `host:port`, `[v6]` or `[v6]:port`.
fn split_host_port(text: &str) -> Option<(String, Option<u16>)> {
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?.parse().ok()?),
        };
        return Some((host.to_string(), port));
    }
    match text.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && !host.is_empty() => {
            Some((host.to_string(), Some(port.parse().ok()?)))
        }
        Some(_) => None,
        None => Some((text.to_string(), None)),
    }
}

fn is_loopback_host(host: &str) -> bool {
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The built email channel: a shared pooled transport and the sender.
pub(crate) struct Channel {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Channel {
    pub(crate) fn new(config: &Config, build: &super::Build) -> Result<Self, Error> {
        let timeout = build.timeout;
        let invalid = |message: String| Error::Invalid { channel: ChannelKind::Email, message };
        let (host, port) = config.host_and_port().map_err(invalid)?;
        let from = config.from.parse::<Mailbox>().map_err(|err| invalid(format!("invalid sender address: {err}")))?;
        let tls = match config.tls_mode() {
            TlsMode::None => Tls::None,
            TlsMode::Starttls => Tls::Required(tls_parameters(config, &host)?),
            TlsMode::Implicit => Tls::Wrapper(tls_parameters(config, &host)?),
        };
        // `builder_dangerous` only means "no TLS preset"; TLS is set right below.
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .tls(tls)
            .timeout(Some(timeout))
            .pool_config(PoolConfig::new().max_size(config.pool_size.max(1)));
        if let Some(hello) = &config.hello {
            builder = builder.hello_name(ClientId::Domain(hello.clone()));
        }
        if let Some(username) = &config.username {
            let password = SecretSource::from_pair(&config.password_file, &config.password_env)
                .load()
                .map_err(|message| Error::Secret { channel: ChannelKind::Email, message })?;
            builder = builder.credentials(Credentials::new(username.clone(), password.expose().to_string()));
        }
        Ok(Channel { transport: builder.build(), from })
    }

    pub(crate) async fn deliver(&self, address: &str, message: &Outgoing) -> Result<Receipt, DeliveryError> {
        let to = address
            .parse::<Mailbox>()
            .map_err(|err| DeliveryError::permanent(Reason::InvalidAddress, format!("{address:?}: {err}")))?;
        let builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(message.subject.clone())
            .message_id(None)
            .user_agent(concat!("checkit/", env!("CARGO_PKG_VERSION")).to_string());
        let email = match &message.html {
            Some(html) => builder.multipart(MultiPart::alternative_plain_html(message.body.clone(), html.clone())),
            None => builder.header(ContentType::TEXT_PLAIN).body(message.body.clone()),
        }
        .map_err(|err| DeliveryError::permanent(Reason::InvalidMessage, err.to_string()))?;
        match self.transport.send(email).await {
            Ok(response) => Ok(Receipt {
                provider_response: format!("{} {}", response.code(), response.message().collect::<Vec<_>>().join(" "))
                    .trim_end()
                    .to_string(),
            }),
            Err(err) => Err(classify(&err)),
        }
    }
}

fn tls_parameters(config: &Config, host: &str) -> Result<TlsParameters, Error> {
    let tls_error = |message: String| Error::Invalid { channel: ChannelKind::Email, message };
    let mut builder = TlsParameters::builder(host.to_string());
    if let Some(ca_file) = &config.ca_file {
        let pem = std::fs::read(ca_file).map_err(|err| tls_error(format!("cannot read ca_file {ca_file:?}: {err}")))?;
        let certificate =
            Certificate::from_pem(&pem).map_err(|err| tls_error(format!("invalid ca_file {ca_file:?}: {err}")))?;
        builder = builder.add_root_certificate(certificate);
    }
    builder
        .dangerous_accept_invalid_certs(config.insecure_skip_verify)
        .build_rustls()
        .map_err(|err| tls_error(format!("cannot set up TLS: {err}")))
}

/// Maps a lettre error onto the delivery contract: 4xx replies and network
/// trouble are worth retrying, 5xx replies and local build errors are not.
fn classify(err: &smtp::Error) -> DeliveryError {
    let detail = error_chain(err);
    if err.is_transient() {
        DeliveryError::retryable(Reason::SmtpTransient, detail)
    } else if err.is_permanent() {
        DeliveryError::permanent(Reason::SmtpPermanent, detail)
    } else if err.is_timeout() {
        DeliveryError::retryable(Reason::Timeout, detail)
    } else if err.is_tls() || is_tls_failure(err) {
        DeliveryError::retryable(Reason::Tls, detail)
    } else if err.is_client() {
        DeliveryError::permanent(Reason::InvalidMessage, detail)
    } else {
        DeliveryError::retryable(Reason::Connect, detail)
    }
}

/// A contact's address on this channel: an email address (`Name <addr>` allowed).
pub type Address = String;

/// The block contacts use when `bridge.channels.email` is absent: none, it needs its block.
pub(crate) fn unconfigured() -> Option<Config> {
    None
}

/// The built-in templates of this channel.
pub(crate) const TEMPLATES: crate::bridge::render::Defaults =
    crate::bridge::render::Defaults { body: Some("checkit/full.txt"), html: Some("checkit/full.html"), json: false };

/// Checks a contact's address: an RFC 5322 address, optionally `Name <addr>`.
pub fn validate_address(address: &str) -> Result<(), String> {
    address
        .parse::<lettre::message::Mailbox>()
        .map(|_| ())
        .map_err(|err| format!("invalid email address {address:?}: {err}"))
}

/// Mail has no practical body limit: the body is kept whole.
pub fn truncate(text: &str) -> String {
    text.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(smarthost: &str, port: Option<u16>) -> Config {
        Config {
            smarthost: smarthost.into(),
            port,
            tls: None,
            from: "checkit <alerts@example.com>".into(),
            hello: None,
            username: None,
            password_file: None,
            password_env: None,
            ca_file: None,
            insecure_skip_verify: false,
            pool_size: 4,
        }
    }

    #[test]
    fn smarthost_and_port_combine_like_alertmanager() {
        let cases = [
            ("mail.example.com", None, Ok(("mail.example.com", 587))),
            ("mail.example.com:465", None, Ok(("mail.example.com", 465))),
            ("mail.example.com", Some(25), Ok(("mail.example.com", 25))),
            ("mail.example.com:25", Some(25), Ok(("mail.example.com", 25))),
            ("[::1]:2525", None, Ok(("::1", 2525))),
            ("[::1]", None, Ok(("::1", 587))),
        ];
        for (smarthost, port, expected) in cases {
            let got = config(smarthost, port).host_and_port();
            let expected: Result<(String, u16), String> = expected.map(|(host, port)| (host.to_string(), port));
            assert_eq!(got, expected, "{smarthost}");
        }
        for bad in ["", "mail:notaport", "mail.example.com:25:25", "::1"] {
            assert!(config(bad, None).host_and_port().is_err(), "{bad}");
        }
        assert!(config("mail:25", Some(587)).host_and_port().is_err());
    }

    #[test]
    fn tls_defaults_to_implicit_on_465_and_starttls_elsewhere() {
        assert_eq!(config("m:465", None).tls_mode(), TlsMode::Implicit);
        assert_eq!(config("m", Some(465)).tls_mode(), TlsMode::Implicit);
        assert_eq!(config("m:587", None).tls_mode(), TlsMode::Starttls);
        assert_eq!(config("m:25", None).tls_mode(), TlsMode::Starttls);
        let mut plain = config("m:25", None);
        plain.tls = Some(TlsMode::None);
        assert_eq!(plain.tls_mode(), TlsMode::None);
    }

    #[test]
    fn validation_reports_every_problem_with_its_path() {
        let mut bad = config("mail.example.com:x", None);
        bad.from = "nobody".into();
        bad.password_file = Some("/nonexistent/pw".into());
        bad.pool_size = 0;
        bad.ca_file = Some("/nonexistent/ca.pem".into());
        let mut problems = Problems::default();
        bad.validate("bridge.channels.email", &mut problems);
        let paths = problems.paths();
        assert_eq!(
            paths,
            [
                "bridge.channels.email.smarthost",
                "bridge.channels.email.from",
                "bridge.channels.email.username",
                "bridge.channels.email.ca_file",
                "bridge.channels.email.pool_size",
            ]
        );

        let mut clear = config("mail.example.com", Some(25));
        clear.tls = Some(TlsMode::None);
        clear.username = Some("u".into());
        clear.password_env = Some("PATH".into());
        let mut problems = Problems::default();
        clear.validate("e", &mut problems);
        assert_eq!(problems.0.len(), 1, "{:?}", problems.0);
        assert_eq!(problems.0[0].path, "e.tls");

        clear.smarthost = "127.0.0.1".into();
        let mut problems = Problems::default();
        clear.validate("e", &mut problems);
        assert!(problems.is_empty(), "{:?}", problems.0);
    }
}
