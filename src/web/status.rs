//! Pages over the scheduled checks: `/status/<slug>` (with `summary.json`,
//! `feed.atom`, `logo`), `/checks/<name>` (with `results.csv`), the badges
//! under `/badge/<check>/…`, and the operator's `/ui/checks` with pause and
//! resume.

use super::access::{Posted, Visitor};
use super::badge::{self, Audience, Badge};
use super::status_config::{Overall, StatusPage};
use super::svg::{self, Day, Series, Span};
use super::{Ui, relative_text, time_text};
use crate::checks::View;
use crate::checks::annotations::Note;
use crate::checks::rollup::{Period, WINDOWS};
use crate::checks::state::{Incident, State as CheckState};
use crate::checks::store::DayCount;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use minijinja::context;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::Arc;

/// Days in a status page's bar.
pub const DAYS: i64 = 90;
/// The most incidents `summary.json` and the feed list.
const INCIDENT_LIMIT: u32 = 50;
/// The most incidents the HTML page lists (the feed has more).
const PAGE_INCIDENTS: usize = 20;

/// The checks' names and labels, for group membership.
fn names_and_labels(views: &[(i64, View)]) -> Vec<(String, BTreeMap<String, String>)> {
    views.iter().map(|(_, view)| (view.check.name.clone(), view.check.labels.clone())).collect()
}

/// True when check `name` is on a public status page.
pub fn check_is_public(services: &super::Services, name: &str) -> bool {
    let config = services.config();
    let Some(checks) = services.checks() else { return false };
    let views = checks.views();
    let all = names_and_labels(&views);
    config
        .status_pages
        .iter()
        .filter(|page| page.public)
        .any(|page| page.groups.iter().any(|group| group.members(&all).contains(&name)))
}

/// The badge token of check `name`: HMAC-SHA256 of its name under the
/// secret in `ui.badge_key_file`, base64url; `None` without that file. The
/// file is read per call (it is tiny), so a replaced secret revokes the old
/// tokens at once.
pub fn badge_token(services: &super::Services, name: &str) -> Option<String> {
    use base64::Engine;
    let file = services.config().ui.badge_key_file.clone()?;
    let secret = match crate::config::types::read_secret_file(&file) {
        Ok(secret) => secret,
        Err(err) => {
            tracing::warn!(error = %err, "Cannot read ui.badge_key_file; badge tokens are refused");
            return None;
        }
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.expose().as_bytes());
    let tag = ring::hmac::sign(&key, format!("checkit-badge|{name}").as_bytes());
    Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// True when `query` carries check `name`'s badge token.
pub fn badge_token_matches(services: &super::Services, name: &str, query: Option<&str>) -> bool {
    use subtle::ConstantTimeEq;
    let Some(given) = query.and_then(|query| {
        url::form_urlencoded::parse(query.as_bytes()).find(|(key, _)| key == "token").map(|(_, value)| value)
    }) else {
        return false;
    };
    badge_token(services, name).is_some_and(|token| bool::from(token.as_bytes().ct_eq(given.as_bytes())))
}

/// True when `slug` is a public status page.
pub fn page_is_public(services: &super::Services, slug: &str) -> bool {
    services.config().status_pages.iter().any(|page| page.slug == slug && page.public)
}

/// A check's state word for people.
fn state_text(state: CheckState, failing: bool) -> &'static str {
    match state {
        CheckState::Up if failing => "Failing",
        CheckState::Up => "Operational",
        CheckState::Down => "Down",
        CheckState::Paused => "Paused",
        CheckState::Maintenance => "Maintenance",
        CheckState::Unknown => "No data yet",
    }
}

/// True when the last run failed but the check is not down yet.
fn failing(view: &View) -> bool {
    view.state == CheckState::Up && view.last.as_ref().is_some_and(|last| !last.success)
}

/// The 90 days of one check, from its daily run counts (oldest first) and
/// incidents. Each incident adds to the days it overlaps, so the work is
/// the days plus the incidents, not their product: a status page does this
/// for hundreds of checks.
fn days_of(counts: &[DayCount], incidents: &[&Incident], today: NaiveDate, now: DateTime<Utc>) -> Vec<Day> {
    let first = today - Duration::days(DAYS - 1);
    let mut days: Vec<Day> = first
        .iter_days()
        .take(DAYS as usize)
        .map(|date| Day { date, uptime: None, maintenance: false, incidents: 0, downtime_seconds: 0 })
        .collect();
    let index_of =
        |date: NaiveDate| usize::try_from((date - first).num_days()).ok().filter(|index| *index < DAYS as usize);
    for count in counts {
        if let Some(index) = index_of(count.start.date_naive()) {
            days[index].uptime = count.uptime();
            days[index].maintenance = count.maintenance_runs > 0;
        }
    }
    let midnight = |date: NaiveDate| date.and_hms_opt(0, 0, 0).map_or(now, |time| time.and_utc());
    let window_start = midnight(first);
    for incident in incidents {
        let from = incident.started_at.max(window_start);
        let to = incident.ended_at.unwrap_or(now).min(now);
        let (Some(first_day), Some(last_day)) = (index_of(from.date_naive()), index_of(to.date_naive())) else {
            continue;
        };
        for day in days.iter_mut().take(last_day + 1).skip(first_day) {
            let start = midnight(day.date);
            let overlap = (to.min(start + Duration::days(1)) - from.max(start)).num_seconds();
            if overlap > 0 {
                day.downtime_seconds += u64::try_from(overlap).unwrap_or(0);
                day.incidents += 1;
            }
        }
    }
    days
}

