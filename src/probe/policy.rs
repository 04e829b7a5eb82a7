//! The target allowlist/denylist against SSRF (`exporter.targets` in the config).
//!
//! Host patterns are checked before a probe starts; address ranges are checked
//! after every resolution (and so on every redirect hop), because a harmless
//! looking name can resolve to an internal address.

use crate::config::Problems;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// `exporter.targets`: entries are CIDRs (`10.0.0.0/8`), addresses, or host
/// patterns (`example.com`, `*.example.com`). Deny wins over allow; an empty
/// allow list allows everything not denied.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Targets that may be probed.
    pub allow: Vec<String>,
    /// Targets that may never be probed.
    pub deny: Vec<String>,
}

/// `exporter:` — checkit's additions for the probe exporter.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ExporterConfig {
    /// Which targets `/probe` may reach (SSRF guard).
    pub targets: PolicyConfig,
    /// Probes running at once; past it `/probe` answers 503.
    pub max_concurrent_probes: usize,
}

impl Default for ExporterConfig {
    fn default() -> Self {
        ExporterConfig { targets: PolicyConfig::default(), max_concurrent_probes: 1024 }
    }
}

/// The most probes that may run at once: far above what one host can run, and
/// far below what a semaphore can count (a bigger value panicked at startup).
pub const MAX_CONCURRENT_PROBES: usize = 1_000_000;

impl ExporterConfig {
    /// Checks the block and compiles its target policy, every problem under `path`.
    pub fn policy(&self, path: &str, problems: &mut Problems) -> TargetPolicy {
        if !(1..=MAX_CONCURRENT_PROBES).contains(&self.max_concurrent_probes) {
            problems.push(
                format!("{path}.max_concurrent_probes"),
                format!("must be between 1 and {MAX_CONCURRENT_PROBES}"),
            );
        }
        TargetPolicy::new(&self.targets, &format!("{path}.targets"), problems)
    }
}

#[derive(Debug, Clone, Default)]
struct Rules {
    nets: Vec<IpNet>,
    hosts: Vec<String>,
}

impl Rules {
    fn parse(entries: &[String], path: &str, problems: &mut Problems) -> Rules {
        let mut rules = Rules::default();
        for (index, entry) in entries.iter().enumerate() {
            let entry = entry.trim();
            if let Ok(net) = entry.parse::<IpNet>() {
                rules.nets.push(net);
            } else if let Ok(ip) = entry.parse::<IpAddr>() {
                rules.nets.push(IpNet::from(ip));
            } else if looks_numeric(entry) {
                problems.push(
                    format!("{path}[{index}]"),
                    format!(
                        "{entry:?} is not a valid IP address; write addresses in full dotted-quad form without leading zeros"
                    ),
                );
            } else if valid_host_pattern(entry) {
                rules.hosts.push(entry.to_ascii_lowercase());
            } else {
                problems.push(
                    format!("{path}[{index}]"),
                    format!("{entry:?} is neither a CIDR, an IP address nor a host pattern"),
                );
            }
        }
        rules
    }

    fn matches_host(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.hosts.iter().any(|pattern| match pattern.strip_prefix("*.") {
            Some(suffix) => {
                host.len() > suffix.len() && host.ends_with(suffix) && host[..host.len() - suffix.len()].ends_with('.')
            }
            None => *pattern == host,
        })
    }

    fn matches_ip(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.nets.iter().any(|net| net.contains(&ip))
    }

    /// Whether `ip`, or the address the kernel really connects to, matches:
    /// connecting to an unspecified address (`0.0.0.0`, `::`) reaches the
    /// local host, so for policy it is also both loopback addresses.
    fn matches_destination(&self, ip: IpAddr) -> bool {
        self.matches_ip(ip) || (canonical(ip).is_unspecified() && LOOPBACK.iter().any(|ip| self.matches_ip(*ip)))
    }

    fn is_empty(&self) -> bool {
        self.nets.is_empty() && self.hosts.is_empty()
    }
}

const LOOPBACK: [IpAddr; 2] = [IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)];

