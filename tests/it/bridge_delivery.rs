//! The outbox: retries with backoff that honour Retry-After, dead letters,
//! permanent failures, history filters and paging, delivery metrics.

use crate::bridge_support::{Answer, Recorder, TestBridge, notification};
use chrono::Duration;

fn webhook_bridge_yaml(recorder: &Recorder, extra: &str) -> String {
    format!(
        "retry: {{initial_interval: 10s, max_interval: 5m}}\nmax_age: 1h\n\
         contacts:\n  ops: {{webhook: '{}', log: ops}}\n  dev: {{webhook: '{}'}}\n\
         routes:\n  - matchers: ['severity=\"critical\"']\n    contacts: [ops]\n    channels: [webhook]\n  - contacts: [dev]\n{extra}",
        recorder.url("/ops"),
        recorder.url("/dev"),
    )
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff_until_delivered() {
    let recorder = Recorder::start().await;
    recorder.script(&[Answer { status: 500, retry_after: None }, Answer { status: 503, retry_after: None }]);
    let bridge = TestBridge::start(&webhook_bridge_yaml(&recorder, "")).await;
    let (status, _) = bridge.post(notification("team", "g", &[("DiskFull", "critical", "firing")])).await;
    assert_eq!(status, 200);
    recorder.wait_for(1).await;
    bridge.wait_for_outcome("failed", 1).await;
    // The first retry waits 10s ± 50 %: not before 5s.
    bridge.advance(Duration::seconds(4));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(recorder.count(), 1, "no retry before the backoff");
    bridge.advance(Duration::seconds(12));
    recorder.wait_for(2).await;
    bridge.wait_for_outcome("failed", 2).await;
    // The second waits 20s ± 50 %.
    bridge.advance(Duration::seconds(31));
    recorder.wait_for(3).await;
    let sent = bridge.wait_for_outcome("sent", 1).await;
    let item = &sent["items"][0];
    assert_eq!(item["attempt"], 3);
    assert_eq!(item["contact"], "ops");
    assert_eq!(item["channel"], "webhook");
    assert_eq!(item["alerts"][0]["alertname"], "DiskFull");
    assert!(item["provider_response"].as_str().unwrap().contains("200"));
    assert_eq!(recorder.requests().iter().filter(|r| r.path == "/ops").count(), 3);
    assert_eq!(bridge.metric("checkit_bridge_deliveries_total{channel=\"webhook\",outcome=\"failed\"}"), 2.0);
    assert_eq!(
        bridge.metric("checkit_bridge_delivery_failures_total{channel=\"webhook\",reason=\"server_error\"}"),
        2.0,
        "both 5xx answers are counted by reason"
    );
    assert_eq!(bridge.metric("checkit_bridge_delivery_failures_total{channel=\"webhook\",reason=\"timeout\"}"), 0.0);
    bridge.stop().await;
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let recorder = Recorder::start().await;
    recorder.script(&[Answer { status: 429, retry_after: Some(120) }]);
    let bridge = TestBridge::start(&webhook_bridge_yaml(&recorder, "")).await;
    bridge.post(notification("team", "g", &[("DiskFull", "critical", "firing")])).await;
    bridge.wait_for_outcome("failed", 1).await;
    // Backoff alone would retry within 15s; the provider asked for 120s.
    bridge.advance(Duration::seconds(60));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(recorder.count(), 1, "retried before Retry-After");
    bridge.advance(Duration::seconds(61));
    bridge.wait_for_outcome("sent", 1).await;
    assert_eq!(recorder.count(), 2);
    bridge.stop().await;
}

#[tokio::test]
async fn messages_older_than_max_age_are_dead_lettered_and_visible() {
    let recorder = Recorder::start().await;
    recorder.answer_by_default(500);
    let bridge = TestBridge::start(&webhook_bridge_yaml(&recorder, "")).await;
    bridge.post(notification("team", "g", &[("DiskFull", "critical", "firing")])).await;
    let mut failures = 1;
    bridge.wait_for_outcome("failed", failures).await;
    // Keep moving past every backoff (max 5m) until the hour is used up.
    for _ in 0..40 {
        bridge.advance(Duration::minutes(6));
        let dead = bridge.history("status=dead").await;
        if dead["total"] == 1 {
            break;
        }
        failures += 1;
        crate::bridge_support::eventually("another attempt or a dead letter", || {
            (recorder.count() >= failures).then_some(())
        })
        .await;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let dead = bridge.wait_for_outcome("dead", 1).await;
    let error = dead["items"][0]["error"].as_str().unwrap();
    assert!(error.contains("gave up after"), "{error}");
    assert!(error.contains("max_age 1h"), "{error}");
    let attempts = recorder.count();
    bridge.advance(Duration::hours(2));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(recorder.count(), attempts, "no attempt after the dead letter");
    assert_eq!(bridge.metric("checkit_bridge_deliveries_total{channel=\"webhook\",outcome=\"dead\"}"), 1.0);
    bridge.stop().await;
}

#[tokio::test]
async fn client_errors_are_permanent() {
    let recorder = Recorder::start().await;
    recorder.script(&[Answer { status: 400, retry_after: None }]);
    let bridge = TestBridge::start(&webhook_bridge_yaml(&recorder, "")).await;
    bridge.post(notification("team", "g", &[("DiskFull", "critical", "firing")])).await;
    let dead = bridge.wait_for_outcome("dead", 1).await;
    assert!(dead["items"][0]["error"].as_str().unwrap().contains("permanent failure"));
    bridge.advance(Duration::hours(1));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(recorder.count(), 1);
    bridge.stop().await;
}

#[tokio::test]
async fn history_filters_sorts_and_pages() {
    let recorder = Recorder::start().await;
    let bridge = TestBridge::start(&webhook_bridge_yaml(&recorder, "")).await;
    for (index, (name, severity)) in
        [("DiskFull", "critical"), ("HighLatency", "warning"), ("DiskFull", "warning"), ("CpuHot", "critical")]
            .into_iter()
            .enumerate()
    {
        bridge.post(notification("team", &format!("g{index}"), &[(name, severity, "firing")])).await;
        bridge.wait_for_outcome("sent", index + 1).await;
        bridge.advance(Duration::minutes(1));
    }
    let all = bridge.history("").await;
    assert_eq!(all["total"], 4);
    let newest_first: Vec<&str> =
        all["items"].as_array().unwrap().iter().map(|item| item["alerts"][0]["alertname"].as_str().unwrap()).collect();
    assert_eq!(newest_first, ["CpuHot", "DiskFull", "HighLatency", "DiskFull"]);
    let ops = bridge.history("contact=ops&sort=time").await;
    assert_eq!(ops["total"], 2);
    assert_eq!(ops["items"][0]["alerts"][0]["alertname"], "DiskFull");
    let disk = bridge.history("alertname=DiskFull").await;
    assert_eq!(disk["total"], 2);
    let none = bridge.history("alertname=Disk").await;
    assert_eq!(none["total"], 0, "alert names match exactly");
    let page = bridge.history("sort=time&limit=1&offset=1").await;
    assert_eq!(page["total"], 4);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["alerts"][0]["alertname"], "HighLatency");
    let since = (crate::bridge_support::start_time() + Duration::seconds(90)).to_rfc3339();
    let recent = bridge.history(&format!("since={}&channel=webhook&status=sent", urlencode(&since))).await;
    assert_eq!(recent["total"], 2);
    let response = bridge.client.get(bridge.url("/api/v1/deliveries?status=lost")).send().await.unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("invalid status"));
    bridge.stop().await;
}

