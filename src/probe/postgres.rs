//! The `postgres` prober: logs in to PostgreSQL with tokio-postgres over a
//! socket it dialed itself (so address selection and the target policy hold),
//! optionally runs a query and checks its result.
//!
//! TLS goes through checkit's own rustls client ([`crate::net::postgres`]'s
//! `TlsConnect`, with a watcher below that times and classifies the
//! handshake), so `probe_ssl_*` / `probe_tls_*` describe the server's
//! certificate exactly as for HTTPS.

use super::session::PhaseFamilies;
use super::sql::{self, QueryResult, Verify};
use super::tls::{self, TlsInfo};
use super::{Phase, ProbeCtx, ProbeError, ProbeResult, Reason};
use crate::config::Problems;
use crate::net::postgres::{Connect, Watch};
use serde::{Deserialize, Serialize};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::error::SqlState;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// Never use TLS.
    Disable,
    /// Use TLS when the server offers it; the certificate is not verified.
    #[default]
    Prefer,
    /// Insist on TLS; the certificate is verified only when `tls_config`
    /// names a CA (then as `verify-ca`), as libpq does with a root file.
    Require,
    /// Insist on TLS and verify the chain, not the name.
    VerifyCa,
    /// Insist on TLS and verify the chain and the server name.
    VerifyFull,
}

/// The `postgres:` block of a module.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The keys every database prober shares.
    #[serde(flatten)]
    pub common: sql::Common,
    /// Whether and how to use TLS.
    pub sslmode: SslMode,
}

impl Config {
    /// Records every problem of this block.
    pub fn validate(&self, path: &str, problems: &mut Problems) {
        self.common.validate(path, problems);
        self.common.validate_verifying(
            path,
            matches!(self.sslmode, SslMode::VerifyCa | SslMode::VerifyFull),
            "sslmode verify-ca and verify-full",
            problems,
        );
    }
}

const METRICS: PhaseFamilies = super::sql::metrics!("postgres", "PostgreSQL");
const VERSION: &str = "probe_postgres_version_info";
const HELP_VERSION: &str = "The server_version the PostgreSQL server reported at login";
const DEFAULT_PORT: u16 = 5432;

