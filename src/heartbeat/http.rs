//! Heartbeat HTTP endpoints.
//!
//! Open (no operator login): `GET|HEAD|POST /ping/<uuid>[/start|/fail|/log|/<0-255>]`,
//! the same under `/ping/<ping-key>/<name>`, and
//! `POST /api/v1/checks/<name>/results` with the check's own bearer token.
//! Behind the login: `GET /api/v1/heartbeats`, `GET /api/v1/heartbeats/<name>`,
//! `POST /api/v1/heartbeats/<name>/pause|resume`.
//!
//! Answers: 200 once the ping is stored; 404 with a reason for an unknown
//! check; 400 for a malformed request; 401 for a missing or wrong results
//! token; 429 with `Retry-After` over the per-check rate; 503 when the store
//! fails. A refused ping changes nothing.

use super::ping::{self, Address, BODY_LIMIT};
use super::state::Kind;
use super::store::Ping;
use super::{PingError, Shared};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde::Deserialize;
use std::sync::Arc;
// Secrets are compared in constant time, so a guess learns nothing from timing.
use subtle::ConstantTimeEq;

/// The routes that never need the operator login.
pub(crate) fn open_router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/ping/{*rest}", any(ping_handler))
        .route("/api/v1/checks/{name}/results", post(results_handler))
        .with_state(shared)
}

/// The read and pause routes.
pub(crate) fn api_router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/api/v1/heartbeats", get(list_handler))
        .route("/api/v1/heartbeats/{name}", get(detail_handler))
        .route("/api/v1/heartbeats/{name}/pause", post(pause_handler))
        .route("/api/v1/heartbeats/{name}/resume", post(resume_handler))
        .with_state(shared)
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    let mut response = (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body.into()).into_response();
    response.headers_mut().insert("Ping-Body-Limit", HeaderValue::from(BODY_LIMIT));
    response
}

fn header_text(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<String> {
    headers.get(name).and_then(|value| value.to_str().ok()).map(|value| value.chars().take(200).collect())
}

fn refused(shared: &Shared, err: PingError) -> Response {
    match err {
        PingError::RateLimited { retry_after, .. } => {
            shared.refuse("rate_limited");
            let mut response = text(StatusCode::TOO_MANY_REQUESTS, format!("{err}\n"));
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_seconds(retry_after)));
            response
        }
        PingError::Unknown(_) => {
            shared.refuse("unknown_check");
            text(StatusCode::NOT_FOUND, format!("{err}\n"))
        }
        PingError::Store(_) => {
            shared.refuse("unavailable");
            tracing::error!(error = %err, "Cannot store a heartbeat ping; answering 503.");
            text(StatusCode::SERVICE_UNAVAILABLE, format!("{err}\n"))
        }
    }
}

/// Whole seconds until a ping is taken again, rounded up.
pub(crate) fn retry_seconds(wait: std::time::Duration) -> u64 {
    (wait.as_secs_f64().ceil() as u64).max(1)
}

/// The `rid` query parameter, if any (at most 64 characters).
fn run_id(query: Option<&str>) -> Result<Option<String>, String> {
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if key == "rid" {
            if value.is_empty() || value.len() > 64 || value.chars().any(char::is_control) {
                return Err("rid must be 1-64 printable characters".into());
            }
            return Ok(Some(value.into_owned()));
        }
    }
    Ok(None)
}

