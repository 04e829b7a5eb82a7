//! Probers: one file per protocol behind one enum.
//!
//! The handler ([`run`]) owns the protocol-independent work: the one deadline,
//! a fresh [`metrics::Registry`], `probe_success`, `probe_duration_seconds` and
//! `probe_failure_info`. A prober only registers its own `probe_<proto>_*`
//! families and returns `Err(ProbeError)` with a bounded reason.

pub mod credentials;
pub mod debug;
pub mod dialog;
pub mod dns;
pub mod error;
pub mod ftp;
pub mod grpc;
pub mod http;
pub mod icmp;
pub mod imap;
pub mod metrics;
pub mod mssql;
pub mod mysql;
pub mod policy;
pub mod pop3;
pub mod postgres;
pub mod rdap;
pub mod resolve;
pub mod session;
pub mod smtp;
pub mod sql;
pub mod target;
pub mod tcp;
mod textproto;
pub mod tls;
pub mod tls_only;
pub mod unix;

use crate::config::Problems;
use crate::config::types::GoDuration;
use crate::config::yaml::{self, Value};
pub use error::{Phase, ProbeError, ProbeResult, Reason};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Duration;
use strum::{EnumString, IntoStaticStr, VariantNames};
use tokio::time::Instant;

/// The closed set of probe kinds (`prober:` in a module).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, IntoStaticStr, EnumString, VariantNames)]
#[strum(serialize_all = "snake_case")]
#[serde(rename_all = "lowercase")]
pub enum ProberKind {
    /// blackbox `http`.
    Http,
    /// blackbox `tcp`.
    Tcp,
    /// blackbox `icmp`.
    Icmp,
    /// blackbox `dns`.
    Dns,
    /// blackbox `grpc` (standard health check).
    Grpc,
    /// blackbox `unix` (0.28).
    Unix,
    /// checkit: PostgreSQL login and query.
    Postgres,
    /// checkit: MySQL/MariaDB login and query.
    Mysql,
    /// checkit: MSSQL login and query.
    Mssql,
    /// checkit: FTP/FTPS login.
    Ftp,
    /// checkit: IMAP login.
    Imap,
    /// checkit: SMTP dialogue.
    Smtp,
    /// checkit: POP3 login.
    Pop3,
    /// checkit: TLS handshake only (certificate metrics).
    Tls,
    /// checkit: domain expiry via RDAP.
    Rdap,
}

impl ProberKind {
    /// The `prober:` value.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A named probe configuration (`modules.<name>` in blackbox.yml).
///
/// Like blackbox, every blackbox block is always present with its defaults,
/// whatever the prober; checkit's own blocks are present when written.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Serialize)]
pub struct Module {
    /// Which prober runs.
    pub prober: ProberKind,
    /// Module timeout; zero means "use the scrape timeout".
    pub timeout: GoDuration,
    /// `http:` block.
    pub http: http::Config,
    /// `tcp:` block.
    pub tcp: tcp::Config,
    /// `icmp:` block.
    pub icmp: icmp::Config,
    /// `dns:` block.
    pub dns: dns::Config,
    /// `grpc:` block.
    pub grpc: grpc::Config,
    /// `unix:` block.
    pub unix: unix::Config,
    /// `postgres:` block (checkit).
    pub postgres: Option<postgres::Config>,
    /// `mysql:` block (checkit).
    pub mysql: Option<mysql::Config>,
    /// `mssql:` block (checkit).
    pub mssql: Option<mssql::Config>,
    /// `ftp:` block (checkit).
    pub ftp: Option<ftp::Config>,
    /// `imap:` block (checkit).
    pub imap: Option<imap::Config>,
    /// `smtp:` block (checkit).
    pub smtp: Option<smtp::Config>,
    /// `pop3:` block (checkit).
    pub pop3: Option<pop3::Config>,
    /// `tls:` block (checkit).
    pub tls: Option<tls_only::Config>,
    /// `rdap:` block (checkit).
    pub rdap: Option<rdap::Config>,
}

/// The module as written, before each block is decoded on its own so that
/// problems in several blocks are all reported.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModule {
    prober: Option<String>,
    timeout: Option<Value>,
    http: Option<Value>,
    tcp: Option<Value>,
    icmp: Option<Value>,
    dns: Option<Value>,
    grpc: Option<Value>,
    unix: Option<Value>,
    postgres: Option<Value>,
    mysql: Option<Value>,
    mssql: Option<Value>,
    ftp: Option<Value>,
    imap: Option<Value>,
    smtp: Option<Value>,
    pop3: Option<Value>,
    tls: Option<Value>,
    rdap: Option<Value>,
}