/// An entry whose last label is a number is no host name (no top-level domain
/// is numeric) but an address the resolver would read its own way: `127.1` is
/// 127.0.0.1 and `010.0.0.1` is octal. Taken as a host pattern it would never
/// match, silently.
fn looks_numeric(entry: &str) -> bool {
    let last = entry.rsplit('.').next().unwrap_or(entry);
    !last.is_empty()
        && (last.chars().all(|c| c.is_ascii_digit())
            || last
                .strip_prefix("0x")
                .or_else(|| last.strip_prefix("0X"))
                .is_some_and(|hex| hex.chars().all(|c| c.is_ascii_hexdigit())))
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

fn valid_host_pattern(entry: &str) -> bool {
    let name = entry.strip_prefix("*.").unwrap_or(entry);
    !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

/// The compiled policy.
#[derive(Debug, Clone, Default)]
pub struct TargetPolicy {
    allow: Rules,
    deny: Rules,
}

impl TargetPolicy {
    /// Compiles the config, recording bad entries.
    pub fn new(config: &PolicyConfig, path: &str, problems: &mut Problems) -> TargetPolicy {
        TargetPolicy {
            allow: Rules::parse(&config.allow, &format!("{path}.allow"), problems),
            deny: Rules::parse(&config.deny, &format!("{path}.deny"), problems),
        }
    }

    /// A policy that allows everything.
    pub fn allow_all() -> TargetPolicy {
        TargetPolicy::default()
    }

    /// The check before probing: a denied host pattern, or an address literal
    /// outside the lists, is refused at once. Names that need resolving are
    /// decided later by [`TargetPolicy::check_address`].
    pub fn check_host(&self, host: &str) -> Result<(), String> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return self.check_address(host, ip);
        }
        if self.deny.matches_host(host) {
            return Err(format!("target host {host:?} is denied by exporter.targets.deny"));
        }
        Ok(())
    }

    /// The check after resolution: `host` resolved to `ip`.
    ///
    /// An unspecified address is denied when a loopback address is: the
    /// kernel routes a connection to it to the local host.
    pub fn check_address(&self, host: &str, ip: IpAddr) -> Result<(), String> {
        if self.deny.matches_destination(ip) || self.deny.matches_host(host) {
            return Err(format!("target {host:?} ({ip}) is denied by exporter.targets.deny"));
        }
        if !self.allow.is_empty() && !self.allow.matches_ip(ip) && !self.allow.matches_host(host) {
            return Err(format!("target {host:?} ({ip}) is not in exporter.targets.allow"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow: &[&str], deny: &[&str]) -> TargetPolicy {
        let mut problems = Problems::default();
        let config = PolicyConfig {
            allow: allow.iter().map(|s| s.to_string()).collect(),
            deny: deny.iter().map(|s| s.to_string()).collect(),
        };
        let policy = TargetPolicy::new(&config, "exporter.targets", &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        policy
    }

    #[test]
    fn deny_wins_and_allow_restricts() {
        let policy = policy(&["127.0.0.0/8", "*.example.com"], &["127.0.0.2", "bad.example.com"]);
        assert!(policy.check_address("localhost", "127.0.0.1".parse().unwrap()).is_ok());
        assert!(policy.check_address("x", "127.0.0.2".parse().unwrap()).is_err());
        assert!(policy.check_address("www.example.com", "10.1.1.1".parse().unwrap()).is_ok());
        assert!(policy.check_address("example.com", "10.1.1.1".parse().unwrap()).is_err());
        assert!(policy.check_host("bad.example.com").is_err());
        assert!(policy.check_host("169.254.169.254").is_err());
        assert!(policy.check_host("[::ffff:127.0.0.1]").is_ok());
    }

    #[test]
    fn unspecified_addresses_are_the_local_host() {
        let both = policy(&[], &["127.0.0.1/32", "::1/128"]);
        for host in ["0.0.0.0", "[::]", "[::ffff:0.0.0.0]", "::ffff:127.0.0.1"] {
            assert!(both.check_host(host).is_err(), "{host}");
        }
        let v6_only = policy(&[], &["::1/128"]);
        assert!(v6_only.check_host("0.0.0.0").is_err());
    }

    #[test]
    fn bad_entries_are_reported_with_their_path() {
        let mut problems = Problems::default();
        let config = PolicyConfig { allow: vec!["10.0.0.0/33".into(), "ok.example".into()], deny: vec!["a b".into()] };
        TargetPolicy::new(&config, "exporter.targets", &mut problems);
        let paths = problems.paths();
        assert_eq!(paths, ["exporter.targets.allow[0]", "exporter.targets.deny[0]"]);
    }
}
