//! Acknowledgement: "mine" from the message itself, as Alertmanager silences.
//!
//! Every firing notification carries a link `/ack/<token>`: the notification
//! ID, the contact and an expiry, signed with HMAC-SHA256 under
//! `acknowledgement.key_file`. `GET` shows a confirmation page (mail scanners
//! and link previews fetch links; they must not acknowledge); `POST` creates a
//! silence matching the group's alerts through `POST /api/v2/silences` on
//! every configured Alertmanager, author = contact, records the
//! acknowledgement, and tells the other contacts who were told about the
//! alerts with one short message.
//!
//! A poller reads `GET /api/v2/alerts` of every Alertmanager: while an
//! acknowledged alert still fires, its silences are extended; once none of
//! them is active on any Alertmanager, the silences are expired and a resolved
//! notification enters the pipeline, since Alertmanager sends nothing for
//! silenced alerts (alertmanager#226).

use super::Shared;
use super::intake::refuse_unauthorized;
use super::payload::{Encoded, Message, Notification, Status};
use super::store::{NewNotification, SqlParam, SqlValue, StoreError, column};
use crate::config::Problems;
use crate::config::types::GoDuration;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The `bridge.acknowledgement:` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AckConfig {
    /// File holding the HMAC key that signs acknowledge links (keep it
    /// secret; at least 32 bytes; changing it voids every link sent).
    pub key_file: String,
    /// checkit's address as people reach it; links are `<external_url>/ack/…`.
    pub external_url: String,
    /// How long a link works after its message was sent.
    pub link_ttl: GoDuration,
    /// Each silence's length; extended while the alerts still fire.
    pub silence_duration: GoDuration,
    /// Alertmanager base URLs (`http://alertmanager:9093`); silences go to each.
    pub alertmanagers: Vec<String>,
    /// How often Alertmanagers are asked which acknowledged alerts still fire.
    pub poll_interval: GoDuration,
}

impl Default for AckConfig {
    fn default() -> Self {
        AckConfig {
            key_file: String::new(),
            external_url: String::new(),
            link_ttl: GoDuration(Duration::from_secs(24 * 3600)),
            silence_duration: GoDuration(Duration::from_secs(3600)),
            alertmanagers: Vec::new(),
            poll_interval: GoDuration(Duration::from_secs(30)),
        }
    }
}

/// Shortest key accepted, in bytes.
const MIN_KEY_BYTES: usize = 32;
/// Bound of one Alertmanager request.
const AM_TIMEOUT: Duration = Duration::from_secs(10);

impl AckConfig {
    /// Records every problem below `path`.
    pub fn validate(&self, path: &str, problems: &mut Problems) {
        match std::fs::read(&self.key_file) {
            Ok(key) if key.trim_ascii().len() < MIN_KEY_BYTES => {
                problems.push(format!("{path}.key_file"), format!("key must be at least {MIN_KEY_BYTES} bytes"))
            }
            Ok(_) => {}
            Err(err) => problems.push(format!("{path}.key_file"), format!("cannot read {:?}: {err}", self.key_file)),
        }
        if url::Url::parse(&self.external_url).map(|url| url.scheme().starts_with("http")) != Ok(true) {
            problems.push(format!("{path}.external_url"), "must be an http(s) URL");
        }
        if self.alertmanagers.is_empty() {
            problems.push(format!("{path}.alertmanagers"), "list at least one Alertmanager URL");
        }
        for (index, am) in self.alertmanagers.iter().enumerate() {
            if url::Url::parse(am).map(|url| url.scheme().starts_with("http")) != Ok(true) {
                problems.push(format!("{path}.alertmanagers[{index}]"), "must be an http(s) URL");
            }
        }
        if self.link_ttl.get().is_zero() {
            problems.push(format!("{path}.link_ttl"), "must be greater than 0s");
        }
        if self.silence_duration.get() < Duration::from_secs(60) {
            problems.push(format!("{path}.silence_duration"), "must be at least 1m");
        }
        if self.poll_interval.get() < Duration::from_secs(1) {
            problems.push(format!("{path}.poll_interval"), "must be at least 1s");
        }
    }
}

/// The signing key and settings, built at start and on reload.
#[derive(Clone)]
pub struct Acks {
    config: AckConfig,
    key: ring::hmac::Key,
}

impl std::fmt::Debug for Acks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acks").field("config", &self.config).finish_non_exhaustive()
    }
}

/// Why a link is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LinkError {
    /// Malformed or not signed by us.
    Invalid,
    /// Signed by us but past its expiry.
    Expired(DateTime<Utc>),
}

