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

/// A bare connect check (no TLS, no dialogue): connects within the deadline
/// and closes with a reset.
///
/// On loopback the kernel completes the handshake (or the refusal) inside
/// connect(2) itself. Such a socket is never registered with the runtime's
/// poller: no `epoll_ctl` to add and remove it and no task wake-up, about a
/// tenth of such a probe's CPU time. A connect still in progress is handed to
/// tokio and awaited like any other. Either way a connected socket goes back
/// to `ctx.env.tcp` for the next check.
async fn connect_only(ctx: &mut ProbeCtx<'_>, addr: SocketAddr, source: Option<IpAddr>) -> ProbeResult {
    let failed = |ctx: &mut ProbeCtx<'_>, err: std::io::Error| {
        ctx.log.error(format!("Error dialing TCP err={err}"));
        ProbeError::connect(&err)
    };
    let sockets = &ctx.env.tcp;
    ctx.enter(Phase::Connect);
    let socket = match start_connect(sockets, addr, source) {
        Ok(Progress::Done(socket)) => {
            sockets.put_back(socket, addr, source);
            return Ok(());
        }
        Ok(Progress::Pending(socket)) => socket,
        Err(err) => return Err(failed(ctx, err)),
    };
    let waited = async {
        let stream = tokio::net::TcpStream::from_std(socket.into())?;
        stream.writable().await?;
        stream.take_error()?.map_or(Ok(stream), Err)
    };
    match ctx.within(Phase::Connect, waited).await? {
        Ok(stream) => {
            // Off the poller first: a pooled socket must not stay registered.
            if let Ok(stream) = stream.into_std() {
                sockets.put_back(stream.into(), addr, source);
            }
            Ok(())
        }
        Err(err) => Err(failed(ctx, err)),
    }
}

/// Where a non-blocking connect stands when connect(2) returns.
enum Progress {
    /// Connected already.
    Done(socket2::Socket),
    /// Still handshaking.
    Pending(socket2::Socket),
}

/// Idle sockets of finished bare connect checks, per address family.
///
/// A check's socket is disconnected (connect(2) to `AF_UNSPEC`, which sends
/// the same reset as closing it and frees its port) and kept for the next
/// check, instead of being closed and a new one made: creating and tearing
/// down the socket, its file and its inode was an eighth of a `tcp_connect`
/// probe's CPU time. Sockets bound to a `source_ip_address` are closed.
#[derive(Debug, Default)]
pub struct Sockets {
    v4: std::sync::Mutex<Vec<socket2::Socket>>,
    v6: std::sync::Mutex<Vec<socket2::Socket>>,
}

/// Idle sockets kept per family: enough for a busy exporter's concurrent
/// checks, few enough not to matter against the open-files limit.
const IDLE_SOCKETS: usize = 64;

impl Sockets {
    fn idle(&self, v6: bool) -> &std::sync::Mutex<Vec<socket2::Socket>> {
        if v6 { &self.v6 } else { &self.v4 }
    }

    /// An idle socket of `addr`'s family, if one is kept.
    fn take(&self, addr: SocketAddr) -> Option<socket2::Socket> {
        self.idle(addr.is_ipv6()).lock().ok()?.pop()
    }

    /// Disconnects a check's connected socket (sending the reset) and keeps
    /// it; closes it instead when it is bound to a source address, when the
    /// disconnect fails or when enough are kept.
    fn put_back(&self, socket: socket2::Socket, addr: SocketAddr, source: Option<IpAddr>) {
        if !cfg!(target_os = "linux") || source.is_some() || disconnect(&socket).is_err() {
            return;
        }
        // The disconnect leaves ECONNRESET pending on the socket; the next
        // connect clears it as it starts (the reuse test in
        // tests/it/probe_tcp.rs takes one through the poller).
        if let Ok(mut idle) = self.idle(addr.is_ipv6()).lock() {
            if idle.len() < IDLE_SOCKETS {
                idle.push(socket);
            }
        }
    }

    /// How many idle sockets are kept (for tests).
    pub fn idle_count(&self) -> usize {
        [&self.v4, &self.v6].iter().map(|idle| idle.lock().map_or(0, |idle| idle.len())).sum()
    }
}

/// connect(2) to an `AF_UNSPEC` address, which on Linux ends a TCP socket's
/// association (with a reset when connected, as closing it with a zero
/// linger) and leaves the socket unconnected and reusable (connect(2)'s manual
/// page). Elsewhere sockets are simply closed.
#[allow(unsafe_code)]
fn disconnect(socket: &socket2::Socket) -> std::io::Result<()> {
    let length = std::mem::size_of::<libc::sa_family_t>() as socket2::socklen_t;
    // SAFETY: a zeroed storage is a valid address of family 0, AF_UNSPEC,
    // and the length covers only its family field.
    let unspecified = unsafe { socket2::SockAddr::new(socket2::SockAddrStorage::zeroed(), length) };
    socket.connect(&unspecified)
}

fn start_connect(sockets: &Sockets, addr: SocketAddr, source: Option<IpAddr>) -> std::io::Result<Progress> {
    use socket2::{Domain, Protocol, Socket, Type};
    let reused = if source.is_none() { sockets.take(addr) } else { None };
    let socket = match reused {
        Some(socket) => socket,
        None => {
            let socket = Socket::new(Domain::for_address(addr), Type::STREAM.nonblocking(), Some(Protocol::TCP))?;
            // Closed with a reset rather than a FIN, as HAProxy closes its
            // health checks: the probe has nothing to say to the target, and
            // an orderly close would leave this side's port in TIME_WAIT for
            // a minute (the prober, not the target, runs out of ports at
            // scale) and cost four packets instead of one. The option stays
            // set on a reused socket.
            socket.set_linger(Some(std::time::Duration::ZERO))?;
            socket
        }
    };
    // And the handshake's last ACK is never sent (SYN, SYN-ACK, RST, as
    // HAProxy's pure connect checks): with quick ACKs off, the kernel delays
    // the ACK that completes the handshake, and the reset goes first. connect
    // still returns on the SYN-ACK, so the timing and the verdict are the
    // same, but the target only ever holds a half-open request: it creates no
    // connection, wakes no accept and logs no reset. (Set on every check: a
    // disconnect resets the socket's ACK state.)
    #[cfg(target_os = "linux")]
    socket.set_tcp_quickack(false)?;
    if let Some(source) = source {
        socket.bind(&SocketAddr::new(source, 0).into())?;
    }
    match socket.connect(&addr.into()) {
        Ok(()) => return Ok(Progress::Done(socket)),
        Err(err) if err.raw_os_error() == Some(nix::errno::Errno::EINPROGRESS as i32) => {}
        Err(err) => return Err(err),
    }
    // getpeername succeeds only once the handshake is complete; only a
    // socket that is not connected is asked for its error (one system call
    // fewer on the common path).
    if socket.peer_addr().is_ok() {
        return Ok(Progress::Done(socket));
    }
    match socket.take_error()? {
        Some(err) => Err(err),
        None => Ok(Progress::Pending(socket)),
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
    if !config.tls && config.query_response.is_empty() {
        connect_only(ctx, SocketAddr::new(resolved.ip, port), config.source_ip_address).await?;
        ctx.log.debug("Successfully dialed");
        return Ok(());
    }
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
