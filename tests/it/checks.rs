//! Scheduled checks end to end: the real app with a test clock, real
//! loopback targets (a TCP listener the test opens and closes, nginx), the
//! bridge delivering to a real SMTP server, the JSON API, pauses across
//! restarts, maintenance, and the Prometheus side checked by promtool.

use crate::peer;
use crate::support::peers::{Nginx, NginxOpts, SmtpOpts, SmtpServer};
use checkit::app::{App, ConfigSource, Options};
use checkit::bridge::clock::{Clock, TestClock};
use checkit::http::webconfig::Web;
use checkit::settings::Config;
use chrono::{DateTime, Datelike, TimeZone, Utc};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The real app on loopback, with its config (and stores) in `dir`.
struct Checkit {
    app: Arc<App>,
    addr: SocketAddr,
    clock: Arc<TestClock>,
    client: reqwest::Client,
}

impl Checkit {
    async fn start(dir: &Path, yaml: &str, clock: Arc<TestClock>) -> Checkit {
        Self::start_with(dir, yaml, clock, Web::default()).await
    }

    async fn start_with(dir: &Path, yaml: &str, clock: Arc<TestClock>, web: Web) -> Checkit {
        let path = dir.join("checkit.yml");
        std::fs::write(&path, yaml).expect("write config");
        let config = Config::load(&path).unwrap_or_else(|err| panic!("test config does not load: {err}"));
        let app = App::new_with_clock(config, ConfigSource::File(path), Options::default(), web, clock.clone())
            .await
            .expect("app starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        app.serve(listener, app.router(), &Default::default());
        Checkit { app, addr, clock, client: reqwest::Client::new() }
    }

    async fn stop(self) {
        self.app.shutdown().await;
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let response = self.client.get(self.url(path)).send().await.expect("request");
        (response.status().as_u16(), response.text().await.expect("body"))
    }

    async fn json(&self, path: &str) -> Value {
        let (status, body) = self.get(path).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).expect("JSON")
    }

    async fn post(&self, path: &str) -> (u16, Value) {
        let response = self.client.post(self.url(path)).send().await.expect("request");
        (response.status().as_u16(), response.json().await.expect("JSON"))
    }

    async fn check(&self, name: &str) -> Value {
        self.json(&format!("/api/v1/checks/{name}")).await["check"].clone()
    }

    /// The number of deliveries in the history, once there is any (waits up to 5 s).
    async fn deliveries(&self) -> u64 {
        for _ in 0..100 {
            if self.json("/api/v1/deliveries").await["total"] != 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.json("/api/v1/deliveries").await["total"].as_u64().unwrap_or(0)
    }

    /// Moves the clock one interval on and waits for `name` to have run.
    async fn step(&self, name: &str, interval: chrono::Duration) -> Value {
        let before = self.check(name).await["last"]["at"].clone();
        self.clock.advance(interval);
        for _ in 0..500 {
            let check = self.check(name).await;
            if check["last"]["at"] != before {
                return check;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{name} did not run after the clock moved to {}", self.clock.now());
    }
}

/// A TCP service the test switches on and off (a refused port when off).
struct Switch {
    addr: SocketAddr,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Switch {
    async fn on() -> Switch {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        Switch { addr, task: Some(Self::serve(listener)) }
    }

    fn serve(listener: tokio::net::TcpListener) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                drop(stream);
            }
        })
    }

    async fn set(&mut self, up: bool) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
        if up {
            let listener = tokio::net::TcpListener::bind(self.addr).await.expect("rebind the same port");
            self.task = Some(Self::serve(listener));
        }
    }
}

/// The text of a mail as a person reads it: soft line breaks and `=3D` of
/// quoted-printable undone (the only escapes these ASCII messages use).
fn readable(mail: &crate::support::peers::ReceivedMail) -> String {
    mail.data.replace("=\r\n", "").replace("=\n", "").replace("=3D", "=")
}

fn start_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 8, 0, 0).unwrap()
}