/// What a valid link names.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Link {
    notification_id: i64,
    contact: String,
}

impl Acks {
    /// Reads the key file.
    pub fn load(config: &AckConfig) -> Result<Acks, String> {
        let key = std::fs::read(&config.key_file)
            .map_err(|err| format!("bridge.acknowledgement.key_file: cannot read {:?}: {err}", config.key_file))?;
        Ok(Acks { config: config.clone(), key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.trim_ascii()) })
    }

    /// The acknowledge link of `notification_id` for `contact`, valid for
    /// `link_ttl` from `now`.
    pub fn link(&self, notification_id: i64, contact: &str, now: DateTime<Utc>) -> String {
        let ttl = chrono::Duration::from_std(self.config.link_ttl.get()).unwrap_or(chrono::Duration::days(1));
        let expires = (now + ttl).timestamp();
        let payload = format!("{notification_id}.{}.{expires}", URL_SAFE_NO_PAD.encode(contact));
        let signature = URL_SAFE_NO_PAD.encode(ring::hmac::sign(&self.key, payload.as_bytes()).as_ref());
        format!("{}/ack/{payload}.{signature}", self.config.external_url.trim_end_matches('/'))
    }

    fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Link, LinkError> {
        let (payload, signature) = token.rsplit_once('.').ok_or(LinkError::Invalid)?;
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| LinkError::Invalid)?;
        ring::hmac::verify(&self.key, payload.as_bytes(), &signature).map_err(|_| LinkError::Invalid)?;
        let mut parts = payload.splitn(3, '.');
        let notification_id = parts.next().and_then(|id| id.parse().ok()).ok_or(LinkError::Invalid)?;
        let contact = parts
            .next()
            .and_then(|contact| URL_SAFE_NO_PAD.decode(contact).ok())
            .and_then(|contact| String::from_utf8(contact).ok())
            .ok_or(LinkError::Invalid)?;
        let expires = parts
            .next()
            .and_then(|expires| expires.parse::<i64>().ok())
            .and_then(|expires| DateTime::from_timestamp(expires, 0))
            .ok_or(LinkError::Invalid)?;
        if expires <= now {
            return Err(LinkError::Expired(expires));
        }
        Ok(Link { notification_id, contact })
    }
}

/// The acknowledge link for one delivery, when acknowledgement is configured
/// and the row is one firing Alertmanager notification (not a message, a
/// catch-up or a summary).
pub(super) fn link_for(
    runtime: &super::Runtime,
    row: &super::store::OutboxRow,
    content: &super::plan::Content,
    contact: &str,
    now: DateTime<Utc>,
) -> Option<String> {
    let acks = runtime.acks.as_ref()?;
    let firing = content.alerts.iter().any(|alert| alert.status == Status::Firing);
    (row.mode == super::store::Mode::Notification && content.message.is_none() && firing)
        .then(|| acks.link(row.notification_id, contact, now))
}

/// One acknowledgement, as listed by `GET /api/v1/acknowledgements`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Acknowledgement {
    /// ID.
    pub id: i64,
    /// The notification whose link was used.
    pub notification_id: i64,
    /// Its Alertmanager group.
    pub group_key: String,
    /// Who acknowledged.
    pub contact: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// The acknowledged alerts.
    pub fingerprints: Vec<String>,
    /// The silences' matchers.
    pub matchers: serde_json::Value,
    /// `[{alertmanager, id}]`.
    pub silences: Vec<SilenceRef>,
    /// When the silences end unless extended.
    pub silenced_until: DateTime<Utc>,
    /// When the alerts were seen resolved (the silences were then expired).
    pub resolved_at: Option<DateTime<Utc>>,
}

/// A silence on one Alertmanager.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SilenceRef {
    /// The Alertmanager's base URL.
    pub alertmanager: String,
    /// Its silence ID.
    pub id: String,
}

const ACK_COLUMNS: &str = "id, notification_id, group_key, contact, created_at, fingerprints, matchers, \
     silences, silenced_until, resolved_at";

