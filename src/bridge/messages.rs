//! The message API: other systems message people through the same outbox
//! as alerts (quiet hours, rate limits, retries, history).
//!
//! - `POST /api/v1/messages` with `Authorization: Bearer <token>`: a JSON
//!   body `{contacts, groups, subject, body, severity, channels,
//!   idempotency_key}`. 401 without a known token, 403 when a recipient or
//!   channel is outside the token's scope, 429 over the token's rate limit
//!   (with `Retry-After`), 400 with the reason for a bad body, 503 when the
//!   outbox is full or storage fails; 202 `{"id": …}` after the commit. A
//!   retry with the same idempotency key answers 202 with the first
//!   message's ID and `"duplicate": true`, and sends nothing.
//! - `GET /api/v1/messages`: search (see [`parse_query`]), each message with
//!   its copies and delivery steps; any token may search the messages it
//!   sent, the bridge's own credentials search all.
//!
//! A message enters the pipeline as a notification with one firing alert
//! labelled `alertname="message"`, `severity`, `sender` (so quiet-hours
//! bypass matchers and routes apply) and carries the message itself for
//! the templates.

use super::Shared;
use super::channels::ChannelKind;
use super::config::Config;
use super::history;
use super::intake::refuse_unauthorized;
use super::payload::{Alert, Encoded, LabelSet, Message, Notification, Status};
use super::ratelimit::RateLimit;
use super::store::{Ingested, MessageQuery, MessageSort, NewDelivery, NewMessage, NewNotification};
use crate::config::Problems;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// Largest request body.
const MAX_REQUEST_BYTES: usize = 256 << 10;
/// Longest subject, in characters.
const MAX_SUBJECT_CHARS: usize = 255;
/// Longest body, in characters.
const MAX_BODY_CHARS: usize = 64 << 10;
/// Longest idempotency key or severity.
const MAX_KEY_CHARS: usize = 200;
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 500;

/// The `bridge.messages:` section.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MessagesConfig {
    /// Senders by name; each name is the `sender` of its messages.
    pub tokens: BTreeMap<String, TokenConfig>,
}

/// One sender's token and what it may reach.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenConfig {
    /// SHA-256 of the token, 64 hex digits (`printf %s "$TOKEN" | sha256sum`).
    pub secret_sha256: Option<String>,
    /// Or a file holding the token itself.
    pub secret_file: Option<String>,
    /// Contacts it may message.
    pub contacts: Vec<String>,
    /// Groups it may message (as a group or member by member).
    pub groups: Vec<String>,
    /// Channels it may use; empty = any channel of its recipients.
    pub channels: Vec<ChannelKind>,
    /// Messages it may send, e.g. `["10/m", "200/d"]`; over it, 429.
    pub rate_limit: Option<RateLimit>,
}

impl MessagesConfig {
    /// Records every problem below `path` (`bridge.messages`).
    pub fn validate(&self, bridge: &Config, path: &str, problems: &mut Problems) {
        for (name, token) in &self.tokens {
            let token_path = format!("{path}.tokens.{name}");
            if name.contains('|') || name.trim().is_empty() {
                problems.push(&token_path, "token name must not be empty or contain '|'");
            }
            match (&token.secret_sha256, &token.secret_file) {
                (Some(hash), None) => {
                    if hex::decode(hash).map(|bytes| bytes.len()) != Ok(32) {
                        problems.push(format!("{token_path}.secret_sha256"), "must be 64 hex digits (a SHA-256)");
                    }
                }
                (None, Some(file)) => match crate::config::types::read_secret_file(file) {
                    Ok(secret) if secret.expose().is_empty() => {
                        problems.push(format!("{token_path}.secret_file"), "token file is empty")
                    }
                    Ok(_) => {}
                    Err(err) => problems.push(format!("{token_path}.secret_file"), err),
                },
                _ => problems.push(&token_path, "set exactly one of secret_sha256 and secret_file"),
            }
            if token.contacts.is_empty() && token.groups.is_empty() {
                problems.push(&token_path, "token reaches nobody: set contacts or groups");
            }
            for (index, contact) in token.contacts.iter().enumerate() {
                if !bridge.contacts.contains_key(contact) {
                    problems.push(format!("{token_path}.contacts[{index}]"), format!("unknown contact {contact:?}"));
                }
            }
            for (index, group) in token.groups.iter().enumerate() {
                if !bridge.groups.contains_key(group) {
                    problems.push(format!("{token_path}.groups[{index}]"), format!("unknown group {group:?}"));
                }
            }
            for (index, kind) in token.channels.iter().enumerate() {
                if !bridge.channels.is_configured(*kind) {
                    problems.push(
                        format!("{token_path}.channels[{index}]"),
                        format!("bridge.channels.{} must be configured to use this channel", kind.as_str()),
                    );
                }
            }
            if let Some(limit) = &token.rate_limit {
                limit.validate(&format!("{token_path}.rate_limit"), problems);
            }
        }
    }
}