const MINUTE: chrono::Duration = chrono::Duration::minutes(1);

#[tokio::test]
async fn thresholds_incident_reminder_and_resolved_mail_through_the_bridge() {
    let smtp = peer!(SmtpServer::start(SmtpOpts::default()).await);
    let mut service = Switch::on().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "modules:\n  tcp_connect: {{prober: tcp, timeout: 2s}}\n\
         checks:\n- name: db\n  module: tcp_connect\n  target: '{}'\n  interval: 1m\n  \
         successes_before_up: 2\n  repeat_interval: 5m\n  labels: {{team: ops}}\n\
         bridge:\n  store: {{sqlite: {{path: '{}'}}}}\n  contacts: {{alice: {{email: alice@example.com}}}}\n  \
         routes: [{{matchers: ['alertname=\"CheckDown\"', 'team=\"ops\"'], contacts: [alice]}}]\n  \
         channels:\n    email: {{smarthost: localhost, port: {}, from: checkit@checkit.test, tls: none}}\n",
        service.addr,
        dir.path().join("bridge.db").display(),
        smtp.addr.port()
    );
    let checkit = Checkit::start(dir.path(), &yaml, TestClock::new(start_time())).await;
    assert_eq!(checkit.check("db").await["state"], "unknown");
    assert_eq!(checkit.step("db", MINUTE).await["state"], "unknown", "one success of two");
    let up = checkit.step("db", MINUTE).await;
    assert_eq!(up["state"], "up");

    service.set(false).await;
    let first_failure = checkit.step("db", MINUTE).await;
    assert_eq!(first_failure["state"], "up", "one failure of two");
    assert_eq!(first_failure["last"]["reason"], "refused");
    let down = checkit.step("db", MINUTE).await;
    assert_eq!(down["state"], "down");
    assert_eq!(down["incident"]["started_at"], first_failure["last"]["at"], "the outage starts at the first failure");
    let mails = smtp.wait_for_messages(1, Duration::from_secs(30)).await;
    let text = readable(&mails[0]);
    assert!(text.contains("Subject: [FIRING:1] db"), "{text}");
    assert!(text.contains("summary = db is down"), "{text}");
    assert!(text.contains("reason = refused"), "{text}");
    assert!(text.contains("alertname = CheckDown"), "{text}");

    for _ in 0..4 {
        checkit.step("db", MINUTE).await;
    }
    assert_eq!(smtp.messages().len(), 1, "no reminder before repeat_interval");
    checkit.step("db", MINUTE).await;
    let mails = smtp.wait_for_messages(2, Duration::from_secs(30)).await;
    assert!(readable(&mails[1]).contains("db is still down (for 6m0s)"), "{}", mails[1].data);

    service.set(true).await;
    let first_success = checkit.step("db", MINUTE).await;
    assert_eq!(first_success["state"], "down", "one success of two");
    let recovered = checkit.step("db", MINUTE).await;
    assert_eq!(recovered["state"], "up");
    let mails = smtp.wait_for_messages(3, Duration::from_secs(30)).await;
    let text = readable(&mails[2]);
    assert!(text.contains("[RESOLVED]"), "{text}");
    assert!(text.contains("db is up again after 7m0s"), "{text}");
    assert!(text.contains("outage_duration = 7m0s"), "{text}");

    let incidents = checkit.json("/api/v1/checks/db/incidents").await;
    let incident = &incidents["incidents"][0];
    assert_eq!(incidents["incidents"].as_array().map(Vec::len), Some(1));
    assert_eq!(incident["duration_seconds"], 420.0);
    assert_eq!((incident["phase"].as_str(), incident["reason"].as_str()), (Some("connect"), Some("refused")));
    assert_eq!(incident["ended_at"], first_success["last"]["at"]);
    let (status, csv) = checkit.get("/api/v1/checks/db/incidents?format=csv").await;
    assert_eq!(status, 200);
    assert!(csv.starts_with("id,started_at,ended_at,duration_seconds,phase,reason\n1,"), "{csv}");
    assert!(csv.contains(",420,connect,refused"), "{csv}");

    // 11 runs: 2 + 2 successes, 7 failures.
    let uptime = checkit.json("/api/v1/checks/db/uptime?window=24h").await;
    assert_eq!((uptime["runs"].as_u64(), uptime["successes"].as_u64()), (Some(11), Some(4)), "{uptime}");
    let results = checkit.json("/api/v1/checks/db/results?limit=5").await;
    assert_eq!(results["results"].as_array().map(Vec::len), Some(5));
    let next = results["next_to"].as_str().expect("a next page");
    let rest = checkit.json(&format!("/api/v1/checks/db/results?to={next}")).await;
    assert_eq!(rest["results"].as_array().map(Vec::len), Some(6));
    checkit.stop().await;
}

