//! The `pop3` prober: greeting, STLS or implicit TLS (POP3S), USER/PASS and
//! STAT with optional message-count bounds.
//!
//! Written by hand: POP3 is a handful of one-line commands, and no
//! maintained async Rust client exposes the per-step replies a probe needs.

use super::resolve::IpProtocol;
use super::textproto::{self, Families, Lines, Ports, TlsMode};
use super::tls::TlsConfig;
use super::{Phase, ProbeCtx, ProbeError, ProbeResult, Reason};
use crate::config::Problems;
use crate::config::types::Regex;
use serde::{Deserialize, Serialize};
use tokio_util::either::Either;

/// The `pop3:` block of a module.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address family to prefer (blackbox's default: `ip6`).
    pub preferred_ip_protocol: IpProtocol,
    /// Fall back to the other family when the preferred one has no address.
    pub ip_protocol_fallback: bool,
    /// `none`, `starttls` (STLS), `opportunistic` or `implicit`; unset means
    /// implicit on port 995 and plain elsewhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsMode>,
    /// TLS settings for implicit TLS and STLS.
    pub tls_config: TlsConfig,
    /// Must match the greeting line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub banner_regexp: Option<Regex>,
    /// Log in as this user (USER/PASS) and run STAT; unset means no login.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// File holding the password, read at every probe.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<String>,
    /// Environment variable holding the password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// Fail when STAT reports fewer messages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_messages: Option<u64>,
    /// Fail when STAT reports more messages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_messages: Option<u64>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            preferred_ip_protocol: IpProtocol::default(),
            ip_protocol_fallback: true,
            tls: None,
            tls_config: TlsConfig::default(),
            banner_regexp: None,
            username: None,
            password_file: None,
            password_env: None,
            min_messages: None,
            max_messages: None,
        }
    }
}

impl Config {
    /// Records every problem of this block.
    pub fn validate(&self, path: &str, problems: &mut Problems) {
        self.tls_config.validate(&format!("{path}.tls_config"), problems);
        textproto::validate_credentials(
            path,
            self.username.as_deref(),
            self.password_file.as_deref(),
            self.password_env.as_deref(),
            true,
            problems,
        );
        for (key, set) in [("min_messages", self.min_messages.is_some()), ("max_messages", self.max_messages.is_some())]
        {
            if set && self.username.is_none() {
                problems.push(format!("{path}.{key}"), format!("{key} needs username (STAT runs after login)"));
            }
        }
        if let (Some(min), Some(max)) = (self.min_messages, self.max_messages) {
            if min > max {
                problems.push(format!("{path}.min_messages"), "min_messages must not be greater than max_messages");
            }
        }
    }
}

const PORTS: Ports = Ports { plain: 110, implicit: 995, starttls: None };

const FAMILIES: Families = Families {
    duration: "probe_pop3_duration_seconds",
    duration_help: "Duration of the POP3 probe by phase",
    ssl: "probe_pop3_ssl",
    ssl_help: "Indicates if TLS was used for the POP3 session",
};
const SERVER_INFO: &str = "probe_pop3_server_info";
const SERVER_INFO_HELP: &str = "Server software recognised in the greeting, from a fixed list";
const MESSAGES: &str = "probe_pop3_messages";
const MESSAGES_HELP: &str = "Number of messages in the maildrop, as reported by STAT";
const SIZE: &str = "probe_pop3_maildrop_size_bytes";
const SIZE_HELP: &str = "Size of the maildrop in bytes, as reported by STAT";

