//! The `tls` prober: a TLS handshake and nothing else (LDAPS, IMAPS, any TLS
//! port), optionally after a protocol's STARTTLS exchange.
//!
//! Besides blackbox's TLS families (only after a successful handshake) it
//! emits two checkit families that exist as soon as the server presented a
//! certificate, so an expired or untrusted certificate is visible without
//! `insecure_skip_verify` (blackbox_exporter #1119):
//! `probe_tls_leaf_certificate_expiry_timestamp_seconds` and
//! `probe_tls_certificate_verified`.

use super::resolve::{self, IpProtocol};
use super::tls::{self, TlsConfig};
use super::{Phase, ProbeCtx, ProbeError, ProbeResult, Reason};
use crate::config::Problems;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Instant;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// The `tls:` block of a module.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// TLS settings; `server_name` defaults to the target host.
    pub tls_config: TlsConfig,
    /// Preferred address family.
    pub preferred_ip_protocol: IpProtocol,
    /// Fall back to the other family when the preferred one has no address.
    pub ip_protocol_fallback: bool,
    /// A plain-text exchange that upgrades the connection before the handshake.
    pub starttls: StartTls,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            tls_config: TlsConfig::default(),
            preferred_ip_protocol: IpProtocol::Ip6,
            ip_protocol_fallback: true,
            starttls: StartTls::None,
        }
    }
}

impl Config {
    /// Records every problem of this block.
    pub fn validate(&self, path: &str, problems: &mut Problems) {
        self.tls_config.validate(&format!("{path}.tls_config"), problems);
    }
}

/// How the connection is upgraded to TLS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartTls {
    /// Implicit TLS: the handshake starts at once.
    #[default]
    None,
    /// SMTP `EHLO` then `STARTTLS` (RFC 3207).
    Smtp,
    /// IMAP `STARTTLS` (RFC 3501).
    Imap,
    /// POP3 `STLS` (RFC 2595).
    Pop3,
    /// FTP `AUTH TLS` (RFC 4217).
    Ftp,
    /// LDAP StartTLS extended operation (RFC 4511).
    Ldap,
    /// PostgreSQL `SSLRequest`.
    Postgres,
}

const HELP_DURATION: &str = "Duration of the TLS probe by phase";
const HELP_LEAF_EXPIRY: &str =
    "NotAfter of the leaf certificate the server presented, as a Unix timestamp, whether or not it verified";
const HELP_VERIFIED: &str = "Whether the presented chain verifies against the trusted roots for the server name (1) or not (0), checked even with insecure_skip_verify";

/// Runs one probe.
pub async fn probe(ctx: &mut ProbeCtx<'_>, config: &Config) -> ProbeResult {
    let phases: &[&str] = if config.starttls == StartTls::None {
        &["resolve", "connect", "tls"]
    } else {
        &["resolve", "connect", "processing", "tls"]
    };
    ctx.registry.seed_phases("probe_tls_duration_seconds", HELP_DURATION, phases);

    let (host, port) = resolve::split_host_port(ctx.target, None)
        .map_err(|err| ProbeError::new(Phase::Resolve, Reason::Config, format!("invalid target: {err}")))?;
    let resolved = resolve::resolve(ctx, &host, config.preferred_ip_protocol, config.ip_protocol_fallback).await?;
    ctx.registry.add_phase("probe_tls_duration_seconds", HELP_DURATION, "resolve", resolved.lookup_time.as_secs_f64());

    let address = SocketAddr::new(resolved.ip, port);
    let start = Instant::now();
    let stream = ctx.within(Phase::Connect, TcpStream::connect(address)).await;
    ctx.registry.add_phase("probe_tls_duration_seconds", HELP_DURATION, "connect", start.elapsed().as_secs_f64());
    let mut stream = stream?.map_err(|err| ProbeError::connect(&err))?;
    ctx.log.debug(format!("Connected address={address}"));

    if config.starttls != StartTls::None {
        let start = Instant::now();
        let upgraded = ctx.within(Phase::Processing, starttls(stream, config.starttls)).await;
        ctx.registry.add_phase(
            "probe_tls_duration_seconds",
            HELP_DURATION,
            "processing",
            start.elapsed().as_secs_f64(),
        );
        stream = upgraded??;
        ctx.log.debug(format!("STARTTLS accepted protocol={:?}", config.starttls));
    }

    let client =
        tls::Client::new(&config.tls_config, &[]).map_err(|err| ProbeError::new(Phase::Tls, Reason::Config, err))?;
    // As blackbox's tcp prober: the `hostname` parameter names the server when
    // the target is an address.
    let default_name = ctx.hostname.unwrap_or(&host);
    let server_name = tls::server_name(config.tls_config.server_name.as_deref().unwrap_or(default_name))?;
    let connector = tokio_rustls::TlsConnector::from(client.config.clone());
    let start = Instant::now();
    let handshake = ctx.within(Phase::Tls, connector.connect(server_name.clone(), stream)).await;
    ctx.registry.add_phase("probe_tls_duration_seconds", HELP_DURATION, "tls", start.elapsed().as_secs_f64());
    record_presented(ctx, &client, &server_name);
    match handshake? {
        Ok(stream) => {
            let info = client.info(stream.get_ref().1);
            ctx.log.info(format!("TLS handshake done version={:?} cipher={}", info.version, info.cipher));
            tls::record(&info, &mut ctx.registry, tls::Families { cipher: true, last_chain_expiry: true });
            Ok(())
        }
        Err(err) => {
            ctx.log.error(format!("TLS handshake failed err={err}"));
            Err(ProbeError::new(Phase::Tls, tls::classify(&err), err))
        }
    }
}

