//! Heartbeat checks on a test clock: period/grace, cron with a time zone
//! across a DST change, start/fail/exit codes/run ids, too-early pings,
//! rate limits, pushed results, and late → down → up notifications through
//! the bridge to a webhook receiver and to the real SMTP peer.

use crate::bridge_peers::email_block;
use crate::bridge_support::{Recorder, TestBridge};
use crate::peer;
use crate::support::peers::{SmtpOpts, SmtpServer};
use checkit::bridge::clock::{Clock, TestClock};
use checkit::heartbeat::notify::Notifier;
use checkit::heartbeat::{Config, Heartbeats};
use chrono::{DateTime, Duration, TimeZone, Utc};
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::Arc;

const BACKUP: &str = "0b5a0c5e-3c55-4a39-9d2b-0f0e1e6f6a51";
const REPORT: &str = "1c6b1d6f-4d66-4b4a-8e3c-1f1f2f7f7b62";
const PING_KEY: &str = "k3y-for-pinging-by-name";

/// Heartbeats and a bridge sharing one test clock, served on loopback.
struct TestHeartbeats {
    heartbeats: Option<Heartbeats>,
    bridge: TestBridge,
    clock: Arc<TestClock>,
    address: SocketAddr,
    client: reqwest::Client,
    registry: Registry,
    dir: tempfile::TempDir,
    server: tokio::task::JoinHandle<()>,
}

fn heartbeat_config(yaml: &str, dir: &std::path::Path) -> Config {
    let key_file = dir.join("ping-key");
    std::fs::write(&key_file, format!("{PING_KEY}\n")).expect("test setup");
    let token_file = dir.join("report-token");
    std::fs::write(&token_file, "report-s3cret\n").expect("test setup");
    let yaml = yaml
        .replace("$KEY_FILE", &key_file.display().to_string())
        .replace("$TOKEN_FILE", &token_file.display().to_string());
    let value = checkit::config::yaml::parse_value(&yaml).expect("test setup");
    let mut config: Config = checkit::config::yaml::from_value(value, "heartbeats").expect("test setup");
    config.store =
        Some(checkit::storage::config::StorageConfig::sqlite(dir.join("heartbeats.db").display().to_string()));
    let mut problems = checkit::config::Problems::default();
    config.validate("heartbeats", &mut problems);
    assert!(problems.is_empty(), "invalid test config: {:?}", problems.0);
    config
}

impl TestHeartbeats {
    async fn start(bridge_yaml: &str, heartbeats_yaml: &str, now: DateTime<Utc>) -> TestHeartbeats {
        let bridge = TestBridge::start_at(bridge_yaml, now).await;
        let dir = tempfile::tempdir().expect("test setup");
        let config = heartbeat_config(heartbeats_yaml, dir.path());
        Self::start_with(bridge, config, dir).await
    }

