//! The `ftp` prober: greeting, explicit (AUTH TLS) or implicit FTPS, login
//! (or anonymous), and an optional directory listing or file check.
//!
//! suppaftp speaks the protocol. Its TLS hook is a connector trait, so the
//! prober plugs in a connector built from the module's `tls_config` that
//! remembers how the control connection's handshake went; that keeps the
//! `probe_ssl_*` families and the `tls_untrusted`/`tls_expired` reasons the
//! same as for every other prober.

use super::textproto::{self, Families, Ports, TlsMode};
use super::tls::{self, TlsConfig, TlsInfo};
use super::{Phase, ProbeCtx, ProbeError, ProbeResult, Reason};
use crate::config::Problems;
use rustls::pki_types::ServerName;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use suppaftp::tokio::{AsyncRustlsStream, AsyncTlsConnector, ImplAsyncFtpStream};
use suppaftp::{FtpError, FtpResult, Mode, Status};
use tokio::net::TcpStream;

textproto::block! {
    /// The `ftp:` block of a module.
    pub struct Config {
        /// Directory to LIST after login (`.` is the login directory).
        pub list_directory: Option<String>,
        /// File that must exist (checked with MDTM, which also gives its age).
        pub file_exists: Option<String>,
    }
}

/// User names that log in anonymously (RFC 1635).
fn is_anonymous(username: &str) -> bool {
    username.eq_ignore_ascii_case("anonymous") || username.eq_ignore_ascii_case("ftp")
}

/// The password sent for anonymous logins without a configured one.
const ANONYMOUS_PASSWORD: &str = "anonymous@";

impl Config {
    /// Records every problem of this block.
    pub fn validate(&self, path: &str, problems: &mut Problems) {
        let anonymous = self.common.username.as_deref().is_some_and(is_anonymous);
        self.common.validate(path, !anonymous, problems);
        for (key, value) in [("list_directory", &self.list_directory), ("file_exists", &self.file_exists)] {
            let Some(value) = value else { continue };
            if self.common.username.is_none() {
                problems.push(format!("{path}.{key}"), format!("{key} needs username (it runs after login)"));
            }
            if value.is_empty() || !textproto::is_protocol_safe(value) {
                problems.push(format!("{path}.{key}"), format!("{key} must be a non-empty path without line breaks"));
            }
        }
    }
}

const PORTS: Ports = Ports { plain: 21, implicit: 990, starttls: None };

const FAMILIES: Families = textproto::families!("ftp", "FTP", "FTP control connection");
const STATUS: &str = "probe_ftp_status_code";
const STATUS_HELP: &str = "Returns the last FTP reply code received, 0 when there was none";
const ENTRIES: &str = "probe_ftp_directory_entries";
const ENTRIES_HELP: &str = "Number of entries in the listed directory";
const MODIFIED: &str = "probe_ftp_file_modified_timestamp_seconds";
const MODIFIED_HELP: &str = "Last modification time of the checked file (MDTM) in unixtime";

type FtpStream = ImplAsyncFtpStream<AsyncRustlsStream>;

