//! The `imap` prober: greeting, STARTTLS or implicit TLS (IMAPS), LOGIN, and
//! an optional read-only look at a mailbox with message-count bounds.
//!
//! async-imap speaks the protocol over the connection the prober opened
//! itself, so address selection, the target policy and the TLS metrics stay
//! the framework's.

use super::textproto::{self, Families, Opened, Ports, Stream};
use super::{Phase, ProbeCtx, ProbeError, ProbeResult, Reason};
use crate::config::Problems;
use async_imap::error::Error as ImapError;
use async_imap::imap_proto::{Response, Status};
use async_imap::{Client, Session};
use tokio_util::either::Either;

textproto::block! {
    /// The `imap:` block of a module.
    pub struct Config {
        /// Mailbox to open read-only (EXAMINE) after login, e.g. `INBOX`.
        pub mailbox: Option<String>,
        /// Fail when the mailbox holds fewer messages.
        pub min_messages: Option<u32>,
        /// Fail when the mailbox holds more messages.
        pub max_messages: Option<u32>,
    }
}

impl Config {
    /// Records every problem of this block.
    pub fn validate(&self, path: &str, problems: &mut Problems) {
        self.common.validate(path, true, problems);
        if self.mailbox.is_some() && self.common.username.is_none() {
            problems.push(format!("{path}.mailbox"), "mailbox needs username (it is opened after login)");
        }
        if let Some(mailbox) = &self.mailbox {
            if mailbox.is_empty() || !textproto::is_protocol_safe(mailbox) {
                problems.push(format!("{path}.mailbox"), "mailbox must be a non-empty name without line breaks");
            }
        }
        let missing = self.mailbox.is_none().then_some("mailbox");
        textproto::validate_message_bounds(path, (self.min_messages, self.max_messages), missing, problems);
    }
}

const PORTS: Ports = Ports { plain: 143, implicit: 993, starttls: None };

const FAMILIES: Families = textproto::families!("imap", "IMAP", "IMAP session");
const MESSAGES: &str = "probe_imap_mailbox_messages";
const MESSAGES_HELP: &str = "Number of messages in the examined mailbox";

/// Runs one probe.
pub async fn probe(ctx: &mut ProbeCtx<'_>, config: &Config) -> ProbeResult {
    let Opened { endpoint, password, server_name, stream } = FAMILIES.open(ctx, &config.common, PORTS).await?;
    let mut client = Client::new(stream);

    let greeting = greeting(ctx, &mut client).await?;
    FAMILIES.greeted(ctx, &config.common, &greeting)?;

    if FAMILIES.wants_starttls(ctx, endpoint.tls, "STARTTLS", true)? {
        ctx.log.debug("Sending command=\"STARTTLS\"");
        let result = FAMILIES.step(ctx, Phase::Tls, client.run_command_and_check_ok("STARTTLS", None)).await?;
        match result {
            Ok(()) => {
                let Either::Left(tcp) = client.into_inner() else {
                    return Err(ProbeError::new(Phase::Tls, Reason::UnexpectedResponse, "STARTTLS on TLS"));
                };
                let stream = FAMILIES.handshake(ctx, &config.common.tls_config, &server_name, tcp).await?;
                client = Client::new(Either::Right(stream));
            }
            Err(err) => {
                let (ImapError::No(text) | ImapError::Bad(text)) = &err else {
                    return Err(failure(Phase::Tls, err));
                };
                let reply = format!("{text:?}");
                FAMILIES.starttls_refused(ctx, endpoint.tls, "STARTTLS", &reply, || failure(Phase::Tls, err))?;
            }
        }
    }

    let Some(username) = &config.common.username else {
        logout_client(ctx, client).await;
        return Ok(());
    };
    let password = password.unwrap_or_default();
    ctx.log.debug(format!("Sending command=\"LOGIN {username:?} <secret>\""));
    let result = FAMILIES.step(ctx, Phase::Auth, client.login(username, password.expose())).await?;
    let mut session = result.map_err(|(err, _)| failure(Phase::Auth, err))?;
    ctx.log.info(format!("Authenticated user={username:?}"));
    if let Some(mailbox) = &config.mailbox {
        examine(ctx, &mut session, mailbox, config).await?;
    }
    let grace = textproto::QUIT_GRACE.min(ctx.remaining() / 2);
    let _ = tokio::time::timeout(grace, session.logout()).await;
    Ok(())
}