    async fn start_with(bridge: TestBridge, config: Config, dir: tempfile::TempDir) -> TestHeartbeats {
        let clock = bridge.clock.clone();
        let mut registry = Registry::default();
        let notifier = Notifier::Bridge(bridge.bridge().submitter());
        let heartbeats = Heartbeats::start_with_clock(Arc::new(config), &mut registry, notifier, clock.clone())
            .await
            .expect("test setup");
        for task in heartbeats.take_tasks() {
            tokio::spawn(task);
        }
        let router = heartbeats.open_router().merge(heartbeats.api_router());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("test setup");
        let address = listener.local_addr().expect("test setup");
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.expect("test setup");
        });
        TestHeartbeats {
            heartbeats: Some(heartbeats),
            bridge,
            clock,
            address,
            client: reqwest::Client::new(),
            registry,
            dir,
            server,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Sends `method` to `path` with `body`; returns status, headers and text.
    async fn send(&self, method: &str, path: &str, body: &str) -> (u16, reqwest::header::HeaderMap, String) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("test setup");
        let response =
            self.client.request(method, self.url(path)).body(body.to_string()).send().await.expect("test setup");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (status, headers, response.text().await.expect("test setup"))
    }

    async fn ping(&self, path: &str) -> u16 {
        self.send("GET", &format!("/ping/{path}"), "").await.0
    }

    async fn check(&self, name: &str) -> serde_json::Value {
        let response = self.client.get(self.url(&format!("/api/v1/heartbeats/{name}"))).send().await.expect("setup");
        assert_eq!(response.status(), 200);
        response.json().await.expect("test setup")
    }

    async fn status(&self, name: &str) -> String {
        self.check(name).await["status"].as_str().expect("test setup").to_string()
    }

    /// Sets the clock and waits (bounded) until the evaluator has looked at
    /// that instant: `name`'s status reads `want`.
    async fn at(&self, to: DateTime<Utc>, name: &str, want: &str) {
        self.clock.set(to);
        self.bridge.bridge().wake();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            let status = self.status(name).await;
            if status == want {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "{name} is {status}, not {want}, at {to}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Firing alert names of `name`, as the check's API shows them.
    async fn alerts(&self, name: &str) -> Vec<String> {
        let check = self.check(name).await;
        check["alerts"]
            .as_array()
            .expect("test setup")
            .iter()
            .map(|alert| alert["alertname"].as_str().expect("test setup").to_string())
            .collect()
    }

    /// Waits (bounded) until `name` has exactly `want` firing.
    async fn wait_alerts(&self, name: &str, want: &[&str]) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            let alerts = self.alerts(name).await;
            if alerts == want {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "{name} fires {alerts:?}, not {want:?}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    fn metrics(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("test setup");
        text
    }

    async fn stop(mut self) -> (TestBridge, tempfile::TempDir) {
        self.server.abort();
        if let Some(heartbeats) = self.heartbeats.take() {
            heartbeats.shutdown().await;
        }
        (self.bridge, self.dir)
    }
}

fn webhook_bridge(recorder: &Recorder) -> String {
    format!(
        "contacts:\n  ops: {{webhook: '{}'}}\nroutes:\n  - receivers: [heartbeats]\n    contacts: [ops]\n",
        recorder.url("/ops")
    )
}

/// `(alertname, status)` of every notification the recorder received.
fn received(recorder: &Recorder) -> Vec<(String, String)> {
    recorder
        .requests()
        .iter()
        .map(|request| {
            let body: serde_json::Value = serde_json::from_str(&request.body).expect("webhook body is JSON");
            let alert = &body["alerts"][0];
            (
                alert["labels"]["alertname"].as_str().expect("alertname").to_string(),
                alert["status"].as_str().expect("status").to_string(),
            )
        })
        .collect()
}

fn pair(alertname: &str, status: &str) -> (String, String) {
    (alertname.to_string(), status.to_string())
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 12, 0, 0).single().expect("a valid time")
}

const PERIOD_CHECK: &str = "ping_key_file: $KEY_FILE\nchecks:\n\
    - {name: backup, uuid: 0b5a0c5e-3c55-4a39-9d2b-0f0e1e6f6a51, period: 10m, grace: 5m, start_grace: 30m, \
       labels: {team: ops}}\n";

#[tokio::test]
async fn period_and_grace_late_then_down_at_the_deadline_then_up_notify_through_the_pipeline() {
    let recorder = Recorder::start().await;
    let hb = TestHeartbeats::start(&webhook_bridge(&recorder), PERIOD_CHECK, t0()).await;
    assert_eq!(hb.status("backup").await, "new");
    assert_eq!(hb.ping(BACKUP).await, 200);
    hb.at(t0(), "backup", "up").await;
    assert_eq!(hb.check("backup").await["next_due"], "2026-03-02T12:10:00Z");
    hb.at(t0() + Duration::minutes(10), "backup", "late").await;
    // One millisecond before due + grace nothing fires; at the deadline itself it does.
    hb.at(t0() + Duration::minutes(15) - Duration::milliseconds(1), "backup", "late").await;
    assert!(hb.alerts("backup").await.is_empty());
    hb.at(t0() + Duration::minutes(15), "backup", "down").await;
    hb.wait_alerts("backup", &["HeartbeatMissing"]).await;
    recorder.wait_for(1).await;
    assert_eq!(received(&recorder), [pair("HeartbeatMissing", "firing")]);
    let firing: serde_json::Value = serde_json::from_str(&recorder.requests()[0].body).expect("json");
    assert_eq!(firing["alerts"][0]["labels"]["team"], "ops");
    assert_eq!(firing["alerts"][0]["labels"]["check"], "backup");
    assert_eq!(firing["alerts"][0]["starts_at"], "2026-03-02T12:15:00Z");

    hb.clock.set(t0() + Duration::minutes(20));
    assert_eq!(hb.ping(&format!("{PING_KEY}/backup")).await, 200, "by ping key and name");
    hb.wait_alerts("backup", &[]).await;
    recorder.wait_for(2).await;
    assert_eq!(received(&recorder), [pair("HeartbeatMissing", "firing"), pair("HeartbeatMissing", "resolved")]);
    assert_eq!(hb.status("backup").await, "up");
    let metrics = hb.metrics();
    assert!(metrics.contains("checkit_heartbeat_status{check=\"backup\",status=\"up\"} 1"), "{metrics}");
    assert!(metrics.contains("checkit_heartbeat_pings_total{check=\"backup\",kind=\"success\"} 2"), "{metrics}");
    hb.stop().await;
}

