//! The exporter surface: `/probe`, `/metrics`, `/-/reload`, `/-/healthy`,
//! `/-/ready`, `/config`, `/logs` and `/`.

use crate::config::live::Live;
use crate::http::history::History;
use crate::http::text;
use crate::probe::{self, ProberKind, Reason};
use crate::settings::Config;
use crate::telemetry::{ProbeLabels, Telemetry};
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{any, get};
use futures::future::BoxFuture;
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

/// Re-reads the config on `POST /-/reload`; the composition root supplies it.
pub type Reload = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// The exporter's service: what its handlers read and call.
pub struct Exporter {
    config: Arc<Live<Config>>,
    telemetry: Telemetry,
    probe_env: Arc<probe::Env>,
    history: Mutex<History>,
    probes: Semaphore,
    timeout_offset: f64,
    reload: Reload,
    deliveries_link: bool,
}

impl Exporter {
    /// An exporter reading `config`, recording into `telemetry`, probing
    /// with `probe_env`, keeping
    /// `history_limit` results for `/logs`; `deliveries_link` adds the
    /// deliveries API to the index page.
    pub fn new(
        config: Arc<Live<Config>>,
        telemetry: Telemetry,
        probe_env: Arc<probe::Env>,
        timeout_offset: f64,
        history_limit: usize,
        reload: Reload,
        deliveries_link: bool,
    ) -> Exporter {
        let max_concurrent_probes = config.get().exporter.max_concurrent_probes;
        Exporter {
            config,
            telemetry,
            probe_env,
            history: Mutex::new(History::new(history_limit)),
            probes: Semaphore::new(max_concurrent_probes),
            timeout_offset,
            reload,
            deliveries_link,
        }
    }

    /// The exporter's routes.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/", get(index))
            .route("/probe", any(probe_handler))
            .route("/metrics", get(metrics_handler))
            .route("/-/reload", any(reload_handler))
            .route("/-/healthy", any(|| async { "Healthy" }))
            .route("/-/ready", any(|| async { "Ready" }))
            .route("/config", get(config_handler))
            .route("/logs", get(logs_handler))
            .with_state(self)
    }
}

/// The query parameters of `/probe`.
struct ProbeParams {
    target: Option<String>,
    module: String,
    debug: bool,
    hostname: Option<String>,
}

/// Each parameter's first value counts, as with Go's `url.Values.Get`
/// (`module=http_2xx&module=nope` probes with `http_2xx`, like blackbox).
fn parse_probe_params(query: &str) -> ProbeParams {
    let mut params = ProbeParams { target: None, module: "http_2xx".into(), debug: false, hostname: None };
    let mut seen: Vec<std::borrow::Cow<'_, str>> = Vec::new();
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if seen.contains(&key) {
            continue;
        }
        match key.as_ref() {
            // blackbox unescapes the target a second time.
            "target" => {
                let twice = percent_encoding::percent_decode_str(&value).decode_utf8().map(|v| v.into_owned());
                params.target = Some(twice.unwrap_or_else(|_| value.into_owned()));
            }
            "module" if !value.is_empty() => params.module = value.into_owned(),
            "debug" => params.debug = value == "true",
            "hostname" if !value.is_empty() => params.hostname = Some(value.into_owned()),
            _ => {}
        }
        seen.push(key);
    }
    params
}

async fn probe_handler(State(app): State<Arc<Exporter>>, request: Request) -> Response {
    let headers = request.headers();
    let params = parse_probe_params(request.uri().query().unwrap_or_default());
    let config = app.config.get();
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
    // An empty value counts as absent, as Go's `Header.Get` makes it for blackbox.
    let scrape_timeout = match headers.get("X-Prometheus-Scrape-Timeout-Seconds").filter(|value| !value.is_empty()) {
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
    if let Some(host) = module.prober.target_host(&target) {
        if let Err(why) = config.policy.check_host(&host) {
            app.telemetry.reject("denied");
            return text(StatusCode::FORBIDDEN, format!("{why}\n"));
        }
    }
    let Ok(_permit) = app.probes.try_acquire() else {
        app.telemetry.reject("overloaded");
        return text(StatusCode::SERVICE_UNAVAILABLE, "Too many concurrent probes; try again later\n");
    };
    let timeout = probe::effective_timeout(module.timeout.get(), scrape_timeout, app.timeout_offset);
    let in_flight = InFlight::enter(&app.telemetry.in_flight);
    let outcome =
        probe::run(module, &target, params.hostname.as_deref(), timeout, &config.policy, &app.probe_env).await;
    drop(in_flight);
    let result = outcome.error.as_ref().map_or("success", |err| err.reason.as_str());
    app.telemetry.probes.get_or_create(&ProbeLabels { module: params.module.clone(), result: result.into() }).inc();
    let body = outcome.registry.encode();
    let debug =
        params.debug.then(|| probe::debug::debug_output(&outcome.log, &body, &config.module_yaml(&params.module)));
    // Shared with the history entry rather than copied.
    let body = bytes::Bytes::from(body);
    let denied = outcome.error.as_ref().filter(|err| err.reason == Reason::Denied).map(|err| err.detail.clone());
    if let Ok(mut history) = app.history.lock() {
        history.add(&params.module, &target, outcome.success(), outcome.log, body.clone(), Arc::clone(&config));
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

/// OpenMetrics when the scraper asks for it (Prometheus does), else text 0.0.4.
async fn metrics_handler(State(app): State<Arc<Exporter>>, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|value| value.to_str().ok()).unwrap_or_default();
    if accept.contains("application/openmetrics-text") {
        let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
        return (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], app.telemetry.encode()).into_response();
    }
    let content_type = "text/plain; version=0.0.4; charset=utf-8";
    (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], app.telemetry.encode_text()).into_response()
}

async fn reload_handler(State(app): State<Arc<Exporter>>, method: Method) -> Response {
    if method != Method::POST {
        return text(StatusCode::METHOD_NOT_ALLOWED, "This endpoint requires a POST request.\n");
    }
    match (app.reload)().await {
        Ok(()) => text(StatusCode::OK, ""),
        Err(err) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("failed to reload config: {err}\n")),
    }
}

async fn config_handler(State(app): State<Arc<Exporter>>) -> Response {
    text(StatusCode::OK, app.config.get().to_yaml())
}

async fn logs_handler(State(app): State<Arc<Exporter>>, request: Request) -> Response {
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

async fn index(State(app): State<Arc<Exporter>>) -> Html<String> {
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
    let bridge = if app.deliveries_link {
        "<li><a href=\"api/v1/deliveries\">Bridge deliveries</a> (with the webhook's credentials, if set)</li>"
    } else {
        ""
    };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_params_default_and_double_unescape() {
        let params = parse_probe_params("target=http%253A%252F%252Fx&debug=true");
        assert_eq!(params.target.as_deref(), Some("http://x"));
        assert_eq!(params.module, "http_2xx");
        assert!(params.debug);
    }
}