fn ack_from_row(row: &[SqlValue]) -> Acknowledgement {
    let text = |index: usize| row.get(index).and_then(SqlValue::text).unwrap_or_default().to_string();
    let int = |index: usize| column(row, index).int();
    Acknowledgement {
        id: int(0),
        notification_id: int(1),
        group_key: text(2),
        contact: text(3),
        created_at: super::store::from_ms(int(4)),
        fingerprints: serde_json::from_str(&text(5)).unwrap_or_default(),
        matchers: serde_json::from_str(&text(6)).unwrap_or_default(),
        silences: serde_json::from_str(&text(7)).unwrap_or_default(),
        silenced_until: super::store::from_ms(int(8)),
        resolved_at: match row.get(9) {
            Some(SqlValue::Int(ms)) => Some(super::store::from_ms(*ms)),
            _ => None,
        },
    }
}

async fn active_acks(shared: &Shared, group_key: Option<&str>) -> Result<Vec<Acknowledgement>, StoreError> {
    let (filter, params) = match group_key {
        Some(group_key) => (" AND group_key = $1", vec![SqlParam::Text(group_key.to_string())]),
        None => ("", Vec::new()),
    };
    let rows = shared
        .store
        .select(
            format!("SELECT {ACK_COLUMNS} FROM acknowledgements WHERE resolved_at IS NULL{filter} ORDER BY id"),
            params,
        )
        .await?;
    Ok(rows.iter().map(|row| ack_from_row(row)).collect())
}

/// Silence matchers for `alerts`: every label they share, equal where all
/// values agree and as an anchored alternation where they differ (as
/// karma's acknowledgements do).
fn matchers(alerts: &[&super::payload::Alert]) -> Vec<serde_json::Value> {
    let Some(first) = alerts.first() else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for name in first.labels.keys() {
        let mut values: Vec<&str> = Vec::new();
        // Beside the list, so a group of 100,000 alerts stays linear.
        let mut seen = std::collections::HashSet::new();
        for alert in alerts {
            match alert.labels.get(name) {
                Some(value) => {
                    if seen.insert(value.as_str()) {
                        values.push(value);
                    }
                }
                None => {
                    values.clear();
                    break;
                }
            }
        }
        match values.as_slice() {
            [] => {}
            [value] => found.push(serde_json::json!({"name": name, "value": value, "isRegex": false, "isEqual": true})),
            many => {
                let alternation: Vec<String> = many.iter().map(|value| regex::escape(value)).collect();
                found.push(serde_json::json!({
                    "name": name, "value": format!("({})", alternation.join("|")), "isRegex": true, "isEqual": true
                }));
            }
        }
    }
    found
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder().timeout(AM_TIMEOUT).build().unwrap_or_default()
}

/// Creates (or, with `id`, updates) a silence; returns its ID.
async fn post_silence(
    client: &reqwest::Client,
    alertmanager: &str,
    id: Option<&str>,
    matchers: &serde_json::Value,
    contact: &str,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
) -> Result<String, String> {
    let mut body = serde_json::json!({
        "matchers": matchers,
        "startsAt": starts_at.to_rfc3339(),
        "endsAt": ends_at.to_rfc3339(),
        "createdBy": contact,
        "comment": format!("Acknowledged by {contact} in checkit; extended while the alerts fire, expired when they resolve."),
    });
    if let Some(id) = id {
        body["id"] = id.into();
    }
    let url = format!("{}/api/v2/silences", alertmanager.trim_end_matches('/'));
    let response = client.post(&url).json(&body).send().await.map_err(|err| format!("{url}: {err}"))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if !status.is_success() {
        return Err(format!("{url}: {status} {}", text.trim()));
    }
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|answer| answer["silenceID"].as_str().map(str::to_string))
        .ok_or_else(|| format!("{url}: answer without silenceID"))
}

/// A page for people (the link is opened in a browser).
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>{title}</title></head><body style=\"font-family: sans-serif; max-width: 40em; margin: 2em auto;\">\
         <h1 style=\"font-size: 1.4em;\">{title}</h1>{body}</body></html>",
        title = escape(title)
    );
    (status, Html(html)).into_response()
}

/// HTML-escapes text (five characters; no template engine needed for two pages).
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

fn refused(error: LinkError) -> Response {
    match error {
        LinkError::Invalid => page(
            StatusCode::BAD_REQUEST,
            "This acknowledge link is not valid",
            "<p>The link was changed or cut off. Open the link from the message again, or acknowledge in Alertmanager.</p>",
        ),
        LinkError::Expired(at) => page(
            StatusCode::GONE,
            "This acknowledge link has expired",
            &format!(
                "<p>It expired at {}. Acknowledge from a newer message, or in Alertmanager.</p>",
                escape(&at.to_rfc3339())
            ),
        ),
    }
}

