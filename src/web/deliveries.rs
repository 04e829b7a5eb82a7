//! `/ui/deliveries` (the bridge's history: search, filters, sort, pages),
//! `/ui/deliveries/{id}` (one attempt with the provider's answer) and
//! `/ui/outbox` (what waits now, and until when).

use super::access::Visitor;
use super::{Ui, relative_text, time_text};
use crate::bridge::channels::ChannelKind;
use crate::bridge::store::{HistoryEntry, HistoryOrder, HistoryQuery, OutboxRow, Outcome, RowState};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, NaiveDateTime, Utc};
use minijinja::context;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Rows per page.
const PAGE_SIZE: u32 = 50;
/// The most outbox rows listed.
const OUTBOX_LIMIT: u32 = 500;
/// The quick time ranges: (value, label, seconds).
const RANGES: [(&str, &str, i64); 5] = [
    ("", "any time", 0),
    ("1h", "last hour", 3600),
    ("24h", "last 24 hours", 86_400),
    ("7d", "last 7 days", 7 * 86_400),
    ("30d", "last 30 days", 30 * 86_400),
];

/// The filters as the visitor typed them, echoed back into the form.
#[derive(Debug, Clone, Default, Serialize)]
struct Filters {
    q: String,
    contact: String,
    channel: String,
    status: String,
    alertname: String,
    range: String,
    since: String,
    until: String,
    sort: String,
    page: u64,
}

impl Filters {
    fn from_params(params: &HashMap<String, String>) -> Filters {
        let get = |name: &str| params.get(name).map(|value| value.trim().to_string()).unwrap_or_default();
        Filters {
            q: get("q"),
            contact: get("contact"),
            channel: get("channel"),
            status: get("status"),
            alertname: get("alertname"),
            range: get("range"),
            since: get("since"),
            until: get("until"),
            sort: get("sort"),
            page: 1,
        }
    }

    /// The store query, or why the filters are invalid.
    fn query(&mut self, params: &HashMap<String, String>, now: DateTime<Utc>) -> Result<HistoryQuery, String> {
        let mut query = HistoryQuery { limit: PAGE_SIZE, ..HistoryQuery::default() };
        let text = |value: &str| Some(value.to_string()).filter(|value| !value.is_empty());
        query.search = text(&self.q);
        query.contact = text(&self.contact);
        query.channel = text(&self.channel);
        query.alertname = text(&self.alertname);
        if !self.status.is_empty() {
            query.outcome = Some(self.status.parse().map_err(|_| format!("unknown outcome {:?}", self.status))?);
        }
        if !self.range.is_empty() {
            let (_, _, seconds) = RANGES
                .iter()
                .find(|(value, _, _)| *value == self.range)
                .ok_or_else(|| format!("unknown time range {:?}", self.range))?;
            query.since = Some(now - chrono::Duration::seconds(*seconds));
        }
        if !self.since.is_empty() {
            query.since = Some(parse_time("From", &self.since)?);
        }
        if !self.until.is_empty() {
            query.until = Some(parse_time("Until", &self.until)?);
        }
        if let (Some(since), Some(until)) = (query.since, query.until) {
            if until <= since {
                return Err("“Until” must be after “From”".into());
            }
        }
        let sort = if self.sort.is_empty() { "-time" } else { self.sort.as_str() };
        let (descending, column) = sort.strip_prefix('-').map_or((false, sort), |column| (true, column));
        query.order = column.parse().map_err(|_| format!("unknown sort {sort:?}"))?;
        query.ascending = !descending;
        self.sort = sort.to_string();
        if let Some(page) = params.get("page").filter(|page| !page.is_empty()) {
            self.page = page.parse().ok().filter(|page| *page >= 1).ok_or_else(|| format!("invalid page {page:?}"))?;
        }
        query.offset = (self.page - 1).saturating_mul(u64::from(PAGE_SIZE));
        Ok(query)
    }

