//! The `smtp` prober: greeting, EHLO, STARTTLS or implicit TLS, optional
//! AUTH, and an optional envelope check (MAIL FROM / RCPT TO, then RSET).
//!
//! The dialogue is written by hand rather than with lettre: lettre's
//! transport hides the individual replies (no per-phase timing, no reply
//! codes) and cannot stop after RCPT TO without sending DATA. A probe never
//! sends DATA, so no message is ever delivered.

use super::textproto::{self, Families, Lines, Opened, Ports};
use super::{Phase, ProbeCtx, ProbeError, ProbeResult, Reason};
use crate::config::Problems;
use crate::config::types::Secret;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use std::io;

textproto::block! {
    /// The `smtp:` block of a module.
    pub struct Config {
        /// The EHLO name; default: the address literal of the local end, e.g. `[192.0.2.1]`.
        pub ehlo: Option<String>,
        /// `PLAIN` or `LOGIN`; unset means the first of these the server offers.
        pub auth_mechanism: Option<AuthMechanism>,
        /// Envelope sender for the acceptance check (`""` is the null sender `<>`).
        pub mail_from: Option<String>,
        /// Recipient that must be accepted; setting it runs MAIL FROM, RCPT TO, RSET.
        pub rcpt_to: Option<String>,
    }
}

/// The SASL mechanisms the prober speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthMechanism {
    /// RFC 4616, one round trip.
    #[serde(rename = "PLAIN")]
    Plain,
    /// The de-facto `LOGIN` mechanism (user and password prompts).
    #[serde(rename = "LOGIN")]
    Login,
}

impl Config {
    /// Records every problem of this block.
    pub fn validate(&self, path: &str, problems: &mut Problems) {
        self.common.validate(path, true, problems);
        if self.auth_mechanism.is_some() && self.common.username.is_none() {
            problems.push(format!("{path}.auth_mechanism"), "auth_mechanism needs username");
        }
        if let Some(ehlo) = &self.ehlo {
            if ehlo.is_empty() || ehlo.contains(char::is_whitespace) || !textproto::is_protocol_safe(ehlo) {
                problems.push(format!("{path}.ehlo"), "ehlo must be one word (a host name or address literal)");
            }
        }
        for (key, address) in [("mail_from", &self.mail_from), ("rcpt_to", &self.rcpt_to)] {
            if let Some(address) = address {
                if address.contains(['<', '>', ' ', '\t']) || !textproto::is_protocol_safe(address) {
                    problems.push(
                        format!("{path}.{key}"),
                        format!("{key} must be a bare address, without angle brackets or spaces"),
                    );
                }
            }
        }
        if self.rcpt_to.as_deref() == Some("") {
            problems.push(format!("{path}.rcpt_to"), "rcpt_to must not be empty");
        }
    }
}

const PORTS: Ports = Ports { plain: 25, implicit: 465, starttls: Some(587) };

const FAMILIES: Families = textproto::families!("smtp", "SMTP", "SMTP session");
const STATUS: &str = "probe_smtp_status_code";
const STATUS_HELP: &str = "Returns the last SMTP reply code received, 0 when there was none";

