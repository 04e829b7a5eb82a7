//! Acknowledgement against a real Alertmanager: the link in the firing
//! notification creates a silence (read back through the API), the repeats
//! stop, the other contact gets the note, the resolved message still arrives
//! (the poller notices the resolution Alertmanager does not send), and
//! tampered or expired links are refused with a clear page.

use crate::bridge_support::{Recorder, TestBridge, config, eventually};
use crate::peer;
use crate::support::peers::Alertmanager;
use chrono::Utc;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

fn bridge_yaml(recorder: &Recorder, key_file: &str, alertmanager: &str) -> String {
    format!(
        "dedup_window: 0s\n\
         contacts:\n  alice: {{webhook: '{}'}}\n  bob: {{webhook: '{}'}}\n\
         routes: [{{contacts: [alice, bob]}}]\n\
         acknowledgement:\n  key_file: {key_file}\n  external_url: http://checkit.example/\n  \
         alertmanagers: ['{alertmanager}']\n  poll_interval: 1s\n  silence_duration: 1h\n",
        recorder.url("/alice"),
        recorder.url("/bob"),
    )
}

fn alertmanager_yaml(webhook: &str) -> String {
    format!(
        "route:\n  receiver: pager\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 1s\n  \
         repeat_interval: 3s\nreceivers:\n- name: pager\n  webhook_configs:\n  - url: {webhook}\n    send_resolved: true\n"
    )
}

fn alert(ended: bool) -> Value {
    let now = Utc::now();
    let mut alert = json!({
        "labels": {"alertname": "DiskFull", "severity": "critical", "instance": "db-1"},
        "annotations": {"summary": "Disk full on db-1"},
        "startsAt": (now - chrono::Duration::minutes(5)).to_rfc3339(),
    });
    if ended {
        alert["endsAt"] = (now - chrono::Duration::seconds(1)).to_rfc3339().into();
    }
    alert
}

/// The views `recorder` received on `path`, in order.
pub(crate) fn views(recorder: &Recorder, path: &str) -> Vec<Value> {
    recorder
        .requests()
        .iter()
        .filter(|request| request.path == path)
        .map(|request| serde_json::from_str(&request.body).expect("a view"))
        .collect()
}

