//! The Alertmanager/Grafana webhook source, `POST /webhook`: auth → size →
//! parse into events → [`submit`] (back-pressure, route,
//! durable commit) → 2xx.
//!
//! The status codes follow the bridge's inbound contract: 401 for missing or
//! wrong credentials, 413 for bodies over `max_body_size`, 400 with the
//! reason for bodies that are not a webhook payload, 503 when the outbox is
//! full, the intake memory budget is in use or storage fails (Alertmanager retries 5xx with backoff), and never
//! 429 (Alertmanager would wait a whole `group_interval`).
//!
//! **Architecture invariant:** the handler never delivers anything itself; it
//! only commits rows that the outbox workers pick up.

use super::Shared;
use super::config::Config;
use super::event::Batch;
use super::payload;
use super::submit::{self, SubmitError, Submitted};
use crate::config::types::{Secret, read_secret_file};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use http_body_util::BodyExt;
use std::sync::Arc;

/// Bytes of webhook bodies parsed and committed at once, over all requests.
/// A parsed alert takes far more memory than its JSON (label maps, the
/// stored copy), so without a bound a storm of large bodies grows the
/// process until the OOM killer ends it; past the budget a body gets 503,
/// which Alertmanager retries with backoff. Two bodies of the default
/// `max_body_size` fit; everyday bodies of a few KiB never notice it.
pub(crate) const INTAKE_BUDGET: usize = 8 << 20;

/// Inbound credentials, read from their files at start and on reload.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    bearer: Option<Secret>,
    basic: Option<(String, Secret)>,
}

impl Credentials {
    /// Reads the secret files named in `config.auth`.
    pub fn load(config: &Config) -> Result<Credentials, String> {
        let bearer = config.auth.bearer.as_ref().map(|bearer| read_secret_file(&bearer.token_file)).transpose()?;
        let basic = config
            .auth
            .basic
            .as_ref()
            .map(|basic| read_secret_file(&basic.password_file).map(|password| (basic.username.clone(), password)))
            .transpose()?;
        Ok(Credentials { bearer, basic })
    }

    /// True when nothing is configured or the request carries valid credentials.
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        if self.bearer.is_none() && self.basic.is_none() {
            return true;
        }
        let Some((scheme, credentials)) = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().split_once(' '))
        else {
            return false;
        };
        let credentials = credentials.trim();
        if scheme.eq_ignore_ascii_case("basic") {
            let Some((username, password)) = &self.basic else {
                return false;
            };
            let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(credentials) else {
                return false;
            };
            let expected = format!("{username}:{}", password.expose());
            constant_time_eq(&decoded, expected.as_bytes())
        } else {
            // Alertmanager's `authorization.type` may be any word; only the
            // credentials are compared.
            self.bearer
                .as_ref()
                .is_some_and(|token| constant_time_eq(credentials.as_bytes(), token.expose().as_bytes()))
        }
    }

    /// The `WWW-Authenticate` challenge for a 401.
    fn challenge(&self) -> &'static str {
        if self.basic.is_some() { "Basic realm=\"checkit\"" } else { "Bearer realm=\"checkit\"" }
    }
}

/// Compares secrets without an early exit that would leak their prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// A plain-text error response; Alertmanager copies the text into its log.
fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    (status, message.into()).into_response()
}

/// The 401 refusal (with a challenge) when the request lacks valid credentials.
/// Only the caller knows whether it was a webhook, so counting is left to it:
/// `webhooks_rejected_total` pages, and a person opening the history without
/// credentials must not.
pub(super) fn refuse_unauthorized(credentials: &Credentials, headers: &HeaderMap) -> Option<Response> {
    if credentials.allows(headers) {
        return None;
    }
    let mut response = refuse(StatusCode::UNAUTHORIZED, "missing or invalid credentials\n");
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(credentials.challenge()));
    Some(response)
}

/// The webhook surface.
pub(super) fn router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new().route("/webhook", axum::routing::post(webhook)).with_state(shared)
}