/// Runs one probe.
pub async fn probe(ctx: &mut ProbeCtx<'_>, config: &Config) -> ProbeResult {
    ctx.registry.set(STATUS, STATUS_HELP, 0.0);
    let Opened { endpoint, password, server_name, stream } = FAMILIES.open(ctx, &config.common, PORTS).await?;
    let mut lines = Lines::new(stream);

    let greeting = exchange(ctx, &mut lines, Phase::Processing, None).await?;
    if greeting.code != 220 {
        return Err(unexpected(Phase::Processing, "greeting", &greeting));
    }
    let greeting_text = greeting.lines.join("\n");
    FAMILIES.greeted(ctx, &config.common, &greeting_text)?;

    let ehlo = config.ehlo.clone().unwrap_or_else(|| address_literal(lines.local_addr()));
    let mut capabilities = hello(ctx, &mut lines, &ehlo).await?;
    if FAMILIES.wants_starttls(ctx, endpoint.tls, "STARTTLS", capabilities.has("STARTTLS"))? {
        let reply = exchange(ctx, &mut lines, Phase::Tls, Some(("STARTTLS", "STARTTLS"))).await?;
        let answer = ("STARTTLS", &*format!("{:?}", reply.lines), reply.code == 220);
        let refused = || unexpected(Phase::Tls, "STARTTLS", &reply);
        let secured;
        (lines, secured) =
            FAMILIES.starttls_answered(ctx, &config.common, &server_name, endpoint.tls, lines, answer, refused).await?;
        if secured {
            capabilities = hello(ctx, &mut lines, &ehlo).await?;
        }
    }

    if let Some(username) = &config.common.username {
        let password = password.unwrap_or_default();
        authenticate(ctx, &mut lines, &capabilities, config.auth_mechanism, username, &password).await?;
    }
    if config.rcpt_to.is_some() || config.mail_from.is_some() {
        envelope(ctx, &mut lines, config.mail_from.as_deref().unwrap_or(""), config.rcpt_to.as_deref()).await?;
    }
    lines.quit(ctx, "QUIT").await;
    Ok(())
}

/// One SMTP reply: the code and the text of each line.
#[derive(Debug, Clone, PartialEq)]
struct Reply {
    code: u16,
    /// Each line as received, code included (`250-PIPELINING`).
    lines: Vec<String>,
}

impl Reply {
    /// The text after the code of each line.
    fn texts(&self) -> impl Iterator<Item = &str> {
        self.lines.iter().map(|line| line.get(4..).unwrap_or(""))
    }
}

/// The longest reply accepted, in lines (EHLO replies are a dozen lines).
const MAX_REPLY_LINES: usize = 512;

enum ReplyError {
    Io(io::Error),
    Malformed(String),
}

impl From<io::Error> for ReplyError {
    fn from(err: io::Error) -> Self {
        ReplyError::Io(err)
    }
}

/// Reads a (possibly multi-line) reply: `250-…` lines until `250 …`.
async fn read_reply(lines: &mut Lines) -> Result<Reply, ReplyError> {
    let mut reply = Reply { code: 0, lines: Vec::new() };
    loop {
        let line = lines.read_line().await.map_err(ReplyError::Io)?;
        let code = line.get(..3).and_then(|digits| {
            if digits.bytes().all(|b| b.is_ascii_digit()) { digits.parse::<u16>().ok() } else { None }
        });
        let separator = line.as_bytes().get(3).copied();
        let (Some(code), Some(b' ' | b'-') | None) = (code, separator) else {
            return Err(ReplyError::Malformed(line));
        };
        if !(200..600).contains(&code) || (reply.code != 0 && code != reply.code) {
            return Err(ReplyError::Malformed(line));
        }
        reply.code = code;
        reply.lines.push(line);
        if separator != Some(b'-') {
            return Ok(reply);
        }
        if reply.lines.len() >= MAX_REPLY_LINES {
            return Err(ReplyError::Malformed(format!("reply longer than {MAX_REPLY_LINES} lines")));
        }
    }
}

/// Sends a command (if any) and reads the reply (see [`Families::exchange`]).
async fn exchange(
    ctx: &mut ProbeCtx<'_>,
    lines: &mut Lines,
    phase: Phase,
    command: Option<(&str, &str)>,
) -> Result<Reply, ProbeError> {
    match FAMILIES.exchange(ctx, lines, phase, command, read_reply).await? {
        Ok(reply) => {
            ctx.registry.set(STATUS, STATUS_HELP, f64::from(reply.code));
            ctx.log.debug(format!("Received reply lines={:?}", reply.lines));
            Ok(reply)
        }
        Err(ReplyError::Io(err)) => {
            ctx.log.error(format!("Error reading reply err={err}"));
            Err(ProbeError::io(phase, &err))
        }
        Err(ReplyError::Malformed(line)) => {
            ctx.log.error(format!("Malformed reply line={line:?}"));
            Err(ProbeError::new(phase, Reason::UnexpectedResponse, format!("malformed SMTP reply {line:?}")))
        }
    }
}