fn block<T: serde::de::DeserializeOwned + Default>(value: Option<Value>, path: &str, problems: &mut Problems) -> T {
    match value {
        None | Some(Value::Null) => T::default(),
        Some(value) => {
            let partial = yaml::from_value_each(value, path);
            problems.0.extend(partial.problems);
            partial.value.unwrap_or_default()
        }
    }
}

fn optional_block<T: serde::de::DeserializeOwned + Default>(
    value: Option<Value>,
    path: &str,
    wanted: bool,
    problems: &mut Problems,
) -> Option<T> {
    match value {
        None if wanted => Some(T::default()),
        None => None,
        Some(value) => Some(block(Some(value), path, problems)),
    }
}

impl Module {
    /// Decodes and validates one module, recording every problem under `path`.
    pub fn from_yaml(value: Value, path: &str, problems: &mut Problems) -> Option<Module> {
        let raw: RawModule = match yaml::from_value(value, path) {
            Ok(raw) => raw,
            Err(problem) => {
                problems.0.push(problem);
                return None;
            }
        };
        let prober = match raw.prober.as_deref() {
            None => {
                problems.push(format!("{path}.prober"), "prober must be set");
                None
            }
            Some(name) => {
                let kind = name.parse().ok();
                if kind.is_none() {
                    problems.push(
                        format!("{path}.prober"),
                        format!("prober '{name}' is not valid (known: {})", ProberKind::VARIANTS.join(", ")),
                    );
                }
                kind
            }
        };
        let timeout: GoDuration = block(raw.timeout, &format!("{path}.timeout"), problems);
        let is = |kind: ProberKind| prober == Some(kind);
        let module = Module {
            prober: prober.unwrap_or(ProberKind::Http),
            timeout,
            http: block(raw.http, &format!("{path}.http"), problems),
            tcp: block(raw.tcp, &format!("{path}.tcp"), problems),
            icmp: block(raw.icmp, &format!("{path}.icmp"), problems),
            dns: block(raw.dns, &format!("{path}.dns"), problems),
            grpc: block(raw.grpc, &format!("{path}.grpc"), problems),
            unix: block(raw.unix, &format!("{path}.unix"), problems),
            postgres: optional_block(raw.postgres, &format!("{path}.postgres"), is(ProberKind::Postgres), problems),
            mysql: optional_block(raw.mysql, &format!("{path}.mysql"), is(ProberKind::Mysql), problems),
            mssql: optional_block(raw.mssql, &format!("{path}.mssql"), is(ProberKind::Mssql), problems),
            ftp: optional_block(raw.ftp, &format!("{path}.ftp"), is(ProberKind::Ftp), problems),
            imap: optional_block(raw.imap, &format!("{path}.imap"), is(ProberKind::Imap), problems),
            smtp: optional_block(raw.smtp, &format!("{path}.smtp"), is(ProberKind::Smtp), problems),
            pop3: optional_block(raw.pop3, &format!("{path}.pop3"), is(ProberKind::Pop3), problems),
            tls: optional_block(raw.tls, &format!("{path}.tls"), is(ProberKind::Tls), problems),
            rdap: optional_block(raw.rdap, &format!("{path}.rdap"), is(ProberKind::Rdap), problems),
        };
        module.validate(path, problems);
        prober.map(|_| module)
    }

