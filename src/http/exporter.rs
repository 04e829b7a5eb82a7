//! The HTTP endpoints: `/probe`, `/metrics`, `/-/reload`, `/-/healthy`,
//! `/-/ready`, `/config`, `/logs`, `/`, and the bridge's routes.
//!
//! The library takes an already-bound listener and a shutdown token, so tests
//! start the real app on `127.0.0.1:0`.

use crate::config::Config;
use crate::http::history::History;
use crate::http::webconfig::Web;
use crate::probe::{self, ProberKind, Reason};
use crate::telemetry::{ProbeLabels, Telemetry};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{any, get};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Where the config comes from, for reloads.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    /// A file on disk.
    File(PathBuf),
    /// The embedded default.
    Embedded,
}

impl ConfigSource {
    /// Loads the config.
    pub fn load(&self) -> Result<Config, crate::config::Error> {
        match self {
            ConfigSource::File(path) => Config::load(path),
            ConfigSource::Embedded => Config::parse(crate::config::DEFAULT_CONFIG),
        }
    }
}

/// Options from the command line.
#[derive(Debug, Clone)]
pub struct Options {
    /// Seconds subtracted from the scrape timeout header.
    pub timeout_offset: f64,
    /// Results kept for `/logs`.
    pub history_limit: usize,
    /// Prefix under which every route is served (`/` for none).
    pub route_prefix: String,
}

impl Default for Options {
    fn default() -> Self {
        Options { timeout_offset: 0.5, history_limit: 100, route_prefix: "/".into() }
    }
}

/// Shared state of the running exporter.
pub struct App {
    config: RwLock<Arc<Config>>,
    source: ConfigSource,
    options: Options,
    /// Exporter metrics.
    pub telemetry: Telemetry,
    history: Mutex<History>,
    probes: Semaphore,
    web: Web,
    bridge: Option<crate::bridge::Bridge>,
    reload_lock: tokio::sync::Mutex<()>,
}

impl App {
    /// Builds the app around a loaded config (and starts the bridge if configured).
    pub async fn new(config: Config, source: ConfigSource, options: Options, web: Web) -> anyhow::Result<Arc<App>> {
        let telemetry = Telemetry::new();
        telemetry.reloaded(true);
        let bridge = match &config.bridge {
            Some(bridge_config) => {
                // Take the registry out so no lock is held while the bridge opens its store.
                let poisoned = || anyhow::anyhow!("metrics registry poisoned");
                let mut registry = std::mem::take(&mut *telemetry.registry.lock().map_err(|_| poisoned())?);
                let started = crate::bridge::Bridge::start(bridge_config.clone(), &mut registry).await;
                *telemetry.registry.lock().map_err(|_| poisoned())? = registry;
                Some(started?)
            }
            None => None,
        };
        let max = config.exporter.max_concurrent_probes;
        Ok(Arc::new(App {
            history: Mutex::new(History::new(options.history_limit)),
            config: RwLock::new(Arc::new(config)),
            source,
            options,
            telemetry,
            probes: Semaphore::new(max),
            web,
            bridge,
            reload_lock: tokio::sync::Mutex::new(()),
        }))
    }

