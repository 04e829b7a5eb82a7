//! The `dns` prober: one query to the DNS server named by the target
//! (`host[:port]`), over UDP, TCP or TLS, built and parsed with hickory-proto
//! and sent by hand so that connect and request times are measured apart.
//!
//! Then, as blackbox: the rcode check, and the answer, authority and
//! additional sections matched against regexes in their presentation form
//! (miekg/dns `RR.String()`, e.g. `www.example.\t300\tIN\tA\t192.0.2.1`).

use super::resolve::{self, IpProtocol};
use super::tls::{self, TlsConfig};
use super::{Phase, ProbeCtx, ProbeError, ProbeResult, Reason};
use crate::config::Problems;
use crate::config::types::Regex;
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// `transport_protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Transport {
    /// UDP (the default; blackbox also reads an empty string as UDP).
    #[default]
    #[serde(rename = "udp", alias = "")]
    Udp,
    /// TCP, required for `dns_over_tls`.
    #[serde(rename = "tcp")]
    Tcp,
}

/// A set of regex checks on one section of the response.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RrValidator {
    /// Fail if any record matches any of these.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fail_if_matches_regexp: Vec<Regex>,
    /// Named for "fail if all match", but blackbox fails when some record does
    /// *not* match one of these; checkit keeps that behaviour.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fail_if_all_match_regexp: Vec<Regex>,
    /// Fail if any record does not match one of these (or the section is empty).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fail_if_not_matches_regexp: Vec<Regex>,
    /// Fail if no record matches any of these (or the section is empty).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fail_if_none_matches_regexp: Vec<Regex>,
}

/// The `dns:` block of a module.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address family tried first for the server (`ip6` by default).
    pub preferred_ip_protocol: IpProtocol,
    /// Fall back to the other family when the preferred one has no address.
    pub ip_protocol_fallback: bool,
    /// DNS over TLS (needs `transport_protocol: tcp`; default port 853).
    pub dns_over_tls: bool,
    /// TLS settings for DNS over TLS.
    pub tls_config: TlsConfig,
    /// Local address to send from.
    #[serde(with = "super::tcp::source_ip", skip_serializing_if = "Option::is_none")]
    pub source_ip_address: Option<IpAddr>,
    /// `udp` or `tcp`.
    pub transport_protocol: Transport,
    /// Query class name (`IN`, `CH`…).
    pub query_class: String,
    /// The name to ask for (required).
    pub query_name: String,
    /// Query type name (miekg/dns names: `A`, `SOA`, `ANY`…).
    pub query_type: String,
    /// The RD flag.
    pub recursion_desired: bool,
    /// Acceptable rcode names; an unknown name fails the probe (as blackbox).
    pub valid_rcodes: Vec<String>,
    /// Checks on the answer section.
    pub validate_answer_rrs: RrValidator,
    /// Checks on the authority section.
    pub validate_authority_rrs: RrValidator,
    /// Checks on the additional section.
    pub validate_additional_rrs: RrValidator,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            preferred_ip_protocol: IpProtocol::Ip6,
            ip_protocol_fallback: true,
            dns_over_tls: false,
            tls_config: TlsConfig::default(),
            source_ip_address: None,
            transport_protocol: Transport::Udp,
            query_class: "IN".into(),
            query_name: String::new(),
            query_type: "ANY".into(),
            recursion_desired: true,
            valid_rcodes: vec!["NOERROR".into()],
            validate_answer_rrs: RrValidator::default(),
            validate_authority_rrs: RrValidator::default(),
            validate_additional_rrs: RrValidator::default(),
        }
    }
}

impl Config {
    /// Records every problem of this block.
    pub fn validate(&self, path: &str, problems: &mut Problems) {
        if self.query_name.is_empty() {
            problems.push(format!("{path}.query_name"), "query name must be set for DNS module");
        } else if let Err(err) = Name::from_ascii(&self.query_name) {
            problems
                .push(format!("{path}.query_name"), format!("query name {:?} is not valid: {err}", self.query_name));
        }
        if class_code(&self.query_class).is_none() {
            problems.push(format!("{path}.query_class"), format!("query class '{}' is not valid", self.query_class));
        }
        if type_code(&self.query_type).is_none() {
            problems.push(format!("{path}.query_type"), format!("query type '{}' is not valid", self.query_type));
        }
        if self.dns_over_tls && self.transport_protocol != Transport::Tcp {
            problems.push(format!("{path}.dns_over_tls"), "dns_over_tls requires transport_protocol: tcp");
        }
        self.tls_config.validate(&format!("{path}.tls_config"), problems);
    }
}