#[tokio::test]
async fn metrics_cover_queue_and_latency() {
    let recorder = Recorder::start().await;
    recorder.answer_by_default(500);
    let bridge = TestBridge::start(&webhook_bridge_yaml(&recorder, "")).await;
    bridge.post(notification("team", "g", &[("DiskFull", "critical", "firing")])).await;
    bridge.wait_for_outcome("failed", 1).await;
    bridge.advance(Duration::minutes(2));
    crate::bridge_support::eventually("the queue gauges", || {
        let pending = bridge.metric("checkit_bridge_queue_depth{state=\"pending\"}");
        let age = bridge.metric("checkit_bridge_queue_oldest_pending_age_seconds");
        (pending == 1.0 && age >= 120.0).then_some(())
    })
    .await;
    recorder.answer_by_default(200);
    bridge.advance(Duration::minutes(1));
    bridge.wait_for_outcome("sent", 1).await;
    let text = bridge.metrics();
    for family in checkit::bridge::metrics::METRIC_NAMES {
        assert!(text.contains(family), "missing {family} in\n{text}");
    }
    assert_eq!(
        bridge.metric("checkit_bridge_delivery_attempt_duration_seconds_count{channel=\"webhook\"}"),
        recorder.count() as f64
    );
    bridge.stop().await;
}

fn urlencode(text: &str) -> String {
    text.replace('+', "%2B").replace(':', "%3A")
}