/// Runs one probe.
pub async fn probe(ctx: &mut ProbeCtx<'_>, config: &Config) -> ProbeResult {
    let (password, stream, host) = config.common.open(ctx, METRICS, DEFAULT_PORT).await?;
    let (connector, state) = connector(config, &sql::server_name(ctx, &config.common.tls_config, &host))?;
    let uses_tls = config.sslmode != SslMode::Disable;
    let stream = Watched { inner: stream, state: state.clone(), ssl_request: uses_tls };

    let mut pg = tokio_postgres::Config::new();
    pg.user(&config.common.user).application_name(&config.common.application_name).ssl_mode(match config.sslmode {
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => tokio_postgres::config::SslMode::Require,
    });
    if let Some(password) = &password {
        pg.password(password.expose());
    }
    if let Some(database) = &config.common.database {
        pg.dbname(database);
    }

    // One future covers the SSL request, the handshake, startup and
    // authentication; the adapter timestamps the TLS part.
    let start = Instant::now();
    ctx.enter(if uses_tls { Phase::Tls } else { Phase::Auth });
    let connected = tokio::time::timeout_at(ctx.deadline, pg.connect_raw(stream, connector)).await;
    let elapsed = start.elapsed();
    let snapshot = state.lock().map(|state| state.clone()).unwrap_or_default();
    // Where the dialogue stood when it ended (for a timeout, where it struck).
    let pending_phase = if uses_tls && snapshot.in_tls() { Phase::Tls } else { Phase::Auth };
    let tls_time = match snapshot.tls_done {
        Some(done) => done.saturating_duration_since(start),
        None if pending_phase == Phase::Tls => elapsed,
        None => std::time::Duration::ZERO,
    };
    METRICS.add(ctx, Phase::Tls, tls_time);
    METRICS.add(ctx, Phase::Auth, elapsed.saturating_sub(tls_time));
    if let Some(info) = &snapshot.info {
        sql::record_tls(ctx, METRICS, info);
    }
    let (client, mut connection) = match connected {
        Err(_) => return Err(ProbeError::timeout(pending_phase)),
        Ok(Err(err)) => {
            let failure = classify(&err, &snapshot, pending_phase);
            ctx.log.error(format!("Login failed err={err}"));
            return Err(failure);
        }
        Ok(Ok(connected)) => connected,
    };
    ctx.log.info(format!("Logged in user={:?} tls={}", config.common.user, snapshot.info.is_some()));
    if let Some(version) = connection.parameter("server_version") {
        // "15.13 (Debian 15.13-0+deb12u1)": the number alone is stable across rebuilds.
        let version = version.split_whitespace().next().unwrap_or(version).to_string();
        sql::record_version(ctx, VERSION, HELP_VERSION, &version);
    }

    let result = match config.common.query.as_deref() {
        None => Ok(()),
        Some(query) => {
            let start = Instant::now();
            ctx.enter(Phase::Query);
            // The connection future does the I/O; drive it alongside the query.
            let outcome = tokio::time::timeout_at(ctx.deadline, async {
                tokio::select! {
                    result = client.simple_query(query) => result.map_err(|err| query_error(&err)),
                    ended = &mut connection => Err(ProbeError::new(
                        Phase::Query,
                        Reason::Io,
                        match ended {
                            Ok(()) => "the server closed the connection".to_string(),
                            Err(err) => err.to_string(),
                        },
                    )),
                }
            })
            .await;
            METRICS.add(ctx, Phase::Query, start.elapsed());
            match outcome {
                Err(_) => Err(ProbeError::timeout(Phase::Query)),
                Ok(Err(err)) => Err(err),
                Ok(Ok(messages)) => {
                    let result = query_result(&messages);
                    ctx.log.info(format!("Query done rows={} first_value={:?}", result.rows, result.first_value));
                    config.common.expectation().check(&result)
                }
            }
        }
    };
    // Dropping the client makes the connection send Terminate and close, so
    // the server logs an orderly disconnect rather than an EOF.
    drop(client);
    let _ = tokio::time::timeout_at(ctx.deadline, connection).await;
    result
}

fn query_error(err: &tokio_postgres::Error) -> ProbeError {
    match err.as_db_error() {
        Some(db) => ProbeError::new(Phase::Query, Reason::Query, format!("{}: {}", db.code().code(), db.message())),
        None => ProbeError::new(Phase::Query, Reason::Io, err),
    }
}

fn query_result(messages: &[tokio_postgres::SimpleQueryMessage]) -> QueryResult {
    let mut result = QueryResult::default();
    for message in messages {
        if let tokio_postgres::SimpleQueryMessage::Row(row) = message {
            if result.first_value.is_none() {
                result.first_value = Some(row.try_get(0).ok().flatten().map(str::to_string));
            }
            result.rows += 1;
        }
    }
    result
}

/// Maps a failed login to a phase and a bounded reason.
fn classify(err: &tokio_postgres::Error, state: &TlsState, pending_phase: Phase) -> ProbeError {
    if let Some(reason) = state.failure {
        return ProbeError::new(Phase::Tls, reason, err);
    }
    if let Some(db) = err.as_db_error() {
        let code = db.code();
        // 28P01 invalid_password, 28000 invalid_authorization_specification
        // (pg_hba.conf rejected the login); anything else is a refusal for
        // another reason (unknown database, too many connections, starting up).
        let reason = if *code == SqlState::INVALID_PASSWORD || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION {
            Reason::AuthFailed
        } else {
            Reason::Status
        };
        return ProbeError::new(Phase::Auth, reason, format!("{}: {}", code.code(), db.message()));
    }
    let source = std::error::Error::source(err);
    if let Some(io_err) = source.and_then(|source| source.downcast_ref::<io::Error>()) {
        return match io_err.kind() {
            // Unparsable bytes, or a frame cut short by the server closing.
            io::ErrorKind::InvalidInput
            | io::ErrorKind::InvalidData
            | io::ErrorKind::UnexpectedEof
            | io::ErrorKind::Other => ProbeError::new(pending_phase, Reason::UnexpectedResponse, err),
            _ => ProbeError::io(pending_phase, io_err),
        };
    }
    let cause = source.map(|source| source.to_string()).unwrap_or_default();
    if cause.contains("does not support TLS") {
        return ProbeError::new(Phase::Tls, Reason::TlsPolicy, err);
    }
    if cause.contains("password missing") {
        return ProbeError::new(Phase::Auth, Reason::Config, "the server asks for a password and the module has none");
    }
    // Closed mid-dialogue, unparsable or out-of-order messages.
    ProbeError::new(pending_phase, Reason::UnexpectedResponse, err)
}

