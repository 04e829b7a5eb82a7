//! The checks' HTTP API (documented in `docs/checks-api.yml`).
//!
//! - `GET /api/v1/checks`, `GET /api/v1/checks/{name}`: state, last result, uptime windows.
//! - `GET /api/v1/checks/{name}/results`, `…/incidents`: time range (`from`, `to`
//!   as RFC 3339 or Unix seconds), `limit`, newest first, `next` for the
//!   following page; `?format=csv` exports CSV instead of JSON.
//! - `GET /api/v1/checks/{name}/uptime?window=30d` (or `from`/`to`).
//! - `POST /api/v1/checks/{name}/pause|resume`, `POST /api/v1/checks/pause|resume` (all).
//! - `GET /api/v1/sd`, `GET /metrics/checks`: see `metrics`.
//!
//! Handlers parse, call the store or the slots, and map errors: 400 with the
//! reason for bad parameters, 404 for an unknown check, 503 when the store
//! fails. Credentials are the web config's, applied to every route.

use super::rollup::{Period, WINDOWS, parse_window};
use super::state::Incident;
use super::store::StoredResult;
use super::{Shared, Slot, View};
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use std::sync::Arc;

/// The routes, with their state.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/api/v1/checks", get(list))
        .route("/api/v1/checks/pause", post(pause_all))
        .route("/api/v1/checks/resume", post(resume_all))
        .route("/api/v1/checks/{name}", get(one))
        .route("/api/v1/checks/{name}/results", get(results))
        .route("/api/v1/checks/{name}/incidents", get(incidents))
        .route("/api/v1/checks/{name}/uptime", get(uptime))
        .route("/api/v1/checks/{name}/pause", post(pause_one))
        .route("/api/v1/checks/{name}/resume", post(resume_one))
        .route("/api/v1/sd", get(sd))
        .route("/metrics/checks", get(blackbox_metrics))
        .with_state(shared)
}

/// A refusal with its reason.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(json!({"status": "error", "error": self.1}))).into_response()
    }
}

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, message.into())
}

fn unavailable(err: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::SERVICE_UNAVAILABLE, format!("store unavailable: {err}"))
}