/// The tokens with their secrets' hashes, built at start and on reload.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    hashes: Vec<(String, [u8; 32])>,
}

impl Tokens {
    /// Reads secret files and decodes hashes.
    pub fn load(config: &MessagesConfig) -> Result<Tokens, String> {
        let mut hashes = Vec::with_capacity(config.tokens.len());
        for (name, token) in &config.tokens {
            let hash: [u8; 32] = match (&token.secret_sha256, &token.secret_file) {
                (Some(hex_hash), _) => hex::decode(hex_hash)
                    .ok()
                    .and_then(|bytes| bytes.try_into().ok())
                    .ok_or_else(|| format!("bridge.messages.tokens.{name}.secret_sha256: not a SHA-256"))?,
                (None, Some(file)) => Sha256::digest(crate::config::types::read_secret_file(file)?.expose()).into(),
                (None, None) => return Err(format!("bridge.messages.tokens.{name}: no secret")),
            };
            hashes.push((name.clone(), hash));
        }
        Ok(Tokens { hashes })
    }

    /// The name of the token `headers` carry, if it is one of ours. Every
    /// hash is compared in full so the time taken does not depend on which
    /// matched.
    fn sender(&self, headers: &HeaderMap) -> Option<String> {
        let presented = bearer(headers)?;
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for (name, hash) in &self.hashes {
            let diff = hash.iter().zip(digest.iter()).fold(0u8, |diff, (a, b)| diff | (a ^ b));
            if diff == 0 {
                found = Some(name.clone());
            }
        }
        found
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let (scheme, token) = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The body of `POST /api/v1/messages`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SendRequest {
    /// Contacts to message.
    pub contacts: Vec<String>,
    /// Groups to message (each member once).
    pub groups: Vec<String>,
    /// One line.
    pub subject: String,
    /// The text.
    pub body: String,
    /// Matched by quiet-hours bypass rules and routes; default `info`.
    pub severity: Option<String>,
    /// Only these channels of each recipient.
    pub channels: Vec<String>,
    /// A retry with the same key is accepted once; also taken from the
    /// `Idempotency-Key` header.
    pub idempotency_key: Option<String>,
}

/// A refusal: status and reason.
type Refusal = (StatusCode, String);

fn refusal(status: StatusCode, reason: impl Into<String>) -> Response {
    let mut reason = reason.into();
    reason.push('\n');
    (status, reason).into_response()
}

fn unauthorized() -> Response {
    let mut response = refusal(StatusCode::UNAUTHORIZED, "missing or unknown message token");
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"checkit\""));
    response
}

/// Checks the request's fields; returns severity, channels and key.
fn check_fields(
    request: &SendRequest,
    headers: &HeaderMap,
) -> Result<(String, Vec<ChannelKind>, Option<String>), Refusal> {
    let bad = |reason: String| (StatusCode::BAD_REQUEST, reason);
    if request.contacts.is_empty() && request.groups.is_empty() {
        return Err(bad("no recipients: set contacts or groups".into()));
    }
    if request.subject.trim().is_empty() {
        return Err(bad("subject must not be empty".into()));
    }
    if request.subject.chars().count() > MAX_SUBJECT_CHARS || request.subject.contains(['\n', '\r']) {
        return Err(bad(format!("subject must be one line of at most {MAX_SUBJECT_CHARS} characters")));
    }
    if request.body.chars().count() > MAX_BODY_CHARS {
        return Err(bad(format!("body is longer than {MAX_BODY_CHARS} characters")));
    }
    let severity = request.severity.clone().unwrap_or_else(|| "info".into());
    let valid_word = |word: &str| {
        !word.is_empty()
            && word.len() <= MAX_KEY_CHARS
            && word.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    };
    if !valid_word(&severity) {
        return Err(bad(format!("invalid severity {severity:?}: letters, digits, '_', '-' and '.' only")));
    }
    let mut channels = Vec::new();
    for name in &request.channels {
        match super::config::channel_kind(name) {
            Some(kind) => channels.push(kind),
            None => return Err(bad(format!("unknown channel {name:?}"))),
        }
    }
    let header_key = match headers.get("idempotency-key").map(|value| value.to_str()) {
        None => None,
        Some(Ok(key)) => Some(key.trim().to_string()),
        Some(Err(_)) => return Err(bad("Idempotency-Key header is not text".into())),
    };
    let key = match (header_key, request.idempotency_key.clone()) {
        (Some(header), Some(body)) if header != body => {
            return Err(bad("Idempotency-Key header and idempotency_key differ".into()));
        }
        (header, body) => header.or(body),
    };
    if let Some(key) = &key {
        if key.is_empty() || key.chars().count() > MAX_KEY_CHARS || key.chars().any(char::is_control) {
            return Err(bad(format!("idempotency key must be 1 to {MAX_KEY_CHARS} printable characters")));
        }
    }
    Ok((severity, channels, key))
}

