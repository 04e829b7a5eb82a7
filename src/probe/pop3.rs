//! The `pop3` prober: greeting, STLS or implicit TLS (POP3S), USER/PASS and
//! STAT with optional message-count bounds.
//!
//! Written by hand: POP3 is a handful of one-line commands, and no
//! maintained async Rust client exposes the per-step replies a probe needs.

use super::textproto::{self, Families, Lines, Opened, Ports, TlsMode};
use super::{Phase, ProbeCtx, ProbeError, ProbeResult, Reason};
use crate::config::Problems;

textproto::block! {
    /// The `pop3:` block of a module.
    pub struct Config {
        /// Fail when STAT reports fewer messages.
        pub min_messages: Option<u64>,
        /// Fail when STAT reports more messages.
        pub max_messages: Option<u64>,
    }
}

impl Config {
    /// Records every problem of this block.
    pub fn validate(&self, path: &str, problems: &mut Problems) {
        self.common.validate(path, true, problems);
        let missing = self.common.username.is_none().then_some("username (STAT runs after login)");
        textproto::validate_message_bounds(path, (self.min_messages, self.max_messages), missing, problems);
    }
}

const PORTS: Ports = Ports { plain: 110, implicit: 995, starttls: None };

const FAMILIES: Families = textproto::families!("pop3", "POP3", "POP3 session");
const MESSAGES: &str = "probe_pop3_messages";
const MESSAGES_HELP: &str = "Number of messages in the maildrop, as reported by STAT";
const SIZE: &str = "probe_pop3_maildrop_size_bytes";
const SIZE_HELP: &str = "Size of the maildrop in bytes, as reported by STAT";

/// Runs one probe.
pub async fn probe(ctx: &mut ProbeCtx<'_>, config: &Config) -> ProbeResult {
    let Opened { endpoint, password, server_name, stream } = FAMILIES.open(ctx, &config.common, PORTS).await?;
    let mut lines = Lines::new(stream);

    let greeting = match exchange(ctx, &mut lines, Phase::Processing, None).await? {
        Answer::Ok(line) => line,
        Answer::Err(line) => return Err(unexpected(Phase::Processing, "greeting", &line)),
    };
    FAMILIES.greeted(ctx, &config.common, &greeting)?;

    // Opportunistic TLS asks first (CAPA, RFC 2449) so that a server
    // without STLS is not sent a command it does not know.
    let offered = endpoint.tls != TlsMode::Opportunistic
        || capabilities(ctx, &mut lines).await?.iter().any(|line| line == "STLS");
    if FAMILIES.wants_starttls(ctx, endpoint.tls, "STLS", offered)? {
        let (accepted, line) = match exchange(ctx, &mut lines, Phase::Tls, Some(("STLS", "STLS"))).await? {
            Answer::Ok(line) => (true, line),
            Answer::Err(line) => (false, line),
        };
        let refused = || unexpected(Phase::Tls, "STLS", &line);
        let answer = ("STLS", &*format!("{line:?}"), accepted);
        (lines, _) =
            FAMILIES.starttls_answered(ctx, &config.common, &server_name, endpoint.tls, lines, answer, refused).await?;
    }

    if let Some(username) = &config.common.username {
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

/// Sends a command (if any) and reads the status line (see
/// [`Families::exchange`]).
async fn exchange(
    ctx: &mut ProbeCtx<'_>,
    lines: &mut Lines,
    phase: Phase,
    command: Option<(&str, &str)>,
) -> Result<Answer, ProbeError> {
    let result = FAMILIES.exchange(ctx, lines, phase, command, Lines::read_line).await?;
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
    textproto::check_message_bounds(messages, (config.min_messages, config.max_messages))
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
    use crate::probe::parse_modules;

    #[test]
    fn stat_replies_parse() {
        assert_eq!(parse_stat("+OK 3 1024"), Some((3, 1024)));
        assert_eq!(parse_stat("+OK 0 0 extra"), Some((0, 0)));
        assert_eq!(parse_stat("+OK"), None);
        assert_eq!(parse_stat("-ERR 1 2"), None);
    }

    #[test]
    fn config_problems_name_their_keys() {
        let err = parse_modules(
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