fn find(shared: &Shared, name: &str) -> Result<Arc<Slot>, ApiError> {
    shared.slot(name).ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no check named {name:?}")))
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A check as JSON.
fn view_json(view: &View, now: DateTime<Utc>) -> Value {
    let uptime: serde_json::Map<String, Value> =
        WINDOWS.iter().zip(view.uptime).map(|((window, _), ratio)| (window.to_string(), json!(ratio))).collect();
    let check = &view.check;
    json!({
        "name": check.name,
        "kind": check.kind,
        "status": view.status,
        "module": check.module,
        "target": check.target,
        "interval_seconds": check.interval.as_secs_f64(),
        "labels": check.labels,
        "state": view.state,
        "paused": view.paused,
        "since": view.since.map(rfc3339),
        "failures_before_down": check.failures_before_down,
        "successes_before_up": check.successes_before_up,
        "notify": check.notify,
        "last": view.last.as_ref().map(|last| json!({
            "at": rfc3339(last.at),
            "success": last.success,
            "duration_seconds": last.duration_seconds,
            "maintenance": last.maintenance,
            "phase": last.failure.as_ref().map(|(phase, _)| phase),
            "reason": last.failure.as_ref().map(|(_, reason)| reason),
        })),
        "uptime": uptime,
        "incident": view.incident.as_ref().map(|incident| incident_json(incident, now)),
        "locations": locations_json(view),
        "down_when": (!check.locations.is_empty()).then(|| json!({"failing": check.down_when, "of": check.locations.len()})),
    })
}

/// Each agent location's view of a check run by agents (`null` otherwise);
/// a silent agent's location is `unknown`.
fn locations_json(view: &View) -> Value {
    if view.check.locations.is_empty() {
        return Value::Null;
    }
    view.check
        .locations
        .iter()
        .map(|location| {
            let entry = view.locations.get(location);
            let state = entry.map_or(super::state::State::Unknown, |entry| entry.machine.health);
            (
                location.clone(),
                json!({
                    "state": state,
                    "last_at": entry.and_then(|entry| entry.last_at).map(rfc3339),
                    "last_success": entry.and_then(|entry| entry.last_success),
                    "last_duration_seconds": entry.and_then(|entry| entry.last_duration_seconds),
                }),
            )
        })
        .collect::<serde_json::Map<String, Value>>()
        .into()
}

/// An incident as JSON; an open one's duration runs until `now`.
fn incident_json(incident: &Incident, now: DateTime<Utc>) -> Value {
    json!({
        "id": incident.id,
        "started_at": rfc3339(incident.started_at),
        "ended_at": incident.ended_at.map(rfc3339),
        "duration_seconds": incident.duration(now).num_milliseconds() as f64 / 1000.0,
        "phase": incident.phase,
        "reason": incident.reason,
        "notified_at": incident.notified_at.map(rfc3339),
    })
}

/// Query parameters, parsed with every problem reported at once.
#[derive(Default)]
struct Query {
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    limit: Option<u32>,
    window: Option<Duration>,
    csv: bool,
}

fn parse_time(name: &str, text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    text.parse::<f64>()
        .ok()
        .filter(|seconds| seconds.is_finite() && (0.0..1e11).contains(seconds))
        .and_then(|seconds| DateTime::from_timestamp_millis((seconds * 1000.0) as i64))
        .ok_or_else(|| format!("{name}: {text:?} is neither RFC 3339 nor Unix seconds"))
}

fn parse_query(raw: Option<String>, max_limit: u32) -> Result<Query, ApiError> {
    let mut query = Query::default();
    let mut problems = Vec::new();
    for (key, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "from" => parse_time("from", &value).map(|at| query.from = Some(at)).unwrap_or_else(|e| problems.push(e)),
            "to" => parse_time("to", &value).map(|at| query.to = Some(at)).unwrap_or_else(|e| problems.push(e)),
            "limit" => match value.parse::<u32>() {
                Ok(limit) if (1..=max_limit).contains(&limit) => query.limit = Some(limit),
                _ => problems.push(format!("limit: must be a whole number from 1 to {max_limit}")),
            },
            "window" => match parse_window(&value) {
                Ok(window) => query.window = Some(window),
                Err(message) => problems.push(format!("window: {message}")),
            },
            "format" => match value.as_ref() {
                "csv" => query.csv = true,
                "json" => query.csv = false,
                other => problems.push(format!("format: {other:?} is not csv or json")),
            },
            other => problems.push(format!("unknown parameter {other:?}")),
        }
    }
    if let (Some(from), Some(to)) = (query.from, query.to) {
        if from >= to {
            problems.push("from must be before to".into());
        }
    }
    if problems.is_empty() { Ok(query) } else { Err(bad_request(problems.join("; "))) }
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text.to_string() }
}

fn csv_response(name: &str, kind: &str, header_row: &str, rows: Vec<Vec<String>>) -> Response {
    let mut body = String::from(header_row);
    body.push('\n');
    for row in rows {
        body.push_str(&row.iter().map(|field| csv_field(field)).collect::<Vec<_>>().join(","));
        body.push('\n');
    }
    let file =
        format!("attachment; filename=\"{}-{kind}.csv\"", name.replace(|c: char| !c.is_ascii_alphanumeric(), "_"));
    ([(header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()), (header::CONTENT_DISPOSITION, file)], body)
        .into_response()
}

async fn list(State(shared): State<Arc<Shared>>) -> Response {
    let checks: Vec<Value> = shared.slots().iter().map(|slot| view_json(&slot.view(), shared.clock.now())).collect();
    axum::Json(json!({"status": "success", "checks": checks})).into_response()
}