/// The contacts `request` reaches (groups expanded, sorted), or why the
/// token may not reach them.
fn recipients(
    config: &Config,
    token: &TokenConfig,
    sender: &str,
    request: &SendRequest,
) -> Result<Vec<String>, Refusal> {
    let forbidden = |reason: String| (StatusCode::FORBIDDEN, reason);
    let in_token_group = |contact: &str| {
        token.groups.iter().any(|group| config.groups.get(group).is_some_and(|m| m.iter().any(|m| m == contact)))
    };
    let mut reached = BTreeSet::new();
    for contact in &request.contacts {
        if !token.contacts.contains(contact) && !in_token_group(contact) {
            return Err(forbidden(format!("token {sender:?} may not message contact {contact:?}")));
        }
        if !config.contacts.contains_key(contact) {
            return Err((StatusCode::BAD_REQUEST, format!("unknown contact {contact:?}")));
        }
        reached.insert(contact.clone());
    }
    for group in &request.groups {
        if !token.groups.contains(group) {
            return Err(forbidden(format!("token {sender:?} may not message group {group:?}")));
        }
        let Some(members) = config.groups.get(group) else {
            return Err((StatusCode::BAD_REQUEST, format!("unknown group {group:?}")));
        };
        reached.extend(members.iter().cloned());
    }
    Ok(reached.into_iter().collect())
}

/// The notification a message becomes.
fn notification(sender: &str, message: &NewMessage, now: DateTime<Utc>) -> Notification {
    message_notification(
        Message {
            sender: sender.to_string(),
            subject: message.subject.clone(),
            body: message.body.clone(),
            severity: message.severity.clone(),
            report: None,
        },
        now,
    )
}

/// The notification carrying `message` (from the API, or from checkit itself:
/// the "acknowledged by" note).
pub(super) fn message_notification(message: Message, now: DateTime<Utc>) -> Notification {
    let sender = message.sender.as_str();
    let labels = LabelSet::from_iter([
        ("alertname".to_string(), "message".to_string()),
        ("sender".to_string(), sender.to_string()),
        ("severity".to_string(), message.severity.clone()),
    ]);
    let annotations = LabelSet::from_iter([
        ("summary".to_string(), message.subject.clone()),
        ("description".to_string(), message.body.clone()),
    ]);
    let alert = Alert {
        starts_at: Some(now),
        // Unique per message: a message is never "the same alert again".
        ..Alert::local(
            Status::Firing,
            labels.clone(),
            annotations.clone(),
            format!("m{:015x}", rand::random::<u64>() >> 4),
        )
    };
    Notification {
        version: String::new(),
        receiver: format!("message:{sender}"),
        status: Status::Firing,
        alerts: vec![alert],
        group_labels: LabelSet::new(),
        common_labels: labels,
        common_annotations: annotations,
        external_url: String::new(),
        group_key: format!("message:{sender}"),
        truncated_alerts: 0,
        notification_reason: None,
        route_labels: LabelSet::new(),
        title: Some(message.subject.clone()),
        message: Some(message),
    }
}

