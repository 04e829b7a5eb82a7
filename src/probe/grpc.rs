//! The `grpc` prober: the standard health check (`grpc.health.v1.Health/Check`)
//! with blackbox_exporter's `probe_grpc_*` families.
//!
//! Unlike blackbox (which dials `host:port` again and ignores the deadline),
//! the connection goes to the address chosen by [`resolve::resolve`] with the
//! host name as TLS server name and `:authority`, and every step is bounded by
//! the probe deadline (also sent to the server as `grpc-timeout`).
//!
//! The client is `h2` driven by hand: one unary RPC with a one-field request
//! and a one-field response does not justify tonic + prost (and their codegen)
//! in the binary; the framing and the protobuf encoding are a few lines below.

use super::resolve::{self, IpProtocol};
use super::tls::{self, TlsConfig};
use super::{Phase, ProbeCtx, ProbeError, ProbeResult, Reason};
use crate::config::Problems;
use bytes::{Buf, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};

/// The `grpc:` block of a module (blackbox `GRPCProbe`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Service name sent in the health check; empty means the whole server.
    pub service: String,
    /// Use TLS (default port 443 instead of 80).
    pub tls: bool,
    /// TLS settings; `server_name` defaults to the target host.
    pub tls_config: TlsConfig,
    /// Preferred address family.
    pub preferred_ip_protocol: IpProtocol,
    /// Fall back to the other family when the preferred one has no address.
    pub ip_protocol_fallback: bool,
    /// Outgoing metadata (request headers), each key with one or more values.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, Vec<String>>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            service: String::new(),
            tls: false,
            tls_config: TlsConfig::default(),
            preferred_ip_protocol: IpProtocol::Ip6,
            ip_protocol_fallback: true,
            metadata: BTreeMap::new(),
        }
    }
}

/// Headers that gRPC owns; like grpc-go, metadata with these keys is not sent.
const RESERVED_METADATA: [&str; 9] = [
    "content-type",
    "user-agent",
    "te",
    "grpc-message-type",
    "grpc-encoding",
    "grpc-message",
    "grpc-status",
    "grpc-timeout",
    "grpc-status-details-bin",
];

impl Config {
    /// Records every problem of this block.
    pub fn validate(&self, path: &str, problems: &mut Problems) {
        self.tls_config.validate(&format!("{path}.tls_config"), problems);
        for (key, values) in &self.metadata {
            let key_path = format!("{path}.metadata.{key}");
            // grpc-go refuses these at call time; saying so at load is kinder.
            if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
                problems.push(&key_path, "metadata key must only contain characters [0-9a-zA-Z-_.]");
                continue;
            }
            if key.to_ascii_lowercase().ends_with("-bin") {
                continue;
            }
            for (index, value) in values.iter().enumerate() {
                if http::HeaderValue::from_str(value).is_err() {
                    problems.push(
                        format!("{key_path}[{index}]"),
                        "metadata value must be printable ASCII (use a key ending in -bin for binary values)",
                    );
                }
            }
        }
    }
}

const HELP_DURATION: &str = "Duration of gRPC request by phase";
const HELP_SSL: &str = "Indicates if SSL was used for the connection";
const HELP_STATUS: &str = "Response gRPC status code";
const HELP_HEALTH: &str = "Response HealthCheck response";

/// `grpc.health.v1.HealthCheckResponse.ServingStatus`, by number.
const SERVING_STATUSES: [&str; 4] = ["UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"];
const SERVING: i32 = 1;

/// gRPC status codes the prober reports itself.
mod code {
    pub(super) const OK: u32 = 0;
    pub(super) const CANCELLED: u32 = 1;
    pub(super) const UNKNOWN: u32 = 2;
    pub(super) const DEADLINE_EXCEEDED: u32 = 4;
    pub(super) const PERMISSION_DENIED: u32 = 7;
    pub(super) const RESOURCE_EXHAUSTED: u32 = 8;
    pub(super) const UNIMPLEMENTED: u32 = 12;
    pub(super) const INTERNAL: u32 = 13;
    pub(super) const UNAVAILABLE: u32 = 14;
    pub(super) const UNAUTHENTICATED: u32 = 16;
}

/// A failed check: the probe error and the gRPC status code to report.
struct Failure {
    error: ProbeError,
    code: u32,
}

impl Failure {
    fn new(phase: Phase, reason: Reason, code: u32, detail: impl std::fmt::Display) -> Self {
        Failure { error: ProbeError::new(phase, reason, detail), code }
    }
}