    /// Semantic validation of every block, used or not (as blackbox does). A
    /// block that failed to decode is skipped: validating its defaults instead
    /// would report problems the user did not write.
    fn validate(&self, path: &str, problems: &mut Problems) {
        let undecodable = |block: &str, problems: &Problems| {
            let block_path = format!("{path}.{block}");
            problems.0.iter().any(|problem| {
                problem.path == block_path
                    || problem.path.starts_with(&format!("{block_path}."))
                    || problem.path.starts_with(&format!("{block_path}["))
            })
        };
        macro_rules! validate {
            ($($field:ident),*) => {$(
                if !undecodable(stringify!($field), problems) {
                    self.$field.validate(&format!("{path}.{}", stringify!($field)), problems);
                }
            )*};
        }
        macro_rules! validate_optional {
            ($($field:ident),*) => {$(
                if let Some(config) = &self.$field {
                    if !undecodable(stringify!($field), problems) {
                        config.validate(&format!("{path}.{}", stringify!($field)), problems);
                    }
                }
            )*};
        }
        validate!(http, tcp, icmp, grpc, unix);
        // blackbox checks the dns block (query_name is required) only for dns modules.
        if self.prober == ProberKind::Dns && !undecodable("dns", problems) {
            self.dns.validate(&format!("{path}.dns"), problems);
        }
        validate_optional!(postgres, mysql, mssql, ftp, imap, smtp, pop3, tls, rdap);
    }
}

/// The per-probe log: kept for `debug=true` and `/logs`, and mirrored to tracing.
///
/// Lines are stored unformatted and rendered (timestamp, logfmt quoting) only
/// when someone reads them: most probes' logs are never read, and formatting
/// them cost more than a TCP connect probe itself.
#[derive(Debug, Default, Clone)]
pub struct ProbeLog {
    lines: Vec<LogLine>,
}

/// One line of a [`ProbeLog`]; `Display` renders it as blackbox does.
#[derive(Debug, Clone)]
pub struct LogLine {
    at: std::time::SystemTime,
    level: &'static str,
    message: Message,
}

/// A log line's message. The lines every probe writes keep their values and
/// are worded only when read: formatting them on every probe (two floats and
/// an address) cost a tenth of a TCP probe's own work.
#[derive(Debug, Clone)]
pub enum Message {
    /// Worded already.
    Text(Cow<'static, str>),
    /// `Beginning probe`.
    Begin { prober: &'static str, timeout: Duration },
    /// `Resolved target address`.
    Resolved { target: Box<str>, ip: std::net::IpAddr },
    /// `Probe succeeded`.
    Succeeded { duration: Duration },
}

impl From<Cow<'static, str>> for Message {
    fn from(text: Cow<'static, str>) -> Self {
        Message::Text(text)
    }
}

impl From<String> for Message {
    fn from(text: String) -> Self {
        Message::Text(text.into())
    }
}

impl From<&'static str> for Message {
    fn from(text: &'static str) -> Self {
        Message::Text(text.into())
    }
}

impl Message {
    /// The words, with any URL password redacted (a redirect's `Location` or
    /// an error may carry credentials).
    fn text(&self) -> Cow<'_, str> {
        match self {
            Message::Text(text) => crate::config::types::redact_url_passwords(text),
            Message::Begin { prober, timeout } => {
                format!("Beginning probe probe={prober} timeout_seconds={}", timeout.as_secs_f64()).into()
            }
            Message::Resolved { target, ip } => format!("Resolved target address target={target} ip={ip}").into(),
            Message::Succeeded { duration } => {
                format!("Probe succeeded duration_seconds={}", duration.as_secs_f64()).into()
            }
        }
    }
}

impl std::fmt::Display for LogLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = chrono::DateTime::<chrono::Utc>::from(self.at);
        let timestamp = at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        write!(f, "ts={timestamp} level={} msg={:?}", self.level, self.message.text().as_ref())
    }
}

impl ProbeLog {
    /// An empty log with room for a simple probe's lines.
    pub fn new() -> Self {
        ProbeLog { lines: Vec::with_capacity(8) }
    }
    fn push(&mut self, level: &'static str, message: impl Into<Message>) {
        let message = message.into();
        // Fields are evaluated only when debug logging is on.
        tracing::debug!(message = message.text().as_ref());
        self.lines.push(LogLine { at: std::time::SystemTime::now(), level, message });
    }
    /// A routine step.
    pub fn debug(&mut self, message: impl Into<Message>) {
        self.push("debug", message);
    }
    /// A notable step.
    pub fn info(&mut self, message: impl Into<Message>) {
        self.push("info", message);
    }
    /// A failure.
    pub fn error(&mut self, message: impl Into<Message>) {
        self.push("error", message);
    }
    /// The lines so far.
    pub fn lines(&self) -> &[LogLine] {
        &self.lines
    }
    /// The lines, rendered.
    pub fn iter(&self) -> impl Iterator<Item = String> + '_ {
        self.lines.iter().map(ToString::to_string)
    }
    /// The rendered lines joined by `separator`.
    pub fn join(&self, separator: &str) -> String {
        self.iter().collect::<Vec<_>>().join(separator)
    }
}

