//! Shared pieces of the database probers (`postgres`, `mysql`, `mssql`): the
//! keys of their blocks ([`Common`]), the target address and TCP dial, the password source, the query expectation
//! and `metrics!`, each prober's [`PhaseFamilies`].

use super::resolve::{self, IpProtocol};
use super::session::PhaseFamilies;
use super::tls::{self, TlsConfig, TlsInfo};
use super::{Phase, ProbeCtx, ProbeError, Reason};
use crate::config::Problems;
use crate::config::types::{Regex, Secret};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// A byte stream a prober can swap from plain to TLS behind one type.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The phases every database prober pre-seeds, in order.
pub const PHASES: [Phase; 5] = [Phase::Resolve, Phase::Connect, Phase::Tls, Phase::Auth, Phase::Query];

/// The [`PhaseFamilies`] of database `$proto` (`"mysql"`) named `$title` in HELP texts.
macro_rules! metrics {
    ($proto:literal, $title:literal) => {
        $crate::probe::session::PhaseFamilies {
            duration: concat!("probe_", $proto, "_duration_seconds"),
            duration_help: concat!(
                "Duration of ",
                $title,
                " probe phases in seconds: resolve, connect, tls, auth, query"
            ),
            ssl: concat!("probe_", $proto, "_ssl"),
            ssl_help: concat!("Whether the ", $title, " session is encrypted with TLS"),
            phases: &$crate::probe::sql::PHASES,
        }
    };
}
pub(crate) use metrics;

/// Records `probe_<proto>_version_info{version} 1`.
pub fn record_version(ctx: &mut ProbeCtx<'_>, name: &'static str, help: &'static str, version: &str) {
    ctx.registry.set_with(name, help, &[("version", version)], 1.0);
}

/// Resolves the target (`host[:port]`, `default_port` when absent) with the
/// module's address-family policy, then dials the chosen address once.
/// Returns the stream and the host as written (for TLS server names).
pub async fn connect(
    ctx: &mut ProbeCtx<'_>,
    metrics: PhaseFamilies,
    default_port: u16,
    preferred: IpProtocol,
    fallback: bool,
) -> Result<(TcpStream, String), ProbeError> {
    let (host, port) = resolve::split_host_port(ctx.target, Some(default_port))
        .map_err(|err| ProbeError::new(Phase::Resolve, Reason::Config, err))?;
    let resolved = resolve::resolve(ctx, &host, preferred, fallback).await?;
    metrics.add(ctx, Phase::Resolve, resolved.lookup_time);
    let address = std::net::SocketAddr::new(resolved.ip, port);
    ctx.log.info(format!("Dialing address={address}"));
    let start = std::time::Instant::now();
    let dialed = ctx.within(Phase::Connect, TcpStream::connect(address)).await;
    metrics.add(ctx, Phase::Connect, start.elapsed());
    let stream = dialed?.map_err(|err| {
        ctx.log.error(format!("Error dialing target address={address} err={err}"));
        ProbeError::connect(&err)
    })?;
    // Login dialogues are small request/response exchanges.
    let _ = stream.set_nodelay(true);
    Ok((stream, host))
}

/// How much of the server's certificate a TLS mode checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// Encrypt only (libpq `prefer`/`require`, MySQL `PREFERRED`/`REQUIRED`).
    Nothing,
    /// The chain must lead to a trusted CA; the name is not checked.
    Chain,
    /// The chain and the server name.
    ChainAndName,
}

/// Builds checkit's rustls client for a TLS mode. `tls_config` still supplies
/// the CA, client certificate, versions and server name.
pub fn tls_client(tls_config: &TlsConfig, verify: Verify) -> Result<tls::Client, ProbeError> {
    let built = match verify {
        Verify::Nothing => tls::Client::new(&TlsConfig { insecure_skip_verify: true, ..tls_config.clone() }, &[]),
        Verify::Chain => tls::Client::new_without_name_check(tls_config, &[]),
        Verify::ChainAndName => tls::Client::new(tls_config, &[]),
    };
    built.map_err(|err| ProbeError::new(Phase::Tls, Reason::Config, err))
}

/// The name to verify and send as SNI: `tls_config.server_name`, else the
/// `hostname` parameter, else the target host.
pub fn server_name(ctx: &ProbeCtx<'_>, tls_config: &TlsConfig, host: &str) -> String {
    tls_config.server_name.as_deref().or(ctx.hostname).unwrap_or(host).to_string()
}

/// Performs a TLS handshake over `stream` within the deadline, timing the
/// `tls` phase and recording the TLS families and `ssl_metric` on success.
pub async fn tls_handshake<S>(
    ctx: &mut ProbeCtx<'_>,
    metrics: PhaseFamilies,
    client: &tls::Client,
    server_name: &str,
    stream: S,
) -> Result<tokio_rustls::client::TlsStream<S>, ProbeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let name = tls::server_name(server_name)?;
    let connector = tokio_rustls::TlsConnector::from(client.config.clone());
    let start = std::time::Instant::now();
    let handshake = ctx.within(Phase::Tls, connector.connect(name, stream)).await;
    metrics.add(ctx, Phase::Tls, start.elapsed());
    match handshake? {
        Ok(stream) => {
            let info = client.info(stream.get_ref().1);
            record_tls(ctx, metrics, &info);
            Ok(stream)
        }
        Err(err) => {
            ctx.log.error(format!("TLS handshake failed err={err}"));
            Err(ProbeError::new(Phase::Tls, tls::classify(&err), err))
        }
    }
}