/// One check on a status page.
#[derive(Debug, Serialize)]
struct Card {
    name: String,
    state: &'static str,
    state_text: &'static str,
    failing: bool,
    link: bool,
    bar: String,
    uptime: Vec<WindowFigure>,
}

#[derive(Debug, Serialize)]
struct WindowFigure {
    window: &'static str,
    ratio: Option<f64>,
    text: String,
}

fn uptime_figures(view: &View) -> Vec<WindowFigure> {
    WINDOWS
        .iter()
        .zip(view.uptime.iter())
        .map(|((window, _), ratio)| WindowFigure {
            window,
            ratio: *ratio,
            text: ratio.map_or_else(|| "no data".to_string(), badge::format_percent),
        })
        .collect()
}

/// An incident as pages and feeds show it.
#[derive(Debug, Serialize)]
struct IncidentItem {
    id: i64,
    check: String,
    title: String,
    status: &'static str,
    open: bool,
    started_at: String,
    started_text: String,
    ended_at: Option<String>,
    ended_text: Option<String>,
    duration: String,
    updated: DateTime<Utc>,
    updates: Vec<minijinja::Value>,
    #[serde(skip)]
    note: Note,
}

/// The title of an incident nobody named: what failed, and how.
pub(super) fn derived_title(check: &str, incident: &Incident) -> String {
    format!("{check} down: {} ({})", incident.reason, incident.phase)
}

fn incident_item(check: &str, incident: &Incident, note: Option<&Note>, now: DateTime<Utc>) -> IncidentItem {
    let duration = svg::format_duration(u64::try_from(incident.duration(now).num_seconds()).unwrap_or(0));
    let note = note.cloned().unwrap_or_default();
    let last_update = note.updates.last().map(|update| update.at);
    IncidentItem {
        id: incident.id.unwrap_or(0),
        check: check.to_string(),
        title: note.title.clone().unwrap_or_else(|| derived_title(check, incident)),
        status: note.status(incident).as_str(),
        open: incident.ended_at.is_none(),
        started_at: incident.started_at.to_rfc3339(),
        started_text: time_text(incident.started_at),
        ended_at: incident.ended_at.map(|time| time.to_rfc3339()),
        ended_text: incident.ended_at.map(time_text),
        duration: if incident.ended_at.is_some() { duration } else { format!("ongoing for {duration}") },
        updated: incident.ended_at.unwrap_or(incident.started_at).max(last_update.unwrap_or(incident.started_at)),
        updates: note.updates.iter().rev().map(super::operate::update_context).collect(),
        note,
    }
}

/// The notes of `incidents`, or none when the store cannot be read (the
/// incidents are still shown, with their derived titles).
async fn notes_of<'a>(
    store: &crate::checks::store::CheckStore,
    incidents: impl IntoIterator<Item = &'a Incident>,
) -> HashMap<i64, Note> {
    let ids = incidents.into_iter().filter_map(|incident| incident.id).collect();
    store.notes(ids).await.unwrap_or_else(|err| {
        tracing::warn!(error = %err, "Cannot read incident notes");
        HashMap::new()
    })
}

/// Everything a status page shows, computed once for the HTML, JSON and feed.
struct Snapshot {
    page: StatusPage,
    overall: Overall,
    groups: Vec<(String, Vec<(Card, i64)>)>,
    incidents: Vec<IncidentItem>,
    maintenance: Vec<MaintenanceItem>,
    now: DateTime<Utc>,
}

/// A maintenance window on a status page: active or coming, over the page's checks.
#[derive(Debug, Serialize)]
struct MaintenanceItem {
    title: String,
    active: bool,
    start: String,
    start_text: String,
    end: String,
    end_text: String,
    checks: Vec<String>,
}

/// How far ahead status pages announce maintenance.
const MAINTENANCE_AHEAD: Duration = Duration::days(7);