fn unexpected(phase: Phase, what: &str, reply: &Reply) -> ProbeError {
    ProbeError::new(phase, Reason::UnexpectedResponse, format!("unexpected reply to {what}: {:?}", reply.lines))
}

/// The EHLO keywords (`STARTTLS`, `AUTH PLAIN LOGIN`, …), upper-cased.
#[derive(Debug, Default)]
struct Capabilities(Vec<String>);

impl Capabilities {
    fn has(&self, keyword: &str) -> bool {
        self.0.iter().any(|line| line.split_whitespace().next() == Some(keyword))
    }

    /// Mechanisms from `AUTH PLAIN LOGIN` (and the old `AUTH=PLAIN` form).
    fn auth_mechanisms(&self) -> Vec<&str> {
        self.0
            .iter()
            .filter_map(|line| line.strip_prefix("AUTH ").or_else(|| line.strip_prefix("AUTH=")))
            .flat_map(str::split_whitespace)
            .collect()
    }
}

/// EHLO, falling back to HELO for servers that do not know EHLO.
async fn hello(ctx: &mut ProbeCtx<'_>, lines: &mut Lines, name: &str) -> Result<Capabilities, ProbeError> {
    let command = format!("EHLO {name}");
    let reply = exchange(ctx, lines, Phase::Processing, Some((&command, &command))).await?;
    if reply.code == 250 {
        return Ok(Capabilities(reply.texts().skip(1).map(str::to_ascii_uppercase).collect()));
    }
    if !matches!(reply.code, 500 | 502) {
        return Err(unexpected(Phase::Processing, "EHLO", &reply));
    }
    let command = format!("HELO {name}");
    let reply = exchange(ctx, lines, Phase::Processing, Some((&command, &command))).await?;
    if reply.code != 250 {
        return Err(unexpected(Phase::Processing, "HELO", &reply));
    }
    Ok(Capabilities::default())
}

async fn authenticate(
    ctx: &mut ProbeCtx<'_>,
    lines: &mut Lines,
    capabilities: &Capabilities,
    configured: Option<AuthMechanism>,
    username: &str,
    password: &Secret,
) -> ProbeResult {
    let offered = capabilities.auth_mechanisms();
    let mechanism = match configured {
        Some(mechanism) => mechanism,
        None if offered.contains(&"PLAIN") => AuthMechanism::Plain,
        None if offered.contains(&"LOGIN") => AuthMechanism::Login,
        None => {
            return Err(ProbeError::new(
                Phase::Auth,
                Reason::UnexpectedResponse,
                format!("the server offers no AUTH mechanism the prober speaks (PLAIN, LOGIN); offered: {offered:?}"),
            ));
        }
    };
    let reply = match mechanism {
        AuthMechanism::Plain => {
            let token = BASE64.encode(format!("\0{username}\0{}", password.expose()));
            let command = format!("AUTH PLAIN {token}");
            exchange(ctx, lines, Phase::Auth, Some((&command, "AUTH PLAIN <secret>"))).await?
        }
        AuthMechanism::Login => {
            let reply = exchange(ctx, lines, Phase::Auth, Some(("AUTH LOGIN", "AUTH LOGIN"))).await?;
            if reply.code != 334 {
                return Err(unexpected(Phase::Auth, "AUTH LOGIN", &reply));
            }
            let user = BASE64.encode(username);
            let reply = exchange(ctx, lines, Phase::Auth, Some((&user, &user))).await?;
            if reply.code != 334 {
                return Err(auth_failure(&reply));
            }
            let secret = BASE64.encode(password.expose());
            exchange(ctx, lines, Phase::Auth, Some((&secret, "<secret>"))).await?
        }
    };
    if reply.code != 235 {
        return Err(auth_failure(&reply));
    }
    ctx.log.info(format!("Authenticated user={username:?}"));
    Ok(())
}

fn auth_failure(reply: &Reply) -> ProbeError {
    // 535: "authentication credentials invalid" (RFC 4954); anything else is
    // the server refusing the exchange itself.
    if reply.code == 535 {
        ProbeError::new(Phase::Auth, Reason::AuthFailed, format!("authentication failed: {:?}", reply.lines))
    } else {
        unexpected(Phase::Auth, "AUTH", reply)
    }
}

