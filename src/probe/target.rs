//! The host a target names, as each prober reads its target: `/probe` checks
//! it against the allow/deny policy before probing.

use super::ProberKind;

impl ProberKind {
    /// The host part of `target` for this prober (`None` when the target names
    /// no host, as a unix socket path does).
    pub fn target_host(self, target: &str) -> Option<String> {
        match self {
            ProberKind::Unix => None,
            ProberKind::Http | ProberKind::Grpc => {
                let without_scheme = target.split_once("://").map_or(target, |(_, rest)| rest);
                let authority = without_scheme.split(['/', '?', '#']).next().unwrap_or_default();
                let authority = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
                host_of(authority)
            }
            ProberKind::Tcp
            | ProberKind::Icmp
            | ProberKind::Dns
            | ProberKind::Postgres
            | ProberKind::Mysql
            | ProberKind::Mssql
            | ProberKind::Ftp
            | ProberKind::Imap
            | ProberKind::Smtp
            | ProberKind::Pop3
            | ProberKind::Tls
            | ProberKind::Rdap => host_of(target),
        }
    }
}

/// `host`, `host:port`, `[v6]:port` or a bare IPv6 address → the host.
fn host_of(authority: &str) -> Option<String> {
    if authority.starts_with('[') {
        return authority.split_once(']').map(|(host, _)| format!("{host}]"));
    }
    if authority.parse::<std::net::Ipv6Addr>().is_ok() {
        return Some(authority.to_string());
    }
    let host = authority.rsplit_once(':').map_or(authority, |(host, _)| host);
    (!host.is_empty()).then(|| host.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_hosts() {
        assert_eq!(
            ProberKind::Http.target_host("https://user:pw@example.com:8443/x?y").as_deref(),
            Some("example.com")
        );
        assert_eq!(ProberKind::Http.target_host("example.com").as_deref(), Some("example.com"));
        assert_eq!(ProberKind::Tcp.target_host("[::1]:22").as_deref(), Some("[::1]"));
        assert_eq!(ProberKind::Icmp.target_host("::1").as_deref(), Some("::1"));
        assert_eq!(ProberKind::Tcp.target_host("10.0.0.1:22").as_deref(), Some("10.0.0.1"));
        assert_eq!(ProberKind::Unix.target_host("/run/x.sock"), None);
    }
}