/// miekg/dns `TypeToString`: the names blackbox accepts for `query_type`
/// and prints in record strings (hickory knows fewer).
const TYPES: &[(&str, u16)] = &[
    ("None", 0),
    ("A", 1),
    ("NS", 2),
    ("MD", 3),
    ("MF", 4),
    ("CNAME", 5),
    ("SOA", 6),
    ("MB", 7),
    ("MG", 8),
    ("MR", 9),
    ("NULL", 10),
    ("PTR", 12),
    ("HINFO", 13),
    ("MINFO", 14),
    ("MX", 15),
    ("TXT", 16),
    ("RP", 17),
    ("AFSDB", 18),
    ("X25", 19),
    ("ISDN", 20),
    ("RT", 21),
    ("NSAP-PTR", 23),
    ("SIG", 24),
    ("KEY", 25),
    ("PX", 26),
    ("GPOS", 27),
    ("AAAA", 28),
    ("LOC", 29),
    ("NXT", 30),
    ("EID", 31),
    ("NIMLOC", 32),
    ("SRV", 33),
    ("ATMA", 34),
    ("NAPTR", 35),
    ("KX", 36),
    ("CERT", 37),
    ("DNAME", 39),
    ("OPT", 41),
    ("APL", 42),
    ("DS", 43),
    ("SSHFP", 44),
    ("IPSECKEY", 45),
    ("RRSIG", 46),
    ("NSEC", 47),
    ("DNSKEY", 48),
    ("DHCID", 49),
    ("NSEC3", 50),
    ("NSEC3PARAM", 51),
    ("TLSA", 52),
    ("SMIMEA", 53),
    ("HIP", 55),
    ("NINFO", 56),
    ("RKEY", 57),
    ("TALINK", 58),
    ("CDS", 59),
    ("CDNSKEY", 60),
    ("OPENPGPKEY", 61),
    ("CSYNC", 62),
    ("ZONEMD", 63),
    ("SVCB", 64),
    ("HTTPS", 65),
    ("SPF", 99),
    ("UINFO", 100),
    ("UID", 101),
    ("GID", 102),
    ("UNSPEC", 103),
    ("NID", 104),
    ("L32", 105),
    ("L64", 106),
    ("LP", 107),
    ("EUI48", 108),
    ("EUI64", 109),
    ("NXNAME", 128),
    ("TKEY", 249),
    ("TSIG", 250),
    ("IXFR", 251),
    ("AXFR", 252),
    ("MAILB", 253),
    ("MAILA", 254),
    ("ANY", 255),
    ("URI", 256),
    ("CAA", 257),
    ("AVC", 258),
    ("AMTRELAY", 260),
    ("RESINFO", 261),
    ("TA", 32768),
    ("DLV", 32769),
    ("Reserved", 65535),
];

/// miekg/dns `ClassToString`.
const CLASSES: &[(&str, u16)] = &[("IN", 1), ("CS", 2), ("CH", 3), ("HS", 4), ("NONE", 254), ("ANY", 255)];

/// miekg/dns `StringToRcode` (with its `NOTIMPL` alias).
const RCODES: &[(&str, u16)] = &[
    ("NOERROR", 0),
    ("FORMERR", 1),
    ("SERVFAIL", 2),
    ("NXDOMAIN", 3),
    ("NOTIMP", 4),
    ("NOTIMPL", 4),
    ("REFUSED", 5),
    ("YXDOMAIN", 6),
    ("YXRRSET", 7),
    ("NXRRSET", 8),
    ("NOTAUTH", 9),
    ("NOTZONE", 10),
    ("DSOTYPENI", 11),
    ("BADSIG", 16),
    ("BADKEY", 17),
    ("BADTIME", 18),
    ("BADMODE", 19),
    ("BADNAME", 20),
    ("BADALG", 21),
    ("BADTRUNC", 22),
    ("BADCOOKIE", 23),
];