/// MAIL FROM and RCPT TO must be accepted; RSET then drops the transaction,
/// so nothing is ever sent.
async fn envelope(ctx: &mut ProbeCtx<'_>, lines: &mut Lines, mail_from: &str, rcpt_to: Option<&str>) -> ProbeResult {
    let command = format!("MAIL FROM:<{mail_from}>");
    let reply = exchange(ctx, lines, Phase::Query, Some((&command, &command))).await?;
    if reply.code != 250 {
        return Err(rejected("MAIL FROM", &reply));
    }
    if let Some(rcpt_to) = rcpt_to {
        let command = format!("RCPT TO:<{rcpt_to}>");
        let reply = exchange(ctx, lines, Phase::Query, Some((&command, &command))).await?;
        if !matches!(reply.code, 250 | 251) {
            return Err(rejected("RCPT TO", &reply));
        }
    }
    let reply = exchange(ctx, lines, Phase::Query, Some(("RSET", "RSET"))).await?;
    if reply.code != 250 {
        return Err(unexpected(Phase::Query, "RSET", &reply));
    }
    Ok(())
}

/// A well-formed refusal of the configured envelope: the check failed.
fn rejected(what: &str, reply: &Reply) -> ProbeError {
    ProbeError::new(Phase::Query, Reason::Query, format!("{what} rejected: {:?}", reply.lines))
}

/// RFC 5321 address literal of the local end: `[192.0.2.1]`, `[IPv6:2001:db8::1]`.
fn address_literal(local: Option<std::net::SocketAddr>) -> String {
    match local.map(|address| address.ip()) {
        Some(std::net::IpAddr::V4(ip)) => format!("[{ip}]"),
        Some(std::net::IpAddr::V6(ip)) => match ip.to_ipv4_mapped() {
            Some(v4) => format!("[{v4}]"),
            None => format!("[IPv6:{ip}]"),
        },
        None => "localhost".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::parse_modules;

    #[test]
    fn address_literals_follow_rfc_5321() {
        assert_eq!(address_literal("127.0.0.1:25".parse().ok()), "[127.0.0.1]");
        assert_eq!(address_literal("[::1]:25".parse().ok()), "[IPv6:::1]");
    }

    #[test]
    fn capabilities_list_auth_mechanisms() {
        let caps = Capabilities(vec!["PIPELINING".into(), "AUTH PLAIN LOGIN".into(), "STARTTLS".into()]);
        assert!(caps.has("STARTTLS"));
        assert!(!caps.has("AUTH=PLAIN"));
        assert_eq!(caps.auth_mechanisms(), ["PLAIN", "LOGIN"]);
        assert_eq!(Capabilities(vec!["AUTH=LOGIN".into()]).auth_mechanisms(), ["LOGIN"]);
    }

    #[test]
    fn config_problems_name_their_keys() {
        let err = parse_modules(
            "modules:\n  m:\n    prober: smtp\n    smtp:\n      ehlo: \"two words\"\n      rcpt_to: \"<a@b>\"\n      \
             auth_mechanism: LOGIN\n      tls: starttls\n",
        )
        .unwrap_err()
        .to_string();
        for key in ["modules.m.smtp.ehlo", "modules.m.smtp.rcpt_to", "modules.m.smtp.auth_mechanism"] {
            assert!(err.contains(key), "{key} missing in {err}");
        }
        let err = parse_modules("modules:\n  m:\n    prober: smtp\n    smtp:\n      tls: sometimes\n").unwrap_err();
        assert!(err.to_string().contains("modules.m.smtp"), "{err}");
    }

    #[test]
    fn defaults_survive_a_round_trip() {
        let modules = parse_modules("modules:\n  m:\n    prober: smtp\n").unwrap();
        let smtp = modules["m"].smtp.clone().unwrap();
        assert_eq!(smtp, Config::default());
        assert!(smtp.common.ip_protocol_fallback);
        assert_eq!(smtp.common.preferred_ip_protocol, crate::probe::resolve::IpProtocol::Ip6);
    }
}