async fn ping_handler(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let method = request.method().clone();
    if ![Method::GET, Method::HEAD, Method::POST].contains(&method) {
        shared.refuse("bad_request");
        return text(StatusCode::METHOD_NOT_ALLOWED, "pings accept GET, HEAD and POST\n");
    }
    let path = request.uri().path().to_string();
    let rest = path.rsplit_once("/ping/").map(|(_, rest)| rest).unwrap_or_default();
    let (address, signal) = match ping::parse_path(rest) {
        Ok(parsed) => parsed,
        Err(err @ ping::PathError::ExitStatus(_)) => {
            shared.refuse("bad_request");
            return text(StatusCode::BAD_REQUEST, format!("{err}\n"));
        }
        Err(err) => {
            shared.refuse("unknown_check");
            return text(StatusCode::NOT_FOUND, format!("{err}\n"));
        }
    };
    let rid = match run_id(request.uri().query()) {
        Ok(rid) => rid,
        Err(message) => {
            shared.refuse("bad_request");
            return text(StatusCode::BAD_REQUEST, format!("{message}\n"));
        }
    };
    let runtime = shared.runtime();
    let (name, source) = match &address {
        Address::Uuid(id) => match runtime.by_uuid.get(id) {
            Some(name) => (name.clone(), "uuid"),
            None => {
                shared.refuse("unknown_check");
                return text(StatusCode::NOT_FOUND, format!("no heartbeat check has the UUID {id}\n"));
            }
        },
        Address::Slug { key, name } => {
            let key_matches = runtime
                .ping_key
                .as_ref()
                .is_some_and(|expected| bool::from(key.as_bytes().ct_eq(expected.expose().as_bytes())));
            if !key_matches || !runtime.checks.contains_key(name) {
                shared.refuse("unknown_check");
                return text(StatusCode::NOT_FOUND, "no heartbeat check has this ping key and name\n");
            }
            (name.clone(), "slug")
        }
    };
    drop(runtime);
    let headers = request.headers().clone();
    let (body, body_truncated) = ping::read_body(request.into_body()).await;
    let incoming = Ping {
        at: chrono::DateTime::UNIX_EPOCH,
        kind: signal.kind,
        exit_status: signal.exit_status,
        rid,
        duration_seconds: None,
        source,
        method: method.to_string(),
        remote_addr: header_text(&headers, "x-forwarded-for")
            .and_then(|value| value.split(',').next().map(|first| first.trim().to_string())),
        user_agent: header_text(&headers, header::USER_AGENT),
        body,
        body_truncated,
    };
    match shared.ping(&name, incoming).await {
        Ok(()) => text(StatusCode::OK, "OK\n"),
        Err(err) => refused(&shared, err),
    }
}

/// The body of `POST /api/v1/checks/<name>/results`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PushedResult {
    success: bool,
    /// Seconds.
    #[serde(default)]
    duration: Option<f64>,
    #[serde(default)]
    message: Option<String>,
}

/// Largest results body read.
const RESULTS_BODY_LIMIT: usize = 64 * 1024;

async fn results_handler(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let runtime = shared.runtime();
    let Some(entry) = runtime.checks.get(&name) else {
        shared.refuse("unknown_check");
        return text(StatusCode::NOT_FOUND, format!("no heartbeat check is called {name:?}\n"));
    };
    let Some(token) = &entry.token else {
        shared.refuse("unauthorized");
        return text(StatusCode::FORBIDDEN, format!("check {name:?} takes no results: it has no token_file\n"));
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    if !presented.is_some_and(|presented| bool::from(presented.as_bytes().ct_eq(token.expose().as_bytes()))) {
        shared.refuse("unauthorized");
        let mut response = text(StatusCode::UNAUTHORIZED, "missing or invalid bearer token for this check\n");
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"checkit\""));
        return response;
    }
    drop(runtime);
    let bytes = match http_body_util::BodyExt::collect(http_body_util::Limited::new(body, RESULTS_BODY_LIMIT)).await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            shared.refuse("bad_request");
            return text(StatusCode::PAYLOAD_TOO_LARGE, format!("body larger than {RESULTS_BODY_LIMIT} bytes\n"));
        }
    };
    let result: PushedResult = match serde_json::from_slice(&bytes) {
        Ok(result) => result,
        Err(err) => {
            shared.refuse("bad_request");
            return text(
                StatusCode::BAD_REQUEST,
                format!(
                    "invalid result: {err}; expected {{\"success\": bool, \"duration\": seconds, \"message\": text}}\n"
                ),
            );
        }
    };
    if let Some(duration) = result.duration {
        if !duration.is_finite() || !(0.0..=31_536_000.0).contains(&duration) {
            shared.refuse("bad_request");
            return text(StatusCode::BAD_REQUEST, "duration must be between 0 and 31536000 seconds\n");
        }
    }
    let message = result.message.unwrap_or_default();
    let body_truncated = message.len() > BODY_LIMIT;
    let mut body = message;
    if body_truncated {
        let mut cut = BODY_LIMIT;
        while !body.is_char_boundary(cut) {
            cut -= 1;
        }
        body.truncate(cut);
    }
    let incoming = Ping {
        at: chrono::DateTime::UNIX_EPOCH,
        kind: if result.success { Kind::Success } else { Kind::Fail },
        exit_status: None,
        rid: None,
        duration_seconds: result.duration,
        source: "results",
        method: "POST".into(),
        remote_addr: header_text(&headers, "x-forwarded-for"),
        user_agent: header_text(&headers, header::USER_AGENT),
        body,
        body_truncated,
    };
    match shared.ping(&name, incoming).await {
        Ok(()) => (StatusCode::OK, axum::Json(serde_json::json!({"status": "accepted"}))).into_response(),
        Err(err) => refused(&shared, err),
    }
}

