//! `GET /api/v1/deliveries`: every delivery attempt and decision, newest first.
//!
//! Query parameters (all optional):
//!
//! | parameter | meaning |
//! |---|---|
//! | `contact`, `channel` | exact match |
//! | `status` | `sent`, `failed` (will retry), `dead`, `held`, `rate_limited`, `skipped` |
//! | `alertname` | entries with an alert of this name |
//! | `q` | case-insensitive text in contact, channel, alert names, provider response or error |
//! | `outbox_id` | every attempt of one message |
//! | `since`, `until` | RFC 3339 times; `since` inclusive, `until` exclusive |
//! | `sort` | `time`, `contact`, `channel` or `outcome`, ascending; a leading `-` descends (default `-time`, newest first) |
//! | `limit` | page size, 1–1000, default 100 |
//! | `offset` | entries to skip, 0–9223372036854775807, default 0 |
//!
//! The answer is `{"total": n, "limit": …, "offset": …, "items": [...]}`;
//! a bad parameter gives 400 with the reason.

use super::Shared;
use super::intake::refuse_unauthorized;
use super::store::{HistoryQuery, Outcome};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Arc;

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

/// Parses the query string into a [`HistoryQuery`].
pub fn parse_query(params: &HashMap<String, String>) -> Result<HistoryQuery, String> {
    let mut query = HistoryQuery { limit: DEFAULT_LIMIT, ..HistoryQuery::default() };
    for (name, value) in params {
        match name.as_str() {
            "contact" => query.contact = Some(value.clone()),
            "channel" => query.channel = Some(value.clone()),
            "alertname" => query.alertname = Some(value.clone()),
            "status" => query.outcome = Some(parse_outcome(name, value)?),
            "q" => query.search = Some(value.clone()).filter(|search| !search.is_empty()),
            "outbox_id" => {
                query.outbox_id =
                    Some(value.parse().map_err(|_| format!("invalid outbox_id {value:?}: expected a number"))?)
            }
            "since" => query.since = Some(parse_time(name, value)?),
            "until" => query.until = Some(parse_time(name, value)?),
            "sort" => {
                let (column, ascending) = parse_sort(value);
                query.order = column.parse().map_err(|_| {
                    format!("invalid sort {value:?}: expected time, contact, channel or outcome, optionally with a leading -")
                })?;
                query.ascending = ascending;
            }
            "limit" => query.limit = parse_limit(value, MAX_LIMIT)?,
            "offset" => query.offset = parse_offset(value)?,
            other => return Err(format!("unknown parameter {other:?}")),
        }
    }
    Ok(query)
}

/// A `sort` value: its key, and whether it ascends (no leading `-`).
/// Shared by every search API of the bridge.
pub(super) fn parse_sort(value: &str) -> (&str, bool) {
    match value.strip_prefix('-') {
        Some(key) => (key, false),
        None => (value, true),
    }
}

/// A page size from 1 to `max`. Shared by every search API of the bridge.
pub(super) fn parse_limit(value: &str, max: u32) -> Result<u32, String> {
    value
        .parse()
        .ok()
        .filter(|limit| (1..=max).contains(limit))
        .ok_or_else(|| format!("invalid limit {value:?}: expected 1 to {max}"))
}

/// Rows to skip. SQL integers are signed 64-bit: a larger offset is a bad
/// request, not a storage error.
pub(super) fn parse_offset(value: &str) -> Result<u64, String> {
    value
        .parse()
        .ok()
        .filter(|offset| *offset <= i64::MAX as u64)
        .ok_or_else(|| format!("invalid offset {value:?}: expected 0 to {}", i64::MAX))
}

/// A delivery outcome named by parameter `name`.
pub(super) fn parse_outcome(name: &str, value: &str) -> Result<Outcome, String> {
    value
        .parse()
        .map_err(|_| format!("invalid {name} {value:?}: expected sent, failed, dead, held, rate_limited or skipped"))
}

/// An RFC 3339 time named by parameter `name`.
pub(super) fn parse_time(name: &str, value: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(value)
        .map(|time| time.with_timezone(&Utc))
        .map_err(|_| format!("invalid {name} {value:?}: expected an RFC 3339 time"))
}

/// The deliveries API surface.
pub(super) fn router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new().route("/api/v1/deliveries", axum::routing::get(deliveries)).with_state(shared)
}

/// The history handler.
async fn deliveries(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let runtime = shared.runtime();
    if let Some(response) = refuse_unauthorized(&runtime.credentials, &headers) {
        return response;
    }
    let query = match parse_query(&params) {
        Ok(query) => query,
        Err(reason) => return (StatusCode::BAD_REQUEST, format!("{reason}\n")).into_response(),
    };
    let (limit, offset) = (query.limit, query.offset);
    match shared.store.history(query).await {
        Ok(page) => page_json(page.total, limit, offset, &page.items),
        Err(err) => {
            tracing::error!(error = %err, "Cannot read delivery history.");
            (StatusCode::SERVICE_UNAVAILABLE, format!("storage unavailable: {err}\n")).into_response()
        }
    }
}

/// One page of a searchable list, as the deliveries and messages APIs answer it.
pub(crate) fn page_json<T: serde::Serialize>(total: u64, limit: u32, offset: u64, items: &[T]) -> Response {
    axum::Json(serde_json::json!({ "total": total, "limit": limit, "offset": offset, "items": items })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bridge::store::HistoryOrder;
    use crate::bridge::string_map as params;

    #[test]
    fn queries_parse_with_defaults() {
        let query = parse_query(&params(&[])).unwrap();
        assert_eq!(query.limit, DEFAULT_LIMIT);
        assert!(!query.ascending);
        let query = parse_query(&params(&[
            ("contact", "alice"),
            ("status", "rate_limited"),
            ("since", "2026-01-01T00:00:00+01:00"),
            ("sort", "time"),
            ("q", "Disk"),
            ("outbox_id", "7"),
            ("limit", "5"),
            ("offset", "10"),
        ]))
        .unwrap();
        assert_eq!(query.contact.as_deref(), Some("alice"));
        assert_eq!(query.outcome, Some(Outcome::RateLimited));
        assert_eq!(query.since.unwrap().to_rfc3339(), "2025-12-31T23:00:00+00:00");
        assert!(query.ascending);
        assert_eq!(query.search.as_deref(), Some("Disk"));
        assert_eq!(query.outbox_id, Some(7));
        assert_eq!((query.limit, query.offset), (5, 10));
        let query = parse_query(&params(&[("sort", "-contact")])).unwrap();
        assert_eq!((query.order, query.ascending), (HistoryOrder::Contact, false));
    }

    #[test]
    fn bad_queries_say_why() {
        for (pairs, reason) in [
            (vec![("status", "lost")], "invalid status"),
            (vec![("limit", "0")], "invalid limit"),
            (vec![("limit", "5000")], "invalid limit"),
            (vec![("since", "yesterday")], "invalid since"),
            (vec![("sort", "name")], "invalid sort"),
            (vec![("outbox_id", "x")], "invalid outbox_id"),
            (vec![("page", "2")], "unknown parameter"),
        ] {
            let err = parse_query(&params(&pairs)).unwrap_err();
            assert!(err.contains(reason), "{err}");
        }
    }
}
