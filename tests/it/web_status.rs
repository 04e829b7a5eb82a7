//! Status pages, check pages, badges and the operator's checks list against
//! the real app: scheduled checks against loopback targets (one listening,
//! one refused), a seeded history with a known outage, a web config with
//! users, and a test clock.

use crate::web_ui::{form_token, web_config};
use checkit::app::{App, ConfigSource, Options};
use checkit::bridge::clock::{Clock, TestClock};
use checkit::checks::state::Incident;
use checkit::checks::store::{NewChange, NewResult};
use checkit::settings::Config;
use chrono::{DateTime, Duration, TimeZone, Utc};
use std::net::SocketAddr;
use std::sync::Arc;

/// The running app with its clock; stops on drop.
pub struct StatusApp {
    pub app: Arc<App>,
    pub addr: SocketAddr,
    pub clock: Arc<TestClock>,
    _listener: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for StatusApp {
    fn drop(&mut self) {
        self.app.stop();
    }
}

impl StatusApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// Noon UTC on a Monday.
pub fn start_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()
}

/// The UUID of heartbeat `nightly` (on no status page), pinged once with [`NIGHTLY_BODY`].
const NIGHTLY: &str = "2d7c2e70-5e77-4c5b-9f4d-2a2a3b8c8c73";
/// The body of `nightly`'s ping, shown on its check page.
pub const NIGHTLY_BODY: &str = "nightly run: 3 files <ok>";

/// How many days back the seeded outage of `www` is.
pub const OUTAGE_DAYS_BACK: i64 = 3;