/// Everything a prober gets for one probe.
pub struct ProbeCtx<'a> {
    /// The `target` parameter.
    pub target: &'a str,
    /// The `hostname` parameter, if given.
    pub hostname: Option<&'a str>,
    /// When the probe must be over.
    pub deadline: Instant,
    /// The fresh per-probe registry.
    pub registry: metrics::Registry,
    /// The per-probe log.
    pub log: ProbeLog,
    /// The phase running now, so that a timeout names where it struck.
    pub phase: Phase,
    /// The target allowlist, checked again after every resolution.
    pub policy: &'a policy::TargetPolicy,
    /// What probes share across runs (rdap's client, bootstrap and cache).
    pub env: &'a Env,
}

/// What probes share across runs, built once by `app` (and by each test that
/// wants its own) and handed to [`run`]: nothing a prober keeps between probes
/// lives in a process-wide static, so reloads and tests control it.
#[derive(Debug, Default)]
pub struct Env {
    /// The rdap prober's HTTP client, bootstrap registries and answer cache.
    pub rdap: rdap::Env,
    /// The tcp prober's idle sockets, reused by bare connect checks.
    pub tcp: tcp::Sockets,
}

impl ProbeCtx<'_> {
    /// Time left before the deadline.
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Marks the start of a phase (for timeout attribution).
    pub fn enter(&mut self, phase: Phase) {
        self.phase = phase;
    }

    /// Runs `future` within the probe deadline, failing with a timeout in `phase`.
    pub async fn within<T>(
        &mut self,
        phase: Phase,
        future: impl std::future::Future<Output = T>,
    ) -> Result<T, ProbeError> {
        self.phase = phase;
        tokio::time::timeout_at(self.deadline, future).await.map_err(|_| ProbeError::timeout(phase))
    }
}

/// The result of one probe, ready to be encoded.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// All families, including the handler's.
    pub registry: metrics::Registry,
    /// The failure, if any.
    pub error: Option<ProbeError>,
    /// The per-probe log.
    pub log: ProbeLog,
    /// Wall time of the prober.
    pub duration: Duration,
}

impl Outcome {
    /// True when the probe succeeded.
    pub fn success(&self) -> bool {
        self.error.is_none()
    }
}

/// HELP strings shared by several probers, exactly as blackbox writes them.
pub mod help {
    /// `probe_success`.
    pub const SUCCESS: &str = "Displays whether or not the probe was a success";
    /// `probe_duration_seconds`.
    pub const DURATION: &str = "Returns how long the probe took to complete in seconds";
    /// `probe_failure_info` (checkit).
    pub const FAILURE_INFO: &str = "Why the probe failed: the phase and a reason from a fixed set; absent on success";
}

/// The longest probe budget: a scrape-timeout header above it (`inf`, `1e19`)
/// is clamped here, so no header value can overflow a `Duration` or an
/// `Instant`. Prometheus never scrapes with a timeout longer than this.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);

/// Blackbox's timeout: the scrape timeout header minus the offset, capped by the
/// module timeout (`prober/handler.go` `getTimeout`). Applied in [`run`] only.
///
/// A header that is not a positive finite number (NaN, negative, zero) means
/// "no header", like blackbox's zero; a huge one is clamped to [`MAX_TIMEOUT`].
pub fn effective_timeout(module_timeout: Duration, scrape_timeout_header: Option<f64>, offset: f64) -> Duration {
    let scrape = match scrape_timeout_header {
        Some(seconds) if seconds > 0.0 => seconds.min(MAX_TIMEOUT.as_secs_f64()),
        _ => 120.0,
    };
    let max = scrape - if offset.is_finite() { offset } else { 0.0 };
    let module = module_timeout.as_secs_f64();
    let seconds = if (module > 0.0 && module < max) || max < 0.0 { module } else { max };
    Duration::try_from_secs_f64(seconds.max(0.0)).unwrap_or(MAX_TIMEOUT).min(MAX_TIMEOUT)
}