/// Records a successful handshake: the `probe_ssl_*` / `probe_tls_*`
/// families (the cipher too) and `probe_<proto>_ssl 1`.
pub fn record_tls(ctx: &mut ProbeCtx<'_>, metrics: PhaseFamilies, info: &TlsInfo) {
    metrics.tls_done(ctx, info);
    ctx.log.info(format!("TLS handshake done version={:?} cipher={}", info.version, info.cipher));
}

/// The keys every database prober's block shares, flattened into each
/// block (`postgres:`, `mysql:`, `mssql:`) beside its own TLS mode key.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Common {
    /// Address family tried first.
    pub preferred_ip_protocol: IpProtocol,
    /// Whether the other family may be used.
    pub ip_protocol_fallback: bool,
    /// The login (required).
    pub user: String,
    /// File holding the password.
    pub password_file: Option<String>,
    /// Environment variable holding the password.
    pub password_env: Option<String>,
    /// Database to use after login; the server's default for the login otherwise.
    pub database: Option<String>,
    /// TLS settings (CA, client certificate, server name).
    pub tls_config: TlsConfig,
    /// The application name the server shows for the session.
    pub application_name: String,
    /// A query to run after login.
    pub query: Option<String>,
    /// Minimum number of rows the query (its first result set) must return.
    pub expect_rows: Option<u64>,
    /// The first column of the first row must equal this text.
    pub expect_value: Option<String>,
    /// The first column of the first row must match this regular expression.
    pub expect_value_regex: Option<Regex>,
}

impl Default for Common {
    fn default() -> Self {
        Common {
            preferred_ip_protocol: IpProtocol::Ip6,
            ip_protocol_fallback: true,
            user: String::new(),
            password_file: None,
            password_env: None,
            database: None,
            tls_config: TlsConfig::default(),
            application_name: "checkit".into(),
            query: None,
            expect_rows: None,
            expect_value: None,
            expect_value_regex: None,
        }
    }
}

impl Common {
    /// Records every problem of the shared keys.
    pub fn validate(&self, path: &str, problems: &mut Problems) {
        validate_login(path, &self.user, &self.password_file, &self.password_env, problems);
        self.tls_config.validate(&format!("{path}.tls_config"), problems);
        self.expectation().validate(path, problems);
    }

    /// Records that `verifying` (a TLS mode that verifies the certificate,
    /// named `mode` in the message) contradicts `insecure_skip_verify`.
    pub fn validate_verifying(&self, path: &str, verifying: bool, mode: &str, problems: &mut Problems) {
        if verifying && self.tls_config.insecure_skip_verify {
            problems.push(
                format!("{path}.tls_config.insecure_skip_verify"),
                format!("insecure_skip_verify contradicts {mode}"),
            );
        }
    }

    /// Seeds `metrics`, reads the password (a rotated file is picked up) and
    /// dials the target: the stream and the host as written.
    pub async fn open(
        &self,
        ctx: &mut ProbeCtx<'_>,
        metrics: PhaseFamilies,
        default_port: u16,
    ) -> Result<(Option<Secret>, TcpStream, String), ProbeError> {
        metrics.seed(ctx);
        let password = super::credentials::password(self.password_file.as_deref(), self.password_env.as_deref())?;
        let (stream, host) =
            connect(ctx, metrics, default_port, self.preferred_ip_protocol, self.ip_protocol_fallback).await?;
        Ok((password, stream, host))
    }

    /// What the module expects of its query.
    pub fn expectation(&self) -> Expectation<'_> {
        Expectation {
            query: self.query.as_deref(),
            rows: self.expect_rows,
            value: self.expect_value.as_deref(),
            regex: self.expect_value_regex.as_ref(),
        }
    }
}

/// Records the problems of the login keys shared by the database probers.
pub fn validate_login(
    path: &str,
    user: &str,
    password_file: &Option<String>,
    password_env: &Option<String>,
    problems: &mut Problems,
) {
    if user.is_empty() {
        problems.push(format!("{path}.user"), "user must be set");
    }
    if password_file.is_some() && password_env.is_some() {
        problems.push(format!("{path}.password_file"), "at most one of password_file and password_env must be set");
    }
    if let Some(file) = password_file {
        if let Err(err) = std::fs::metadata(file) {
            problems.push(format!("{path}.password_file"), format!("unable to read password file {file:?}: {err}"));
        }
    }
    // The variable itself is read at probe time, so a config stays valid
    // wherever it is checked (`--config.check` on a build host).
    if password_env.as_deref().is_some_and(str::is_empty) {
        problems.push(format!("{path}.password_env"), "password_env must name an environment variable");
    }
}

