//! One HTTP round trip on a fresh connection: dial (directly or through an
//! HTTP proxy), TLS, request, response head; then the body, decoded and
//! limited. Each phase is timed the way blackbox's `httptrace` hooks time it.

use super::client::Proxy;
use super::{DURATION, HELP_DURATION};
use crate::probe::tls::{self, TlsConfig, TlsInfo};
use crate::probe::{Phase, ProbeCtx, ProbeError, Reason};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Version, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Where the TCP connection of a hop goes.
#[derive(Debug, Clone)]
pub(super) enum Route {
    /// Straight to the resolved address.
    Direct(SocketAddr),
    /// Through an HTTP proxy that must reach `authority` (`host:port`).
    Proxy {
        /// The proxy.
        proxy: Proxy,
        /// What the proxy connects to: the resolved IP, or the name when the
        /// proxy resolves (`skip_resolve_phase_with_proxy`).
        authority: String,
    },
}

/// TLS settings for an `https` hop.
#[derive(Debug, Clone)]
pub(super) struct TlsSettings {
    /// The module's `tls_config`, `server_name` cleared after a cross-host redirect.
    pub(super) config: TlsConfig,
    /// Server name used when `config.server_name` is unset.
    pub(super) default_server_name: String,
}

/// Everything needed to send one request.
#[derive(Debug, Clone)]
pub(super) struct Hop {
    /// Where to connect.
    pub(super) route: Route,
    /// TLS, for `https`.
    pub(super) tls: Option<TlsSettings>,
    /// Request method.
    pub(super) method: Method,
    /// Path and query (origin form).
    pub(super) path_and_query: String,
    /// `Host` header (and HTTP/2 `:authority`).
    pub(super) host: String,
    /// Every other request header.
    pub(super) headers: HeaderMap,
    /// Request body.
    pub(super) body: Bytes,
}

/// Aborts the task driving a hyper connection when the probe lets go of it,
/// so no connection outlives its probe (the deadline may drop us anywhere).
struct Driver(tokio::task::AbortHandle);

