//! The bridge with real peers: Alertmanager (single and clustered) in front,
//! aiosmtpd (STARTTLS + AUTH) behind, PostgreSQL shared by two replicas, and
//! the `checkit` binary killed with SIGKILL mid-delivery.

use crate::bridge_support::{Recorder, TestBridge};
use crate::peer;
use crate::support::peers::{Alertmanager, Postgres, PostgresOpts, SmtpFailure, SmtpOpts, SmtpServer, SmtpStage};
use crate::support::{ChildGuard, free_port, loopback, wait_for_port};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write test file");
    path.display().to_string()
}

/// The `bridge.channels.email` block for `smtp`, secrets in `dir`.
pub fn email_block(smtp: &SmtpServer, dir: &Path) -> String {
    let password = write(dir, "smtp-password", &smtp.password);
    format!(
        "  email:\n    smarthost: localhost\n    port: {}\n    from: 'checkit <alerts@checkit.test>'\n    \
         username: {}\n    password_file: {password}\n    ca_file: {}\n",
        smtp.addr.port(),
        smtp.user,
        smtp.certs.ca.cert_path.display()
    )
}

/// An Alertmanager config sending every alert to `url` with basic auth.
fn alertmanager_config(url: &str, password_file: &str) -> String {
    format!(
        "route:\n  receiver: team.ops-pager\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 2s\n  \
         repeat_interval: 1h\nreceivers:\n- name: team.ops-pager\n  webhook_configs:\n  - url: {url}\n    \
         send_resolved: true\n    http_config:\n      basic_auth: {{username: am, password_file: {password_file}}}\n"
    )
}

/// A postable alert that started 4 minutes before `base`; resolved (one
/// minute before `base`) when `ended`.
fn alert(name: &str, severity: &str, base: DateTime<Utc>, ended: bool) -> serde_json::Value {
    let mut alert = serde_json::json!({
        "labels": {"alertname": name, "severity": severity, "instance": "db-1"},
        "annotations": {"summary": format!("{name} on db-1")},
        "startsAt": (base - chrono::Duration::minutes(4)).to_rfc3339(),
        "generatorURL": "http://prometheus.example:9090/graph",
    });
    if ended {
        alert["endsAt"] = (base - chrono::Duration::minutes(1)).to_rfc3339().into();
    }
    alert
}

