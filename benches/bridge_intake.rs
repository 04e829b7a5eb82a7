//! Bridge benchmark (not a test).
//!
//! 1. **Intake**: a bridge on a temporary SQLite file (WAL, `synchronous=FULL`,
//!    so every 2xx is a durable commit) routing to a `log` contact, driven
//!    with N webhook POSTs over loopback by C concurrent clients. Prints
//!    accepted webhooks per second and the latency percentiles.
//! 2. **Storm**: 10,000 alerts (one notification each, as `group_by: ['...']`
//!    produces) to one contact limited to `5/30s` on a webhook channel; the
//!    clock is then moved 30 s at a time until the outbox is empty. Prints the
//!    messages sent, how many were overflow summaries, and the wall time.
//!
//! 3. **Large** (`--only large`): one webhook body of 100,000 tiny alerts
//!    (2.5 MB, as in issue 13, defect 8) routed to one webhook contact. Prints
//!    the resident memory before, its peak while the body is parsed and
//!    committed, its peak until the message is delivered, and what stays
//!    resident 2 s afterwards, each also as a multiple of the body size (the
//!    target is under 10× at each peak). The bench's own copy of the body is
//!    part of "before"; everything else is the bridge's.
//!
//! Peak RSS (VmHWM) of the whole process is printed after each phase, and in
//! the storm also once every webhook is in, before the summary is built: the
//! summary must not add to it as the storm grows (issue 13, defect 17), so
//! `--storm 10000` and `--storm 30000` should print about the same peak.
//!
//! ```text
//! cargo bench --bench bridge_intake
//! cargo bench --bench bridge_intake -- --requests 50000 --concurrency 128 --storm 10000
//! cargo bench --bench bridge_intake -- --only storm   # peak RSS of one phase
//! cargo bench --bench bridge_intake -- --only storm --storm 30000
//! cargo bench --bench bridge_intake -- --only large
//! ```

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use axum::body::Bytes;
use checkit::bridge::clock::TestClock;
use checkit::bridge::{Bridge, Config};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

struct Options {
    requests: usize,
    concurrency: usize,
    storm: usize,
    /// `intake`, `storm`, `large`, or `intake` and `storm` (so that peak RSS
    /// can be read per phase).
    only: Option<String>,
}

fn options() -> Options {
    let mut options = Options { requests: 20_000, concurrency: 64, storm: 10_000, only: None };
    let args: Vec<String> = std::env::args().collect();
    let mut index = 1;
    while index < args.len() {
        let value = args.get(index + 1).and_then(|value| value.parse().ok());
        match (args[index].as_str(), value) {
            ("--requests", Some(value)) => options.requests = value,
            ("--concurrency", Some(value)) => options.concurrency = value,
            ("--storm", Some(value)) => options.storm = value,
            ("--only", _) if index + 1 < args.len() => options.only = Some(args[index + 1].clone()),
            // `cargo bench` passes `--bench`; ignore anything else.
            _ => {
                index += 1;
                continue;
            }
        }
        index += 2;
    }
    options
}

fn config(yaml: &str, dir: &std::path::Path) -> Config {
    let value = checkit::config::yaml::parse_value(yaml).unwrap();
    let mut config: Config = checkit::config::yaml::from_value(value, "bridge").unwrap();
    config.store = Some(checkit::bridge::config::StoreConfig::sqlite(dir.join("bridge.db").display().to_string()));
    let mut problems = checkit::config::Problems::default();
    config.validate("bridge", &mut problems);
    assert!(problems.is_empty(), "{:?}", problems.0);
    config
}

/// A typical two-alert Alertmanager body, made unique by `index`.
fn body(index: usize) -> String {
    let alert = |instance: &str| {
        serde_json::json!({
            "status": "firing",
            "labels": {"alertname": format!("Bench{index}"), "instance": instance, "job": "api", "severity": "warning"},
            "annotations": {"summary": "p99 latency above 1s", "runbook_url": "https://runbooks.example/HighLatency"},
            "startsAt": "2026-11-22T17:11:51.784138472Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.example:9090/graph?g0.expr=up",
        })
    };
    serde_json::json!({
        "receiver": "bench",
        "status": "firing",
        "alerts": [alert("api-1:9100"), alert("api-2:9100")],
        "groupLabels": {"alertname": format!("Bench{index}")},
        "commonLabels": {"alertname": format!("Bench{index}"), "job": "api", "severity": "warning"},
        "commonAnnotations": {"summary": "p99 latency above 1s"},
        "externalURL": "http://alertmanager.example:9093",
        "version": "4",
        "groupKey": format!("{{}}:{{alertname=\"Bench{index}\"}}"),
        "truncatedAlerts": 0
    })
    .to_string()
}