#[tokio::test]
async fn every_http_channel_is_delivered_through_failures() {
    let recorder = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("telegram-token");
    std::fs::write(&token, "123:abc").unwrap();
    recorder.script(&[
        Answer { status: 500, retry_after: None },
        Answer { status: 429, retry_after: Some(30) },
        Answer { status: 503, retry_after: None },
    ]);
    let bridge = TestBridge::start(&format!(
        "retry: {{initial_interval: 5s, max_interval: 1m}}\n\
         contacts:\n  erin:\n    sms: '+491701234567'\n    telegram: '42'\n    slack: '{slack}'\n    ntfy: alerts\n    webhook: '{hook}'\n\
         routes: [{{contacts: [erin]}}]\n\
         channels:\n  sms: {{url: '{sms}'}}\n  telegram: {{api_url: '{base}/', token_file: {token}}}\n  ntfy: {{server: '{base}'}}\n",
        slack = recorder.url("/slack"),
        hook = recorder.url("/hook"),
        sms = recorder.url("/sms"),
        base = recorder.url(""),
        token = token.display(),
    ))
    .await;
    bridge.post(notification("team", "g", &[("DiskFull", "critical", "firing")])).await;
    bridge.wait_for_outcome("failed", 3).await;
    for _ in 0..10 {
        if bridge.history("status=sent").await["total"] == 5 {
            break;
        }
        bridge.advance(Duration::seconds(31));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let sent = bridge.wait_for_outcome("sent", 5).await;
    let mut channels: Vec<&str> =
        sent["items"].as_array().unwrap().iter().map(|item| item["channel"].as_str().unwrap()).collect();
    channels.sort();
    assert_eq!(channels, ["ntfy", "slack", "sms", "telegram", "webhook"]);
    assert_eq!(recorder.count(), 8, "five deliveries and three failed attempts");
    let paths: Vec<String> = recorder.requests().iter().map(|r| r.path.clone()).collect();
    for expected in ["/sms", "/bot123:abc/sendMessage", "/slack", "/alerts", "/hook"] {
        assert!(paths.iter().any(|path| path == expected), "{expected} not in {paths:?}");
    }
    bridge.stop().await;
}

#[tokio::test]
async fn reload_swaps_people_and_routes_and_keeps_the_old_config_on_error() {
    let recorder = Recorder::start().await;
    let people = |name: &str| {
        format!(
            "contacts: {{{name}: {{webhook: '{}'}}}}\nroutes: [{{contacts: [{name}]}}]\n",
            recorder.url(&format!("/{name}"))
        )
    };
    let bridge = TestBridge::start(&people("ann")).await;
    bridge.post(notification("team", "one", &[("One", "warning", "firing")])).await;
    recorder.wait_for(1).await;
    let mut config = crate::bridge_support::config(&people("ben"));
    config.store = checkit::bridge::Config::default().store;
    bridge.bridge().reload(std::sync::Arc::new(config.clone()));
    bridge.post(notification("team", "two", &[("Two", "warning", "firing")])).await;
    recorder.wait_for(2).await;
    // A config whose secret cannot be read is refused; the running one stays.
    config.auth.bearer = Some(checkit::bridge::config::BearerAuth { token_file: "/nonexistent/token".into() });
    let err = bridge.bridge().try_reload(std::sync::Arc::new(config)).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/token"), "{err}");
    let (status, _) = bridge.post(notification("team", "three", &[("Three", "warning", "firing")])).await;
    assert_eq!(status, 200, "still open: the failed reload changed nothing");
    recorder.wait_for(3).await;
    let paths: Vec<String> = recorder.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, ["/ann", "/ben", "/ben"]);
    bridge.stop().await;
}

#[tokio::test]
async fn shutdown_finishes_the_attempt_in_flight_and_leaves_the_rest_pending() {
    let recorder = Recorder::start().await;
    recorder.delay_answers(std::time::Duration::from_millis(700));
    let bridge = TestBridge::start(&webhook_bridge_yaml(&recorder, "")).await;
    for group in ["a", "b", "c"] {
        bridge.post(notification("team", group, &[("DiskFull", "warning", "firing")])).await;
    }
    recorder.wait_for(1).await;
    bridge.bridge().shutdown().await;
    let sent = bridge.history("status=sent").await;
    assert_eq!(sent["total"], 1, "the attempt in flight was finished and recorded");
    let stats = bridge.bridge().store().queue_stats().await.expect("queue stats");
    assert_eq!(stats.pending, 2, "the rest stays pending for the next start");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(recorder.count(), 1);
    bridge.stop().await;
}
