//! Every panel query of checkit's dashboards and of the four community
//! blackbox_exporter dashboards, run against a real Prometheus that scrapes
//! a real checkit through `examples/prometheus.yml` (two exporter locations,
//! per-module target lists) at a 1s interval. Variables are resolved the way
//! Grafana does (their `label_values` queries must return values too); each
//! query must parse and return data. Targets include broken ones (a closed
//! port, an expired certificate, a refused login) so panels about failures
//! have something to show.

use crate::support::app::start_app;
use crate::support::grafana::{
    Dashboard, builtin_values, dashboards_in, interpolation, parse_label_values, substitute,
};
use crate::support::ops::{PrometheusExample, write_target_lists};
use crate::support::peers::{Nginx, NginxOpts, Postgres, PostgresOpts, Prometheus, SmtpOpts, SmtpServer};
use crate::support::{Leaf, closed_port, free_port};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// A local RDAP registry answering for any domain, expiring in 2030.
async fn rdap_server() -> std::net::SocketAddr {
    use axum::http::header;
    async fn domain(axum::extract::Path(name): axum::extract::Path<String>) -> impl axum::response::IntoResponse {
        let body = serde_json::json!({
            "objectClassName": "domain",
            "ldhName": name,
            "events": [
                {"eventAction": "registration", "eventDate": "1995-08-14T04:00:00Z"},
                {"eventAction": "last changed", "eventDate": "2024-08-14T07:01:34Z"},
                {"eventAction": "expiration", "eventDate": "2030-08-13T04:00:00Z"}
            ]
        });
        ([(header::CONTENT_TYPE, "application/rdap+json")], body.to_string())
    }
    let router = axum::Router::new().route("/rdap/domain/{name}", axum::routing::get(domain));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    addr
}

/// A small client for Prometheus' HTTP API that reports errors instead of
/// panicking, so one bad query does not hide the others.
pub(crate) struct Api {
    pub(crate) base: String,
    pub(crate) client: reqwest::Client,
}

impl Api {
    async fn get(&self, path: &str, params: &[(&str, &str)]) -> Result<Value, String> {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .query(params)
            .send()
            .await
            .map_err(|err| format!("request failed: {err}"))?;
        let body: Value = response.json().await.map_err(|err| format!("not JSON: {err}"))?;
        if body["status"] != "success" {
            return Err(format!("{}: {}", body["errorType"], body["error"]));
        }
        Ok(body["data"].clone())
    }

    /// Instant query; `Ok` with the result list (possibly empty).
    pub(crate) async fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        Ok(self.get("/api/v1/query", &[("query", expr)]).await?["result"].as_array().cloned().unwrap_or_default())
    }

    async fn label_values(&self, label: &str, selector: Option<&str>) -> Result<Vec<String>, String> {
        let params: Vec<(&str, &str)> = selector.map(|selector| ("match[]", selector)).into_iter().collect();
        let data = self.get(&format!("/api/v1/label/{label}/values"), &params).await?;
        Ok(data.as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect())
    }
}

