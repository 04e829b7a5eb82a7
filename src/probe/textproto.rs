//! Shared pieces of the line-based probers (ftp, imap, smtp, pop3): the TLS
//! mode and default ports, connecting to the resolved address, per-phase
//! timings, passwords from a file or the environment, and a bounded line
//! reader that can switch to TLS in the middle of a session (STARTTLS).

use super::resolve::{self, IpProtocol};
use super::session::PhaseFamilies;
use super::tls::{self, TlsConfig};
use super::{Phase, ProbeCtx, ProbeError, ProbeResult, Reason};
use crate::config::Problems;
use crate::config::types::{Regex, Secret};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_util::either::Either;

/// How a session is encrypted (`tls:` of the ftp, imap, smtp and pop3 blocks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain text throughout.
    None,
    /// Upgrade with the protocol's STARTTLS command (SMTP `STARTTLS`, IMAP
    /// `STARTTLS`, POP3 `STLS`, FTP `AUTH TLS`); fail if the server refuses.
    Starttls,
    /// Upgrade when the server offers it, otherwise carry on in plain text.
    Opportunistic,
    /// TLS from the first byte (SMTPS, IMAPS, POP3S, implicit FTPS).
    Implicit,
}

/// A protocol's well-known ports.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// Plain or STARTTLS (21, 143, 25, 110).
    pub plain: u16,
    /// Implicit TLS (990, 993, 465, 995).
    pub implicit: u16,
    /// A port where STARTTLS is the norm (587 for SMTP submission).
    pub starttls: Option<u16>,
}

/// The keys every line-based prober's block shares, flattened into each
/// block (`ftp:`, `imap:`, `smtp:`, `pop3:`) beside its own keys.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Common {
    /// Address family to prefer (blackbox's default: `ip6`).
    pub preferred_ip_protocol: IpProtocol,
    /// Fall back to the other family when the preferred one has no address.
    pub ip_protocol_fallback: bool,
    /// `none`, `starttls`, `opportunistic` or `implicit`; unset means implicit
    /// on the protocol's implicit-TLS port, STARTTLS on a STARTTLS port (SMTP
    /// submission, 587) and plain elsewhere.
    pub tls: Option<TlsMode>,
    /// TLS settings for implicit TLS and STARTTLS.
    pub tls_config: TlsConfig,
    /// Must match the greeting (all lines, joined by newlines).
    pub banner_regexp: Option<Regex>,
    /// Log in as this user; unset means no login.
    pub username: Option<String>,
    /// File holding the password, read at every probe.
    pub password_file: Option<String>,
    /// Environment variable holding the password.
    pub password_env: Option<String>,
}

impl Default for Common {
    fn default() -> Self {
        Common {
            preferred_ip_protocol: IpProtocol::default(),
            ip_protocol_fallback: true,
            tls: None,
            tls_config: TlsConfig::default(),
            banner_regexp: None,
            username: None,
            password_file: None,
            password_env: None,
        }
    }
}

impl Common {
    /// Records every problem of the shared keys; `password_required`: a
    /// username needs a password.
    pub fn validate(&self, path: &str, password_required: bool, problems: &mut Problems) {
        self.tls_config.validate(&format!("{path}.tls_config"), problems);
        validate_credentials(
            path,
            self.username.as_deref(),
            self.password_file.as_deref(),
            self.password_env.as_deref(),
            password_required,
            problems,
        );
    }

    /// The login password, read now (a rotated file is picked up).
    pub fn password(&self) -> Result<Option<Secret>, ProbeError> {
        super::credentials::password(self.password_file.as_deref(), self.password_env.as_deref())
    }
}

/// A session's start, shared by imap, smtp and pop3: where it went, the
/// password, the TLS server name and the stream (TLS already for implicit TLS).
pub struct Opened {
    /// Where and how.
    pub endpoint: Endpoint,
    /// The login password, if the module names one.
    pub password: Option<Secret>,
    /// The name to verify and send as SNI.
    pub server_name: String,
    /// Plain, or TLS with implicit TLS.
    pub stream: Stream,
}

/// Where and how to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or address from the target.
    pub host: String,
    /// Port from the target, or the protocol default.
    pub port: u16,
    /// The TLS mode, from the config or chosen by port.
    pub tls: TlsMode,
}

