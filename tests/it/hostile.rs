//! Hostile input against a running `checkit` process (issue 13): every
//! refused request gets a 4xx with a reason, the process stays alive
//! (`/-/healthy`), and its memory stays bounded, read from
//! `/proc/<pid>/status` (a bound on bytes, never on time).

use crate::support::ChildGuard;
use std::net::SocketAddr;
use std::time::Duration;

/// A checkit process with an exporter deny list and a bridge that logs to one
/// contact; stopped on drop.
struct Running {
    child: ChildGuard,
    addr: SocketAddr,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

impl Running {
    async fn start() -> Running {
        let dir = tempfile::tempdir().expect("dir");
        let config = format!(
            "modules:\n  http_2xx: {{prober: http, timeout: 2s}}\n  tcp_connect: {{prober: tcp, timeout: 2s}}\n\
             exporter:\n  targets:\n    deny: ['127.0.0.1/32', '::1/128']\n\
             bridge:\n  store: {{sqlite: {{path: {}}}}}\n  contacts: {{ops: {{log: ops}}}}\n  routes: [{{contacts: [ops]}}]\n",
            dir.path().join("bridge.db").display()
        );
        let (mut child, addr, config_dir) = crate::hardening::spawn_checkit(&config);
        child.wait_for_port(addr, Duration::from_secs(30)).await;
        Running { child, addr, _dirs: (dir, config_dir) }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `VmHWM` (peak) and `VmRSS` (now) in bytes.
    fn memory(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.pid())).expect("proc status");
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .map(|kib| kib * 1024)
                .unwrap_or_else(|| panic!("no {name} in {status}"))
        };
        (field("VmHWM:"), field("VmRSS:"))
    }

    async fn assert_healthy(&mut self) {
        assert!(self.child.is_running(), "checkit exited: {}", self.child.diagnostics());
        let response = reqwest::get(self.url("/-/healthy")).await.expect("healthy answers");
        assert_eq!(response.status(), 200);
    }
}

/// A webhook body of `count` tiny alerts, 24 bytes each (like the 2.4 MB,
/// 100,000-alert body of defect 8).
fn tiny_alerts(count: usize) -> String {
    let alerts: Vec<String> = (0..count).map(|index| format!("{{\"labels\":{{\"i\":\"{index}\"}}}}")).collect();
    format!("{{\"version\":\"4\",\"status\":\"firing\",\"alerts\":[{}]}}", alerts.join(","))
}

const MIB: u64 = 1 << 20;

/// Asserts a 4xx whose body gives a reason (messages cut to 200 characters:
/// some inputs are huge).
fn assert_refused(what: &str, status: u16, body: &str) {
    let short = |text: &str| text.chars().take(200).collect::<String>();
    assert!((400..500).contains(&status), "{}: expected a 4xx, got {status}: {}", short(what), short(body));
    assert!(!body.trim().is_empty(), "{}: a {status} without a reason", short(what));
}

