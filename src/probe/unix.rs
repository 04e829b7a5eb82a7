//! The `unix` prober (blackbox 0.28): the target is a socket path; connect,
//! optional TLS, then the `query_response` dialogue. No IP families.

use super::dialog::{self, Step};
use super::tls::TlsConfig;
use super::{Phase, ProbeCtx, ProbeError, ProbeResult, Reason};
use crate::config::Problems;
use serde::{Deserialize, Serialize};

/// The `unix:` block of a module.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The expect/send dialogue.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub query_response: Vec<Step>,
    /// TLS from the first byte.
    pub tls: bool,
    /// TLS settings for `tls: true` and `starttls` steps.
    pub tls_config: TlsConfig,
}

impl Config {
    /// Records every problem of this block.
    pub fn validate(&self, path: &str, problems: &mut Problems) {
        dialog::validate(&self.query_response, &format!("{path}.query_response"), problems);
        self.tls_config.validate(&format!("{path}.tls_config"), problems);
    }
}

/// Used for TLS when neither `tls_config.server_name` nor `hostname` is given:
/// a path is not a server name, and rustls needs one even to skip verification.
const DEFAULT_SERVER_NAME: &str = "localhost";

/// Runs one probe.
pub async fn probe(ctx: &mut ProbeCtx<'_>, config: &Config) -> ProbeResult {
    dialog::seed(ctx);
    let path = ctx.target.to_string();
    let connected = ctx.within(Phase::Connect, tokio::net::UnixStream::connect(&path)).await?;
    let stream = connected.map_err(|err| {
        ctx.log.error(format!("Error dialing unix err={err}"));
        match err.kind() {
            // EACCES and EPERM: say so plainly, as blackbox; the usual cause is the exporter's user.
            std::io::ErrorKind::PermissionDenied => ProbeError::new(
                Phase::Connect,
                Reason::Connect,
                format!("permission denied connecting to unix socket {path}: {err}"),
            ),
            _ => ProbeError::connect(&err),
        }
    })?;
    ctx.log.debug("Successfully dialed");
    let server_name = ctx.hostname.unwrap_or(DEFAULT_SERVER_NAME).to_string();
    dialog::start(ctx, config.tls, &config.query_response, &config.tls_config, &server_name, stream).await
}