#[tokio::test]
async fn acknowledging_silences_tells_the_others_and_still_reports_the_resolution() {
    let recorder = Recorder::start().await;
    let secrets = tempfile::tempdir().unwrap();
    let key_file = secrets.path().join("ack.key");
    std::fs::write(&key_file, "k3y-for-signing-acknowledge-links-0123456789\n").unwrap();
    let key_file = key_file.display().to_string();
    // The bridge starts first (Alertmanager needs its webhook URL), then
    // learns Alertmanager's address by a reload.
    let bridge = TestBridge::start_at(&bridge_yaml(&recorder, &key_file, "http://127.0.0.1:9"), Utc::now()).await;
    let am = peer!(Alertmanager::start(&alertmanager_yaml(&bridge.url("/webhook"))).await);
    let am_url = format!("http://{}", am.addr);
    let mut reloaded = config(&bridge_yaml(&recorder, &key_file, &am_url));
    reloaded.store =
        Some(checkit::bridge::config::StoreConfig::sqlite(bridge.dir.path().join("bridge.db").display().to_string()));
    bridge.bridge().try_reload(Arc::new(reloaded)).expect("reload");

    assert_eq!(am.post_alerts(&json!([alert(false)])).await, 200);
    // Alertmanager repeats every 3s; wait for a repeat to see the repeats happen.
    let firing = eventually("a firing notification and its repeat to alice", || {
        let alice = views(&recorder, "/alice");
        (alice.len() >= 2).then_some(alice)
    })
    .await;
    assert_eq!(firing[0]["status"], "firing");
    let link = firing[0]["acknowledge_url"].as_str().expect("an acknowledge link").to_string();
    let path = link.strip_prefix("http://checkit.example").expect("under external_url").to_string();
    assert!(path.starts_with("/ack/"), "{link}");
    assert!(views(&recorder, "/bob")[0]["acknowledge_url"] != firing[0]["acknowledge_url"], "links are per contact");

    // A tampered link is refused with a page saying so.
    let tampered = format!("{}x", &path[..path.len() - 1]);
    let response = bridge.client.post(bridge.url(&tampered)).send().await.unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("This acknowledge link is not valid"));
    // GET only asks: link scanners and previews must not acknowledge.
    let response = bridge.client.get(bridge.url(&path)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let confirmation = response.text().await.unwrap();
    assert!(confirmation.contains("<form method=\"post\">") && confirmation.contains("<strong>alice</strong>"));
    let silences: Vec<Value> = reqwest::get(format!("{am_url}/api/v2/silences")).await.unwrap().json().await.unwrap();
    assert!(silences.is_empty(), "GET created no silence: {silences:?}");

    let response = bridge.client.post(bridge.url(&path)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("Acknowledged DiskFull"));
    let silences: Vec<Value> = reqwest::get(format!("{am_url}/api/v2/silences")).await.unwrap().json().await.unwrap();
    assert_eq!(silences.len(), 1, "{silences:?}");
    let silence = &silences[0];
    assert_eq!(silence["createdBy"], "alice");
    assert_eq!(silence["status"]["state"], "active");
    let matchers: Vec<(String, String)> = silence["matchers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["name"].as_str().unwrap().to_string(), m["value"].as_str().unwrap().to_string()))
        .collect();
    assert!(matchers.contains(&("alertname".into(), "DiskFull".into())), "{matchers:?}");
    assert!(matchers.contains(&("instance".into(), "db-1".into())), "{matchers:?}");
    // A second click says who already has it and creates nothing.
    let again = bridge.client.post(bridge.url(&path)).send().await.unwrap().text().await.unwrap();
    assert!(again.contains("already acknowledged"), "{again}");

    // Bob, who was told, gets one short note.
    let note = eventually("the acknowledged-by note to bob", || {
        views(&recorder, "/bob").into_iter().find(|view| view["kind"] == "message")
    })
    .await;
    assert_eq!(note["message"]["subject"], "Acknowledged by alice: DiskFull");
    assert!(views(&recorder, "/alice").iter().all(|view| view["kind"] != "message"), "not to the one who acked");

    // The repeats stop.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let settled = views(&recorder, "/alice").len();
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(views(&recorder, "/alice").len(), settled, "no repeats while acknowledged");

    // While the alert fires, the silence is extended before it runs out.
    let first_end = silence["endsAt"].as_str().unwrap().to_string();
    bridge.advance(chrono::Duration::minutes(40));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let silences: Vec<Value> =
            reqwest::get(format!("{am_url}/api/v2/silences")).await.unwrap().json().await.unwrap();
        let active: Vec<&Value> = silences.iter().filter(|s| s["status"]["state"] == "active").collect();
        if active.len() == 1 && active[0]["endsAt"].as_str().unwrap() > first_end.as_str() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "silence not extended: {silences:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Alertmanager sends nothing for the silenced alert's resolution; checkit does.
    assert_eq!(am.post_alerts(&json!([alert(true)])).await, 200);
    let resolved = eventually("the resolved notification to alice", || {
        views(&recorder, "/alice").into_iter().find(|view| view["status"] == "resolved")
    })
    .await;
    assert_eq!(resolved["resolved"][0]["labels"]["alertname"], "DiskFull");
    assert!(resolved["acknowledge_url"].is_null(), "no link on a resolution");
    eventually("the resolved notification to bob", || {
        views(&recorder, "/bob").into_iter().find(|view| view["status"] == "resolved")
    })
    .await;
    let silences: Vec<Value> = reqwest::get(format!("{am_url}/api/v2/silences")).await.unwrap().json().await.unwrap();
    assert!(
        silences.iter().all(|s| s["status"]["state"] == "expired"),
        "the silence ends with the alert: {silences:?}"
    );
    let acks: Value =
        bridge.client.get(bridge.url("/api/v1/acknowledgements")).send().await.unwrap().json().await.unwrap();
    assert_eq!(acks["total"], 1);
    assert_eq!(acks["items"][0]["contact"], "alice");
    assert!(acks["items"][0]["resolved_at"].is_string(), "{acks}");

    // Past link_ttl (24h) the link is refused with a page saying so.
    bridge.advance(chrono::Duration::hours(25));
    let response = bridge.client.get(bridge.url(&path)).send().await.unwrap();
    assert_eq!(response.status(), 410);
    assert!(response.text().await.unwrap().contains("This acknowledge link has expired"));
    bridge.stop().await;
}