/// The page `slug` now; the day bars are drawn only when `bars` is set (the
/// HTML page), as the JSON and the feed do not show them.
async fn snapshot(ui: &Ui, slug: &str, visitor_logged_in: bool, bars: bool) -> Result<Snapshot, (StatusCode, String)> {
    let config = ui.services.config();
    let page = config
        .status_pages
        .iter()
        .find(|page| page.slug == slug)
        .cloned()
        .ok_or_else(|| (StatusCode::NOT_FOUND, format!("There is no status page {slug:?}.")))?;
    let checks =
        ui.services.checks().ok_or_else(|| (StatusCode::NOT_FOUND, "No checks are configured.".to_string()))?;
    let now = checks.now();
    let today = now.date_naive();
    let views = checks.views();
    let all = names_and_labels(&views);
    let by_name: HashMap<&str, &(i64, View)> = views.iter().map(|entry| (entry.1.check.name.as_str(), entry)).collect();
    let from = now - Duration::days(DAYS);
    let store = checks.store();
    let incidents = store.incidents_of_all(from, now, 10_000).await.map_err(storage)?;
    let mut by_check: HashMap<i64, Vec<&Incident>> = HashMap::new();
    for (id, incident) in &incidents {
        by_check.entry(*id).or_default().push(incident);
    }
    let mut groups = Vec::new();
    let mut states = Vec::new();
    let mut members_ids = Vec::new();
    for group in &page.groups {
        let mut cards = Vec::new();
        for name in group.members(&all) {
            let Some((id, view)) = by_name.get(name).map(|entry| (entry.0, &entry.1)) else { continue };
            states.push((view.state.as_str(), failing(view)));
            members_ids.push((id, name.to_string()));
            cards.push((
                Card {
                    name: name.to_string(),
                    state: view.state.as_str(),
                    state_text: state_text(view.state, failing(view)),
                    failing: failing(view),
                    link: visitor_logged_in,
                    bar: String::new(),
                    uptime: uptime_figures(view),
                },
                id,
            ));
        }
        groups.push((group.name.clone(), cards));
    }
    if bars {
        let counts = store.day_counts(from, now + Duration::days(1)).await.map_err(storage)?;
        for (card, id) in groups.iter_mut().flat_map(|(_, cards)| cards.iter_mut()) {
            let days = days_of(
                counts.get(id).map(Vec::as_slice).unwrap_or_default(),
                by_check.get(id).map(Vec::as_slice).unwrap_or_default(),
                today,
                now,
            );
            card.bar = svg::day_bar(&card.name, &days);
        }
    }
    let overall = Overall::of(states);
    let names: HashMap<i64, &str> = members_ids.iter().map(|(id, name)| (*id, name.as_str())).collect();
    let shown: Vec<(&str, &Incident)> = incidents
        .iter()
        .filter_map(|(id, incident)| names.get(id).map(|name| (*name, incident)))
        .take(INCIDENT_LIMIT as usize)
        .collect();
    let notes = notes_of(store, shown.iter().map(|(_, incident)| *incident)).await;
    let incident_items: Vec<IncidentItem> = shown
        .iter()
        .map(|(name, incident)| incident_item(name, incident, incident.id.and_then(|id| notes.get(&id)), now))
        .collect();
    let maintenance = checks
        .maintenance_between(now, now + MAINTENANCE_AHEAD)
        .into_iter()
        .filter_map(|window| {
            let on_page: Vec<String> = window
                .checks
                .iter()
                .filter(|name| names.values().any(|shown| *shown == name.as_str()))
                .cloned()
                .collect();
            (!on_page.is_empty()).then(|| MaintenanceItem {
                title: window.title,
                active: window.start <= now,
                start: window.start.to_rfc3339(),
                start_text: time_text(window.start),
                end: window.end.to_rfc3339(),
                end_text: time_text(window.end),
                checks: on_page,
            })
        })
        .collect();
    Ok(Snapshot { page, overall, groups, incidents: incident_items, maintenance, now })
}

fn storage(err: crate::bridge::store::StoreError) -> (StatusCode, String) {
    tracing::error!(error = %err, "Cannot read the checks store");
    (StatusCode::SERVICE_UNAVAILABLE, format!("The checks store cannot be read: {err}"))
}

