//! The `icmp` prober: one echo request per probe, as blackbox sends it.
//!
//! An unprivileged ICMP datagram ("ping") socket is tried first; a raw socket
//! (root or CAP_NET_RAW) is the fallback, and the only choice for
//! `dont_fragment`, which needs our own IPv4 header. The reply's hop limit
//! comes from the `IP_TTL` / `IPV6_HOPLIMIT` control message (or, on a raw
//! IPv4 socket, from the IP header itself).

use super::resolve::{self, IpProtocol};
use super::{Phase, ProbeCtx, ProbeError, ProbeResult, Reason};
use crate::config::Problems;
use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrStorage, setsockopt, sockopt};
use serde::{Deserialize, Serialize};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU16, Ordering};
use tokio::io::Interest;

/// The `icmp:` block of a module.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address family tried first (`ip6` by default, as blackbox).
    pub preferred_ip_protocol: IpProtocol,
    /// Fall back to the other family when the preferred one has no address.
    pub ip_protocol_fallback: bool,
    /// Local address to send from.
    #[serde(with = "super::tcp::source_ip", skip_serializing_if = "Option::is_none")]
    pub source_ip_address: Option<IpAddr>,
    /// Payload length; 0 sends the 28-byte `Prometheus Blackbox Exporter`.
    pub payload_size: usize,
    /// Set the IPv4 don't-fragment bit (needs a raw socket).
    pub dont_fragment: bool,
    /// Time to live / hop limit of the request, 0–255.
    pub ttl: i64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            preferred_ip_protocol: IpProtocol::Ip6,
            ip_protocol_fallback: true,
            source_ip_address: None,
            payload_size: 0,
            dont_fragment: false,
            ttl: DEFAULT_TTL,
        }
    }
}

/// blackbox's `DefaultICMPTTL`.
const DEFAULT_TTL: i64 = 64;
/// The largest ICMP payload an IPv4 datagram can carry.
const MAX_PAYLOAD: usize = 65_507;
/// What blackbox puts in every echo request.
const PAYLOAD: &[u8] = b"Prometheus Blackbox Exporter";

const HELP_DURATION: &str = "Duration of icmp request by phase";
const HELP_HOP_LIMIT: &str = "Replied packet hop limit (TTL for ipv4)";
const DURATION: &str = "probe_icmp_duration_seconds";

impl Config {
    /// Records every problem of this block.
    pub fn validate(&self, path: &str, problems: &mut Problems) {
        if self.ttl < 0 {
            problems.push(format!("{path}.ttl"), "\"ttl\" cannot be negative");
        }
        if self.ttl > 255 {
            problems.push(format!("{path}.ttl"), "\"ttl\" cannot exceed 255");
        }
        if self.payload_size > MAX_PAYLOAD {
            problems.push(format!("{path}.payload_size"), format!("\"payload_size\" cannot exceed {MAX_PAYLOAD}"));
        }
    }

    fn payload(&self) -> Vec<u8> {
        if self.payload_size == 0 {
            return PAYLOAD.to_vec();
        }
        let mut data = vec![0u8; self.payload_size];
        let len = PAYLOAD.len().min(data.len());
        data[..len].copy_from_slice(&PAYLOAD[..len]);
        data
    }
}

/// The sequence number: a process-wide counter from a random start (blackbox #411).
fn next_sequence() -> u16 {
    static SEQUENCE: std::sync::OnceLock<AtomicU16> = std::sync::OnceLock::new();
    SEQUENCE.get_or_init(|| AtomicU16::new(rand::random())).fetch_add(1, Ordering::Relaxed).wrapping_add(1)
}

/// How the socket was opened decides what we send and what we read back.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// Unprivileged ping socket: the kernel owns the echo ID.
    Datagram,
    /// Raw socket: we read the reply with its IPv4 header (IPv4 only).
    Raw,
    /// Raw IPv4 socket with our own header (`dont_fragment`).
    RawWithHeader,
}

struct Echo {
    /// The ICMP socket, registered with tokio through the `UdpSocket` type
    /// (the same fd calls: `sendto`, `recvmsg`), which needs no unsafe code.
    socket: tokio::net::UdpSocket,
    kind: Kind,
    /// Whether the hop limit control message was enabled.
    hop_limit_enabled: bool,
}

/// The socket kinds to try, in order.
fn kinds(ip: IpAddr, config: &Config) -> &'static [Kind] {
    if ip.is_ipv4() && config.dont_fragment {
        // The don't-fragment bit is an IP header field: only a raw socket sets it.
        &[Kind::RawWithHeader]
    } else {
        &[Kind::Datagram, Kind::Raw]
    }
}