/// Runs one probe.
pub async fn probe(ctx: &mut ProbeCtx<'_>, config: &Config) -> ProbeResult {
    FAMILIES.seed(ctx);
    ctx.registry.set(STATUS, STATUS_HELP, 0.0);
    let endpoint = textproto::endpoint(ctx.target, config.common.tls, PORTS)?;
    let password = config.common.password()?;
    let server_name = textproto::server_name(ctx, &endpoint).to_string();
    let connector = match endpoint.tls {
        TlsMode::None => None,
        _ => Some(Connector::new(&config.common.tls_config, &server_name)?),
    };

    let mut ftp = match &connector {
        Some(connector) if endpoint.tls == TlsMode::Implicit => {
            let address = FAMILIES
                .resolve(ctx, &endpoint, config.common.preferred_ip_protocol, config.common.ip_protocol_fallback)
                .await?;
            connect_implicit(ctx, address, connector.clone(), &server_name).await?
        }
        _ => {
            let tcp = FAMILIES
                .connect(ctx, &endpoint, config.common.preferred_ip_protocol, config.common.ip_protocol_fallback)
                .await?;
            let result = FAMILIES.step(ctx, Phase::Processing, FtpStream::connect_with_stream(tcp)).await?;
            result.map_err(|err| failure(ctx, Phase::Processing, err, None))?
        }
    };
    ctx.registry.set(STATUS, STATUS_HELP, 220.0);
    let greeting = ftp.get_welcome_msg().unwrap_or_default().to_string();
    ctx.log.debug(format!("Received greeting text={greeting:?}"));
    FAMILIES.greeted(ctx, &config.common, &greeting)?;
    if endpoint.tls == TlsMode::Implicit {
        ftp = protect_data(ctx, ftp).await?;
        ctx.registry.set(STATUS, STATUS_HELP, 200.0);
    }

    if let Some(connector) = &connector {
        let offered = endpoint.tls != TlsMode::Opportunistic || offers_tls(ctx, &mut ftp).await?;
        if FAMILIES.wants_starttls(ctx, endpoint.tls, "AUTH TLS", offered)? {
            ctx.log.debug("Sending command=\"AUTH TLS\"");
            let result = FAMILIES.step(ctx, Phase::Tls, ftp.into_secure(connector.clone(), &server_name)).await?;
            ftp = result.map_err(|err| failure(ctx, Phase::Tls, err, Some(connector)))?;
            // The last replies were PBSZ's and PROT's 200.
            ctx.registry.set(STATUS, STATUS_HELP, 200.0);
            connector.record(ctx);
        }
    }
    // Data connections go to the control connection's peer only: the address
    // in a PASV reply is ignored, so a server cannot point the probe elsewhere.
    let peer_is_v4 = ftp.get_ref().await.peer_addr().map(|peer| peer.is_ipv4()).unwrap_or(true);
    if peer_is_v4 {
        ftp.set_mode(Mode::Passive);
        ftp.set_passive_nat_workaround(true);
    } else {
        ftp.set_mode(Mode::ExtendedPassive);
    }

    let Some(username) = &config.common.username else {
        quit(ctx, ftp).await;
        return Ok(());
    };
    let password = match &password {
        Some(password) => password.expose(),
        None => ANONYMOUS_PASSWORD,
    };
    ctx.log.debug(format!("Logging in user={username:?}"));
    let result = FAMILIES.step(ctx, Phase::Auth, ftp.login(username.as_str(), password)).await?;
    result.map_err(|err| failure(ctx, Phase::Auth, err, connector.as_ref()))?;
    ctx.registry.set(STATUS, STATUS_HELP, 230.0);
    ctx.log.info(format!("Logged in user={username:?}"));

    if let Some(directory) = &config.list_directory {
        ctx.log.debug(format!("Listing directory={directory:?}"));
        let result = FAMILIES.step(ctx, Phase::Query, ftp.list(Some(directory))).await?;
        let entries = result.map_err(|err| failure(ctx, Phase::Query, err, connector.as_ref()))?;
        // 226: the transfer completed.
        ctx.registry.set(STATUS, STATUS_HELP, 226.0);
        ctx.registry.set(ENTRIES, ENTRIES_HELP, entries.len() as f64);
        ctx.log.info(format!("Listed directory={directory:?} entries={}", entries.len()));
    }
    if let Some(file) = &config.file_exists {
        ctx.log.debug(format!("Sending command=\"MDTM {file}\""));
        let result = FAMILIES.step(ctx, Phase::Query, ftp.mdtm(file)).await?;
        let modified = result.map_err(|err| failure(ctx, Phase::Query, err, connector.as_ref()))?;
        ctx.registry.set(STATUS, STATUS_HELP, 213.0);
        let timestamp = modified.and_utc().timestamp();
        ctx.registry.set(MODIFIED, MODIFIED_HELP, timestamp as f64);
        ctx.log.info(format!("File exists file={file:?} modified={modified}"));
    }
    quit(ctx, ftp).await;
    Ok(())
}

/// FEAT lists `AUTH TLS` (or `AUTH SSL`) when explicit FTPS is available.
/// A server that does not know FEAT offers nothing.
async fn offers_tls(ctx: &mut ProbeCtx<'_>, ftp: &mut FtpStream) -> Result<bool, ProbeError> {
    match FAMILIES.step(ctx, Phase::Tls, ftp.feat()).await? {
        Ok(features) => {
            ctx.registry.set(STATUS, STATUS_HELP, 211.0);
            Ok(features.contains_key("AUTH"))
        }
        Err(FtpError::UnexpectedResponse(response)) => {
            ctx.registry.set(STATUS, STATUS_HELP, f64::from(response.status.code()));
            Ok(false)
        }
        Err(err) => Err(failure(ctx, Phase::Tls, err, None)),
    }
}

