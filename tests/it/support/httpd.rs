//! An in-process HTTP/HTTPS test server (hyper, HTTP/1.1 and HTTP/2 via ALPN)
//! with fixed routes for the HTTP prober tests, counting connections.
//!
//! Routes:
//! - `/` 200 [`BODY`] with `Last-Modified` [`LAST_MODIFIED`]
//! - `/status/<code>`: that status
//! - `/redirect/<n>`: 302 → `/redirect/<n-1>`, `/redirect/0` is `/`
//! - `/loop`: 302 → `/loop`
//! - `/to?url=<url>`: 302 → `<url>`; `/to307?url=<url>`: 307 → `<url>`
//! - `/cookie/set`: 302 → `/cookie/check` with `Set-Cookie: session=s3cr3t`
//! - `/cookie/check`: 200 when the cookie came back, else 403
//! - `/echo`: 200 JSON of method, path, version, headers, body, TLS SNI
//! - `/gzip`: [`BODY`] gzip-encoded; `/big?size=<n>`: n bytes of `x`
//! - `/headers`: `X-Multi: one`, `X-Multi: two`, `Server: checkit-test`
//! - `/stall-body`: sends the head and part of the body, then stalls
//! - `/token`: an OAuth2 token endpoint for client `probe`/`probe-secret`

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Body of `/` and `/gzip` (decoded).
pub const BODY: &str = "hello from the checkit test server\n";
/// `Last-Modified` of `/`: Wed, 21 Oct 2015 07:28:00 GMT.
pub const LAST_MODIFIED: &str = "Wed, 21 Oct 2015 07:28:00 GMT";
/// [`LAST_MODIFIED`] as Unix time.
pub const LAST_MODIFIED_UNIX: f64 = 1_445_412_480.0;
/// The access token `/token` issues.
pub const TOKEN: &str = "tok-123";

