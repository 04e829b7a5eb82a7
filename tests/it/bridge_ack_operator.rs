//! Acknowledgement from the operator UI and for checkit's own checks: the
//! Acknowledge button (operators only, CSRF-guarded) silences the group on
//! each of two real Alertmanagers (read back through each one's API), and
//! acknowledging a check's outage stops its reminders until it resolves,
//! while the resolution still goes out. The button is also pressed in headless
//! Chromium (`tests/browser/ack.mjs`): CSRF with a real browser's headers, axe.

use crate::bridge_ack::views;
use crate::bridge_support::{Recorder, eventually};
use crate::peer;
use crate::support::peers::Alertmanager;
use checkit::app::{App, ConfigSource, Options};
use checkit::bridge::clock::{Clock, TestClock};
use checkit::http::webconfig::Web;
use checkit::settings::Config;
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

async fn start(dir: &Path, yaml: &str, clock: Arc<TestClock>) -> (Arc<App>, String) {
    let path = dir.join("checkit.yml");
    std::fs::write(&path, yaml).expect("write config");
    let config = Config::load(&path).unwrap_or_else(|err| panic!("test config does not load: {err}"));
    let app = App::new_with_clock(config, ConfigSource::File(path), Options::default(), Web::default(), clock)
        .await
        .expect("app starts");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    app.serve(listener, app.router(), &Default::default());
    (app, base)
}

fn key_file(dir: &Path) -> String {
    let path = dir.join("ack.key");
    std::fs::write(&path, "k3y-for-signing-acknowledge-links-0123456789\n").expect("key");
    path.display().to_string()
}

/// The newest history entry of alice, once written (right after the provider answered).
async fn alice_latest(client: &reqwest::Client, base: &str) -> Value {
    for _ in 0..200 {
        let history: Value = client
            .get(format!("{base}/api/v1/deliveries?contact=alice"))
            .send()
            .await
            .expect("history")
            .json()
            .await
            .expect("JSON");
        if history["items"][0].is_object() {
            return history["items"][0].clone();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no delivery to alice in the history");
}

async fn silences(am: &Alertmanager) -> Vec<Value> {
    reqwest::get(format!("http://{}/api/v2/silences", am.addr)).await.expect("silences").json().await.expect("JSON")
}

#[tokio::test]
async fn the_operator_button_silences_the_group_on_every_alertmanager() {
    let quiet = "route: {receiver: none}\nreceivers: [{name: none}]\n";
    let first = peer!(Alertmanager::start(quiet).await);
    let second = peer!(Alertmanager::start(quiet).await);
    let recorder = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "bridge:\n  store: {{sqlite: {{path: '{}'}}}}\n  dedup_window: 0s\n\
         \x20 contacts: {{alice: {{webhook: '{}'}}, bob: {{webhook: '{}'}}}}\n  routes: [{{contacts: [alice, bob]}}]\n\
         \x20 acknowledgement:\n    key_file: {}\n    external_url: http://checkit.example/\n    \
         alertmanagers: ['http://{}', 'http://{}/']\n    poll_interval: 1h\n",
        dir.path().join("bridge.db").display(),
        recorder.url("/alice"),
        recorder.url("/bob"),
        key_file(dir.path()),
        first.addr,
        second.addr,
    );
    let (app, base) = start(dir.path(), &yaml, TestClock::new(chrono::Utc::now())).await;
    let client = reqwest::Client::new();
    let body = crate::bridge_support::notification("team", "g1", &[("DiskFull", "critical", "firing")]);
    assert_eq!(client.post(format!("{base}/webhook")).body(body).send().await.unwrap().status(), 200);
    recorder.wait_for(2).await;
    let id = alice_latest(&client, &base).await["id"].as_i64().expect("an id");

    let page = client.get(format!("{base}/ui/deliveries/{id}")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains(&format!("action=\"/ui/deliveries/{id}/acknowledge\"")), "{page}");
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a form token")
        .to_string();
    let acknowledge = format!("{base}/ui/deliveries/{id}/acknowledge");
    // Without the token, or from another site, nothing happens.
    let forged = client.post(&acknowledge).form(&[("csrf", "forged")]).send().await.unwrap();
    assert_eq!(forged.status(), 403);
    let cross = client.post(&acknowledge).header("sec-fetch-site", "cross-site").form(&[("csrf", &csrf)]);
    assert_eq!(cross.send().await.unwrap().status(), 403);
    assert!(silences(&first).await.is_empty() && silences(&second).await.is_empty());

    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let response = no_redirects.post(&acknowledge).form(&[("csrf", &csrf)]).send().await.unwrap();
    assert_eq!(response.status(), 303, "{:?}", response.text().await);
    for am in [&first, &second] {
        let found = silences(am).await;
        assert_eq!(found.len(), 1, "one silence on {}: {found:?}", am.addr);
        assert_eq!(found[0]["createdBy"], "operator");
        assert_eq!(found[0]["status"]["state"], "active");
        let matchers = found[0]["matchers"].as_array().unwrap();
        assert!(matchers.iter().any(|m| m["name"] == "alertname" && m["value"] == "DiskFull"), "{matchers:?}");
    }
    let page = client.get(format!("{base}/ui/deliveries/{id}")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Acknowledged by operator") && !page.contains("/acknowledge\""), "{page}");
    let note = eventually("the acknowledged-by note to bob", || {
        views(&recorder, "/bob").into_iter().find(|view| view["kind"] == "message")
    })
    .await;
    assert!(note["message"]["subject"].as_str().unwrap().starts_with("Acknowledged by operator: "), "{note}");
    let acks: Value = client.get(format!("{base}/api/v1/acknowledgements")).send().await.unwrap().json().await.unwrap();
    assert_eq!(acks["items"][0]["silences"].as_array().map(Vec::len), Some(2), "{acks}");
    app.shutdown().await;
}