    /// The list URL with these filters, `sort` and `page` replaced.
    fn url(&self, base: &str, sort: &str, page: u64) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("q", &self.q),
            ("contact", &self.contact),
            ("channel", &self.channel),
            ("status", &self.status),
            ("alertname", &self.alertname),
            ("range", &self.range),
            ("since", &self.since),
            ("until", &self.until),
        ] {
            if !value.is_empty() {
                query.append_pair(name, value);
            }
        }
        if sort != "-time" {
            query.append_pair("sort", sort);
        }
        if page > 1 {
            query.append_pair("page", &page.to_string());
        }
        let query = query.finish();
        if query.is_empty() { format!("{base}ui/deliveries") } else { format!("{base}ui/deliveries?{query}") }
    }

    /// The same filters for `GET /api/v1/deliveries`.
    fn api_url(&self, base: &str, query: &HistoryQuery) -> String {
        let mut api = url::form_urlencoded::Serializer::new(String::new());
        let pairs = [
            ("q", query.search.clone()),
            ("contact", query.contact.clone()),
            ("channel", query.channel.clone()),
            ("status", query.outcome.map(|outcome| outcome.as_str().to_string())),
            ("alertname", query.alertname.clone()),
            ("since", query.since.map(|time| time.to_rfc3339())),
            ("until", query.until.map(|time| time.to_rfc3339())),
            ("sort", Some(self.sort.clone()).filter(|sort| sort != "-time")),
            ("limit", Some(query.limit.to_string())),
            ("offset", Some(query.offset.to_string()).filter(|offset| offset != "0")),
        ];
        for (name, value) in pairs {
            if let Some(value) = value {
                api.append_pair(name, &value);
            }
        }
        format!("{base}api/v1/deliveries?{}", api.finish())
    }
}

/// `datetime-local` values (`2026-12-06T19:30`, seconds optional) are UTC;
/// RFC 3339 is accepted too.
fn parse_time(what: &str, value: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(time) = DateTime::parse_from_rfc3339(value) {
        return Ok(time.with_timezone(&Utc));
    }
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(value, format).ok())
        .map(|time| time.and_utc())
        .ok_or_else(|| format!("“{what}” is not a time: {value:?} (expected 2026-12-06T19:30)"))
}

/// One history row as the table shows it.
#[derive(Debug, Serialize)]
struct Row {
    id: i64,
    at: String,
    at_text: String,
    contact: String,
    channel: String,
    kind: &'static str,
    outcome: &'static str,
    attempt: u32,
    alerts: String,
    summary: String,
    outbox_id: i64,
    notification_id: i64,
    provider_response: Option<String>,
    error: Option<String>,
    duration_ms: Option<i64>,
    alert_refs: Vec<crate::bridge::store::AlertRef>,
}

impl Row {
    fn of(entry: HistoryEntry) -> Row {
        let event = entry.event;
        let mut names: Vec<&str> = event.alerts.iter().map(|alert| alert.alertname.as_str()).collect();
        names.dedup();
        let summary = event.error.as_deref().or(event.provider_response.as_deref()).unwrap_or_default();
        let summary = match summary.char_indices().nth(120) {
            Some((cut, _)) => format!("{}…", &summary[..cut]),
            None => summary.to_string(),
        };
        Row {
            id: entry.id,
            at: event.at.to_rfc3339(),
            at_text: time_text(event.at),
            alerts: names.join(", "),
            contact: event.contact,
            channel: event.channel,
            kind: event.kind.as_str(),
            outcome: event.outcome.as_str(),
            attempt: event.attempt,
            summary,
            outbox_id: event.outbox_id,
            notification_id: event.notification_id,
            provider_response: event.provider_response,
            error: event.error,
            duration_ms: event.duration_ms,
            alert_refs: event.alerts,
        }
    }
}

/// A sortable column header.
#[derive(Debug, Serialize)]
struct Column {
    title: &'static str,
    url: Option<String>,
    sort: Option<&'static str>,
}

