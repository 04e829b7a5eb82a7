//! Regular reports: per contact, for each period of `bridge.reports`, how the
//! checks did — uptime against the period before, incidents, the slowest
//! checks, certificates and domains about to expire — and what checkit
//! delivered to the contact.
//!
//! The scheduler ([`Reports::task`], spawned by `app`) wakes when the next
//! report is due (on the bridge's clock) and once a minute; for every report
//! it takes the latest period whose slot has passed and, for each contact not
//! yet sent that period, gathers the figures and commits the report through
//! [`crate::bridge::report::Desk::commit`]: one notification with the dedup
//! key `report:<contact>:<report>:<period>`, so a period goes out once across
//! restarts and replicas, and a period whose slot passed while checkit was
//! down goes out late, once (only the latest such period). A report newly
//! added to the config starts with its next slot.
//!
//! `GET /api/v1/reports/preview` renders a report for any contact and period
//! without sending it.

mod gather;

use crate::bridge::channels::ChannelKind;
use crate::bridge::report::{Desk, ReportConfig, key};
use crate::bridge::store::StoreError;
use crate::bridge::submit::Submitted;
use crate::checks::Checks;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Deserialize;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often due reports are looked for besides the next slot (reloads,
/// storage errors, the other replica's commits).
const RECHECK: Duration = Duration::from_secs(60);
/// A report committed later than this after its slot says it is late.
const LATE_AFTER: chrono::Duration = chrono::Duration::minutes(10);

/// The report scheduler and preview.
#[derive(Clone)]
pub struct Reports {
    inner: Arc<Inner>,
}

struct Inner {
    desk: Desk,
    checks: Option<Arc<Checks>>,
    /// `only_problems` reports found clean, so they are not gathered again.
    clean: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for Reports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reports").finish_non_exhaustive()
    }
}

impl Reports {
    /// Reports over `checks` (none: reports carry only deliveries), sent through `desk`.
    pub fn new(desk: Desk, checks: Option<Arc<Checks>>) -> Reports {
        Reports { inner: Arc::new(Inner { desk, checks, clean: Mutex::new(HashSet::new()) }) }
    }

    /// The scheduler, for the composition root to spawn; ends on `shutdown`.
    pub fn task(&self, shutdown: CancellationToken) -> BoxFuture<'static, ()> {
        let inner = Arc::clone(&self.inner);
        async move {
            loop {
                let clock = inner.desk.clock();
                let next = match inner.send_due().await {
                    Ok(next) => next,
                    Err(err) => {
                        tracing::warn!(error = %err, "Cannot send due reports; retrying in a minute.");
                        None
                    }
                };
                let wake = next.unwrap_or_else(|| clock.now() + chrono::Duration::hours(1));
                tokio::select! {
                    () = clock.sleep_until(wake) => {}
                    () = tokio::time::sleep(RECHECK) => {}
                    () = shutdown.cancelled() => return,
                }
            }
        }
        .boxed()
    }

    /// Sends every report now due; returns when the next one is due.
    pub async fn send_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.inner.send_due().await
    }

    /// `GET /api/v1/reports/preview`.
    pub fn router(&self) -> axum::Router {
        axum::Router::new()
            .route("/api/v1/reports/preview", axum::routing::get(preview))
            .with_state(Arc::clone(&self.inner))
    }
}

impl Inner {
    async fn send_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let config = self.desk.config();
        let now = self.desk.clock().now();
        let mut next: Option<DateTime<Utc>> = None;
        for (name, report_config) in &config.reports {
            let Some(period) = report_config.period(None, now) else {
                continue;
            };
            next = Some(next.map_or(period.next_due, |next| next.min(period.next_due)));
            let mut sections = None;
            for contact in report_config.recipients(&config) {
                let key = key(name, &contact, &period.label);
                if self.is_clean(&key) || self.desk.was_sent(&key).await? {
                    continue;
                }
                if period.due < self.desk.since(name, &contact).await? {
                    continue;
                }
                if sections.is_none() {
                    sections = Some(gather::checks(self.checks.as_deref(), report_config, &period, now).await?);
                }
                let Some(sections) = &sections else { continue };
                let late = now - period.due > LATE_AFTER;
                let report = gather::report(&self.desk, name, report_config, &period, sections, &contact, late).await?;
                if report_config.only_problems && gather::is_clean(&report) {
                    self.mark_clean(key);
                    continue;
                }
                match self.desk.commit(report_config, &report, &contact).await {
                    Ok(Submitted::Accepted { notification_id, deliveries }) => tracing::info!(
                        report = %name, contact = %contact, period = %period.label, late, id = notification_id,
                        deliveries, "Sent a report."
                    ),
                    Ok(Submitted::Duplicate) => {
                        tracing::debug!(report = %name, contact = %contact, period = %period.label, "Report already sent.")
                    }
                    Err(err) => {
                        tracing::warn!(report = %name, contact = %contact, error = %err, "Cannot commit a report.")
                    }
                }
            }
        }
        Ok(next)
    }

    fn is_clean(&self, key: &str) -> bool {
        self.clean.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).contains(key)
    }

    fn mark_clean(&self, key: String) {
        let mut clean = self.clean.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // Bounded: a period's keys are only needed until the next period.
        if clean.len() > 10_000 {
            clean.clear();
        }
        clean.insert(key);
    }
}