/// Opens the first socket of `kinds` the system allows.
fn open(ip: IpAddr, config: &Config, kinds: &[Kind], log: &mut super::ProbeLog) -> std::io::Result<Echo> {
    let (domain, protocol) =
        if ip.is_ipv4() { (Domain::IPV4, Protocol::ICMPV4) } else { (Domain::IPV6, Protocol::ICMPV6) };
    let mut last_error = std::io::Error::other("no ICMP socket kind to try");
    let mut opened = None;
    for &kind in kinds {
        let socket_type = if kind == Kind::Datagram { Type::DGRAM } else { Type::RAW };
        match Socket::new(domain, socket_type, Some(protocol)) {
            Ok(socket) => {
                opened = Some((socket, kind));
                break;
            }
            Err(err) => {
                log.debug(format!("Unable to open ICMP socket kind={kind:?} err={err}"));
                last_error = err;
            }
        }
    }
    let Some((socket, kind)) = opened else { return Err(last_error) };
    if kind == Kind::RawWithHeader {
        socket.set_header_included_v4(true)?;
    }
    if let Some(source) = config.source_ip_address {
        socket.bind(&SockAddr::from(SocketAddr::new(source, 0)))?;
    }
    if config.ttl > 0 && kind != Kind::RawWithHeader {
        let ttl = config.ttl as u32;
        if ip.is_ipv4() { socket.set_ttl_v4(ttl)? } else { socket.set_unicast_hops_v6(ttl)? }
    }
    let hop_limit = if ip.is_ipv4() {
        setsockopt(&socket, sockopt::Ipv4RecvTtl, &true).map_err(std::io::Error::from)
    } else {
        socket.set_recv_hoplimit_v6(true)
    };
    let hop_limit_enabled = match hop_limit {
        Ok(()) => true,
        Err(err) => {
            log.error(format!("Failed to set Control Message for retrieving Hop Limit err={err}"));
            false
        }
    };
    socket.set_nonblocking(true)?;
    let socket = tokio::net::UdpSocket::from_std(std::net::UdpSocket::from(socket))?;
    Ok(Echo { socket, kind, hop_limit_enabled })
}

impl Echo {
    /// Waits for the reply to `request` from `ip`; returns its hop limit when known.
    async fn reply(&self, ip: IpAddr, request: &[u8]) -> std::io::Result<Option<i32>> {
        // The kernel rewrites the ID on Linux ping sockets and only delivers our replies.
        let check_id = self.kind != Kind::Datagram;
        let mut errors = 0u32;
        loop {
            let received = match self.socket.async_io(Interest::READABLE, || receive(&self.socket, self.kind)).await {
                Ok(received) => received,
                Err(err) => {
                    // ICMP errors surface as socket errors; blackbox keeps waiting.
                    errors += 1;
                    if errors >= 16 {
                        return Err(err);
                    }
                    continue;
                }
            };
            if received.from == Some(ip) && is_reply(request, &received.icmp, ip.is_ipv4(), check_id) {
                return Ok(received.hop_limit);
            }
        }
    }
}

