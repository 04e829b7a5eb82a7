//! dnsmasq as an authoritative server for `example.test` over UDP and TCP.

use std::net::SocketAddr;
use std::process::Command;

use super::START_TIMEOUT;
use crate::support::{ChildGuard, free_port, loopback, require_binary, shared_temp_dir};

/// The authoritative zone.
pub const DNS_ZONE: &str = "example.test";

/// How to start [`Dnsmasq`].
#[derive(Clone, Debug)]
pub struct DnsmasqOpts {
    /// SOA serial of [`DNS_ZONE`].
    pub serial: u32,
    /// TTL of every authoritative answer.
    pub ttl: u32,
    /// Further dnsmasq options, such as `--host-record=x.example.test,192.0.2.99`.
    pub extra_args: Vec<String>,
}

impl Default for DnsmasqOpts {
    fn default() -> Self {
        DnsmasqOpts { serial: 2024010201, ttl: 300, extra_args: Vec::new() }
    }
}

/// A running dnsmasq, authoritative (AA bit set) for [`DNS_ZONE`]:
/// - SOA: mname `ns1.example.test`, rname `hostmaster.example.test`,
///   serial `opts.serial`, refresh 1200, retry 120, expire 604800
/// - NS `ns1.example.test`
/// - `example.test` A 192.0.2.10, AAAA 2001:db8::10, MX 10
///   `mail.example.test`, TXT `v=spf1 -all`
/// - `www.example.test` A 192.0.2.11; `mail.example.test` A 192.0.2.25;
///   `alias.example.test` CNAME `www.example.test`
/// - any other name in the zone: NXDOMAIN with the SOA
pub struct Dnsmasq {
    /// UDP and TCP `127.0.0.1:<port>`.
    pub addr: SocketAddr,
    /// The SOA serial.
    pub serial: u32,
    guard: ChildGuard,
    _dir: tempfile::TempDir,
}

impl Dnsmasq {
    /// Starts dnsmasq and waits until its TCP listener accepts.
    pub async fn start(opts: DnsmasqOpts) -> Option<Dnsmasq> {
        let dnsmasq = require_binary("dnsmasq", "dnsmasq-base")?;
        let dir = shared_temp_dir("dnsmasq");
        let port = free_port();
        let mut command = Command::new(dnsmasq);
        command
            .args(["--keep-in-foreground", "--log-facility=-", "--log-queries"])
            .args(["--conf-file=/dev/null", "--no-resolv", "--no-hosts"])
            .arg(format!("--port={port}"))
            .args(["--listen-address=127.0.0.1", "--bind-interfaces"])
            .arg(format!("--pid-file={}", dir.path().join("dnsmasq.pid").display()))
            .arg(format!("--auth-server=ns1.{DNS_ZONE},127.0.0.1"))
            .arg(format!("--auth-zone={DNS_ZONE}"))
            .arg(format!("--auth-soa={},hostmaster.{DNS_ZONE},1200,120,604800", opts.serial))
            .arg(format!("--auth-ttl={}", opts.ttl))
            .arg(format!("--host-record={DNS_ZONE},192.0.2.10,2001:db8::10"))
            .arg(format!("--host-record=www.{DNS_ZONE},192.0.2.11"))
            .arg(format!("--host-record=mail.{DNS_ZONE},192.0.2.25"))
            .arg(format!("--mx-host={DNS_ZONE},mail.{DNS_ZONE},10"))
            .arg(format!("--txt-record={DNS_ZONE},v=spf1 -all"))
            .arg(format!("--cname=alias.{DNS_ZONE},www.{DNS_ZONE}"))
            .args(&opts.extra_args);
        if crate::support::running_as_root() {
            // Stay root rather than switch to a `dnsmasq` account, which the
            // dnsmasq-base package does not create.
            command.arg("--user=root");
        }
        let mut guard = ChildGuard::spawn("dnsmasq", command, &dir.path().join("dnsmasq.log"));
        let addr = loopback(port);
        guard.wait_for_port(addr, START_TIMEOUT).await;
        Some(Dnsmasq { addr, serial: opts.serial, guard, _dir: dir })
    }

    /// Process diagnostics (query log tail).
    pub fn diagnostics(&self) -> String {
        self.guard.diagnostics()
    }
}