#[tokio::test]
async fn acknowledging_a_check_outage_stops_its_reminders_until_it_resolves() {
    let recorder = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    let service = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = service.local_addr().unwrap();
    drop(service);
    let yaml = format!(
        "modules:\n  tcp_connect: {{prober: tcp, timeout: 2s}}\n\
         checks:\n- {{name: db, module: tcp_connect, target: '{addr}', interval: 1m, failures_before_down: 1, \
         successes_before_up: 1, repeat_interval: 2m}}\n\
         bridge:\n  store: {{sqlite: {{path: '{}'}}}}\n  dedup_window: 0s\n\
         \x20 contacts: {{alice: {{webhook: '{}'}}}}\n  routes: [{{contacts: [alice]}}]\n\
         \x20 acknowledgement:\n    key_file: {}\n    external_url: http://checkit.example/\n    \
         alertmanagers: ['http://127.0.0.1:9']\n    poll_interval: 1s\n",
        dir.path().join("bridge.db").display(),
        recorder.url("/alice"),
        key_file(dir.path()),
    );
    let clock = TestClock::new(chrono::Utc::now());
    let (app, base) = start(dir.path(), &yaml, clock.clone()).await;
    let client = reqwest::Client::new();
    let last_run = || {
        let (client, url) = (client.clone(), format!("{base}/api/v1/checks/db"));
        async move {
            let check: Value = client.get(url).send().await.unwrap().json().await.unwrap();
            check["check"]["last"]["at"].clone()
        }
    };
    // Moves the clock a minute on and waits for the run of that minute; when
    // the check's task was not yet sleeping as the clock moved (a loaded
    // machine), its first slot is the next minute's, so move on again.
    let step = || async {
        for _ in 0..5 {
            clock.advance(chrono::Duration::minutes(1));
            let since = clock.now() - chrono::Duration::minutes(1);
            for _ in 0..250 {
                let at = last_run().await;
                let ran = at.as_str().and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok());
                if ran.is_some_and(|at| at > since) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        panic!("db did not run at {} (last run {})", clock.now(), last_run().await);
    };
    step().await;
    let down = eventually("the down notification", || views(&recorder, "/alice").into_iter().next()).await;
    assert_eq!(down["status"], "firing");
    assert!(down["acknowledge_url"].is_string(), "check alerts carry the link too: {down}");
    let notification_id = alice_latest(&client, &base).await["notification_id"].as_i64().expect("an id");
    // Without acknowledgement a reminder comes after repeat_interval…
    step().await;
    step().await;
    eventually("a reminder", || (views(&recorder, "/alice").len() >= 2).then_some(())).await;
    let outcome = app.bridge().unwrap().acknowledge(notification_id, "alice").await.unwrap();
    assert!(
        matches!(outcome, checkit::bridge::ack::AckOutcome::Acknowledged { own_check: true, silences: 0, .. }),
        "{outcome:?}"
    );
    // …and none after it was acknowledged, even past the poller's interval
    // (counted after one more run, so a reminder already on its way is not).
    step().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let told = views(&recorder, "/alice").len();
    for _ in 0..5 {
        step().await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(views(&recorder, "/alice").len(), told, "no reminders while acknowledged");
    // The service comes back: the resolution is still told, and the acknowledgement closes.
    let service = tokio::net::TcpListener::bind(addr).await.unwrap();
    let accepting = tokio::spawn(async move {
        while let Ok((stream, _)) = service.accept().await {
            drop(stream);
        }
    });
    step().await;
    let resolved = eventually("the resolved notification", || {
        views(&recorder, "/alice").into_iter().find(|view| view["status"] == "resolved")
    })
    .await;
    assert!(resolved["alerts"][0]["annotations"]["summary"].as_str().unwrap().contains("db is up again"));
    let acks: Value = client.get(format!("{base}/api/v1/acknowledgements")).send().await.unwrap().json().await.unwrap();
    assert!(acks["items"][0]["resolved_at"].is_string(), "{acks}");
    accepting.abort();
    app.shutdown().await;
}

#[tokio::test]
async fn the_acknowledge_button_in_chromium() {
    let am = peer!(Alertmanager::start("route: {receiver: none}\nreceivers: [{name: none}]\n").await);
    let recorder = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "modules: {{}}\nui: {{operators: [olivia]}}\n\
         bridge:\n  store: {{sqlite: {{path: '{}'}}}}\n\
         \x20 contacts: {{alice: {{webhook: '{}'}}}}\n  routes: [{{contacts: [alice]}}]\n\
         \x20 acknowledgement:\n    key_file: {}\n    external_url: http://checkit.example/\n    \
         alertmanagers: ['http://{}']\n    poll_interval: 1h\n",
        dir.path().join("bridge.db").display(),
        recorder.url("/alice"),
        key_file(dir.path()),
        am.addr,
    );
    let web = crate::web_ui::web_config(dir.path());
    let app = crate::support::app::start_app_with(&yaml, Options::default(), web).await;
    let body = crate::bridge_support::notification("team", "g1", &[("DiskFull", "critical", "firing")]);
    let response = reqwest::Client::new().post(app.url("/webhook")).basic_auth("olivia", Some("pw")).body(body);
    assert_eq!(response.send().await.unwrap().status(), 200);
    recorder.wait_for(1).await;
    let screenshots = crate::web_browser::screenshot_dir("ack");
    crate::web_browser::run_script("ack.mjs", &app.url(""), "olivia", "pw", &screenshots, &[]).await;
    assert_eq!(silences(&am).await.len(), 1, "the button created the silence");
    assert_eq!(silences(&am).await[0]["createdBy"], "olivia");
}