fn lookup(table: &[(&str, u16)], name: &str) -> Option<u16> {
    table.iter().find(|(known, _)| *known == name).map(|(_, code)| *code)
}

fn type_code(name: &str) -> Option<u16> {
    lookup(TYPES, name)
}

fn class_code(name: &str) -> Option<u16> {
    lookup(CLASSES, name)
}

fn rcode_name(code: u16) -> String {
    RCODES.iter().find(|(_, known)| *known == code).map_or_else(|| code.to_string(), |(name, _)| name.to_string())
}

const HELP_DURATION: &str = "Duration of DNS request by phase";
const DURATION: &str = "probe_dns_duration_seconds";
const HELP_ANSWER: &str = "Returns number of entries in the answer resource record list";
const HELP_AUTHORITY: &str = "Returns number of entries in the authority resource record list";
const HELP_ADDITIONAL: &str = "Returns number of entries in the additional resource record list";
const HELP_SUCCEEDED: &str = "Displays whether or not the query was executed successfully";
const HELP_SERIAL: &str = "Returns the serial number of the zone";

/// Runs one probe.
pub async fn probe(ctx: &mut ProbeCtx<'_>, config: &Config) -> ProbeResult {
    ctx.registry.seed_phases(DURATION, HELP_DURATION, &["resolve", "connect", "request"]);
    ctx.registry.set("probe_dns_answer_rrs", HELP_ANSWER, 0.0);
    ctx.registry.set("probe_dns_authority_rrs", HELP_AUTHORITY, 0.0);
    ctx.registry.set("probe_dns_additional_rrs", HELP_ADDITIONAL, 0.0);
    ctx.registry.set("probe_dns_query_succeeded", HELP_SUCCEEDED, 0.0);

    let query_type = type_code(&config.query_type).unwrap_or(255);
    let query = build_query(config, query_type)?;
    let default_port = if config.dns_over_tls { 853 } else { 53 };
    // As blackbox: a target without a port is all host.
    let (host, port) = resolve::split_host_port(ctx.target, Some(default_port))
        .unwrap_or_else(|_| (ctx.target.to_string(), default_port));
    let resolved = resolve::resolve(ctx, &host, config.preferred_ip_protocol, config.ip_protocol_fallback).await?;
    ctx.registry.add_phase(DURATION, HELP_DURATION, "resolve", resolved.lookup_time.as_secs_f64());
    let server = SocketAddr::new(resolved.ip, port);
    ctx.log.debug(format!(
        "Making DNS query target={server} transport={:?} tls={} query={} type={} class={}",
        config.transport_protocol, config.dns_over_tls, config.query_name, config.query_type, config.query_class
    ));

    // As miekg/dns: `request` is the round trip after the connection exists,
    // `connect` the rest (dial and TLS handshake); on failure all is `connect`.
    let start = Instant::now();
    let mut rtt = Duration::ZERO;
    let result = exchange(ctx, config, server, &host, &query, &mut rtt).await;
    let total = start.elapsed();
    ctx.registry.set_with(DURATION, HELP_DURATION, &[("phase", "connect")], total.saturating_sub(rtt).as_secs_f64());
    ctx.registry.set_with(DURATION, HELP_DURATION, &[("phase", "request")], rtt.as_secs_f64());
    let response = result?;
    ctx.log.debug(format!("Got response response={response}"));

    // miekg counts the EDNS OPT record in the additional section; hickory keeps it apart.
    let additional = response.additionals().len() + usize::from(response.extensions().is_some());
    ctx.registry.set("probe_dns_answer_rrs", HELP_ANSWER, response.answers().len() as f64);
    ctx.registry.set("probe_dns_authority_rrs", HELP_AUTHORITY, response.name_servers().len() as f64);
    ctx.registry.set("probe_dns_additional_rrs", HELP_ADDITIONAL, additional as f64);
    ctx.registry.set("probe_dns_query_succeeded", HELP_SUCCEEDED, 1.0);
    if query_type == u16::from(RecordType::SOA) {
        let serial = response.answers().iter().rev().find_map(|record| match record.data() {
            RData::SOA(soa) => Some(soa.serial()),
            _ => None,
        });
        ctx.registry.set("probe_dns_serial", HELP_SERIAL, f64::from(serial.unwrap_or(0)));
    }

    check_rcode(ctx, u16::from(response.response_code()), &config.valid_rcodes)?;
    for (section, records, validator) in [
        ("answer", response.answers(), &config.validate_answer_rrs),
        ("authority", response.name_servers(), &config.validate_authority_rrs),
        ("additional", response.additionals(), &config.validate_additional_rrs),
    ] {
        ctx.log.debug(format!("Validating {section} RRs"));
        let strings: Vec<String> = records.iter().map(presentation).collect();
        if let Err(why) = check_records(&strings, validator) {
            ctx.log.error(format!("{section} RRs validation failed: {why}"));
            return Err(ProbeError::new(Phase::Check, Reason::Regex, format!("{section} section: {why}")));
        }
    }
    Ok(())
}

