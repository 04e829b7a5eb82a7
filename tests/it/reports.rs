//! Reports end to end on a test clock: rendered from a seeded check history
//! and checked for their figures (preview and the mail a real SMTP server
//! received), sent once per period across a restart and across two
//! PostgreSQL replicas, and sent late, once, after a slot missed while
//! checkit was down.

use crate::peer;
use crate::support::peers::{Postgres, PostgresOpts, SmtpOpts, SmtpServer};
use checkit::app::{App, ConfigSource, Options};
use checkit::bridge::clock::TestClock;
use checkit::checks::state::Incident;
use checkit::checks::store::{NewChange, NewResult};
use checkit::http::webconfig::Web;
use checkit::settings::Config;
use chrono::{DateTime, Utc};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The real app with its stores in `dir`, reading time from `clock`.
async fn start(dir: &Path, yaml: &str, clock: &Arc<TestClock>) -> (Arc<App>, std::net::SocketAddr) {
    let path = dir.join("checkit.yml");
    std::fs::write(&path, yaml).expect("write config");
    let config = Config::load(&path).unwrap_or_else(|err| panic!("test config does not load: {err}"));
    let app = App::new_with_clock(config, ConfigSource::File(path), Options::default(), Web::default(), clock.clone())
        .await
        .expect("app starts");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    app.serve(listener, app.router(), &Default::default());
    (app, addr)
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).expect("RFC 3339").with_timezone(&Utc)
}

