//! The webhook's inbound contract: 2xx only after a durable commit, 400 with
//! a reason, 401, 413, 503 (never 429), duplicates from HA peers counted once.

use crate::bridge_support::{Recorder, TestBridge, notification};
use std::io::Write;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/alertmanager");

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{name}")).expect("fixture")
}

async fn log_bridge(extra: &str) -> TestBridge {
    TestBridge::start(&format!("contacts: {{ops: {{log: ops}}}}\nroutes: [{{contacts: [ops]}}]\n{extra}")).await
}

#[tokio::test]
async fn captured_payloads_are_accepted_and_delivered() {
    let bridge = log_bridge("").await;
    let mut accepted = 0;
    for name in [
        "am-0.25-firing-2alerts.json",
        "am-0.25-mixed-firing-resolved.json",
        "am-0.25-all-resolved.json",
        "am-0.25-max_alerts-truncated.json",
        "am-0.25-receiver-name-escaped.json",
        "ext-alertmanager-bot-firing.json",
        "ext-alertmanager-bot-resolved.json",
        "ext-calert-mock_payload.json",
        "ext-goalert-example.json",
        "ext-grafana-unified-alerting-sample.json",
        "ext-prometheus-msteams-prom_post_request.json",
    ] {
        let (status, body) = bridge.post(fixture(name)).await;
        assert_eq!(status, 200, "{name}: {body}");
        assert!(body.contains("\"accepted\""), "{name}: {body}");
        accepted += 1;
    }
    bridge.wait_for_outcome("sent", accepted).await;
    assert_eq!(bridge.metric("checkit_bridge_notifications_accepted_total"), accepted as f64);
    assert_eq!(bridge.metric("checkit_bridge_deliveries_total{channel=\"log\",outcome=\"sent\"}"), accepted as f64);
    bridge.stop().await;
}