fn peak_rss_kib() -> u64 {
    status_kib("VmHWM:")
}

/// Resident memory now (VmRSS), in KiB.
fn rss_kib() -> u64 {
    status_kib("VmRSS:")
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                line.strip_prefix(field).and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            })
        })
        .unwrap_or(0)
}

/// Starts a new peak: VmHWM is reset to the current RSS (Linux `clear_refs`).
fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
}

async fn large() {
    let delivered = Arc::new(AtomicU64::new(0));
    let counter = delivered.clone();
    let receiver = axum::Router::new().fallback(move |_body: Bytes| {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::Relaxed);
            "ok"
        }
    });
    let receiver_address = serve(receiver.layer(axum::extract::DefaultBodyLimit::disable())).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        &format!("contacts: {{pat: {{webhook: 'http://{receiver_address}/pat'}}}}\nroutes: [{{contacts: [pat]}}]\n"),
        dir.path(),
    );
    let mut registry = Registry::default();
    let bridge = Bridge::start(Arc::new(config), &mut registry).await.unwrap();
    for task in bridge.take_tasks() {
        tokio::spawn(task);
    }
    let address = serve(bridge.router()).await;
    let alerts: Vec<String> = (0..100_000).map(|index| format!("{{\"labels\":{{\"i\":\"{index}\"}}}}")).collect();
    let body = format!("{{\"version\":\"4\",\"status\":\"firing\",\"alerts\":[{}]}}", alerts.join(","));
    drop(alerts);
    let size = body.len() as u64;
    let client = reqwest::Client::new();
    let before = rss_kib();
    reset_peak();
    let started = Instant::now();
    let response = client.post(format!("http://{address}/webhook")).body(body).send().await.unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap_or_default());
    let answered = started.elapsed();
    let intake_peak = peak_rss_kib();
    reset_peak();
    let deadline = Instant::now() + Duration::from_secs(600);
    while delivered.load(Ordering::Relaxed) == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sent = started.elapsed();
    let delivery_peak = peak_rss_kib();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib();
    bridge.shutdown().await;
    let times = |kib: u64| (kib.saturating_sub(before) * 1024) as f64 / size as f64;
    println!(
        "large: one body of 100,000 alerts ({:.1} MB) answered in {:.1}s, delivered in {:.1}s; RSS before {} MiB, \
         peak during intake {} MiB (+{:.0}x the body), peak until delivered {} MiB (+{:.0}x), 2 s after {} MiB (+{:.0}x)",
        size as f64 / 1e6,
        answered.as_secs_f64(),
        sent.as_secs_f64(),
        before / 1024,
        intake_peak / 1024,
        times(intake_peak),
        delivery_peak / 1024,
        times(delivery_peak),
        after / 1024,
        times(after),
    );
}

async fn serve(router: axum::Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    address
}

async fn intake(options: &Options) {
    let dir = tempfile::tempdir().unwrap();
    let config = config("contacts: {ops: {log: ops}}\nroutes: [{contacts: [ops]}]\nmax_queue: 10000000\n", dir.path());
    let mut registry = Registry::default();
    let bridge = Bridge::start(Arc::new(config), &mut registry).await.unwrap();
    for task in bridge.take_tasks() {
        tokio::spawn(task);
    }
    let address = serve(bridge.router()).await;
    let client = reqwest::Client::builder().pool_max_idle_per_host(options.concurrency).build().unwrap();
    let url = format!("http://{address}/webhook");
    let bodies: Arc<Vec<String>> = Arc::new((0..options.requests).map(body).collect());
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..options.concurrency {
        let (client, url, bodies, next) = (client.clone(), url.clone(), bodies.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(body) = bodies.get(index) else { break };
                let sent = Instant::now();
                let response = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
                let _ = response.bytes().await;
                latencies.push(sent.elapsed());
            }
            latencies
        }));
    }
    let mut latencies = Vec::with_capacity(options.requests);
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let percentile = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "intake: {} webhooks with durable commit in {:.2}s = {:.0}/s; latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} clients)",
        latencies.len(),
        elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        percentile(0.50).as_secs_f64() * 1000.0,
        percentile(0.99).as_secs_f64() * 1000.0,
        latencies.last().unwrap().as_secs_f64() * 1000.0,
        options.concurrency,
    );
    bridge.shutdown().await;
    println!("intake: peak RSS {} MiB", peak_rss_kib() / 1024);
}