/// Reads `host[:port]`. Without a port the protocol's default for the TLS
/// mode is used; without a TLS mode it follows the port: implicit on the
/// implicit-TLS port, STARTTLS on a STARTTLS port, plain otherwise.
pub fn endpoint(target: &str, tls: Option<TlsMode>, ports: Ports) -> Result<Endpoint, ProbeError> {
    let default_port = if tls == Some(TlsMode::Implicit) { ports.implicit } else { ports.plain };
    let (host, port) = resolve::split_host_port(target, Some(default_port))
        .map_err(|err| ProbeError::new(Phase::Resolve, Reason::Config, err))?;
    if host.is_empty() {
        return Err(ProbeError::new(Phase::Resolve, Reason::Config, format!("no host in target {target:?}")));
    }
    let tls = tls.unwrap_or(if port == ports.implicit {
        TlsMode::Implicit
    } else if Some(port) == ports.starttls {
        TlsMode::Starttls
    } else {
        TlsMode::None
    });
    Ok(Endpoint { host, port, tls })
}

/// The phases every line-based prober seeds, in protocol order.
pub const PHASES: [Phase; 6] =
    [Phase::Resolve, Phase::Connect, Phase::Tls, Phase::Processing, Phase::Auth, Phase::Query];

/// Fails the probe when a mailbox's `messages` lie outside `min_messages`
/// and `max_messages`.
pub fn check_message_bounds<N: PartialOrd + std::fmt::Display>(
    messages: N,
    (min, max): (Option<N>, Option<N>),
) -> ProbeResult {
    if let Some(min) = min.filter(|min| messages < *min) {
        return Err(ProbeError::new(Phase::Query, Reason::Query, format!("{messages} messages, fewer than {min}")));
    }
    if let Some(max) = max.filter(|max| messages > *max) {
        return Err(ProbeError::new(Phase::Query, Reason::Query, format!("{messages} messages, more than {max}")));
    }
    Ok(())
}

/// Checks a mailbox's `min_messages` and `max_messages`: each needs what
/// `missing` names when that is not set, and min must not exceed max.
pub fn validate_message_bounds<N: PartialOrd>(
    path: &str,
    (min, max): (Option<N>, Option<N>),
    missing: Option<&str>,
    problems: &mut Problems,
) {
    for (key, set) in [("min_messages", min.is_some()), ("max_messages", max.is_some())] {
        if let (true, Some(missing)) = (set, missing) {
            problems.push(format!("{path}.{key}"), format!("{key} needs {missing}"));
        }
    }
    if let (Some(min), Some(max)) = (min, max) {
        if min > max {
            problems.push(format!("{path}.min_messages"), "min_messages must not be greater than max_messages");
        }
    }
}