impl From<ProbeError> for Failure {
    /// Errors from dialling and TLS: grpc-go reports them as UNAVAILABLE,
    /// and a deadline as DEADLINE_EXCEEDED.
    fn from(error: ProbeError) -> Self {
        let code = if error.reason == Reason::Timeout { code::DEADLINE_EXCEEDED } else { code::UNAVAILABLE };
        Failure { error, code }
    }
}

/// Runs one probe.
pub async fn probe(ctx: &mut ProbeCtx<'_>, config: &Config) -> ProbeResult {
    // Same families, in the same cases, as blackbox 0.23: `check` and the
    // serving statuses only exist once the target resolved.
    ctx.registry.seed_phases("probe_grpc_duration_seconds", HELP_DURATION, &["resolve"]);
    ctx.registry.set("probe_grpc_ssl", HELP_SSL, 0.0);
    ctx.registry.set("probe_grpc_status_code", HELP_STATUS, 0.0);

    let (host, port) = parse_target(ctx.target, config.tls)
        .map_err(|err| ProbeError::new(Phase::Resolve, Reason::Config, format!("invalid target: {err}")))?;
    let resolved = resolve::resolve(ctx, &host, config.preferred_ip_protocol, config.ip_protocol_fallback).await?;
    ctx.registry.add_phase("probe_grpc_duration_seconds", HELP_DURATION, "resolve", resolved.lookup_time.as_secs_f64());

    ctx.registry.seed_phases("probe_grpc_duration_seconds", HELP_DURATION, &["check"]);
    for status in SERVING_STATUSES {
        ctx.registry.set_with("probe_grpc_healthcheck_response", HELP_HEALTH, &[("serving_status", status)], 0.0);
    }
    let start = Instant::now();
    let result = check(ctx, config, &host, SocketAddr::new(resolved.ip, port)).await;
    ctx.registry.add_phase("probe_grpc_duration_seconds", HELP_DURATION, "check", start.elapsed().as_secs_f64());

    match result {
        Ok(serving_status) => {
            ctx.registry.set("probe_grpc_status_code", HELP_STATUS, f64::from(code::OK));
            let name = usize::try_from(serving_status)
                .ok()
                .and_then(|index| SERVING_STATUSES.get(index))
                .copied()
                .unwrap_or("UNKNOWN");
            ctx.registry.set_with("probe_grpc_healthcheck_response", HELP_HEALTH, &[("serving_status", name)], 1.0);
            if serving_status == SERVING {
                ctx.log.debug("Health check says SERVING");
                Ok(())
            } else {
                ctx.log.error(format!("Health check says {name} serving_status={serving_status}"));
                Err(ProbeError::new(Phase::Check, Reason::NotServing, format!("serving status is {name}")))
            }
        }
        Err(failure) => {
            ctx.registry.set("probe_grpc_status_code", HELP_STATUS, f64::from(failure.code));
            ctx.log.error(format!("Health check failed code={} err={}", failure.code, failure.error));
            Err(failure.error)
        }
    }
}

/// Splits the target (`host[:port]` with an optional `http://` or `https://`
/// prefix, which blackbox ignores) and applies the default port.
fn parse_target(target: &str, tls: bool) -> Result<(String, u16), String> {
    let rest = target.strip_prefix("http://").or_else(|| target.strip_prefix("https://")).unwrap_or(target);
    // Like Go's url.Parse, anything after the authority is not part of the address.
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() {
        return Err(format!("no host in {target:?}"));
    }
    resolve::split_host_port(authority, Some(if tls { 443 } else { 80 }))
}

/// Dials, optionally does TLS, and runs the RPC. Returns the serving status.
async fn check(ctx: &mut ProbeCtx<'_>, config: &Config, host: &str, address: SocketAddr) -> Result<i32, Failure> {
    let stream = ctx.within(Phase::Connect, tokio::net::TcpStream::connect(address)).await?;
    let stream = stream.map_err(|err| ProbeError::connect(&err))?;
    ctx.log.debug(format!("Connected address={address}"));
    let authority = match (config.tls, &config.tls_config.server_name) {
        // grpc-go takes the TLS server name (blackbox sets it to the host) as authority.
        (true, Some(name)) => name.clone(),
        (true, None) => bracket(host),
        (false, _) => format!("{}:{}", bracket(host), address.port()),
    };
    if config.tls {
        let (stream, info) = tls::connect(ctx, &config.tls_config, host, &[b"h2"], stream).await?;
        ctx.registry.set("probe_grpc_ssl", HELP_SSL, 1.0);
        tls::record(&info, &mut ctx.registry, tls::Families { cipher: false, last_chain_expiry: false });
        if info.alpn.as_deref() != Some(b"h2") {
            ctx.log.debug("Server did not select ALPN h2; speaking HTTP/2 anyway");
        }
        let request = build_request(ctx, config, &authority)?;
        ctx.within(Phase::Request, call(stream, request, &config.service)).await?
    } else {
        let request = build_request(ctx, config, &authority)?;
        ctx.within(Phase::Request, call(stream, request, &config.service)).await?
    }
}