fn columns(filters: &Filters, base: &str) -> Vec<Column> {
    let titles: [(&str, Option<HistoryOrder>); 8] = [
        ("Time", Some(HistoryOrder::Time)),
        ("Contact", Some(HistoryOrder::Contact)),
        ("Channel", Some(HistoryOrder::Channel)),
        ("Outcome", Some(HistoryOrder::Outcome)),
        ("Alerts", None),
        ("Attempt", None),
        ("Message", None),
        ("Error or response", None),
    ];
    titles
        .into_iter()
        .map(|(title, order)| {
            let Some(order) = order else {
                return Column { title, url: None, sort: None };
            };
            let name = order.as_str();
            let current = filters.sort.trim_start_matches('-') == name;
            let descending = filters.sort.starts_with('-');
            let sort = current.then_some(if descending { "descending" } else { "ascending" });
            // A click on the current column flips it; another column starts
            // newest/highest first for time and A→Z for the rest.
            let next = match (current, descending, order) {
                (true, true, _) => name.to_string(),
                (true, false, _) | (false, _, HistoryOrder::Time) => format!("-{name}"),
                (false, _, _) => name.to_string(),
            };
            Column { title, url: Some(filters.url(base, &next, 1)), sort }
        })
        .collect()
}

pub(super) async fn list(
    State(ui): State<Arc<Ui>>,
    visitor: Visitor,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let base = ui.base();
    let Some(bridge) = ui.services.bridge() else {
        return ui.error(&visitor, StatusCode::NOT_FOUND, "The alert bridge is not configured.", &format!("{base}ui/"));
    };
    let config = ui.services.config();
    let contacts: Vec<String> = config.contacts.clone();
    let channels: Vec<&str> = ChannelKind::all().iter().map(|kind| kind.as_str()).collect();
    let outcomes =
        [Outcome::Sent, Outcome::Failed, Outcome::Dead, Outcome::Held, Outcome::RateLimited, Outcome::Skipped]
            .map(Outcome::as_str);
    let ranges: Vec<(&str, &str)> = RANGES.iter().map(|(value, label, _)| (*value, *label)).collect();
    let mut filters = Filters::from_params(&params);
    let (status, error, rows, total, query) = match filters.query(&params, Utc::now()) {
        Err(reason) => (StatusCode::BAD_REQUEST, Some(reason), Vec::new(), 0, None),
        Ok(query) => match bridge.store().history(query.clone()).await {
            Ok(page) => (StatusCode::OK, None, page.items.into_iter().map(Row::of).collect(), page.total, Some(query)),
            Err(err) => {
                tracing::error!(error = %err, "Cannot read delivery history");
                (StatusCode::SERVICE_UNAVAILABLE, Some(format!("The store cannot be read: {err}")), Vec::new(), 0, None)
            }
        },
    };
    let offset = (filters.page - 1).saturating_mul(u64::from(PAGE_SIZE));
    let shown = rows.len() as u64;
    let prev_url = (filters.page > 1).then(|| filters.url(&base, &filters.sort, filters.page - 1));
    let next_url = (offset + shown < total).then(|| filters.url(&base, &filters.sort, filters.page + 1));
    let api_url =
        query.as_ref().map(|query| filters.api_url(&base, query)).unwrap_or_else(|| format!("{base}api/v1/deliveries"));
    let page = context! {
        filters => &filters,
        columns => columns(&filters, &base),
        error,
        rows,
        total,
        first => offset + 1,
        last => offset + shown,
        prev_url,
        next_url,
        api_url,
        contacts,
        channels,
        outcomes,
        ranges,
    };
    ui.page(status, "deliveries.html", &visitor, "deliveries", "Deliveries", page)
}