/// A heartbeat that goes down inside one of its maintenance windows tells
/// nobody until the window ends; then, still down, it does.
#[tokio::test]
async fn a_miss_inside_a_maintenance_window_is_told_when_the_window_ends() {
    let recorder = Recorder::start().await;
    let config = PERIOD_CHECK.replace(
        "labels: {team: ops}}",
        "labels: {team: ops}, maintenance: [{start: \"2026-03-02T12:12:00Z\", end: \"2026-03-02T12:30:00Z\"}]}",
    );
    let hb = TestHeartbeats::start(&webhook_bridge(&recorder), &config, t0()).await;
    assert_eq!(hb.ping(BACKUP).await, 200);
    hb.at(t0(), "backup", "up").await;
    hb.at(t0() + Duration::minutes(15), "backup", "down").await;
    hb.at(t0() + Duration::minutes(29), "backup", "down").await;
    assert!(hb.alerts("backup").await.is_empty(), "no alert inside the window");
    assert!(recorder.requests().is_empty(), "nobody told inside the window");
    hb.clock.set(t0() + Duration::minutes(30));
    hb.wait_alerts("backup", &["HeartbeatMissing"]).await;
    recorder.wait_for(1).await;
    assert_eq!(received(&recorder), [pair("HeartbeatMissing", "firing")]);
    let firing: serde_json::Value = serde_json::from_str(&recorder.requests()[0].body).expect("json");
    assert_eq!(firing["alerts"][0]["starts_at"], "2026-03-02T12:15:00Z", "down since the deadline");
    hb.stop().await;
}

#[tokio::test]
async fn cron_in_a_time_zone_follows_the_spring_forward_change() {
    let recorder = Recorder::start().await;
    let yaml = format!(
        "checks:\n- {{name: report, uuid: {REPORT}, schedule: '0 3 * * *', timezone: Europe/Berlin, grace: 20m}}\n"
    );
    // Saturday 2026-03-28 03:00 CET = 02:00 UTC; Berlin moves to CEST on Sunday.
    let saturday = Utc.with_ymd_and_hms(2026, 3, 28, 2, 0, 5).single().expect("time");
    let hb = TestHeartbeats::start(&webhook_bridge(&recorder), &yaml, saturday).await;
    assert_eq!(hb.ping(REPORT).await, 200);
    // Sunday 03:00 CEST is 01:00 UTC: 23 hours later, not 24.
    let sunday_slot = Utc.with_ymd_and_hms(2026, 3, 29, 1, 0, 0).single().expect("time");
    assert_eq!(hb.check("report").await["next_due"], "2026-03-29T01:00:00Z");
    hb.at(sunday_slot - Duration::seconds(1), "report", "up").await;
    hb.at(sunday_slot, "report", "late").await;
    hb.at(sunday_slot + Duration::minutes(20), "report", "down").await;
    recorder.wait_for(1).await;
    assert_eq!(received(&recorder), [pair("HeartbeatMissing", "firing")]);
    // The late run arrives; Monday's slot is 03:00 CEST = 01:00 UTC again.
    hb.clock.set(sunday_slot + Duration::minutes(25));
    assert_eq!(hb.ping(REPORT).await, 200);
    recorder.wait_for(2).await;
    assert_eq!(hb.check("report").await["next_due"], "2026-03-30T01:00:00Z");
    hb.stop().await;
}