/// What a module expects of its query's result.
#[derive(Debug, Clone, Copy)]
pub struct Expectation<'a> {
    /// The query; without one nothing else applies.
    pub query: Option<&'a str>,
    /// The minimum number of rows.
    pub rows: Option<u64>,
    /// The first column of the first row, as text.
    pub value: Option<&'a str>,
    /// A regular expression the first column of the first row must match.
    pub regex: Option<&'a Regex>,
}

/// What a query returned, as far as expectations look at it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryResult {
    /// Rows returned.
    pub rows: u64,
    /// The first column of the first row as text: `None` without rows,
    /// `Some(None)` for SQL NULL.
    pub first_value: Option<Option<String>>,
}

impl Expectation<'_> {
    /// Records expectation keys that cannot apply.
    pub fn validate(&self, path: &str, problems: &mut Problems) {
        if let Some(query) = self.query {
            if query.trim().is_empty() {
                problems.push(format!("{path}.query"), "query must not be empty");
            }
            return;
        }
        for (set, key) in [
            (self.rows.is_some(), "expect_rows"),
            (self.value.is_some(), "expect_value"),
            (self.regex.is_some(), "expect_value_regex"),
        ] {
            if set {
                problems.push(format!("{path}.{key}"), format!("{key} needs a query"));
            }
        }
    }

    /// Checks a result, failing in phase `query` with reason `query`.
    pub fn check(&self, result: &QueryResult) -> Result<(), ProbeError> {
        let fail = |detail: String| Err(ProbeError::new(Phase::Query, Reason::Query, detail));
        if let Some(min) = self.rows {
            if result.rows < min {
                return fail(format!("query returned {} row(s), expected at least {min}", result.rows));
            }
        }
        if self.value.is_none() && self.regex.is_none() {
            return Ok(());
        }
        let first = match &result.first_value {
            None => return fail("query returned no rows, expected a first value".into()),
            Some(None) => return fail("the first value is NULL".into()),
            Some(Some(first)) => first.as_str(),
        };
        if let Some(expected) = self.value {
            if first != expected {
                return fail(format!("the first value is {first:?}, expected {expected:?}"));
            }
        }
        if let Some(regex) = self.regex {
            if !regex.is_match(first) {
                return fail(format!("the first value {first:?} does not match {:?}", regex.as_str()));
            }
        }
        Ok(())
    }
}

/// Maps an I/O failure of a hand-written wire protocol (MySQL, TDS): bytes
/// that are not the protocol's framing, or a connection closed mid-answer,
/// are an unexpected response; the rest keep their I/O reason.
pub fn io_failure(phase: Phase, err: std::io::Error) -> ProbeError {
    match err.kind() {
        std::io::ErrorKind::InvalidData => ProbeError::new(phase, Reason::UnexpectedResponse, err),
        std::io::ErrorKind::UnexpectedEof => {
            ProbeError::new(phase, Reason::UnexpectedResponse, "the server closed the connection")
        }
        _ => ProbeError::io(phase, &err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(rows: u64, first: Option<Option<&str>>) -> QueryResult {
        QueryResult { rows, first_value: first.map(|value| value.map(str::to_string)) }
    }

    #[test]
    fn expectations_check_rows_value_and_regex() {
        let regex = Regex::new("^1[0-9]$").unwrap();
        let all = Expectation { query: Some("select"), rows: Some(1), value: Some("15"), regex: Some(&regex) };
        assert!(all.check(&result(1, Some(Some("15")))).is_ok());
        for bad in [result(0, None), result(1, Some(None)), result(2, Some(Some("16"))), result(1, Some(Some("x")))] {
            let err = all.check(&bad).unwrap_err();
            assert_eq!((err.phase, err.reason), (Phase::Query, Reason::Query), "{bad:?}");
        }
        let rows_only = Expectation { query: Some("select"), rows: Some(2), value: None, regex: None };
        assert!(rows_only.check(&result(2, Some(None))).is_ok());
        assert!(rows_only.check(&result(1, Some(None))).is_err());
        let nothing = Expectation { query: Some("select"), rows: None, value: None, regex: None };
        assert!(nothing.check(&result(0, None)).is_ok());
    }

    #[test]
    fn expectations_without_a_query_are_problems() {
        let regex = Regex::new("x").unwrap();
        let mut problems = Problems::default();
        Expectation { query: None, rows: Some(1), value: Some("a"), regex: Some(&regex) }.validate("m", &mut problems);
        let paths = problems.paths();
        assert_eq!(paths, ["m.expect_rows", "m.expect_value", "m.expect_value_regex"]);
    }

    #[test]
    fn login_keys_are_validated() {
        let mut problems = Problems::default();
        validate_login("m", "", &Some("/nonexistent/checkit-password".into()), &Some(String::new()), &mut problems);
        let paths = problems.paths();
        assert_eq!(paths, ["m.user", "m.password_file", "m.password_file", "m.password_env"]);
    }
}