/// Resolves the dashboard's variables like Grafana: query variables through
/// the label values API (each must find values), intervals and custom
/// variables to their current or first option.
pub(crate) async fn resolve_variables(
    api: &Api,
    dashboard: &Dashboard,
    problems: &mut Vec<String>,
) -> BTreeMap<String, String> {
    let mut values = builtin_values();
    for variable in dashboard.variables() {
        let value = match variable.kind.as_str() {
            "datasource" => "prometheus".to_owned(),
            "interval" | "custom" => variable
                .current
                .clone()
                .filter(|current| !current.starts_with('$'))
                .unwrap_or_else(|| variable.query.split(',').next().unwrap_or("1m").trim().to_owned()),
            "constant" | "textbox" => variable.current.clone().unwrap_or(variable.query.clone()),
            "query" => {
                let query = substitute(&variable.query, &values);
                let Some(label_values) = parse_label_values(&query) else {
                    problems.push(format!(
                        "{}: variable ${}: unsupported query {query}",
                        dashboard.name(),
                        variable.name
                    ));
                    continue;
                };
                match api.label_values(&label_values.label, label_values.selector.as_deref()).await {
                    Ok(found) if found.is_empty() => {
                        problems.push(format!(
                            "{}: variable ${} ({query}) has no values",
                            dashboard.name(),
                            variable.name
                        ));
                        variable.all_value.clone().unwrap_or_default()
                    }
                    Ok(found) => interpolation(&found, variable.multi || variable.include_all),
                    Err(err) => {
                        problems.push(format!("{}: variable ${} ({query}): {err}", dashboard.name(), variable.name));
                        String::new()
                    }
                }
            }
            other => panic!("{}: variable ${} of unknown type {other}", dashboard.name(), variable.name),
        };
        values.insert(variable.name.clone(), value);
    }
    values
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_returns_data_from_a_real_prometheus() {
    let nginx = crate::peer!(Nginx::start(NginxOpts::default()).await);
    let expired = crate::peer!(Nginx::start(NginxOpts { leaf: Leaf::Expired, ..NginxOpts::default() }).await);
    let smtp = crate::peer!(SmtpServer::start(SmtpOpts::default()).await);
    let postgres = crate::peer!(Postgres::start(PostgresOpts::default()).await);
    let rdap = rdap_server().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let password_file = dir.path().join("pg-password");
    std::fs::write(&password_file, &postgres.password).expect("write password");
    let token_file = dir.path().join("webhook-token");
    std::fs::write(&token_file, "dashboard-token").expect("write token");
    let wrong_password_file = dir.path().join("wrong-password");
    std::fs::write(&wrong_password_file, "not-the-password").expect("write password");

    let config = format!(
        r#"
modules:
  http_2xx:
    prober: http
    http:
      preferred_ip_protocol: ip4
  http_tls:
    prober: http
    http:
      preferred_ip_protocol: ip4
      tls_config:
        ca_file: {nginx_ca}
  http_tls_expired:
    prober: http
    http:
      preferred_ip_protocol: ip4
      tls_config:
        insecure_skip_verify: true
  tcp_connect:
    prober: tcp
    tcp:
      preferred_ip_protocol: ip4
  icmp:
    prober: icmp
    icmp:
      preferred_ip_protocol: ip4
  rdap:
    prober: rdap
    rdap:
      server_url: http://{rdap}/rdap
  smtp_starttls:
    prober: smtp
    smtp:
      preferred_ip_protocol: ip4
      tls: starttls
      tls_config:
        ca_file: {smtp_ca}
  imap_login:
    prober: imap
    imap:
      preferred_ip_protocol: ip4
  ftp_login:
    prober: ftp
    ftp:
      preferred_ip_protocol: ip4
  postgres_login:
    prober: postgres
    postgres:
      preferred_ip_protocol: ip4
      user: {pg_user}
      password_file: {pg_password}
      database: {pg_database}
  postgres_wrong_password:
    prober: postgres
    postgres:
      preferred_ip_protocol: ip4
      user: {pg_user}
      password_file: {wrong_password}
      database: {pg_database}
  mssql_login:
    prober: mssql
    mssql:
      preferred_ip_protocol: ip4
      user: monitor
bridge:
  auth:
    bearer:
      token_file: {token}
  store:
    sqlite:
      path: {store}
  contacts:
    alice:
      email: alice@example.com
  routes:
    - contacts: [alice]
  channels:
    email:
      smarthost: localhost
      port: {smtp_port}
      from: alerts@checkit.test
      ca_file: {smtp_ca}
"#,
        token = token_file.display(),
        store = dir.path().join("bridge.db").display(),
        smtp_port = smtp.addr.port(),
        nginx_ca = nginx.certs.ca.cert_path.display(),
        smtp_ca = smtp.certs.ca.cert_path.display(),
        pg_user = postgres.user,
        pg_password = password_file.display(),
        wrong_password = wrong_password_file.display(),
        pg_database = postgres.database,
    );
    let app = start_app(&config).await;
    // One notification through the bridge, so its delivery histograms have
    // observations (the rest of its series exist from the start).
    let notification = serde_json::json!({
        "version": "4", "status": "firing", "receiver": "checkit", "groupKey": "{}:{alertname=\"Test\"}",
        "groupLabels": {"alertname": "Test"}, "commonLabels": {"alertname": "Test"}, "commonAnnotations": {},
        "externalURL": "http://alertmanager.test", "truncatedAlerts": 0,
        "alerts": [{"status": "firing", "labels": {"alertname": "Test", "instance": "dashboards"},
                    "annotations": {"summary": "dashboard test"}, "startsAt": "2026-01-01T00:00:00Z",
                    "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "", "fingerprint": "0123456789abcdef"}]
    });
    let response = reqwest::Client::new()
        .post(app.url("/webhook"))
        .bearer_auth("dashboard-token")
        .json(&notification)
        .send()
        .await
        .expect("post webhook");
    assert!(response.status().is_success(), "webhook refused: {}", response.status());
    smtp.wait_for_messages(1, Duration::from_secs(30)).await;

    let closed = closed_port().to_string();
    let targets_dir = dir.path().join("targets");
    std::fs::create_dir(&targets_dir).expect("targets dir");
    let lists: Vec<(&str, Vec<String>)> = vec![
        ("http_2xx", vec![nginx.url("/")]),
        ("http_tls", vec![nginx.tls_url("/")]),
        ("http_tls_expired", vec![expired.tls_url("/")]),
        ("tcp_connect", vec![closed.clone()]),
        ("icmp", vec!["127.0.0.1".to_owned()]),
        ("rdap", vec!["example.com".to_owned()]),
        ("smtp_starttls", vec![smtp.addr.to_string()]),
        ("imap_login", vec![closed.clone()]),
        ("ftp_login", vec![closed.clone()]),
        ("postgres_login", vec![postgres.addr.to_string()]),
        ("postgres_wrong_password", vec![format!("localhost:{}", postgres.addr.port())]),
        ("mssql_login", vec![closed.clone()]),
    ];
    let probe_count: usize = lists.iter().map(|(_, targets)| targets.len()).sum();
    write_target_lists(&targets_dir, &lists);
    let rules_glob = Path::new(env!("CARGO_MANIFEST_DIR")).join("alerts/*.rules.yml");
    let prometheus_yml = PrometheusExample {
        exporter: app.addr,
        targets_dir: &targets_dir,
        rules_glob: &rules_glob.display().to_string(),
        alertmanager: crate::support::loopback(free_port()),
        interval: "1s",
        extra_probe_labels: &[("cluster", "test"), ("project", "checkit"), ("app", "web")],
    }
    .render();
    let prometheus = crate::peer!(Prometheus::start(&prometheus_yml, &[]).await);
    let api = Api { base: format!("http://{}", prometheus.addr), client: reqwest::Client::new() };

    // Every probe from both locations and both exporters' /metrics, each
    // scraped a few times.
    let deadline = Instant::now() + Duration::from_secs(60);
    let ready = format!(
        "count(count_over_time(probe_success[1m]) >= 3) == {} and on () count(up{{job=\"checkit\"}} == 1) == 2",
        probe_count * 2
    );
    while api.query(&ready).await.map(|result| result.is_empty()).unwrap_or(true) {
        if Instant::now() > deadline {
            let seen = api.query("count by (instance, location) (probe_success)").await;
            panic!("Prometheus has not scraped every probe after 60s: {seen:?}\n{}", prometheus.diagnostics());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dashboards = dashboards_in(&root.join("dashboards"));
    dashboards.extend(dashboards_in(&root.join("tests/fixtures/community-dashboards")));
    assert_eq!(dashboards.len(), 7, "checkit's three dashboards and the four community ones");
    let mut problems = Vec::new();
    let mut pending = Vec::new();
    for dashboard in &dashboards {
        let values = resolve_variables(&api, dashboard, &mut problems).await;
        for query in dashboard.queries() {
            let expr = substitute(&query.expr, &values);
            let label = format!("{} / {} / {}", dashboard.name(), query.panel, query.ref_id);
            pending.push((label, expr));
        }
    }
    let checked = pending.len();
    assert!(checked > 80, "only {checked} queries");
    run_queries(&api, pending, Duration::from_secs(5), &mut problems).await;
    assert!(problems.is_empty(), "{} of {checked} dashboard queries failed:\n{}", problems.len(), problems.join("\n"));
    assert_rules_evaluate_cleanly(&api).await;
    drop(app);
}

/// Runs each `(label, expr)` query; records parse errors at once and queries
/// still empty after `patience` (series appear at slightly different scrapes,
/// so empty ones get a few more rounds).
pub(crate) async fn run_queries(
    api: &Api,
    mut pending: Vec<(String, String)>,
    patience: Duration,
    problems: &mut Vec<String>,
) {
    let deadline = Instant::now() + patience;
    loop {
        let mut empty = Vec::new();
        for (label, expr) in pending {
            match api.query(&expr).await {
                Ok(result) if result.is_empty() => empty.push((label, expr)),
                Ok(_) => {}
                Err(err) => problems.push(format!("{label}: {err}\n    {}", one_line(&expr))),
            }
        }
        pending = empty;
        if pending.is_empty() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    problems.extend(pending.iter().map(|(label, expr)| format!("{label}: no data\n    {}", one_line(expr))));
}

fn one_line(expr: &str) -> String {
    expr.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The shipped rules, loaded by the same Prometheus, evaluate against
/// checkit's real series without errors (vector matching conflicts only
/// show up at evaluation time, not in `promtool check rules`).
async fn assert_rules_evaluate_cleanly(api: &Api) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let data = api.get("/api/v1/rules", &[]).await.expect("rules API");
        let rules: Vec<&Value> = data["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|group| group["rules"].as_array().into_iter().flatten())
            .collect();
        assert!(rules.len() > 10, "the shipped rules are loaded: {data}");
        let broken: Vec<String> = rules
            .iter()
            .filter(|rule| rule["health"] == "err")
            .map(|rule| format!("{}: {}", rule["name"], rule["lastError"]))
            .collect();
        assert!(broken.is_empty(), "rules failing to evaluate:\n{}", broken.join("\n"));
        if rules.iter().all(|rule| rule["health"] == "ok") {
            return;
        }
        assert!(Instant::now() < deadline, "rules not all evaluated after 10s: {data}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
