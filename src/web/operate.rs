//! What operators change from the UI besides pause and resume: incident
//! notes (`/ui/incidents…`: a title and Markdown updates with a status,
//! shown on status pages and in their feeds) and maintenance windows
//! (`/ui/maintenance…`: planned over some checks or all, applied by the
//! scheduler like configured windows, endable early).
//!
//! Everyone logged in reads these pages; every post goes through
//! `Csrf::verify`, which also refuses viewers.

use super::access::{Posted, Visitor};
use super::{Ui, markdown, relative_text, time_text};
use crate::checks::annotations::{AnnotationError, BODY_MAX, Planned, Update, UpdateStatus, clean_title};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Duration, NaiveDateTime, Timelike, Utc};
use minijinja::{Value, context};
use std::sync::Arc;
use strum::VariantNames;

/// How far back the incident list goes.
const INCIDENT_DAYS: i64 = 90;
/// How far ahead the maintenance list looks for configured windows.
const MAINTENANCE_AHEAD_DAYS: i64 = 14;

/// A posted form's fields, repeated keys kept (`checks=a&checks=b`).
struct Fields(Vec<(String, String)>);

impl Fields {
    fn parse(body: &[u8]) -> Fields {
        Fields(url::form_urlencoded::parse(body).into_owned().collect())
    }

    fn get(&self, name: &str) -> &str {
        self.0.iter().find(|(key, _)| key == name).map_or("", |(_, value)| value.as_str())
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.0.iter().filter(|(key, value)| key == name && !value.is_empty()).map(|(_, value)| value.clone()).collect()
    }
}

/// A form post to these pages: its fields and the checks, or the page refusing it.
enum Post<'a> {
    Accepted(Fields, &'a crate::checks::Checks),
    Refused(Response),
}

/// Accepts `post` only from an operator, from this site, with a good token,
/// when checks are configured.
fn accept<'a>(ui: &'a Ui, post: &Posted<Bytes>, back: &str) -> Post<'a> {
    let fields = Fields::parse(&post.body);
    if let Some(page) = post.refusal(ui, fields.get("csrf"), back) {
        return Post::Refused(page);
    }
    match ui.services.checks() {
        Some(checks) => Post::Accepted(fields, checks),
        None => Post::Refused(ui.error(&post.visitor, StatusCode::NOT_FOUND, "No checks are configured.", back)),
    }
}