fn build_query(config: &Config, query_type: u16) -> Result<Vec<u8>, ProbeError> {
    let config_error = |err: &dyn std::fmt::Display| ProbeError::new(Phase::Request, Reason::Config, err.to_string());
    let mut name = Name::from_ascii(&config.query_name).map_err(|err| config_error(&err))?;
    name.set_fqdn(true);
    let mut query = Query::query(name, RecordType::from(query_type));
    query.set_query_class(DNSClass::from(class_code(&config.query_class).unwrap_or(1)));
    let mut message = Message::new();
    message
        .set_id(rand::random())
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(config.recursion_desired)
        .add_query(query);
    message.to_vec().map_err(|err| config_error(&err))
}

/// Connects and asks; `rtt` is set to the round trip once a response arrived.
async fn exchange(
    ctx: &mut ProbeCtx<'_>,
    config: &Config,
    server: SocketAddr,
    host: &str,
    query: &[u8],
    rtt: &mut Duration,
) -> Result<Message, ProbeError> {
    let id = u16::from_be_bytes([query[0], query[1]]);
    match config.transport_protocol {
        Transport::Udp => {
            let socket = udp_socket(ctx, server, config.source_ip_address).await?;
            let round_trip = async {
                let started = Instant::now();
                socket.send(query).await?;
                let mut buffer = vec![0u8; 65_535];
                loop {
                    let length = socket.recv(&mut buffer).await?;
                    // As miekg: replies with another ID may answer an earlier query.
                    if let Some(message) = parse(&buffer[..length], id)? {
                        return Ok::<_, std::io::Error>((message, started.elapsed()));
                    }
                }
            };
            finish(ctx, round_trip, rtt).await
        }
        Transport::Tcp => {
            let stream = super::tcp::dial(ctx, server, config.source_ip_address).await?;
            if config.dns_over_tls {
                let (stream, _info) = tls::connect(ctx, &config.tls_config, host, &[], stream).await?;
                finish(ctx, tcp_round_trip(stream, query, id), rtt).await
            } else {
                finish(ctx, tcp_round_trip(stream, query, id), rtt).await
            }
        }
    }
}

async fn finish(
    ctx: &mut ProbeCtx<'_>,
    round_trip: impl std::future::Future<Output = std::io::Result<(Message, Duration)>>,
    rtt: &mut Duration,
) -> Result<Message, ProbeError> {
    match ctx.within(Phase::Request, round_trip).await? {
        Ok((message, elapsed)) => {
            *rtt = elapsed;
            Ok(message)
        }
        Err(err) => {
            ctx.log.error(format!("Error while sending a DNS query err={err}"));
            let reason = match err.kind() {
                std::io::ErrorKind::InvalidData => Reason::UnexpectedResponse,
                std::io::ErrorKind::ConnectionRefused => Reason::Refused,
                std::io::ErrorKind::UnexpectedEof => Reason::UnexpectedResponse,
                _ => Reason::Io,
            };
            Err(ProbeError::new(Phase::Request, reason, err))
        }
    }
}

