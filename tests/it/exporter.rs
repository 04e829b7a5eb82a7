//! The exporter's HTTP surface on the real app: status codes and bodies of
//! `/probe`, reload semantics, `/logs`, `/metrics`, the target allowlist, the
//! concurrency bound and basic auth from `--web.config.file`.

use crate::support::app::{parse_exposition, start_app, start_app_with, value};
use crate::support::{closed_port, hang_server};
use checkit::app::Options;
use checkit::http::webconfig::Web;

const CONFIG: &str = r#"
modules:
  tcp_connect:
    prober: tcp
    timeout: 2s
    tcp:
      preferred_ip_protocol: ip4
  tcp_banner:
    prober: tcp
    timeout: 2s
    tcp:
      preferred_ip_protocol: ip4
      query_response:
        - expect: "^SSH-"
  http_2xx:
    prober: http
    timeout: 2s
    http:
      preferred_ip_protocol: ip4
exporter:
  targets:
    allow: ["127.0.0.0/8", "::1/128"]
"#;

#[tokio::test]
async fn probe_request_errors_are_4xx_with_a_reason() {
    let app = start_app(CONFIG).await;
    let (status, body) = app.probe("nope", "127.0.0.1:1").await;
    assert_eq!((status, body.as_str()), (400, "Unknown module \"nope\"\n"));
    let (status, body) = app.get("/probe?module=tcp_connect").await;
    assert_eq!((status, body.as_str()), (400, "Target parameter is missing\n"));
    let (status, body) = app.probe("tcp_connect", "10.1.2.3:80").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("not in exporter.targets.allow"), "{body}");
    let response = reqwest::Client::new()
        .get(app.url("/probe?module=tcp_connect&target=127.0.0.1:1"))
        .header("X-Prometheus-Scrape-Timeout-Seconds", "soon")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 500);
    let (_, metrics) = app.get("/metrics").await;
    assert!(metrics.contains("blackbox_module_unknown_total 1"), "{metrics}");
    assert!(metrics.contains("checkit_probe_requests_rejected_total{reason=\"denied\"} 1"), "{metrics}");
}

#[tokio::test]
async fn failed_probe_is_200_with_probe_success_0_and_its_reason() {
    let app = start_app(CONFIG).await;
    let target = closed_port().to_string();
    let response = reqwest::get(app.url(&format!("/probe?module=tcp_connect&target={target}"))).await.expect("probe");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    let families = parse_exposition(&response.text().await.expect("body"));
    assert_eq!(value(&families, "probe_success"), Some(0.0));
    let failure = &families["probe_failure_info"].samples[0].0;
    assert_eq!(failure.get("phase").map(String::as_str), Some("connect"));
    assert_eq!(failure.get("reason").map(String::as_str), Some("refused"));
    // The result is kept for /logs, by target and by id.
    let (status, logs) = app.get(&format!("/logs?target={target}&module=tcp_connect")).await;
    assert_eq!(status, 200);
    assert!(logs.starts_with("Logs for the probe:\n"), "{logs}");
    assert!(logs.contains("Metrics that would have been returned:"), "{logs}");
    assert!(logs.contains("Module configuration:\nprober: tcp"), "{logs}");
    assert_eq!(app.get("/logs?id=0").await.0, 200);
    assert_eq!(app.get("/logs?id=99").await.0, 404);
    assert_eq!(app.get("/logs").await.0, 400);
    let (_, index) = app.get("/").await;
    assert!(index.contains("Failure") && index.contains(&target), "{index}");
}

/// A bare connect check is SYN, SYN-ACK, reset: the target's kernel never
/// completes the connection, so its accept queue never holds it (the
/// application sees nothing), while a dialogue probe still connects fully.
#[tokio::test]
async fn a_bare_tcp_connect_never_reaches_the_target_s_accept_queue() {
    let app = start_app(CONFIG).await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("non-blocking");
    let target = listener.local_addr().expect("address").to_string();
    for _ in 0..3 {
        let (status, body) = app.probe("tcp_connect", &target).await;
        assert_eq!(status, 200);
        assert_eq!(value(&parse_exposition(&body), "probe_success"), Some(1.0), "{body}");
    }
    match listener.accept() {
        Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the target's accept queue held a probe's connection: {other:?}"),
    }
    // Control: a dialogue probe completes the handshake, and that connection
    // does reach the queue.
    let (status, _) = app.probe("tcp_banner", &target).await;
    assert_eq!(status, 200);
    let accepted = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(10));
        listener.accept().is_ok()
    });
    assert!(accepted, "the dialogue probe's connection never reached the accept queue");
}