/// The title of a group for people: its group labels, else its alert names.
fn group_title(notification: &Notification) -> String {
    if !notification.group_labels.is_empty() {
        return notification.group_labels.values().cloned().collect::<Vec<_>>().join(" ");
    }
    let mut names: Vec<&str> = notification.alerts.iter().map(|alert| alert.name()).collect();
    names.dedup();
    names.join(", ")
}

/// The ack routes: `GET`/`POST /ack/{token}` (the signature is the
/// credential) and `GET /api/v1/acknowledgements` (behind the bridge's).
pub(super) fn router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new()
        .route("/ack/{token}", axum::routing::get(confirm).post(acknowledge))
        .route("/api/v1/acknowledgements", axum::routing::get(list))
        .with_state(shared)
}

fn not_configured() -> Response {
    page(StatusCode::NOT_FOUND, "Acknowledgement is not configured", "<p>Set <code>bridge.acknowledgement</code>.</p>")
}

/// The link `token` stands for, or the page saying why it cannot be used.
fn verified(shared: &Shared, token: &str) -> Result<Link, Box<Response>> {
    let Some(acks) = shared.runtime().acks.clone() else {
        return Err(Box::new(not_configured()));
    };
    acks.verify(token, shared.clock.now()).map_err(|err| Box::new(refused(err)))
}

async fn confirm(State(shared): State<Arc<Shared>>, Path(token): Path<String>) -> Response {
    let link = match verified(&shared, &token) {
        Ok(link) => link,
        Err(page) => return *page,
    };
    let title = match shared.store.notifications(vec![link.notification_id]).await {
        Ok(found) => found.first().map(|stored| group_title(&stored.notification)).unwrap_or_default(),
        Err(err) => return storage_page(err),
    };
    page(
        StatusCode::OK,
        &format!("Acknowledge {title}?"),
        &format!(
            "<p>You, <strong>{contact}</strong>, take this alert. Its notifications stop (a silence in Alertmanager) \
             until it resolves; the others who were told get a note, and everyone still hears when it resolves.</p>\
             <form method=\"post\"><button type=\"submit\" style=\"font-size: 1.2em; padding: .4em 1.2em;\">\
             Acknowledge</button></form>",
            contact = escape(&link.contact)
        ),
    )
}

fn storage_page(err: StoreError) -> Response {
    tracing::error!(error = %err, "Cannot read or record an acknowledgement.");
    page(StatusCode::SERVICE_UNAVAILABLE, "Try again in a moment", "<p>checkit's storage is unavailable.</p>")
}

async fn acknowledge(State(shared): State<Arc<Shared>>, Path(token): Path<String>) -> Response {
    let link = match verified(&shared, &token) {
        Ok(link) => link,
        Err(page) => return *page,
    };
    match acknowledge_group(&shared, link.notification_id, &link.contact).await {
        Ok(outcome) => outcome_page(&outcome),
        Err(AckError::NotConfigured) => not_configured(),
        Err(AckError::Storage(err)) => storage_page(err),
    }
}

