//! Hostile input and faults (issue 13): each test here failed on the code
//! before its fix. Requests that must be refused get a 4xx with a reason;
//! nothing a client sends may panic a handler or leak a permit.

use crate::bridge_support::TestBridge;
use crate::support::app::{parse_exposition, start_app, start_app_with, value};
use crate::support::httpd::TestServer;
use checkit::app::Options;
use checkit::http::webconfig::Web;
use checkit::settings::Config;

const LOOPBACK_DENIED: &str = r#"
modules:
  http_2xx:
    prober: http
    timeout: 2s
  tcp_connect:
    prober: tcp
    timeout: 2s
exporter:
  targets:
    deny: ["127.0.0.1/32", "::1/128"]
"#;

/// Defect 1: an absurd scrape-timeout header is clamped, never a panic, and
/// the in-flight gauge returns to zero.
#[tokio::test]
async fn scrape_timeout_header_never_panics() {
    let server = TestServer::http().await;
    let app = start_app("modules:\n  http_2xx:\n    prober: http\n    timeout: 2s\n  bare:\n    prober: http\n").await;
    let client = reqwest::Client::new();
    for module in ["http_2xx", "bare"] {
        for header in ["inf", "+Inf", "-Inf", "1e300", "1e19", "NaN", "-5", "0", "1.5"] {
            let response = client
                .get(app.url(&format!("/probe?module={module}&target={}", server.url("/"))))
                .header("X-Prometheus-Scrape-Timeout-Seconds", header)
                .send()
                .await
                .unwrap_or_else(|err| panic!("header {header}: no answer: {err}"));
            assert_eq!(response.status().as_u16(), 200, "header {header}");
            let families = parse_exposition(&response.text().await.expect("body"));
            assert_eq!(value(&families, "probe_success"), Some(1.0), "module {module} header {header}");
        }
    }
    let (_, metrics) = app.get("/metrics").await;
    assert!(metrics.contains("checkit_probes_in_flight 0"), "{metrics}");
}

/// Defect 2: every numeric key is range-checked at load, so what passes the
/// check also starts.
#[test]
fn numeric_keys_are_range_checked_at_load() {
    let err = Config::parse("exporter:\n  max_concurrent_probes: 18446744073709551615\n")
        .expect_err("a semaphore cannot hold that many permits");
    assert!(err.to_string().contains("exporter.max_concurrent_probes"), "{err}");
    // Durations past Go's int64 nanoseconds would overflow clock arithmetic.
    let err = Config::parse("modules:\n  m:\n    prober: tcp\n    timeout: 5000000h\n").expect_err("too long");
    assert!(err.to_string().contains("modules.m.timeout"), "{err}");
}