async fn udp_socket(
    ctx: &mut ProbeCtx<'_>,
    server: SocketAddr,
    source: Option<IpAddr>,
) -> Result<tokio::net::UdpSocket, ProbeError> {
    let local = match (source, server) {
        (Some(source), _) => SocketAddr::new(source, 0),
        (None, SocketAddr::V4(_)) => SocketAddr::from(([0, 0, 0, 0], 0)),
        (None, SocketAddr::V6(_)) => SocketAddr::from(([0u16; 8], 0)),
    };
    let connect = async {
        let socket = tokio::net::UdpSocket::bind(local).await?;
        socket.connect(server).await?;
        Ok::<_, std::io::Error>(socket)
    };
    ctx.within(Phase::Connect, connect).await?.map_err(|err| {
        ctx.log.error(format!("Error dialing UDP err={err}"));
        ProbeError::connect(&err)
    })
}

/// One query over a stream: two-byte length prefixes (RFC 1035 4.2.2).
async fn tcp_round_trip<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    query: &[u8],
    id: u16,
) -> std::io::Result<(Message, Duration)> {
    let started = Instant::now();
    let mut framed = Vec::with_capacity(query.len() + 2);
    framed.extend_from_slice(&(query.len() as u16).to_be_bytes());
    framed.extend_from_slice(query);
    stream.write_all(&framed).await?;
    stream.flush().await?;
    loop {
        let length = stream.read_u16().await?;
        let mut buffer = vec![0u8; usize::from(length)];
        stream.read_exact(&mut buffer).await?;
        if let Some(message) = parse(&buffer, id)? {
            return Ok((message, started.elapsed()));
        }
    }
}

/// Parses a response; `None` when it answers another query.
fn parse(bytes: &[u8], id: u16) -> std::io::Result<Option<Message>> {
    let message = Message::from_vec(bytes)
        .map_err(|err| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("invalid DNS response: {err}")))?;
    Ok((message.id() == id).then_some(message))
}

fn check_rcode(ctx: &mut ProbeCtx<'_>, rcode: u16, valid: &[String]) -> ProbeResult {
    let mut codes = Vec::with_capacity(valid.len());
    for name in valid {
        match lookup(RCODES, name) {
            Some(code) => codes.push(code),
            None => {
                ctx.log.error(format!("Invalid rcode rcode={name}"));
                return Err(ProbeError::new(Phase::Check, Reason::Config, format!("invalid rcode {name:?}")));
            }
        }
    }
    if codes.contains(&rcode) {
        ctx.log.debug(format!("Rcode is valid rcode={rcode} string_rcode={}", rcode_name(rcode)));
        return Ok(());
    }
    ctx.log.error(format!("Rcode is not one of the valid rcodes rcode={rcode} string_rcode={}", rcode_name(rcode)));
    Err(ProbeError::new(Phase::Check, Reason::Status, format!("rcode {} is not valid", rcode_name(rcode))))
}

/// blackbox's `validRRs`, on presentation strings.
fn check_records(records: &[String], validator: &RrValidator) -> Result<(), String> {
    if records.is_empty() && !validator.fail_if_not_matches_regexp.is_empty() {
        return Err("fail_if_not_matches_regexp specified but no RRs returned".into());
    }
    if records.is_empty() && !validator.fail_if_none_matches_regexp.is_empty() {
        return Err("fail_if_none_matches_regexp specified but no RRs returned".into());
    }
    let mut all_match = true;
    let mut any_match = false;
    for record in records {
        if let Some(regex) = validator.fail_if_matches_regexp.iter().find(|regex| regex.is_match(record)) {
            return Err(format!("at least one RR matched regexp {:?}: {record:?}", regex.as_str()));
        }
        if validator.fail_if_all_match_regexp.iter().any(|regex| !regex.is_match(record)) {
            all_match = false;
        }
        if let Some(regex) = validator.fail_if_not_matches_regexp.iter().find(|regex| !regex.is_match(record)) {
            return Err(format!("at least one RR did not match regexp {:?}: {record:?}", regex.as_str()));
        }
        if validator.fail_if_none_matches_regexp.iter().any(|regex| regex.is_match(record)) {
            any_match = true;
        }
    }
    // Despite its name, blackbox fails this check when *not* every record
    // matches (`prober/dns.go`); dashboards depend on that, so it is kept.
    if !validator.fail_if_all_match_regexp.is_empty() && !all_match {
        return Err("not all RRs matched fail_if_all_match_regexp".into());
    }
    if !validator.fail_if_none_matches_regexp.is_empty() && !any_match {
        return Err("none of the RRs matched fail_if_none_matches_regexp".into());
    }
    Ok(())
}