#[tokio::test]
async fn debug_output_has_the_three_sections() {
    let app = start_app(CONFIG).await;
    let (status, body) = app.get(&format!("/probe?module=tcp_connect&target={}&debug=true", closed_port())).await;
    assert_eq!(status, 200);
    let logs = body.find("Logs for the probe:").expect("logs section");
    let metrics = body.find("Metrics that would have been returned:").expect("metrics section");
    let module = body.find("Module configuration:").expect("module section");
    assert!(logs < metrics && metrics < module);
    assert!(body.contains("probe_success 0"));
}

#[tokio::test]
async fn reload_keeps_the_old_config_when_the_new_one_is_bad() {
    let app = start_app(CONFIG).await;
    assert_eq!(app.get("/-/reload").await, (405, "This endpoint requires a POST request.\n".into()));
    std::fs::write(&app.config_path, "modules:\n  broken:\n    prober: nope\n").expect("write");
    let client = reqwest::Client::new();
    let response = client.post(app.url("/-/reload")).send().await.expect("reload");
    assert_eq!(response.status().as_u16(), 500);
    let body = response.text().await.expect("body");
    assert!(body.starts_with("failed to reload config:") && body.contains("modules.broken.prober"), "{body}");
    let (_, metrics) = app.get("/metrics").await;
    assert!(metrics.contains("blackbox_exporter_config_last_reload_successful 0"), "{metrics}");
    assert_eq!(app.probe("tcp_connect", &closed_port().to_string()).await.0, 200, "old config still serves");
    std::fs::write(&app.config_path, CONFIG.replace("tcp_connect", "tcp_renamed")).expect("write");
    let response = client.post(app.url("/-/reload")).send().await.expect("reload");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(app.probe("tcp_renamed", &closed_port().to_string()).await.0, 200);
    assert_eq!(app.probe("tcp_connect", &closed_port().to_string()).await.0, 400);
    let (_, metrics) = app.get("/metrics").await;
    assert!(metrics.contains("blackbox_exporter_config_last_reload_successful 1"), "{metrics}");
    let (_, config) = app.get("/config").await;
    assert!(config.contains("tcp_renamed:") && config.contains("preferred_ip_protocol: ip4"), "{config}");
}

#[tokio::test]
async fn probes_past_the_concurrency_bound_get_503() {
    let config = format!("{CONFIG}  max_concurrent_probes: 1\n");
    let app = start_app(&config).await;
    let hang = hang_server().await;
    let slow = {
        let url = app.url(&format!("/probe?module=tcp_banner&target={}", hang.addr));
        // A dialogue that waits for a banner keeps the one slot busy.
        tokio::spawn(async move { reqwest::get(url).await.map(|response| response.status().as_u16()) })
    };
    let mut saw_503 = false;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let (status, body) = app.probe("tcp_connect", &closed_port().to_string()).await;
        if status == 503 {
            assert!(body.contains("Too many concurrent probes"), "{body}");
            saw_503 = true;
            break;
        }
    }
    assert!(saw_503, "a second probe while one runs is refused");
    assert_eq!(slow.await.expect("join").expect("request"), 200);
}