/// `GET /status/{slug}`.
pub(super) async fn page(State(ui): State<Arc<Ui>>, visitor: Visitor, Path(slug): Path<String>) -> Response {
    let logged_in = visitor.role != super::access::Role::Public;
    let snapshot = match snapshot(&ui, &slug, logged_in, true).await {
        Ok(snapshot) => snapshot,
        Err((status, message)) => return ui.error(&visitor, status, &message, &ui.base()),
    };
    let groups: Vec<_> = snapshot
        .groups
        .iter()
        .map(|(name, cards)| context! { name, checks => cards.iter().map(|(card, _)| card).collect::<Vec<_>>() })
        .collect();
    let title = snapshot.page.title.clone();
    let page = context! {
        page => &snapshot.page,
        overall => snapshot.overall.as_str(),
        overall_text => snapshot.overall.text(),
        groups,
        incidents => &snapshot.incidents[..snapshot.incidents.len().min(PAGE_INCIDENTS)],
        more_incidents => snapshot.incidents.len() > PAGE_INCIDENTS,
        maintenance => &snapshot.maintenance,
        days_back => DAYS,
        now_text => time_text(snapshot.now),
        home_path => format!("status/{}", snapshot.page.slug),
    };
    let nav = format!("status-{}", snapshot.page.slug);
    let mut response = ui.page(StatusCode::OK, "status.html", &visitor, &nav, &title, page);
    if snapshot.page.public {
        // Public pages may be cached briefly by the browser; they refresh in place.
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    response
}

/// `GET /status/{slug}/days/{check}`: the words of each day of a check's
/// bar (oldest first), fetched by the page's script on hover or focus.
pub(super) async fn days(State(ui): State<Arc<Ui>>, Path((slug, name)): Path<(String, String)>) -> Response {
    let not_found = |message: String| (StatusCode::NOT_FOUND, axum::Json(serde_json::json!({"error": message})));
    let config = ui.services.config();
    let Some(page) = config.status_pages.iter().find(|page| page.slug == slug) else {
        return not_found(format!("there is no status page {slug:?}")).into_response();
    };
    let Some(checks) = ui.services.checks() else {
        return not_found("no checks are configured".into()).into_response();
    };
    let all = names_and_labels(&checks.views());
    let on_page = page.groups.iter().any(|group| group.members(&all).contains(&name.as_str()));
    let Some((id, _)) = checks.view_of(&name).filter(|_| on_page) else {
        return not_found(format!("{name:?} is not on this page")).into_response();
    };
    let now = checks.now();
    let from = now - Duration::days(DAYS);
    let store = checks.store();
    let (series, incidents) = match (
        store.series(vec![id], Period::Day, from, now + Duration::days(1)).await,
        store.incidents(id, from, now + Duration::seconds(1), 10_000).await,
    ) {
        (Ok(series), Ok(incidents)) => (series, incidents),
        (Err(err), _) | (_, Err(err)) => return storage(err).into_response(),
    };
    let incidents: Vec<&Incident> = incidents.iter().collect();
    let counts: Vec<DayCount> =
        series.get(&id).into_iter().flatten().map(|(start, rollup)| DayCount::of(*start, rollup)).collect();
    let days = days_of(&counts, &incidents, now.date_naive(), now);
    let texts: Vec<String> = days.iter().map(svg::Day::describe).collect();
    let mut response = axum::Json(serde_json::json!({"check": name, "days": texts})).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `GET /status/{slug}/summary.json`: the page for machines.
pub(super) async fn summary(State(ui): State<Arc<Ui>>, Path(slug): Path<String>) -> Response {
    let snapshot = match snapshot(&ui, &slug, false, false).await {
        Ok(snapshot) => snapshot,
        Err((status, message)) => return (status, axum::Json(serde_json::json!({"error": message}))).into_response(),
    };
    let checks: Vec<serde_json::Value> = snapshot
        .groups
        .iter()
        .flat_map(|(group, cards)| {
            cards.iter().map(move |(card, _)| {
                let uptime: serde_json::Map<String, serde_json::Value> =
                    card.uptime.iter().map(|figure| (figure.window.to_string(), serde_json::json!(figure.ratio))).collect();
                serde_json::json!({"name": card.name, "group": group, "state": card.state, "failing": card.failing, "uptime": uptime})
            })
        })
        .collect();
    let incidents: Vec<serde_json::Value> = snapshot
        .incidents
        .iter()
        .map(|incident| {
            let updates: Vec<serde_json::Value> = incident
                .note
                .updates
                .iter()
                .map(|update| serde_json::json!({"at": update.at.to_rfc3339(), "status": update.status, "body": update.body}))
                .collect();
            serde_json::json!({
                "id": incident.id, "check": incident.check, "title": incident.title, "status": incident.status,
                "started_at": incident.started_at, "ended_at": incident.ended_at, "updates": updates,
            })
        })
        .collect();
    let body = serde_json::json!({
        "page": {"slug": snapshot.page.slug, "title": snapshot.page.title, "updated_at": snapshot.now.to_rfc3339()},
        "status": {"indicator": snapshot.overall.as_str(), "description": snapshot.overall.text()},
        "checks": checks,
        "incidents": incidents,
        "maintenance": snapshot.maintenance,
    });
    let mut response = axum::Json(body).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `GET /status/{slug}/feed.atom`: incidents as an Atom feed (RFC 4287).
pub(super) async fn feed(State(ui): State<Arc<Ui>>, headers: HeaderMap, Path(slug): Path<String>) -> Response {
    let snapshot = match snapshot(&ui, &slug, false, false).await {
        Ok(snapshot) => snapshot,
        Err((status, message)) => return (status, message).into_response(),
    };
    let host = headers.get(header::HOST).and_then(|value| value.to_str().ok()).unwrap_or("localhost");
    let page_url = format!("http://{host}{}status/{}", ui.base(), snapshot.page.slug);
    let updated = snapshot.incidents.iter().map(|incident| incident.updated).max().unwrap_or(snapshot.now);
    let escape = badge::escape;
    let mut xml =
        String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\">\n");
    let _ = writeln!(xml, "<title>{} incidents</title>", escape(&snapshot.page.title));
    let _ = writeln!(xml, "<id>tag:checkit,2026:status/{}</id>", escape(&snapshot.page.slug));
    let _ = writeln!(xml, "<updated>{}</updated>", updated.to_rfc3339());
    let _ = writeln!(xml, "<link rel=\"alternate\" href=\"{}\"/>", escape(&page_url));
    let _ = writeln!(xml, "<link rel=\"self\" href=\"{}/feed.atom\"/>", escape(&page_url));
    let _ = writeln!(xml, "<author><name>checkit</name></author>");
    for incident in &snapshot.incidents {
        // The operator's updates, newest first, as HTML (escaped once more for XML).
        let mut content = String::new();
        for update in incident.note.updates.iter().rev() {
            let _ = write!(
                content,
                "<p><strong>{}</strong> · {}</p>{}",
                update.status.as_str(),
                time_text(update.at),
                super::markdown::to_html(&update.body)
            );
        }
        let content = if content.is_empty() {
            String::new()
        } else {
            format!("<content type=\"html\">{}</content>", escape(&content))
        };
        let _ = writeln!(
            xml,
            "<entry><id>tag:checkit,2026:status/{slug}/incident/{id}</id><title>{title} ({status})</title>\
             <updated>{updated}</updated><published>{published}</published><link rel=\"alternate\" href=\"{link}\"/>\
             <summary>{summary}</summary>{content}</entry>",
            slug = escape(&snapshot.page.slug),
            id = incident.id,
            title = escape(&incident.title),
            status = incident.status,
            updated = incident.updated.to_rfc3339(),
            published = incident.started_at,
            link = escape(&page_url),
            summary = escape(&format!(
                "{} from {}{}; {}.",
                incident.check,
                incident.started_text,
                incident.ended_text.as_deref().map(|end| format!(" to {end}")).unwrap_or_default(),
                incident.duration
            )),
        );
    }
    xml.push_str("</feed>\n");
    let mut response = xml.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/atom+xml; charset=utf-8"));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `GET /status/{slug}/logo`.
pub(super) async fn logo(State(ui): State<Arc<Ui>>, Path(slug): Path<String>) -> Response {
    let config = ui.services.config();
    let Some(path) = config.status_pages.iter().find(|page| page.slug == slug).and_then(|page| page.logo_file.clone())
    else {
        return (StatusCode::NOT_FOUND, "no logo\n").into_response();
    };
    match tokio::fs::read(&path).await {
        Ok(bytes) => {
            let kind = if path.to_ascii_lowercase().ends_with(".svg") { "image/svg+xml" } else { "image/png" };
            ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "public, max-age=3600")], bytes).into_response()
        }
        Err(err) => (StatusCode::NOT_FOUND, format!("cannot read the logo: {err}\n")).into_response(),
    }
}