/// A record as miekg/dns `RR.String()` writes it: name, TTL, class, type and
/// data separated by tabs, names with a trailing dot.
pub fn presentation(record: &Record) -> String {
    let mut out = String::new();
    let class = u16::from(record.dns_class());
    let class_name = match CLASSES.iter().find(|(_, code)| *code == class) {
        // miekg prints `ANY` as CLASS255: the mnemonic is also a type.
        Some((name, _)) if *name != "ANY" => name.to_string(),
        _ => format!("CLASS{class}"),
    };
    let record_type = u16::from(record.record_type());
    let type_name = TYPES
        .iter()
        .find(|(_, code)| *code == record_type)
        .map_or_else(|| format!("TYPE{record_type}"), |(name, _)| name.to_string());
    let _ = write!(out, "{}\t{}\t{class_name}\t{type_name}\t", name(record.name()), record.ttl());
    match record.data() {
        RData::A(a) => out.push_str(&a.0.to_string()),
        RData::AAAA(aaaa) => out.push_str(&aaaa.0.to_string()),
        RData::NS(target) => out.push_str(&name(&target.0)),
        RData::CNAME(target) => out.push_str(&name(&target.0)),
        RData::PTR(target) => out.push_str(&name(&target.0)),
        RData::MX(mx) => {
            let _ = write!(out, "{} {}", mx.preference(), name(mx.exchange()));
        }
        RData::SOA(soa) => {
            let _ = write!(
                out,
                "{} {} {} {} {} {} {}",
                name(soa.mname()),
                name(soa.rname()),
                soa.serial(),
                soa.refresh(),
                soa.retry(),
                soa.expire(),
                soa.minimum()
            );
        }
        RData::TXT(txt) => out.push_str(&quoted_strings(txt.txt_data().iter().map(|text| &text[..]))),
        RData::HINFO(hinfo) => out.push_str(&quoted_strings([hinfo.cpu(), hinfo.os()].into_iter())),
        RData::SRV(srv) => {
            let _ = write!(out, "{} {} {} {}", srv.priority(), srv.weight(), srv.port(), name(srv.target()));
        }
        RData::CAA(caa) => {
            let _ = write!(out, "{} {} ", caa.flags(), caa.tag().as_str());
            out.push_str(&quoted_strings(std::iter::once(caa.raw_value())));
        }
        RData::Unknown { rdata, .. } => {
            let _ = write!(out, "\\# {} {}", rdata.anything().len(), hex::encode(rdata.anything()));
        }
        other => out.push_str(&other.to_string()),
    }
    out
}

/// A name as miekg's `sprintName`: special characters escaped with `\`,
/// unprintable bytes as `\DDD`, a trailing dot.
fn name(name: &Name) -> String {
    if name.is_root() {
        return ".".into();
    }
    let mut out = String::new();
    for label in name.iter() {
        escape_into(&mut out, label, b".'@;()\" \\");
        out.push('.');
    }
    out
}

/// Character strings as miekg's `sprintTxt`: each quoted, `"` and `\` escaped,
/// unprintable bytes as `\DDD`, separated by spaces.
fn quoted_strings<'a>(strings: impl Iterator<Item = &'a [u8]>) -> String {
    let mut out = String::new();
    for (index, text) in strings.enumerate() {
        if index > 0 {
            out.push(' ');
        }
        out.push('"');
        escape_into(&mut out, text, b"\"\\");
        out.push('"');
    }
    out
}