    /// The current config.
    pub fn config(&self) -> Arc<Config> {
        self.config.read().map(|config| config.clone()).unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    /// Reloads the config; a failure keeps the old one and says why.
    pub async fn reload(&self) -> Result<(), String> {
        let _serialised = self.reload_lock.lock().await;
        match self.source.load() {
            Ok(config) => {
                if let (Some(bridge), Some(bridge_config)) = (&self.bridge, &config.bridge) {
                    bridge.reload(bridge_config.clone());
                }
                if config.bridge.is_some() != self.bridge.is_some() {
                    tracing::warn!("Enabling or disabling the bridge takes effect after a restart");
                }
                if config.exporter.max_concurrent_probes != self.config().exporter.max_concurrent_probes {
                    tracing::warn!("A new exporter.max_concurrent_probes takes effect after a restart");
                }
                if let Ok(mut current) = self.config.write() {
                    *current = Arc::new(config);
                }
                self.telemetry.reloaded(true);
                tracing::info!("Loaded config file");
                Ok(())
            }
            Err(err) => {
                self.telemetry.reloaded(false);
                tracing::error!(error = %err, "Error reloading config");
                Err(err.to_string())
            }
        }
    }

    /// The running bridge, when configured.
    pub fn bridge(&self) -> Option<&crate::bridge::Bridge> {
        self.bridge.as_ref()
    }

    /// The web config (users, TLS, headers).
    pub fn web(&self) -> &Web {
        &self.web
    }

    /// The route prefix as a path that starts and ends with `/`, for links.
    pub fn base_path(&self) -> String {
        let prefix = self.options.route_prefix.trim_matches('/');
        if prefix.is_empty() { "/".into() } else { format!("/{prefix}/") }
    }

    /// The bridge's routes, for a listener of their own (`bridge.listen_address`).
    pub fn bridge_router(&self) -> Option<Router> {
        self.bridge.as_ref().map(|bridge| bridge.router())
    }

    /// Stops background work (the bridge's workers) gracefully.
    pub async fn shutdown(&self) {
        if let Some(bridge) = &self.bridge {
            bridge.shutdown().await;
        }
    }
}

/// Builds the router with every route.
pub fn router(app: Arc<App>) -> Router {
    let routes = Router::new()
        .route("/", get(index))
        .route("/probe", any(probe_handler))
        .route("/metrics", get(metrics_handler))
        .route("/-/reload", any(reload_handler))
        .route("/-/healthy", any(|| async { "Healthy" }))
        .route("/-/ready", any(|| async { "Ready" }))
        .route("/config", get(config_handler))
        .route("/logs", get(logs_handler));
    let mut routes: Router = routes.with_state(app.clone()).merge(crate::web::router(app.clone()));
    if let Some(bridge) = &app.bridge {
        if app.config().bridge.as_ref().is_none_or(|bridge| bridge.listen_address.is_none()) {
            routes = routes.merge(bridge.router());
        }
    }
    let prefix = app.options.route_prefix.trim_end_matches('/').to_string();
    let routes = if prefix.is_empty() { routes } else { Router::new().nest(&prefix, routes) };
    routes.layer(middleware::from_fn_with_state(app, web_layer))
}

/// Basic auth and extra headers from `--web.config.file`, on every endpoint
/// except the public ones (`web::is_public`).
async fn web_layer(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let authorization = request.headers().get(header::AUTHORIZATION).and_then(|value| value.to_str().ok());
    let prefix = app.options.route_prefix.trim_end_matches('/');
    let path = request.uri().path();
    // Public routes need no login, but credentials that are sent must be
    // right, as everywhere else.
    let public = authorization.is_none() && path.strip_prefix(prefix).is_some_and(crate::web::is_public);
    if !public && !app.web.authorize(authorization) {
        return Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header(header::WWW_AUTHENTICATE, "Basic")
            .body(Body::from("Unauthorized\n"))
            .unwrap_or_default();
    }
    let mut response = next.run(request).await;
    for (name, value) in app.web.headers.iter() {
        if let (Ok(name), Ok(value)) = (header::HeaderName::try_from(name.as_str()), HeaderValue::from_str(value)) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body.into()).into_response()
}

/// The query parameters of `/probe`.
struct ProbeParams {
    target: Option<String>,
    module: String,
    debug: bool,
    hostname: Option<String>,
}

fn parse_probe_params(query: &str) -> ProbeParams {
    let mut params = ProbeParams { target: None, module: "http_2xx".into(), debug: false, hostname: None };
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            // blackbox unescapes the target a second time.
            "target" if params.target.is_none() => {
                let twice = percent_encoding::percent_decode_str(&value).decode_utf8().map(|v| v.into_owned());
                params.target = Some(twice.unwrap_or_else(|_| value.into_owned()));
            }
            "module" if !value.is_empty() => params.module = value.into_owned(),
            "debug" => params.debug = value == "true",
            "hostname" if !value.is_empty() => params.hostname = Some(value.into_owned()),
            _ => {}
        }
    }
    params
}

/// The host part of a target, for the policy check before probing.
fn target_host(kind: ProberKind, target: &str) -> Option<String> {
    match kind {
        ProberKind::Unix => None,
        ProberKind::Http | ProberKind::Grpc => {
            let without_scheme = target.split_once("://").map_or(target, |(_, rest)| rest);
            let authority = without_scheme.split(['/', '?', '#']).next().unwrap_or_default();
            let authority = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
            host_of(authority)
        }
        _ => host_of(target),
    }
}

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