/// Declares a line-based prober's block: its own keys beside [`Common`]'s,
/// which are flattened in, with the derives and serde attributes every
/// such block carries.
macro_rules! block {
    ($(#[$meta:meta])* pub struct Config { $($(#[$key_meta:meta])* pub $key:ident: $ty:ty,)* }) => {
        $(#[$meta])*
        #[serde_with::skip_serializing_none]
        #[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq)]
        #[serde(deny_unknown_fields, default)]
        pub struct Config {
            /// The keys every line-based prober shares.
            #[serde(flatten)]
            pub common: $crate::probe::textproto::Common,
            $($(#[$key_meta])* pub $key: $ty,)*
        }
    };
}
pub(crate) use block;

/// The [`Families`] of protocol `$proto` (`"smtp"`) named `$title` in HELP
/// texts, whose TLS gauge describes `$session` (`"SMTP session"`).
macro_rules! families {
    ($proto:literal, $title:literal, $session:literal) => {
        $crate::probe::textproto::Families {
            phased: $crate::probe::session::PhaseFamilies {
                duration: concat!("probe_", $proto, "_duration_seconds"),
                duration_help: concat!("Duration of the ", $title, " probe by phase"),
                ssl: concat!("probe_", $proto, "_ssl"),
                ssl_help: concat!("Indicates if TLS was used for the ", $session),
                phases: &$crate::probe::textproto::PHASES,
            },
            server_info: concat!("probe_", $proto, "_server_info"),
            server_info_help: "Server software recognised in the greeting, from a fixed list",
        }
    };
}
pub(crate) use families;

/// The per-protocol families shared by the line-based probers.
#[derive(Debug, Clone, Copy)]
pub struct Families {
    /// The duration family and TLS gauge.
    pub phased: PhaseFamilies,
    /// `probe_<proto>_server_info{software}`.
    pub server_info: &'static str,
    /// Its HELP text.
    pub server_info_help: &'static str,
}

impl Families {
    /// Creates the families that exist whatever happens, at 0.
    pub fn seed(&self, ctx: &mut ProbeCtx<'_>) {
        self.phased.seed(ctx);
    }

    /// Adds `elapsed` to `phase`.
    pub fn add(&self, ctx: &mut ProbeCtx<'_>, phase: Phase, elapsed: Duration) {
        self.phased.add(ctx, phase, elapsed);
    }

    /// Runs one step within the deadline and adds its time to `phase`, also
    /// when it fails or the deadline strikes.
    pub async fn step<T>(
        &self,
        ctx: &mut ProbeCtx<'_>,
        phase: Phase,
        future: impl Future<Output = T>,
    ) -> Result<T, ProbeError> {
        let start = Instant::now();
        let result = ctx.within(phase, future).await;
        self.add(ctx, phase, start.elapsed());
        result
    }

    /// Sends a command (if any) and reads the answer with `read`, timed as
    /// `phase`. `command` is `(sent, logged)` so that credentials never
    /// reach the log. The outer error is the deadline, the inner one the
    /// exchange's.
    pub async fn exchange<T, E: From<io::Error>>(
        &self,
        ctx: &mut ProbeCtx<'_>,
        lines: &mut Lines,
        phase: Phase,
        command: Option<(&str, &str)>,
        read: impl AsyncFnOnce(&mut Lines) -> Result<T, E>,
    ) -> Result<Result<T, E>, ProbeError> {
        if let Some((_, logged)) = command {
            ctx.log.debug(format!("Sending command={logged:?}"));
        }
        self.step(ctx, phase, async {
            if let Some((sent, _)) = command {
                lines.write_line(sent).await?;
            }
            read(lines).await
        })
        .await
    }

    /// Resolves the endpoint's host and picks one address as blackbox does.
    pub async fn resolve(
        &self,
        ctx: &mut ProbeCtx<'_>,
        endpoint: &Endpoint,
        preferred: IpProtocol,
        fallback: bool,
    ) -> Result<SocketAddr, ProbeError> {
        let resolved = resolve::resolve(ctx, &endpoint.host, preferred, fallback).await;
        if let Ok(resolved) = &resolved {
            self.add(ctx, Phase::Resolve, resolved.lookup_time);
        }
        Ok(SocketAddr::new(resolved?.ip, endpoint.port))
    }

    /// Resolves the endpoint's host and opens one TCP connection to the
    /// chosen address (never re-resolving: the policy checked that address).
    pub async fn connect(
        &self,
        ctx: &mut ProbeCtx<'_>,
        endpoint: &Endpoint,
        preferred: IpProtocol,
        fallback: bool,
    ) -> Result<TcpStream, ProbeError> {
        let address = self.resolve(ctx, endpoint, preferred, fallback).await?;
        ctx.log.info(format!("Dialing address={address}"));
        let stream = self.step(ctx, Phase::Connect, TcpStream::connect(address)).await?.map_err(|err| {
            ctx.log.error(format!("Error dialing target err={err}"));
            ProbeError::connect(&err)
        })?;
        ctx.log.info("Successfully dialed");
        Ok(stream)
    }

    /// Performs the TLS handshake, times it, and records the `probe_ssl_*`
    /// and `probe_tls_*` families and `probe_<proto>_ssl 1` on success.
    pub async fn handshake(
        &self,
        ctx: &mut ProbeCtx<'_>,
        tls_config: &TlsConfig,
        server_name: &str,
        stream: TcpStream,
    ) -> Result<TlsStream<TcpStream>, ProbeError> {
        let start = Instant::now();
        let result = tls::connect(ctx, tls_config, server_name, &[], stream).await;
        self.add(ctx, Phase::Tls, start.elapsed());
        let (stream, info) = result?;
        self.tls_done(ctx, &info);
        Ok(stream)
    }

    /// The STARTTLS decision every line protocol shares: whether to send its
    /// `command` (`STARTTLS`, `STLS`, `AUTH TLS`). Only in `starttls` and
    /// `opportunistic` modes, and only when the server `offered` it; a
    /// required upgrade the server does not offer fails.
    pub fn wants_starttls(
        &self,
        ctx: &mut ProbeCtx<'_>,
        mode: TlsMode,
        command: &str,
        offered: bool,
    ) -> Result<bool, ProbeError> {
        match mode {
            TlsMode::Starttls | TlsMode::Opportunistic if offered => Ok(true),
            TlsMode::Starttls => Err(ProbeError::new(
                Phase::Tls,
                Reason::UnexpectedResponse,
                format!("the server does not offer {command}"),
            )),
            TlsMode::Opportunistic => {
                ctx.log.info(format!("The server does not offer {command}; continuing without TLS"));
                Ok(false)
            }
            TlsMode::None | TlsMode::Implicit => Ok(false),
        }
    }

    /// The server answered the STARTTLS `command` with `reply`: when
    /// `accepted`, the session continues over TLS (the handshake within the
    /// deadline); otherwise a required upgrade fails with `refused` and an
    /// opportunistic one carries on in plain text.
    #[allow(clippy::too_many_arguments)]
    pub async fn starttls_answered(
        &self,
        ctx: &mut ProbeCtx<'_>,
        common: &Common,
        server_name: &str,
        mode: TlsMode,
        lines: Lines,
        (command, reply, accepted): (&str, &str, bool),
        refused: impl FnOnce() -> ProbeError,
    ) -> Result<(Lines, bool), ProbeError> {
        if accepted {
            let tcp = lines.into_plain()?;
            let stream = self.handshake(ctx, &common.tls_config, server_name, tcp).await?;
            return Ok((Lines::new(Either::Right(stream)), true));
        }
        self.starttls_refused(ctx, mode, command, reply, refused)?;
        Ok((lines, false))
    }

    /// The server refused the STARTTLS `command` with `reply`: a required
    /// upgrade fails with `refused`, an opportunistic one carries on in plain text.
    pub fn starttls_refused(
        &self,
        ctx: &mut ProbeCtx<'_>,
        mode: TlsMode,
        command: &str,
        reply: &str,
        refused: impl FnOnce() -> ProbeError,
    ) -> Result<(), ProbeError> {
        if mode == TlsMode::Starttls {
            return Err(refused());
        }
        ctx.log.info(format!("The server refused {command} reply={reply}; continuing without TLS"));
        Ok(())
    }

    /// Seeds the families, reads the target, the password, connects and,
    /// with implicit TLS, shakes hands.
    pub async fn open(&self, ctx: &mut ProbeCtx<'_>, common: &Common, ports: Ports) -> Result<Opened, ProbeError> {
        self.seed(ctx);
        let endpoint = endpoint(ctx.target, common.tls, ports)?;
        let password = common.password()?;
        let tcp = self.connect(ctx, &endpoint, common.preferred_ip_protocol, common.ip_protocol_fallback).await?;
        let server_name = server_name(ctx, &endpoint).to_string();
        let stream = if endpoint.tls == TlsMode::Implicit {
            Either::Right(self.handshake(ctx, &common.tls_config, &server_name, tcp).await?)
        } else {
            Either::Left(tcp)
        };
        Ok(Opened { endpoint, password, server_name, stream })
    }

    /// Records what the greeting says about the server's software and checks
    /// it against `banner_regexp`.
    pub fn greeted(&self, ctx: &mut ProbeCtx<'_>, common: &Common, greeting: &str) -> Result<(), ProbeError> {
        if let Some(software) = software(greeting) {
            ctx.registry.set_with(self.server_info, self.server_info_help, &[("software", software)], 1.0);
        }
        check_banner(ctx, common.banner_regexp.as_ref(), greeting)
    }

    /// Records a finished handshake.
    pub fn tls_done(&self, ctx: &mut ProbeCtx<'_>, info: &tls::TlsInfo) {
        self.phased.tls_done(ctx, info);
    }
}

/// The name to verify and send as SNI when `tls_config.server_name` is unset:
/// the `hostname` parameter, else the target's host.
pub fn server_name<'a>(ctx: &ProbeCtx<'a>, endpoint: &'a Endpoint) -> &'a str {
    ctx.hostname.unwrap_or(&endpoint.host)
}

/// Checks `username`, `password_file` and `password_env`.
pub fn validate_credentials(
    path: &str,
    username: Option<&str>,
    password_file: Option<&str>,
    password_env: Option<&str>,
    password_required: bool,
    problems: &mut Problems,
) {
    if password_file.is_some() && password_env.is_some() {
        problems.push(format!("{path}.password_env"), "at most one of password_file and password_env must be set");
    }
    if let Some(file) = password_file {
        if let Err(err) = std::fs::metadata(file) {
            problems.push(format!("{path}.password_file"), format!("unable to read password file {file:?}: {err}"));
        }
    }
    if password_env.is_some_and(str::is_empty) {
        problems.push(format!("{path}.password_env"), "password_env must name an environment variable");
    }
    let has_password = password_file.is_some() || password_env.is_some();
    match username {
        None if has_password => {
            problems.push(format!("{path}.username"), "username must be set when a password is configured")
        }
        Some(name) if !is_protocol_safe(name) => {
            problems.push(format!("{path}.username"), "username must not contain line breaks")
        }
        Some(_) if password_required && !has_password => {
            problems.push(format!("{path}.password_file"), "password_file or password_env must be set with username")
        }
        _ => {}
    }
}

/// True when `text` can be sent as (part of) one protocol line.
pub fn is_protocol_safe(text: &str) -> bool {
    !text.contains(['\r', '\n', '\0'])
}

/// A connection that is plain or TLS, depending on the mode and on STARTTLS.
pub type Stream = Either<TcpStream, TlsStream<TcpStream>>;

/// The longest line accepted from a server, as blackbox's `expect` (64 KiB).
const MAX_LINE: usize = 64 * 1024;

/// A line-oriented session (CRLF-terminated replies, bounded line length).
#[derive(Debug)]
pub struct Lines {
    reader: BufReader<Stream>,
}

impl Lines {
    /// Wraps a connection.
    pub fn new(stream: Stream) -> Self {
        Lines { reader: BufReader::new(stream) }
    }

    /// Reads one line without its line ending. EOF and over-long lines are errors.
    pub async fn read_line(&mut self) -> io::Result<String> {
        let mut line = Vec::new();
        let read = (&mut self.reader).take(MAX_LINE as u64).read_until(b'\n', &mut line).await?;
        if read == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed by the server"));
        }
        if line.last() != Some(&b'\n') {
            return Err(if read >= MAX_LINE {
                io::Error::new(io::ErrorKind::InvalidData, "line longer than 64 KiB")
            } else {
                io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed in the middle of a line")
            });
        }
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Ok(String::from_utf8_lossy(&line).into_owned())
    }

    /// Sends `line` followed by CRLF.
    pub async fn write_line(&mut self, line: &str) -> io::Result<()> {
        let stream = self.reader.get_mut();
        stream.write_all(format!("{line}\r\n").as_bytes()).await?;
        stream.flush().await
    }

    /// The local address, for the SMTP EHLO address literal.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match self.reader.get_ref() {
            Either::Left(tcp) => tcp.local_addr().ok(),
            Either::Right(tls) => tls.get_ref().0.local_addr().ok(),
        }
    }

    /// Gives the plain connection back for a STARTTLS handshake. Anything the
    /// server sent after its go-ahead would be injected into the encrypted
    /// session (the STARTTLS command-injection flaw), so it is an error.
    pub fn into_plain(self) -> Result<TcpStream, ProbeError> {
        if !self.reader.buffer().is_empty() {
            return Err(ProbeError::new(
                Phase::Tls,
                Reason::UnexpectedResponse,
                "the server sent data after agreeing to start TLS",
            ));
        }
        match self.reader.into_inner() {
            Either::Left(tcp) => Ok(tcp),
            Either::Right(_) => {
                Err(ProbeError::new(Phase::Tls, Reason::UnexpectedResponse, "STARTTLS on an encrypted session"))
            }
        }
    }

    /// Ends the session politely: sends `command` and waits briefly for the
    /// reply, never past the deadline and never failing the probe.
    pub async fn quit(mut self, ctx: &ProbeCtx<'_>, command: &str) {
        let grace = QUIT_GRACE.min(ctx.remaining() / 2);
        let _ = tokio::time::timeout(grace, async {
            self.write_line(command).await?;
            self.read_line().await
        })
        .await;
    }
}

/// How long a prober waits for the reply to its goodbye.
pub const QUIT_GRACE: Duration = Duration::from_millis(500);

/// Recognises well-known server software in a greeting, so that
/// `probe_<proto>_server_info{software}` has a label value from this fixed
/// list (bounded cardinality) rather than free banner text.
pub fn software(greeting: &str) -> Option<&'static str> {
    const KNOWN: [(&str, &str); 20] = [
        ("postfix", "postfix"),
        ("exim", "exim"),
        ("sendmail", "sendmail"),
        ("opensmtpd", "opensmtpd"),
        ("microsoft esmtp", "exchange"),
        ("exchange", "exchange"),
        ("haraka", "haraka"),
        ("qmail", "qmail"),
        ("python smtp", "aiosmtpd"),
        ("aiosmtpd", "aiosmtpd"),
        ("dovecot", "dovecot"),
        ("cyrus", "cyrus"),
        ("courier", "courier"),
        ("zimbra", "zimbra"),
        ("vsftpd", "vsftpd"),
        ("pure-ftpd", "pure-ftpd"),
        ("proftpd", "proftpd"),
        ("filezilla", "filezilla"),
        ("microsoft ftp", "iis"),
        ("serv-u", "serv-u"),
    ];
    let lower = greeting.to_ascii_lowercase();
    KNOWN.iter().find(|(needle, _)| lower.contains(needle)).map(|(_, name)| *name)
}