#[tokio::test]
async fn start_fail_exit_codes_run_ids_log_and_bodies() {
    let recorder = Recorder::start().await;
    let hb = TestHeartbeats::start(&webhook_bridge(&recorder), PERIOD_CHECK, t0()).await;
    let (status, headers, _) = hb.send("POST", &format!("/ping/{BACKUP}/start?rid=run-1"), "").await;
    assert_eq!(status, 200);
    assert_eq!(headers["ping-body-limit"], "10000");
    hb.at(t0(), "backup", "started").await;
    hb.clock.set(t0() + Duration::minutes(3));
    assert_eq!(hb.send("POST", &format!("/ping/{BACKUP}/0?rid=run-1"), "all 42 files copied").await.0, 200);
    let check = hb.check("backup").await;
    assert_eq!(check["status"], "up");
    let last = &check["pings"][0];
    assert_eq!((last["kind"].as_str(), last["exit_status"].as_u64()), (Some("success"), Some(0)));
    assert_eq!(last["duration_seconds"], 180.0, "rid paired the start with its end");
    assert_eq!(last["body"], "all 42 files copied");

    // A failure is down at once and notifies; a log ping changes nothing.
    hb.clock.set(t0() + Duration::minutes(4));
    assert_eq!(hb.send("POST", &format!("/ping/{BACKUP}/3"), "rsync: connection refused").await.0, 200);
    hb.wait_alerts("backup", &["HeartbeatFailed"]).await;
    assert_eq!(hb.status("backup").await, "down");
    assert_eq!(hb.send("POST", &format!("/ping/{BACKUP}/log"), "still retrying").await.0, 200);
    assert_eq!(hb.status("backup").await, "down");
    let pings = hb.check("backup").await["pings"].clone();
    assert_eq!(pings[0]["kind"], "log");
    assert_eq!((pings[1]["kind"].as_str(), pings[1]["exit_status"].as_u64()), (Some("fail"), Some(3)));
    assert_eq!(hb.ping(&format!("{BACKUP}/fail")).await, 200);
    // HEAD works; a success resolves the failure.
    assert_eq!(hb.send("HEAD", &format!("/ping/{BACKUP}"), "").await.0, 200);
    hb.wait_alerts("backup", &[]).await;
    recorder.wait_for(2).await;
    assert_eq!(received(&recorder), [pair("HeartbeatFailed", "firing"), pair("HeartbeatFailed", "resolved")]);

    // A run that outlives start_grace is missing, and a later start does not resolve it.
    hb.clock.set(t0() + Duration::minutes(5));
    assert_eq!(hb.ping(&format!("{PING_KEY}/backup/start")).await, 200);
    hb.at(t0() + Duration::minutes(35) + Duration::milliseconds(1), "backup", "down").await;
    hb.wait_alerts("backup", &["HeartbeatMissing"]).await;
    assert_eq!(hb.ping(&format!("{BACKUP}/start")).await, 200);
    assert_eq!(hb.status("backup").await, "started");
    assert_eq!(hb.alerts("backup").await, ["HeartbeatMissing"]);

    // Bodies are kept up to 10,000 bytes.
    let long = "x".repeat(25_000);
    assert_eq!(hb.send("POST", &format!("/ping/{BACKUP}/log"), &long).await.0, 200);
    let last = hb.check("backup").await["pings"][0].clone();
    assert_eq!((last["body"].as_str().map(str::len), last["body_truncated"].as_bool()), (Some(10_000), Some(true)));

    // Refusals say why and change nothing.
    let unknown = "9f9f9f9f-9f9f-4f9f-9f9f-9f9f9f9f9f9f";
    let (status, _, body) = hb.send("GET", &format!("/ping/{unknown}"), "").await;
    assert_eq!((status, body.as_str()), (404, format!("no heartbeat check has the UUID {unknown}\n").as_str()));
    let (status, _, body) = hb.send("GET", &format!("/ping/{BACKUP}/256"), "").await;
    assert_eq!((status, body.as_str()), (400, "exit status 256 is out of range: it must be 0-255\n"));
    assert_eq!(hb.send("GET", "/ping/not-a-uuid", "").await.0, 404);
    assert_eq!(hb.send("GET", "/ping/wrong-key-wrong-key/backup", "").await.0, 404);
    assert_eq!(hb.send("PUT", &format!("/ping/{BACKUP}"), "").await.0, 405);
    assert_eq!(hb.send("GET", &format!("/ping/{BACKUP}?rid="), "").await.0, 400);
    assert_eq!(hb.status("backup").await, "started");
    let metrics = hb.metrics();
    assert!(metrics.contains("checkit_heartbeat_pings_refused_total{reason=\"unknown_check\"} 3"), "{metrics}");
    hb.stop().await;
}