#[tokio::test]
async fn alertmanager_to_bridge_to_smtp_firing_and_resolved() {
    let smtp =
        peer!(SmtpServer::start(SmtpOpts { require_starttls: true, auth_required: true, ..SmtpOpts::default() }).await);
    let secrets = tempfile::tempdir().unwrap();
    let am_password = write(secrets.path(), "am-password", "s3cret\n");
    let bridge = TestBridge::start_at(
        &format!(
            "auth: {{basic: {{username: am, password_file: {am_password}}}}}\n\
             contacts: {{alice: {{email: 'Alice <alice@example.com>'}}}}\n\
             routes: [{{receivers: [team.ops-pager], contacts: [alice]}}]\nchannels:\n{}",
            email_block(&smtp, secrets.path())
        ),
        Utc::now(),
    )
    .await;
    let am = peer!(Alertmanager::start(&alertmanager_config(&bridge.url("/webhook"), &am_password)).await);
    let base = Utc::now();
    assert_eq!(am.post_alerts(&serde_json::json!([alert("DiskFull", "critical", base, false)])).await, 200);
    let mails = smtp.wait_for_messages(1, Duration::from_secs(30)).await;
    let firing = &mails[0];
    assert_eq!(firing.rcpt_tos, ["alice@example.com"]);
    assert!(firing.tls && firing.auth_user.is_some(), "STARTTLS and AUTH were used");
    assert!(firing.data.contains("[FIRING:1]"), "{}", firing.data);
    assert!(firing.data.contains("DiskFull"), "{}", firing.data);

    assert_eq!(am.post_alerts(&serde_json::json!([alert("DiskFull", "critical", base, true)])).await, 200);
    let mails = smtp.wait_for_messages(2, Duration::from_secs(30)).await;
    let resolved = &mails[1];
    assert!(resolved.data.contains("[RESOLVED]"), "{}", resolved.data);
    assert!(resolved.data.contains("was firing for 3m)"), "the duration is told: {}", resolved.data);
    // Alertmanager's escaped receiver name was unescaped before routing, and
    // history is behind the same credentials as the webhook.
    // The SMTP sink has the mail before the worker records `sent`: poll (bounded).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let sent = loop {
        let sent: serde_json::Value = bridge
            .client
            .get(bridge.url("/api/v1/deliveries?status=sent"))
            .basic_auth("am", Some("s3cret"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if sent["total"] == 2 || tokio::time::Instant::now() > deadline {
            break sent;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(sent["total"], 2);
    assert_eq!(mails.len(), 2);
    bridge.stop().await;
}

#[tokio::test]
async fn two_clustered_alertmanagers_give_one_message_per_notification() {
    let recorder = Recorder::start().await;
    let secrets = tempfile::tempdir().unwrap();
    let am_password = write(secrets.path(), "am-password", "s3cret");
    let bridge = TestBridge::start_at(
        &format!(
            "auth: {{basic: {{username: am, password_file: {am_password}}}}}\n\
             contacts: {{ops: {{webhook: '{}'}}}}\nroutes: [{{contacts: [ops]}}]\n",
            recorder.url("/ops")
        ),
        Utc::now(),
    )
    .await;
    let config = alertmanager_config(&bridge.url("/webhook"), &am_password);
    let peers = peer!(Alertmanager::start_cluster(&config, 2).await);
    // Prometheus sends every alert to every Alertmanager.
    let base = Utc::now();
    let firing = serde_json::json!([
        alert("HighLatency", "critical", base, false),
        alert("HighLatency", "warning", base, false)
    ]);
    for am in &peers {
        assert_eq!(am.post_alerts(&firing).await, 200);
    }
    recorder.wait_for(1).await;
    // The second peer waits its peer timeout (15s) before it would send.
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(recorder.count(), 1, "one message for the firing notification");
    let resolved =
        serde_json::json!([alert("HighLatency", "critical", base, true), alert("HighLatency", "warning", base, true)]);
    for am in &peers {
        assert_eq!(am.post_alerts(&resolved).await, 200);
    }
    recorder.wait_for(2).await;
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(recorder.count(), 2, "one message for the resolved notification");
    let view: serde_json::Value = serde_json::from_str(&recorder.requests()[1].body).unwrap();
    assert_eq!(view["status"], "resolved");
    let received = bridge.metric("checkit_bridge_webhooks_received_total");
    let accepted = bridge.metric("checkit_bridge_notifications_accepted_total");
    let duplicates = bridge.metric("checkit_bridge_notifications_deduplicated_total");
    assert_eq!(accepted, 2.0);
    assert_eq!(received, accepted + duplicates, "every other POST was a duplicate");
    bridge.stop().await;
}

fn postgres_yaml(pg: &Postgres, dir: &Path, recorder: &Recorder) -> String {
    let url = write(dir, "pg-url", &pg.url());
    format!(
        "store: {{postgres: {{url_file: {url}}}}}\nworkers: 3\n\
         contacts: {{ops: {{webhook: '{}'}}, dev: {{webhook: '{}'}}}}\nroutes: [{{contacts: [ops, dev]}}]\n",
        recorder.url("/ops"),
        recorder.url("/dev")
    )
}

#[tokio::test]
async fn two_replicas_on_postgres_deliver_every_message_once() {
    let pg = peer!(Postgres::start(PostgresOpts::default()).await);
    let recorder = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = postgres_yaml(&pg, dir.path(), &recorder);
    let first = TestBridge::start(&yaml).await;
    let second = TestBridge::start(&yaml).await;
    // Each notification reaches both replicas at once, as from two HA peers.
    let mut posts = Vec::new();
    for index in 0..30 {
        let body = crate::bridge_support::notification(
            "team",
            &format!("g{index}"),
            &[(&format!("Alert{index}"), "warning", "firing")],
        );
        for bridge in [&first, &second] {
            let (client, url, body) = (bridge.client.clone(), bridge.url("/webhook"), body.clone());
            posts.push(tokio::spawn(async move {
                let response =
                    client.post(url).header("content-type", "application/json").body(body).send().await.unwrap();
                (response.status().as_u16(), response.text().await.unwrap())
            }));
        }
    }
    let mut accepted = 0;
    for post in posts {
        let (status, text) = post.await.unwrap();
        assert_eq!(status, 200, "{text}");
        if text.contains("accepted") {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 30, "each notification committed once across replicas");
    recorder.wait_for(60).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut per_message: BTreeMap<(String, String), usize> = BTreeMap::new();
    for request in recorder.requests() {
        let view: serde_json::Value = serde_json::from_str(&request.body).unwrap();
        let name = view["alerts"][0]["labels"]["alertname"].as_str().unwrap().to_string();
        *per_message.entry((request.path.clone(), name)).or_default() += 1;
    }
    assert_eq!(per_message.len(), 60);
    assert!(per_message.values().all(|count| *count == 1), "{per_message:?}");
    // Both replicas did part of the work, and history is shared.
    let sent = first.history("status=sent&limit=1000").await;
    assert_eq!(sent["total"], 60);
    first.stop().await;
    second.stop().await;
}

#[tokio::test]
async fn storage_failure_answers_503() {
    let pg = peer!(Postgres::start(PostgresOpts::default()).await);
    let recorder = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    let bridge = TestBridge::start(&postgres_yaml(&pg, dir.path(), &recorder)).await;
    let body = crate::bridge_support::notification("team", "g", &[("A", "warning", "firing")]);
    assert_eq!(bridge.post(body.clone()).await.0, 200);
    drop(pg);
    let (status, text) =
        bridge.post(crate::bridge_support::notification("team", "h", &[("B", "warning", "firing")])).await;
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("storage unavailable"), "{text}");
    assert_eq!(bridge.metric("checkit_bridge_webhooks_rejected_total{reason=\"unavailable\"}"), 1.0);
    bridge.stop().await;
}

/// `checkit` as a process with a bridge config; SIGKILLed by [`ChildGuard::kill`].
pub(crate) struct Checkit {
    pub(crate) guard: ChildGuard,
    port: u16,
}

impl Checkit {
    /// Runs `checkit --config.file=config` on `127.0.0.1:port`, logging to `log`.
    pub(crate) async fn start(config: &Path, log: &Path, port: u16) -> Checkit {
        let directory = log.parent().expect("log in a directory");
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_checkit"));
        command
            .current_dir(directory)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"));
        let guard = ChildGuard::spawn("checkit", command, log);
        assert!(
            wait_for_port(loopback(port), Duration::from_secs(30)).await,
            "checkit did not listen: {}",
            guard.diagnostics()
        );
        Checkit { guard, port }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

#[tokio::test]
async fn kill_9_with_pending_deliveries_loses_nothing() {
    let mut smtp = peer!(SmtpServer::start(SmtpOpts::default()).await);
    smtp.stop();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("checkit.yml");
    std::fs::write(
        &config,
        format!(
            "bridge:\n  store: {{sqlite: {{path: {}}}}}\n  retry: {{initial_interval: 500ms, max_interval: 2s}}\n  \
             contacts: {{alice: {{email: alice@example.com}}}}\n  routes: [{{contacts: [alice]}}]\n  channels:\n{}",
            dir.path().join("bridge.db").display(),
            email_block(&smtp, dir.path()).lines().map(|line| format!("  {line}\n")).collect::<String>()
        ),
    )
    .unwrap();
    let log = dir.path().join("checkit.log");
    let port = free_port();
    let mut checkit = Checkit::start(&config, &log, port).await;
    let client = reqwest::Client::new();
    const MESSAGES: usize = 20;
    for index in 0..MESSAGES {
        let body = crate::bridge_support::notification_at(
            "team",
            &format!("g{index}"),
            &[(&format!("Alert{index}"), "warning", "firing")],
            Utc::now(),
        );
        let response = client.post(checkit.url("/webhook")).body(body).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    // Every message has failed at least once against the stopped SMTP server.
    let failed_rows = || async {
        let page: serde_json::Value = client
            .get(checkit.url("/api/v1/deliveries?status=failed&limit=1000"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let rows: std::collections::BTreeSet<i64> =
            page["items"].as_array().unwrap().iter().map(|item| item["outbox_id"].as_i64().unwrap()).collect();
        rows.len()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while failed_rows().await < MESSAGES {
        assert!(tokio::time::Instant::now() < deadline, "not every message was attempted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    checkit.guard.kill();
    smtp.restart().await;
    let checkit = Checkit::start(&config, &log, port).await;
    smtp.wait_for_messages(MESSAGES, Duration::from_secs(60)).await;
    // Let any duplicate show up before counting.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mails = smtp.messages();
    let mut per_alert: BTreeMap<String, usize> = BTreeMap::new();
    for mail in &mails {
        let name = (0..MESSAGES)
            .rev()
            .map(|index| format!("Alert{index}"))
            .find(|name| mail.data.contains(name.as_str()))
            .unwrap_or_else(|| panic!("no alert in {}", mail.data));
        *per_alert.entry(name).or_default() += 1;
    }
    assert_eq!(per_alert.len(), MESSAGES, "every message arrived: {per_alert:?}");
    // SMTP was down until the kill, so no attempt had succeeded: at-least-once
    // allows no duplicate here.
    assert!(per_alert.values().all(|count| *count == 1), "{per_alert:?}");
    let sent: serde_json::Value =
        client.get(checkit.url("/api/v1/deliveries?status=sent")).send().await.unwrap().json().await.unwrap();
    assert_eq!(sent["total"], MESSAGES);
}

#[tokio::test]
async fn the_default_config_runs_the_bridge_with_the_log_channel() {
    let dir = tempfile::tempdir().unwrap();
    // A copy, so the store lands next to it (relative paths follow the config file).
    let config = dir.path().join("default.yml");
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.yml"), &config).unwrap();
    let checkit = Checkit::start(&config, &dir.path().join("checkit.log"), free_port()).await;
    let client = reqwest::Client::new();
    let body =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/alertmanager/am-0.25-firing-2alerts.json"))
            .unwrap();
    let response = client.post(checkit.url("/webhook")).body(body).send().await.unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let page: serde_json::Value =
            client.get(checkit.url("/api/v1/deliveries?status=sent")).send().await.unwrap().json().await.unwrap();
        if page["total"] == 1 {
            assert_eq!(page["items"][0]["channel"], "log");
            assert_eq!(page["items"][0]["contact"], "operator");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not delivered to the log: {page}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(dir.path().join("checkit.db").exists(), "one SQLite store next to the config file");
    let log = std::fs::read_to_string(dir.path().join("checkit.log")).unwrap();
    assert!(log.contains("HighLatency"), "the log channel wrote the message: {log}");
}

#[tokio::test]
async fn the_postgres_store_speaks_tls() {
    let pg = peer!(Postgres::start(PostgresOpts { require_tls: true, ..PostgresOpts::default() }).await);
    let recorder = Recorder::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let url = write(dir.path(), "pg-url", &format!("{}?sslmode=require", pg.url()));
    let yaml = |tls: &str| {
        format!(
            "store: {{postgres: {{url_file: {url}{tls}}}}}\ncontacts: {{ops: {{webhook: '{}'}}}}\nroutes: [{{contacts: [ops]}}]\n",
            recorder.url("/ops")
        )
    };
    // Without TLS settings the server (hostnossl … reject) refuses the bridge.
    let plain = crate::bridge_support::config(&yaml(""));
    let err = checkit::bridge::Bridge::start(std::sync::Arc::new(plain), &mut Default::default())
        .await
        .expect_err("plain text is refused");
    assert!(err.to_string().contains("cannot connect to postgres"), "{err}");
    let ca = pg.certs.ca.cert_path.display().to_string();
    let bridge = TestBridge::start(&yaml(&format!(", tls_config: {{ca_file: {ca}}}"))).await;
    let (status, text) =
        bridge.post(crate::bridge_support::notification("team", "g", &[("A", "warning", "firing")])).await;
    assert_eq!(status, 200, "{text}");
    bridge.wait_for_outcome("sent", 1).await;
    let client = pg.superuser().await;
    let encrypted: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) WHERE ssl AND usename = 'checkit'",
            &[],
        )
        .await
        .expect("pg_stat_ssl")
        .get(0);
    assert!(encrypted >= 1, "the bridge's connections use TLS");
    bridge.stop().await;
}

#[tokio::test]
async fn smtp_temporary_failures_are_retried_and_permanent_ones_dead_lettered() {
    let smtp = peer!(SmtpServer::start(SmtpOpts::default()).await);
    let secrets = tempfile::tempdir().expect("temp dir");
    let bridge = TestBridge::start_at(
        &format!(
            "retry: {{initial_interval: 10s, max_interval: 1m}}\ncontacts: {{alice: {{email: alice@example.com}}}}\n\
             routes: [{{contacts: [alice]}}]\nchannels:\n{}",
            email_block(&smtp, secrets.path())
        ),
        Utc::now(),
    )
    .await;
    smtp.set_failure(SmtpStage::Rcpt, Some(SmtpFailure::Temporary));
    bridge.post(crate::bridge_support::notification("team", "a", &[("Temporary", "warning", "firing")])).await;
    let failed = bridge.wait_for_outcome("failed", 1).await;
    assert!(failed["items"][0]["error"].as_str().expect("error").contains("451"), "{failed}");
    smtp.set_failure(SmtpStage::Rcpt, None);
    bridge.advance(chrono::Duration::seconds(16));
    smtp.wait_for_messages(1, Duration::from_secs(15)).await;
    bridge.wait_for_outcome("sent", 1).await;

    smtp.set_failure(SmtpStage::Data, Some(SmtpFailure::Permanent));
    bridge.post(crate::bridge_support::notification("team", "b", &[("Permanent", "warning", "firing")])).await;
    let dead = bridge.wait_for_outcome("dead", 1).await;
    let error = dead["items"][0]["error"].as_str().expect("error");
    assert!(error.contains("permanent failure") && error.contains("550"), "{error}");
    bridge.advance(chrono::Duration::hours(1));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(smtp.messages().len(), 1, "a permanent failure is not retried");
    bridge.stop().await;
}
