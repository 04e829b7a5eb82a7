//! Heartbeats as checks without a prober, in the real app on a test clock:
//! their pings and missed deadlines enter the checks' history (results,
//! uptime, incidents) on SQLite and on PostgreSQL, and they show wherever
//! checks show — the operator's list, the check page with the pings'
//! bodies, status pages (named and selected by label), badges, `/metrics`
//! and the checks API — while pauses go both ways.

use crate::peer;
use crate::support::peers::{Postgres, PostgresOpts};
use checkit::app::{App, ConfigSource, Options};
use checkit::bridge::clock::TestClock;
use checkit::http::webconfig::Web;
use checkit::settings::Config;
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;

const BACKUP: &str = "0b5a0c5e-3c55-4a39-9d2b-0f0e1e6f6a51";

/// The app on loopback with its test clock; stops on drop.
struct HeartbeatApp {
    app: Arc<App>,
    addr: SocketAddr,
    clock: Arc<TestClock>,
    client: reqwest::Client,
    dir: Option<tempfile::TempDir>,
}

impl Drop for HeartbeatApp {
    fn drop(&mut self) {
        self.app.stop();
    }
}

/// Heartbeat `backup` (hourly, 5 minutes' grace, label `kind=batch`) and
/// `more` heartbeats, one status page that names `backup` and one that
/// selects it by label, on `storage` (a `storage:` block; empty for the
/// default SQLite file).
fn config_yaml(storage: &str, more: &str) -> String {
    format!(
        r#"{storage}heartbeats:
  checks:
    - {{name: backup, uuid: {BACKUP}, period: 1h, grace: 5m, labels: {{kind: batch}}}}
{more}status_pages:
  - slug: jobs
    title: Jobs
    public: true
    groups: [{{name: Nightly, checks: [backup]}}]
  - slug: batch
    title: Batch
    public: true
    groups: [{{name: Batch, selector: ['kind="batch"']}}]
"#
    )
}

impl HeartbeatApp {
    /// Starts checkit on [`config_yaml`] with `storage`, its clock at [`t0`].
    async fn start(storage: &str, dir: tempfile::TempDir) -> HeartbeatApp {
        std::fs::write(dir.path().join("checkit.yml"), config_yaml(storage, "")).expect("write config");
        HeartbeatApp::open(dir, TestClock::new(t0())).await
    }