#[tokio::test]
async fn too_early_pings_count_as_runs_and_min_interval_alerts_ran_too_often() {
    let recorder = Recorder::start().await;
    let yaml = format!("checks:\n- {{name: backup, uuid: {BACKUP}, period: 1h, grace: 10m, min_interval: 30m}}\n");
    let hb = TestHeartbeats::start(&webhook_bridge(&recorder), &yaml, t0()).await;
    assert_eq!(hb.ping(BACKUP).await, 200);
    hb.clock.set(t0() + Duration::minutes(5));
    assert_eq!(hb.ping(BACKUP).await, 200, "55 minutes early");
    hb.wait_alerts("backup", &["HeartbeatTooOften"]).await;
    let check = hb.check("backup").await;
    assert_eq!(check["status"], "up");
    assert_eq!(check["next_due"], "2026-03-02T13:05:00Z", "the early run restarts the period");
    hb.clock.set(t0() + Duration::minutes(60));
    assert_eq!(hb.ping(BACKUP).await, 200);
    hb.wait_alerts("backup", &[]).await;
    recorder.wait_for(2).await;
    assert_eq!(received(&recorder), [pair("HeartbeatTooOften", "firing"), pair("HeartbeatTooOften", "resolved")]);
    hb.stop().await;
}

#[tokio::test]
async fn pings_over_the_rate_are_refused_without_touching_the_state() {
    let recorder = Recorder::start().await;
    let yaml = format!("max_pings_per_minute: 3\nchecks:\n- {{name: backup, uuid: {BACKUP}, period: 1h, grace: 1m}}\n");
    let hb = TestHeartbeats::start(&webhook_bridge(&recorder), &yaml, t0()).await;
    for _ in 0..3 {
        assert_eq!(hb.ping(BACKUP).await, 200);
    }
    let before = hb.check("backup").await;
    hb.clock.set(t0() + Duration::seconds(1));
    let (status, headers, body) = hb.send("POST", &format!("/ping/{BACKUP}/fail"), "").await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(headers["retry-after"], "19");
    let after = hb.check("backup").await;
    assert_eq!(
        (after["status"].clone(), after["last_ping"].clone()),
        (before["status"].clone(), before["last_ping"].clone())
    );
    assert_eq!(after["pings"].as_array().map(Vec::len), Some(3));
    hb.clock.set(t0() + Duration::seconds(20));
    assert_eq!(hb.ping(&format!("{BACKUP}/fail")).await, 200);
    assert_eq!(hb.status("backup").await, "down");
    hb.stop().await;
}