/// Defect 3: the unspecified addresses reach the local host, so a deny of the
/// loopback addresses covers them too, also after a redirect.
#[tokio::test]
async fn unspecified_addresses_do_not_bypass_the_deny_list() {
    let denied = TestServer::http().await;
    let port = denied.addr.port();
    let app = start_app(LOOPBACK_DENIED).await;
    for target in [
        format!("http://0.0.0.0:{port}/"),
        format!("http://0:{port}/"),
        format!("http://[::]:{port}/"),
        format!("http://[::ffff:0.0.0.0]:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
    ] {
        let (status, body) = app.probe("http_2xx", &target).await;
        assert_eq!(status, 403, "{target}: {body}");
        assert!(body.contains("exporter.targets.deny"), "{target}: {body}");
    }
    for target in [format!("0.0.0.0:{port}"), format!("[::]:{port}"), format!("[::ffff:0.0.0.0]:{port}")] {
        let (status, body) = app.probe("tcp_connect", &target).await;
        assert_eq!(status, 403, "{target}: {body}");
    }
    // An allowed host redirecting to the unspecified address.
    let allowed = TestServer::http_on("127.0.0.2").await;
    let target = allowed.url(&format!("/to?url=http://0.0.0.0:{port}/"));
    let (status, body) = app.probe("http_2xx", &target).await;
    assert_eq!(status, 403, "{target}: {body}");
    assert_eq!(denied.connections(), 0, "the denied server was reached");
}

/// Defect 4: allow/deny entries that look numeric but are not addresses are
/// config errors, not host patterns that never match.
#[test]
fn numeric_looking_policy_entries_are_config_errors() {
    for entry in ["300.1.1.1", "127.1", "010.0.0.1", "0", "0x7f.0.0.1"] {
        let yaml = format!("exporter:\n  targets:\n    deny: [\"{entry}\"]\n");
        let err = Config::parse(&yaml).expect_err(entry);
        assert!(err.to_string().contains("exporter.targets.deny[0]"), "{entry}: {err}");
    }
    assert!(Config::parse("exporter:\n  targets:\n    deny: [\"db1.example\", \"10.0.0.1\"]\n").is_ok());
}

/// Defect 10: a body that is not an object with an `alerts` array of objects
/// is a 400 with the reason, never "accepted".
#[tokio::test]
async fn webhook_bodies_of_the_wrong_shape_are_400() {
    let bridge = TestBridge::start("contacts: {ops: {log: ops}}\nroutes: [{contacts: [ops]}]\n").await;
    for body in [
        "[null,null,null,null,null,[{}]]",
        "[]",
        r#"{"alerts":[[]]}"#,
        r#"{"alerts":[null]}"#,
        r#"{"alerts":[{"labels":{"a":"b"}}, ["x"]]}"#,
        r#"{"alerts":{}}"#,
        r#""alerts""#,
        "null",
    ] {
        let (status, text) = bridge.post(body).await;
        assert_eq!(status, 400, "{body}: {text}");
        assert!(text.contains("invalid webhook body"), "{body}: {text}");
    }
    assert_eq!(bridge.metric("checkit_bridge_notifications_accepted_total"), 0.0);
    bridge.stop().await;
}

/// Defect 9: out-of-range numbers in the deliveries API are a 400 with the
/// reason, not a storage error.
#[tokio::test]
async fn deliveries_api_refuses_out_of_range_numbers() {
    let bridge = TestBridge::start("contacts: {ops: {log: ops}}\nroutes: [{contacts: [ops]}]\n").await;
    for query in ["offset=9223372036854775808", "offset=18446744073709551615", "offset=-1", "limit=4294967296"] {
        let response =
            bridge.client.get(bridge.url(&format!("/api/v1/deliveries?{query}"))).send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        assert_eq!(status, 400, "{query}: {text}");
        assert!(text.contains("invalid"), "{query}: {text}");
    }
    let page = bridge.history("offset=9223372036854775807").await;
    assert_eq!(page["items"], serde_json::json!([]));
    bridge.stop().await;
}

/// Defect 12: blackbox.yml files that blackbox accepts load here too: merge
/// keys and several documents (the first is the config, as in blackbox).
#[test]
fn merge_keys_and_multi_document_files_load_like_blackbox() {
    let config = Config::parse(
        "modules:\n  a: &base\n    prober: http\n    timeout: 3s\n  b:\n    <<: *base\n    timeout: 7s\n    http:\n      method: POST\n",
    )
    .expect("merge keys load");
    let b = config.module("b").expect("module b");
    assert_eq!((b.timeout.get().as_secs(), b.http.method.as_str()), (7, "POST"));
    assert_eq!(config.module("a").expect("module a").timeout.get().as_secs(), 3);
    let config = Config::parse("modules:\n  first:\n    prober: tcp\n---\nmodules:\n  second:\n    prober: tcp\n")
        .expect("multi-document loads");
    assert!(config.module("first").is_some() && config.module("second").is_none());
}

/// Defect 12: a repeated query parameter uses its first value, as Go's
/// `url.Values.Get` does.
#[tokio::test]
async fn repeated_probe_parameters_use_the_first_value() {
    let server = TestServer::http().await;
    let app = start_app("modules:\n  http_2xx:\n    prober: http\n    timeout: 2s\n").await;
    let (status, body) =
        app.get(&format!("/probe?module=http_2xx&module=nope&target={}&target=x", server.url("/"))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(value(&parse_exposition(&body), "probe_success"), Some(1.0));
    let (status, body) = app.get(&format!("/probe?module=&module=nope&target={}", server.url("/"))).await;
    assert_eq!(status, 200, "an empty first module is the default http_2xx: {body}");
}

/// Starts the app behind basic auth for user `prometheus`/`s3cret`, hashed at `cost`.
async fn app_with_basic_auth(cost: u32) -> crate::support::app::TestApp {
    let dir = tempfile::tempdir().expect("dir");
    let hash = bcrypt::hash("s3cret", cost).expect("hash");
    let path = dir.path().join("web.yml");
    std::fs::write(&path, format!("basic_auth_users:\n  prometheus: '{hash}'\n")).expect("write");
    let web = Web::load(path.to_str().expect("utf-8")).expect("web config loads");
    start_app_with("modules: {}\n", Options::default(), web).await
}

async fn healthy_status(app: &crate::support::app::TestApp, authorization: &str) -> u16 {
    // One client per thread: building one loads the native roots, which
    // takes longer than the request itself and would hide its timing.
    thread_local! {
        static CLIENT: reqwest::Client = reqwest::Client::new();
    }
    let client = CLIENT.with(reqwest::Client::clone);
    let response =
        client.get(app.url("/-/healthy")).header("authorization", authorization).send().await.expect("request");
    response.status().as_u16()
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

/// Defect 7: schemes are case-insensitive (RFC 9110 §11.1).
#[tokio::test]
async fn basic_auth_scheme_is_case_insensitive() {
    let app = app_with_basic_auth(4).await;
    let token = basic("prometheus", "s3cret");
    for scheme in ["Basic", "basic", "BASIC", "bAsIc"] {
        let header = format!("{scheme} {}", &token["Basic ".len()..]);
        assert_eq!(healthy_status(&app, &header).await, 200, "{scheme}");
    }
    assert_eq!(healthy_status(&app, &basic("prometheus", "wrong")).await, 401);
}

/// Defect 7: bcrypt runs off the async runtime, so wrong passwords in flight
/// do not hold up an authorised request (here the runtime has one thread).
#[tokio::test]
async fn bcrypt_does_not_block_authorised_requests() {
    let app = std::sync::Arc::new(app_with_basic_auth(10).await);
    assert_eq!(healthy_status(&app, &basic("prometheus", "s3cret")).await, 200, "first login is verified once");
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut attackers = Vec::new();
    for _ in 0..32 {
        let (app, done) = (app.clone(), done.clone());
        attackers.push(tokio::spawn(async move {
            let status = healthy_status(&app, &basic("prometheus", "wrong")).await;
            done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            status
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(healthy_status(&app, &basic("prometheus", "s3cret")).await, 200);
    let finished = done.load(std::sync::atomic::Ordering::SeqCst);
    assert!(finished < 16, "the authorised request waited for {finished} of 32 bcrypt checks");
    // Guesses beyond what the bounded bcrypt slots check in time get 503.
    for attacker in attackers {
        let status = attacker.await.expect("attacker");
        assert!(status == 401 || status == 503, "{status}");
    }
}

/// Defect 6: passwords in URLs are redacted wherever a URL is shown:
/// `/config`, `debug=true` output and `/logs`.
#[tokio::test]
async fn url_passwords_never_show() {
    let server = TestServer::http().await;
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("bridge.db");
    let app = start_app(&format!(
        r#"
modules:
  http_2xx:
    prober: http
    timeout: 2s
  via_proxy:
    prober: http
    http:
      proxy_url: http://proxyuser:hunter2@127.0.0.1:1
      oauth2:
        client_id: probe
        client_secret: x
        token_url: https://tokenuser:hunter2@auth.example.com/token
bridge:
  store: {{sqlite: {{path: {}}}}}
  channels:
    sms:
      url: https://smsuser:hunter2@sms.example.com/send
  contacts: {{ops: {{sms: "+491701234567"}}}}
  routes: [{{contacts: [ops]}}]
"#,
        db.display()
    ))
    .await;
    let (status, config) = app.get("/config").await;
    assert_eq!(status, 200);
    assert!(!config.contains("hunter2"), "{config}");
    assert!(config.contains("proxyuser:xxxxx@127.0.0.1"), "{config}");
    let location = format!("http://user:hunter2@{}/", server.addr);
    let target = server.url(&format!("/to?url={location}"));
    let (status, debug) = app
        .get(&format!(
            "/probe?module=http_2xx&debug=true&target={}",
            url::form_urlencoded::byte_serialize(target.as_bytes()).collect::<String>()
        ))
        .await;
    assert_eq!(status, 200);
    assert!(debug.contains("Received redirect"), "{debug}");
    assert!(!debug.contains("hunter2"), "{debug}");
    let (_, logs) = app.get("/logs?id=0").await;
    assert!(!logs.contains("hunter2"), "{logs}");
    // A target with a password shows redacted on `/` and `/logs?target=`,
    // and is still found by the URL it was probed with.
    let secret_target = format!("http://user:hunter2@{}/", server.addr);
    let encoded = url::form_urlencoded::byte_serialize(secret_target.as_bytes()).collect::<String>();
    let (status, _) = app.get(&format!("/probe?module=http_2xx&target={encoded}")).await;
    assert_eq!(status, 200);
    let (_, index) = app.get("/").await;
    assert!(!index.contains("hunter2"), "{index}");
    assert!(index.contains("user:xxxxx@"), "{index}");
    let (status, logs) = app.get(&format!("/logs?module=http_2xx&target={encoded}")).await;
    assert_eq!(status, 200, "{logs}");
    assert!(!logs.contains("hunter2"), "{logs}");
}

/// Defect 5: the bridge's own listener (`bridge.listen_address`) applies the
/// same web config as the main one: basic auth and extra headers.
#[tokio::test]
async fn the_bridge_listener_applies_the_web_config() {
    let dir = tempfile::tempdir().expect("dir");
    let hash = bcrypt::hash("s3cret", 4).expect("hash");
    let web_path = dir.path().join("web.yml");
    std::fs::write(&web_path, format!("basic_auth_users:\n  prometheus: '{hash}'\n")).expect("write");
    let web = Web::load(web_path.to_str().expect("utf-8")).expect("web config loads");
    let config = format!(
        "modules: {{}}\nbridge:\n  listen_address: 127.0.0.1:0\n  store: {{sqlite: {{path: {}}}}}\n  contacts: {{ops: {{log: ops}}}}\n  routes: [{{contacts: [ops]}}]\n",
        dir.path().join("bridge.db").display()
    );
    let app = start_app_with(&config, Options::default(), web).await;
    let bridge_router = app.app.bridge_router().expect("bridge router");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    app.app.serve(listener, bridge_router, &Default::default());
    let client = reqwest::Client::new();
    let webhook = client.post(format!("http://{addr}/webhook")).body(r#"{"alerts":[]}"#);
    assert_eq!(webhook.send().await.expect("request").status().as_u16(), 401);
    let deliveries = client.get(format!("http://{addr}/api/v1/deliveries"));
    assert_eq!(deliveries.send().await.expect("request").status().as_u16(), 401);
    let authorised = client.get(format!("http://{addr}/api/v1/deliveries")).basic_auth("prometheus", Some("s3cret"));
    assert_eq!(authorised.send().await.expect("request").status().as_u16(), 200);
}

/// A checkit process on a free loopback port with `config`, stopped on drop.
pub(crate) fn spawn_checkit(config: &str) -> (crate::support::ChildGuard, std::net::SocketAddr, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("dir");
    let config_path = dir.path().join("checkit.yml");
    std::fs::write(&config_path, config).expect("write config");
    let addr = crate::support::loopback(crate::support::free_port());
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_checkit"));
    command
        .arg(format!("--config.file={}", config_path.display()))
        .arg(format!("--web.listen-address={addr}"))
        .arg("--log.level=warn");
    let child = crate::support::ChildGuard::spawn("checkit", command, &dir.path().join("checkit.log"));
    (child, addr, dir)
}

/// Defects 13 and 14: a client that sends part of a request (or headers one
/// byte at a time) is cut after the header read timeout, and SIGTERM ends the
/// process within the bounded drain even with such clients and a probe that
/// would run for 120 s.
#[tokio::test]
async fn slow_clients_are_cut_and_shutdown_is_bounded() {
    use checkit::http::serve::{HEADER_READ_TIMEOUT, SHUTDOWN_DRAIN};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let blackhole = crate::support::hang_server().await;
    let (mut checkit, addr, _dir) =
        spawn_checkit("modules:\n  slow:\n    prober: tcp\n    tcp:\n      query_response: [{expect: never}]\n");
    checkit.wait_for_port(addr, std::time::Duration::from_secs(20)).await;
    let mut partial = Vec::new();
    for _ in 0..50 {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: checkit\r\n").await.expect("write");
        partial.push(stream);
    }
    let slowloris = tokio::spawn(async move {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let started = std::time::Instant::now();
        for byte in b"GET /metrics HTTP/1.1\r\nX-Slow: ".iter().chain([b'a'; 64].iter()) {
            if stream.write_all(&[*byte]).await.is_err() {
                return started.elapsed();
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        started.elapsed()
    });
    // A probe with no scrape header: the default 120 s budget against a server that never answers.
    let probe = tokio::spawn(reqwest::get(format!("http://{addr}/probe?module=slow&target={}", blackhole.addr)));
    // Every partial request is closed by checkit once the header timeout passes.
    let limit = HEADER_READ_TIMEOUT + std::time::Duration::from_secs(5);
    for stream in &mut partial {
        let mut buffer = [0u8; 512];
        let read = tokio::time::timeout(limit, stream.read(&mut buffer)).await;
        assert!(matches!(read, Ok(Ok(_)) | Ok(Err(_))), "a partial request stayed open past {limit:?}");
    }
    let slow_for = slowloris.await.expect("slowloris");
    assert!(slow_for < limit + std::time::Duration::from_secs(1), "the slowloris connection lived {slow_for:?}");
    let stopping = std::time::Instant::now();
    let kill = std::process::Command::new("kill").args(["-TERM", &checkit.pid().to_string()]).status();
    assert!(kill.expect("kill").success());
    let deadline = SHUTDOWN_DRAIN + std::time::Duration::from_secs(10);
    while checkit.is_running() {
        assert!(stopping.elapsed() < deadline, "checkit still runs {deadline:?} after SIGTERM");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    probe.abort();
}

/// Defect 15: an overflow summary counts every held-back alert exactly, even
/// when its lists are cut to the display limit (200): 900 held back, 850 of
/// them still firing, said in the subject and in the view's `counts`.
#[tokio::test]
async fn overflow_summary_counts_are_exact_beyond_the_display_limit() {
    use crate::bridge_support::{Recorder, notification};
    let recorder = Recorder::start().await;
    let bridge = TestBridge::start(
        &r#"
rate_limits: {webhook: ['1/h']}
templates:
  webhook:
    body: '{"subject": {{ subject }}, "counts": {{ counts }}, "listed": {{ still_firing|length }}}'
contacts: {bob: {webhook: 'URL'}}
routes: [{contacts: [bob]}]
"#
        .replace("URL", &recorder.url("/bob")),
    )
    .await;
    bridge.post(notification("team", "first", &[("First", "warning", "firing")])).await;
    recorder.wait_for(1).await;
    let names: Vec<String> = (0..900).map(|index| format!("Storm{index}")).collect();
    for chunk in names.chunks(300) {
        let alerts: Vec<(&str, &str, &str)> = chunk.iter().map(|name| (name.as_str(), "warning", "firing")).collect();
        assert_eq!(bridge.post(notification("team", &chunk[0], &alerts)).await.0, 200);
    }
    let resolved: Vec<(&str, &str, &str)> =
        names[..50].iter().map(|name| (name.as_str(), "warning", "resolved")).collect();
    assert_eq!(bridge.post(notification("team", "resolved", &resolved)).await.0, 200);
    bridge.wait_for_outcome("rate_limited", 4).await;
    bridge.advance(chrono::Duration::minutes(61));
    let requests = recorder.wait_for(2).await;
    let summary: serde_json::Value = serde_json::from_str(&requests[1].body).expect("a JSON body");
    assert_eq!(summary["subject"], "[OVERFLOW] 900 more alerts, 850 still firing", "{summary}");
    assert_eq!(summary["counts"]["still_firing"], 850, "{summary}");
    assert_eq!(summary["counts"]["resolved"], 50, "{summary}");
    assert_eq!(summary["listed"], 200, "the list itself stays cut to the display limit");
    bridge.stop().await;
}

/// CPU time so far (ns, from `schedstat`) of the main thread and of each
/// serving thread (`checkit-http-N`) of one checkit process.
fn thread_cpu(pid: u32) -> (u64, Vec<(String, u64)>) {
    let cpu = |task: &std::path::Path| {
        let schedstat = std::fs::read_to_string(task.join("schedstat")).unwrap_or_default();
        schedstat.split_whitespace().next().and_then(|ns| ns.parse().ok()).expect("schedstat")
    };
    let mut main = 0;
    let mut serving = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("tasks").flatten() {
        let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default().trim().to_string();
        if task.file_name().to_str() == Some(pid.to_string().as_str()) {
            main = cpu(&task.path());
        } else if name.starts_with("checkit-http-") {
            serving.push((name, cpu(&task.path())));
        }
    }
    (main, serving)
}

/// On two CPUs a serving thread takes connections beside the single-threaded
/// main runtime, and probes run on it; pinned to one CPU (`taskset`) or with
/// `TOKIO_WORKER_THREADS` set, checkit starts none.
#[tokio::test]
async fn serving_threads_follow_the_cpus_the_process_may_use() {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let target = std::net::TcpListener::bind("127.0.0.1:0").expect("target");
    let target = target.local_addr().expect("addr");
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("blackbox.yml");
    std::fs::write(&config, "modules:\n  tcp:\n    prober: tcp\n    timeout: 5s\n").expect("write config");
    let start = |launcher: &[&str], env: Option<(&str, &str)>| {
        let addr = crate::support::loopback(crate::support::free_port());
        let mut command =
            std::process::Command::new(launcher.first().copied().unwrap_or(env!("CARGO_BIN_EXE_checkit")));
        command.args(launcher.iter().skip(1));
        if !launcher.is_empty() {
            command.arg(env!("CARGO_BIN_EXE_checkit"));
        }
        command.arg(format!("--config.file={}", config.display())).arg(format!("--web.listen-address={addr}"));
        command.env_remove("TOKIO_WORKER_THREADS");
        if let Some((key, value)) = env {
            command.env(key, value);
        }
        let log = dir.path().join(format!("checkit-{}.log", addr.port()));
        (crate::support::ChildGuard::spawn("checkit", command, &log), addr)
    };

    let (mut free, addr) = start(&[], None);
    free.wait_for_port(addr, std::time::Duration::from_secs(20)).await;
    let (main_before, before) = thread_cpu(free.pid());
    // The main runtime is single-threaded on one or two CPUs, multi-threaded above.
    let expected = if cpus == 2 { 1 } else { 0 };
    assert_eq!(before.len(), expected, "serving threads on {cpus} CPUs: {before:?}");
    let client = reqwest::Client::new();
    for _ in 0..50 {
        let body = client
            .get(format!("http://{addr}/probe?module=tcp&target={target}"))
            .send()
            .await
            .expect("probe")
            .text()
            .await
            .expect("body");
        assert!(body.contains("\nprobe_success 1\n"), "{body}");
    }
    if let Some((name, serving_before)) = before.first() {
        // The one connection went to the idle serving thread (a tie goes
        // there): it did the probing, the main thread only accepted.
        let (main_after, after) = thread_cpu(free.pid());
        let serving = after.iter().find(|(other, _)| other == name).map_or(0, |(_, ns)| ns - serving_before);
        let main = main_after - main_before;
        assert!(serving > main, "50 probes took {serving} ns on {name} and {main} ns on the main thread");
    }

    if cpus >= 2 {
        let (mut pinned, addr) = start(&["taskset", "-c", "0"], None);
        pinned.wait_for_port(addr, std::time::Duration::from_secs(20)).await;
        assert_eq!(thread_cpu(pinned.pid()).1, vec![], "pinned to one CPU");
    }
    let (mut chosen, addr) = start(&[], Some(("TOKIO_WORKER_THREADS", "1")));
    chosen.wait_for_port(addr, std::time::Duration::from_secs(20)).await;
    assert_eq!(thread_cpu(chosen.pid()).1, vec![], "TOKIO_WORKER_THREADS=1");
}