async fn probe_handler(State(app): State<Arc<App>>, headers: HeaderMap, request: Request) -> Response {
    let params = parse_probe_params(request.uri().query().unwrap_or_default());
    let config = app.config();
    let Some(module) = config.module(&params.module) else {
        app.telemetry.module_unknown.inc();
        app.telemetry.reject("unknown_module");
        return text(StatusCode::BAD_REQUEST, format!("Unknown module {:?}\n", params.module));
    };
    let Some(target) = params.target.filter(|target| !target.is_empty()) else {
        app.telemetry.reject("missing_target");
        return text(StatusCode::BAD_REQUEST, "Target parameter is missing\n");
    };
    if let (Some(hostname), ProberKind::Http) = (&params.hostname, module.prober) {
        if let Some(host) = probe::http::host_header(&module.http) {
            if !host.eq_ignore_ascii_case(hostname) {
                app.telemetry.reject("bad_request");
                return text(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "Host header defined both in module configuration ({host}) and with URL-parameter 'hostname' ({hostname})\n"
                    ),
                );
            }
        }
    }
    let scrape_timeout = match headers.get("X-Prometheus-Scrape-Timeout-Seconds") {
        None => None,
        Some(value) => match value.to_str().ok().and_then(|text| text.trim().parse::<f64>().ok()) {
            Some(seconds) => Some(seconds),
            None => {
                app.telemetry.reject("bad_request");
                return text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("Failed to parse timeout from Prometheus header: {value:?}\n"),
                );
            }
        },
    };
    if let Some(host) = target_host(module.prober, &target) {
        if let Err(why) = config.policy.check_host(&host) {
            app.telemetry.reject("denied");
            return text(StatusCode::FORBIDDEN, format!("{why}\n"));
        }
    }
    let Ok(_permit) = app.probes.try_acquire() else {
        app.telemetry.reject("overloaded");
        return text(StatusCode::SERVICE_UNAVAILABLE, "Too many concurrent probes; try again later\n");
    };
    let timeout = probe::effective_timeout(module.timeout.get(), scrape_timeout, app.options.timeout_offset);
    let in_flight = InFlight::enter(&app.telemetry.in_flight);
    let outcome = probe::run(module, &target, params.hostname.as_deref(), timeout, &config.policy).await;
    drop(in_flight);
    let result = outcome.error.as_ref().map_or("success", |err| err.reason.as_str());
    app.telemetry.probes.get_or_create(&ProbeLabels { module: params.module.clone(), result: result.into() }).inc();
    let module_yaml = config.module_yaml(&params.module);
    let body = outcome.registry.encode();
    let debug = params.debug.then(|| debug_output(&outcome.log, &body, &module_yaml));
    let denied = outcome.error.as_ref().filter(|err| err.reason == Reason::Denied).map(|err| err.detail.clone());
    if let Ok(mut history) = app.history.lock() {
        history.add(&params.module, &target, outcome.success(), outcome.log, body.clone(), module_yaml);
    }
    if let Some(detail) = denied {
        app.telemetry.reject("denied");
        return text(StatusCode::FORBIDDEN, format!("{detail}\n"));
    }
    if let Some(debug) = debug {
        return text(StatusCode::OK, debug);
    }
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}

/// One running probe in `checkit_probes_in_flight`; leaving on drop keeps the
/// gauge right even when the handler's future is dropped or unwinds.
struct InFlight<'a>(&'a prometheus_client::metrics::gauge::Gauge);

impl<'a> InFlight<'a> {
    fn enter(gauge: &'a prometheus_client::metrics::gauge::Gauge) -> Self {
        gauge.inc();
        InFlight(gauge)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// blackbox's three-section debug output.
pub fn debug_output(log: &[String], metrics: &str, module_yaml: &str) -> String {
    let mut out = String::from("Logs for the probe:\n");
    for line in log {
        out.push_str(line);
        out.push('\n');
    }
    out.push_str("\n\n\nMetrics that would have been returned:\n");
    out.push_str(metrics);
    out.push_str("\n\n\nModule configuration:\n");
    out.push_str(module_yaml);
    out
}

/// OpenMetrics when the scraper asks for it (Prometheus does), else text 0.0.4.
async fn metrics_handler(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|value| value.to_str().ok()).unwrap_or_default();
    if accept.contains("application/openmetrics-text") {
        let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
        return (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], app.telemetry.encode()).into_response();
    }
    let content_type = "text/plain; version=0.0.4; charset=utf-8";
    (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], app.telemetry.encode_text()).into_response()
}

async fn reload_handler(State(app): State<Arc<App>>, method: Method) -> Response {
    if method != Method::POST {
        return text(StatusCode::METHOD_NOT_ALLOWED, "This endpoint requires a POST request.\n");
    }
    match app.reload().await {
        Ok(()) => text(StatusCode::OK, ""),
        Err(err) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("failed to reload config: {err}\n")),
    }
}