#[tokio::test]
async fn scripts_push_results_with_a_per_check_token() {
    let recorder = Recorder::start().await;
    let yaml = format!(
        "checks:\n- {{name: report, uuid: {REPORT}, period: 1h, grace: 5m, token_file: $TOKEN_FILE}}\n\
         - {{name: backup, uuid: {BACKUP}, period: 1h, grace: 5m}}\n"
    );
    let hb = TestHeartbeats::start(&webhook_bridge(&recorder), &yaml, t0()).await;
    let post = |name: &str, token: Option<&str>, body: &str| {
        let mut request = hb.client.post(hb.url(&format!("/api/v1/checks/{name}/results"))).body(body.to_string());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move {
            let response = request.send().await.expect("request");
            (response.status().as_u16(), response.text().await.expect("body"))
        }
    };
    let failed = r#"{"success": false, "duration": 2.5, "message": "3 of 40 reports failed"}"#;
    assert_eq!(post("report", None, failed).await.0, 401);
    assert_eq!(post("report", Some("wrong"), failed).await.0, 401);
    assert_eq!(post("nope", Some("report-s3cret"), failed).await.0, 404);
    assert_eq!(post("backup", Some("report-s3cret"), failed).await.0, 403, "a check without a token takes no results");
    let (status, body) = post("report", Some("report-s3cret"), r#"{"success": "yes"}"#).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(post("report", Some("report-s3cret"), r#"{"success": true, "duration": -1}"#).await.0, 400);
    assert_eq!(hb.status("report").await, "new", "refused results change nothing");

    assert_eq!(post("report", Some("report-s3cret"), failed).await.0, 200);
    hb.wait_alerts("report", &["HeartbeatFailed"]).await;
    let last = hb.check("report").await["pings"][0].clone();
    assert_eq!(last["source"], "results");
    assert_eq!(last["duration_seconds"], 2.5);
    assert_eq!(last["body"], "3 of 40 reports failed");
    assert_eq!(post("report", Some("report-s3cret"), r#"{"success": true, "duration": 1.25}"#).await.0, 200);
    hb.wait_alerts("report", &[]).await;
    recorder.wait_for(2).await;
    assert_eq!(received(&recorder), [pair("HeartbeatFailed", "firing"), pair("HeartbeatFailed", "resolved")]);
    hb.stop().await;
}

#[tokio::test]
async fn state_and_firing_alerts_survive_a_restart_and_pause_resolves() {
    let recorder = Recorder::start().await;
    let hb = TestHeartbeats::start(&webhook_bridge(&recorder), PERIOD_CHECK, t0()).await;
    assert_eq!(hb.ping(BACKUP).await, 200);
    hb.at(t0() + Duration::minutes(15), "backup", "down").await;
    recorder.wait_for(1).await;
    let config_path = hb.dir.path().to_path_buf();
    let (bridge, dir) = hb.stop().await;
    // Restarted an hour later: still down, and the alert is not told twice.
    bridge.clock.set(t0() + Duration::minutes(75));
    let hb = TestHeartbeats::start_with(bridge, heartbeat_config(PERIOD_CHECK, &config_path), dir).await;
    assert_eq!(hb.status("backup").await, "down");
    assert_eq!(hb.alerts("backup").await, ["HeartbeatMissing"]);
    let response = hb.client.post(hb.url("/api/v1/heartbeats/backup/pause")).send().await.expect("pause");
    assert_eq!(response.status(), 200);
    hb.wait_alerts("backup", &[]).await;
    assert_eq!(hb.status("backup").await, "paused");
    recorder.wait_for(2).await;
    assert_eq!(received(&recorder), [pair("HeartbeatMissing", "firing"), pair("HeartbeatMissing", "resolved")]);
    // A ping resumes; resuming through the API waits for the next ping as new.
    assert_eq!(hb.ping(BACKUP).await, 200);
    assert_eq!(hb.status("backup").await, "up");
    hb.client.post(hb.url("/api/v1/heartbeats/backup/pause")).send().await.expect("pause");
    hb.client.post(hb.url("/api/v1/heartbeats/backup/resume")).send().await.expect("resume");
    assert_eq!(hb.status("backup").await, "new");
    assert_eq!(recorder.count(), 2);
    hb.stop().await;
}

#[tokio::test]
async fn late_down_up_reach_the_real_smtp_peer() {
    let smtp = peer!(SmtpServer::start(SmtpOpts::default()).await);
    let secrets = tempfile::tempdir().expect("dir");
    let bridge_yaml = format!(
        "contacts: {{alice: {{email: 'Alice <alice@example.com>'}}}}\n\
         routes: [{{receivers: [heartbeats], contacts: [alice]}}]\nchannels:\n{}",
        email_block(&smtp, secrets.path())
    );
    let now = Utc::now();
    let hb = TestHeartbeats::start(&bridge_yaml, PERIOD_CHECK, now).await;
    assert_eq!(hb.ping(BACKUP).await, 200);
    hb.at(now + Duration::minutes(10), "backup", "late").await;
    assert!(smtp.messages().is_empty(), "late is not notified");
    hb.at(now + Duration::minutes(15), "backup", "down").await;
    let mails = smtp.wait_for_messages(1, std::time::Duration::from_secs(30)).await;
    assert_eq!(mails[0].rcpt_tos, ["alice@example.com"]);
    assert!(mails[0].data.contains("[FIRING:1]") && mails[0].data.contains("HeartbeatMissing"), "{}", mails[0].data);
    hb.clock.set(now + Duration::minutes(16));
    assert_eq!(hb.ping(BACKUP).await, 200);
    let mails = smtp.wait_for_messages(2, std::time::Duration::from_secs(30)).await;
    assert!(mails[1].data.contains("[RESOLVED]") && mails[1].data.contains("HeartbeatMissing"), "{}", mails[1].data);
    assert_eq!(hb.clock.now(), now + Duration::minutes(16));
    hb.stop().await;
}

#[tokio::test]
async fn in_the_app_pings_need_no_operator_login_but_the_api_does() {
    use checkit::app::Options;
    use checkit::http::webconfig::Web;
    let dir = tempfile::tempdir().expect("dir");
    let hash = bcrypt::hash("s3cret", 4).expect("hash");
    let web_path = dir.path().join("web.yml");
    std::fs::write(&web_path, format!("basic_auth_users:\n  admin: '{hash}'\n")).expect("write");
    let web = Web::load(web_path.to_str().expect("utf-8")).expect("web config loads");
    let config = format!(
        "heartbeats:\n  store: {{sqlite: {{path: {}}}}}\n  checks:\n  - {{name: backup, uuid: {BACKUP}, period: 1h, grace: 5m}}\n",
        dir.path().join("hb.db").display()
    );
    let app = crate::support::app::start_app_with(&config, Options::default(), web).await;
    let client = reqwest::Client::new();
    let ping = client.post(app.url(&format!("/ping/{BACKUP}"))).body("done").send().await.expect("ping");
    assert_eq!(ping.status(), 200);
    assert_eq!(app.get("/api/v1/heartbeats").await.0, 401);
    let listed: serde_json::Value = client
        .get(app.url("/api/v1/heartbeats"))
        .basic_auth("admin", Some("s3cret"))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(listed["checks"][0]["name"], "backup");
    assert_eq!(listed["checks"][0]["status"], "up");
    let metrics = client
        .get(app.url("/metrics"))
        .basic_auth("admin", Some("s3cret"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(metrics.contains("checkit_heartbeat_status{check=\"backup\",status=\"up\"} 1"), "{metrics}");
    assert!(metrics.contains("checkit_heartbeat_pings_total{check=\"backup\",kind=\"success\"} 1"), "{metrics}");
}

#[tokio::test]
async fn a_reload_adds_and_removes_checks_and_keeps_the_state_of_the_others() {
    let dir = tempfile::tempdir().expect("dir");
    let store = dir.path().join("hb.db").display().to_string();
    let config = |checks: &str| format!("heartbeats:\n  store: {{sqlite: {{path: {store}}}}}\n  checks:\n{checks}");
    let backup = format!("  - {{name: backup, uuid: {BACKUP}, period: 1h, grace: 5m}}\n");
    let report = format!("  - {{name: report, uuid: {REPORT}, period: 1h, grace: 5m}}\n");
    let app = crate::support::app::start_app(&config(&backup)).await;
    let client = reqwest::Client::new();
    assert_eq!(client.get(app.url(&format!("/ping/{BACKUP}"))).send().await.expect("ping").status(), 200);
    assert_eq!(client.get(app.url(&format!("/ping/{REPORT}"))).send().await.expect("ping").status(), 404);
    std::fs::write(&app.config_path, config(&format!("{backup}{report}"))).expect("rewrite config");
    assert_eq!(client.post(app.url("/-/reload")).send().await.expect("reload").status(), 200);
    assert_eq!(client.get(app.url(&format!("/ping/{REPORT}/start"))).send().await.expect("ping").status(), 200);
    let listed: serde_json::Value =
        client.get(app.url("/api/v1/heartbeats")).send().await.expect("list").json().await.expect("json");
    let statuses: Vec<(String, String)> = listed["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|check| (check["name"].as_str().expect("name").into(), check["status"].as_str().expect("status").into()))
        .collect();
    assert_eq!(statuses, [pair("backup", "up"), pair("report", "started")]);
    std::fs::write(&app.config_path, config(&report)).expect("rewrite config");
    assert_eq!(client.post(app.url("/-/reload")).send().await.expect("reload").status(), 200);
    assert_eq!(client.get(app.url(&format!("/ping/{BACKUP}"))).send().await.expect("ping").status(), 404);
    assert_eq!(client.get(app.url("/api/v1/heartbeats/backup")).send().await.expect("get").status(), 404);
    // A broken heartbeats section keeps the running config.
    std::fs::write(&app.config_path, config("  - {name: report, period: 1h}\n")).expect("rewrite config");
    assert_eq!(client.post(app.url("/-/reload")).send().await.expect("reload").status(), 500);
    assert_eq!(client.get(app.url(&format!("/ping/{REPORT}"))).send().await.expect("ping").status(), 200);
}