/// A mail's text as read: quoted-printable soft breaks and escapes undone.
fn readable(mail: &crate::support::peers::ReceivedMail) -> String {
    let text = mail.data.replace("=\r\n", "").replace("=\n", "");
    // Decode =XX escapes (UTF-8 bytes) so the text reads as sent.
    let mut bytes = Vec::with_capacity(text.len());
    let raw = text.as_bytes();
    let mut index = 0;
    while index < raw.len() {
        if raw[index] == b'=' && index + 2 < raw.len() {
            if let Ok(byte) = u8::from_str_radix(&text[index + 1..index + 3], 16) {
                bytes.push(byte);
                index += 3;
                continue;
            }
        }
        bytes.push(raw[index]);
        index += 1;
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// checks `api` and `db` (paused: the test writes their history) and a
/// weekly report for alice and, through a group, bob.
fn yaml(smtp: &SmtpServer, store: &str) -> String {
    let refused = crate::support::closed_port();
    format!(
        "modules:\n  tcp_connect: {{prober: tcp, timeout: 2s}}\n\
         checks:\n\
         - {{name: api, module: tcp_connect, target: '{refused}', interval: 1h, paused: true, labels: {{team: web}}}}\n\
         - {{name: db, module: tcp_connect, target: '{refused}', interval: 1h, paused: true, labels: {{team: data}}}}\n\
         - {{name: other, module: tcp_connect, target: '{refused}', interval: 1h, paused: true, labels: {{team: x}}}}\n\
         bridge:\n  store: {store}\n\
         \x20 contacts: {{alice: {{email: alice@example.com, log: alice}}, bob: {{email: bob@example.com}}}}\n\
         \x20 groups: {{team: [bob]}}\n\
         \x20 routes: [{{contacts: [alice], channels: [email]}}]\n\
         \x20 channels:\n    email: {{smarthost: localhost, port: {}, from: checkit@checkit.test, tls: none}}\n    log: {{}}\n\
         \x20 reports:\n    weekly:\n      contacts: [alice]\n      groups: [team]\n      every: weekly\n      \
         at: '08:00'\n      timezone: Europe/Berlin\n      checks: [api, 'team=\"data\"']\n    \
         problems: {{contacts: [alice], every: weekly, only_problems: true, channels: [log]}}\n",
        smtp.addr.port(),
    )
}

fn sqlite(dir: &Path) -> String {
    format!("{{sqlite: {{path: '{}'}}}}", dir.join("bridge.db").display())
}

/// Writes a week of hourly results of `name` from `from`: `failures` hours
/// down from `down_at` (one incident), each run taking `seconds`.
async fn seed(
    app: &App,
    name: &str,
    from: DateTime<Utc>,
    hours: i64,
    seconds: f64,
    down: Option<(DateTime<Utc>, i64)>,
) {
    let checks = app.checks().expect("checks");
    let id = checks.views().into_iter().find(|(_, view)| view.check.name == name).expect("check").0;
    let store = checks.store();
    let mut incident = None;
    for hour in 0..hours {
        let time = from + chrono::Duration::hours(hour);
        let failing =
            down.is_some_and(|(start, length)| time >= start && time < start + chrono::Duration::hours(length));
        let change = match (failing, incident) {
            (true, None) => Some(NewChange::Down(Incident {
                id: None,
                started_at: time,
                ended_at: None,
                phase: "connect".into(),
                reason: "refused".into(),
                notified_at: None,
            })),
            (false, Some(id)) => Some(NewChange::Recovered { id, ended_at: time }),
            _ => None,
        };
        let result = NewResult {
            check_id: id,
            at: time,
            duration_us: Some((seconds * 1e6) as u64),
            success: !failing,
            failure: failing.then(|| ("connect".into(), "refused".into())),
            maintenance: false,
        };
        let opened = store.record(result, change.clone()).await.expect("record");
        match change {
            Some(NewChange::Down(_)) => incident = opened,
            Some(NewChange::Recovered { .. }) => incident = None,
            _ => {}
        }
    }
}

/// Mails to `address` (the report's; other mails are alerts).
fn reports_to(smtp: &SmtpServer, address: &str) -> Vec<String> {
    smtp.messages()
        .iter()
        .filter(|mail| mail.rcpt_tos.iter().any(|to| to == address))
        .map(readable)
        .filter(|text| text.contains("Weekly report"))
        .collect()
}

async fn wait_reports(smtp: &SmtpServer, address: &str, count: usize) -> Vec<String> {
    for _ in 0..300 {
        let found = reports_to(smtp, address);
        if found.len() >= count {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{address} did not get {count} reports: {:?}", smtp.messages().iter().map(readable).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_weekly_report_shows_the_seeded_figures_and_is_sent_once_across_a_restart() {
    let smtp = peer!(SmtpServer::start(SmtpOpts::default()).await);
    let dir = tempfile::tempdir().unwrap();
    let yaml = yaml(&smtp, &sqlite(dir.path()));
    // Wednesday of ISO week 23 (Mon 1 Jun – Sun 7 Jun 2026, Berlin time).
    let clock = TestClock::new(at("2026-06-03T09:00:00Z"));
    let (app, addr) = start(dir.path(), &yaml, &clock).await;
    let week = at("2026-05-31T22:00:00Z");
    let before = at("2026-05-24T22:00:00Z");
    // api: 2 hours down on Wednesday, 200 ms; the week before all up.
    seed(&app, "api", week, 168, 0.2, Some((at("2026-06-03T10:00:00Z"), 2))).await;
    seed(&app, "api", before, 168, 0.2, None).await;
    // db: half a week, 1.5 s, no outage, no data the week before.
    seed(&app, "db", week, 84, 1.5, None).await;
    seed(&app, "other", week, 10, 9.0, Some((week, 5))).await;
    // One alert delivered to alice during the week.
    let body = crate::bridge_support::notification("team", "g1", &[("DiskFull", "warning", "firing")]);
    let client = reqwest::Client::new();
    let response = client.post(format!("http://{addr}/webhook")).body(body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    smtp.wait_for_messages(1, Duration::from_secs(30)).await;
    // The history entry is written right after the server accepted the mail.
    for _ in 0..250 {
        let history = client.get(format!("http://{addr}/api/v1/deliveries?status=sent")).send().await.unwrap();
        if history.json::<serde_json::Value>().await.unwrap()["total"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The preview renders without sending, for any period.
    let preview = |query: &str| {
        let (client, url) = (client.clone(), format!("http://{addr}/api/v1/reports/preview?{query}"));
        async move {
            let response = client.get(url).send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    let (status, text) = preview("contact=alice&report=weekly&period=2026-W23&format=text").await;
    assert_eq!(status, 200, "{text}");
    for expected in [
        "Weekly report for alice: 2026-W23 (Mon 1 Jun 2026 – Sun 7 Jun 2026, Europe/Berlin)",
        "Uptime: 99.21% over 2 checks",
        "api: 98.81% (before: 100.00% ↓), 1 incident, p95 200 ms",
        "db: 100.00% (before: no data), 0 incidents, p95 1.50 s",
        "Wed 3 Jun 12:00  api  2h  connect: refused",
        "Slowest (p95):\n  db: 1.50 s\n  api: 200 ms",
        "Delivered to you: 1 sent, 0 held, 0 rate-limited, 0 dead",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(!text.contains("other"), "a check the report does not select: {text}");
    println!("--- rendered report (text form) ---\n{text}--- end ---");
    let (status, json) = preview("contact=bob&period=2026-W23").await;
    assert_eq!(status, 200, "{json}");
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["data"]["deliveries"]["sent"], 0, "bob was told nothing");
    assert_eq!(json["sent"], false);
    let html = json["html"].as_str().unwrap();
    assert!(html.contains(">api</td>") && html.contains(">98.81%</td>"), "{html}");
    // only_problems lists the checks with downtime (api, other), not db.
    let (status, json) = preview("contact=alice&report=problems&period=2026-W23").await;
    assert_eq!(status, 200, "{json}");
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    let names: Vec<&str> =
        json["data"]["checks"].as_array().unwrap().iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(names, ["api", "other"], "{json}");
    assert_eq!(json["channel"], "log");
    let (status, _) = preview("contact=alice&format=text&channel=log").await;
    assert_eq!(status, 200);
    let (status, reason) = preview("contact=alice&period=2026-13").await;
    assert_eq!((status, reason.contains("invalid period")), (400, true), "{reason}");
    let (status, reason) = preview("contact=carol").await;
    assert_eq!((status, reason.contains("unknown contact")), (404, true), "{reason}");
    assert!(reports_to(&smtp, "alice@example.com").is_empty(), "a preview sends nothing");

    // Monday 07:59 Berlin: not yet; 08:00: the report goes out, once per contact.
    clock.set(at("2026-06-08T05:59:00Z"));
    app.reports().unwrap().send_due().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(reports_to(&smtp, "alice@example.com").is_empty(), "not before 08:00");
    clock.set(at("2026-06-08T06:00:30Z"));
    let mails = wait_reports(&smtp, "alice@example.com", 1).await;
    let mail = &mails[0];
    assert!(mail.contains("Subject: Weekly report 2026-W23: 99.21% up, 1 incidents"), "{mail}");
    assert!(
        mail.contains("api: 98.81% (before: 100.00% =E2=86=93)") || mail.contains("api: 98.81% (before: 100.00% ↓)"),
        "{mail}"
    );
    assert!(mail.contains("Content-Type: text/html"), "HTML alternative: {mail}");
    wait_reports(&smtp, "bob@example.com", 1).await;
    // Again and again: the dedup key holds.
    for _ in 0..3 {
        app.reports().unwrap().send_due().await.unwrap();
    }
    app.shutdown().await;

    let (app, _) = start(dir.path(), &yaml, &clock).await;
    clock.set(at("2026-06-08T07:00:00Z"));
    app.reports().unwrap().send_due().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(reports_to(&smtp, "alice@example.com").len(), 1, "once per period across a restart");
    assert_eq!(reports_to(&smtp, "bob@example.com").len(), 1);
    app.shutdown().await;
}

#[tokio::test]
async fn a_slot_missed_while_down_is_sent_late_once() {
    let smtp = peer!(SmtpServer::start(SmtpOpts::default()).await);
    let dir = tempfile::tempdir().unwrap();
    let yaml = yaml(&smtp, &sqlite(dir.path()));
    let clock = TestClock::new(at("2026-06-05T09:00:00Z"));
    let (app, _) = start(dir.path(), &yaml, &clock).await;
    app.reports().unwrap().send_due().await.unwrap();
    app.shutdown().await;
    // Down over Monday 8 June 08:00; back on Tuesday.
    clock.set(at("2026-06-09T10:00:00Z"));
    let (app, _) = start(dir.path(), &yaml, &clock).await;
    let mails = wait_reports(&smtp, "alice@example.com", 1).await;
    assert!(mails[0].contains("Subject: Weekly report 2026-W23 (late)"), "{}", mails[0]);
    assert!(mails[0].contains("Sent late: checkit was not running"), "{}", mails[0]);
    for _ in 0..3 {
        app.reports().unwrap().send_due().await.unwrap();
    }
    // The next slot is on time.
    clock.set(at("2026-06-15T06:00:00Z"));
    let mails = wait_reports(&smtp, "alice@example.com", 2).await;
    assert!(mails[1].contains("Subject: Weekly report 2026-W24:"), "{}", mails[1]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(reports_to(&smtp, "alice@example.com").len(), 2, "the late period once, the next once");
    // The week before the report was configured (W22, due 1 June) never went out.
    assert!(reports_to(&smtp, "alice@example.com").iter().all(|mail| !mail.contains("2026-W22")));
    app.shutdown().await;
}

#[tokio::test]
async fn two_replicas_on_postgres_send_each_period_once() {
    let pg = peer!(Postgres::start(PostgresOpts::default()).await);
    let smtp = peer!(SmtpServer::start(SmtpOpts::default()).await);
    let url_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(url_file.path(), pg.url()).unwrap();
    let store = format!("{{postgres: {{url_file: '{}'}}}}", url_file.path().display());
    let clock = TestClock::new(at("2026-06-05T09:00:00Z"));
    // Each replica has its own directory (and checks store); the bridge store is shared.
    let (first_dir, second_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (first, _) = start(first_dir.path(), &yaml(&smtp, &store), &clock).await;
    let (second, _) = start(second_dir.path(), &yaml(&smtp, &store), &clock).await;
    clock.set(at("2026-06-08T06:00:00Z"));
    // Both scheduler tasks woke; both replicas are also asked at once.
    let (a, b) = tokio::join!(first.reports().unwrap().send_due(), second.reports().unwrap().send_due());
    a.unwrap();
    b.unwrap();
    wait_reports(&smtp, "alice@example.com", 1).await;
    wait_reports(&smtp, "bob@example.com", 1).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(reports_to(&smtp, "alice@example.com").len(), 1, "one report per contact and period");
    assert_eq!(reports_to(&smtp, "bob@example.com").len(), 1);
    first.shutdown().await;
    second.shutdown().await;
}

#[tokio::test]
async fn report_config_problems_are_reported_with_their_paths() {
    let text = "bridge:\n  contacts: {a: {log: a}}\n  channels: {log: {}}\n  reports:\n    r:\n      every: weekly\n      \
                at: '25:00'\n      timezone: Mars/Olympus\n      contacts: [zed]\n      groups: [nope]\n      \
                checks: ['team=~\"(\"']\n      channels: [sms]\n";
    let err = Config::parse(text).unwrap_err().to_string();
    for expected in [
        "bridge.reports.r.at: invalid time \"25:00\"",
        "bridge.reports.r.timezone: unknown IANA time zone",
        "bridge.reports.r.contacts[0]: unknown contact \"zed\"",
        "bridge.reports.r.groups[0]: unknown group \"nope\"",
        "bridge.reports.r.checks[0]",
        "bridge.reports.r.channels[0]: bridge.channels.sms must be configured",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in {err}");
    }
    let err = Config::parse("bridge:\n  reports: {r: {every: hourly, contacts: [a]}}\n").unwrap_err().to_string();
    assert!(err.contains("bridge.reports.r") && err.contains("hourly"), "{err}");
}