    /// Starts checkit on [`config_yaml`] with its store in `pg`.
    async fn on_postgres(pg: &Postgres) -> HeartbeatApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let url_file = dir.path().join("pg-url");
        std::fs::write(&url_file, pg.url()).expect("write url");
        let storage = format!("storage: {{postgres: {{url_file: {}}}}}\n", url_file.display());
        HeartbeatApp::start(&storage, dir).await
    }

    /// Starts checkit on the config file in `dir`, reading time from `clock`.
    async fn open(dir: tempfile::TempDir, clock: Arc<TestClock>) -> HeartbeatApp {
        let path = dir.path().join("checkit.yml");
        let config = Config::load(&path).unwrap_or_else(|err| panic!("config loads: {err}"));
        let app =
            App::new_with_clock(config, ConfigSource::File(path), Options::default(), Web::default(), clock.clone())
                .await
                .expect("app starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        app.serve(listener, app.router(), &Default::default());
        HeartbeatApp { app, addr, clock, client: reqwest::Client::new(), dir: Some(dir) }
    }

    /// Shuts the app down and starts it again on the same files and clock.
    async fn restart(mut self) -> HeartbeatApp {
        self.app.shutdown().await;
        let dir = self.dir.take().expect("the app's dir");
        let clock = Arc::clone(&self.clock);
        drop(self);
        HeartbeatApp::open(dir, clock).await
    }

    /// Plans a maintenance window over `checks` (every check when empty).
    async fn plan(&self, title: &str, start: DateTime<Utc>, end: DateTime<Utc>, checks: &[&str]) {
        let planned = checkit::checks::annotations::Planned {
            id: 0,
            title: title.into(),
            start,
            end,
            checks: checks.iter().map(ToString::to_string).collect(),
            created_by: None,
        };
        self.app.checks().expect("checks run").plan_maintenance(planned).await.expect("window planned");
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn ping(&self, path: &str, body: &str) {
        let response = self.client.post(self.url(path)).body(body.to_string()).send().await.expect("ping");
        assert_eq!(response.status(), 200, "{path}");
    }

    async fn text(&self, path: &str) -> String {
        let response = self.client.get(self.url(path)).send().await.expect("get");
        assert_eq!(response.status(), 200, "{path}");
        response.text().await.expect("body")
    }

    async fn json(&self, path: &str) -> Value {
        serde_json::from_str(&self.text(path).await).unwrap_or_else(|err| panic!("{path}: {err}"))
    }

    /// Waits (at most 10 s) until the checks API shows `backup` in `state`
    /// with heartbeat status `status`.
    async fn wait_for(&self, state: &str, status: &str) -> Value {
        for _ in 0..200 {
            let check = self.json("/api/v1/checks/backup").await["check"].clone();
            if check["state"] == state && check["status"] == status {
                return check;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("backup never became {state}/{status}: {}", self.json("/api/v1/checks/backup").await);
    }
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()
}

/// The `data-state` of `name`'s row in `/ui/checks`.
fn row_state(html: &str, name: &str) -> String {
    let row = html.find(&format!("data-check=\"{name}\"")).unwrap_or_else(|| panic!("no row for {name}:\n{html}"));
    let rest = &html[row..];
    let start = rest.find("data-state=\"").expect("a state") + "data-state=\"".len();
    rest[start..].split('"').next().expect("state").to_string()
}

/// The whole story, on whichever storage `app` runs.
async fn pings_and_a_missed_run_make_the_history(app: &HeartbeatApp) {
    // New: in the list before any ping, waiting for its first.
    let list = app.text("/ui/checks").await;
    assert_eq!(row_state(&list, "backup"), "new");
    assert!(list.contains("data-kind=\"heartbeat\""), "{list}");

    // A run with a start and an end: one up result with the run's duration.
    app.ping(&format!("/ping/{BACKUP}/start?rid=r1"), "").await;
    assert_eq!(row_state(&app.text("/ui/checks").await, "backup"), "started");
    app.clock.advance(Duration::seconds(90));
    app.ping(&format!("/ping/{BACKUP}?rid=r1"), "copied 42 files <script>alert(1)</script>\n").await;
    let check = app.wait_for("up", "up").await;
    assert_eq!(check["kind"], "heartbeat");
    assert_eq!(check["last"]["success"], true);
    assert_eq!(check["last"]["duration_seconds"], 90.0);

    // The check page shows the pings with their bodies, escaped.
    let page = app.text("/checks/backup").await;
    assert!(page.contains("Recent pings"), "{page}");
    assert!(page.contains("copied 42 files &lt;script&gt;alert(1)&lt;/script&gt;"), "{page}");
    assert!(!page.contains("<script>alert(1)"), "the body is escaped");
    assert!(page.contains("90.00 s"), "the run's duration is shown");
    assert!(page.contains("expected every 1 h"), "{page}");

    // Late is no result: still up in the history.
    app.clock.set(t0() + Duration::seconds(90) + Duration::minutes(62));
    let late = app.wait_for("up", "late").await;
    assert_eq!(late["last"]["success"], true);
    assert_eq!(row_state(&app.text("/ui/checks").await, "backup"), "late");

    // Due + grace passed: a down result at the detection instant, and an incident.
    let detected = t0() + Duration::seconds(90) + Duration::minutes(65) + Duration::seconds(1);
    app.clock.set(detected);
    let down = app.wait_for("down", "down").await;
    assert_eq!(down["last"]["success"], false);
    assert_eq!(down["last"]["phase"], "heartbeat");
    assert_eq!(down["last"]["reason"], "missed");
    assert_eq!(down["incident"]["reason"], "missed");
    let results = app.json("/api/v1/checks/backup/results").await;
    let results = results["results"].as_array().expect("results").clone();
    assert_eq!(results.len(), 2, "one success, one missed run: {results:?}");
    assert_eq!(results[0]["success"], false);
    let missed_at = DateTime::parse_from_rfc3339(results[0]["at"].as_str().expect("at")).expect("time");
    assert_eq!(missed_at, detected, "recorded when it was detected");
    let csv = app.text("/checks/backup/results.csv").await;
    assert!(csv.lines().any(|line| line.contains("\"heartbeat\",\"missed\"")), "{csv}");

    // The incident reaches both status pages, the named and the selected
    // (a page lists incidents that started before its instant).
    app.clock.advance(Duration::seconds(1));
    for slug in ["jobs", "batch"] {
        let summary = app.json(&format!("/status/{slug}/summary.json")).await;
        assert_eq!(summary["checks"][0]["name"], "backup", "{summary}");
        assert_eq!(summary["checks"][0]["state"], "down", "{summary}");
        let incidents = summary["incidents"].as_array().expect("incidents");
        assert!(incidents.iter().any(|incident| incident["check"] == "backup"), "{summary}");
    }
    let html = app.text("/status/jobs").await;
    assert!(html.contains("backup"), "{html}");

    // A success ends the outage; uptime over the day is 2 of 3 runs, the
    // same in the API, summary.json and the badge.
    app.clock.advance(Duration::minutes(10));
    app.ping(&format!("/ping/{BACKUP}/0"), "").await;
    let recovered = app.wait_for("up", "up").await;
    assert!(recovered["incident"].is_null(), "{recovered}");
    let incidents = app.json("/api/v1/checks/backup/incidents").await;
    assert!(incidents["incidents"][0]["ended_at"].is_string(), "{incidents}");
    app.app.checks().expect("checks").refresh_uptime().await.expect("uptime");
    let uptime = app.json("/api/v1/checks/backup/uptime?window=24h").await;
    assert_eq!(uptime["runs"], 3, "{uptime}");
    assert_eq!(uptime["successes"], 2, "{uptime}");
    let ratio = uptime["uptime"].as_f64().expect("ratio");
    assert!((ratio - 2.0 / 3.0).abs() < 1e-9, "{uptime}");
    let summary = app.json("/status/jobs/summary.json").await;
    assert_eq!(summary["checks"][0]["uptime"]["24h"].as_f64(), Some(ratio), "{summary}");
    let listed = app.json("/api/v1/checks/backup").await;
    assert_eq!(listed["check"]["uptime"]["24h"].as_f64(), Some(ratio), "{listed}");
    let badge = app.text("/badge/backup/uptime/24h.svg").await;
    assert!(badge.contains("aria-label=\"backup 24h: 66.66%\""), "{badge}");
    let status_badge = app.text("/badge/backup/status.svg").await;
    assert!(status_badge.contains("up"), "{status_badge}");

    // A fail ping with an exit status is a down result with its reason.
    app.clock.advance(Duration::minutes(1));
    app.ping(&format!("/ping/{BACKUP}/3"), "disk full").await;
    let failed = app.wait_for("down", "down").await;
    assert_eq!(failed["last"]["reason"], "exit_status_3");

    // Per-check families on /metrics, with empty module and target.
    let metrics = app.text("/metrics").await;
    assert!(
        metrics
            .contains("checkit_check_state{check=\"backup\",module=\"\",target=\"\",kind=\"batch\",state=\"down\"} 1"),
        "{metrics}"
    );
    assert!(!app.text("/metrics/checks").await.contains("backup"), "no blackbox families without a probe");
    assert!(app.json("/api/v1/sd").await.as_array().expect("groups").is_empty(), "no /probe target");

    // A pause through the checks API pauses the heartbeat; a resume through
    // the heartbeats API shows in the checks.
    let paused = app.client.post(app.url("/api/v1/checks/backup/pause")).send().await.expect("pause");
    assert_eq!(paused.status(), 200);
    assert_eq!(app.json("/api/v1/heartbeats/backup").await["status"], "paused");
    assert_eq!(row_state(&app.text("/ui/checks").await, "backup"), "paused");
    let resumed = app.client.post(app.url("/api/v1/heartbeats/backup/resume")).send().await.expect("resume");
    assert_eq!(resumed.status(), 200);
    let check = app.wait_for("down", "new").await;
    assert_eq!(check["paused"], false);
}

/// A maintenance window planned from the UI (here for every check) holds a
/// heartbeat's alert while it lasts, and its miss enters the history as a
/// maintenance result, out of uptime (the check shows as in maintenance,
/// not down); once the window is over the alert fires and, the heartbeat
/// still silent, the miss enters the history again as downtime (also
/// after a restart inside the window).
#[tokio::test]
async fn a_planned_window_holds_a_heartbeat_s_alert_until_it_ends() {
    let app = HeartbeatApp::start("", tempfile::tempdir().expect("tempdir")).await;
    app.ping(&format!("/ping/{BACKUP}"), "").await;
    app.wait_for("up", "up").await;
    app.plan("Storage migration", t0() + Duration::minutes(30), t0() + Duration::hours(2), &[]).await;
    let alerts = |value: Value| value["alerts"].as_array().map_or(0, Vec::len);
    // Due at 10:00, down at 10:05 + 1 s: inside the window.
    app.clock.set(t0() + Duration::minutes(65) + Duration::seconds(1));
    let held = app.wait_for("maintenance", "down").await;
    assert_eq!(held["last"]["reason"], "missed", "the miss is in the history");
    assert_eq!(held["last"]["maintenance"], true, "{held}");
    assert!(held["incident"].is_null(), "no outage opened in the window: {held}");
    let results = app.json("/api/v1/checks/backup/results").await;
    assert_eq!(results["results"][0]["maintenance"], true, "{results}");
    assert_eq!(results["results"][1]["maintenance"], false, "the ping before the window: {results}");
    let uptime = app.json("/api/v1/checks/backup/uptime?window=24h").await;
    assert_eq!((&uptime["runs"], &uptime["maintenance_runs"]), (&1.into(), &1.into()), "{uptime}");
    assert_eq!(uptime["uptime"], 1.0, "the miss in the window is no downtime: {uptime}");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(alerts(app.json("/api/v1/heartbeats/backup").await), 0, "held during the window");

    // A restart in the window keeps the held miss (read back from the store).
    let app = app.restart().await;
    let held = app.wait_for("maintenance", "down").await;
    assert_eq!(held["last"]["maintenance"], true, "{held}");

    app.clock.set(t0() + Duration::hours(2));
    let mut fired = false;
    for _ in 0..200 {
        if alerts(app.json("/api/v1/heartbeats/backup").await) == 1 {
            let heartbeat = app.json("/api/v1/heartbeats/backup").await;
            assert_eq!(heartbeat["alerts"][0]["alertname"], "HeartbeatMissing", "{heartbeat}");
            fired = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(fired, "no alert after the window: {}", app.json("/api/v1/heartbeats/backup").await);
    let down = app.wait_for("down", "down").await;
    assert_eq!((&down["last"]["reason"], &down["last"]["maintenance"]), (&"missed".into(), &false.into()), "{down}");
    let results = app.json("/api/v1/checks/backup/results").await;
    let at = DateTime::parse_from_rfc3339(results["results"][0]["at"].as_str().expect("at")).expect("time");
    assert_eq!(at, t0() + Duration::hours(2), "entered when the window ended: {results}");
    // Roll-ups are read up to the current instant, exclusive.
    app.clock.advance(Duration::seconds(1));
    let uptime = app.json("/api/v1/checks/backup/uptime?window=24h").await;
    assert_eq!((&uptime["runs"], &uptime["successes"]), (&2.into(), &1.into()), "{uptime}");
    assert_eq!(uptime["maintenance_runs"], 1, "{uptime}");
    assert_eq!(app.json("/api/v1/checks/backup/results").await["results"].as_array().map(Vec::len), Some(3));
}

/// A heartbeat that recovers inside a maintenance window: the success is a
/// maintenance result, so the outage stays open while the window lasts and
/// closes when it ends (as a probed check's first run after it would).
#[tokio::test]
async fn a_recovery_inside_a_window_closes_the_outage_when_the_window_ends() {
    let app = HeartbeatApp::start("", tempfile::tempdir().expect("tempdir")).await;
    app.ping(&format!("/ping/{BACKUP}"), "").await;
    app.wait_for("up", "up").await;
    app.clock.set(t0() + Duration::minutes(66));
    let down = app.wait_for("down", "down").await;
    assert!(down["incident"].is_object(), "{down}");
    app.plan("Repairs", t0() + Duration::minutes(70), t0() + Duration::hours(2), &["backup"]).await;
    app.clock.set(t0() + Duration::minutes(80));
    app.ping(&format!("/ping/{BACKUP}"), "").await;
    let held = app.wait_for("maintenance", "up").await;
    assert_eq!((&held["last"]["success"], &held["last"]["maintenance"]), (&true.into(), &true.into()), "{held}");
    assert!(held["incident"].is_object(), "still open in the window: {held}");

    app.clock.set(t0() + Duration::hours(2));
    let up = app.wait_for("up", "up").await;
    assert!(up["incident"].is_null(), "{up}");
    let incidents = app.json("/api/v1/checks/backup/incidents").await;
    let ended = incidents["incidents"][0]["ended_at"].as_str().unwrap_or_else(|| panic!("{incidents}"));
    assert_eq!(DateTime::parse_from_rfc3339(ended).expect("time"), t0() + Duration::hours(2), "{incidents}");
    let results = app.json("/api/v1/checks/backup/results").await;
    let flags: Vec<_> = results["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|result| (result["success"].clone(), result["maintenance"].clone()))
        .collect();
    let expected = [(true, false), (true, true), (false, false), (true, false)];
    assert_eq!(flags, expected.map(|(success, maintenance)| (success.into(), maintenance.into())), "{results}");
}

/// A new heartbeat's first ping inside a window leaves it unknown while the
/// window lasts, and up once it ends.
#[tokio::test]
async fn a_first_ping_inside_a_window_makes_the_heartbeat_up_when_the_window_ends() {
    let app = HeartbeatApp::start("", tempfile::tempdir().expect("tempdir")).await;
    app.plan("Setup", t0() + Duration::minutes(5), t0() + Duration::minutes(30), &["backup"]).await;
    app.clock.set(t0() + Duration::minutes(10));
    app.ping(&format!("/ping/{BACKUP}"), "").await;
    let held = app.wait_for("maintenance", "up").await;
    assert!(held["since"].is_null(), "no health yet: {held}");
    app.clock.set(t0() + Duration::minutes(30));
    let up = app.wait_for("up", "up").await;
    assert_eq!(up["last"]["maintenance"], false, "{up}");
}

/// A success ping without a start carries no duration: its result has
/// none (not 0 s) in the API, the CSVs and the check page, and the roll-ups
/// count the run while their durations are the timed run's alone.
async fn a_ping_without_a_start_has_no_duration(app: &HeartbeatApp) {
    app.ping(&format!("/ping/{BACKUP}/start?rid=r1"), "").await;
    app.clock.advance(Duration::seconds(2));
    app.ping(&format!("/ping/{BACKUP}?rid=r1"), "").await;
    app.wait_for("up", "up").await;
    app.clock.advance(Duration::minutes(1));
    app.ping(&format!("/ping/{BACKUP}"), "").await;
    let mut untimed = Value::Null;
    for _ in 0..200 {
        untimed = app.json("/api/v1/checks/backup").await["check"].clone();
        if untimed["last"]["duration_seconds"].is_null() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(untimed["last"]["success"], true, "{untimed}");
    assert!(untimed["last"]["duration_seconds"].is_null(), "{untimed}");

    let results = app.json("/api/v1/checks/backup/results").await;
    let results = results["results"].as_array().expect("results").clone();
    assert_eq!(results.len(), 2, "{results:?}");
    assert!(results[0]["duration_seconds"].is_null(), "the bare success: {results:?}");
    assert_eq!(results[1]["duration_seconds"], 2.0, "the timed run: {results:?}");

    for path in ["/checks/backup/results.csv", "/api/v1/checks/backup/results?format=csv"] {
        let csv = app.text(path).await;
        let durations: Vec<_> = csv.lines().skip(1).map(|line| line.split(',').nth(1)).collect();
        assert_eq!(durations, [Some(""), Some("2")], "{path}: the bare success's is empty: {csv}");
    }

    let page = app.text("/checks/backup").await;
    assert!(!page.contains(">0 ms</td>"), "no zero duration in the results: {page}");
    assert!(page.contains("mean: min 2.00 s, average 2.00 s, max 2.00 s"), "the chart's durations: {page}");
    assert!(page.contains("<td class=\"num\">—</td>"), "{page}");
    assert!(page.contains("2.00 s"), "{page}");

    let uptime = app.json("/api/v1/checks/backup/uptime?window=24h").await;
    assert_eq!((&uptime["runs"], &uptime["successes"]), (&2.into(), &2.into()), "{uptime}");
    let durations = &uptime["duration_seconds"];
    for key in ["mean", "min", "max"] {
        assert_eq!(durations[key], 2.0, "{key}: only the timed run counts: {uptime}");
    }
    let badge = app.text("/badge/backup/response-time/24h.svg").await;
    assert!(badge.contains("2.00 s"), "{badge}");

    // A miss has no duration either, and leaves the durations alone.
    app.clock.advance(Duration::minutes(66));
    app.wait_for("down", "down").await;
    let uptime = app.json("/api/v1/checks/backup/uptime?window=24h").await;
    assert_eq!((&uptime["runs"], &uptime["successes"]), (&3.into(), &2.into()), "{uptime}");
    assert_eq!((&uptime["duration_seconds"]["min"], &uptime["duration_seconds"]["mean"]), (&2.0.into(), &2.0.into()));
    let results = app.json("/api/v1/checks/backup/results").await;
    assert!(results["results"][0]["duration_seconds"].is_null(), "{results}");

    // A timed run after untimed ones in the same hour sets the minimum.
    app.ping(&format!("/ping/{BACKUP}/start?rid=r2"), "").await;
    app.clock.advance(Duration::seconds(3));
    app.ping(&format!("/ping/{BACKUP}?rid=r2"), "").await;
    app.wait_for("up", "up").await;
    let uptime = app.json("/api/v1/checks/backup/uptime?window=24h").await;
    let durations = &uptime["duration_seconds"];
    assert_eq!((&durations["min"], &durations["max"], &durations["mean"]), (&2.0.into(), &3.0.into(), &2.5.into()));
}

#[tokio::test]
async fn on_sqlite_a_ping_without_a_start_has_no_duration() {
    let app = HeartbeatApp::start("", tempfile::tempdir().expect("temp dir")).await;
    a_ping_without_a_start_has_no_duration(&app).await;
}

#[tokio::test]
async fn on_postgres_a_ping_without_a_start_has_no_duration() {
    let pg = peer!(Postgres::start(PostgresOpts::default()).await);
    let app = HeartbeatApp::on_postgres(&pg).await;
    a_ping_without_a_start_has_no_duration(&app).await;
}

#[tokio::test]
async fn on_sqlite_a_heartbeats_pings_and_misses_are_its_history() {
    let dir = tempfile::tempdir().expect("temp dir");
    let app = HeartbeatApp::start("", dir).await;
    pings_and_a_missed_run_make_the_history(&app).await;
}

#[tokio::test]
async fn on_postgres_a_heartbeats_pings_and_misses_are_its_history() {
    let pg = peer!(Postgres::start(PostgresOpts::default()).await);
    let app = HeartbeatApp::on_postgres(&pg).await;
    pings_and_a_missed_run_make_the_history(&app).await;
}

#[test]
fn a_heartbeat_may_not_take_a_checks_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("checkit.yml");
    std::fs::write(
        &path,
        format!(
            "modules: {{tcp: {{prober: tcp}}}}\n\
             checks: [{{name: www, module: tcp, target: '127.0.0.1:1'}}]\n\
             heartbeats:\n  checks:\n  - {{name: backup, uuid: {BACKUP}, period: 1h, grace: 5m}}\n  - {{name: www, period: 1h, grace: 5m, uuid: 1c6b1d6f-4d66-4b4a-8e3c-1f1f2f7f7b62}}\n"
        ),
    )
    .expect("write config");
    let err = Config::load(&path).expect_err("refused").to_string();
    assert!(err.contains("heartbeats.checks[1].name: \"www\" is also the name of a check"), "{err}");
    assert!(!err.contains("heartbeats.checks[0]"), "{err}");
}

#[tokio::test]
async fn a_miss_is_recorded_once_across_a_restart_and_reloads_add_and_remove_heartbeats() {
    let dir = tempfile::tempdir().expect("temp dir");
    let app = HeartbeatApp::start("", dir).await;
    app.ping(&format!("/ping/{BACKUP}"), "ok").await;
    app.wait_for("up", "up").await;
    app.clock.set(t0() + Duration::minutes(66));
    let down = app.wait_for("down", "down").await;
    let incident = down["incident"]["id"].clone();
    assert!(incident.is_i64(), "{down}");

    // After a restart the outage is the same incident and the miss is not recorded again.
    let app = app.restart().await;
    app.clock.advance(Duration::minutes(1));
    let down = app.wait_for("down", "down").await;
    assert_eq!(down["incident"]["id"], incident, "{down}");
    app.ping(&format!("/ping/{BACKUP}/log"), "only a log line").await;
    let results = app.json("/api/v1/checks/backup/results").await;
    assert_eq!(results["results"].as_array().expect("results").len(), 2, "{results}");

    // A reload adds a heartbeat to the checks and removes it again.
    let more = "    - {name: report, uuid: 1c6b1d6f-4d66-4b4a-8e3c-1f1f2f7f7b62, period: 1h, grace: 5m}\n";
    let path = app.dir.as_ref().expect("dir").path().join("checkit.yml");
    std::fs::write(&path, config_yaml("", more)).expect("rewrite config");
    assert_eq!(app.client.post(app.url("/-/reload")).send().await.expect("reload").status(), 200);
    let report = app.json("/api/v1/checks/report").await;
    assert_eq!((&report["check"]["kind"], &report["check"]["state"]), (&"heartbeat".into(), &"unknown".into()));
    assert_eq!(row_state(&app.text("/ui/checks").await, "report"), "new");
    std::fs::write(&path, config_yaml("", "")).expect("rewrite config");
    assert_eq!(app.client.post(app.url("/-/reload")).send().await.expect("reload").status(), 200);
    assert_eq!(app.client.get(app.url("/api/v1/checks/report")).send().await.expect("get").status(), 404);
}