/// Runs one probe of `module` against `target` within `timeout`.
pub async fn run(
    module: &Module,
    target: &str,
    hostname: Option<&str>,
    timeout: Duration,
    policy: &policy::TargetPolicy,
    env: &Env,
) -> Outcome {
    let start = Instant::now();
    let mut ctx = ProbeCtx {
        target,
        hostname,
        deadline: start.checked_add(timeout.min(MAX_TIMEOUT)).unwrap_or(start),
        registry: metrics::Registry::new(),
        log: ProbeLog::new(),
        phase: Phase::Resolve,
        policy,
        env,
    };
    ctx.log.info(Message::Begin { prober: module.prober.as_str(), timeout });
    let deadline = ctx.deadline;
    let result = match tokio::time::timeout_at(deadline, dispatch(&mut ctx, module)).await {
        Ok(result) => result,
        Err(_) => Err(ProbeError::timeout(ctx.phase)),
    };
    let duration = start.elapsed();
    let mut registry = std::mem::take(&mut ctx.registry);
    registry.set("probe_duration_seconds", help::DURATION, duration.as_secs_f64());
    registry.set("probe_success", help::SUCCESS, if result.is_ok() { 1.0 } else { 0.0 });
    match &result {
        Ok(()) => ctx.log.info(Message::Succeeded { duration }),
        Err(err) => {
            registry.set_with(
                "probe_failure_info",
                help::FAILURE_INFO,
                &[("phase", err.phase.as_str()), ("reason", err.reason.as_str())],
                1.0,
            );
            ctx.log.error(format!("Probe failed duration_seconds={} err={err}", duration.as_secs_f64()));
        }
    }
    Outcome { registry, error: result.err(), log: ctx.log, duration }
}

/// Runs the module's prober. Each prober's future is boxed: the futures of
/// the database and gRPC probers are many times the size of a TCP or HTTP
/// probe's, and unboxed every `/probe` request would hold (and allocate) the
/// largest of them, whichever prober it runs.
async fn dispatch(ctx: &mut ProbeCtx<'_>, module: &Module) -> ProbeResult {
    fn block<T: Default + Clone>(config: &Option<T>) -> Cow<'_, T> {
        match config {
            Some(config) => Cow::Borrowed(config),
            None => Cow::Owned(T::default()),
        }
    }
    match module.prober {
        ProberKind::Http => Box::pin(http::probe(ctx, &module.http)).await,
        ProberKind::Tcp => Box::pin(tcp::probe(ctx, &module.tcp)).await,
        ProberKind::Icmp => Box::pin(icmp::probe(ctx, &module.icmp)).await,
        ProberKind::Dns => Box::pin(dns::probe(ctx, &module.dns)).await,
        ProberKind::Grpc => Box::pin(grpc::probe(ctx, &module.grpc)).await,
        ProberKind::Unix => Box::pin(unix::probe(ctx, &module.unix)).await,
        ProberKind::Postgres => Box::pin(postgres::probe(ctx, &block(&module.postgres))).await,
        ProberKind::Mysql => Box::pin(mysql::probe(ctx, &block(&module.mysql))).await,
        ProberKind::Mssql => Box::pin(mssql::probe(ctx, &block(&module.mssql))).await,
        ProberKind::Ftp => Box::pin(ftp::probe(ctx, &block(&module.ftp))).await,
        ProberKind::Imap => Box::pin(imap::probe(ctx, &block(&module.imap))).await,
        ProberKind::Smtp => Box::pin(smtp::probe(ctx, &block(&module.smtp))).await,
        ProberKind::Pop3 => Box::pin(pop3::probe(ctx, &block(&module.pop3))).await,
        ProberKind::Tls => Box::pin(tls_only::probe(ctx, &block(&module.tls))).await,
        ProberKind::Rdap => Box::pin(rdap::probe(ctx, &block(&module.rdap))).await,
    }
}

/// Modules by name.
pub type Modules = BTreeMap<String, Module>;

/// Decodes `modules:` (name → block), every problem under `modules.<name>`.
pub fn modules_from_yaml(modules: BTreeMap<String, Value>, problems: &mut Problems) -> Modules {
    let mut decoded = Modules::new();
    for (name, module) in modules {
        if let Some(module) = Module::from_yaml(module, &format!("modules.{name}"), problems) {
            decoded.insert(name, module);
        }
    }
    decoded
}