async fn one(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> Result<Response, ApiError> {
    let slot = find(&shared, &name)?;
    let now = shared.clock.now();
    let view = slot.view();
    let mut check = view_json(&view, now);
    // Each location's last 24 hours, from its stored results.
    if !view.check.locations.is_empty() {
        let summaries = shared
            .store
            .location_summaries(slot.id, now - chrono::Duration::hours(24), now)
            .await
            .map_err(unavailable)?;
        if let Some(locations) = check.get_mut("locations").and_then(Value::as_object_mut) {
            for summary in summaries {
                if let Some(entry) = locations.get_mut(&summary.location).and_then(Value::as_object_mut) {
                    entry.insert("last_24h".into(), json!(summary));
                }
            }
        }
    }
    Ok(axum::Json(json!({"status": "success", "check": check})).into_response())
}

/// The query of a listing (results, incidents: `from`, `to`, `limit`,
/// `format`, no `window`) and the check it lists.
fn listing(shared: &Shared, name: &str, raw: Option<String>, what: &str) -> Result<(Query, Arc<Slot>), ApiError> {
    let query = parse_query(raw, 10_000)?;
    if query.window.is_some() {
        return Err(bad_request(format!("window: use from and to for {what}")));
    }
    Ok((query, find(shared, name)?))
}

/// Where the next page ends (`next_to`): the last row's time when the page is full.
fn next_to<T>(rows: &[T], limit: u32, at: impl Fn(&T) -> DateTime<Utc>) -> Option<String> {
    rows.last().filter(|_| rows.len() == limit as usize).map(|last| rfc3339(at(last)))
}

async fn results(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let (query, slot) = listing(&shared, &name, raw, "results")?;
    let to = query.to.unwrap_or_else(|| shared.clock.now() + Duration::milliseconds(1));
    let from = query.from.unwrap_or(to - Duration::hours(24));
    let limit = query.limit.unwrap_or(1000);
    let rows = shared.store.results(slot.id, from, to, limit).await.map_err(unavailable)?;
    if query.csv {
        let rows = rows.iter().map(result_row).collect();
        return Ok(csv_response(
            &name,
            "results",
            "at,duration_seconds,success,maintenance,phase,reason,location",
            rows,
        ));
    }
    let next = next_to(&rows, limit, |last| last.at);
    Ok(axum::Json(json!({
        "status": "success", "check": name, "from": rfc3339(from), "to": rfc3339(to), "results": rows, "next_to": next,
    }))
    .into_response())
}

fn result_row(result: &StoredResult) -> Vec<String> {
    vec![
        rfc3339(result.at),
        result.duration_seconds.map(|seconds| seconds.to_string()).unwrap_or_default(),
        result.success.to_string(),
        result.maintenance.to_string(),
        result.phase.clone().unwrap_or_default(),
        result.reason.clone().unwrap_or_default(),
        result.location.clone().unwrap_or_default(),
    ]
}

async fn incidents(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let (query, slot) = listing(&shared, &name, raw, "incidents")?;
    let now = shared.clock.now();
    let to = query.to.unwrap_or(now + Duration::milliseconds(1));
    let from = query.from.unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
    let limit = query.limit.unwrap_or(1000);
    let rows = shared.store.incidents(slot.id, from, to, limit).await.map_err(unavailable)?;
    if query.csv {
        let rows = rows
            .iter()
            .map(|incident| {
                vec![
                    incident.id.map(|id| id.to_string()).unwrap_or_default(),
                    rfc3339(incident.started_at),
                    incident.ended_at.map(rfc3339).unwrap_or_default(),
                    (incident.duration(now).num_milliseconds() as f64 / 1000.0).to_string(),
                    incident.phase.clone(),
                    incident.reason.clone(),
                ]
            })
            .collect();
        return Ok(csv_response(&name, "incidents", "id,started_at,ended_at,duration_seconds,phase,reason", rows));
    }
    let incidents: Vec<Value> = rows.iter().map(|incident| incident_json(incident, now)).collect();
    let next = next_to(&rows, limit, |last| last.started_at);
    Ok(axum::Json(json!({"status": "success", "check": name, "incidents": incidents, "next_to": next})).into_response())
}

async fn uptime(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let query = parse_query(raw, 1)?;
    if query.csv || query.limit.is_some() {
        return Err(bad_request("uptime takes window, or from and to"));
    }
    let slot = find(&shared, &name)?;
    let (from, to) = match (query.window, query.from, query.to) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err(bad_request("give window, or from and to, not both"));
        }
        (Some(window), None, None) => {
            let now = shared.clock.now();
            (now - window, now)
        }
        (None, from, to) => {
            let to = to.unwrap_or_else(|| shared.clock.now());
            (from.unwrap_or(to - Duration::hours(24)), to)
        }
    };
    let period = Period::for_window(to - from);
    let rollup = shared.store.rollup(slot.id, period, from, to).await.map_err(unavailable)?;
    Ok(axum::Json(json!({
        "status": "success",
        "check": name,
        "from": rfc3339(period.floor(from)),
        "to": rfc3339(to),
        "resolution": if period == Period::Hour { "hour" } else { "day" },
        "uptime": rollup.uptime(),
        "runs": rollup.runs,
        "successes": rollup.successes,
        "maintenance_runs": rollup.maintenance_runs,
        "duration_seconds": {
            "mean": rollup.mean_seconds(),
            "min": rollup.min_max_seconds().map(|(min, _)| min),
            "max": rollup.min_max_seconds().map(|(_, max)| max),
            "p95_estimate": rollup.p95_seconds(),
        },
    }))
    .into_response())
}