/// Checks the optional `banner_regexp` against the greeting.
pub fn check_banner(ctx: &mut ProbeCtx<'_>, banner_regexp: Option<&Regex>, greeting: &str) -> Result<(), ProbeError> {
    match banner_regexp {
        Some(regexp) if !regexp.is_match(greeting) => {
            ctx.log.error(format!("Greeting did not match banner_regexp regexp={:?}", regexp.as_str()));
            Err(ProbeError::new(
                Phase::Processing,
                Reason::Regex,
                format!("greeting {greeting:?} does not match {:?}", regexp.as_str()),
            ))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMTP: Ports = Ports { plain: 25, implicit: 465, starttls: Some(587) };

    #[test]
    fn tls_mode_and_port_follow_each_other() {
        let e = |target, tls| endpoint(target, tls, SMTP).map(|e| (e.host, e.port, e.tls)).unwrap();
        assert_eq!(e("mx", None), ("mx".into(), 25, TlsMode::None));
        assert_eq!(e("mx:465", None), ("mx".into(), 465, TlsMode::Implicit));
        assert_eq!(e("mx:587", None), ("mx".into(), 587, TlsMode::Starttls));
        assert_eq!(e("mx", Some(TlsMode::Implicit)), ("mx".into(), 465, TlsMode::Implicit));
        assert_eq!(e("mx", Some(TlsMode::Starttls)), ("mx".into(), 25, TlsMode::Starttls));
        assert_eq!(e("[::1]:2525", Some(TlsMode::Opportunistic)), ("::1".into(), 2525, TlsMode::Opportunistic));
        assert!(endpoint("mx:x", None, SMTP).is_err());
        assert!(endpoint(":25", None, SMTP).is_err());
    }

    #[test]
    fn software_comes_from_a_fixed_list() {
        assert_eq!(software("220 mail.example.org ESMTP Postfix (Debian/GNU)"), Some("postfix"));
        assert_eq!(software("220 (vsFTPd 3.0.3)"), Some("vsftpd"));
        assert_eq!(software("* OK [CAPABILITY IMAP4rev1] Dovecot (Debian) ready."), Some("dovecot"));
        assert_eq!(software("220 host Python SMTP 1.4.4"), Some("aiosmtpd"));
        assert_eq!(software("220 mx.google.com ESMTP"), None);
    }

    #[test]
    fn credentials_are_checked_together() {
        let check = |user, file, env, required| {
            let mut problems = Problems::default();
            validate_credentials("m.smtp", user, file, env, required, &mut problems);
            problems.0.into_iter().map(|p| p.path).collect::<Vec<_>>()
        };
        assert!(check(Some("u"), None, Some("PW"), true).is_empty());
        assert!(check(Some("anonymous"), None, None, false).is_empty());
        assert_eq!(check(Some("u"), None, None, true), ["m.smtp.password_file"]);
        assert_eq!(check(None, None, Some("PW"), true), ["m.smtp.username"]);
        assert_eq!(
            check(Some("u"), Some("/nonexistent/pw"), Some("PW"), true),
            ["m.smtp.password_env", "m.smtp.password_file"]
        );
        assert_eq!(check(Some("u\r\nRSET"), None, Some("PW"), true), ["m.smtp.username"]);
    }

    #[test]
    fn shipped_examples_parse() {
        for (name, example) in [
            ("ftp", include_str!("../../config/examples.d/ftp.yml")),
            ("imap", include_str!("../../config/examples.d/imap.yml")),
            ("pop3", include_str!("../../config/examples.d/pop3.yml")),
            ("smtp", include_str!("../../config/examples.d/smtp.yml")),
        ] {
            let modules = crate::probe::parse_modules(&format!("modules:\n{example}"))
                .unwrap_or_else(|err| panic!("{name}: {err}"));
            assert!(modules.values().all(|module| module.prober.as_str() == name), "{name}");
        }
    }
}