/// What acknowledging one notification's alert group did.
#[derive(Debug, Clone, PartialEq)]
pub enum AckOutcome {
    /// Recorded; silenced on `silences` Alertmanagers until `until` (none
    /// for checkit's own checks, whose reminders stop instead).
    Acknowledged {
        /// The group, for people.
        title: String,
        /// Alertmanagers that accepted the silence.
        silences: usize,
        /// When the silences end unless extended.
        until: DateTime<Utc>,
        /// Alertmanagers that refused, with why.
        failures: Vec<String>,
        /// The group is one of checkit's own checks.
        own_check: bool,
    },
    /// Someone acknowledged the group before.
    Already {
        /// The group.
        title: String,
        /// Who.
        by: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// None of its alerts fires any more.
    Resolved {
        /// The group.
        title: String,
    },
    /// The notification is no longer kept.
    Gone,
    /// No Alertmanager accepted the silence; nothing was recorded.
    Refused {
        /// Why, per Alertmanager.
        failures: Vec<String>,
    },
}

/// Why acknowledging could not be tried.
#[derive(Debug, thiserror::Error)]
pub enum AckError {
    /// `bridge.acknowledgement` is not set.
    #[error("acknowledgement is not configured")]
    NotConfigured,
    /// The store failed.
    #[error("storage unavailable: {0}")]
    Storage(#[from] StoreError),
}

fn outcome_page(outcome: &AckOutcome) -> Response {
    let list = |failures: &[String]| failures.iter().map(|err| format!("<li>{}</li>", escape(err))).collect::<String>();
    match outcome {
        AckOutcome::Acknowledged { title, own_check: true, .. } => page(
            StatusCode::OK,
            &format!("Acknowledged {title}"),
            "<p>Its reminders stop until it resolves. You will hear when it resolves.</p>",
        ),
        AckOutcome::Acknowledged { title, silences, until, failures, .. } => {
            let partial = if failures.is_empty() {
                String::new()
            } else {
                format!("<p>Some Alertmanagers refused:</p><ul>{}</ul>", list(failures))
            };
            page(
                StatusCode::OK,
                &format!("Acknowledged {title}"),
                &format!(
                    "<p>Silenced on {silences} Alertmanager(s) until {}, extended while it fires. You will hear when \
                     it resolves.</p>{partial}",
                    escape(&until.to_rfc3339())
                ),
            )
        }
        AckOutcome::Already { title, by, at } => page(
            StatusCode::OK,
            &format!("{title} is already acknowledged"),
            &format!("<p>{} acknowledged it at {}.</p>", escape(by), escape(&at.to_rfc3339())),
        ),
        AckOutcome::Resolved { title } => {
            page(StatusCode::OK, &format!("{title} has resolved"), "<p>There is nothing left to acknowledge.</p>")
        }
        AckOutcome::Gone => {
            page(StatusCode::GONE, "This alert is no longer known", "<p>Its history has been deleted.</p>")
        }
        AckOutcome::Refused { failures } => page(
            StatusCode::BAD_GATEWAY,
            "Could not acknowledge",
            &format!("<p>No Alertmanager accepted the silence:</p><ul>{}</ul><p>Try again.</p>", list(failures)),
        ),
    }
}

/// Acknowledges the alert group of notification `notification_id` on behalf
/// of `actor` (a contact from a link, or an operator from the UI): silences
/// on every Alertmanager (none for checkit's own checks, whose reminders stop
/// instead), the record, and the note to the others who were told.
pub(super) async fn acknowledge_group(
    shared: &Shared,
    notification_id: i64,
    actor: &str,
) -> Result<AckOutcome, AckError> {
    let runtime = shared.runtime();
    let Some(acks) = runtime.acks.clone() else {
        return Err(AckError::NotConfigured);
    };
    let now = shared.clock.now();
    let Some(stored) = shared.store.notifications(vec![notification_id]).await?.into_iter().next() else {
        return Ok(AckOutcome::Gone);
    };
    let notification = stored.notification;
    let title = group_title(&notification);
    let group_key = format!("{}\u{1f}{}", notification.receiver, notification.group_key);
    if let Some(ack) = active_acks(shared, Some(&group_key)).await?.into_iter().next() {
        return Ok(AckOutcome::Already { title, by: ack.contact, at: ack.created_at });
    }
    let firing: Vec<&super::payload::Alert> =
        notification.alerts.iter().filter(|alert| alert.status == Status::Firing).collect();
    if firing.is_empty() {
        return Ok(AckOutcome::Resolved { title });
    }
    // checkit's own checks never reach an Alertmanager: nothing to silence,
    // and the poller leaves their resolution to the check.
    let own_check = notification.version == OWN_CHECK_VERSION;
    let matchers = serde_json::Value::Array(matchers(&firing));
    let until = now + chrono::Duration::from_std(acks.config.silence_duration.get()).unwrap_or_default();
    let client = http_client();
    let mut silences = Vec::new();
    let mut failures = Vec::new();
    let alertmanagers = if own_check { &[][..] } else { &acks.config.alertmanagers[..] };
    for alertmanager in alertmanagers {
        match post_silence(&client, alertmanager, None, &matchers, actor, now, until).await {
            Ok(id) => silences.push(SilenceRef { alertmanager: alertmanager.clone(), id }),
            Err(err) => failures.push(err),
        }
    }
    if silences.is_empty() && !own_check {
        tracing::warn!(errors = ?failures, "No Alertmanager accepted an acknowledgement silence.");
        return Ok(AckOutcome::Refused { failures });
    }
    let fingerprints: Vec<String> = firing.iter().map(|alert| alert.fingerprint.clone()).collect();
    shared
        .store
        .execute(vec![(
            "INSERT INTO acknowledgements (notification_id, group_key, contact, created_at, fingerprints, matchers, \
             silences, silenced_until) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                .to_string(),
            vec![
                SqlParam::Int(notification_id),
                SqlParam::Text(group_key),
                SqlParam::Text(actor.to_string()),
                SqlParam::Int(super::store::to_ms(now)),
                SqlParam::Text(serde_json::to_string(&fingerprints).unwrap_or_default()),
                SqlParam::Text(matchers.to_string()),
                SqlParam::Text(serde_json::to_string(&silences).unwrap_or_default()),
                SqlParam::Int(super::store::to_ms(until)),
            ],
        )])
        .await?;
    tracing::info!(contact = %actor, notification = notification_id, silences = silences.len(), own_check, "Acknowledged an alert group.");
    if let Err(err) = tell_others(shared, &runtime, notification_id, actor, &fingerprints, &title).await {
        tracing::warn!(error = %err, "Cannot queue the acknowledged-by note.");
    }
    Ok(AckOutcome::Acknowledged { title, silences: silences.len(), until, failures, own_check })
}

/// The stored `version` of notifications from checkit's own checks.
const OWN_CHECK_VERSION: &str = "check";

/// Who acknowledged the open acknowledgement covering alert `fingerprint`, if any.
pub(super) async fn acknowledged_by(shared: &Shared, fingerprint: &str) -> Result<Option<String>, StoreError> {
    let rows = shared
        .store
        .select(
            "SELECT contact FROM acknowledgements WHERE resolved_at IS NULL AND fingerprints LIKE $1 ORDER BY id LIMIT 1"
                .into(),
            vec![SqlParam::Text(format!("%\"{}\"%", fingerprint.replace(['%', '_', '"'], "")))],
        )
        .await?;
    Ok(rows.first().and_then(|row| row.first()).and_then(SqlValue::text).map(str::to_string))
}

/// Closes the open acknowledgements covering alert `fingerprint` (its check resolved).
pub(super) async fn close_for(shared: &Shared, fingerprint: &str) -> Result<(), StoreError> {
    shared
        .store
        .execute(vec![(
            "UPDATE acknowledgements SET resolved_at = $1 WHERE resolved_at IS NULL AND fingerprints LIKE $2"
                .to_string(),
            vec![
                SqlParam::Int(super::store::to_ms(shared.clock.now())),
                SqlParam::Text(format!("%\"{}\"%", fingerprint.replace(['%', '_', '"'], ""))),
            ],
        )])
        .await
        .map(|_| ())
}

/// Queues one "acknowledged by" note for every other contact who was told
/// about these alerts, on the channels they were told on.
async fn tell_others(
    shared: &Shared,
    runtime: &super::Runtime,
    notification_id: i64,
    acker: &str,
    fingerprints: &[String],
    title: &str,
) -> Result<(), StoreError> {
    let mut params = vec![SqlParam::Int(notification_id), SqlParam::Text(acker.to_string())];
    let first = params.len() + 1;
    params.extend(fingerprints.iter().map(|fingerprint| SqlParam::Text(fingerprint.clone())));
    let list = (first..first + fingerprints.len()).map(|n| format!("${n}")).collect::<Vec<_>>().join(", ");
    let rows = shared
        .store
        .select(
            format!(
                "SELECT DISTINCT contact, channel FROM outbox WHERE notification_id = $1 AND contact <> $2 \
                 AND contact IN (SELECT contact FROM told WHERE fingerprint IN ({list})) ORDER BY contact, channel"
            ),
            params,
        )
        .await?;
    if rows.is_empty() {
        return Ok(());
    }
    let now = shared.clock.now();
    let notification = super::messages::message_notification(
        Message {
            sender: "checkit".into(),
            subject: format!("Acknowledged by {acker}: {title}"),
            body: format!("{acker} acknowledged {title}; its notifications are paused until it resolves."),
            severity: "info".into(),
            report: None,
        },
        now,
    );
    let deliveries: Vec<super::store::NewDelivery> = rows
        .iter()
        .map(|row| super::store::NewDelivery {
            contact: row.first().and_then(SqlValue::text).unwrap_or_default().to_string(),
            channel: row.get(1).and_then(SqlValue::text).unwrap_or_default().to_string(),
            due_at: now,
            delayed: false,
            fingerprints: None,
        })
        .filter(|delivery| runtime.config.contacts.contains_key(&delivery.contact))
        .collect();
    submit(shared, notification, deliveries, now).await.map_err(StoreError::Unavailable)
}

/// Commits the note through the pipeline's commit (recipients chosen here).
async fn submit(
    shared: &Shared,
    notification: Notification,
    deliveries: Vec<super::store::NewDelivery>,
    now: DateTime<Utc>,
) -> Result<(), String> {
    let new = NewNotification {
        received_at: now,
        notification: Encoded::new(notification).map_err(|err| err.to_string())?,
        dedup_key: None,
        dedup_since: now,
        deliveries,
        message: None,
    };
    super::submit::commit(shared, new).await.map(|_| ()).map_err(|err| err.to_string())
}

async fn list(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let runtime = shared.runtime();
    if let Some(response) = refuse_unauthorized(&runtime.credentials, &headers) {
        return response;
    }
    match shared
        .store
        .select(
            format!("SELECT {ACK_COLUMNS} FROM acknowledgements ORDER BY created_at DESC, id DESC LIMIT 1000"),
            Vec::new(),
        )
        .await
    {
        Ok(rows) => {
            let items: Vec<Acknowledgement> = rows.iter().map(|row| ack_from_row(row)).collect();
            axum::Json(serde_json::json!({"total": items.len(), "items": items})).into_response()
        }
        Err(err) => {
            tracing::error!(error = %err, "Cannot list acknowledgements.");
            (StatusCode::SERVICE_UNAVAILABLE, format!("storage unavailable: {err}\n")).into_response()
        }
    }
}

/// The fingerprints of every alert active (firing, silenced or inhibited)
/// on `alertmanager`.
async fn active_fingerprints(client: &reqwest::Client, alertmanager: &str) -> Result<HashSet<String>, String> {
    let url = format!("{}/api/v2/alerts", alertmanager.trim_end_matches('/'));
    let response = client.get(&url).send().await.map_err(|err| format!("{url}: {err}"))?;
    if !response.status().is_success() {
        return Err(format!("{url}: {}", response.status()));
    }
    let alerts: Vec<serde_json::Value> = response.json().await.map_err(|err| format!("{url}: {err}"))?;
    Ok(alerts.iter().filter_map(|alert| alert["fingerprint"].as_str().map(str::to_string)).collect())
}

/// Extends the silences of acknowledged alerts that still fire, and expires
/// them (and tells everyone) once the alerts resolve. Runs until shutdown.
pub(super) async fn run_poller(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let client = http_client();
    loop {
        let acks = shared.runtime().acks.clone();
        let interval = acks.as_ref().map(|acks| acks.config.poll_interval.get()).unwrap_or(Duration::from_secs(30));
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    return;
                }
            }
        }
        if let Some(acks) = acks {
            if let Err(err) = poll_once(&shared, &acks, &client).await {
                tracing::warn!(error = %err, "Cannot check acknowledged alerts.");
            }
        }
    }
}