/// Modules given as YAML text by name, as a remote agent receives its
/// assigned ones (each rendered by `yaml::to_string`); relative paths in them
/// are relative to the working directory.
pub fn modules_from_texts(texts: &BTreeMap<String, String>) -> Result<Modules, crate::config::Error> {
    let mut problems = Problems::default();
    let mut document = yaml::Mapping::new();
    for (name, text) in texts {
        match yaml::parse_value(text) {
            Ok(value) => {
                document.insert(Value::String(name.clone()), value);
            }
            Err(problem) => problems.push(format!("modules.{name}"), problem.message),
        }
    }
    let mut root = yaml::Mapping::new();
    root.insert(Value::String("modules".into()), Value::Mapping(document));
    let mut root = Value::Mapping(root);
    let base_dir = crate::config::paths::base_dir_of(std::path::Path::new("checkit.yml"));
    crate::config::paths::resolve_file_paths(&mut root, &base_dir);
    let modules = match root.get("modules") {
        Some(Value::Mapping(modules)) => {
            modules.iter().filter_map(|(name, module)| Some((name.as_str()?.to_string(), module.clone()))).collect()
        }
        _ => BTreeMap::new(),
    };
    let modules = modules_from_yaml(modules, &mut problems);
    if problems.is_empty() { Ok(modules) } else { Err(crate::config::Error::Invalid(problems.0)) }
}

/// Parses a document of only `modules:` (unit tests of the probers' blocks).
#[cfg(test)]
pub(crate) fn parse_modules(text: &str) -> Result<Modules, crate::config::Error> {
    let mut value = yaml::parse_value(text).map_err(|problem| crate::config::Error::Invalid(vec![problem]))?;
    crate::config::paths::resolve_file_paths(
        &mut value,
        &crate::config::paths::base_dir_of(std::path::Path::new("checkit.yml")),
    );
    let modules = match value.get("modules") {
        Some(Value::Mapping(modules)) => {
            modules.iter().filter_map(|(name, module)| Some((name.as_str()?.to_string(), module.clone()))).collect()
        }
        _ => BTreeMap::new(),
    };
    let mut problems = Problems::default();
    let modules = modules_from_yaml(modules, &mut problems);
    if problems.is_empty() { Ok(modules) } else { Err(crate::config::Error::Invalid(problems.0)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_future_does_not_hold_every_probers_state() {
        // Unboxed, `run` was ~24 KiB in a debug build (the largest prober's
        // future), allocated by every `/probe` request and scheduled check.
        let policy = policy::TargetPolicy::default();
        let module = Module::from_yaml(yaml::parse_value("prober: tcp\n").unwrap(), "m", &mut Problems::default());
        let env = Env::default();
        let future = run(module.as_ref().unwrap(), "127.0.0.1:1", None, Duration::from_secs(1), &policy, &env);
        assert!(std::mem::size_of_val(&future) < 2048, "{} bytes", std::mem::size_of_val(&future));
    }

    #[test]
    fn timeout_table_matches_blackbox() {
        let s = Duration::from_secs;
        for (module, header, offset, expected) in [
            (s(0), Some(15.0), 0.5, 14.5),
            (s(20), Some(15.0), 0.5, 14.5),
            (s(5), Some(15.0), 0.5, 5.0),
            (s(5), Some(15.0), 0.0, 5.0),
            (s(10), None, 0.5, 10.0),
            (s(10), Some(10.0), 0.5, 9.5),
            (s(0), None, 0.5, 119.5),
            (s(0), None, 0.0, 120.0),
            (s(0), Some(3.0), 0.5, 2.5),
            (s(0), Some(0.2), 0.5, 0.0),
            (s(0), Some(f64::NAN), 0.5, 119.5),
            (s(0), Some(-1.0), 0.5, 119.5),
            (s(0), Some(f64::INFINITY), 0.0, MAX_TIMEOUT.as_secs_f64()),
            (s(0), Some(1e19), 0.0, MAX_TIMEOUT.as_secs_f64()),
            (s(7), Some(1e300), 0.5, 7.0),
        ] {
            assert_eq!(
                effective_timeout(module, header, offset).as_secs_f64(),
                expected,
                "{module:?} {header:?} {offset}"
            );
        }
    }
}