/// Implicit FTPS: suppaftp dials the chosen address itself and hands the
/// socket to the connector, which notes when the dial ended and the handshake
/// finished, so connect, tls and processing (the greeting) are timed apart.
async fn connect_implicit(
    ctx: &mut ProbeCtx<'_>,
    address: std::net::SocketAddr,
    connector: Connector,
    server_name: &str,
) -> Result<FtpStream, ProbeError> {
    ctx.log.info(format!("Dialing address={address}"));
    let start = Instant::now();
    let state = connector.state.clone();
    let result =
        ctx.within(Phase::Connect, FtpStream::connect_secure_implicit(address, connector.clone(), server_name)).await;
    let now = Instant::now();
    let (dialed, finished, secured) = state
        .lock()
        .map(|state| (state.dialed, state.finished, matches!(state.outcome, Some(Ok(_)))))
        .unwrap_or_default();
    let dialed_at = dialed.unwrap_or(now);
    let finished_at = finished.unwrap_or(now).max(dialed_at);
    FAMILIES.add(ctx, Phase::Connect, dialed_at - start);
    FAMILIES.add(ctx, Phase::Tls, finished_at - dialed_at);
    FAMILIES.add(ctx, Phase::Processing, now - finished_at);
    let phase = match (dialed, secured) {
        (None, _) => Phase::Connect,
        (Some(_), false) => Phase::Tls,
        (Some(_), true) => Phase::Processing,
    };
    if phase != Phase::Connect {
        connector.record(ctx);
    }
    match result {
        Err(_) => Err(ProbeError::timeout(phase)),
        Ok(Err(FtpError::ConnectionError(err))) if phase == Phase::Connect => {
            ctx.log.error(format!("Error dialing target err={err}"));
            Err(ProbeError::connect(&err))
        }
        Ok(Err(err)) => Err(failure(ctx, phase, err, Some(&connector))),
        Ok(Ok(ftp)) => Ok(ftp),
    }
}

/// Implicit FTPS still negotiates data protection (RFC 4217 section 9):
/// without `PROT P` the server would expect plain data connections, while
/// suppaftp wraps them in TLS.
async fn protect_data(ctx: &mut ProbeCtx<'_>, mut ftp: FtpStream) -> Result<FtpStream, ProbeError> {
    for command in ["PBSZ 0", "PROT P"] {
        ctx.log.debug(format!("Sending command={command:?}"));
        let result = FAMILIES.step(ctx, Phase::Tls, ftp.custom_command(command, &[Status::CommandOk])).await?;
        result.map_err(|err| failure(ctx, Phase::Tls, err, None))?;
    }
    Ok(ftp)
}

/// QUIT, briefly and never failing the probe.
async fn quit(ctx: &ProbeCtx<'_>, mut ftp: FtpStream) {
    let grace = textproto::QUIT_GRACE.min(ctx.remaining() / 2);
    let _ = tokio::time::timeout(grace, ftp.quit()).await;
}

/// Maps a suppaftp error to a bounded reason, recording the reply code.
fn failure(ctx: &mut ProbeCtx<'_>, phase: Phase, err: FtpError, connector: Option<&Connector>) -> ProbeError {
    let reason = match &err {
        FtpError::ConnectionError(io) => {
            ctx.log.error(format!("Connection error err={io}"));
            return ProbeError::io(phase, io);
        }
        FtpError::SecureError(_) => connector.and_then(Connector::failure).unwrap_or(Reason::Tls),
        FtpError::UnexpectedResponse(response) => {
            let code = response.status.code();
            ctx.registry.set(STATUS, STATUS_HELP, f64::from(code));
            match (phase, code) {
                // 530: "not logged in", the reply to a refused USER or PASS.
                (Phase::Auth, 530) => Reason::AuthFailed,
                // 550 and friends: no such file or directory, no access.
                (Phase::Query, 400..=599) => Reason::Query,
                _ => Reason::UnexpectedResponse,
            }
        }
        _ => Reason::UnexpectedResponse,
    };
    ctx.log.error(format!("FTP step failed phase={phase} err={err}"));
    ProbeError::new(phase, reason, err)
}