/// Query of `GET /api/v1/reports/preview`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PreviewQuery {
    /// The contact (any configured contact).
    contact: String,
    /// The report; default: the first (by name) that reaches the contact, else the first.
    report: Option<String>,
    /// `2026-W49`; default: the latest period due.
    period: Option<String>,
    /// The channel to render for; default: the report's first channel of the contact, else email.
    channel: Option<String>,
    /// `json` (default), `text` or `html`.
    format: Option<String>,
}

fn bad(status: StatusCode, reason: impl Into<String>) -> Response {
    let mut reason = reason.into();
    reason.push('\n');
    (status, reason).into_response()
}

async fn preview(
    State(inner): State<Arc<Inner>>,
    query: Result<Query<PreviewQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(query) = match query {
        Ok(query) => query,
        Err(err) => return bad(StatusCode::BAD_REQUEST, err.body_text()),
    };
    let config = inner.desk.config();
    let Some(contact) = config.contacts.get(&query.contact) else {
        return bad(StatusCode::NOT_FOUND, format!("unknown contact {:?}", query.contact));
    };
    let chosen: Option<(&String, &ReportConfig)> = match &query.report {
        Some(name) => config.reports.get_key_value(name),
        None => config
            .reports
            .iter()
            .find(|(_, report)| report.recipients(&config).contains(&query.contact))
            .or_else(|| config.reports.iter().next()),
    };
    let Some((name, report_config)) = chosen else {
        return bad(StatusCode::NOT_FOUND, format!("unknown report {:?}", query.report.unwrap_or_default()));
    };
    let now = inner.desk.clock().now();
    let Some(period) = report_config.period(query.period.as_deref(), now) else {
        return bad(
            StatusCode::BAD_REQUEST,
            format!(
                "invalid period {:?} for a {} report: expected e.g. 2026-12-05, 2026-W49 or 2026-11",
                query.period.unwrap_or_default(),
                report_config.every.as_str()
            ),
        );
    };
    let channel = match query.channel.as_deref() {
        Some(text) => match crate::bridge::config::channel_kind(text) {
            Some(kind) => kind,
            None => return bad(StatusCode::BAD_REQUEST, format!("unknown channel {text:?}")),
        },
        None => report_config.channels_of(contact).first().copied().unwrap_or(ChannelKind::Email),
    };
    let storage = |err: StoreError| bad(StatusCode::SERVICE_UNAVAILABLE, format!("storage unavailable: {err}"));
    let sections = match gather::checks(inner.checks.as_deref(), report_config, &period, now).await {
        Ok(sections) => sections,
        Err(err) => return storage(err),
    };
    // A preview is never late: it is not sent.
    let report = match gather::report(&inner.desk, name, report_config, &period, &sections, &query.contact, false).await
    {
        Ok(report) => report,
        Err(err) => return storage(err),
    };
    let outgoing = match inner.desk.render(&report, &query.contact, channel) {
        Ok(outgoing) => outgoing,
        Err(err) => return bad(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot render: {err}")),
    };
    match query.format.as_deref().unwrap_or("json") {
        "text" => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], outgoing.body).into_response(),
        "html" => match outgoing.html {
            Some(html) => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response(),
            None => bad(StatusCode::BAD_REQUEST, format!("the {channel} channel has no HTML form")),
        },
        "json" => axum::Json(serde_json::json!({
            "report": name,
            "contact": query.contact,
            "period": period.label,
            "channel": channel.as_str(),
            "due": period.due,
            "sent": inner.desk.was_sent(&key(name, &query.contact, &period.label)).await.unwrap_or(false),
            "subject": outgoing.subject,
            "body": outgoing.body,
            "html": outgoing.html,
            "data": report,
        }))
        .into_response(),
        other => bad(StatusCode::BAD_REQUEST, format!("unknown format {other:?}: expected json, text or html")),
    }
}