/// Starts checkit with checks `www` and `intranet` (a listening port),
/// `db` (a refused port) and heartbeat `nightly`, a public and a private status page (`intranet` is
/// only on the private one), a badge key, seeds 10 days of hourly
/// results for `www` with a 6-hour outage three days ago, and runs each
/// check until `www` is up and `db` is down.
pub async fn start() -> StatusApp {
    let open = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let open_addr = open.local_addr().expect("addr");
    let listener = tokio::spawn(async move {
        while let Ok((stream, _)) = open.accept().await {
            drop(stream);
        }
    });
    let refused = {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        socket.local_addr().expect("addr")
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let yaml = format!(
        r#"modules:
  tcp_connect: {{prober: tcp, timeout: 2s}}
check_options:
  store: {{sqlite: {{path: '{store}'}}}}
checks:
  - {{name: www, module: tcp_connect, target: '{open_addr}', interval: 1m, labels: {{team: web}}, notify: false}}
  - {{name: db, module: tcp_connect, target: '{refused}', interval: 1m, labels: {{team: data}}, notify: false}}
  - {{name: intranet, module: tcp_connect, target: '{open_addr}', interval: 1m, labels: {{team: ops}}, notify: false}}
heartbeats:
  checks:
    - {{name: nightly, uuid: {NIGHTLY}, period: 24h, grace: 1h}}
ui:
  operators: [olivia]
  badge_key_file: badge.key
status_pages:
  - slug: public
    title: Example services
    description: What our users depend on.
    public: true
    footer_links: [{{title: Contact, url: "mailto:ops@example.com"}}]
    groups:
      - {{name: Website, checks: [www]}}
      - {{name: Data, selector: ['team="data"']}}
  - slug: internal
    title: Internal
    groups: [{{name: All, selector: ['team=~".+"']}}]
"#,
        store = dir.path().join("checks.db").display(),
    );
    let path = dir.path().join("checkit.yml");
    std::fs::write(&path, &yaml).expect("write config");
    std::fs::write(dir.path().join("badge.key"), "a badge secret of some length\n").expect("write badge key");
    let config = Config::load(&path).unwrap_or_else(|err| panic!("test config does not load: {err}"));
    let clock = TestClock::new(start_time());
    let web = web_config(dir.path());
    let app = App::new_with_clock(config, ConfigSource::File(path), Options::default(), web.clone(), clock.clone())
        .await
        .expect("app starts");
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = tcp.local_addr().expect("addr");
    app.serve(tcp, app.router(), &Default::default());
    seed(&app).await;
    let status = StatusApp { app, addr, clock, _listener: listener, _dir: dir };
    let ping = reqwest::Client::new().post(status.url(&format!("/ping/{NIGHTLY}"))).body(NIGHTLY_BODY).send().await;
    assert_eq!(ping.expect("ping").status(), 200, "heartbeat nightly pinged");
    run_until(&status, "www", "up").await;
    run_until(&status, "db", "down").await;
    run_until(&status, "intranet", "up").await;
    status.app.checks().expect("checks").refresh_uptime().await.expect("uptime");
    status
}

/// Hourly results for the 10 days before the start, `www` failing for six
/// hours from 10:00 three days back (one incident).
async fn seed(app: &App) {
    let checks = app.checks().expect("checks run");
    let (id, _) = checks.view_of("www").expect("www exists");
    let store = checks.store();
    let outage_start = start_time() - Duration::days(OUTAGE_DAYS_BACK) - Duration::hours(2);
    let outage_end = outage_start + Duration::hours(6);
    let mut incident_id = None;
    for hour in (1..=240).rev() {
        let at = start_time() - Duration::hours(hour);
        let failing = at >= outage_start && at < outage_end;
        let change = if at == outage_start {
            Some(NewChange::Down(Incident {
                id: None,
                started_at: at,
                ended_at: None,
                phase: "connect".into(),
                reason: "refused".into(),
                notified_at: None,
            }))
        } else if at == outage_end {
            incident_id.map(|id| NewChange::Recovered { id, ended_at: at })
        } else {
            None
        };
        let result = NewResult {
            check_id: id,
            at,
            duration_us: Some(20_000 + u64::try_from(hour % 7).unwrap_or(0) * 5_000),
            success: !failing,
            failure: failing.then(|| ("connect".to_string(), "refused".to_string())),
            maintenance: false,
        };
        let stored = store.record(result, change).await.expect("seed result");
        if at == outage_start {
            incident_id = stored;
        }
    }
    assert!(incident_id.is_some(), "the seeded outage opened an incident");
}

/// Moves the clock a minute at a time (at most 5) until check `name` is in `state`.
pub async fn run_until(app: &StatusApp, name: &str, state: &str) {
    let checks = app.app.checks().expect("checks");
    for _ in 0..5 {
        if checks.view_of(name).is_some_and(|(_, view)| view.state.as_str() == state) {
            return;
        }
        let before = checks.view_of(name).and_then(|(_, view)| view.last.map(|last| last.at));
        app.clock.advance(Duration::minutes(1));
        for _ in 0..250 {
            let after = checks.view_of(name).and_then(|(_, view)| view.last.map(|last| last.at));
            if after != before {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    let view = checks.view_of(name).map(|(_, view)| view.state.as_str());
    panic!("{name} never became {state} (is {view:?}, clock {})", app.clock.now());
}

pub async fn get(app: &StatusApp, path: &str, user: Option<&str>) -> (u16, String, reqwest::header::HeaderMap) {
    let mut request = reqwest::Client::new().get(app.url(path));
    if let Some(user) = user {
        request = request.basic_auth(user, Some("pw"));
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, response.text().await.expect("body"), headers)
}

pub async fn api_uptime(app: &StatusApp, check: &str) -> serde_json::Value {
    let (status, body, _) = get(app, &format!("/api/v1/checks/{check}"), Some("victor")).await;
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    json["check"]["uptime"].clone()
}

pub fn percent(ratio: &serde_json::Value) -> String {
    ratio.as_f64().map_or_else(|| "no data".to_string(), checkit::web::badge::format_percent)
}

#[tokio::test]
async fn public_status_page_shows_states_history_and_figures_equal_to_the_api() {
    let app = start().await;
    let (status, html, headers) = get(&app, "/status/public", None).await;
    assert_eq!(status, 200, "a public page needs no login: {html}");
    assert!(headers["content-security-policy"].to_str().unwrap().contains("default-src 'self'"));
    assert!(html.contains("Partial outage"), "one of two checks is down: {html}");
    assert!(html.contains("data-check=\"www\" data-state=\"up\""), "{html}");
    assert!(html.contains("data-check=\"db\" data-state=\"down\""), "db is in the Data group by selector");
    assert!(!html.contains("href=\"/checks/"), "public visitors get no links into the protected pages");
    // The day bar: 90 days, the outage day coloured by its uptime (18 of 24 hours up).
    let row = html.split("data-check=\"www\"").nth(1).expect("www's row");
    let bar = row.split("<svg class=\"daybar\"").nth(1).expect("www's bar").split("</svg>").next().expect("bar end");
    assert!(bar.contains("viewBox=\"0 0 90 1\""), "{bar}");
    assert!(bar.contains("aria-label=\"www: 90 days, 11 with data, 1 with downtime\""), "{bar}");
    assert!(bar.contains("<rect class=\"d-none\" width=\"90\" height=\"1\"/>"), "days without data: {bar}");
    let outage_index = 89 - OUTAGE_DAYS_BACK;
    assert!(bar.contains(&format!("<path class=\"d-down\" d=\"M{outage_index} 0h1v1h-1z\"/>")), "{bar}");
    let (status, days, _) = get(&app, "/status/public/days/www", None).await;
    assert_eq!(status, 200, "the days' words are public with the page: {days}");
    let days: serde_json::Value = serde_json::from_str(&days).expect("json");
    let outage_day = (start_time() - Duration::days(OUTAGE_DAYS_BACK)).format("%a %-d %b %Y").to_string();
    assert_eq!(days["days"][outage_index as usize], format!("{outage_day}: 75% up, 6 h down, 1 incident"));
    let quiet_day = (start_time() - Duration::days(5)).format("%a %-d %b %Y").to_string();
    assert_eq!(days["days"][84], format!("{quiet_day}: 100% up"));
    assert_eq!(days["days"][0].as_str().map(|text| text.ends_with(": no data")), Some(true));
    assert_eq!(get(&app, "/status/public/days/intranet", None).await.0, 404, "only the page's checks");
    // Uptime figures are the API's.
    let uptime = api_uptime(&app, "www").await;
    for window in ["24h", "7d", "30d", "90d", "1y"] {
        let expected = format!("<li>{window} <b>{}</b></li>", percent(&uptime[window]));
        assert!(row.contains(&expected), "{window}: {expected} in the page");
    }
    assert!(html.contains("www down: refused (connect)"), "the incident is listed");
    assert!(html.contains("mailto:ops@example.com"), "footer link");

    let (status, summary, _) = get(&app, "/status/public/summary.json", None).await;
    assert_eq!(status, 200);
    let summary: serde_json::Value = serde_json::from_str(&summary).expect("json");
    assert_eq!(summary["status"]["indicator"], "partial_outage");
    assert_eq!(summary["checks"][0]["name"], "www");
    assert_eq!(summary["checks"][0]["uptime"]["30d"], uptime["30d"]);
    assert_eq!(summary["checks"][1]["state"], "down");

    let (status, feed, headers) = get(&app, "/status/public/feed.atom", None).await;
    assert_eq!(status, 200);
    assert!(headers["content-type"].to_str().unwrap().starts_with("application/atom+xml"));
    assert!(feed.starts_with("<?xml") && feed.trim_end().ends_with("</feed>"), "{feed}");
    assert!(feed.contains("<title>www down: refused (connect) (resolved)</title>"), "{feed}");
    assert!(feed.contains("<title>db down: refused (connect) (investigating)</title>"), "{feed}");
    assert_eq!(feed.matches("<entry>").count(), feed.matches("</entry>").count());

    // The private page and the check pages need a login.
    assert_eq!(get(&app, "/status/internal", None).await.0, 401);
    let (status, internal, _) = get(&app, "/status/internal", Some("victor")).await;
    assert_eq!(status, 200);
    assert!(internal.contains("href=\"/checks/www\""), "logged-in visitors get links");
    assert_eq!(get(&app, "/checks/www", None).await.0, 401);
    assert_eq!(get(&app, "/status/nope", Some("victor")).await.0, 404);
}

#[tokio::test]
async fn badges_match_the_api_and_the_shields_schema() {
    let app = start().await;
    let uptime = api_uptime(&app, "www").await;
    let (status, svg, headers) = get(&app, "/badge/www/status.svg", None).await;
    assert_eq!(status, 200, "www is on a public page: its badges are public");
    assert_eq!(headers["content-type"], "image/svg+xml; charset=utf-8");
    assert!(headers["cache-control"].to_str().unwrap().starts_with("public, max-age=60"));
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\"") && svg.ends_with("</svg>"));
    assert!(svg.contains("aria-label=\"www: up\""), "{svg}");
    for window in ["24h", "7d", "30d", "90d", "1y"] {
        let (status, svg, _) = get(&app, &format!("/badge/www/uptime/{window}.svg"), None).await;
        assert_eq!(status, 200);
        let expected = format!("www {window}: {}", percent(&uptime[window]));
        assert!(svg.contains(&format!("<title>{expected}</title>")), "{window}: {svg}");
        let (_, json, headers) = get(&app, &format!("/badge/www/uptime/{window}.shields"), None).await;
        assert_eq!(headers["content-type"], "application/json");
        let json: serde_json::Value = serde_json::from_str(&json).expect("json");
        let keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["cacheSeconds", "color", "label", "message", "schemaVersion"], "only schema keys");
        assert_eq!(json["schemaVersion"], 1);
        assert_eq!(json["label"], format!("www {window}"));
        assert_eq!(json["message"], percent(&uptime[window]));
    }
    let (status, json, _) = get(&app, "/badge/www/response-time/24h.shields", None).await;
    assert_eq!(status, 200);
    assert!(serde_json::from_str::<serde_json::Value>(&json).unwrap()["message"].as_str().unwrap().ends_with(" ms"));
    let (status, svg, _) = get(&app, "/badge/www/cert-expiry.svg", None).await;
    assert_eq!(status, 200);
    assert!(svg.contains("www cert: no certificate"), "plain TCP has no certificate: {svg}");
    let (_, db, _) = get(&app, "/badge/db/status.shields", None).await;
    assert_eq!(serde_json::from_str::<serde_json::Value>(&db).unwrap()["color"], "red");
    assert_eq!(get(&app, "/badge/www/uptime/2y.svg", None).await.0, 400);
    assert_eq!(get(&app, "/badge/www/colour.svg", None).await.0, 404);
    let (status, missing, _) = get(&app, "/badge/ghost/status.shields", Some("victor")).await;
    assert_eq!(status, 404);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&missing).unwrap()["isError"], true);
    assert_eq!(get(&app, "/badge/ghost/status.svg", None).await.0, 401, "unknown checks are not public");
    let etag = get(&app, "/badge/www/status.svg", None).await.2["etag"].clone();
    let again = reqwest::Client::new().get(app.url("/badge/www/status.svg")).header("if-none-match", etag).send().await;
    assert_eq!(again.expect("revalidate").status(), 304);
}