async fn poll_once(shared: &Shared, acks: &Acks, client: &reqwest::Client) -> Result<(), String> {
    let open = active_acks(shared, None).await.map_err(|err| err.to_string())?;
    if open.iter().all(|ack| ack.silences.is_empty()) {
        return Ok(());
    }
    // Resolution is decided only when every Alertmanager answered: one that
    // is down must not make its alerts look resolved.
    let mut active = HashSet::new();
    for alertmanager in &acks.config.alertmanagers {
        active.extend(active_fingerprints(client, alertmanager).await?);
    }
    let now = shared.clock.now();
    let duration = chrono::Duration::from_std(acks.config.silence_duration.get()).unwrap_or_default();
    // Acknowledgements without silences are of checkit's own checks, which
    // close them when they resolve.
    for ack in open.into_iter().filter(|ack| !ack.silences.is_empty()) {
        let firing = ack.fingerprints.iter().any(|fingerprint| active.contains(fingerprint));
        if firing {
            if ack.silenced_until - now < duration / 2 {
                extend(shared, client, &ack, now + duration).await?;
            }
        } else {
            resolve(shared, client, &ack, now).await?;
        }
    }
    Ok(())
}

async fn extend(
    shared: &Shared,
    client: &reqwest::Client,
    ack: &Acknowledgement,
    until: DateTime<Utc>,
) -> Result<(), String> {
    let mut silences = Vec::with_capacity(ack.silences.len());
    for silence in &ack.silences {
        // Same matchers and start: Alertmanager keeps the ID; otherwise it
        // answers a new one, which is recorded.
        let id = post_silence(
            client,
            &silence.alertmanager,
            Some(&silence.id),
            &ack.matchers,
            &ack.contact,
            ack.created_at,
            until,
        )
        .await?;
        silences.push(SilenceRef { alertmanager: silence.alertmanager.clone(), id });
    }
    shared
        .store
        .execute(vec![(
            "UPDATE acknowledgements SET silenced_until = $1, silences = $2 WHERE id = $3".to_string(),
            vec![
                SqlParam::Int(super::store::to_ms(until)),
                SqlParam::Text(serde_json::to_string(&silences).unwrap_or_default()),
                SqlParam::Int(ack.id),
            ],
        )])
        .await
        .map_err(|err| err.to_string())?;
    tracing::info!(contact = %ack.contact, until = %until.to_rfc3339(), "Extended an acknowledgement silence.");
    Ok(())
}