async fn storm(options: &Options) {
    #[derive(Default)]
    struct Received {
        notifications: AtomicU64,
        summaries: AtomicU64,
        other: AtomicU64,
    }
    let received = Arc::new(Received::default());
    let counter = received.clone();
    let receiver = axum::Router::new().fallback(move |body: Bytes| {
        let counter = counter.clone();
        async move {
            let view: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            match view["kind"].as_str() {
                Some("notification") => counter.notifications.fetch_add(1, Ordering::Relaxed),
                Some("overflow") => counter.summaries.fetch_add(1, Ordering::Relaxed),
                _ => counter.other.fetch_add(1, Ordering::Relaxed),
            };
            "ok"
        }
    });
    let receiver_address = serve(receiver.layer(axum::extract::DefaultBodyLimit::disable())).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        &format!(
            "max_queue: 10000000\ncontacts: {{pat: {{webhook: 'http://{receiver_address}/pat', rate_limit: ['5/30s']}}}}\nroutes: [{{contacts: [pat]}}]\n"
        ),
        dir.path(),
    );
    let clock = TestClock::new(chrono::Utc::now());
    let mut registry = Registry::default();
    let bridge = Bridge::start_with_clock(Arc::new(config), &mut registry, clock.clone()).await.unwrap();
    for task in bridge.take_tasks() {
        tokio::spawn(task);
    }
    let address = serve(bridge.router()).await;
    let client = reqwest::Client::new();
    let url = format!("http://{address}/webhook");
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (client, url, next, total) = (client.clone(), url.clone(), next.clone(), options.storm);
        tasks.push(tokio::spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed) as usize;
                if index >= total {
                    break;
                }
                let body = serde_json::json!({
                    "receiver": "storm", "status": "firing", "version": "4",
                    "groupKey": format!("{{}}:{{instance=\"host-{index}\"}}"),
                    "alerts": [{"status": "firing", "labels": {"alertname": "NodeDown", "instance": format!("host-{index}")},
                                "startsAt": "2026-11-22T17:00:00Z", "endsAt": "0001-01-01T00:00:00Z"}]
                });
                let response = client.post(&url).json(&body).send().await.unwrap();
                assert_eq!(response.status(), 200);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let ingested = started.elapsed();
    // Wait (bounded) until every row was looked at once: sent or rate limited.
    let store = bridge.store();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let stats = store.queue_stats().await.unwrap();
        if stats.pending == 0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let decided = started.elapsed();
    let decided_rss = peak_rss_kib();
    // Move time until the summary is out.
    let mut steps = 0;
    for _ in 0..240 {
        let stats = store.queue_stats().await.unwrap();
        if stats.depth() == 0 {
            break;
        }
        clock.advance(chrono::Duration::seconds(30));
        steps += 1;
        bridge.wake();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let drained = started.elapsed();
    let left = store.queue_stats().await.unwrap().depth();
    let dead_query = checkit::bridge::store::HistoryQuery {
        outcome: Some(checkit::bridge::store::Outcome::Dead),
        limit: 1,
        ..Default::default()
    };
    let dead = store.history(dead_query).await.unwrap().total;
    println!(
        "storm: {} alerts to one contact limited to 5/30s: {} messages sent ({} notifications, {} overflow summaries, {} other); \
         {} left in the outbox, {} dead; ingest {:.1}s, all decided {:.1}s, drained {:.1}s (clock moved {} x 30 s)",
        options.storm,
        received.notifications.load(Ordering::Relaxed)
            + received.summaries.load(Ordering::Relaxed)
            + received.other.load(Ordering::Relaxed),
        received.notifications.load(Ordering::Relaxed),
        received.summaries.load(Ordering::Relaxed),
        received.other.load(Ordering::Relaxed),
        left,
        dead,
        ingested.as_secs_f64(),
        decided.as_secs_f64(),
        drained.as_secs_f64(),
        steps,
    );
    bridge.shutdown().await;
    println!(
        "storm: peak RSS {} MiB once every alert was in, {} MiB after the summary",
        decided_rss / 1024,
        peak_rss_kib() / 1024
    );
}

fn main() {
    // As the checkit binary does, so memory figures are the binary's.
    checkit::cli::tune_allocator();
    let options = options();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        match options.only.as_deref() {
            Some("intake") => intake(&options).await,
            Some("storm") => storm(&options).await,
            Some("large") => large().await,
            _ => {
                intake(&options).await;
                storm(&options).await;
            }
        }
    });
}