pub(super) async fn detail(State(ui): State<Arc<Ui>>, visitor: Visitor, Path(id): Path<String>) -> Response {
    let back = format!("{}ui/deliveries", ui.base());
    let Some(bridge) = ui.services.bridge() else {
        return ui.error(&visitor, StatusCode::NOT_FOUND, "The alert bridge is not configured.", &back);
    };
    let Ok(id) = id.parse::<i64>() else {
        return ui.error(&visitor, StatusCode::BAD_REQUEST, &format!("{id:?} is not a delivery number."), &back);
    };
    let store = bridge.store();
    let found = store.history(HistoryQuery { id: Some(id), limit: 1, ..HistoryQuery::default() }).await;
    let entry = match found.map(|page| page.items.into_iter().next()) {
        Ok(Some(entry)) => Row::of(entry),
        Ok(None) => {
            return ui.error(
                &visitor,
                StatusCode::NOT_FOUND,
                &format!("There is no delivery {id} (it may have expired)."),
                &back,
            );
        }
        Err(err) => {
            return ui.error(
                &visitor,
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("The store cannot be read: {err}"),
                &back,
            );
        }
    };
    let steps = store
        .history(HistoryQuery {
            outbox_id: Some(entry.outbox_id),
            ascending: true,
            limit: 200,
            ..HistoryQuery::default()
        })
        .await
        .map(|page| page.items.into_iter().map(Row::of).collect::<Vec<_>>())
        .unwrap_or_default();
    let notification =
        store.notifications(vec![entry.notification_id]).await.ok().and_then(|found| found.into_iter().next());
    let title = format!("Delivery {id}");
    // The Acknowledge button: for a firing alert group (not a message) while
    // acknowledgement is configured; or who acknowledged it.
    let firing = notification.as_ref().and_then(|stored| {
        let notification = &stored.notification;
        let firing = notification.alerts.iter().find(|alert| alert.status == crate::bridge::payload::Status::Firing);
        firing.filter(|_| notification.message.is_none()).map(|alert| alert.fingerprint.clone())
    });
    let acknowledged_by = match &firing {
        Some(fingerprint) => bridge.submitter().acknowledged_by(fingerprint).await.ok().flatten(),
        None => None,
    };
    let acknowledgeable = bridge.acknowledges() && firing.is_some() && acknowledged_by.is_none();
    let page = context! {
        acknowledgeable,
        acknowledged_by,
        notification_received => notification.as_ref().map(|stored| stored.received_at.to_rfc3339()),
        notification_received_text => notification.as_ref().map(|stored| time_text(stored.received_at)),
        notification => notification.map(|stored| stored.notification),
        entry,
        steps,
    };
    ui.page(StatusCode::OK, "delivery.html", &visitor, "deliveries", &title, page)
}

/// One waiting row as the outbox table shows it.
#[derive(Debug, Serialize)]
struct Waiting {
    contact: String,
    channel: String,
    state: &'static str,
    why: String,
    alerts: String,
    attempts: u32,
    due_in: String,
    due_at: String,
    due_text: String,
    created_at: String,
    created_text: String,
}

/// Why a row is waiting, in words.
fn why_waiting(row: &OutboxRow) -> String {
    match row.state {
        RowState::Held => "quiet hours; one catch-up message when they end".into(),
        RowState::Limited => "over the rate limit; summarised when budget frees up".into(),
        RowState::Pending if row.attempts > 0 => format!("retrying after {} failed attempt(s)", row.attempts),
        RowState::Pending if row.delayed => "route delay (waits to see whether the alert resolves)".into(),
        _ => "next in line".into(),
    }
}

