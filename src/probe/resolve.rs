//! Address selection, as blackbox's `chooseProtocol`: one address, preferred
//! family first, the *last* address of the other family as fallback, and the
//! `probe_dns_lookup_time_seconds`, `probe_ip_protocol`, `probe_ip_addr_hash`
//! families. Every chosen address is checked against the target policy.

use super::metrics::ip_hash;
use super::{Phase, ProbeCtx, ProbeError, Reason};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::time::Duration;

/// `preferred_ip_protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum IpProtocol {
    /// IPv4.
    #[serde(rename = "ip4", alias = "ipv4", alias = "IP4", alias = "IPv4")]
    Ip4,
    /// IPv6 (blackbox's default).
    #[default]
    #[serde(rename = "ip6", alias = "ipv6", alias = "IP6", alias = "IPv6")]
    Ip6,
}

const HELP_LOOKUP: &str = "Returns the time taken for probe dns lookup in seconds";
const HELP_PROTOCOL: &str = "Specifies whether probe ip protocol is IP4 or IP6";
const HELP_HASH: &str = "Specifies the hash of IP address. It's useful to detect if the IP address changes.";

/// The result of a resolution.
#[derive(Debug, Clone, Copy)]
pub struct Resolved {
    /// The chosen address.
    pub ip: IpAddr,
    /// How long the lookup took (the `resolve` phase).
    pub lookup_time: Duration,
}

fn family_matches(ip: &IpAddr, protocol: IpProtocol) -> bool {
    matches!((ip, protocol), (IpAddr::V4(_), IpProtocol::Ip4) | (IpAddr::V6(_), IpProtocol::Ip6))
}

/// Picks the address blackbox would pick from a lookup result.
pub fn choose(addresses: &[IpAddr], preferred: IpProtocol, fallback: bool) -> Option<IpAddr> {
    if let Some(ip) = addresses.iter().find(|ip| family_matches(ip, preferred)) {
        return Some(*ip);
    }
    if fallback { addresses.iter().rev().find(|ip| !family_matches(ip, preferred)).copied() } else { None }
}

/// Resolves `host` and records the three common families. Fails with
/// `resolve` when nothing suitable is found and `denied` when the policy
/// refuses the address.
pub async fn resolve(
    ctx: &mut ProbeCtx<'_>,
    host: &str,
    preferred: IpProtocol,
    fallback: bool,
) -> Result<Resolved, ProbeError> {
    ctx.registry.set("probe_ip_protocol", HELP_PROTOCOL, 0.0);
    ctx.registry.set("probe_dns_lookup_time_seconds", HELP_LOOKUP, 0.0);
    ctx.registry.set("probe_ip_addr_hash", HELP_HASH, 0.0);
    ctx.enter(Phase::Resolve);
    let start = std::time::Instant::now();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addresses: Result<Vec<IpAddr>, String> = match bare.parse::<IpAddr>() {
        Ok(ip) => Ok(vec![ip]),
        Err(_) => match tokio::time::timeout_at(ctx.deadline, tokio::net::lookup_host((bare, 0))).await {
            Ok(Ok(found)) => Ok(found.map(|addr| addr.ip()).collect()),
            Ok(Err(err)) => Err(err.to_string()),
            Err(_) => {
                ctx.registry.set("probe_dns_lookup_time_seconds", HELP_LOOKUP, start.elapsed().as_secs_f64());
                return Err(ProbeError::timeout(Phase::Resolve));
            }
        },
    };
    let lookup_time = start.elapsed();
    ctx.registry.set("probe_dns_lookup_time_seconds", HELP_LOOKUP, lookup_time.as_secs_f64());
    let addresses = addresses.map_err(|err| {
        ctx.log.error(format!("Resolution with IP protocol failed target={host} err={err}"));
        ProbeError::new(Phase::Resolve, Reason::Resolve, format!("cannot resolve {host}: {err}"))
    })?;
    // Without fallback blackbox asks only for the preferred family.
    let ip = choose(&addresses, preferred, fallback).ok_or_else(|| {
        ctx.log
            .error(format!("Resolution with IP protocol failed target={host} err=\"unable to find ip; no fallback\""));
        ProbeError::new(Phase::Resolve, Reason::Resolve, format!("no suitable address for {host}"))
    })?;
    ctx.log.info(super::Message::Resolved { target: host.into(), ip });
    ctx.registry.set("probe_ip_protocol", HELP_PROTOCOL, if ip.is_ipv4() { 4.0 } else { 6.0 });
    ctx.registry.set("probe_ip_addr_hash", HELP_HASH, ip_hash(ip));
    ctx.policy.check_address(host, ip).map_err(|why| ProbeError::new(Phase::Resolve, Reason::Denied, why))?;
    Ok(Resolved { ip, lookup_time })
}

/// Splits `host:port` (IPv6 in brackets), using `default_port` when absent.
pub fn split_host_port(target: &str, default_port: Option<u16>) -> Result<(String, u16), String> {
    if let Some(rest) = target.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(|| format!("missing ']' in address {target:?}"))?;
        return match after.strip_prefix(':') {
            Some(port) => Ok((host.to_string(), parse_port(port, target)?)),
            None if after.is_empty() => default_port
                .map(|port| (host.to_string(), port))
                .ok_or_else(|| format!("missing port in address {target:?}")),
            None => Err(format!("invalid address {target:?}")),
        };
    }
    match target.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => Ok((host.to_string(), parse_port(port, target)?)),
        _ if target.parse::<std::net::Ipv6Addr>().is_ok() => default_port
            .map(|port| (target.to_string(), port))
            .ok_or_else(|| format!("missing port in address {target:?}")),
        Some(_) => Err(format!("too many colons in address {target:?}")),
        None => default_port
            .map(|port| (target.to_string(), port))
            .ok_or_else(|| format!("missing port in address {target:?}")),
    }
}

fn parse_port(port: &str, target: &str) -> Result<u16, String> {
    port.parse().map_err(|_| format!("invalid port in address {target:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chooses_like_blackbox() {
        let v4a: IpAddr = "10.0.0.1".parse().unwrap();
        let v4b: IpAddr = "10.0.0.2".parse().unwrap();
        let v6: IpAddr = "::1".parse().unwrap();
        assert_eq!(choose(&[v4a, v6], IpProtocol::Ip6, true), Some(v6));
        assert_eq!(choose(&[v4a, v4b], IpProtocol::Ip6, true), Some(v4b), "fallback takes the last one");
        assert_eq!(choose(&[v4a, v4b], IpProtocol::Ip6, false), None);
        assert_eq!(choose(&[v6, v4a, v4b], IpProtocol::Ip4, true), Some(v4a));
    }

    #[test]
    fn splits_host_and_port() {
        assert_eq!(split_host_port("example.com:80", None).unwrap(), ("example.com".into(), 80));
        assert_eq!(split_host_port("[::1]:5432", None).unwrap(), ("::1".into(), 5432));
        assert_eq!(split_host_port("::1", Some(53)).unwrap(), ("::1".into(), 53));
        assert_eq!(split_host_port("host", Some(53)).unwrap(), ("host".into(), 53));
        assert!(split_host_port("host", None).is_err());
        assert!(split_host_port("host:x", None).is_err());
    }
}