/// The webhook handler.
async fn webhook(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    shared.metrics.webhooks_received.inc();
    let runtime = shared.runtime();
    if let Some(response) = refuse_unauthorized(&runtime.credentials, &headers) {
        shared.metrics.reject("unauthorized");
        return response;
    }
    let limit =
        runtime.config.max_body_size.limit().and_then(|limit| usize::try_from(limit).ok()).unwrap_or(usize::MAX);
    let too_large = || {
        shared.metrics.reject("too_large");
        refuse(StatusCode::PAYLOAD_TOO_LARGE, format!("body larger than max_body_size ({limit} bytes)\n"))
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return too_large();
    }
    let bytes = match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) if err.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            return too_large();
        }
        Err(err) => {
            shared.metrics.reject("malformed");
            return refuse(StatusCode::BAD_REQUEST, format!("cannot read body: {err}\n"));
        }
    };
    // A body larger than the whole budget takes all of it, and waits for nobody.
    let weight = u32::try_from(bytes.len().min(INTAKE_BUDGET)).unwrap_or(u32::MAX);
    let Ok(_budget) = Arc::clone(&shared.intake_budget).try_acquire_many_owned(weight) else {
        shared.metrics.reject("busy");
        tracing::warn!(bytes = bytes.len(), "Refused a webhook: the intake memory budget is in use; answering 503.");
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("intake busy: {INTAKE_BUDGET} bytes of webhook bodies are being processed; retry later\n"),
        );
    };
    let received_at = shared.clock.now();
    // Parsing 100,000 alerts takes a while: off the async threads, so other
    // requests (and the accept loop) keep being served meanwhile. The body
    // is parsed straight into its stored form, and freed once parsed.
    let parsed = tokio::task::spawn_blocking(move || payload::parse_encoded(&bytes, received_at)).await;
    let Ok(parsed) = parsed else {
        shared.metrics.reject("malformed");
        return refuse(StatusCode::INTERNAL_SERVER_ERROR, "the webhook parser failed\n");
    };
    let notification = match parsed {
        Ok(notification) => notification,
        Err(err) => {
            shared.metrics.reject(err.reason());
            tracing::debug!(error = %err, "Refused a webhook body.");
            return refuse(StatusCode::BAD_REQUEST, format!("{err}\n"));
        }
    };
    match submit::submit(&shared, Batch::from_encoded(notification)).await {
        Ok(Submitted::Accepted { notification_id, deliveries }) => {
            let body = serde_json::json!({
                "status": "accepted",
                "notification": notification_id,
                "deliveries": deliveries,
            });
            (StatusCode::OK, axum::Json(body)).into_response()
        }
        Ok(Submitted::Duplicate) => {
            (StatusCode::OK, axum::Json(serde_json::json!({"status": "duplicate"}))).into_response()
        }
        Err(err) => {
            shared.metrics.reject(err.reason());
            if let SubmitError::Unavailable(_) = err {
                tracing::error!(error = %err, "Cannot commit a notification; answering 503.");
            }
            let status = match err {
                SubmitError::Batch(_) => StatusCode::BAD_REQUEST,
                SubmitError::QueueFull { .. } | SubmitError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            };
            refuse(status, format!("{err}\n"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(authorization: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(authorization).unwrap());
        headers
    }

    #[test]
    fn credentials_accept_bearer_of_any_scheme_and_basic() {
        let credentials =
            Credentials { bearer: Some(Secret("tok123".into())), basic: Some(("am".into(), Secret("s3cret".into()))) };
        assert!(credentials.allows(&headers("Bearer tok123")));
        assert!(credentials.allows(&headers("webhook tok123")));
        assert!(credentials.allows(&headers("Basic YW06czNjcmV0")));
        assert!(!credentials.allows(&headers("Bearer tok1234")));
        assert!(!credentials.allows(&headers("Basic YW06d3Jvbmc=")));
        assert!(!credentials.allows(&headers("Basic !!!")));
        assert!(!credentials.allows(&HeaderMap::new()));
        assert!(Credentials::default().allows(&HeaderMap::new()));
    }

    #[test]
    fn basic_only_refuses_bearer() {
        let credentials = Credentials { bearer: None, basic: Some(("am".into(), Secret("s3cret".into()))) };
        assert!(!credentials.allows(&headers("Bearer s3cret")));
        assert_eq!(credentials.challenge(), "Basic realm=\"checkit\"");
    }
}