pub(super) async fn outbox(State(ui): State<Arc<Ui>>, visitor: Visitor) -> Response {
    let back = format!("{}ui/", ui.base());
    let Some(bridge) = ui.services.bridge() else {
        return ui.error(&visitor, StatusCode::NOT_FOUND, "The alert bridge is not configured.", &back);
    };
    let store = bridge.store();
    let (rows, stats) = match (store.open_rows(OUTBOX_LIMIT).await, store.queue_stats().await) {
        (Ok(rows), Ok(stats)) => (rows, stats),
        (Err(err), _) | (_, Err(err)) => {
            return ui.error(
                &visitor,
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("The store cannot be read: {err}"),
                &back,
            );
        }
    };
    let mut ids: Vec<i64> = rows.iter().map(|row| row.notification_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let names: BTreeMap<i64, String> = store
        .notifications(ids)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|stored| {
            let mut names: Vec<String> = stored
                .notification
                .alerts
                .iter()
                .map(|alert| alert.labels.get("alertname").cloned().unwrap_or_default())
                .collect();
            names.dedup();
            (stored.id, names.join(", "))
        })
        .collect();
    let now = Utc::now();
    let truncated = rows.len() >= OUTBOX_LIMIT as usize;
    let rows: Vec<Waiting> = rows
        .iter()
        .map(|row| Waiting {
            contact: row.contact.clone(),
            channel: row.channel.clone(),
            state: row.state.as_str(),
            why: why_waiting(row),
            alerts: names.get(&row.notification_id).cloned().unwrap_or_default(),
            attempts: row.attempts,
            due_at: row.due_at.to_rfc3339(),
            due_in: relative_text(row.due_at, now),
            due_text: time_text(row.due_at),
            created_at: row.created_at.to_rfc3339(),
            created_text: time_text(row.created_at),
        })
        .collect();
    let page = context! {
        rows,
        truncated,
        now => now.to_rfc3339(),
        now_text => time_text(now),
        stats => context! { pending => stats.pending, held => stats.held, limited => stats.limited },
    };
    ui.page(StatusCode::OK, "outbox.html", &visitor, "outbox", "Outbox", page)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bridge::string_map as params;
    use chrono::TimeZone;

    #[test]
    fn filters_become_a_query() {
        let now = Utc.with_ymd_and_hms(2026, 12, 6, 12, 0, 0).unwrap();
        let params =
            params(&[("contact", "alice"), ("status", "dead"), ("range", "24h"), ("sort", "channel"), ("page", "3")]);
        let mut filters = Filters::from_params(&params);
        let query = filters.query(&params, now).unwrap();
        assert_eq!(query.contact.as_deref(), Some("alice"));
        assert_eq!(query.outcome, Some(Outcome::Dead));
        assert_eq!(query.since, Some(now - chrono::Duration::hours(24)));
        assert_eq!((query.order, query.ascending), (HistoryOrder::Channel, true));
        assert_eq!(query.offset, 100);
        assert_eq!(
            filters.url("/", "channel", 2),
            "/ui/deliveries?contact=alice&status=dead&range=24h&sort=channel&page=2"
        );
    }

    #[test]
    fn local_times_are_utc() {
        let params = params(&[("since", "2026-12-06T10:30"), ("until", "2026-12-06T10:00")]);
        let mut filters = Filters::from_params(&params);
        let err = filters.query(&params, Utc::now()).unwrap_err();
        assert!(err.contains("must be after"), "{err}");
        assert_eq!(
            parse_time("From", "2026-12-06T10:30").unwrap(),
            Utc.with_ymd_and_hms(2026, 12, 6, 10, 30, 0).unwrap()
        );
        assert!(parse_time("From", "yesterday").unwrap_err().contains("not a time"));
    }

    #[test]
    fn bad_filters_say_why() {
        for (pairs, reason) in [
            (vec![("status", "lost")], "unknown outcome"),
            (vec![("range", "2y")], "unknown time range"),
            (vec![("sort", "name")], "unknown sort"),
            (vec![("page", "0")], "invalid page"),
        ] {
            let params = params(&pairs);
            let err = Filters::from_params(&params).query(&params, Utc::now()).unwrap_err();
            assert!(err.contains(reason), "{err}");
        }
    }

    #[test]
    fn the_current_sort_column_flips() {
        let mut filters = Filters { sort: "-time".into(), ..Filters::default() };
        let columns = columns(&filters, "/");
        assert_eq!(columns[0].sort, Some("descending"));
        assert_eq!(columns[0].url.as_deref(), Some("/ui/deliveries?sort=time"));
        assert_eq!(columns[1].url.as_deref(), Some("/ui/deliveries?sort=contact"));
        filters.sort = "contact".into();
        assert_eq!(columns_for(&filters)[1].url.as_deref(), Some("/ui/deliveries?sort=-contact"));
    }

    fn columns_for(filters: &Filters) -> Vec<Column> {
        columns(filters, "/")
    }
}