fn annotation_error(ui: &Ui, visitor: &Visitor, err: &AnnotationError, back: &str) -> Response {
    let status = match err {
        AnnotationError::Invalid(_) => StatusCode::BAD_REQUEST,
        AnnotationError::NotFound(_) => StatusCode::NOT_FOUND,
        AnnotationError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    if let AnnotationError::Store(store) = err {
        tracing::error!(error = %store, "Cannot write the checks store");
    }
    ui.error(visitor, status, &err.to_string(), back)
}

/// One update, for templates.
pub(super) fn update_context(update: &Update) -> Value {
    context! {
        status => update.status.as_str(),
        at => update.at.to_rfc3339(),
        at_text => time_text(update.at),
        author => update.author.clone(),
        html => markdown::to_html(&update.body),
    }
}

/// `GET /ui/incidents`: the incidents of the last 90 days, newest first.
pub(super) async fn incidents(State(ui): State<Arc<Ui>>, visitor: Visitor) -> Response {
    let back = format!("{}ui/", ui.base());
    let Some(checks) = ui.services.checks() else {
        return ui.error(&visitor, StatusCode::NOT_FOUND, "No checks are configured (no checks: block).", &back);
    };
    let now = checks.now();
    let store = checks.store();
    let listed = match store.incidents_of_all(now - Duration::days(INCIDENT_DAYS), now, 500).await {
        Ok(listed) => listed,
        Err(err) => return annotation_error(&ui, &visitor, &AnnotationError::Store(err), &back),
    };
    let notes = match store.notes(listed.iter().filter_map(|(_, incident)| incident.id).collect()).await {
        Ok(notes) => notes,
        Err(err) => return annotation_error(&ui, &visitor, &AnnotationError::Store(err), &back),
    };
    let names: std::collections::HashMap<i64, String> =
        checks.views().into_iter().map(|(id, view)| (id, view.check.name.clone())).collect();
    let rows: Vec<Value> = listed
        .iter()
        .map(|(check_id, incident)| {
            let id = incident.id.unwrap_or(0);
            let note = notes.get(&id).cloned().unwrap_or_default();
            let check = names.get(check_id).cloned().unwrap_or_else(|| format!("check {check_id} (removed)"));
            context! {
                id,
                check,
                title => note.title.clone().unwrap_or_else(|| super::status::derived_title(&names.get(check_id).cloned().unwrap_or_default(), incident)),
                status => note.status(incident).as_str(),
                updates => note.updates.len(),
                started_at => incident.started_at.to_rfc3339(),
                started_text => time_text(incident.started_at),
                open => incident.ended_at.is_none(),
                duration => super::svg::format_duration(u64::try_from(incident.duration(now).num_seconds()).unwrap_or(0)),
            }
        })
        .collect();
    let page = context! { rows, days => INCIDENT_DAYS };
    ui.page(StatusCode::OK, "incidents.html", &visitor, "incidents", "Incidents", page)
}

/// `GET /ui/incidents/{id}`.
pub(super) async fn incident(State(ui): State<Arc<Ui>>, visitor: Visitor, Path(id): Path<i64>) -> Response {
    render_incident(&ui, &visitor, id, None).await
}

async fn render_incident(ui: &Ui, visitor: &Visitor, id: i64, flash: Option<String>) -> Response {
    let back = format!("{}ui/incidents", ui.base());
    let Some(checks) = ui.services.checks() else {
        return ui.error(visitor, StatusCode::NOT_FOUND, "No checks are configured.", &back);
    };
    let store = checks.store();
    let (check_id, incident) = match store.incident_by_id(id).await {
        Ok(Some(found)) => found,
        Ok(None) => return ui.error(visitor, StatusCode::NOT_FOUND, &format!("There is no incident {id}."), &back),
        Err(err) => return annotation_error(ui, visitor, &AnnotationError::Store(err), &back),
    };
    let note = match store.notes(vec![id]).await {
        Ok(mut notes) => notes.remove(&id).unwrap_or_default(),
        Err(err) => return annotation_error(ui, visitor, &AnnotationError::Store(err), &back),
    };
    let check =
        checks.views().into_iter().find(|(known, _)| *known == check_id).map(|(_, view)| view.check.name.clone());
    let now = checks.now();
    let derived = super::status::derived_title(check.as_deref().unwrap_or("a removed check"), &incident);
    let status = note.status(&incident);
    let page = context! {
        id,
        check,
        derived,
        title => note.title.clone().unwrap_or_default(),
        shown_title => note.title.clone().unwrap_or_else(|| derived.clone()),
        status => status.as_str(),
        open => incident.ended_at.is_none(),
        started_text => time_text(incident.started_at),
        ended_text => incident.ended_at.map(time_text),
        duration => super::svg::format_duration(u64::try_from(incident.duration(now).num_seconds()).unwrap_or(0)),
        updates => note.updates.iter().map(update_context).collect::<Vec<_>>(),
        statuses => UpdateStatus::VARIANTS,
        next_status => if incident.ended_at.is_some() { "resolved" } else { status.as_str() },
        body_max => BODY_MAX,
        flash,
    };
    ui.page(StatusCode::OK, "incident.html", visitor, "incidents", &format!("Incident {id}"), page)
}

/// `POST /ui/incidents/{id}`: sets the title (empty: the derived one) and,
/// when a text is given, adds an update with the chosen status.
pub(super) async fn annotate(State(ui): State<Arc<Ui>>, Path(id): Path<i64>, post: Posted<Bytes>) -> Response {
    let back = format!("{}ui/incidents/{id}", ui.base());
    let (fields, checks) = match accept(&ui, &post, &back) {
        Post::Accepted(fields, checks) => (fields, checks),
        Post::Refused(page) => return page,
    };
    let visitor = post.visitor;
    let title = match fields.get("title").trim() {
        "" => None,
        title => match clean_title(title) {
            Ok(title) => Some(title),
            Err(err) => return annotation_error(&ui, &visitor, &err, &back),
        },
    };
    let text = fields.get("body").trim();
    let update = if text.is_empty() {
        None
    } else {
        if text.len() > BODY_MAX {
            let err = AnnotationError::Invalid(format!("an update is at most {BODY_MAX} bytes"));
            return annotation_error(&ui, &visitor, &err, &back);
        }
        let Some(status) = fields.get("status").parse::<UpdateStatus>().ok() else {
            let err = AnnotationError::Invalid(format!(
                "unknown status {:?}: use investigating, identified, monitoring or resolved",
                fields.get("status")
            ));
            return annotation_error(&ui, &visitor, &err, &back);
        };
        Some(Update { at: checks.now(), status, body: text.to_string(), author: visitor.user.clone() })
    };
    let added = update.as_ref().map(|update| update.status.as_str());
    if let Err(err) = checks.store().annotate(id, title, update).await {
        return annotation_error(&ui, &visitor, &err, &back);
    }
    tracing::info!(
        user = visitor.user.as_deref().unwrap_or("-"),
        incident = id,
        update = added.unwrap_or("-"),
        "Incident note edited from the UI"
    );
    let flash = match added {
        Some(status) => format!("Update posted ({status})."),
        None => "Title saved.".to_string(),
    };
    render_incident(&ui, &visitor, id, Some(flash)).await
}

/// `GET /ui/maintenance`: active and coming windows, and the form to plan one.
pub(super) async fn maintenance(State(ui): State<Arc<Ui>>, visitor: Visitor) -> Response {
    render_maintenance(&ui, &visitor, StatusCode::OK, None)
}

fn render_maintenance(ui: &Ui, visitor: &Visitor, status: StatusCode, flash: Option<String>) -> Response {
    let back = format!("{}ui/", ui.base());
    let Some(checks) = ui.services.checks() else {
        return ui.error(visitor, StatusCode::NOT_FOUND, "No checks are configured (no checks: block).", &back);
    };
    let now = checks.now();
    let windows: Vec<Value> = checks
        .maintenance_between(now, now + Duration::days(MAINTENANCE_AHEAD_DAYS))
        .into_iter()
        .map(|window| {
            context! {
                title => window.title,
                active => window.start <= now,
                start_text => time_text(window.start),
                end_text => time_text(window.end),
                when => if window.start <= now { format!("ends {}", relative_text(window.end, now)) } else { format!("starts {}", relative_text(window.start, now)) },
                checks => window.checks.join(", "),
                planned_id => window.planned.as_ref().map(|planned| planned.id),
                created_by => window.planned.as_ref().and_then(|planned| planned.created_by.clone()),
            }
        })
        .collect();
    let mut names: Vec<String> = checks.views().into_iter().map(|(_, view)| view.check.name.clone()).collect();
    names.sort();
    // The form proposes the next quarter hour, for an hour.
    let start = now + Duration::minutes(15 - i64::from(now.minute() % 15));
    let start = start.with_second(0).unwrap_or(start);
    let page = context! {
        windows,
        names,
        start => start.format("%Y-%m-%dT%H:%M").to_string(),
        end => (start + Duration::hours(1)).format("%Y-%m-%dT%H:%M").to_string(),
        ahead => MAINTENANCE_AHEAD_DAYS,
        flash,
    };
    ui.page(status, "maintenance.html", visitor, "maintenance", "Maintenance", page)
}

/// A `datetime-local` value, read as UTC.
fn parse_local(text: &str, field: &str) -> Result<DateTime<Utc>, AnnotationError> {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S"))
        .map(|time| time.and_utc())
        .map_err(|_| {
            AnnotationError::Invalid(format!("{field} must be a date and time such as 2026-12-24T22:00 (UTC)"))
        })
}

/// `POST /ui/maintenance`: plans a window.
pub(super) async fn plan(State(ui): State<Arc<Ui>>, post: Posted<Bytes>) -> Response {
    let back = format!("{}ui/maintenance", ui.base());
    let (fields, checks) = match accept(&ui, &post, &back) {
        Post::Accepted(fields, checks) => (fields, checks),
        Post::Refused(page) => return page,
    };
    let visitor = post.visitor;
    let every = fields.get("scope") == "all";
    let chosen = fields.all("checks");
    if !every && chosen.is_empty() {
        let err = AnnotationError::Invalid("choose the checks, or every check".into());
        return annotation_error(&ui, &visitor, &err, &back);
    }
    let (start, end) = match (parse_local(fields.get("start"), "start"), parse_local(fields.get("end"), "end")) {
        (Ok(start), Ok(end)) => (start, end),
        (Err(err), _) | (_, Err(err)) => return annotation_error(&ui, &visitor, &err, &back),
    };
    let planned = Planned {
        id: 0,
        title: fields.get("title").to_string(),
        start,
        end,
        checks: if every { Vec::new() } else { chosen },
        created_by: visitor.user.clone(),
    };
    let what = if every { "every check".to_string() } else { planned.checks.join(", ") };
    match checks.plan_maintenance(planned).await {
        Ok(id) => {
            tracing::info!(user = visitor.user.as_deref().unwrap_or("-"), window = id, checks = %what, "Maintenance planned from the UI");
            let flash = format!("Maintenance planned for {what}, {} to {}.", time_text(start), time_text(end));
            render_maintenance(&ui, &visitor, StatusCode::OK, Some(flash))
        }
        Err(err) => annotation_error(&ui, &visitor, &err, &back),
    }
}

/// `POST /ui/maintenance/{id}/end`: ends a planned window now.
pub(super) async fn end(State(ui): State<Arc<Ui>>, Path(id): Path<i64>, post: Posted<Bytes>) -> Response {
    let back = format!("{}ui/maintenance", ui.base());
    let checks = match accept(&ui, &post, &back) {
        Post::Accepted(_, checks) => checks,
        Post::Refused(page) => return page,
    };
    let visitor = post.visitor;
    match checks.end_maintenance(id).await {
        Ok(()) => {
            tracing::info!(user = visitor.user.as_deref().unwrap_or("-"), window = id, "Maintenance ended from the UI");
            render_maintenance(&ui, &visitor, StatusCode::OK, Some("Maintenance ended.".into()))
        }
        Err(err) => annotation_error(&ui, &visitor, &err, &back),
    }
}