/// One outbox row per (recipient, channel). Channels: those asked for, else
/// those the routes matching the message pick for the recipient, else all
/// of the recipient's; always within the token's channels.
fn deliveries(
    runtime: &super::Runtime,
    token: &TokenConfig,
    notification: &Notification,
    recipients: &[String],
    asked: &[ChannelKind],
    now: DateTime<Utc>,
) -> Result<Vec<NewDelivery>, Refusal> {
    let Ok(routed) = runtime.routing.route(notification, now);
    let mut rows = Vec::new();
    for name in recipients {
        let Some(contact) = runtime.config.contacts.get(name) else {
            return Err((StatusCode::BAD_REQUEST, format!("unknown contact {name:?}")));
        };
        let allowed: Vec<ChannelKind> = contact
            .channels()
            .filter(|kind| token.channels.is_empty() || token.channels.contains(kind))
            .filter(|kind| asked.is_empty() || asked.contains(kind))
            .collect();
        let by_route: Vec<ChannelKind> = allowed
            .iter()
            .copied()
            .filter(|kind| routed.iter().any(|row| &row.contact == name && row.channel == kind.as_str()))
            .collect();
        let chosen = if asked.is_empty() && !by_route.is_empty() { by_route } else { allowed };
        if chosen.is_empty() {
            return Err((
                StatusCode::BAD_REQUEST,
                format!("contact {name:?} has none of the channels this message may use"),
            ));
        }
        rows.extend(chosen.into_iter().map(|kind| NewDelivery {
            contact: name.clone(),
            channel: kind.as_str().to_string(),
            due_at: now,
            delayed: false,
            fingerprints: None,
        }));
    }
    Ok(rows)
}

/// The message API's routes.
pub(super) fn router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new().route("/api/v1/messages", axum::routing::post(send).get(search)).with_state(shared)
}

/// `POST /api/v1/messages`.
async fn send(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    let runtime = shared.runtime();
    let Some(sender) = runtime.tokens.sender(&headers) else {
        return unauthorized();
    };
    let Some(token) = runtime.config.messages.tokens.get(&sender) else {
        return unauthorized();
    };
    let bytes = match http_body_util::Limited::new(body, MAX_REQUEST_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) if err.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            return refusal(StatusCode::PAYLOAD_TOO_LARGE, format!("body larger than {MAX_REQUEST_BYTES} bytes"));
        }
        Err(err) => return refusal(StatusCode::BAD_REQUEST, format!("cannot read body: {err}")),
    };
    let request: SendRequest = match serde_json::from_slice(&bytes) {
        Ok(request) => request,
        Err(err) => return refusal(StatusCode::BAD_REQUEST, format!("invalid message: {err}")),
    };
    let (severity, asked, key) = match check_fields(&request, &headers) {
        Ok(checked) => checked,
        Err((status, reason)) => return refusal(status, reason),
    };
    if let Some(kind) = asked.iter().find(|kind| !token.channels.is_empty() && !token.channels.contains(kind)) {
        return refusal(StatusCode::FORBIDDEN, format!("token {sender:?} may not use channel {:?}", kind.as_str()));
    }
    let recipients = match recipients(&runtime.config, token, &sender, &request) {
        Ok(recipients) => recipients,
        Err((status, reason)) => return refusal(status, reason),
    };
    let storage_error = |err: super::store::StoreError| {
        tracing::error!(error = %err, "Cannot commit a message; answering 503.");
        refusal(StatusCode::SERVICE_UNAVAILABLE, format!("storage unavailable: {err}"))
    };
    // A retry of an accepted message is answered before any budget is spent.
    if let Some(key) = &key {
        match shared.store.message_by_key(&sender, key).await {
            Ok(Some(id)) => return accepted(id, 0, true),
            Ok(None) => {}
            Err(err) => return storage_error(err),
        }
    }
    // Check and commit under the token's lock, so that concurrent requests
    // cannot both spend its last unit (across replicas it stays approximate
    // by one message per replica).
    let _token_guard = shared.contact_lock(&format!("message-token:{sender}")).lock_owned().await;
    let now = shared.clock.now();
    if let Some(limit) = &token.rate_limit {
        let window = chrono::Duration::from_std(limit.max_window()).unwrap_or(chrono::Duration::days(31));
        match shared.store.message_times(&sender, now - window).await {
            Ok(sent) => {
                if let Some(until) = limit.next_allowed(&sent, now).filter(|until| *until > now) {
                    let seconds = (until - now).num_seconds().max(1);
                    let mut response = refusal(
                        StatusCode::TOO_MANY_REQUESTS,
                        format!("token {sender:?} is over its rate limit until {}", until.to_rfc3339()),
                    );
                    if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                        response.headers_mut().insert(header::RETRY_AFTER, value);
                    }
                    return response;
                }
            }
            Err(err) => return storage_error(err),
        }
    }
    let message = NewMessage {
        sender: sender.clone(),
        idempotency_key: key.clone(),
        subject: request.subject.trim().to_string(),
        body: request.body.clone(),
        severity,
        recipients: recipients.clone(),
        channels: asked.iter().map(|kind| kind.as_str().to_string()).collect(),
    };
    let notification = notification(&sender, &message, now);
    let rows = match deliveries(&runtime, token, &notification, &recipients, &asked, now) {
        Ok(rows) => rows,
        Err((status, reason)) => return refusal(status, reason),
    };
    let notification = match Encoded::new(notification) {
        Ok(notification) => notification,
        Err(err) => return refusal(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot encode the message: {err}")),
    };
    let new = NewNotification {
        received_at: now,
        notification,
        // The dedup table makes the key count once, even across replicas
        // racing on the same retry; an epoch `since` never lets it lapse.
        dedup_key: key.as_ref().map(|key| format!("message:{sender}:{key}")),
        dedup_since: DateTime::<Utc>::UNIX_EPOCH,
        deliveries: rows,
        message: Some(message),
    };
    match super::submit::commit(&shared, new).await {
        Ok(Ingested::Accepted { notification_id, deliveries }) => {
            tracing::info!(id = notification_id, sender = %sender, deliveries, "Accepted a message.");
            accepted(notification_id, deliveries, false)
        }
        Ok(Ingested::Duplicate) => match key {
            Some(key) => match shared.store.message_by_key(&sender, &key).await {
                Ok(Some(id)) => accepted(id, 0, true),
                Ok(None) => refusal(StatusCode::CONFLICT, "idempotency key was used by a message no longer kept"),
                Err(err) => storage_error(err),
            },
            None => refusal(StatusCode::CONFLICT, "duplicate message"),
        },
        Err(super::submit::SubmitError::Unavailable(err)) => storage_error(err),
        Err(err) => refusal(StatusCode::SERVICE_UNAVAILABLE, err.to_string()),
    }
}