fn bracket(host: &str) -> String {
    if host.contains(':') { format!("[{host}]") } else { host.to_string() }
}

fn build_request(ctx: &mut ProbeCtx<'_>, config: &Config, authority: &str) -> Result<http::Request<()>, Failure> {
    let uri = http::Uri::builder()
        .scheme(if config.tls { "https" } else { "http" })
        .authority(authority)
        .path_and_query("/grpc.health.v1.Health/Check")
        .build()
        .map_err(|err| {
            Failure::new(Phase::Request, Reason::Config, code::INTERNAL, format!("invalid authority: {err}"))
        })?;
    let mut builder = http::Request::builder()
        .method(http::Method::POST)
        .uri(uri)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("user-agent", concat!("checkit/", env!("CARGO_PKG_VERSION")))
        .header("grpc-timeout", grpc_timeout(ctx.remaining()));
    for (key, values) in &config.metadata {
        let key = key.to_ascii_lowercase();
        if RESERVED_METADATA.contains(&key.as_str()) {
            ctx.log.debug(format!("Not sending reserved metadata key={key}"));
            continue;
        }
        for value in values {
            builder = if key.ends_with("-bin") {
                use base64::Engine as _;
                builder.header(&key, base64::engine::general_purpose::STANDARD_NO_PAD.encode(value))
            } else {
                builder.header(&key, value)
            };
        }
    }
    builder.body(()).map_err(|err| Failure::new(Phase::Request, Reason::Config, code::INTERNAL, err))
}

/// The `grpc-timeout` header: at most 8 digits and a unit.
fn grpc_timeout(remaining: Duration) -> String {
    let millis = remaining.as_millis().max(1);
    if millis <= 99_999_999 { format!("{millis}m") } else { format!("{}S", remaining.as_secs().min(99_999_999)) }
}

/// Health responses are a few bytes; anything much larger is not one.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Speaks HTTP/2 over `stream`, sends one health check and reads the answer.
async fn call<S>(stream: S, request: http::Request<()>, service: &str) -> Result<i32, Failure>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (client, connection) = h2::client::handshake(stream).await.map_err(h2_failure)?;
    let exchange = exchange(client, request, service);
    tokio::pin!(connection, exchange);
    // The connection future does the I/O; it is driven here rather than
    // spawned so nothing outlives the probe.
    tokio::select! {
        result = &mut exchange => result,
        closed = &mut connection => match closed {
            Err(err) => Err(h2_failure(err)),
            // A graceful close fails the pending stream too; let it say so.
            Ok(()) => exchange.await,
        },
    }
}

async fn exchange(
    mut client: h2::client::SendRequest<Bytes>,
    request: http::Request<()>,
    service: &str,
) -> Result<i32, Failure> {
    client = client.ready().await.map_err(h2_failure)?;
    let (response, mut send) = client.send_request(request, false).map_err(h2_failure)?;
    send.send_data(encode_request(service), true).map_err(h2_failure)?;
    let response = response.await.map_err(h2_failure)?;
    let (head, mut body) = response.into_parts();

    // A "trailers-only" response carries grpc-status in the headers.
    if let Some(status) = grpc_status(&head.headers) {
        status?;
        return Err(no_message());
    }
    if head.status != http::StatusCode::OK {
        let code = http_to_grpc(head.status.as_u16());
        return Err(Failure::new(
            Phase::Request,
            Reason::Status,
            code,
            format!("unexpected HTTP status {}", head.status),
        ));
    }
    let content_type = head.headers.get("content-type").and_then(|value| value.to_str().ok()).unwrap_or_default();
    if !content_type.starts_with("application/grpc") {
        return Err(Failure::new(
            Phase::Request,
            Reason::UnexpectedResponse,
            code::UNKNOWN,
            format!("unexpected content-type {content_type:?}"),
        ));
    }

    let mut received = BytesMut::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(h2_failure)?;
        let _ = body.flow_control().release_capacity(chunk.len());
        received.extend_from_slice(&chunk);
        if received.len() > MAX_RESPONSE_BYTES {
            return Err(unexpected(code::RESOURCE_EXHAUSTED, "response larger than 64 KiB"));
        }
    }
    let trailers = body.trailers().await.map_err(h2_failure)?.unwrap_or_default();
    match grpc_status(&trailers) {
        Some(Ok(())) => {}
        Some(Err(failure)) => return Err(failure),
        None => return Err(unexpected(code::INTERNAL, "server closed the stream without grpc-status")),
    }
    let message = first_message(&received)?.ok_or_else(no_message)?;
    decode_response(&message).map_err(|err| unexpected(code::INTERNAL, format!("invalid health response: {err}")))
}