#[tokio::test]
async fn maintenance_runs_are_stored_silenced_and_left_out_of_uptime() {
    let dir = tempfile::tempdir().unwrap();
    let refused = crate::support::closed_port();
    let start = start_time();
    let yaml = format!(
        "modules:\n  tcp_connect: {{prober: tcp, timeout: 2s}}\n\
         check_options:\n  maintenance:\n  - matchers: ['team=\"db\"']\n    start: '{}'\n    end: '{}'\n\
         checks:\n- {{name: db, module: tcp_connect, target: '{refused}', interval: 1m, labels: {{team: db}}}}\n\
         bridge:\n  store: {{sqlite: {{path: '{}'}}}}\n  contacts: {{ops: {{log: ops}}}}\n  routes: [{{contacts: [ops]}}]\n",
        start.to_rfc3339(),
        (start + chrono::Duration::minutes(3)).to_rfc3339(),
        dir.path().join("bridge.db").display(),
    );
    let checkit = Checkit::start(dir.path(), &yaml, TestClock::new(start)).await;
    for _ in 0..2 {
        let check = checkit.step("db", MINUTE).await;
        assert_eq!(check["state"], "maintenance");
        assert_eq!(check["last"]["maintenance"], true);
    }
    let deliveries = checkit.json("/api/v1/deliveries").await;
    assert_eq!(deliveries["total"], 0, "nobody is told during maintenance");
    checkit.step("db", MINUTE).await;
    let down = checkit.step("db", MINUTE).await;
    assert_eq!(down["state"], "down", "failures count again after the window: {down}");
    let uptime = checkit.json("/api/v1/checks/db/uptime?window=24h").await;
    assert_eq!(uptime["maintenance_runs"], 2, "{uptime}");
    assert_eq!(uptime["runs"], 2, "{uptime}");
    assert_eq!(uptime["uptime"], 0.0, "{uptime}");
    let results = checkit.json("/api/v1/checks/db/results").await;
    assert_eq!(results["results"].as_array().map(Vec::len), Some(4), "maintenance runs are stored too");
    assert_eq!(checkit.deliveries().await, 1, "the outage after the window is told");
    checkit.stop().await;
}