async fn config_handler(State(app): State<Arc<App>>) -> Response {
    text(StatusCode::OK, app.config().to_yaml())
}

async fn logs_handler(State(app): State<Arc<App>>, request: Request) -> Response {
    let mut id = None;
    let mut target = None;
    let mut module = None;
    for (key, value) in url::form_urlencoded::parse(request.uri().query().unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "id" => id = Some(value.into_owned()),
            "target" => target = Some(value.into_owned()),
            "module" => module = Some(value.into_owned()),
            _ => {}
        }
    }
    let Ok(history) = app.history.lock() else {
        return text(StatusCode::INTERNAL_SERVER_ERROR, "history unavailable\n");
    };
    let entry = match (id, target) {
        (Some(id), None) => match id.parse::<u64>() {
            Ok(id) => history.get(id),
            Err(_) => return text(StatusCode::BAD_REQUEST, format!("Invalid probe id: {id:?}\n")),
        },
        (None, Some(target)) => history.latest(&target, module.as_deref()),
        _ => return text(StatusCode::BAD_REQUEST, "Exactly one of the id or target parameters is required\n"),
    };
    match entry {
        Some(entry) => text(StatusCode::OK, entry.debug_output()),
        None => text(StatusCode::NOT_FOUND, "Probe not found\n"),
    }
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

async fn index(State(app): State<Arc<App>>) -> Html<String> {
    let mut rows = String::new();
    if let Ok(history) = app.history.lock() {
        for entry in history.list() {
            let status = if entry.success {
                "<span style=\"color:green\">Success</span>"
            } else {
                "<strong style=\"color:red\">Failure</strong>"
            };
            rows.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{status}</td><td><a href=\"logs?id={}\">Logs</a></td></tr>\n",
                html_escape(&entry.module),
                html_escape(&entry.target),
                entry.id
            ));
        }
    }
    let bridge = if app.bridge.is_some() { "<li><a href=\"api/v1/deliveries\">Bridge deliveries</a></li>" } else { "" };
    Html(format!(
        "<!DOCTYPE html><html><head><title>checkit</title></head><body>\n<h1>checkit</h1>\n\
         <p>A blackbox_exporter-compatible probe exporter and alert bridge.</p>\n<ul>\n\
         <li><a href=\"probe?target=prometheus.io&module=http_2xx\">Probe prometheus.io for http_2xx</a></li>\n\
         <li><a href=\"probe?target=prometheus.io&module=http_2xx&debug=true\">Debug probe prometheus.io for http_2xx</a></li>\n\
         <li><a href=\"ui/\">Web UI</a></li>\n<li><a href=\"metrics\">Metrics</a></li>\n<li><a href=\"config\">Configuration</a></li>\n{bridge}\n</ul>\n\
         <h2>Recent Probes</h2>\n<table border=\"1\" cellpadding=\"4\"><tr><th>Module</th><th>Target</th><th>Result</th><th>Debug</th></tr>\n{rows}</table>\n\
         </body></html>\n"
    ))
}

/// Serves `router` on `listener` (HTTPS when `tls` is set) until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let Some(tls) = tls else {
        return axum::serve(listener, router).with_graceful_shutdown(shutdown.cancelled_owned()).await;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(error = %err, "Accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => return Ok(()),
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move {
            let Ok(Ok(stream)) = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await else {
                return;
            };
            let service = hyper_util::service::TowerToHyperService::new(router);
            let builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            if let Err(err) = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service).await {
                tracing::debug!(error = %err, "HTTPS connection ended with an error");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_hosts() {
        assert_eq!(
            target_host(ProberKind::Http, "https://user:pw@example.com:8443/x?y").as_deref(),
            Some("example.com")
        );
        assert_eq!(target_host(ProberKind::Http, "example.com").as_deref(), Some("example.com"));
        assert_eq!(target_host(ProberKind::Tcp, "[::1]:22").as_deref(), Some("[::1]"));
        assert_eq!(target_host(ProberKind::Icmp, "::1").as_deref(), Some("::1"));
        assert_eq!(target_host(ProberKind::Tcp, "10.0.0.1:22").as_deref(), Some("10.0.0.1"));
        assert_eq!(target_host(ProberKind::Unix, "/run/x.sock"), None);
    }

    #[test]
    fn probe_params_default_and_double_unescape() {
        let params = parse_probe_params("target=http%253A%252F%252Fx&debug=true");
        assert_eq!(params.target.as_deref(), Some("http://x"));
        assert_eq!(params.module, "http_2xx");
        assert!(params.debug);
    }
}