/// The Internet checksum (RFC 1071).
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data.chunks(2).map(|pair| u32::from(pair[0]) << 8 | u32::from(*pair.get(1).unwrap_or(&0))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An echo request. ICMPv6 checksums are left to the kernel (it needs the
/// pseudo-header); ICMPv4 ones are ours on raw sockets.
fn echo_request(ipv4: bool, id: u16, sequence: u16, data: &[u8]) -> Vec<u8> {
    let mut packet = Vec::with_capacity(8 + data.len());
    packet.extend_from_slice(&[if ipv4 { 8 } else { 128 }, 0, 0, 0]);
    packet.extend_from_slice(&id.to_be_bytes());
    packet.extend_from_slice(&sequence.to_be_bytes());
    packet.extend_from_slice(data);
    if ipv4 {
        let sum = checksum(&packet);
        packet[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    packet
}

/// An IPv4 header with the don't-fragment bit. Linux fills in the checksum,
/// the packet ID, and the source address when it is zero.
fn ipv4_header(source: Option<IpAddr>, destination: std::net::Ipv4Addr, ttl: u8, payload_len: usize) -> Vec<u8> {
    let total = (20 + payload_len) as u16;
    let source = match source {
        Some(IpAddr::V4(source)) => source.octets(),
        _ => [0; 4],
    };
    let mut header = vec![0x45, 0];
    header.extend_from_slice(&total.to_be_bytes());
    header.extend_from_slice(&[0, 0, 0x40, 0, ttl, 1, 0, 0]);
    header.extend_from_slice(&source);
    header.extend_from_slice(&destination.octets());
    header
}

/// One received datagram: sender, ICMP bytes and hop limit when known.
struct Received {
    from: Option<IpAddr>,
    icmp: Vec<u8>,
    hop_limit: Option<i32>,
}

fn receive(socket: &tokio::net::UdpSocket, kind: Kind) -> std::io::Result<Received> {
    let mut buffer = vec![0u8; 65_536];
    let mut control = nix::cmsg_space!(nix::libc::c_int);
    let (length, from, mut hop_limit) = {
        let mut iov = [std::io::IoSliceMut::new(&mut buffer)];
        let message = nix::sys::socket::recvmsg::<SockaddrStorage>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut control),
            MsgFlags::empty(),
        )?;
        let from = message.address.as_ref().and_then(|address| {
            address
                .as_sockaddr_in()
                .map(|v4| IpAddr::V4(v4.ip()))
                .or_else(|| address.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
        });
        let hop_limit = message.cmsgs().ok().and_then(|mut cmsgs| {
            cmsgs.find_map(|cmsg| match cmsg {
                ControlMessageOwned::Ipv4Ttl(ttl) => Some(ttl),
                ControlMessageOwned::Ipv6HopLimit(limit) => Some(limit),
                _ => None,
            })
        });
        (message.bytes, from, hop_limit)
    };
    buffer.truncate(length);
    let icmp = match kind {
        Kind::Datagram => buffer,
        Kind::Raw | Kind::RawWithHeader if from.is_some_and(|ip| ip.is_ipv6()) => buffer,
        // Raw IPv4 sockets hand over the IP header too.
        Kind::Raw | Kind::RawWithHeader => {
            let header_len = usize::from(buffer.first().copied().unwrap_or(0) & 0x0f) * 4;
            if buffer.len() < header_len || header_len < 20 {
                return Ok(Received { from, icmp: Vec::new(), hop_limit });
            }
            hop_limit = hop_limit.or(Some(i32::from(buffer[8])));
            buffer.split_off(header_len)
        }
    };
    Ok(Received { from, icmp, hop_limit })
}

/// Whether `reply` answers `request`: the type switched, same sequence and
/// payload, and the same ID unless the kernel chose it (ping sockets).
fn is_reply(request: &[u8], reply: &[u8], ipv4: bool, check_id: bool) -> bool {
    let reply_type = if ipv4 { 0 } else { 129 };
    reply.len() == request.len()
        && reply[0] == reply_type
        && reply[1] == 0
        && (!check_id || reply[4..6] == request[4..6])
        && reply[6..] == request[6..]
}

/// Runs one probe.
pub async fn probe(ctx: &mut ProbeCtx<'_>, config: &Config) -> ProbeResult {
    ctx.registry.seed_phases(DURATION, HELP_DURATION, &["resolve", "setup", "rtt"]);
    let target = ctx.target.to_string();
    let resolved = resolve::resolve(ctx, &target, config.preferred_ip_protocol, config.ip_protocol_fallback).await?;
    ctx.registry.add_phase(DURATION, HELP_DURATION, "resolve", resolved.lookup_time.as_secs_f64());
    let ip = resolved.ip;

    let setup_start = std::time::Instant::now();
    ctx.enter(Phase::Setup);
    ctx.log.debug("Creating socket");
    let echo = open(ip, config, kinds(ip, config), &mut ctx.log).map_err(|err| {
        ctx.log.error(format!("Error listening to socket err={err}"));
        ProbeError::new(Phase::Setup, Reason::Io, format!("cannot open an ICMP socket: {err}"))
    })?;
    let id: u16 = rand::random();
    let sequence = next_sequence();
    ctx.log.debug(format!("Creating ICMP packet seq={sequence} id={id}"));
    let request = echo_request(ip.is_ipv4(), id, sequence, &config.payload());
    let datagram = match (echo.kind, ip) {
        (Kind::RawWithHeader, IpAddr::V4(destination)) => {
            let ttl = if config.ttl > 0 { config.ttl as u8 } else { DEFAULT_TTL as u8 };
            let mut datagram = ipv4_header(config.source_ip_address, destination, ttl, request.len());
            datagram.extend_from_slice(&request);
            datagram
        }
        _ => request.clone(),
    };
    ctx.registry.add_phase(DURATION, HELP_DURATION, "setup", setup_start.elapsed().as_secs_f64());

    ctx.log.debug("Writing out packet");
    let rtt_start = std::time::Instant::now();
    let send = echo.socket.send_to(&datagram, SocketAddr::new(ip, 0));
    ctx.within(Phase::Rtt, send).await?.map_err(|err| {
        ctx.log.error(format!("Error writing to socket err={err}"));
        ProbeError::new(Phase::Rtt, Reason::Io, format!("cannot send the echo request: {err}"))
    })?;

    ctx.log.debug("Waiting for reply packets");
    let hop_limit = ctx.within(Phase::Rtt, echo.reply(ip, &request)).await?.map_err(|err| {
        ctx.log.error(format!("Error reading from socket err={err}"));
        ProbeError::new(Phase::Rtt, Reason::Io, format!("cannot read the echo reply: {err}"))
    })?;
    ctx.registry.add_phase(DURATION, HELP_DURATION, "rtt", rtt_start.elapsed().as_secs_f64());
    ctx.log.debug("Found matching reply packet");
    match hop_limit {
        Some(hop_limit) => ctx.registry.set("probe_icmp_reply_hop_limit", HELP_HOP_LIMIT, f64::from(hop_limit)),
        None => ctx.log.debug(format!(
            "Cannot get Hop Limit from the received packet. 'probe_icmp_reply_hop_limit' will be missing. control_message_enabled={}",
            echo.hop_limit_enabled
        )),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_matches_blackbox() {
        assert_eq!(Config::default().payload(), PAYLOAD);
        let long = Config { payload_size: 40, ..Config::default() }.payload();
        assert_eq!(&long[..28], PAYLOAD);
        assert_eq!(&long[28..], &[0u8; 12]);
        assert_eq!(Config { payload_size: 4, ..Config::default() }.payload(), b"Prom");
    }

    #[test]
    fn checksum_and_matching() {
        let request = echo_request(true, 0x1234, 7, PAYLOAD);
        assert_eq!(checksum(&request), 0, "a packet with its checksum sums to zero");
        let mut reply = request.clone();
        reply[0] = 0;
        assert!(is_reply(&request, &reply, true, true));
        reply[4] = 0;
        assert!(!is_reply(&request, &reply, true, true));
        assert!(is_reply(&request, &reply, true, false));
        reply[7] = 8;
        assert!(!is_reply(&request, &reply, true, false));
        assert!(!is_reply(&request, &request, true, true), "our own request is not a reply");
    }

    /// Every socket kind against the loopback interface. Raw sockets need root
    /// or CAP_NET_RAW (the tests run as root); without them this is skipped,
    /// except under `CI=true`.
    #[tokio::test]
    async fn every_socket_kind_gets_its_reply() {
        let mut cases: Vec<(IpAddr, Kind)> = vec![
            ("127.0.0.1".parse().unwrap(), Kind::Datagram),
            ("127.0.0.1".parse().unwrap(), Kind::Raw),
            ("127.0.0.1".parse().unwrap(), Kind::RawWithHeader),
        ];
        if std::net::UdpSocket::bind("[::1]:0").is_ok() {
            cases.push(("::1".parse().unwrap(), Kind::Datagram));
            cases.push(("::1".parse().unwrap(), Kind::Raw));
        }
        let config = Config { dont_fragment: true, ..Config::default() };
        for (ip, kind) in cases {
            let mut log = crate::probe::ProbeLog::default();
            let echo = match open(ip, &config, &[kind], &mut log) {
                Ok(echo) => echo,
                Err(err) if err.kind() == std::io::ErrorKind::PermissionDenied && std::env::var("CI").is_err() => {
                    eprintln!("skipping {kind:?} {ip}: {err} (needs root or CAP_NET_RAW)");
                    continue;
                }
                Err(err) => panic!("{kind:?} {ip}: {err}"),
            };
            let request = echo_request(ip.is_ipv4(), rand::random(), next_sequence(), PAYLOAD);
            let datagram = match (kind, ip) {
                (Kind::RawWithHeader, IpAddr::V4(v4)) => {
                    [ipv4_header(None, v4, 64, request.len()), request.clone()].concat()
                }
                _ => request.clone(),
            };
            echo.socket.send_to(&datagram, SocketAddr::new(ip, 0)).await.unwrap();
            let reply = tokio::time::timeout(std::time::Duration::from_secs(3), echo.reply(ip, &request)).await;
            let hop_limit = reply.unwrap_or_else(|_| panic!("{kind:?} {ip}: no reply")).unwrap();
            assert_eq!(hop_limit, Some(64), "{kind:?} {ip}");
        }
    }

    #[test]
    fn ttl_is_validated_like_blackbox() {
        let mut problems = Problems::default();
        Config { ttl: 256, ..Config::default() }.validate("modules.icmp.icmp", &mut problems);
        Config { ttl: -1, ..Config::default() }.validate("modules.icmp.icmp", &mut problems);
        let messages: Vec<String> = problems.0.iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            ["modules.icmp.icmp.ttl: \"ttl\" cannot exceed 255", "modules.icmp.icmp.ttl: \"ttl\" cannot be negative"]
        );
    }
}