/// Reads the server greeting (`* OK …` or `* PREAUTH …`) and returns its line.
async fn greeting(ctx: &mut ProbeCtx<'_>, client: &mut Client<Stream>) -> Result<String, ProbeError> {
    let response = FAMILIES.step(ctx, Phase::Processing, client.read_response()).await?;
    let response = match response {
        Ok(Some(response)) => response,
        Ok(None) => {
            return Err(ProbeError::new(Phase::Processing, Reason::Io, "connection closed before the greeting"));
        }
        Err(err) => return Err(failure(Phase::Processing, ImapError::Io(err))),
    };
    let raw = String::from_utf8_lossy(response.borrow_owner());
    let line = raw.split("\r\n").next().unwrap_or_default().to_string();
    ctx.log.debug(format!("Received greeting line={line:?}"));
    match response.parsed() {
        Response::Data { status: Status::Ok | Status::PreAuth, .. } => Ok(line),
        _ => {
            Err(ProbeError::new(Phase::Processing, Reason::UnexpectedResponse, format!("unexpected greeting {line:?}")))
        }
    }
}

/// EXAMINE (SELECT without side effects: `\Recent` flags stay) and the bounds.
async fn examine(ctx: &mut ProbeCtx<'_>, session: &mut Session<Stream>, name: &str, config: &Config) -> ProbeResult {
    ctx.log.debug(format!("Sending command=\"EXAMINE {name:?}\""));
    let result = FAMILIES.step(ctx, Phase::Query, session.examine(name)).await?;
    let mailbox = result.map_err(|err| failure(Phase::Query, err))?;
    let messages = mailbox.exists;
    ctx.registry.set(MESSAGES, MESSAGES_HELP, f64::from(messages));
    ctx.log.info(format!("Mailbox examined mailbox={name:?} messages={messages}"));
    textproto::check_message_bounds(messages, (config.min_messages, config.max_messages))
}

/// LOGOUT without a session, briefly and never failing the probe.
async fn logout_client(ctx: &ProbeCtx<'_>, mut client: Client<Stream>) {
    let grace = textproto::QUIT_GRACE.min(ctx.remaining() / 2);
    let _ = tokio::time::timeout(grace, client.run_command_and_check_ok("LOGOUT", None)).await;
}

/// Maps an async-imap error to a bounded reason. A NO to LOGIN is a refused
/// login; a NO to EXAMINE is a failed check (no such mailbox).
fn failure(phase: Phase, err: ImapError) -> ProbeError {
    let reason = match &err {
        // async-imap reports unparseable server data as an `Other` I/O error.
        ImapError::Io(io) if io.kind() == std::io::ErrorKind::Other => Reason::UnexpectedResponse,
        ImapError::Io(io) => return ProbeError::io(phase, io),
        ImapError::ConnectionLost => Reason::Io,
        ImapError::No(_) if phase == Phase::Auth => Reason::AuthFailed,
        ImapError::No(_) if phase == Phase::Query => Reason::Query,
        ImapError::Validate(_) => Reason::Config,
        _ => Reason::UnexpectedResponse,
    };
    ProbeError::new(phase, reason, err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::parse_modules;

    #[test]
    fn failures_map_to_bounded_reasons() {
        let no = || ImapError::No("[AUTHENTICATIONFAILED] Authentication failed.".into());
        assert_eq!(failure(Phase::Auth, no()).reason, Reason::AuthFailed);
        assert_eq!(failure(Phase::Query, no()).reason, Reason::Query);
        assert_eq!(failure(Phase::Tls, ImapError::Bad("unknown command".into())).reason, Reason::UnexpectedResponse);
        let garbage = ImapError::Io(std::io::Error::other("Error during parsing"));
        assert_eq!(failure(Phase::Processing, garbage).reason, Reason::UnexpectedResponse);
        let eof = ImapError::Io(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "eof"));
        assert_eq!(failure(Phase::Processing, eof).reason, Reason::Io);
    }

    #[test]
    fn config_problems_name_their_keys() {
        let err = parse_modules(
            "modules:\n  m:\n    prober: imap\n    imap:\n      mailbox: INBOX\n      min_messages: 3\n      \
             max_messages: 1\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("modules.m.imap.mailbox: mailbox needs username"), "{err}");
        assert!(err.contains("modules.m.imap.min_messages: min_messages must not be greater"), "{err}");
    }
}
