//! URL and host helpers with Go's `net/url` and `net/http` semantics.

use url::Url;

/// `host` without IPv6 brackets.
fn bare(host: &str) -> &str {
    host.trim_start_matches('[').trim_end_matches(']')
}

/// `host:port`, an IPv6 host in brackets (Go's `net.JoinHostPort`).
pub(super) fn join_host_port(host: &str, port: u16) -> String {
    if bare(host).contains(':') { format!("[{}]:{port}", bare(host)) } else { format!("{host}:{port}") }
}

/// The URL's authority as written (Go keeps `URL.Host` verbatim: case, an
/// explicit default port), without user info.
pub(super) fn written_authority(target: &str) -> Option<String> {
    let rest = target.split_once("://")?.1;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let authority = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    (!authority.is_empty()).then(|| authority.to_string())
}

/// `Host` without a port, for the TLS server name.
pub(super) fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split_once(']').map_or(rest, |(ip, _)| ip);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.parse::<u16>().is_ok() => name,
        _ => host,
    }
}

/// Go's `isDomainOrSubdomain`: may headers such as `Authorization` follow a
/// redirect from `initial` to `destination`?
pub(super) fn same_site(destination: &str, initial: &str) -> bool {
    let destination = destination.to_ascii_lowercase();
    let initial = initial.to_ascii_lowercase();
    destination == initial || destination.ends_with(&format!(".{initial}"))
}

/// Go's `refererForURL`: no Referer from https to http, never user info.
pub(super) fn referer(from: &Url, to: &Url) -> Option<String> {
    if from.scheme() == "https" && to.scheme() == "http" {
        return None;
    }
    let mut referer = from.clone();
    let _ = referer.set_username("");
    let _ = referer.set_password(None);
    referer.set_fragment(None);
    Some(referer.to_string())
}

/// The URL's host without IPv6 brackets.
pub(super) fn url_host(url: &Url) -> Option<String> {
    match url.host()? {
        url::Host::Ipv6(ip) => Some(ip.to_string()),
        host => Some(host.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_pieces_like_go() {
        assert_eq!(written_authority("http://Example.COM:80/x").as_deref(), Some("Example.COM:80"));
        assert_eq!(written_authority("https://u:p@h:8443?q").as_deref(), Some("h:8443"));
        assert_eq!(written_authority("http://[::1]:8080").as_deref(), Some("[::1]:8080"));
        assert_eq!(strip_port("vhost:8443"), "vhost");
        assert_eq!(strip_port("[::1]:80"), "::1");
        assert_eq!(strip_port("vhost"), "vhost");
        assert_eq!(join_host_port("::1", 80), "[::1]:80");
        assert!(same_site("a.example.com", "example.com") && !same_site("example.com", "a.example.com"));
        let from = Url::parse("https://u:p@a.example/x#f").unwrap();
        assert_eq!(referer(&from, &Url::parse("https://b.example/").unwrap()).as_deref(), Some("https://a.example/x"));
        assert_eq!(referer(&from, &Url::parse("http://b.example/").unwrap()), None);
    }
}