/// A running test server; stops on drop.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Whether it speaks TLS.
    pub tls: bool,
    connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    /// Starts a plain HTTP/1.1 server.
    pub async fn http() -> TestServer {
        Self::start(None).await
    }

    /// Starts an HTTPS server with `config` (ALPN `h2` and `http/1.1` are added).
    pub async fn https(config: Arc<rustls::ServerConfig>) -> TestServer {
        let mut config = (*config).clone();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Self::start(Some(Arc::new(config))).await
    }

    /// Starts a plain HTTP/1.1 server on `[::1]`, or `None` when the host has no IPv6 loopback.
    pub async fn http_ipv6() -> Option<TestServer> {
        let listener = TcpListener::bind("[::1]:0").await.ok()?;
        Some(Self::serve(listener, None))
    }

    /// Starts a plain HTTP/1.1 server on `ip` (another loopback address such as 127.0.0.2).
    pub async fn http_on(ip: &str) -> TestServer {
        let listener = TcpListener::bind((ip, 0)).await.expect("bind");
        Self::serve(listener, None)
    }

    async fn start(tls: Option<Arc<rustls::ServerConfig>>) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        Self::serve(listener, tls)
    }

    fn serve(listener: TcpListener, tls: Option<Arc<rustls::ServerConfig>>) -> TestServer {
        let addr = listener.local_addr().expect("addr");
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        let is_tls = tls.is_some();
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    match acceptor {
                        Some(acceptor) => {
                            let Ok(stream) = acceptor.accept(stream).await else { return };
                            let sni = stream.get_ref().1.server_name().map(str::to_string);
                            let service = hyper::service::service_fn(move |request| handle(request, sni.clone()));
                            let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                        }
                        None => {
                            let service = hyper::service::service_fn(|request| handle(request, None));
                            let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                        }
                    }
                });
            }
        });
        TestServer { addr, tls: is_tls, connections, task }
    }

    /// `http(s)://<address>:<port><path>` (IPv6 in brackets).
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", if self.tls { "https" } else { "http" }, self.addr)
    }

    /// `http(s)://localhost:<port><path>`.
    pub fn localhost_url(&self, path: &str) -> String {
        format!("{}://localhost:{}{path}", if self.tls { "https" } else { "http" }, self.addr.port())
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn full(body: impl Into<Bytes>) -> Body {
    Full::new(body.into()).boxed()
}

fn respond(status: u16, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = hyper::StatusCode::from_u16(status).expect("status");
    response
}

fn redirect(status: u16, location: &str) -> Response<Body> {
    let mut response = respond(status, "");
    response.headers_mut().insert("location", location.parse().expect("location"));
    response
}

fn query_param(request: &Request<Incoming>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(request.uri().query()?.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

async fn handle(request: Request<Incoming>, sni: Option<String>) -> Result<Response<Body>, Infallible> {
    let path = request.uri().path().to_string();
    let response = match path.as_str() {
        "/" => {
            let mut response = respond(200, BODY);
            response.headers_mut().insert("last-modified", LAST_MODIFIED.parse().expect("date"));
            response
        }
        "/loop" => redirect(302, "/loop"),
        "/to" => redirect(302, &query_param(&request, "url").unwrap_or_default()),
        "/to307" => redirect(307, &query_param(&request, "url").unwrap_or_default()),
        "/cookie/set" => {
            let mut response = redirect(302, "/cookie/check");
            response.headers_mut().insert("set-cookie", "session=s3cr3t; Path=/".parse().expect("cookie"));
            response
        }
        "/cookie/check" => {
            let cookie = request.headers().get("cookie").and_then(|value| value.to_str().ok()).unwrap_or_default();
            if cookie.contains("session=s3cr3t") { respond(200, "cookie ok\n") } else { respond(403, "no cookie\n") }
        }
        "/gzip" => {
            use std::io::Write;
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(BODY.as_bytes()).expect("gzip");
            let mut response = respond(200, encoder.finish().expect("gzip"));
            response.headers_mut().insert("content-encoding", "gzip".parse().expect("value"));
            response
        }
        "/big" => {
            let size: usize = query_param(&request, "size").and_then(|size| size.parse().ok()).unwrap_or(1024);
            respond(200, vec![b'x'; size])
        }
        "/headers" => {
            let mut response = respond(200, "headers\n");
            let headers = response.headers_mut();
            headers.append("x-multi", "one".parse().expect("value"));
            headers.append("x-multi", "two".parse().expect("value"));
            headers.insert("server", "checkit-test".parse().expect("value"));
            response
        }
        "/stall-body" => {
            use futures::StreamExt as _;
            let first = Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"partial")));
            let stream = futures::stream::iter([first]).chain(futures::stream::pending());
            Response::new(BodyExt::boxed(StreamBody::new(stream)))
        }
        "/token" => token(request).await,
        "/echo" => echo(request, sni).await,
        _ => match path.strip_prefix("/status/").and_then(|code| code.parse::<u16>().ok()) {
            Some(code) => respond(code, format!("status {code}\n")),
            None => match path.strip_prefix("/redirect/").and_then(|n| n.parse::<u32>().ok()) {
                Some(0) => redirect(302, "/"),
                Some(n) => redirect(302, &format!("/redirect/{}", n - 1)),
                None => respond(404, "not found\n"),
            },
        },
    };
    Ok(response)
}

async fn echo(request: Request<Incoming>, sni: Option<String>) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.map(|body| body.to_bytes()).unwrap_or_default();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(name, value)| (name.to_string(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
        .collect();
    let json = serde_json::json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "authority": parts.uri.authority().map(|authority| authority.to_string()),
        "version": format!("{:?}", parts.version),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
        "sni": sni,
    });
    let mut response = respond(200, json.to_string());
    response.headers_mut().insert("content-type", "application/json".parse().expect("value"));
    response
}

async fn token(request: Request<Incoming>) -> Response<Body> {
    use base64::Engine as _;
    let expected = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("probe:probe-secret"));
    let authorized =
        request.headers().get("authorization").is_some_and(|value| value.as_bytes() == expected.as_bytes());
    let body = request.into_body().collect().await.map(|body| body.to_bytes()).unwrap_or_default();
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let has = |key: &str, value: &str| form.iter().any(|(k, v)| k == key && v == value);
    if !authorized
        || !has("grant_type", "client_credentials")
        || !has("scope", "read write")
        || !has("audience", "probes")
    {
        return respond(401, r#"{"error":"invalid_client"}"#);
    }
    let mut response = respond(200, format!(r#"{{"access_token":"{TOKEN}","token_type":"bearer","expires_in":60}}"#));
    response.headers_mut().insert("content-type", "application/json".parse().expect("value"));
    response
}