#[tokio::test]
async fn bad_bodies_get_400_with_the_reason() {
    let bridge = log_bridge("").await;
    for (body, reason) in [
        ("{not json", "invalid webhook body"),
        (r#"{"receiver":"x"}"#, "missing field `alerts`"),
        (r#"{"version":"5","alerts":[]}"#, "unsupported payload version \"5\""),
        (r#"{"version":"2","alerts":[]}"#, "unsupported payload version \"2\""),
        (r#"{"status":"pending","alerts":[]}"#, "unknown status \"pending\""),
        (r#"{"alerts":[{"startsAt":"last tuesday"}]}"#, "alerts[0].startsAt"),
    ] {
        let (status, text) = bridge.post(body).await;
        assert_eq!(status, 400, "{body}");
        assert!(text.contains(reason), "{body}: {text}");
    }
    assert_eq!(bridge.metric("checkit_bridge_webhooks_rejected_total{reason=\"malformed\"}"), 4.0);
    assert_eq!(bridge.metric("checkit_bridge_webhooks_rejected_total{reason=\"unsupported_version\"}"), 2.0);
    assert_eq!(bridge.metric("checkit_bridge_notifications_accepted_total"), 0.0);
    bridge.stop().await;
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let bridge = log_bridge("max_body_size: 2KB\n").await;
    let big = fixture("ext-calert-mock_payload.json");
    assert!(big.len() > 2048);
    let (status, text) = bridge.post(big.clone()).await;
    assert_eq!(status, 413, "{text}");
    // Without a Content-Length the limit still holds.
    let chunks: Vec<Result<hyper::body::Frame<bytes::Bytes>, std::io::Error>> =
        big.chunks(512).map(|chunk| Ok(hyper::body::Frame::data(bytes::Bytes::copy_from_slice(chunk)))).collect();
    let stream = reqwest::Body::wrap(http_body_util::StreamBody::new(futures::stream::iter(chunks)));
    let (status, _) = bridge.post(stream).await;
    assert_eq!(status, 413);
    let (status, _) = bridge.post(fixture("am-0.25-receiver-name-escaped.json")).await;
    assert_eq!(status, 200, "small bodies still pass");
    assert_eq!(bridge.metric("checkit_bridge_webhooks_rejected_total{reason=\"too_large\"}"), 2.0);
    bridge.stop().await;
}

#[tokio::test]
async fn credentials_are_required_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::File::create(&token).unwrap().write_all(b"tok123\n").unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, "s3cret").unwrap();
    let bridge = log_bridge(&format!(
        "auth:\n  bearer: {{token_file: {}}}\n  basic: {{username: am, password_file: {}}}\n",
        token.display(),
        password.display()
    ))
    .await;
    let body = fixture("am-0.25-firing-2alerts.json");
    let (status, _) = bridge.post(body.clone()).await;
    assert_eq!(status, 401);
    let (status, _) = bridge.post_with(body.clone(), |r| r.bearer_auth("wrong")).await;
    assert_eq!(status, 401);
    let (status, _) = bridge.post_with(body.clone(), |r| r.basic_auth("am", Some("wrong"))).await;
    assert_eq!(status, 401);
    let (status, text) = bridge.post_with(body.clone(), |r| r.bearer_auth("tok123")).await;
    assert_eq!(status, 200, "{text}");
    let (status, text) =
        bridge.post_with(fixture("am-0.25-all-resolved.json"), |r| r.basic_auth("am", Some("s3cret"))).await;
    assert_eq!(status, 200, "{text}");
    // The history API is behind the same credentials.
    let response = bridge.client.get(bridge.url("/api/v1/deliveries")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert!(response.headers().contains_key("www-authenticate"));
    // Only the three webhooks count: the counter pages (BridgeWebhooksRejected),
    // and a person opening the history without credentials is no attack.
    assert_eq!(bridge.metric("checkit_bridge_webhooks_rejected_total{reason=\"unauthorized\"}"), 3.0);
    bridge.stop().await;
}

#[tokio::test]
async fn the_same_notification_from_two_peers_is_delivered_once() {
    let recorder = Recorder::start().await;
    let bridge = TestBridge::start(&format!(
        "contacts: {{ops: {{webhook: '{}'}}}}\nroutes: [{{contacts: [ops]}}]\n",
        recorder.url("/ops")
    ))
    .await;
    let first = notification("team", "g1", &[("DiskFull", "critical", "firing")]);
    // The second peer sends the same content with another external URL and order.
    let mut second: serde_json::Value = serde_json::from_str(&first).unwrap();
    second["externalURL"] = "http://am-2.example:9093".into();
    let (status, text) = bridge.post(first.clone()).await;
    assert_eq!((status, text.contains("accepted")), (200, true), "{text}");
    let (status, text) = bridge.post(second.to_string()).await;
    assert_eq!((status, text.contains("duplicate")), (200, true), "{text}");
    // A retry of the first one, too.
    let (_, text) = bridge.post(first.clone()).await;
    assert!(text.contains("duplicate"), "{text}");
    // A real change (resolution) is not a duplicate.
    let resolved = notification("team", "g1", &[("DiskFull", "critical", "resolved")]);
    let (_, text) = bridge.post(resolved).await;
    assert!(text.contains("accepted"), "{text}");
    recorder.wait_for(2).await;
    bridge.wait_for_outcome("sent", 2).await;
    assert_eq!(recorder.count(), 2);
    assert_eq!(bridge.metric("checkit_bridge_notifications_deduplicated_total"), 2.0);
    // Past the dedup window the same content is news again (a repeat).
    bridge.advance(chrono::Duration::minutes(11));
    let (_, text) = bridge.post(first).await;
    assert!(text.contains("accepted"), "{text}");
    recorder.wait_for(3).await;
    bridge.stop().await;
}

#[tokio::test]
async fn a_full_outbox_answers_503_not_429() {
    let recorder = Recorder::start().await;
    recorder.answer_by_default(500);
    let bridge = TestBridge::start(&format!(
        "max_queue: 2\ncontacts: {{ops: {{webhook: '{}'}}}}\nroutes: [{{contacts: [ops]}}]\n",
        recorder.url("/ops")
    ))
    .await;
    for group in ["a", "b"] {
        let (status, text) = bridge.post(notification("team", group, &[("A", "critical", "firing")])).await;
        assert_eq!(status, 200, "{text}");
    }
    let (status, text) = bridge.post(notification("team", "c", &[("A", "critical", "firing")])).await;
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("outbox full"), "{text}");
    assert_eq!(bridge.metric("checkit_bridge_webhooks_rejected_total{reason=\"queue_full\"}"), 1.0);
    // Once the receiver recovers and the queue drains, intake resumes.
    recorder.answer_by_default(200);
    // A first attempt still in flight when the clock moves schedules its retry
    // after that move: keep moving the clock (bounded) until both are sent.
    for _ in 0..20 {
        bridge.advance(chrono::Duration::minutes(1));
        if bridge.history("status=sent&limit=10").await["total"].as_u64() >= Some(2) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    bridge.wait_for_outcome("sent", 2).await;
    crate::bridge_support::eventually("the queue depth to drop", || {
        (bridge.metric("checkit_bridge_queue_depth{state=\"pending\"}") == 0.0).then_some(())
    })
    .await;
    let (status, text) = bridge.post(notification("team", "c", &[("A", "critical", "firing")])).await;
    assert_eq!(status, 200, "{text}");
    bridge.stop().await;
}

#[tokio::test]
async fn accepted_notifications_survive_a_restart() {
    let recorder = Recorder::start().await;
    recorder.answer_by_default(500);
    let yaml = format!("contacts: {{ops: {{webhook: '{}'}}}}\nroutes: [{{contacts: [ops]}}]\n", recorder.url("/ops"));
    let bridge = TestBridge::start(&yaml).await;
    let (status, _) = bridge.post(notification("team", "g", &[("A", "critical", "firing")])).await;
    assert_eq!(status, 200);
    recorder.wait_for(1).await;
    bridge.wait_for_outcome("failed", 1).await;
    let clock = bridge.clock.clone();
    let dir = bridge.stop().await;
    recorder.answer_by_default(200);
    let mut config = crate::bridge_support::config(&yaml);
    config.store =
        Some(checkit::bridge::config::StoreConfig::sqlite(dir.path().join("bridge.db").display().to_string()));
    clock.advance(chrono::Duration::minutes(5));
    let bridge = TestBridge::start_config(config, dir, clock).await;
    bridge.wait_for_outcome("sent", 1).await;
    assert_eq!(recorder.count(), 2, "one failed attempt, one after restart");
    bridge.stop().await;
}

/// A source other than the webhook (a scheduled check) enters through the
/// same durable submit: committed before it returns, routed, delivered, and
/// an identical repeat counted once.
#[tokio::test]
async fn a_check_event_enters_through_submit_and_is_delivered() {
    use checkit::bridge::event::{Batch, Event, Links, Source};
    use checkit::bridge::payload::Status;
    use checkit::bridge::submit::Submitted;
    let bridge = log_bridge("").await;
    let event = Event {
        source: Source::Check,
        status: Status::Firing,
        labels: [("alertname", "CheckFailed"), ("check", "homepage")]
            .into_iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect(),
        annotations: [("summary".to_string(), "homepage answers 500".to_string())].into_iter().collect(),
        starts_at: None,
        ends_at: None,
        fingerprint: None,
        links: Links::default(),
    };
    let submitter = bridge.bridge().submitter();
    let first = submitter.submit(Batch::single(event.clone())).await.expect("committed");
    assert!(matches!(first, Submitted::Accepted { deliveries: 1, .. }), "{first:?}");
    let page = bridge.wait_for_outcome("sent", 1).await;
    assert_eq!(page["items"][0]["contact"], "ops", "{page}");
    let repeat = bridge.bridge().submit(Batch::single(event)).await.expect("committed");
    assert_eq!(repeat, Submitted::Duplicate);
    assert_eq!(bridge.metric("checkit_bridge_notifications_accepted_total"), 1.0);
    assert_eq!(bridge.metric("checkit_bridge_notifications_deduplicated_total"), 1.0);
    assert_eq!(bridge.metric("checkit_bridge_webhooks_received_total"), 0.0);
}