/// Every request here is refused with a 4xx and a reason; afterwards the
/// process is alive and its resident memory is back within 64 MiB of where
/// it started.
#[tokio::test]
async fn hostile_requests_get_a_4xx_with_a_reason() {
    let mut checkit = Running::start().await;
    let (_, rss_before) = checkit.memory();
    let client = reqwest::Client::new();
    let server = crate::support::httpd::TestServer::http().await;
    let port = server.addr.port();
    let encode = |text: &str| url::form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();

    // The probe endpoint: unknown modules, missing or absurd parameters, deny-list bypasses.
    let mut probes = vec![
        "/probe".to_string(),
        "/probe?module=nope&target=127.0.0.1:1".to_string(),
        "/probe?module=http_2xx".to_string(),
        "/probe?module=http_2xx&target=".to_string(),
        "/probe?module=%ff%fe&target=x".to_string(),
        "/probe?module=http_2xx&debug=maybe&target=http://localhost/".to_string(),
        "/logs?id=18446744073709551616".to_string(),
        "/logs?id=-1".to_string(),
        "/logs".to_string(),
        "/api/v1/deliveries?offset=9223372036854775808".to_string(),
        "/api/v1/deliveries?limit=-1".to_string(),
        "/api/v1/deliveries?limit=99999999999999999999".to_string(),
        "/api/v1/deliveries?since=yesterday".to_string(),
        "/api/v1/deliveries?status=lost".to_string(),
    ];
    // Every spelling of the loopback and unspecified addresses the kernel
    // takes to the local host.
    let hosts = [
        "0.0.0.0",
        "0",
        "[::]",
        "[::ffff:0.0.0.0]",
        "[::ffff:127.0.0.1]",
        "127.1",
        "2130706433",
        "0x7f.0.0.1",
        "localhost",
    ];
    for host in hosts {
        probes.push(format!("/probe?module=http_2xx&target={}", encode(&format!("http://{host}:{port}/"))));
    }
    for target in [format!("0.0.0.0:{port}"), format!("[::]:{port}"), format!("127.0.0.1:{port}")] {
        probes.push(format!("/probe?module=tcp_connect&target={}", encode(&target)));
    }
    let mut answered = Vec::new();
    for path in &probes {
        let response = client.get(checkit.url(path)).send().await.expect("an answer");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        if !(400..500).contains(&status) || text.trim().is_empty() {
            answered.push(format!("{path} → {status}"));
        }
    }
    assert!(answered.is_empty(), "not refused with a reason: {answered:#?}");
    assert_eq!(server.connections(), 0, "a denied target was reached");

    // Header values: absurd scrape timeouts are clamped (200, as blackbox
    // does); a header block past hyper's limit is refused whole.
    for value in ["inf", "-inf", "NaN", "-1", "1e300", "1e19", "0x10", "", "9".repeat(400).as_str()] {
        let response = client
            .get(checkit.url("/probe?module=tcp_connect&target=192.0.2.1:9"))
            .header("X-Prometheus-Scrape-Timeout-Seconds", value)
            .send()
            .await
            .expect("an answer");
        let status = response.status().as_u16();
        // An unparsable value is a 500 with the reason, exactly as blackbox
        // answers it (drop-in compatibility wins over the 4xx rule here).
        let expected = if value == "0x10" { 500 } else { 200 };
        let text = response.text().await.unwrap_or_default();
        assert_eq!(status, expected, "scrape timeout {value:?}: {text}");
    }
    let response =
        client.get(checkit.url("/-/healthy")).header("X-Huge", "h".repeat(2_000_000)).send().await.expect("an answer");
    assert!((400..500).contains(&response.status().as_u16()), "a 2 MB header: {}", response.status());

    // Webhook bodies of the wrong shape, not JSON, nested past any sane
    // depth, or over `max_body_size`.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("array", b"[null,null,[{}]]".to_vec()),
        ("alerts of arrays", br#"{"alerts":[[]]}"#.to_vec()),
        ("alerts an object", br#"{"alerts":{}}"#.to_vec()),
        ("alert a number", br#"{"alerts":[1]}"#.to_vec()),
        ("labels a list", br#"{"alerts":[{"labels":[]}]}"#.to_vec()),
        ("label value an object", br#"{"alerts":[{"labels":{"a":{}}}]}"#.to_vec()),
        ("bad status", br#"{"status":"burning","alerts":[]}"#.to_vec()),
        ("bad time", br#"{"alerts":[{"startsAt":"yesterday"}]}"#.to_vec()),
        ("bad version", br#"{"version":"9","alerts":[]}"#.to_vec()),
        ("no alerts", br#"{"receiver":"x"}"#.to_vec()),
        ("not utf-8", b"{\"alerts\":[{\"labels\":{\"a\":\"\xff\xfe\"}}]}".to_vec()),
        ("not json", b"alerts=1".to_vec()),
        ("empty", Vec::new()),
        ("deep", deep.into_bytes()),
    ];
    for (what, body) in bodies {
        let response = client
            .post(checkit.url("/webhook"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("an answer");
        let status = response.status().as_u16();
        assert_refused(what, status, &response.text().await.unwrap_or_default());
    }
    // A Content-Length that promises more than the limit is refused before reading.
    let mut liar = tokio::net::TcpStream::connect(checkit.addr).await.expect("connect");
    tokio::io::AsyncWriteExt::write_all(
        &mut liar,
        b"POST /webhook HTTP/1.1\r\nHost: checkit\r\nContent-Length: 1099511627776\r\n\r\n{",
    )
    .await
    .expect("write");
    let mut answer = vec![0u8; 512];
    let read = tokio::time::timeout(Duration::from_secs(10), tokio::io::AsyncReadExt::read(&mut liar, &mut answer))
        .await
        .expect("an answer before the body")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 413"), "a 1 TiB Content-Length: {answer}");
    // Partial requests are closed after the header read timeout.
    let mut partial = tokio::net::TcpStream::connect(checkit.addr).await.expect("connect");
    tokio::io::AsyncWriteExt::write_all(&mut partial, b"POST /webhook HTTP/1.1\r\nContent-Length: 10\r\n")
        .await
        .expect("write");
    let limit = checkit::http::serve::HEADER_READ_TIMEOUT + Duration::from_secs(5);
    let mut buffer = [0u8; 256];
    let closed = tokio::time::timeout(limit, tokio::io::AsyncReadExt::read(&mut partial, &mut buffer)).await;
    assert!(closed.is_ok(), "a partial request stayed open past {limit:?}");

    checkit.assert_healthy().await;
    let (_, rss_after) = checkit.memory();
    assert!(
        rss_after < rss_before + 64 * MIB,
        "resident memory grew from {} MiB to {} MiB",
        rss_before / MIB,
        rss_after / MIB
    );
}

/// Defect 8: webhook bodies of 100,000 tiny alerts (2.4 MB each, under the
/// 4 MiB limit) sent eight at once: past the intake memory budget they get
/// 503 with a reason (Alertmanager retries), never the OOM killer; accepted
/// ones are answered, and the peak stays bounded by what the budget lets in.
#[tokio::test]
async fn a_storm_of_large_webhooks_meets_back_pressure() {
    let mut checkit = Running::start().await;
    let (_, rss_before) = checkit.memory();
    let body = tiny_alerts(100_000);
    assert!(body.len() > 2_000_000 && body.len() < 4 << 20, "{}", body.len());
    let client = reqwest::Client::new();
    let mut requests = Vec::new();
    for _ in 0..8 {
        let request =
            client.post(checkit.url("/webhook")).header("content-type", "application/json").body(body.clone());
        requests.push(tokio::spawn(async move {
            let response = request.send().await.expect("an answer");
            (response.status().as_u16(), response.text().await.unwrap_or_default())
        }));
    }
    let mut accepted = 0;
    let mut busy = 0;
    for request in requests {
        let (status, text) = request.await.expect("request task");
        match status {
            200 => accepted += 1,
            503 => {
                assert!(text.contains("intake busy"), "{text}");
                busy += 1;
            }
            other => panic!("unexpected {other}: {text}"),
        }
    }
    assert!(accepted >= 1, "nothing was accepted");
    assert!(busy >= 1, "eight 2.4 MB bodies at once all went in: no back-pressure");
    checkit.assert_healthy().await;
    let (peak, _) = checkit.memory();
    // The budget admits three such bodies at once (8 MiB); each costs far
    // less than 200 MiB while parsed and committed. Without the budget, all
    // eight are held at once.
    let bound = rss_before + 3 * 200 * MIB;
    assert!(peak < bound, "peak {} MiB, bound {} MiB", peak / MIB, bound / MIB);
}

/// Defect 8: one body of 100,000 tiny alerts (2.4 MB) to one contact costs
/// under 10 times its size from intake until its message is sent (the
/// issue's bound), and is returned afterwards. It cost 60 times the body at
/// intake, 80 times until delivered and kept 67 times resident (about
/// 200 MiB); now about 5, 4 and 1 times.
#[tokio::test]
async fn one_large_webhook_costs_a_bounded_multiple_of_its_body() {
    let mut checkit = Running::start().await;
    let client = reqwest::Client::new();
    let body = tiny_alerts(100_000);
    let size = body.len() as u64;
    let (_, rss_before) = checkit.memory();
    // VmHWM restarts from here (Linux `clear_refs`), so the peak is this body's.
    std::fs::write(format!("/proc/{}/clear_refs", checkit.child.pid()), "5").expect("clear_refs");
    let response = client.post(checkit.url("/webhook")).header("content-type", "application/json").body(body);
    let response = response.send().await.expect("an answer");
    let status = response.status();
    assert_eq!(status, 200, "{}", response.text().await.unwrap_or_default());
    // Bounded wait until the log contact's message is recorded as sent.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let sent: serde_json::Value = client
            .get(checkit.url("/api/v1/deliveries?status=sent"))
            .send()
            .await
            .expect("history answers")
            .json()
            .await
            .expect("history is JSON");
        if sent["total"] == 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not delivered: {sent}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    checkit.assert_healthy().await;
    let (peak, rss_after) = checkit.memory();
    let times = |bytes: u64| bytes.saturating_sub(rss_before) as f64 / size as f64;
    let (peak_times, after_times) = (times(peak), times(rss_after));
    assert!(peak_times < 10.0, "peak {} MiB: +{peak_times:.0}x the body", peak / MIB);
    assert!(after_times < 3.0, "{} MiB resident once sent: +{after_times:.0}x the body", rss_after / MIB);
}