fn accepted(id: i64, deliveries: usize, duplicate: bool) -> Response {
    let body = serde_json::json!({"id": id, "deliveries": deliveries, "duplicate": duplicate});
    (StatusCode::ACCEPTED, axum::Json(body)).into_response()
}

/// Parses the search's query string.
///
/// | parameter | meaning |
/// |---|---|
/// | `sender` | token name |
/// | `recipient` | a contact the message reached |
/// | `q` | text in the subject or body (case-insensitive) |
/// | `severity` | exact |
/// | `outcome` | a delivery step of the message had it: `sent`, `failed`, `dead`, `held`, `rate_limited`, `skipped` |
/// | `since`, `until` | RFC 3339; `since` inclusive, `until` exclusive |
/// | `sort` | `time`, `sender`, `severity`, each with `-` for descending; default `-time` |
/// | `limit`, `offset` | page: 1–500 (default 50), and messages to skip |
pub fn parse_query(params: &HashMap<String, String>) -> Result<MessageQuery, String> {
    let mut query = MessageQuery { limit: DEFAULT_LIMIT, ..MessageQuery::default() };
    for (name, value) in params {
        match name.as_str() {
            "sender" => query.sender = Some(value.clone()),
            "recipient" => query.recipient = Some(value.clone()),
            "q" => query.text = Some(value.clone()),
            "severity" => query.severity = Some(value.clone()),
            "outcome" => query.outcome = Some(history::parse_outcome(name, value)?),
            "since" => query.since = Some(history::parse_time(name, value)?),
            "until" => query.until = Some(history::parse_time(name, value)?),
            "sort" => {
                let (key, ascending) = history::parse_sort(value);
                query.ascending = ascending;
                query.sort = match key {
                    "time" => MessageSort::Time,
                    "sender" => MessageSort::Sender,
                    "severity" => MessageSort::Severity,
                    _ => {
                        return Err(format!(
                            "invalid sort {value:?}: expected time, sender or severity, optionally with '-'"
                        ));
                    }
                };
            }
            "limit" => query.limit = history::parse_limit(value, MAX_LIMIT)?,
            // Bounded like the deliveries API's (a larger one is a 400, not a storage error).
            "offset" => query.offset = history::parse_offset(value)?,
            other => return Err(format!("unknown parameter {other:?}")),
        }
    }
    if let (Some(since), Some(until)) = (query.since, query.until) {
        if since > until {
            return Err("since is after until".into());
        }
    }
    Ok(query)
}