fn unexpected(code: u32, detail: impl std::fmt::Display) -> Failure {
    Failure::new(Phase::Request, Reason::UnexpectedResponse, code, detail)
}

fn no_message() -> Failure {
    unexpected(code::INTERNAL, "no response message")
}

/// Reads `grpc-status` (and `grpc-message` for the log): `None` when absent.
fn grpc_status(headers: &http::HeaderMap) -> Option<Result<(), Failure>> {
    let value = headers.get("grpc-status")?;
    let code: u32 = match value.to_str().ok().and_then(|text| text.parse().ok()) {
        Some(code) => code,
        None => return Some(Err(unexpected(code::INTERNAL, format!("malformed grpc-status {value:?}")))),
    };
    if code == code::OK {
        return Some(Ok(()));
    }
    let message = headers
        .get("grpc-message")
        .map(|value| percent_encoding::percent_decode(value.as_bytes()).decode_utf8_lossy().into_owned())
        .unwrap_or_default();
    Some(Err(Failure::new(Phase::Request, Reason::Status, code, format!("grpc-status {code}: {message}"))))
}

/// gRPC's mapping of HTTP statuses from servers that are not gRPC
/// (grpc-go `HTTPStatusConvTab`).
fn http_to_grpc(status: u16) -> u32 {
    match status {
        400 => code::INTERNAL,
        401 => code::UNAUTHENTICATED,
        403 => code::PERMISSION_DENIED,
        404 => code::UNIMPLEMENTED,
        429 | 502 | 503 | 504 => code::UNAVAILABLE,
        _ => code::UNKNOWN,
    }
}

/// Classifies an HTTP/2 error as grpc-go does: a stream reset by the server
/// keeps its meaning, anything on the connection level is UNAVAILABLE (that is
/// what a non-gRPC port gives).
fn h2_failure(err: h2::Error) -> Failure {
    if let Some(io) = err.get_io() {
        return Failure { error: ProbeError::io(Phase::Request, io), code: code::UNAVAILABLE };
    }
    if err.is_reset() && err.is_remote() {
        let code = match err.reason() {
            Some(h2::Reason::REFUSED_STREAM) => code::UNAVAILABLE,
            Some(h2::Reason::CANCEL) => code::CANCELLED,
            Some(h2::Reason::ENHANCE_YOUR_CALM) => code::RESOURCE_EXHAUSTED,
            Some(h2::Reason::INADEQUATE_SECURITY) => code::PERMISSION_DENIED,
            _ => code::INTERNAL,
        };
        return Failure::new(Phase::Request, Reason::UnexpectedResponse, code, format!("stream reset: {err}"));
    }
    Failure::new(Phase::Request, Reason::UnexpectedResponse, code::UNAVAILABLE, format!("HTTP/2 error: {err}"))
}

// The protobuf messages are one field each:
//   message HealthCheckRequest  { string service = 1; }
//   message HealthCheckResponse { ServingStatus status = 1; }

/// A length-prefixed gRPC message holding `HealthCheckRequest`.
fn encode_request(service: &str) -> Bytes {
    let mut message = Vec::with_capacity(service.len() + 6);
    if !service.is_empty() {
        message.push(0x0a); // Field 1, wire type 2 (length-delimited).
        put_varint(&mut message, service.len() as u64);
        message.extend_from_slice(service.as_bytes());
    }
    let mut framed = Vec::with_capacity(message.len() + 5);
    framed.push(0); // Not compressed.
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(&message);
    Bytes::from(framed)
}

/// The first length-prefixed message of a response body.
fn first_message(body: &[u8]) -> Result<Option<Vec<u8>>, Failure> {
    if body.is_empty() {
        return Ok(None);
    }
    let mut cursor = body;
    if cursor.len() < 5 {
        return Err(unexpected(code::INTERNAL, "truncated gRPC message prefix"));
    }
    let compressed = cursor.get_u8();
    let length = cursor.get_u32() as usize;
    if compressed != 0 {
        // Nothing was offered in grpc-accept-encoding, so this is a server bug.
        return Err(unexpected(code::INTERNAL, "compressed response although none was accepted"));
    }
    if cursor.len() < length {
        return Err(unexpected(code::INTERNAL, "truncated gRPC message"));
    }
    Ok(Some(cursor[..length].to_vec()))
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn get_varint(input: &mut &[u8]) -> Result<u64, String> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = input.split_first().ok_or("truncated varint")?;
        *input = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("varint longer than 10 bytes".into())
}