async fn resolve(
    shared: &Shared,
    client: &reqwest::Client,
    ack: &Acknowledgement,
    now: DateTime<Utc>,
) -> Result<(), String> {
    for silence in &ack.silences {
        let url = format!("{}/api/v2/silence/{}", silence.alertmanager.trim_end_matches('/'), silence.id);
        match client.delete(&url).send().await {
            Ok(response) if response.status().is_success() || response.status() == StatusCode::NOT_FOUND => {}
            Ok(response) => tracing::warn!(url = %url, status = %response.status(), "Cannot expire a silence."),
            Err(err) => tracing::warn!(url = %url, error = %err, "Cannot expire a silence."),
        }
    }
    let stored = shared.store.notifications(vec![ack.notification_id]).await.map_err(|err| err.to_string())?;
    // The resolved notification first, then the mark: a crash between them
    // tells people twice rather than never.
    if let Some(stored) = stored.into_iter().next() {
        let mut notification = stored.notification;
        notification.alerts.retain(|alert| ack.fingerprints.contains(&alert.fingerprint));
        for alert in &mut notification.alerts {
            alert.status = Status::Resolved;
            alert.ends_at = Some(now);
        }
        notification.status = Status::Resolved;
        notification.notification_reason = Some("acknowledged_alert_resolved".into());
        // Routed like any other resolution, through the pipeline's one submit.
        super::submit::submit(shared, super::event::Batch::from_webhook(notification))
            .await
            .map_err(|err| err.to_string())?;
    }
    shared
        .store
        .execute(vec![(
            "UPDATE acknowledgements SET resolved_at = $1 WHERE id = $2".to_string(),
            vec![SqlParam::Int(super::store::to_ms(now)), SqlParam::Int(ack.id)],
        )])
        .await
        .map_err(|err| err.to_string())?;
    tracing::info!(contact = %ack.contact, "An acknowledged alert group resolved; silences expired.");
    Ok(())
}

