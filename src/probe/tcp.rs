//! The `tcp` prober: one connection to `host:port`, optional implicit TLS,
//! then the `query_response` dialogue (see [`super::dialog`]).

use super::dialog::{self, Step};
use super::resolve::{self, IpProtocol};
use super::tls::TlsConfig;
use super::{Phase, ProbeCtx, ProbeError, ProbeResult, Reason};
use crate::config::Problems;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};

/// The `tcp:` block of a module.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address family tried first (`ip6` by default, as blackbox).
    pub preferred_ip_protocol: IpProtocol,
    /// Fall back to the other family when the preferred one has no address.
    pub ip_protocol_fallback: bool,
    /// Local address to connect from.
    #[serde(with = "source_ip", skip_serializing_if = "Option::is_none")]
    pub source_ip_address: Option<IpAddr>,
    /// The expect/send dialogue.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub query_response: Vec<Step>,
    /// TLS from the first byte.
    pub tls: bool,
    /// TLS settings for `tls: true` and `starttls` steps.
    pub tls_config: TlsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            preferred_ip_protocol: IpProtocol::Ip6,
            ip_protocol_fallback: true,
            source_ip_address: None,
            query_response: Vec::new(),
            tls: false,
            tls_config: TlsConfig::default(),
        }
    }
}

impl Config {
    /// Records every problem of this block.
    pub fn validate(&self, path: &str, problems: &mut Problems) {
        dialog::validate(&self.query_response, &format!("{path}.query_response"), problems);
        self.tls_config.validate(&format!("{path}.tls_config"), problems);
    }
}

/// `source_ip_address`: an IP address, where an empty string means unset (as in Go).
pub(crate) mod source_ip {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::net::IpAddr;

    /// Parses an optional address.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<IpAddr>, D::Error> {
        let text = Option::<String>::deserialize(deserializer)?.unwrap_or_default();
        if text.is_empty() {
            return Ok(None);
        }
        text.parse().map(Some).map_err(|_| serde::de::Error::custom(format!("invalid source IP address {text:?}")))
    }

    /// Writes the address as text.
    pub(crate) fn serialize<S: Serializer>(ip: &Option<IpAddr>, serializer: S) -> Result<S::Ok, S::Error> {
        match ip {
            Some(ip) => serializer.collect_str(ip),
            None => serializer.serialize_none(),
        }
    }
}

/// Connects to `addr` within the deadline, from `source` when given.
pub(crate) async fn dial(
    ctx: &mut ProbeCtx<'_>,
    addr: SocketAddr,
    source: Option<IpAddr>,
) -> Result<tokio::net::TcpStream, ProbeError> {
    let connect = async {
        match source {
            None => tokio::net::TcpStream::connect(addr).await,
            Some(source) => {
                let socket =
                    if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
                socket.bind(SocketAddr::new(source, 0))?;
                socket.connect(addr).await
            }
        }
    };
    match ctx.within(Phase::Connect, connect).await? {
        Ok(stream) => Ok(stream),
        Err(err) => {
            ctx.log.error(format!("Error dialing TCP err={err}"));
            Err(ProbeError::connect(&err))
        }
    }
}

/// Runs one probe.
pub async fn probe(ctx: &mut ProbeCtx<'_>, config: &Config) -> ProbeResult {
    // blackbox 0.23 emits the regex gauge even when the dial fails; keep both always.
    dialog::seed(ctx);
    let (host, port) = resolve::split_host_port(ctx.target, None).map_err(|err| {
        ctx.log.error(format!("Error splitting target address and port err={err}"));
        ProbeError::new(Phase::Resolve, Reason::Config, err)
    })?;
    let resolved = resolve::resolve(ctx, &host, config.preferred_ip_protocol, config.ip_protocol_fallback).await?;
    let stream = dial(ctx, SocketAddr::new(resolved.ip, port), config.source_ip_address).await?;
    ctx.log.debug("Successfully dialed");
    // Precedence as blackbox: tls_config.server_name, then `hostname`, then the target host.
    let server_name = ctx.hostname.unwrap_or(&host).to_string();
    dialog::start(ctx, config.tls, &config.query_response, &config.tls_config, &server_name, stream).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::yaml;

    #[test]
    fn defaults_and_source_address() {
        let config: Config = yaml::from_value(yaml::parse_value("source_ip_address: ''\n").unwrap(), "tcp").unwrap();
        assert_eq!(config, Config::default());
        let config: Config =
            yaml::from_value(yaml::parse_value("source_ip_address: 127.0.0.1\n").unwrap(), "tcp").unwrap();
        assert_eq!(config.source_ip_address, Some("127.0.0.1".parse().unwrap()));
        let err =
            yaml::from_value::<Config>(yaml::parse_value("source_ip_address: nope\n").unwrap(), "m.tcp").unwrap_err();
        assert_eq!(err.path, "m.tcp.source_ip_address");
    }
}