/// What the TLS adapter learned, shared with the prober.
#[derive(Debug, Clone, Default)]
struct TlsState {
    /// When the first byte from the server arrived (the answer to the SSL request).
    first_read: Option<Instant>,
    /// When the handshake started, i.e. the server accepted the SSL request.
    tls_started: Option<Instant>,
    /// When the handshake finished, or the server declined TLS.
    tls_done: Option<Instant>,
    /// The handshake's description, once it succeeded.
    info: Option<TlsInfo>,
    /// Why the handshake failed.
    failure: Option<Reason>,
}

impl TlsState {
    /// Whether the dialogue is still negotiating TLS.
    fn in_tls(&self) -> bool {
        self.first_read.is_none() || (self.tls_started.is_some() && self.tls_done.is_none())
    }
}

type SharedState = Arc<Mutex<TlsState>>;

/// Times the handshake and keeps its description for `probe_tls_*`.
struct Watcher {
    client: Option<tls::Client>,
    state: SharedState,
}

impl Watch for Watcher {
    fn started(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.tls_started = Some(Instant::now());
        }
    }

    fn finished(&self, handshake: Result<&rustls::ClientConnection, &io::Error>) {
        if let Ok(mut state) = self.state.lock() {
            state.tls_done = Some(Instant::now());
            match handshake {
                Ok(connection) => state.info = self.client.as_ref().map(|client| client.info(connection)),
                Err(err) => state.failure = Some(tls::classify(err)),
            }
        }
    }
}

/// tokio-postgres' hook for TLS, backed by checkit's rustls client, and the
/// state its [`Watcher`] fills in.
fn connector(config: &Config, server_name: &str) -> Result<(Connect<Watcher>, SharedState), ProbeError> {
    let state = SharedState::default();
    let server_name = tls::server_name(server_name)?;
    let names_ca = config.common.tls_config.ca.is_some() || config.common.tls_config.ca_file.is_some();
    let verify = match config.sslmode {
        SslMode::Disable => None,
        SslMode::Prefer => Some(Verify::Nothing),
        // libpq verifies a `require` connection when a root certificate is configured.
        SslMode::Require if !names_ca => Some(Verify::Nothing),
        SslMode::Require | SslMode::VerifyCa => Some(Verify::Chain),
        SslMode::VerifyFull => Some(Verify::ChainAndName),
    };
    let client = verify.map(|verify| sql::tls_client(&config.common.tls_config, verify)).transpose()?;
    let rustls_config = client.as_ref().map(|client| Arc::clone(&client.config));
    let watcher = Watcher { client, state: Arc::clone(&state) };
    Ok((Connect::new(rustls_config, server_name, watcher), state))
}

/// The raw socket, noting when the server first answered: with `prefer`, a
/// declined SSL request ends the `tls` phase there.
struct Watched<S> {
    inner: S,
    state: SharedState,
    /// Whether the dialogue starts with an SSL request.
    ssl_request: bool,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            let ssl_request = self.ssl_request;
            if let Ok(mut state) = self.state.lock() {
                if state.first_read.is_none() {
                    let now = Instant::now();
                    state.first_read = Some(now);
                    if ssl_request && buf.filled()[before] != b'S' {
                        // Declined (or not PostgreSQL at all): no handshake follows.
                        state.tls_done.get_or_insert(now);
                    }
                }
            }
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