#[tokio::test]
async fn pause_by_api_survives_restart_and_reload_keeps_unchanged_state() {
    let dir = tempfile::tempdir().unwrap();
    let service = Switch::on().await;
    let check =
        |name: &str| format!("- {{name: {name}, module: tcp_connect, target: '{}', interval: 1m}}\n", service.addr);
    let base = "modules:\n  tcp_connect: {prober: tcp, timeout: 2s}\ncheck_options: {defaults: {failures_before_down: 1}}\nchecks:\n";
    let clock = TestClock::new(start_time());
    let checkit = Checkit::start(dir.path(), &format!("{base}{}", check("a")), clock.clone()).await;
    let up = checkit.step("a", MINUTE).await;
    assert_eq!(up["state"], "up");

    let (status, body) = checkit.post("/api/v1/checks/a/pause").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(checkit.check("a").await["state"], "paused");
    let (status, body) = checkit.post("/api/v1/checks/nope/pause").await;
    assert_eq!((status, body["error"].as_str()), (404, Some("no check named \"nope\"")));
    let (status, body) = checkit.get("/api/v1/checks/a/results?limit=0&format=xml").await;
    assert_eq!(status, 400);
    let error: Value = serde_json::from_str(&body).expect("JSON");
    let error = error["error"].as_str().unwrap_or_default();
    assert!(error.contains("limit: must be") && error.contains("format: \"xml\" is not csv or json"), "{error}");

    // A reload that adds a check keeps a's pause, state and last result.
    std::fs::write(dir.path().join("checkit.yml"), format!("{base}{}{}", check("a"), check("b"))).unwrap();
    checkit.app.reload().await.expect("reload");
    let after = checkit.check("a").await;
    assert_eq!((after["state"].as_str(), after["last"].clone()), (Some("paused"), up["last"].clone()));
    let b = checkit.step("b", MINUTE).await;
    assert_eq!(b["state"], "up");
    assert_eq!(checkit.check("a").await["last"], up["last"], "a paused check does not run");
    let (status, _) = checkit.post("/api/v1/checks/resume").await;
    assert_eq!(status, 200);
    assert_eq!(checkit.check("a").await["state"], "up", "resume shows the kept health at once");
    let (status, body) = checkit.post("/api/v1/checks/pause").await;
    assert_eq!((status, body["checks"].as_array().map(Vec::len)), (200, Some(2)));
    checkit.stop().await;

    let again = Checkit::start(dir.path(), &format!("{base}{}{}", check("a"), check("b")), clock).await;
    for name in ["a", "b"] {
        assert_eq!(again.check(name).await["state"], "paused", "{name}'s pause survives a restart");
    }
    let (status, _) = again.post("/api/v1/checks/b/resume").await;
    assert_eq!(status, 200);
    assert_eq!(again.check("b").await["state"], "up", "health survives a restart too");
    again.stop().await;
}

#[tokio::test]
async fn metrics_blackbox_families_and_service_discovery() {
    let Some(promtool) = crate::support::require_binary("promtool", "prometheus") else { return };
    let nginx = peer!(Nginx::start(NginxOpts::default()).await);
    let dir = tempfile::tempdir().unwrap();
    let refused = crate::support::closed_port();
    let yaml = format!(
        "modules:\n  http_2xx: {{prober: http, timeout: 5s}}\n  tcp_connect: {{prober: tcp, timeout: 2s}}\n\
         checks:\n- {{name: web, module: http_2xx, target: '{}', interval: 1m, labels: {{team: web}}}}\n\
         - {{name: gone, module: tcp_connect, target: '{refused}', interval: 1m, failures_before_down: 1}}\n",
        nginx.url("/")
    );
    let checkit = Checkit::start(dir.path(), &yaml, TestClock::new(start_time())).await;
    checkit.step("web", MINUTE).await;
    if checkit.check("gone").await["last"].is_null() {
        checkit.step("gone", MINUTE).await;
    }
    checkit.app.checks().expect("checks run").refresh_uptime().await.expect("uptime");

    let (status, metrics) = checkit.get("/metrics").await;
    assert_eq!(status, 200);
    crate::support::promtool_check_metrics(&promtool, "/metrics", &metrics);
    let families = crate::support::app::parse_exposition(&metrics);
    let value = |family: &str, check: &str, extra: Option<(&str, &str)>| {
        families[family]
            .samples
            .iter()
            .find(|(labels, _)| {
                labels.get("check").map(String::as_str) == Some(check)
                    && extra.is_none_or(|(name, value)| labels.get(name).map(String::as_str) == Some(value))
            })
            .map(|(_, value)| *value)
    };
    assert_eq!(value("checkit_check_state", "web", Some(("state", "up"))), Some(1.0));
    assert_eq!(value("checkit_check_state", "gone", Some(("state", "down"))), Some(1.0));
    assert_eq!(value("checkit_check_last_success", "gone", None), Some(0.0));
    assert_eq!(value("checkit_check_uptime_ratio", "web", Some(("window", "24h"))), Some(1.0));
    assert_eq!(value("checkit_check_paused", "web", Some(("team", "web"))), Some(0.0), "the check's labels");
    assert!(value("checkit_check_last_run_timestamp_seconds", "web", None).is_some());
    for name in checkit::checks::metrics::METRIC_NAMES {
        assert!(families.contains_key(*name) || name.ends_with("_total"), "{name} missing");
    }

    let (status, blackbox) = checkit.get("/metrics/checks").await;
    assert_eq!(status, 200);
    crate::support::promtool_check_metrics(&promtool, "/metrics/checks", &blackbox);
    let families = crate::support::app::parse_exposition(&blackbox);
    let success: Vec<(String, String, f64)> = families["probe_success"]
        .samples
        .iter()
        .map(|(labels, value)| (labels["instance"].clone(), labels["module"].clone(), *value))
        .collect();
    assert_eq!(
        success,
        [(refused.to_string(), "tcp_connect".to_string(), 0.0), (nginx.url("/"), "http_2xx".to_string(), 1.0)]
    );
    assert!(families.contains_key("probe_http_status_code"), "{blackbox}");

    let sd = checkit.json("/api/v1/sd").await;
    assert_eq!(sd[0]["targets"][0], Value::from(refused.to_string()), "{sd}");
    assert_eq!(sd[0]["labels"]["__param_module"], "tcp_connect");
    assert_eq!(sd[1]["labels"]["team"], "web");
    checkit.stop().await;
}