impl Drop for Driver {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A response head with its still unread body.
pub(super) struct Response {
    /// Status code.
    pub(super) status: u16,
    /// Protocol version.
    pub(super) version: Version,
    /// Response headers.
    pub(super) headers: HeaderMap,
    /// The body, read by [`read_body`].
    pub(super) body: Incoming,
    /// The handshake, when the hop used TLS.
    pub(super) tls: Option<TlsInfo>,
    /// When the response head arrived (start of `transfer`).
    pub(super) first_byte: Instant,
    _driver: Driver,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Headers that exist only for one HTTP/1 connection; HTTP/2 forbids them.
const CONNECTION_SPECIFIC: [&str; 6] =
    ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "host"];

/// Sends `hop` on a new connection and waits for the response head,
/// adding the `connect`, `tls` and `processing` phases as blackbox does:
/// only once the connection is up (and for `processing`, once a response came).
pub(super) async fn send(ctx: &mut ProbeCtx<'_>, hop: &Hop, enable_http2: bool) -> Result<Response, ProbeError> {
    let dns_done = Instant::now();
    let stream = match &hop.route {
        Route::Direct(addr) => {
            ctx.log.debug(format!("Dialing address={addr}"));
            ctx.within(Phase::Connect, TcpStream::connect(addr)).await?.map_err(|err| ProbeError::connect(&err))?
        }
        Route::Proxy { proxy, authority } => {
            ctx.log.debug(format!("Dialing proxy address={}:{} for={authority}", proxy.host, proxy.port));
            let mut stream = ctx
                .within(Phase::Connect, TcpStream::connect((proxy.host.as_str(), proxy.port)))
                .await?
                .map_err(|err| ProbeError::connect(&err))?;
            if hop.tls.is_some() {
                ctx.within(Phase::Connect, tunnel(&mut stream, authority, proxy)).await??;
            }
            stream
        }
    };
    // Small requests: don't let Nagle delay them.
    let _ = stream.set_nodelay(true);
    let connect_time = dns_done.elapsed();
    let (io, tls_info, tls_time): (Box<dyn Io>, Option<TlsInfo>, Duration) = match &hop.tls {
        Some(settings) => {
            let alpn: &[&[u8]] = if enable_http2 { &[b"h2", b"http/1.1"] } else { &[] };
            let tls_start = Instant::now();
            let (stream, info) =
                tls::connect(ctx, &settings.config, &settings.default_server_name, alpn, stream).await?;
            (Box::new(stream), Some(info), tls_start.elapsed())
        }
        None => (Box::new(stream), None, Duration::ZERO),
    };
    let got_conn = Instant::now();
    ctx.registry.add_phase(DURATION, HELP_DURATION, "connect", connect_time.as_secs_f64());
    if tls_info.is_some() {
        ctx.registry.add_phase(DURATION, HELP_DURATION, "tls", tls_time.as_secs_f64());
    }
    let h2 = tls_info.as_ref().and_then(|info| info.alpn.as_deref()) == Some(b"h2".as_slice());
    let request = build_request(hop, h2)?;
    let exchange = async move {
        if h2 {
            let (mut sender, connection) =
                hyper::client::conn::http2::Builder::new(TokioExecutor::new()).handshake(TokioIo::new(io)).await?;
            let driver = Driver(tokio::spawn(connection).abort_handle());
            sender.ready().await?;
            Ok::<_, hyper::Error>((sender.send_request(request).await?, driver))
        } else {
            let (mut sender, connection) =
                hyper::client::conn::http1::Builder::new().title_case_headers(true).handshake(TokioIo::new(io)).await?;
            let driver = Driver(tokio::spawn(connection).abort_handle());
            sender.ready().await?;
            Ok((sender.send_request(request).await?, driver))
        }
    };
    let (response, driver) = ctx
        .within(Phase::Processing, exchange)
        .await?
        .map_err(|err| ProbeError::new(Phase::Processing, classify(&err), format!("error for HTTP request: {err}")))?;
    let first_byte = Instant::now();
    ctx.registry.add_phase(DURATION, HELP_DURATION, "processing", (first_byte - got_conn).as_secs_f64());
    let (parts, body) = response.into_parts();
    Ok(Response {
        status: parts.status.as_u16(),
        version: parts.version,
        headers: parts.headers,
        body,
        tls: tls_info,
        first_byte,
        _driver: driver,
    })
}

fn build_request(hop: &Hop, h2: bool) -> Result<Request<Full<Bytes>>, ProbeError> {
    let bad = |what: &str, err: &dyn std::fmt::Display| {
        ProbeError::new(Phase::Processing, Reason::Config, format!("invalid {what}: {err}"))
    };
    let uri = match (&hop.route, hop.tls.is_some(), h2) {
        (_, _, true) => format!("https://{}{}", hop.host, hop.path_and_query),
        // A plain request through a proxy names its target in absolute form.
        (Route::Proxy { authority, .. }, false, _) => format!("http://{authority}{}", hop.path_and_query),
        _ => hop.path_and_query.clone(),
    };
    let mut request = Request::builder()
        .method(hop.method.clone())
        .uri(uri.as_str())
        .version(if h2 { Version::HTTP_2 } else { Version::HTTP_11 })
        .body(Full::new(hop.body.clone()))
        .map_err(|err| bad("request", &err))?;
    let headers = request.headers_mut();
    *headers = hop.headers.clone();
    if h2 {
        for name in CONNECTION_SPECIFIC {
            headers.remove(name);
        }
    } else {
        let host = HeaderValue::from_str(&hop.host).map_err(|err| bad("Host header", &err))?;
        headers.insert(header::HOST, host);
        // Go's transport with keep-alives disabled asks the server to close.
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        if let Route::Proxy { proxy, .. } = &hop.route {
            if hop.tls.is_none() {
                if let Some(credentials) = &proxy.authorization {
                    let value = HeaderValue::from_str(credentials).map_err(|err| bad("proxy credentials", &err))?;
                    headers.insert(header::PROXY_AUTHORIZATION, value);
                }
            }
        }
    }
    Ok(request)
}

/// Opens a `CONNECT` tunnel through the proxy.
async fn tunnel(stream: &mut TcpStream, authority: &str, proxy: &Proxy) -> Result<(), ProbeError> {
    let mut head = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some(credentials) = &proxy.authorization {
        head.push_str(&format!("Proxy-Authorization: {credentials}\r\n"));
    }
    for (name, value) in &proxy.connect_headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let io_error =
        |err: std::io::Error| ProbeError::new(Phase::Connect, Reason::Connect, format!("proxy CONNECT failed: {err}"));
    stream.write_all(head.as_bytes()).await.map_err(io_error)?;
    // Byte by byte: whatever follows the reply belongs to the tunnel (TLS).
    let mut reply = Vec::with_capacity(128);
    while !reply.ends_with(b"\r\n\r\n") {
        if reply.len() > 16 * 1024 {
            return Err(ProbeError::new(Phase::Connect, Reason::Connect, "proxy CONNECT reply too long"));
        }
        let byte = stream.read_u8().await.map_err(io_error)?;
        reply.push(byte);
    }
    let status_line =
        String::from_utf8_lossy(reply.split(|byte| *byte == b'\n').next().unwrap_or_default()).trim().to_string();
    let status = status_line.split_whitespace().nth(1).unwrap_or_default();
    if status.len() == 3 && status.starts_with('2') {
        Ok(())
    } else {
        Err(ProbeError::new(Phase::Connect, Reason::Connect, format!("proxy refused CONNECT: {status_line}")))
    }
}

fn classify(err: &hyper::Error) -> Reason {
    if err.is_timeout() {
        Reason::Timeout
    } else if err.is_parse() || err.is_parse_status() || err.is_incomplete_message() {
        Reason::UnexpectedResponse
    } else {
        Reason::Io
    }
}

/// Counts (and keeps, when a regex needs it) the decoded body, failing once
/// it grows past `body_size_limit`, as Go's `http.MaxBytesReader` does.
pub(super) struct Sink {
    /// Decoded bytes accepted so far (at most the limit).
    pub(super) length: u64,
    /// The decoded body, when kept.
    pub(super) data: Vec<u8>,
    /// True once the limit was exceeded.
    pub(super) exceeded: bool,
    limit: Option<u64>,
    keep: bool,
}

impl Sink {
    /// A sink with an optional limit, keeping the data when `keep`.
    pub(super) fn new(limit: Option<u64>, keep: bool) -> Sink {
        Sink { length: 0, data: Vec::new(), exceeded: false, limit, keep }
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut accepted = buf.len();
        if let Some(limit) = self.limit {
            let room = usize::try_from(limit.saturating_sub(self.length)).unwrap_or(usize::MAX);
            if accepted > room {
                accepted = room;
                self.exceeded = true;
            }
        }
        self.length += accepted as u64;
        if self.keep {
            self.data.extend_from_slice(&buf[..accepted]);
        }
        if self.exceeded {
            return Err(std::io::Error::other("body exceeds body_size_limit"));
        }
        Ok(accepted)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The response body decoder named by `compression`.
enum Decoder<'a> {
    Identity(&'a mut Sink),
    Gzip(flate2::write::MultiGzDecoder<&'a mut Sink>),
    // Go's `flate.NewReader`: raw DEFLATE, as blackbox decodes "deflate".
    Deflate(flate2::write::DeflateDecoder<&'a mut Sink>),
    Brotli(Box<brotli::DecompressorWriter<&'a mut Sink>>),
}

impl<'a> Decoder<'a> {
    fn new(compression: &str, sink: &'a mut Sink) -> Decoder<'a> {
        match compression.to_ascii_lowercase().as_str() {
            "gzip" => Decoder::Gzip(flate2::write::MultiGzDecoder::new(sink)),
            "deflate" => Decoder::Deflate(flate2::write::DeflateDecoder::new(sink)),
            "br" => Decoder::Brotli(Box::new(brotli::DecompressorWriter::new(sink, 4096))),
            _ => Decoder::Identity(sink),
        }
    }

    fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Decoder::Identity(sink) => sink.write_all(data),
            Decoder::Gzip(decoder) => decoder.write_all(data),
            Decoder::Deflate(decoder) => decoder.write_all(data),
            Decoder::Brotli(decoder) => decoder.write_all(data),
        }
    }

    fn finish(self) -> std::io::Result<()> {
        match self {
            Decoder::Identity(_) => Ok(()),
            Decoder::Gzip(decoder) => decoder.finish().map(drop),
            Decoder::Deflate(decoder) => decoder.finish().map(drop),
            Decoder::Brotli(decoder) => {
                decoder.into_inner().map(drop).map_err(|_| std::io::Error::other("truncated brotli stream"))
            }
        }
    }
}

/// Why reading the body stopped early.
pub(super) enum BodyError {
    /// The connection failed or closed mid-body.
    Read(hyper::Error),
    /// The body did not decode (or exceeded the limit: see [`Sink::exceeded`]).
    Decode(std::io::Error),
}

impl BodyError {
    /// The failure for this error; `exceeded` comes from the sink.
    pub(super) fn into_probe_error(self, exceeded: bool, limit: i64) -> ProbeError {
        match self {
            _ if exceeded => ProbeError::new(
                Phase::Transfer,
                Reason::Body,
                format!("body larger than body_size_limit ({limit} bytes)"),
            ),
            BodyError::Read(err) => {
                ProbeError::new(Phase::Transfer, classify(&err), format!("failed to read HTTP response body: {err}"))
            }
            BodyError::Decode(err) => ProbeError::new(
                Phase::Transfer,
                Reason::Body,
                format!("failed to decompress HTTP response body: {err}"),
            ),
        }
    }
}

/// Reads `body` to the end through the decoder for `compression` into `sink`.
pub(super) async fn read_body(body: &mut Incoming, compression: &str, sink: &mut Sink) -> Result<(), BodyError> {
    let mut decoder = Decoder::new(compression, sink);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(BodyError::Read)?;
        if let Ok(data) = frame.into_data() {
            decoder.write_all(&data).map_err(BodyError::Decode)?;
        }
    }
    decoder.finish().map_err(BodyError::Decode)
}