#[tokio::test]
async fn web_config_basic_auth_guards_every_endpoint() {
    let dir = tempfile::tempdir().expect("dir");
    let hash = bcrypt::hash("s3cret", 4).expect("hash");
    let path = dir.path().join("web.yml");
    std::fs::write(&path, format!("basic_auth_users:\n  prometheus: '{hash}'\n")).expect("write");
    let web = Web::load(path.to_str().expect("utf-8")).expect("web config loads");
    let app = start_app_with(CONFIG, Options::default(), web).await;
    assert_eq!(app.get("/metrics").await.0, 401);
    assert_eq!(app.get("/probe?module=tcp_connect&target=127.0.0.1:1").await.0, 401);
    assert_eq!(app.get("/-/healthy").await.0, 200, "the health check is public");
    let client = reqwest::Client::new();
    for password in ["wrong", "s3cret"] {
        let status = client
            .get(app.url("/-/healthy"))
            .basic_auth("prometheus", Some(password))
            .send()
            .await
            .expect("request")
            .status()
            .as_u16();
        assert_eq!(status, if password == "s3cret" { 200 } else { 401 });
    }
}

#[tokio::test]
async fn web_config_tls_serves_https_only() {
    let certs = crate::support::TestCerts::generate();
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("web.yml");
    // Relative to the web config's directory, as exporter-toolkit resolves them.
    std::fs::copy(&certs.valid.cert_path, dir.path().join("cert.pem")).expect("copy cert");
    std::fs::copy(&certs.valid.key_path, dir.path().join("key.pem")).expect("copy key");
    std::fs::write(&path, "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n").expect("write");
    let web = Web::load(path.to_str().expect("utf-8")).expect("web config loads");
    let app = start_app_with(CONFIG, Options::default(), web).await;
    let ca = reqwest::Certificate::from_pem(certs.ca.cert_pem.as_bytes()).expect("ca");
    let client = reqwest::Client::builder().add_root_certificate(ca).build().expect("client");
    let response =
        client.get(format!("https://localhost:{}/-/healthy", app.addr.port())).send().await.expect("https request");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.text().await.expect("body"), "Healthy");
    assert!(reqwest::get(app.url("/-/healthy")).await.is_err(), "plain HTTP is not served");
}

#[tokio::test]
async fn invalid_web_config_lists_its_problems() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("web.yml");
    std::fs::write(&path, "basic_auth_users:\n  admin: plaintext\ntls_server_config:\n  cert_file: /nonexistent.pem\n")
        .expect("write");
    let problems = match Web::load(path.to_str().expect("utf-8")) {
        Ok(_) => panic!("an invalid web config must not load"),
        Err(problems) => problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
    };
    assert!(
        problems.iter().any(|p| p.starts_with("basic_auth_users.admin: password must be a bcrypt hash")),
        "{problems:?}"
    );
    assert!(problems.iter().any(|p| p.starts_with("tls_server_config.key_file: key_file is required")), "{problems:?}");
}

/// `promtool check metrics` accepts what `/probe` and `/metrics` serve.
#[tokio::test]
async fn promtool_accepts_probe_and_exporter_metrics() {
    let Some(promtool) = crate::support::require_binary("promtool", "prometheus") else {
        return;
    };
    let app = start_app(CONFIG).await;
    let healthy = app.url("/-/healthy");
    let refused = closed_port().to_string();
    let mut bodies = Vec::new();
    for (module, target) in [("http_2xx", healthy.as_str()), ("tcp_connect", refused.as_str())] {
        let (status, body) = app.probe(module, target).await;
        assert_eq!(status, 200);
        bodies.push((format!("/probe {module}"), body));
    }
    assert!(bodies[0].1.contains("probe_success 1"), "{}", bodies[0].1);
    bodies.push(("/metrics".into(), app.get("/metrics").await.1));
    for (what, body) in bodies {
        crate::support::promtool_check_metrics(&promtool, &what, &body);
    }
}

#[tokio::test]
async fn config_endpoint_hides_secrets_and_hostname_conflicts_are_400() {
    let config = r#"
modules:
  http_auth:
    prober: http
    http:
      headers:
        Host: example.test
      basic_auth:
        username: prometheus
        password: hunter2-secret
"#;
    let app = start_app(config).await;
    let (status, body) = app.get("/config").await;
    assert_eq!(status, 200);
    assert!(!body.contains("hunter2-secret"), "{body}");
    assert!(body.contains("password: <secret>"), "{body}");
    let (status, body) = app.get("/probe?module=http_auth&target=127.0.0.1:1&hostname=other.test").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("Host header defined both in module configuration"), "{body}");
    // The debug output shows the module without its secret either.
    let (status, body) = app.get("/probe?module=http_auth&target=127.0.0.1:1&hostname=example.test&debug=true").await;
    assert_eq!(status, 200);
    assert!(!body.contains("hunter2-secret") && body.contains("Module configuration:"), "{body}");
}