/// `GET /badge/{check}/{*rest}`: `status`, `uptime/<window>`,
/// `response-time/<window>`, `cert-expiry`, each `.svg` or `.shields`.
pub(super) async fn badge(
    State(ui): State<Arc<Ui>>,
    headers: HeaderMap,
    Path((name, rest)): Path<(String, String)>,
    uri: axum::http::Uri,
) -> Response {
    let (stem, shields) = match (rest.strip_suffix(".svg"), rest.strip_suffix(".shields")) {
        (Some(stem), _) => (stem, false),
        (_, Some(stem)) => (stem, true),
        _ => return (StatusCode::NOT_FOUND, "badges end in .svg or .shields\n").into_response(),
    };
    // A token URL is itself the permission, so shared caches may keep it too.
    let audience = if check_is_public(&ui.services, &name) || badge_token_matches(&ui.services, &name, uri.query()) {
        Audience::Public
    } else {
        Audience::Private
    };
    let answer = |badge: &Badge, status: StatusCode| {
        if shields {
            badge::shields_response(badge, status, audience, &headers)
        } else {
            badge::svg_response(badge, status, audience, &headers)
        }
    };
    let Some(checks) = ui.services.checks() else {
        return answer(&Badge::not_found(&name), StatusCode::NOT_FOUND);
    };
    let Some((id, view)) = checks.view_of(&name) else {
        return answer(&Badge::not_found(&name), StatusCode::NOT_FOUND);
    };
    let mut parts = stem.splitn(2, '/');
    let kind = parts.next().unwrap_or_default();
    let window = parts.next();
    let badge = match (kind, window) {
        ("status", None) => Badge::status(&name, view.state.as_str()),
        ("cert-expiry", None) => {
            let expiry = view.last.as_ref().and_then(|last| last.registry.get("probe_ssl_earliest_cert_expiry", &[]));
            let days = expiry.map(|expiry| (expiry - checks.now().timestamp() as f64) / 86_400.0);
            Badge::cert_expiry(&format!("{name} cert"), days)
        }
        ("uptime", Some(window)) => match WINDOWS.iter().position(|(known, _)| *known == window) {
            Some(index) => Badge::uptime(&name, window, view.uptime.get(index).copied().flatten()),
            None => return bad_window(window),
        },
        ("response-time", Some(window)) => match crate::checks::rollup::parse_window(window) {
            Ok(length) => {
                let now = checks.now();
                match checks.store().rollup(id, Period::for_window(length), now - length, now).await {
                    Ok(rollup) => {
                        Badge::response_time(&name, window, rollup.mean_seconds().map(|seconds| seconds * 1000.0))
                    }
                    Err(err) => return storage(err).into_response(),
                }
            }
            Err(_) => return bad_window(window),
        },
        _ => {
            return (
                StatusCode::NOT_FOUND,
                "unknown badge: use status, uptime/<window>, response-time/<window> or cert-expiry\n",
            )
                .into_response();
        }
    };
    answer(&badge, StatusCode::OK)
}

fn bad_window(window: &str) -> Response {
    (StatusCode::BAD_REQUEST, format!("unknown window {window:?}: use 24h, 7d, 30d, 90d or 1y\n")).into_response()
}

/// The chart windows of a check page.
const CHART_WINDOWS: [(&str, i64, Period); 3] =
    [("24h", 24, Period::Hour), ("7d", 168, Period::Hour), ("30d", 720, Period::Day)];