/// Labels shared by alerts, for tests of [`matchers`].
#[cfg(test)]
fn alert_with(labels: &[(&str, &str)]) -> super::payload::Alert {
    super::payload::Alert::local(
        Status::Firing,
        labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        super::payload::LabelSet::new(),
        String::new(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acks(ttl: Duration) -> Acks {
        Acks {
            config: AckConfig {
                external_url: "https://checkit.example/".into(),
                link_ttl: GoDuration(ttl),
                ..AckConfig::default()
            },
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"0123456789abcdef0123456789abcdef"),
        }
    }

    #[test]
    fn links_verify_until_they_expire_and_refuse_tampering() {
        let acks = acks(Duration::from_secs(3600));
        let now = Utc::now();
        let link = acks.link(42, "alice", now);
        let token = link.strip_prefix("https://checkit.example/ack/").unwrap();
        assert_eq!(acks.verify(token, now), Ok(Link { notification_id: 42, contact: "alice".into() }));
        assert!(matches!(acks.verify(token, now + chrono::Duration::hours(2)), Err(LinkError::Expired(_))));
        let other = acks.link(43, "bob", now);
        let other_signature = other.rsplit_once('.').unwrap().1;
        let forged = format!("{}.{other_signature}", token.rsplit_once('.').unwrap().0);
        assert_eq!(acks.verify(&forged, now), Err(LinkError::Invalid));
        assert_eq!(acks.verify(&token.replacen("42", "41", 1), now), Err(LinkError::Invalid));
        assert_eq!(acks.verify("garbage", now), Err(LinkError::Invalid));
    }

    #[test]
    fn matchers_keep_shared_labels_and_alternate_differing_values() {
        let a = alert_with(&[("alertname", "Disk"), ("instance", "db-1"), ("only", "a")]);
        let b = alert_with(&[("alertname", "Disk"), ("instance", "db.2")]);
        let found = matchers(&[&a, &b]);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0]["value"], "Disk");
        assert_eq!(found[1]["value"], format!("({}|{})", regex::escape("db-1"), regex::escape("db.2")));
        assert_eq!(found[1]["isRegex"], true);
    }
}
