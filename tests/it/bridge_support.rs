//! Helpers for the bridge tests: a bridge on loopback with a hand-moved
//! clock, and a recording HTTP receiver that can be told to fail.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use checkit::bridge::clock::TestClock;
use checkit::bridge::{Bridge, Config};
use chrono::{DateTime, TimeZone, Utc};
use prometheus_client::registry::Registry;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A Monday, noon UTC: where every test clock starts.
pub fn start_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 12, 0, 0).single().expect("a valid time")
}

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub body: String,
}

/// A scripted answer: status and optional `Retry-After` seconds.
#[derive(Debug, Clone, Copy)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<u64>,
}

#[derive(Default)]
struct RecorderState {
    requests: Vec<Recorded>,
    /// Answers used in order; when empty, `default` answers.
    script: VecDeque<Answer>,
    default_status: u16,
    /// How long each answer is held back.
    delay: Duration,
}

/// An HTTP receiver on loopback that records every request.
#[derive(Clone)]
pub struct Recorder {
    address: SocketAddr,
    state: Arc<Mutex<RecorderState>>,
}

impl Recorder {
    pub async fn start() -> Recorder {
        let state = Arc::new(Mutex::new(RecorderState { default_status: 200, ..RecorderState::default() }));
        let router = axum::Router::new().fallback(record).with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("test setup");
        let address = listener.local_addr().expect("test setup");
        tokio::spawn(async move {
            axum::serve(listener, router).await.expect("test setup");
        });
        Recorder { address, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Answers the next requests with these statuses, in order.
    pub fn script(&self, answers: &[Answer]) {
        self.state.lock().expect("recorder state").script.extend(answers.iter().copied());
    }

    /// Holds every answer back by `delay` (an in-flight delivery).
    pub fn delay_answers(&self, delay: Duration) {
        self.state.lock().expect("recorder state").delay = delay;
    }

    /// Answers every unscripted request with `status`.
    pub fn answer_by_default(&self, status: u16) {
        self.state.lock().expect("recorder state").default_status = status;
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().expect("recorder state").requests.clone()
    }

    pub fn count(&self) -> usize {
        self.state.lock().expect("recorder state").requests.len()
    }

    /// Waits (bounded) until at least `n` requests arrived.
    pub async fn wait_for(&self, n: usize) -> Vec<Recorded> {
        eventually(&format!("{n} requests at the recorder"), || {
            let requests = self.requests();
            (requests.len() >= n).then_some(requests)
        })
        .await
    }
}

async fn record(State(state): State<Arc<Mutex<RecorderState>>>, uri: axum::http::Uri, body: Bytes) -> Response {
    // Recorded on arrival; the answer may be held back (an in-flight delivery).
    let delay = {
        let mut state = state.lock().expect("recorder state");
        state
            .requests
            .push(Recorded { path: uri.path().to_string(), body: String::from_utf8_lossy(&body).into_owned() });
        state.delay
    };
    tokio::time::sleep(delay).await;
    let mut state = state.lock().expect("recorder state");
    let default = Answer { status: state.default_status, retry_after: None };
    let answer = state.script.pop_front().unwrap_or(default);
    let status = StatusCode::from_u16(answer.status).expect("test setup");
    let mut response = (status, "recorded").into_response();
    if let Some(seconds) = answer.retry_after {
        response.headers_mut().insert("retry-after", seconds.to_string().parse().expect("test setup"));
    }
    response
}

/// Polls `probe` every 20 ms for up to 15 s; panics naming `what` on timeout.
pub async fn eventually<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A bridge on loopback with a test clock and a temporary SQLite store.
pub struct TestBridge {
    pub bridge: Option<Bridge>,
    pub clock: Arc<TestClock>,
    pub registry: Registry,
    pub address: SocketAddr,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
    server: tokio::task::JoinHandle<()>,
}

/// Parses a `bridge:` section written as YAML.
pub fn config(yaml: &str) -> Config {
    let value = checkit::config::yaml::parse_value(yaml).expect("test setup");
    checkit::config::yaml::from_value(value, "bridge").expect("test setup")
}

impl TestBridge {
    /// Starts a bridge with `yaml` as its section, on SQLite in a temp dir
    /// unless the section names a store.
    pub async fn start(yaml: &str) -> TestBridge {
        Self::start_at(yaml, start_time()).await
    }

    /// Like [`TestBridge::start`] with the clock stopped at `now` (real
    /// Alertmanagers stamp alerts with the wall clock).
    pub async fn start_at(yaml: &str, now: DateTime<Utc>) -> TestBridge {
        let dir = tempfile::tempdir().expect("test setup");
        let mut config = config(yaml);
        if yaml.find("store:").is_none() {
            config.store =
                Some(checkit::bridge::config::StoreConfig::sqlite(dir.path().join("bridge.db").display().to_string()));
        }
        Self::start_config(config, dir, TestClock::new(now)).await
    }

    pub async fn start_config(config: Config, dir: tempfile::TempDir, clock: Arc<TestClock>) -> TestBridge {
        let mut problems = checkit::config::Problems::default();
        config.validate("bridge", &mut problems);
        assert!(problems.is_empty(), "invalid test config: {:?}", problems.0);
        let mut registry = Registry::default();
        let bridge =
            Bridge::start_with_clock(Arc::new(config), &mut registry, clock.clone()).await.expect("test setup");
        // The test plays the composition root: it spawns the bridge's work.
        for task in bridge.take_tasks() {
            tokio::spawn(task);
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("test setup");
        let address = listener.local_addr().expect("test setup");
        let router = bridge.router();
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.expect("test setup");
        });
        TestBridge { bridge: Some(bridge), clock, registry, address, client: reqwest::Client::new(), dir, server }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub fn bridge(&self) -> &Bridge {
        self.bridge.as_ref().expect("test setup")
    }

    /// POSTs `body` to `/webhook`; returns status and text.
    pub async fn post(&self, body: impl Into<reqwest::Body>) -> (u16, String) {
        self.post_with(body, |request| request).await
    }

    pub async fn post_with(
        &self,
        body: impl Into<reqwest::Body>,
        decorate: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> (u16, String) {
        let request = self.client.post(self.url("/webhook")).header("content-type", "application/json").body(body);
        let response = decorate(request).send().await.expect("test setup");
        let status = response.status().as_u16();
        (status, response.text().await.expect("test setup"))
    }

    /// `GET /api/v1/deliveries?{query}` as JSON.
    pub async fn history(&self, query: &str) -> serde_json::Value {
        let response =
            self.client.get(self.url(&format!("/api/v1/deliveries?{query}"))).send().await.expect("test setup");
        assert_eq!(response.status(), 200, "history query {query}");
        response.json().await.expect("test setup")
    }

    /// Outcomes in history, oldest first, as `outcome/kind`.
    pub async fn outcomes(&self) -> Vec<String> {
        let page = self.history("sort=time&limit=1000").await;
        page["items"]
            .as_array()
            .expect("test setup")
            .iter()
            .map(|item| {
                format!(
                    "{}/{}",
                    item["outcome"].as_str().expect("test setup"),
                    item["kind"].as_str().expect("test setup")
                )
            })
            .collect()
    }

    /// Waits (bounded) until history holds `n` entries with `outcome`.
    pub async fn wait_for_outcome(&self, outcome: &str, n: usize) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let page = self.history(&format!("status={outcome}&sort=time&limit=1000")).await;
            if page["total"].as_u64().expect("test setup") >= n as u64 {
                return page;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {n} {outcome} entries; history: {:?}",
                self.outcomes().await
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Moves the test clock and wakes the workers.
    pub fn advance(&self, by: chrono::Duration) {
        self.clock.advance(by);
        self.bridge().wake();
    }

    /// The registry in text exposition format.
    pub fn metrics(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("test setup");
        text
    }

    /// The value of one sample line, e.g. `checkit_bridge_webhooks_received_total`.
    pub fn metric(&self, sample: &str) -> f64 {
        let text = self.metrics();
        text.lines()
            .find_map(|line| {
                line.strip_prefix(sample)
                    .and_then(|rest| rest.strip_prefix(' '))
                    .map(|value| value.trim().parse::<f64>().expect("test setup"))
            })
            .unwrap_or_else(|| panic!("no sample {sample} in:\n{text}"))
    }

    pub async fn stop(mut self) -> tempfile::TempDir {
        self.server.abort();
        if let Some(bridge) = self.bridge.take() {
            bridge.shutdown().await;
        }
        self.dir
    }
}

/// An Alertmanager v4 body for one group.
pub fn notification(receiver: &str, group: &str, alerts: &[(&str, &str, &str)]) -> String {
    notification_at(receiver, group, alerts, start_time() - chrono::Duration::minutes(5))
}

/// Alerts as (alertname, severity, status), started at `starts_at`.
pub fn notification_at(receiver: &str, group: &str, alerts: &[(&str, &str, &str)], starts_at: DateTime<Utc>) -> String {
    let items: Vec<serde_json::Value> = alerts
        .iter()
        .map(|(name, severity, status)| {
            let ends_at = if *status == "resolved" {
                (starts_at + chrono::Duration::minutes(30)).to_rfc3339()
            } else {
                "0001-01-01T00:00:00Z".to_string()
            };
            let labels = serde_json::json!({"alertname": name, "severity": severity, "instance": "db-1"});
            serde_json::json!({
                "status": status,
                "labels": labels,
                "annotations": {"summary": format!("{name} on db-1")},
                "startsAt": starts_at.to_rfc3339(),
                "endsAt": ends_at,
                "generatorURL": "http://prometheus.example:9090/graph",
            })
        })
        .collect();
    let status = if alerts.iter().any(|(_, _, status)| *status == "firing") { "firing" } else { "resolved" };
    serde_json::json!({
        "receiver": receiver,
        "status": status,
        "alerts": items,
        "groupLabels": {"alertname": alerts[0].0},
        "commonLabels": {"instance": "db-1"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "version": "4",
        "groupKey": format!("{{}}:{{group=\"{group}\"}}"),
        "truncatedAlerts": 0,
    })
    .to_string()
}