#[tokio::test]
async fn check_files_are_reread_on_change_and_a_bad_file_keeps_the_running_checks() {
    let dir = tempfile::tempdir().unwrap();
    let more = dir.path().join("more");
    std::fs::create_dir(&more).unwrap();
    let check = |name: &str| format!("- {{name: {name}, module: tcp_connect, target: '127.0.0.1:1'}}\n");
    std::fs::write(more.join("a.yml"), check("a")).unwrap();
    let yaml = "modules:\n  tcp_connect: {prober: tcp, timeout: 1s}\n\
                check_options: {files_refresh_interval: 100ms}\ncheck_files: ['more/*.yml']\n";
    let checkit = Checkit::start(dir.path(), yaml, TestClock::new(start_time())).await;
    let names = |checks: Value| -> Vec<String> {
        checks["checks"].as_array().unwrap().iter().map(|check| check["name"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(names(checkit.json("/api/v1/checks").await), ["a"]);
    let wait_for = |wanted: Vec<&'static str>| {
        let checkit = &checkit;
        async move {
            for _ in 0..200 {
                if names(checkit.json("/api/v1/checks").await) == wanted {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("checks never became {wanted:?}");
        }
    };
    std::fs::write(more.join("b.yml"), check("b")).unwrap();
    wait_for(vec!["a", "b"]).await;
    std::fs::write(more.join("c.yml"), "- {name: c, module: nope, target: x}\n").unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(names(checkit.json("/api/v1/checks").await), ["a", "b"], "a bad file changes nothing");
    std::fs::remove_file(more.join("c.yml")).unwrap();
    std::fs::remove_file(more.join("b.yml")).unwrap();
    wait_for(vec!["a"]).await;
    checkit.stop().await;
}

#[tokio::test]
async fn the_api_is_behind_the_web_config_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash("s3cret", 4).expect("hash");
    let web_path = dir.path().join("web.yml");
    std::fs::write(&web_path, format!("basic_auth_users:\n  ops: '{hash}'\n")).unwrap();
    let web = Web::load(web_path.to_str().unwrap()).expect("web config loads");
    let yaml = "modules:\n  tcp_connect: {prober: tcp, timeout: 1s}\n\
                checks: [{name: a, module: tcp_connect, target: '127.0.0.1:1'}]\n";
    let checkit = Checkit::start_with(dir.path(), yaml, TestClock::new(start_time()), web).await;
    for path in ["/api/v1/checks", "/api/v1/checks/a/results", "/api/v1/sd", "/metrics/checks"] {
        assert_eq!(checkit.get(path).await.0, 401, "{path}");
        let response =
            checkit.client.get(checkit.url(path)).basic_auth("ops", Some("s3cret")).send().await.expect("request");
        assert_eq!(response.status().as_u16(), 200, "{path}");
    }
    let response = checkit.client.post(checkit.url("/api/v1/checks/pause")).send().await.expect("request");
    assert_eq!(response.status().as_u16(), 401);
    checkit.stop().await;
}

/// A real Prometheus scrapes `/metrics/checks` with `honor_labels: true`
/// (the documented scrape config) and every query of the four community
/// blackbox dashboards returns data for the scheduled checks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn community_dashboards_show_scheduled_checks_through_prometheus() {
    use crate::ops_dashboards::{Api, resolve_variables, run_queries};
    use crate::support::grafana::{dashboards_in, substitute};
    let nginx = peer!(Nginx::start(NginxOpts::default()).await);
    let expired = peer!(Nginx::start(NginxOpts { leaf: crate::support::Leaf::Expired, ..NginxOpts::default() }).await);
    let closed = crate::support::closed_port();
    let yaml = format!(
        "modules:\n  http_tls_expired: {{prober: http, timeout: 5s, http: {{preferred_ip_protocol: ip4, tls_config: {{insecure_skip_verify: true}}}}}}\n  http_2xx: {{prober: http, timeout: 5s, http: {{preferred_ip_protocol: ip4}}}}\n  \
         http_tls: {{prober: http, timeout: 5s, http: {{preferred_ip_protocol: ip4, tls_config: {{ca_file: '{}'}}}}}}\n  \
         tcp_connect: {{prober: tcp, timeout: 2s, tcp: {{preferred_ip_protocol: ip4}}}}\n  \
         icmp: {{prober: icmp, timeout: 2s, icmp: {{preferred_ip_protocol: ip4}}}}\n\
         check_options: {{defaults: {{interval: 1s}}}}\n\
         checks:\n- {{name: web, module: http_2xx, target: '{}'}}\n- {{name: web-tls, module: http_tls, target: '{}'}}\n\
         - {{name: port, module: tcp_connect, target: '{}'}}\n- {{name: gone, module: tcp_connect, target: '{closed}'}}\n\
         - {{name: ping, module: icmp, target: 127.0.0.1}}\n- {{name: old-cert, module: http_tls_expired, target: '{}'}}\n",
        nginx.certs.ca.cert_path.display(),
        nginx.url("/"),
        nginx.tls_url("/"),
        nginx.addr,
        expired.tls_url("/"),
    );
    let app = crate::support::app::start_app(&yaml).await;
    let prometheus_yml = format!(
        "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nscrape_configs:\n\
         - job_name: blackbox\n  honor_labels: true\n  metrics_path: /metrics/checks\n  static_configs:\n  \
         - targets: ['{}']\n    labels: {{cluster: test, project: checkit, app: web}}\n",
        app.addr
    );
    let prometheus = peer!(crate::support::peers::Prometheus::start(&prometheus_yml, &[]).await);
    let api = Api { base: format!("http://{}", prometheus.addr), client: reqwest::Client::new() };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let ready = "count(count_over_time(probe_success{job=\"blackbox\"}[1m]) >= 3) == 6";
    while api.query(ready).await.map(|result| result.is_empty()).unwrap_or(true) {
        assert!(std::time::Instant::now() < deadline, "not scraped: {}", prometheus.diagnostics());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let instances = api.query("count by (instance, module) (probe_success)").await.expect("query");
    assert_eq!(instances.len(), 6, "instance is the target, not the exporter: {instances:?}");
    assert!(api.query("probe_success{exported_instance!=\"\"}").await.expect("query").is_empty());

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dashboards = dashboards_in(&root.join("tests/fixtures/community-dashboards"));
    assert_eq!(dashboards.len(), 4);
    let mut problems = Vec::new();
    let mut pending = Vec::new();
    for dashboard in &dashboards {
        let values = resolve_variables(&api, dashboard, &mut problems).await;
        for query in dashboard.queries() {
            let label = format!("{} / {} / {}", dashboard.name(), query.panel, query.ref_id);
            pending.push((label, substitute(&query.expr, &values)));
        }
    }
    let checked = pending.len();
    run_queries(&api, pending, Duration::from_secs(10), &mut problems).await;
    assert!(problems.is_empty(), "{} of {checked} dashboard queries failed:\n{}", problems.len(), problems.join("\n"));
    drop(app);
}

#[tokio::test]
async fn a_recurring_window_in_its_time_zone_stores_maintenance_tells_nobody_and_leaves_uptime() {
    let dir = tempfile::tempdir().unwrap();
    let refused = crate::support::closed_port();
    // Monday 1 June 2026, 08:00 UTC = 10:00 in Berlin (summer time). The window
    // opens Mondays at 10:02 Berlin time for 3 minutes: 08:02–08:05 UTC. The
    // same window on Tuesdays never opens on this day.
    let start = start_time();
    assert_eq!(start.weekday(), chrono::Weekday::Mon);
    let window = |day: &str| {
        format!("maintenance: [{{weekdays: [{day}], time: '10:02', duration: 3m, timezone: Europe/Berlin}}]")
    };
    let yaml = format!(
        "modules:\n  tcp_connect: {{prober: tcp, timeout: 2s}}\n\
         checks:\n- {{name: db, module: tcp_connect, target: '{refused}', interval: 1m, {}}}\n\
         - {{name: other, module: tcp_connect, target: '{refused}', interval: 1m, {}}}\n\
         bridge:\n  contacts: {{ops: {{log: ops}}}}\n  routes: [{{matchers: ['check=\"db\"'], contacts: [ops]}}]\n",
        window("mon"),
        window("tue"),
    );
    let checkit = Checkit::start(dir.path(), &yaml, TestClock::new(start)).await;
    let first = checkit.step("db", MINUTE).await;
    assert_eq!((first["state"].as_str(), first["last"]["maintenance"].as_bool()), (Some("unknown"), Some(false)));
    for minute in 2..5 {
        let check = checkit.step("db", MINUTE).await;
        assert_eq!(check["state"], "maintenance", "08:0{minute} UTC is 10:0{minute} in Berlin: {check}");
        assert_eq!(check["last"]["maintenance"], true);
    }
    assert_eq!(checkit.json("/api/v1/deliveries").await["total"], 0, "nobody is told during the window");
    // 08:05 UTC: the window has closed; this second counted failure takes it down.
    let down = checkit.step("db", MINUTE).await;
    assert_eq!(down["state"], "down", "{down}");
    assert_eq!(down["last"]["maintenance"], false);
    let uptime = checkit.json("/api/v1/checks/db/uptime?window=24h").await;
    assert_eq!((uptime["runs"].as_i64(), uptime["maintenance_runs"].as_i64()), (Some(2), Some(3)), "{uptime}");
    assert_eq!(uptime["uptime"], 0.0, "maintenance is neither uptime nor downtime: {uptime}");
    let results = checkit.json("/api/v1/checks/db/results").await;
    let marked: Vec<bool> = results["results"]
        .as_array()
        .map(|results| results.iter().map(|result| result["maintenance"] == true).collect())
        .unwrap_or_default();
    assert_eq!(marked, [false, true, true, true, false], "stored newest first: {results}");
    let other = checkit.json("/api/v1/checks/other/results").await;
    let other = other["results"].as_array().cloned().unwrap_or_default();
    assert!(!other.is_empty() && other.iter().all(|result| result["maintenance"] == false), "{other:?}");
    assert_eq!(checkit.deliveries().await, 1, "the outage after the window is told");
    checkit.stop().await;
}