/// `/metrics` carries the standard process families and the build info, in
/// both exposition formats, with plausible values.
#[tokio::test]
async fn metrics_have_process_families_and_build_info() {
    let app = start_app(CONFIG).await;
    let (status, body) = app.get("/metrics").await;
    assert_eq!(status, 200);
    let families = parse_exposition(&body);
    for name in checkit::telemetry::process::METRIC_NAMES {
        let family = families.get(*name).unwrap_or_else(|| panic!("no {name} in:\n{body}"));
        assert!(!family.help.is_empty(), "{name} has no HELP");
        assert!(value(&families, name).is_some_and(|value| value >= 0.0), "{name}: {family:?}");
    }
    assert_eq!(families["process_cpu_seconds_total"].kind, "counter");
    assert_eq!(families["process_resident_memory_bytes"].kind, "gauge");
    assert!(value(&families, "process_resident_memory_bytes").unwrap_or_default() > 1e6, "{body}");
    assert!(value(&families, "process_open_fds").unwrap_or_default() >= 3.0, "{body}");
    let started = value(&families, "process_start_time_seconds").unwrap_or_default();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs_f64();
    assert!(started > now - 3600.0 && started <= now + 1.0, "started {started}, now {now}");
    let (labels, one) = &families["checkit_build_info"].samples[0];
    assert_eq!(*one, 1.0);
    assert_eq!(labels.get("version").map(String::as_str), Some(env!("CARGO_PKG_VERSION")));
    assert!(labels.get("revision").is_some_and(|revision| !revision.is_empty()), "{labels:?}");
    let openmetrics = reqwest::Client::new()
        .get(app.url("/metrics"))
        .header("accept", "application/openmetrics-text; version=1.0.0")
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("body");
    assert!(openmetrics.contains("# TYPE process_cpu_seconds counter\nprocess_cpu_seconds_total "), "{openmetrics}");
    assert!(openmetrics.ends_with("# EOF\n"), "{openmetrics}");
}

/// The web config's basic auth guards `bridge.listen_address` too: every
/// listener is composed behind the same web layer.
#[tokio::test]
async fn web_config_basic_auth_guards_the_bridge_listener() {
    let dir = tempfile::tempdir().expect("dir");
    let hash = bcrypt::hash("s3cret", 4).expect("hash");
    let path = dir.path().join("web.yml");
    std::fs::write(&path, format!("basic_auth_users:\n  prometheus: '{hash}'\n")).expect("write");
    let web = Web::load(path.to_str().expect("utf-8")).expect("web config loads");
    let config = format!(
        "{CONFIG}bridge:\n  listen_address: 127.0.0.1:0\n  store: {{sqlite: {{path: {}}}}}\n  contacts: {{ops: {{log: ops}}}}\n  routes: [{{contacts: [ops]}}]\n",
        dir.path().join("bridge.db").display()
    );
    let app = start_app_with(&config, Options::default(), web).await;
    let client = reqwest::Client::new();
    let on_main = client
        .get(app.url("/api/v1/deliveries"))
        .basic_auth("prometheus", Some("s3cret"))
        .send()
        .await
        .expect("request");
    assert_eq!(on_main.status().as_u16(), 404, "the bridge's routes have a listener of their own");
    let router = app.app.bridge_router().expect("a bridge router for bridge.listen_address");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let bridge_url = format!("http://{}/api/v1/deliveries", listener.local_addr().expect("addr"));
    app.app.serve(listener, router, &Default::default());
    assert_eq!(client.get(&bridge_url).send().await.expect("request").status().as_u16(), 401);
    let authorized = client.get(&bridge_url).basic_auth("prometheus", Some("s3cret")).send().await.expect("request");
    assert_eq!(authorized.status().as_u16(), 200);
}