/// The checkit families about the presented certificate, whatever the
/// handshake's outcome; absent when the server presented none.
fn record_presented(ctx: &mut ProbeCtx<'_>, client: &tls::Client, server_name: &rustls::pki_types::ServerName<'_>) {
    let presented = client.presented();
    let Some(leaf) = presented.first() else { return };
    if let Ok((_, parsed)) = x509_parser::parse_x509_certificate(leaf.as_ref()) {
        let not_after = parsed.validity().not_after.timestamp() as f64;
        ctx.registry.set("probe_tls_leaf_certificate_expiry_timestamp_seconds", HELP_LEAF_EXPIRY, not_after);
    }
    let verified = client.verify_presented(server_name);
    if let Err(err) = &verified {
        ctx.log.info(format!("Presented certificate does not verify err={err}"));
    }
    ctx.registry.set("probe_tls_certificate_verified", HELP_VERIFIED, if verified.is_ok() { 1.0 } else { 0.0 });
}

/// Replies longer than this are not a STARTTLS dialogue.
const MAX_LINE: u64 = 4096;

fn refused(detail: impl std::fmt::Display) -> ProbeError {
    ProbeError::new(Phase::Processing, Reason::UnexpectedResponse, detail)
}

fn io_error(err: std::io::Error) -> ProbeError {
    ProbeError::io(Phase::Processing, &err)
}

/// Runs the protocol's upgrade exchange and hands back the bare stream.
async fn starttls(stream: TcpStream, protocol: StartTls) -> Result<TcpStream, ProbeError> {
    let mut reader = BufReader::new(stream);
    match protocol {
        StartTls::None => {}
        StartTls::Smtp => {
            expect_reply(&mut reader, "220").await?;
            send(&mut reader, b"EHLO checkit\r\n").await?;
            expect_reply(&mut reader, "250").await?;
            send(&mut reader, b"STARTTLS\r\n").await?;
            expect_reply(&mut reader, "220").await?;
        }
        StartTls::Ftp => {
            expect_reply(&mut reader, "220").await?;
            send(&mut reader, b"AUTH TLS\r\n").await?;
            expect_reply(&mut reader, "234").await?;
        }
        StartTls::Pop3 => {
            expect_line(&mut reader, |line| line.starts_with("+OK")).await?;
            send(&mut reader, b"STLS\r\n").await?;
            expect_line(&mut reader, |line| line.starts_with("+OK")).await?;
        }
        StartTls::Imap => {
            expect_line(&mut reader, |line| line.starts_with("* OK")).await?;
            send(&mut reader, b"c1 STARTTLS\r\n").await?;
            // Untagged lines may come first; the tagged one decides.
            loop {
                let line = read_line(&mut reader).await?;
                if let Some(status) = line.strip_prefix("c1 ") {
                    if status.starts_with("OK") {
                        break;
                    }
                    return Err(refused(format!("IMAP STARTTLS refused: {}", line.trim_end())));
                }
            }
        }
        StartTls::Ldap => {
            send(&mut reader, &LDAP_STARTTLS_REQUEST).await?;
            let result = read_ldap_result(&mut reader).await?;
            if result != 0 {
                return Err(refused(format!("LDAP StartTLS refused with resultCode {result}")));
            }
        }
        StartTls::Postgres => {
            send(&mut reader, &POSTGRES_SSL_REQUEST).await?;
            let answer = reader.read_u8().await.map_err(io_error)?;
            if answer != b'S' {
                return Err(refused(format!("PostgreSQL refused SSL (answered {:?})", char::from(answer))));
            }
        }
    }
    // Bytes after the final reply would be read as TLS by nobody: a server
    // (or a man in the middle) injecting them is refused (CVE-2011-0411 class).
    if !reader.buffer().is_empty() {
        return Err(refused("data after the STARTTLS reply"));
    }
    Ok(reader.into_inner())
}

async fn send(reader: &mut BufReader<TcpStream>, bytes: &[u8]) -> Result<(), ProbeError> {
    reader.get_mut().write_all(bytes).await.map_err(io_error)
}

async fn read_line(reader: &mut BufReader<TcpStream>) -> Result<String, ProbeError> {
    let mut line = String::new();
    let read = (&mut *reader).take(MAX_LINE).read_line(&mut line).await.map_err(io_error)?;
    if read == 0 {
        return Err(refused("connection closed during STARTTLS"));
    }
    if !line.ends_with('\n') {
        return Err(refused("reply line too long"));
    }
    Ok(line)
}