/// Runs one probe.
pub async fn probe(ctx: &mut ProbeCtx<'_>, config: &Config) -> ProbeResult {
    FAMILIES.seed(ctx);
    let endpoint = textproto::endpoint(ctx.target, config.tls, PORTS)?;
    let password = super::credentials::password(config.password_file.as_deref(), config.password_env.as_deref())?;
    let tcp = FAMILIES.connect(ctx, &endpoint, config.preferred_ip_protocol, config.ip_protocol_fallback).await?;
    let server_name = textproto::server_name(ctx, &endpoint).to_string();
    let mut lines = if endpoint.tls == TlsMode::Implicit {
        Lines::new(Either::Right(FAMILIES.handshake(ctx, &config.tls_config, &server_name, tcp).await?))
    } else {
        Lines::new(Either::Left(tcp))
    };

    let greeting = match exchange(ctx, &mut lines, Phase::Processing, None).await? {
        Answer::Ok(line) => line,
        Answer::Err(line) => return Err(unexpected(Phase::Processing, "greeting", &line)),
    };
    if let Some(software) = textproto::software(&greeting) {
        ctx.registry.set_with(SERVER_INFO, SERVER_INFO_HELP, &[("software", software)], 1.0);
    }
    textproto::check_banner(ctx, config.banner_regexp.as_ref(), &greeting)?;

    if matches!(endpoint.tls, TlsMode::Starttls | TlsMode::Opportunistic) {
        let required = endpoint.tls == TlsMode::Starttls;
        // Opportunistic TLS asks first (CAPA, RFC 2449) so that a server
        // without STLS is not sent a command it does not know.
        let offered = required || capabilities(ctx, &mut lines).await?.iter().any(|line| line == "STLS");
        if !offered {
            ctx.log.info("The server does not offer STLS; continuing without TLS");
        } else {
            match exchange(ctx, &mut lines, Phase::Tls, Some(("STLS", "STLS"))).await? {
                Answer::Ok(_) => {
                    let tcp = lines.into_plain()?;
                    let stream = FAMILIES.handshake(ctx, &config.tls_config, &server_name, tcp).await?;
                    lines = Lines::new(Either::Right(stream));
                }
                Answer::Err(line) if required => return Err(unexpected(Phase::Tls, "STLS", &line)),
                Answer::Err(line) => ctx.log.info(format!("The server refused STLS reply={line:?}; continuing")),
            }
        }
    }

    if let Some(username) = &config.username {
        let command = format!("USER {username}");
        if let Answer::Err(line) = exchange(ctx, &mut lines, Phase::Auth, Some((&command, &command))).await? {
            return Err(auth_failed(&line));
        }
        let password = password.unwrap_or_default();
        let command = format!("PASS {}", password.expose());
        if let Answer::Err(line) = exchange(ctx, &mut lines, Phase::Auth, Some((&command, "PASS <secret>"))).await? {
            return Err(auth_failed(&line));
        }
        ctx.log.info(format!("Authenticated user={username:?}"));
        stat(ctx, &mut lines, config).await?;
    }
    lines.quit(ctx, "QUIT").await;
    Ok(())
}

/// A status line: `+OK …` or `-ERR …`.
enum Answer {
    Ok(String),
    Err(String),
}

/// Sends a command (if any) and reads the status line. `command` is
/// `(sent, logged)` so that the password never reaches the log.
async fn exchange(
    ctx: &mut ProbeCtx<'_>,
    lines: &mut Lines,
    phase: Phase,
    command: Option<(&str, &str)>,
) -> Result<Answer, ProbeError> {
    if let Some((_, logged)) = command {
        ctx.log.debug(format!("Sending command={logged:?}"));
    }
    let result = FAMILIES
        .step(ctx, phase, async {
            if let Some((sent, _)) = command {
                lines.write_line(sent).await?;
            }
            lines.read_line().await
        })
        .await?;
    let line = result.map_err(|err| {
        ctx.log.error(format!("Error reading reply err={err}"));
        ProbeError::io(phase, &err)
    })?;
    ctx.log.debug(format!("Received reply line={line:?}"));
    if line.starts_with("+OK") {
        Ok(Answer::Ok(line))
    } else if line.starts_with("-ERR") {
        Ok(Answer::Err(line))
    } else {
        Err(ProbeError::new(phase, Reason::UnexpectedResponse, format!("not a POP3 status line: {line:?}")))
    }
}