/// Appends `bytes` as miekg prints them: each of `special` behind a `\`,
/// other printable ASCII as is, anything else as `\DDD`.
fn escape_into(out: &mut String, bytes: &[u8], special: &[u8]) {
    for &byte in bytes {
        match byte {
            _ if special.contains(&byte) => {
                out.push('\\');
                out.push(char::from(byte));
            }
            b' '..=b'~' => out.push(char::from(byte)),
            _ => {
                let _ = write!(out, "\\{byte:03}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{A, MX, SOA, TXT};
    use std::str::FromStr;

    fn record(name: &str, ttl: u32, data: RData) -> Record {
        Record::from_rdata(Name::from_str(name).unwrap(), ttl, data)
    }

    #[test]
    fn records_print_like_miekg() {
        let cases = [
            (
                record("www.prometheus.io.", 300, RData::A(A::new(127, 0, 0, 1))),
                "www.prometheus.io.\t300\tIN\tA\t127.0.0.1",
            ),
            (
                record("example.com.", 3600, RData::MX(MX::new(10, Name::from_str("mail.example.com.").unwrap()))),
                "example.com.\t3600\tIN\tMX\t10 mail.example.com.",
            ),
            (
                record(
                    "example.com.",
                    60,
                    RData::SOA(SOA::new(
                        Name::from_str("ns.example.com.").unwrap(),
                        Name::from_str("hostmaster.example.com.").unwrap(),
                        2024010101,
                        3600,
                        900,
                        604800,
                        86400,
                    )),
                ),
                "example.com.\t60\tIN\tSOA\tns.example.com. hostmaster.example.com. 2024010101 3600 900 604800 86400",
            ),
            (
                record("t.example.", 5, RData::TXT(TXT::from_bytes(vec![b"v=spf1 \"x\"", b"a\\b\x01"]))),
                "t.example.\t5\tIN\tTXT\t\"v=spf1 \\\"x\\\"\" \"a\\\\b\\001\"",
            ),
        ];
        for (record, expected) in cases {
            assert_eq!(presentation(&record), expected);
        }
    }

    #[test]
    fn validators_follow_blackbox() {
        let re = |pattern: &str| Regex::new(pattern).unwrap();
        let records = vec!["a.\t1\tIN\tA\t10.0.0.1".to_string(), "a.\t1\tIN\tA\t10.0.0.2".to_string()];
        let none = RrValidator::default();
        assert!(check_records(&records, &none).is_ok());
        assert!(
            check_records(&[], &RrValidator { fail_if_none_matches_regexp: vec![re(".")], ..none.clone() }).is_err()
        );
        let cases = [
            (RrValidator { fail_if_matches_regexp: vec![re("10.0.0.2")], ..none.clone() }, false),
            // blackbox's inverted fail_if_all_match_regexp.
            (RrValidator { fail_if_all_match_regexp: vec![re("10.0.0")], ..none.clone() }, true),
            (RrValidator { fail_if_all_match_regexp: vec![re("0.1$")], ..none.clone() }, false),
            (RrValidator { fail_if_not_matches_regexp: vec![re("0.1$")], ..none.clone() }, false),
            (RrValidator { fail_if_none_matches_regexp: vec![re("0.2$")], ..none.clone() }, true),
            (RrValidator { fail_if_none_matches_regexp: vec![re("AAAA")], ..none }, false),
        ];
        for (validator, passes) in cases {
            assert_eq!(check_records(&records, &validator).is_ok(), passes, "{validator:?}");
        }
    }

    #[test]
    fn config_is_validated_like_blackbox() {
        let mut problems = Problems::default();
        let config =
            Config { query_type: "BOGUS".into(), query_class: "XX".into(), dns_over_tls: true, ..Config::default() };
        config.validate("modules.dns.dns", &mut problems);
        let messages: Vec<String> = problems.0.iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            [
                "modules.dns.dns.query_name: query name must be set for DNS module",
                "modules.dns.dns.query_class: query class 'XX' is not valid",
                "modules.dns.dns.query_type: query type 'BOGUS' is not valid",
                "modules.dns.dns.dns_over_tls: dns_over_tls requires transport_protocol: tcp",
            ]
        );
    }
}