async fn expect_line(reader: &mut BufReader<TcpStream>, ok: impl Fn(&str) -> bool) -> Result<(), ProbeError> {
    let line = read_line(reader).await?;
    if ok(&line) { Ok(()) } else { Err(refused(format!("unexpected reply {:?}", line.trim_end()))) }
}

/// Reads an SMTP/FTP reply (`250-…` lines continue, `250 …` ends it) and
/// checks its code.
async fn expect_reply(reader: &mut BufReader<TcpStream>, code: &str) -> Result<(), ProbeError> {
    loop {
        let line = read_line(reader).await?;
        if !line.starts_with(code) {
            return Err(refused(format!("expected {code}, got {:?}", line.trim_end())));
        }
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok(());
        }
    }
}

/// `LDAPMessage { messageID 1, ExtendedRequest { requestName "1.3.6.1.4.1.1466.20037" } }`.
const LDAP_STARTTLS_REQUEST: [u8; 31] = *b"\x30\x1d\x02\x01\x01\x77\x18\x80\x161.3.6.1.4.1.1466.20037";

/// Length 8, code 80877103: PostgreSQL's `SSLRequest`.
const POSTGRES_SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// Reads one LDAPMessage and returns the ExtendedResponse's resultCode.
async fn read_ldap_result(reader: &mut BufReader<TcpStream>) -> Result<u64, ProbeError> {
    let tag = reader.read_u8().await.map_err(io_error)?;
    if tag != 0x30 {
        return Err(refused(format!("not an LDAP message (tag {tag:#04x})")));
    }
    let first = reader.read_u8().await.map_err(io_error)?;
    let length = if first & 0x80 == 0 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 3 {
            return Err(refused("unsupported LDAP length"));
        }
        let mut length = 0usize;
        for _ in 0..count {
            length = (length << 8) | usize::from(reader.read_u8().await.map_err(io_error)?);
        }
        length
    };
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await.map_err(io_error)?;
    parse_ldap_extended_response(&body).map_err(|err| refused(format!("malformed LDAP response: {err}")))
}

/// From the body of an LDAPMessage: messageID, then `[APPLICATION 24]`
/// ExtendedResponse whose first element is the resultCode.
fn parse_ldap_extended_response(mut body: &[u8]) -> Result<u64, String> {
    let (tag, message_id) = ber_element(&mut body)?;
    if tag != 0x02 || message_id.is_empty() {
        return Err("missing messageID".into());
    }
    let (tag, mut response) = ber_element(&mut body)?;
    if tag != 0x78 {
        return Err(format!("expected ExtendedResponse, got tag {tag:#04x}"));
    }
    let (tag, code) = ber_element(&mut response)?;
    if tag != 0x0a || code.is_empty() || code.len() > 4 {
        return Err("missing resultCode".into());
    }
    Ok(code.iter().fold(0u64, |value, byte| (value << 8) | u64::from(*byte)))
}

fn ber_element<'a>(input: &mut &'a [u8]) -> Result<(u8, &'a [u8]), String> {
    let (&tag, rest) = input.split_first().ok_or("truncated")?;
    let (&first, mut rest) = rest.split_first().ok_or("truncated")?;
    let length = if first & 0x80 == 0 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 3 || rest.len() < count {
            return Err("bad length".into());
        }
        let length = rest[..count].iter().fold(0usize, |value, byte| (value << 8) | usize::from(*byte));
        rest = &rest[count..];
        length
    };
    if rest.len() < length {
        return Err("truncated".into());
    }
    *input = &rest[length..];
    Ok((tag, &rest[..length]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldap_request_is_well_formed() {
        let mut input = &LDAP_STARTTLS_REQUEST[..];
        let (tag, mut message) = ber_element(&mut input).unwrap();
        assert_eq!((tag, input.len()), (0x30, 0));
        assert_eq!(ber_element(&mut message).unwrap(), (0x02, &[1u8][..]));
        let (tag, mut request) = ber_element(&mut message).unwrap();
        assert_eq!(tag, 0x77);
        assert_eq!(ber_element(&mut request).unwrap(), (0x80, &b"1.3.6.1.4.1.1466.20037"[..]));
    }

    #[test]
    fn ldap_result_codes_are_read() {
        // messageID 1, ExtendedResponse { resultCode success, matchedDN "", diagnosticMessage "" }.
        let success = [0x02, 0x01, 0x01, 0x78, 0x07, 0x0a, 0x01, 0x00, 0x04, 0x00, 0x04, 0x00];
        assert_eq!(parse_ldap_extended_response(&success), Ok(0));
        let protocol_error = [0x02, 0x01, 0x01, 0x78, 0x07, 0x0a, 0x01, 0x02, 0x04, 0x00, 0x04, 0x00];
        assert_eq!(parse_ldap_extended_response(&protocol_error), Ok(2));
        assert!(parse_ldap_extended_response(&[0x02, 0x01, 0x01, 0x61, 0x00]).is_err());
        assert!(parse_ldap_extended_response(&[0x02, 0x01]).is_err());
    }
}
