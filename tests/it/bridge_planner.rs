//! Quiet hours with one catch-up, rate limits with one overflow summary, and
//! route delays, all driven by a hand-moved clock (no sleeps for time).

use crate::bridge_support::{Recorder, TestBridge, notification, notification_at, start_time};
use chrono::Duration;
use serde_json::Value;

/// The JSON views the recorder received (the webhook channel posts the view).
fn views(recorder: &Recorder) -> Vec<Value> {
    recorder.requests().iter().map(|request| serde_json::from_str(&request.body).expect("a JSON view")).collect()
}

fn names(alerts: &Value) -> Vec<String> {
    let mut names: Vec<String> = alerts
        .as_array()
        .expect("a list of alerts")
        .iter()
        .map(|alert| alert["labels"]["alertname"].as_str().expect("an alertname").to_string())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn quiet_hours_hold_messages_and_send_one_catch_up() {
    let recorder = Recorder::start().await;
    let bridge = TestBridge::start(&format!(
        "contacts:\n  alice:\n    webhook: '{}'\n    quiet_hours:\n      timezone: Europe/Berlin\n      \
         ranges: [{{days: [mon-fri], from: '23:00', to: '08:00'}}]\n      bypass: ['severity=\"critical\"']\n\
         routes: [{{contacts: [alice]}}]\n",
        recorder.url("/alice")
    ))
    .await;
    // Monday 12:00 UTC is 13:00 in Berlin: not quiet.
    bridge.post(notification("team", "noon", &[("Noon", "warning", "firing")])).await;
    recorder.wait_for(1).await;
    // 22:30 UTC is 23:30 in Berlin: quiet.
    bridge.advance(Duration::minutes(10 * 60 + 30));
    bridge.post(notification("team", "disk", &[("DiskFull", "warning", "firing")])).await;
    bridge.post(notification("team", "cpu", &[("CpuHot", "warning", "firing")])).await;
    bridge.advance(Duration::minutes(30));
    bridge.post(notification("team", "disk", &[("DiskFull", "warning", "resolved")])).await;
    bridge.wait_for_outcome("held", 3).await;
    // A critical alert bypasses the quiet hours.
    bridge.post(notification("team", "db", &[("DatabaseDown", "critical", "firing")])).await;
    recorder.wait_for(2).await;
    assert_eq!(views(&recorder)[1]["alerts"][0]["labels"]["alertname"], "DatabaseDown");
    // Still quiet at 06:59 UTC (07:59 Berlin).
    bridge.advance(Duration::minutes(7 * 60 + 59));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(recorder.count(), 2, "nothing before the quiet hours end");
    // 07:00 UTC = 08:00 Berlin: one catch-up.
    bridge.advance(Duration::minutes(1));
    recorder.wait_for(3).await;
    bridge.wait_for_outcome("sent", 3).await;
    let catch_up = &views(&recorder)[2];
    assert_eq!(catch_up["kind"], "catch_up");
    assert_eq!(names(&catch_up["firing"]), ["CpuHot", "DiskFull"], "what fired");
    assert_eq!(names(&catch_up["still_firing"]), ["CpuHot"], "what still fires");
    assert_eq!(names(&catch_up["resolved"]), ["DiskFull"], "what resolved meanwhile");
    assert_eq!(catch_up["contact"], "alice");
    bridge.advance(Duration::hours(1));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(recorder.count(), 3, "exactly one catch-up");
    let sent = bridge.history("status=sent&sort=time").await;
    assert_eq!(sent["items"][2]["kind"], "catch_up");
    assert_eq!(bridge.metric("checkit_bridge_quiet_hours_held_total{channel=\"webhook\"}"), 3.0);
    bridge.stop().await;
}

#[tokio::test]
async fn rate_limit_overflow_is_collapsed_into_one_summary() {
    let recorder = Recorder::start().await;
    let bridge = TestBridge::start(&format!(
        "rate_limits: {{webhook: ['2/h', '3/d']}}\ncontacts: {{bob: {{webhook: '{}'}}}}\nroutes: [{{contacts: [bob]}}]\n",
        recorder.url("/bob")
    ))
    .await;
    for index in 1..=6 {
        let name = format!("Alert{index}");
        bridge.post(notification("team", &name, &[(&name, "warning", "firing")])).await;
    }
    bridge.post(notification("team", "Alert3", &[("Alert3", "warning", "resolved")])).await;
    recorder.wait_for(2).await;
    bridge.wait_for_outcome("rate_limited", 5).await;
    assert_eq!(recorder.count(), 2, "the budget is two per hour");
    // After an hour the budget is back: one summary of everything held back.
    bridge.advance(Duration::minutes(61));
    recorder.wait_for(3).await;
    let summary = &views(&recorder)[2];
    assert_eq!(summary["kind"], "overflow");
    assert_eq!(summary["suppressed_count"], 4, "Alert3..Alert6");
    assert_eq!(names(&summary["still_firing"]), ["Alert4", "Alert5", "Alert6"]);
    assert_eq!(names(&summary["resolved"]), ["Alert3"]);
    // Nothing was dropped: every alert reached bob directly or in the summary.
    let mut told: Vec<String> = views(&recorder).iter().flat_map(|view| names(&view["alerts"])).collect();
    told.sort();
    told.dedup();
    assert_eq!(told, ["Alert1", "Alert2", "Alert3", "Alert4", "Alert5", "Alert6"]);
    // The daily budget (3) is now spent: the next message waits for the day.
    bridge.post(notification("team", "late", &[("Late", "critical", "firing")])).await;
    bridge.wait_for_outcome("rate_limited", 6).await;
    bridge.advance(Duration::hours(2));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(recorder.count(), 3);
    bridge.advance(Duration::hours(22));
    recorder.wait_for(4).await;
    let late = &views(&recorder)[3];
    assert_eq!(late["kind"], "notification", "a single held-back message goes out as itself");
    assert_eq!(late["alerts"][0]["labels"]["alertname"], "Late");
    assert!(bridge.metric("checkit_bridge_rate_limited_total{channel=\"webhook\"}") >= 6.0);
    bridge.stop().await;
}

#[tokio::test]
async fn a_contact_rate_limit_spans_channels() {
    let recorder = Recorder::start().await;
    let bridge = TestBridge::start(&format!(
        "contacts: {{carol: {{webhook: '{}', slack: '{}', rate_limit: ['1/h']}}}}\nroutes: [{{contacts: [carol]}}]\n",
        recorder.url("/hook"),
        recorder.url("/slack")
    ))
    .await;
    bridge.post(notification("team", "a", &[("A", "warning", "firing")])).await;
    bridge.wait_for_outcome("rate_limited", 1).await;
    bridge.wait_for_outcome("sent", 1).await;
    assert_eq!(recorder.count(), 1, "one message per hour over all of carol's channels");
    bridge.advance(Duration::hours(1));
    recorder.wait_for(2).await;
    let paths: Vec<String> = recorder.requests().iter().map(|r| r.path.clone()).collect();
    assert!(paths.contains(&"/hook".to_string()) && paths.contains(&"/slack".to_string()), "{paths:?}");
    bridge.stop().await;
}

#[tokio::test]
async fn delayed_routes_notify_only_alerts_that_still_fire() {
    let recorder = Recorder::start().await;
    let bridge = TestBridge::start(&format!(
        "contacts: {{dave: {{webhook: '{}'}}}}\nroutes: [{{contacts: [dave], delay: 5m}}]\n",
        recorder.url("/dave")
    ))
    .await;
    let starts = start_time() - Duration::minutes(1);
    bridge.post(notification_at("team", "x", &[("Flapping", "warning", "firing")], starts)).await;
    bridge.post(notification_at("team", "y", &[("Steady", "warning", "firing")], starts)).await;
    bridge.advance(Duration::minutes(2));
    // Flapping resolves before the delay is over: dave never hears of it.
    bridge.post(notification_at("team", "x", &[("Flapping", "warning", "resolved")], starts)).await;
    bridge.wait_for_outcome("skipped", 1).await;
    bridge.advance(Duration::minutes(2));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(recorder.count(), 0, "nothing before the delay");
    bridge.advance(Duration::minutes(1));
    recorder.wait_for(1).await;
    bridge.wait_for_outcome("skipped", 2).await;
    let first = &views(&recorder)[0];
    assert_eq!(names(&first["alerts"]), ["Steady"]);
    // Steady resolves: dave was told it fired, so he hears it resolved, at once,
    // with how long it fired.
    bridge.post(notification_at("team", "y", &[("Steady", "warning", "resolved")], starts)).await;
    recorder.wait_for(2).await;
    let resolved = &views(&recorder)[1];
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["resolved"][0]["firing_for"], "30m");
    assert_eq!(recorder.count(), 2);
    bridge.stop().await;
}
