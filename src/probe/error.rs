//! Typed probe failures with a bounded "why".
//!
//! The phase and reason names become label values of `probe_failure_info`;
//! the free-text detail only ever reaches logs and debug output.

use std::fmt;

/// Where in a probe something happened. Also the `phase` label of the
/// per-protocol duration families.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum Phase {
    /// Name resolution of the target.
    Resolve,
    /// Opening the connection.
    Connect,
    /// The TLS handshake (implicit TLS or STARTTLS).
    Tls,
    /// Waiting for the response (HTTP) or a dialogue step.
    Processing,
    /// Reading the response body.
    Transfer,
    /// A protocol request (DNS query, gRPC check, SMTP command…).
    Request,
    /// Authentication (login).
    Auth,
    /// A query or command after login.
    Query,
    /// Setting up a socket (ICMP).
    Setup,
    /// Waiting for an echo reply (ICMP).
    Rtt,
    /// Validating what came back (status, regex, expectations).
    Check,
}

impl Phase {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a probe failed: a small, fixed set, safe as a label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum Reason {
    /// The name did not resolve, or not to an address of the wanted family.
    Resolve,
    /// The connection was refused.
    Refused,
    /// Any other connection failure (unreachable, reset).
    Connect,
    /// The deadline passed.
    Timeout,
    /// The TLS handshake failed for a reason other than trust.
    Tls,
    /// The peer's certificate is not trusted or not valid for the name.
    TlsUntrusted,
    /// The peer's certificate has expired (or is not yet valid).
    TlsExpired,
    /// TLS was used where it must not be, or not used where it must.
    TlsPolicy,
    /// An unexpected HTTP status, DNS rcode or gRPC status.
    Status,
    /// An HTTP version that is not in `valid_http_versions`.
    HttpVersion,
    /// A regular expression check failed.
    Regex,
    /// `expect_bytes` did not match.
    Bytes,
    /// The server refused the credentials.
    AuthFailed,
    /// The server said something the protocol does not allow here.
    UnexpectedResponse,
    /// A query ran but its result did not meet the expectation, or it failed.
    Query,
    /// The response body was larger than `body_size_limit` or undecodable.
    Body,
    /// The service reports that it is not serving (gRPC health).
    NotServing,
    /// The resolved address is outside the target allowlist.
    Denied,
    /// Reading or writing the connection failed.
    Io,
    /// The module cannot run as configured (unreadable file, bad target).
    Config,
}

impl Reason {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Every reason, for documentation and tidy tests.
    pub const ALL: [Reason; 20] = [
        Reason::Resolve,
        Reason::Refused,
        Reason::Connect,
        Reason::Timeout,
        Reason::Tls,
        Reason::TlsUntrusted,
        Reason::TlsExpired,
        Reason::TlsPolicy,
        Reason::Status,
        Reason::HttpVersion,
        Reason::Regex,
        Reason::Bytes,
        Reason::AuthFailed,
        Reason::UnexpectedResponse,
        Reason::Query,
        Reason::Body,
        Reason::NotServing,
        Reason::Denied,
        Reason::Io,
        Reason::Config,
    ];
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed probe: where, why (bounded), and the detail for humans.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{phase} failed ({reason}): {detail}")]
pub struct ProbeError {
    /// Where it failed.
    pub phase: Phase,
    /// Why, as a bounded label value.
    pub reason: Reason,
    /// Human-readable detail; never a label value.
    pub detail: String,
}

impl ProbeError {
    /// Creates a failure.
    pub fn new(phase: Phase, reason: Reason, detail: impl fmt::Display) -> Self {
        ProbeError { phase, reason, detail: detail.to_string() }
    }

    /// Classifies an I/O error from connecting.
    pub fn connect(err: &std::io::Error) -> Self {
        let reason = match err.kind() {
            std::io::ErrorKind::ConnectionRefused => Reason::Refused,
            std::io::ErrorKind::TimedOut => Reason::Timeout,
            _ => Reason::Connect,
        };
        ProbeError::new(Phase::Connect, reason, err)
    }

    /// Classifies an I/O error during a later phase.
    pub fn io(phase: Phase, err: &std::io::Error) -> Self {
        let reason = match err.kind() {
            std::io::ErrorKind::TimedOut => Reason::Timeout,
            std::io::ErrorKind::ConnectionRefused => Reason::Refused,
            _ => Reason::Io,
        };
        ProbeError::new(phase, reason, err)
    }

    /// A deadline that passed during `phase`.
    pub fn timeout(phase: Phase) -> Self {
        ProbeError::new(phase, Reason::Timeout, "deadline exceeded")
    }
}

/// The result type of every prober.
pub type ProbeResult = Result<(), ProbeError>;