/// The CAPA list (empty when the server does not know CAPA).
async fn capabilities(ctx: &mut ProbeCtx<'_>, lines: &mut Lines) -> Result<Vec<String>, ProbeError> {
    if let Answer::Err(_) = exchange(ctx, lines, Phase::Tls, Some(("CAPA", "CAPA"))).await? {
        return Ok(Vec::new());
    }
    let result = FAMILIES.step(ctx, Phase::Tls, read_multiline(lines)).await?;
    result.map_err(|err| ProbeError::io(Phase::Tls, &err))
}

/// The longest multi-line answer accepted, in lines.
const MAX_LINES: usize = 512;

/// Reads a dot-terminated multi-line body (RFC 1939 byte-stuffing undone).
async fn read_multiline(lines: &mut Lines) -> std::io::Result<Vec<String>> {
    let mut body = Vec::new();
    loop {
        let line = lines.read_line().await?;
        if line == "." {
            return Ok(body);
        }
        if body.len() >= MAX_LINES {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "multi-line reply too long"));
        }
        body.push(line.strip_prefix('.').map(str::to_string).unwrap_or(line));
    }
}

/// STAT: `+OK <messages> <octets>`, checked against the bounds.
async fn stat(ctx: &mut ProbeCtx<'_>, lines: &mut Lines, config: &Config) -> ProbeResult {
    let line = match exchange(ctx, lines, Phase::Query, Some(("STAT", "STAT"))).await? {
        Answer::Ok(line) => line,
        Answer::Err(line) => {
            return Err(ProbeError::new(Phase::Query, Reason::Query, format!("STAT failed: {line:?}")));
        }
    };
    let (messages, size) = parse_stat(&line).ok_or_else(|| {
        ProbeError::new(Phase::Query, Reason::UnexpectedResponse, format!("malformed STAT reply {line:?}"))
    })?;
    ctx.registry.set(MESSAGES, MESSAGES_HELP, messages as f64);
    ctx.registry.set(SIZE, SIZE_HELP, size as f64);
    ctx.log.info(format!("Maildrop messages={messages} size_bytes={size}"));
    if let Some(min) = config.min_messages.filter(|min| messages < *min) {
        return Err(ProbeError::new(Phase::Query, Reason::Query, format!("{messages} messages, fewer than {min}")));
    }
    if let Some(max) = config.max_messages.filter(|max| messages > *max) {
        return Err(ProbeError::new(Phase::Query, Reason::Query, format!("{messages} messages, more than {max}")));
    }
    Ok(())
}

fn parse_stat(line: &str) -> Option<(u64, u64)> {
    let mut words = line.strip_prefix("+OK")?.split_whitespace();
    Some((words.next()?.parse().ok()?, words.next()?.parse().ok()?))
}

fn unexpected(phase: Phase, what: &str, line: &str) -> ProbeError {
    ProbeError::new(phase, Reason::UnexpectedResponse, format!("unexpected reply to {what}: {line:?}"))
}

fn auth_failed(line: &str) -> ProbeError {
    ProbeError::new(Phase::Auth, Reason::AuthFailed, format!("login refused: {line:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config as Root;

    #[test]
    fn stat_replies_parse() {
        assert_eq!(parse_stat("+OK 3 1024"), Some((3, 1024)));
        assert_eq!(parse_stat("+OK 0 0 extra"), Some((0, 0)));
        assert_eq!(parse_stat("+OK"), None);
        assert_eq!(parse_stat("-ERR 1 2"), None);
    }

    #[test]
    fn config_problems_name_their_keys() {
        let err = Root::parse(
            "modules:\n  m:\n    prober: pop3\n    pop3:\n      min_messages: 5\n      max_messages: 2\n      \
             password_env: PW\n",
        )
        .unwrap_err()
        .to_string();
        for key in ["modules.m.pop3.min_messages", "modules.m.pop3.max_messages", "modules.m.pop3.username"] {
            assert!(err.contains(key), "{key} missing in {err}");
        }
        assert!(err.contains("min_messages must not be greater than max_messages"), "{err}");
    }
}