async fn set_paused(shared: &Shared, slots: Vec<Arc<Slot>>, paused: bool) -> Result<Response, ApiError> {
    shared.set_paused(&slots, paused).await.map_err(unavailable)?;
    let names: Vec<String> = slots.iter().map(|slot| slot.check().name.clone()).collect();
    tracing::info!(checks = names.len(), paused, "Checks paused or resumed by API.");
    Ok(axum::Json(json!({"status": "success", "paused": paused, "checks": names})).into_response())
}

async fn pause_one(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> Result<Response, ApiError> {
    let slot = find(&shared, &name)?;
    set_paused(&shared, vec![slot], true).await
}

async fn resume_one(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> Result<Response, ApiError> {
    let slot = find(&shared, &name)?;
    set_paused(&shared, vec![slot], false).await
}

async fn pause_all(State(shared): State<Arc<Shared>>) -> Result<Response, ApiError> {
    set_paused(&shared, shared.slots(), true).await
}

async fn resume_all(State(shared): State<Arc<Shared>>) -> Result<Response, ApiError> {
    set_paused(&shared, shared.slots(), false).await
}

async fn sd(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(super::metrics::service_discovery(&shared.slots())).into_response()
}

async fn blackbox_metrics(State(shared): State<Arc<Shared>>) -> Response {
    let body = super::metrics::encode_blackbox(&shared.slots());
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_parameters_are_all_reported() {
        let Err(ApiError(status, message)) =
            parse_query(Some("from=yesterday&limit=0&format=xml&x=1&window=3q".into()), 100)
        else {
            panic!("accepted")
        };
        assert_eq!(status, StatusCode::BAD_REQUEST);
        for part in ["from:", "limit:", "format:", "unknown parameter \"x\"", "window:"] {
            assert!(message.contains(part), "{part} missing in {message}");
        }
        let query = parse_query(Some("from=1767225600&to=2026-01-02T00:00:00Z&format=csv".into()), 100).ok().unwrap();
        assert_eq!(query.from.map(|at| at.timestamp()), Some(1_767_225_600));
        assert!(query.csv);
        assert!(parse_query(Some("from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z".into()), 100).is_err());
    }
}