/// `GET /api/v1/messages`.
async fn search(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let runtime = shared.runtime();
    // A message token sees its own messages; the bridge's credentials see all.
    let own = runtime.tokens.sender(&headers);
    if own.is_none() {
        if let Some(response) = refuse_unauthorized(&runtime.credentials, &headers) {
            return response;
        }
    }
    let mut query = match parse_query(&params) {
        Ok(query) => query,
        Err(reason) => return refusal(StatusCode::BAD_REQUEST, reason),
    };
    if let Some(sender) = own {
        if query.sender.as_ref().is_some_and(|asked| *asked != sender) {
            return refusal(StatusCode::FORBIDDEN, format!("token {sender:?} may only search its own messages"));
        }
        query.sender = Some(sender);
    }
    let (limit, offset) = (query.limit, query.offset);
    match shared.store.messages(query).await {
        Ok(page) => history::page_json(page.total, limit, offset, &page.items),
        Err(err) => {
            tracing::error!(error = %err, "Cannot search messages.");
            refusal(StatusCode::SERVICE_UNAVAILABLE, format!("storage unavailable: {err}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bridge::string_map as params;

    #[test]
    fn an_offset_past_sql_integers_is_a_bad_request() {
        let err = parse_query(&params(&[("offset", "9223372036854775808")])).unwrap_err();
        assert!(err.contains("invalid offset"), "{err}");
        assert_eq!(parse_query(&params(&[("offset", "9223372036854775807")])).unwrap().offset, i64::MAX as u64);
    }

    #[test]
    fn query_parses_filters_and_sort() {
        let query =
            parse_query(&params(&[("sender", "ci"), ("q", "disk"), ("sort", "-severity"), ("limit", "5")])).unwrap();
        assert_eq!(query.sender.as_deref(), Some("ci"));
        assert_eq!(query.text.as_deref(), Some("disk"));
        assert_eq!(query.sort, MessageSort::Severity);
        assert!(!query.ascending);
        assert_eq!(query.limit, 5);
        assert!(parse_query(&params(&[("sort", "size")])).unwrap_err().contains("invalid sort"));
        assert!(parse_query(&params(&[("limit", "0")])).unwrap_err().contains("invalid limit"));
        assert!(parse_query(&params(&[("outcome", "lost")])).unwrap_err().contains("invalid outcome"));
        assert!(parse_query(&params(&[("since", "yesterday")])).unwrap_err().contains("RFC 3339"));
        assert!(parse_query(&params(&[("color", "red")])).unwrap_err().contains("unknown parameter"));
    }

    #[test]
    fn fields_are_checked_with_reasons() {
        let request = |subject: &str| SendRequest {
            contacts: vec!["alice".into()],
            subject: subject.into(),
            ..SendRequest::default()
        };
        let headers = HeaderMap::new();
        assert!(check_fields(&request(""), &headers).unwrap_err().1.contains("subject"));
        assert!(check_fields(&request("a\nb"), &headers).unwrap_err().1.contains("one line"));
        let (severity, channels, key) = check_fields(&request("ok"), &headers).unwrap();
        assert_eq!((severity.as_str(), channels.len(), key), ("info", 0, None));
        let mut bad_channel = request("ok");
        bad_channel.channels = vec!["pigeon".into()];
        assert!(check_fields(&bad_channel, &headers).unwrap_err().1.contains("unknown channel"));
        let mut keyed = request("ok");
        keyed.idempotency_key = Some("a".into());
        let mut with_header = HeaderMap::new();
        with_header.insert("idempotency-key", HeaderValue::from_static("b"));
        assert!(check_fields(&keyed, &with_header).unwrap_err().1.contains("differ"));
    }

    #[test]
    fn tokens_match_by_hash_only() {
        let config = MessagesConfig {
            tokens: BTreeMap::from([(
                "ci".to_string(),
                TokenConfig { secret_sha256: Some(hex::encode(Sha256::digest(b"s3cret"))), ..TokenConfig::default() },
            )]),
        };
        let tokens = Tokens::load(&config).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer s3cret"));
        assert_eq!(tokens.sender(&headers).as_deref(), Some("ci"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer s3cre"));
        assert_eq!(tokens.sender(&headers), None);
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic s3cret"));
        assert_eq!(tokens.sender(&headers), None);
    }
}