/// `GET /checks/{name}`.
pub(super) async fn check_page(
    State(ui): State<Arc<Ui>>,
    visitor: Visitor,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let back = format!("{}ui/checks", ui.base());
    let Some(checks) = ui.services.checks() else {
        return ui.error(&visitor, StatusCode::NOT_FOUND, "No checks are configured.", &back);
    };
    let Some((id, view)) = checks.view_of(&name) else {
        return ui.error(&visitor, StatusCode::NOT_FOUND, &format!("There is no check {name:?}."), &back);
    };
    let window = params.get("window").map(String::as_str).unwrap_or("24h");
    let Some((window, hours, period)) = CHART_WINDOWS.iter().find(|(known, _, _)| *known == window).copied() else {
        return ui.error(
            &visitor,
            StatusCode::BAD_REQUEST,
            &format!("unknown window {window:?}: use 24h, 7d or 30d"),
            &back,
        );
    };
    let now = checks.now();
    let from = now - Duration::hours(hours);
    let store = checks.store();
    let (series, results, incidents) = match (
        store.series(vec![id], period, from, now + period.length()).await,
        store.results(id, now - Duration::days(7), now + Duration::seconds(1), 50).await,
        store.incidents(id, from, now + Duration::seconds(1), 100).await,
    ) {
        (Ok(series), Ok(results), Ok(incidents)) => (series, results, incidents),
        (Err(err), _, _) | (_, Err(err), _) | (_, _, Err(err)) => {
            let (status, message) = storage(err);
            return ui.error(&visitor, status, &message, &back);
        }
    };
    let buckets = series.get(&id).cloned().unwrap_or_default();
    let mean = Series {
        name: "mean".into(),
        points: buckets.iter().map(|(start, rollup)| (*start, rollup.mean_seconds().map(|s| s * 1000.0))).collect(),
    };
    let p95 = Series {
        name: "p95".into(),
        points: buckets.iter().map(|(start, rollup)| (*start, rollup.p95_seconds().map(|s| s * 1000.0))).collect(),
    };
    let chart = svg::line_chart(&format!("Response time of {name}, {window}"), from, now, &[mean, p95]);
    let chart_text = svg::describe_series(&[Series {
        name: "mean".into(),
        points: buckets.iter().map(|(start, r)| (*start, r.mean_seconds().map(|s| s * 1000.0))).collect(),
    }]);
    let mut spans = Vec::new();
    let mut cursor = from;
    let mut ordered: Vec<&Incident> = incidents.iter().collect();
    ordered.sort_by_key(|incident| incident.started_at);
    for incident in ordered {
        let start = incident.started_at.max(from);
        if start > cursor {
            spans.push(Span { from: cursor, to: start, state: "up".into() });
        }
        let end = incident.ended_at.unwrap_or(now).min(now);
        spans.push(Span { from: start, to: end, state: "down".into() });
        cursor = end.max(cursor);
    }
    if cursor < now {
        let state = if view.state == CheckState::Down { "up" } else { view.state.as_str() };
        spans.push(Span { from: cursor, to: now, state: state.into() });
    }
    let timeline = svg::timeline(&format!("State of {name}, {window}"), from, now, &spans);
    let results: Vec<_> = results
        .iter()
        .map(|result| {
            context! {
                at => result.at.to_rfc3339(),
                at_text => time_text(result.at),
                success => result.success,
                maintenance => result.maintenance,
                // None (not measured: a heartbeat's ping without a start) shows as "—".
                duration => result.duration_seconds.map(|seconds| badge::format_millis(seconds * 1000.0)),
                phase => result.phase.clone().unwrap_or_default(),
                reason => result.reason.clone().unwrap_or_default(),
            }
        })
        .collect();
    let locations = match super::locations::rows(store, id, &view, now).await {
        Ok(locations) => locations,
        Err(err) => {
            let (status, message) = storage(err);
            return ui.error(&visitor, status, &message, &back);
        }
    };
    let notes = notes_of(store, &incidents).await;
    let incidents: Vec<IncidentItem> = incidents
        .iter()
        .map(|incident| incident_item(&name, incident, incident.id.and_then(|id| notes.get(&id)), now))
        .collect();
    let pings = super::heartbeat::pings(&ui, &name).await;
    let windows: Vec<_> = CHART_WINDOWS
        .iter()
        .map(|(known, _, _)| context! { name => known, current => *known == window, url => format!("{}checks/{}?window={known}", ui.base(), urlencode(&name)) })
        .collect();
    let page = context! {
        check => context! {
            name => &name,
            kind => view.check.kind.as_str(),
            module => &view.check.module,
            target => &view.check.target,
            interval => crate::web::svg::format_duration(view.check.interval.as_secs()),
            labels => &view.check.labels,
            state => super::heartbeat::state_word(&view),
            state_text => super::heartbeat::status_text(&view).unwrap_or_else(|| state_text(view.state, failing(&view))),
            paused => view.paused,
            since_text => view.since.map(|since| format!("{} ({})", relative_text(since, now), time_text(since))),
        },
        uptime => uptime_figures(&view),
        chart,
        chart_text,
        timeline,
        windows,
        window,
        results,
        pings,
        incidents,
        locations,
        down_when => view.check.down_when,
        badges => badge_links(&ui, &name),
        json_url => format!("{}api/v1/checks/{}/results", ui.base(), urlencode(&name)),
        csv_url => format!("{}checks/{}/results.csv", ui.base(), urlencode(&name)),
    };
    ui.page(StatusCode::OK, "check.html", &visitor, "checks", &name, page)
}