/// Decodes `HealthCheckResponse`, skipping unknown fields; the status
/// defaults to 0 (UNKNOWN) as in proto3.
fn decode_response(mut input: &[u8]) -> Result<i32, String> {
    let mut status = 0;
    while !input.is_empty() {
        let key = get_varint(&mut input)?;
        let skip = match key & 7 {
            0 => {
                let value = get_varint(&mut input)?;
                if key >> 3 == 1 {
                    // Enums are int32 on the wire, sign-extended to 64 bits.
                    status = value as i64 as i32;
                }
                0
            }
            1 => 8,
            2 => usize::try_from(get_varint(&mut input)?).map_err(|_| "field too long")?,
            5 => 4,
            wire => return Err(format!("unsupported wire type {wire}")),
        };
        if input.len() < skip {
            return Err("truncated field".into());
        }
        input = &input[skip..];
    }
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_health_check_request() {
        assert_eq!(&encode_request("")[..], &[0, 0, 0, 0, 0]);
        assert_eq!(&encode_request("db")[..], &[0, 0, 0, 0, 4, 0x0a, 2, b'd', b'b']);
        let long = "x".repeat(200);
        let framed = encode_request(&long);
        assert_eq!(&framed[..8], &[0, 0, 0, 0, 203, 0x0a, 0xc8, 0x01]);
    }

    #[test]
    fn decodes_health_check_response() {
        assert_eq!(decode_response(&[]), Ok(0));
        assert_eq!(decode_response(&[0x08, 1]), Ok(1));
        assert_eq!(decode_response(&[0x08, 2]), Ok(2));
        // An unknown string field 2 and fixed64 field 3 are skipped.
        assert_eq!(decode_response(&[0x12, 1, b'x', 0x19, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 1]), Ok(1));
        assert!(decode_response(&[0x08]).is_err());
        assert!(decode_response(&[0x12, 5, 1]).is_err());
        assert!(decode_response(&[0x0b]).is_err());
    }

    #[test]
    fn frames_are_read_with_their_prefix() {
        assert_eq!(first_message(&[0, 0, 0, 0, 2, 0x08, 1]).ok(), Some(Some(vec![0x08, 1])));
        assert!(matches!(first_message(&[]), Ok(None)));
        assert!(first_message(&[0, 0, 0, 0, 9, 0x08]).is_err());
        assert!(first_message(&[1, 0, 0, 0, 2, 0x08, 1]).is_err());
    }

    #[test]
    fn targets_take_default_ports() {
        assert_eq!(parse_target("localhost:9090", false).unwrap(), ("localhost".into(), 9090));
        assert_eq!(parse_target("http://localhost", false).unwrap(), ("localhost".into(), 80));
        assert_eq!(parse_target("https://example.com", true).unwrap(), ("example.com".into(), 443));
        assert_eq!(parse_target("example.com/x", true).unwrap(), ("example.com".into(), 443));
        assert_eq!(parse_target("[::1]:50051", false).unwrap(), ("::1".into(), 50051));
        assert!(parse_target("http://", false).is_err());
    }

    #[test]
    fn timeouts_fit_eight_digits() {
        assert_eq!(grpc_timeout(Duration::from_millis(1500)), "1500m");
        assert_eq!(grpc_timeout(Duration::ZERO), "1m");
        assert_eq!(grpc_timeout(Duration::from_secs(200_000)), "200000S");
    }

    #[test]
    fn metadata_keys_are_validated() {
        let mut config = Config::default();
        config.metadata.insert("x-token".into(), vec!["abc".into()]);
        config.metadata.insert("bad key".into(), vec!["abc".into()]);
        config.metadata.insert("x-line".into(), vec!["a\nb".into()]);
        config.metadata.insert("x-raw-bin".into(), vec!["a\nb".into()]);
        let mut problems = Problems::default();
        config.validate("modules.g.grpc", &mut problems);
        let paths = problems.paths();
        assert_eq!(paths, ["modules.g.grpc.metadata.bad key", "modules.g.grpc.metadata.x-line[0]"]);
    }

    #[test]
    fn http_statuses_map_like_grpc_go() {
        assert_eq!(http_to_grpc(404), code::UNIMPLEMENTED);
        assert_eq!(http_to_grpc(503), code::UNAVAILABLE);
        assert_eq!(http_to_grpc(200), code::UNKNOWN);
    }
}