fn seconds(duration: chrono::Duration) -> f64 {
    duration.num_milliseconds() as f64 / 1000.0
}

/// One check as the API shows it.
fn describe(shared: &Shared, name: &str, entry: &super::Entry, record: &super::state::Record) -> serde_json::Value {
    let now = shared.clock.now();
    let spec = &entry.spec;
    let due = record.due(spec);
    let schedule = match (&entry.check.period, &entry.check.schedule) {
        (Some(period), _) => serde_json::json!({"period_seconds": period.get().as_secs_f64()}),
        (_, Some(cron)) => serde_json::json!({"cron": cron, "timezone": entry.check.timezone}),
        _ => serde_json::Value::Null,
    };
    let alerts: Vec<serde_json::Value> = super::state::AlertKind::ALL
        .into_iter()
        .filter_map(|kind| {
            record.alerts.get(kind).map(|since| serde_json::json!({"alertname": kind.alertname(), "since": since}))
        })
        .collect();
    serde_json::json!({
        "name": name,
        "kind": "heartbeat",
        "uuid": entry.check.uuid,
        "status": record.status(spec, now).as_str(),
        "schedule": schedule,
        "grace_seconds": seconds(spec.grace),
        "start_grace_seconds": seconds(spec.start_grace),
        "min_interval_seconds": spec.min_interval.map(seconds),
        "paused": spec.paused || record.paused_at.is_some(),
        "last_ping": record.last_ping,
        "last_ping_kind": record.last_kind.map(Kind::as_str),
        "last_success": record.last_success,
        "next_due": due,
        "down_at": due.and_then(|due| due.checked_add_signed(spec.grace)),
        "open_runs": record.open_runs,
        "alerts": alerts,
        "labels": entry.check.labels,
    })
}

async fn list_handler(State(shared): State<Arc<Shared>>) -> Response {
    let runtime = shared.runtime();
    let records = shared.records().await;
    let checks: Vec<serde_json::Value> = runtime
        .checks
        .iter()
        .map(|(name, entry)| describe(&shared, name, entry, &records.get(name).cloned().unwrap_or_default()))
        .collect();
    axum::Json(serde_json::json!({"checks": checks})).into_response()
}

async fn detail_handler(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    let runtime = shared.runtime();
    let Some(entry) = runtime.checks.get(&name) else {
        return text(StatusCode::NOT_FOUND, format!("no heartbeat check is called {name:?}\n"));
    };
    let record = shared.records().await.get(&name).cloned().unwrap_or_default();
    let mut described = describe(&shared, &name, entry, &record);
    match shared.store.pings(&name, runtime.config.keep_pings).await {
        Ok(pings) => described["pings"] = serde_json::json!(pings),
        Err(err) => return text(StatusCode::SERVICE_UNAVAILABLE, format!("storage unavailable: {err}\n")),
    }
    axum::Json(described).into_response()
}

async fn pause(shared: Arc<Shared>, name: String, paused: bool) -> Response {
    match shared.set_paused(&name, paused).await {
        Ok(()) => axum::Json(serde_json::json!({"status": if paused { "paused" } else { "resumed" }})).into_response(),
        Err(err) => refused(&shared, err),
    }
}

async fn pause_handler(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    pause(shared, name, true).await
}

async fn resume_handler(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    pause(shared, name, false).await
}