/// The check page's badge links: plain for a public check, with the
/// check's token for a private one when `ui.badge_key_file` is set.
fn badge_links(ui: &Ui, name: &str) -> minijinja::Value {
    let public = check_is_public(&ui.services, name);
    let token = if public { None } else { badge_token(&ui.services, name) };
    let query = token.as_ref().map(|token| format!("?token={token}")).unwrap_or_default();
    let links: Vec<_> = ["status", "uptime/30d", "uptime/1y", "response-time/24h", "cert-expiry"]
        .iter()
        .map(|kind| {
            let path = format!("{}badge/{}/{kind}", ui.base(), urlencode(name));
            context! { kind, svg => format!("{path}.svg{query}"), shields => format!("{path}.shields{query}") }
        })
        .collect();
    context! { links, public, token => token.is_some() }
}

fn urlencode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// `GET /checks/{name}/results.csv`: the last 7 days of results.
pub(super) async fn results_csv(State(ui): State<Arc<Ui>>, Path(name): Path<String>) -> Response {
    let Some(checks) = ui.services.checks() else {
        return (StatusCode::NOT_FOUND, "no checks are configured\n").into_response();
    };
    let Some((id, _)) = checks.view_of(&name) else {
        return (StatusCode::NOT_FOUND, format!("there is no check {name:?}\n")).into_response();
    };
    let now = checks.now();
    let results = match checks.store().results(id, now - Duration::days(7), now + Duration::seconds(1), 100_000).await {
        Ok(results) => results,
        Err(err) => return storage(err).into_response(),
    };
    let quote = |text: &str| format!("\"{}\"", text.replace('"', "\"\""));
    // `location` is the agent's location that measured the result, empty
    // for checkit's own; last, so the columns before it keep their places.
    let mut csv = String::from("at,duration_seconds,success,maintenance,phase,reason,location\n");
    for result in results {
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{}",
            result.at.to_rfc3339(),
            result.duration_seconds.map(|seconds| seconds.to_string()).unwrap_or_default(),
            result.success,
            result.maintenance,
            quote(result.phase.as_deref().unwrap_or_default()),
            quote(result.reason.as_deref().unwrap_or_default()),
            quote(result.location.as_deref().unwrap_or_default())
        );
    }
    let disposition = format!("attachment; filename=\"{}-results.csv\"", name.replace(['"', '\\', '/'], "_"));
    let mut response = csv.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        response.headers_mut().insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// `GET /ui/checks`: every check, filtered and sorted.
pub(super) async fn list(
    State(ui): State<Arc<Ui>>,
    visitor: Visitor,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    render_list(&ui, &visitor, &params, None)
}

fn render_list(ui: &Ui, visitor: &Visitor, params: &HashMap<String, String>, flash: Option<String>) -> Response {
    let back = format!("{}ui/", ui.base());
    let Some(checks) = ui.services.checks() else {
        return ui.error(visitor, StatusCode::NOT_FOUND, "No checks are configured (no checks: block).", &back);
    };
    let query = params.get("q").map(|q| q.trim().to_lowercase()).unwrap_or_default();
    let state_filter = params.get("state").cloned().unwrap_or_default();
    let sort = params.get("sort").cloned().unwrap_or_else(|| "name".into());
    if !["name", "state", "uptime"].contains(&sort.as_str()) {
        return ui.error(
            visitor,
            StatusCode::BAD_REQUEST,
            &format!("unknown sort {sort:?}: use name, state or uptime"),
            &back,
        );
    }
    let known_state = |word: &str| {
        CheckState::ALL.iter().any(|state| state.as_str() == word) || super::heartbeat::STATUSES.contains(&word)
    };
    if !state_filter.is_empty() && !known_state(&state_filter) {
        return ui.error(visitor, StatusCode::BAD_REQUEST, &format!("unknown state {state_filter:?}"), &back);
    }
    let now = checks.now();
    let mut views: Vec<View> = checks
        .views()
        .into_iter()
        .map(|(_, view)| view)
        .filter(|view| {
            state_filter.is_empty()
                || view.state.as_str() == state_filter
                || super::heartbeat::state_word(view) == state_filter
        })
        .filter(|view| {
            query.is_empty()
                || view.check.name.to_lowercase().contains(&query)
                || view.check.target.to_lowercase().contains(&query)
                || view.check.labels.values().any(|value| value.to_lowercase().contains(&query))
        })
        .collect();
    let rank = |state: CheckState| CheckState::ALL.iter().position(|known| *known == state).unwrap_or(0);
    match sort.as_str() {
        "state" => views.sort_by_key(|view| {
            (std::cmp::Reverse(view.state == CheckState::Down), rank(view.state), view.check.name.clone())
        }),
        "uptime" => views.sort_by(|a, b| {
            a.uptime[0].unwrap_or(2.0).total_cmp(&b.uptime[0].unwrap_or(2.0)).then(a.check.name.cmp(&b.check.name))
        }),
        _ => views.sort_by(|a, b| a.check.name.cmp(&b.check.name)),
    }
    let rows: Vec<_> = views
        .iter()
        .map(|view| {
            context! {
                name => &view.check.name,
                url => format!("{}checks/{}", ui.base(), urlencode(&view.check.name)),
                kind => view.check.kind.as_str(),
                target => &view.check.target,
                module => &view.check.module,
                state => super::heartbeat::state_word(view),
                state_text => super::heartbeat::status_text(view).unwrap_or_else(|| state_text(view.state, failing(view))),
                paused => view.paused,
                uptime => view.uptime[0].map_or_else(|| "no data".to_string(), badge::format_percent),
                last => view.last.as_ref().map(|last| relative_text(last.at, now)),
                reason => view.last.as_ref().and_then(|last| last.failure.as_ref()).map(|(phase, reason)| format!("{phase}: {reason}")),
            }
        })
        .collect();
    let states: Vec<&str> =
        CheckState::ALL.iter().map(|state| state.as_str()).chain(super::heartbeat::STATUSES).collect();
    let page = context! { rows, states, q => params.get("q").cloned().unwrap_or_default(), state => state_filter, sort, flash };
    ui.page(StatusCode::OK, "checks.html", visitor, "checks", "Checks", page)
}