#[tokio::test]
async fn check_page_and_operator_list_with_pause_and_resume() {
    let app = start().await;
    let (status, page, _) = get(&app, "/checks/www?window=7d", Some("victor")).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("class=\"chart\"") && page.contains("class=\"timeline\""), "charts drawn");
    assert!(page.contains("down from "), "the timeline names the outage: {page}");
    assert!(page.contains("mean: min "), "the chart's text alternative");
    assert!(page.contains("results.csv"));
    let (status, csv, headers) = get(&app, "/checks/db/results.csv", Some("victor")).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    assert!(csv.starts_with("at,duration_seconds,success,maintenance,phase,reason,location\n"));
    assert!(csv.contains(",false,false,\"connect\",\"refused\""), "{csv}");
    assert_eq!(get(&app, "/checks/www?window=1y", Some("victor")).await.0, 400);
    assert_eq!(get(&app, "/checks/ghost", Some("victor")).await.0, 404);

    let (status, list, _) = get(&app, "/ui/checks?state=down", Some("victor")).await;
    assert_eq!(status, 200);
    assert!(list.contains("data-check=\"db\"") && !list.contains("data-check=\"www\""), "filtered by state");
    assert!(!list.contains("name=\"csrf\""), "viewers get no pause buttons");
    let (_, list, _) = get(&app, "/ui/checks?sort=state", Some("olivia")).await;
    assert!(list.find("data-check=\"db\"") < list.find("data-check=\"www\""), "down checks first");
    let token = form_token(&list);
    let client = reqwest::Client::new();
    let post = |form: Vec<(&'static str, String)>, site: &'static str| {
        client
            .post(app.url("/ui/checks/pause"))
            .basic_auth("olivia", Some("pw"))
            .header("sec-fetch-site", site)
            .form(&form)
            .send()
    };
    let forged = post(vec![("csrf", token.clone()), ("action", "pause".into())], "cross-site").await.expect("post");
    assert_eq!(forged.status(), 403);
    assert!(!app.app.checks().unwrap().view_of("www").unwrap().1.paused, "nothing was paused");
    let paused = post(vec![("csrf", token.clone()), ("action", "pause".into()), ("name", "www".into())], "same-origin")
        .await
        .expect("post");
    assert_eq!(paused.status(), 200);
    assert!(paused.text().await.unwrap().contains("Paused www."));
    assert!(app.app.checks().unwrap().view_of("www").unwrap().1.paused);
    let (_, json, _) = get(&app, "/api/v1/checks/www", Some("victor")).await;
    assert_eq!(serde_json::from_str::<serde_json::Value>(&json).unwrap()["check"]["state"], "paused");
    let resumed = post(vec![("csrf", token), ("action", "resume".into())], "same-origin").await.expect("post");
    assert!(resumed.text().await.unwrap().contains("Resumed 4 checks."), "three checks and the heartbeat");
    assert!(!app.app.checks().unwrap().view_of("www").unwrap().1.paused);
    // Resuming a heartbeat that was not paused keeps its state.
    let nightly = app.app.checks().unwrap().view_of("nightly").unwrap().1;
    assert_eq!((nightly.state.as_str(), nightly.status), ("up", Some("up")));
}