/// What the control connection's handshake left behind.
#[derive(Debug, Default)]
struct Handshake {
    /// When the connector got the dialed socket.
    dialed: Option<Instant>,
    /// When the handshake ended, either way.
    finished: Option<Instant>,
    /// Its result, metrics-ready.
    outcome: Option<Result<TlsInfo, (Reason, String)>>,
    /// Whether the outcome was recorded in the registry already.
    recorded: bool,
}

/// suppaftp's TLS hook, built from `tls_config`. The same rustls config
/// serves the data connections, so their sessions resume the control
/// connection's as servers such as vsftpd require.
#[derive(Clone)]
struct Connector {
    client: Arc<tls::Client>,
    server_name: ServerName<'static>,
    state: Arc<Mutex<Handshake>>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector").field("server_name", &self.server_name).finish_non_exhaustive()
    }
}

impl Connector {
    fn new(tls_config: &TlsConfig, default_server_name: &str) -> Result<Connector, ProbeError> {
        let client =
            tls::Client::new(tls_config, &[]).map_err(|err| ProbeError::new(Phase::Tls, Reason::Config, err))?;
        let server_name = tls::server_name(tls_config.server_name.as_deref().unwrap_or(default_server_name))?;
        Ok(Connector { client: Arc::new(client), server_name, state: Arc::new(Mutex::new(Handshake::default())) })
    }

    /// Records the control connection's TLS families once, after a handshake.
    fn record(&self, ctx: &mut ProbeCtx<'_>) {
        let Ok(mut state) = self.state.lock() else { return };
        if state.recorded {
            return;
        }
        match &state.outcome {
            Some(Ok(info)) => {
                ctx.log.info(format!("TLS handshake done version={:?} cipher={}", info.version, info.cipher));
                FAMILIES.tls_done(ctx, info);
            }
            Some(Err((_, detail))) => ctx.log.error(format!("TLS handshake failed err={detail}")),
            None => return,
        }
        state.recorded = true;
    }

    /// Why the control connection's handshake failed, if it did.
    fn failure(&self) -> Option<Reason> {
        match self.state.lock().ok()?.outcome.as_ref()? {
            Err((reason, _)) => Some(*reason),
            Ok(_) => None,
        }
    }

    async fn handshake(&self, stream: TcpStream) -> FtpResult<AsyncRustlsStream> {
        let first = match self.state.lock() {
            Ok(mut state) if state.dialed.is_none() => {
                state.dialed = Some(Instant::now());
                true
            }
            _ => false,
        };
        let connector = tokio_rustls::TlsConnector::from(self.client.config.clone());
        let result = connector.connect(self.server_name.clone(), stream).await;
        if first {
            if let Ok(mut state) = self.state.lock() {
                state.finished = Some(Instant::now());
                state.outcome = Some(match &result {
                    Ok(stream) => Ok(self.client.info(stream.get_ref().1)),
                    Err(err) => Err((tls::classify(err), err.to_string())),
                });
            }
        }
        result.map(AsyncRustlsStream::from).map_err(|err| FtpError::SecureError(err.to_string()))
    }
}

// Written out instead of with `#[async_trait]`: it is the one trait impl that
// needs it, and the expanded signature is what the macro would produce.
impl AsyncTlsConnector for Connector {
    type Stream = AsyncRustlsStream;

    fn connect<'this, 'domain, 'future>(
        &'this self,
        _domain: &'domain str,
        stream: TcpStream,
    ) -> Pin<Box<dyn Future<Output = FtpResult<AsyncRustlsStream>> + Send + 'future>>
    where
        'this: 'future,
        'domain: 'future,
        Self: 'future,
    {
        Box::pin(self.handshake(stream))
    }
}

#[cfg(test)]
mod tests {
    use crate::probe::parse_modules;

    #[test]
    fn anonymous_needs_no_password() {
        assert!(parse_modules("modules:\n  m:\n    prober: ftp\n    ftp:\n      username: anonymous\n").is_ok());
        let err = parse_modules("modules:\n  m:\n    prober: ftp\n    ftp:\n      username: alice\n").unwrap_err();
        assert!(err.to_string().contains("modules.m.ftp.password_file"), "{err}");
    }

    #[test]
    fn checks_after_login_need_a_user() {
        let err = parse_modules(
            "modules:\n  m:\n    prober: ftp\n    ftp:\n      list_directory: .\n      file_exists: \"\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("modules.m.ftp.list_directory: list_directory needs username"), "{err}");
        assert!(err.contains("modules.m.ftp.file_exists: file_exists must be a non-empty path"), "{err}");
    }
}