/// A pause or resume form.
#[derive(Debug, Deserialize)]
pub(super) struct PauseForm {
    #[serde(default)]
    csrf: String,
    /// `pause` or `resume`.
    action: String,
    /// One check, or empty for every check.
    #[serde(default)]
    name: String,
}

/// `POST /ui/checks/pause`.
pub(super) async fn pause(State(ui): State<Arc<Ui>>, post: Posted<Form<PauseForm>>) -> Response {
    let back = format!("{}ui/checks", ui.base());
    if let Some(page) = post.refusal(&ui, &post.body.csrf, &back) {
        return page;
    }
    let (visitor, Form(form)) = (post.visitor, post.body);
    let Some(checks) = ui.services.checks() else {
        return ui.error(&visitor, StatusCode::NOT_FOUND, "No checks are configured.", &back);
    };
    let paused = match form.action.as_str() {
        "pause" => true,
        "resume" => false,
        other => return ui.error(&visitor, StatusCode::BAD_REQUEST, &format!("unknown action {other:?}"), &back),
    };
    let names = (!form.name.is_empty()).then(|| vec![form.name.clone()]);
    if let Some(name) = names.as_ref().and_then(|names| names.first()) {
        if checks.view_of(name).is_none() {
            return ui.error(&visitor, StatusCode::NOT_FOUND, &format!("There is no check {name:?}."), &back);
        }
    }
    match checks.set_paused(names.as_deref(), paused).await {
        Ok(count) => {
            let what = if form.name.is_empty() { format!("{count} checks") } else { form.name.clone() };
            let flash = format!("{} {what}.", if paused { "Paused" } else { "Resumed" });
            tracing::info!(user = visitor.user.as_deref().unwrap_or("-"), action = form.action, checks = %what, "Checks paused or resumed from the UI");
            render_list(&ui, &visitor, &HashMap::new(), Some(flash))
        }
        Err(err) => {
            let (status, message) = storage(err);
            ui.error(&visitor, status, &message, &back)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn incident(from: DateTime<Utc>, to: Option<DateTime<Utc>>) -> Incident {
        Incident {
            id: None,
            started_at: from,
            ended_at: to,
            phase: "connect".into(),
            reason: "refused".into(),
            notified_at: None,
        }
    }

    #[test]
    fn days_carry_their_counts_and_the_incidents_that_overlap_them() {
        let now = Utc.with_ymd_and_hms(2026, 12, 6, 12, 0, 0).unwrap();
        let today = now.date_naive();
        let midnight = |back: i64| (today - Duration::days(back)).and_hms_opt(0, 0, 0).unwrap().and_utc();
        let counts = [
            DayCount { start: midnight(95), runs: 10, successes: 0, maintenance_runs: 0 },
            DayCount { start: midnight(2), runs: 100, successes: 75, maintenance_runs: 0 },
            DayCount { start: midnight(1), runs: 0, successes: 0, maintenance_runs: 5 },
            DayCount { start: midnight(0), runs: 10, successes: 10, maintenance_runs: 0 },
        ];
        // Two days ago 22:00 to yesterday 02:00, a long-closed one before
        // the 90 days, and one open since 11:00 today.
        let across = incident(midnight(2) + Duration::hours(22), Some(midnight(1) + Duration::hours(2)));
        let old = incident(midnight(120), Some(midnight(119)));
        let open = incident(midnight(0) + Duration::hours(11), None);
        let days = days_of(&counts, &[&across, &old, &open], today, now);
        assert_eq!(days.len(), 90);
        assert_eq!(days[0].date, today - Duration::days(89));
        assert!(days[..87].iter().all(|day| day.uptime.is_none() && day.incidents == 0), "the old day is left out");
        assert_eq!((days[87].uptime, days[87].incidents, days[87].downtime_seconds), (Some(0.75), 1, 2 * 3600));
        assert_eq!((days[88].uptime, days[88].maintenance, days[88].incidents), (None, true, 1));
        assert_eq!(days[88].downtime_seconds, 2 * 3600);
        assert_eq!((days[89].uptime, days[89].incidents, days[89].downtime_seconds), (Some(1.0), 1, 3600));
    }
}
