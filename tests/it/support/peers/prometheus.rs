//! The Prometheus stack: blackbox_exporter (the reference we replace),
//! Prometheus (rules, scrapes) and Alertmanager (optionally clustered), each
//! with a small HTTP API helper.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use super::START_TIMEOUT;
use crate::support::{ChildGuard, free_port, free_ports, loopback, require_binary, shared_temp_dir, write_file};

/// Waits until `GET url` answers 200; panics with the logs otherwise.
async fn wait_http_ok(guard: &mut ChildGuard, url: String) {
    let client = http_client();
    guard
        .wait_until(START_TIMEOUT, &format!("ready at {url}"), || {
            let request = client.get(&url).send();
            async move { request.await.is_ok_and(|response| response.status().is_success()) }
        })
        .await;
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(10)).no_proxy().build().expect("http client")
}

/// A running `prometheus-blackbox-exporter` (0.23 on Debian 12).
pub struct BlackboxExporter {
    /// `127.0.0.1:<port>`.
    pub addr: SocketAddr,
    /// The config file, for rewriting before [`reload`](Self::reload).
    pub config_path: PathBuf,
    client: reqwest::Client,
    guard: ChildGuard,
    _dir: tempfile::TempDir,
}

impl BlackboxExporter {
    /// Starts the exporter with `config_yaml` as its `blackbox.yml`.
    pub async fn start(config_yaml: &str) -> Option<BlackboxExporter> {
        let binary = require_binary("prometheus-blackbox-exporter", "prometheus-blackbox-exporter")?;
        let dir = shared_temp_dir("blackbox");
        let config_path = dir.path().join("blackbox.yml");
        write_file(&config_path, config_yaml, 0o644);
        let port = free_port();
        let mut command = Command::new(binary);
        command
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"));
        let mut guard = ChildGuard::spawn("blackbox_exporter", command, &dir.path().join("blackbox.log"));
        let addr = loopback(port);
        wait_http_ok(&mut guard, format!("http://{addr}/-/healthy")).await;
        Some(BlackboxExporter { addr, config_path, client: http_client(), guard, _dir: dir })
    }

    /// `GET /probe?target=..&module=..`: the status code and the body.
    pub async fn probe(&self, target: &str, module: &str) -> (u16, String) {
        let response = self
            .client
            .get(format!("http://{}/probe", self.addr))
            .query(&[("target", target), ("module", module)])
            .send()
            .await
            .unwrap_or_else(|err| self.guard.fail(&format!("GET /probe: {err}")));
        let status = response.status().as_u16();
        (status, response.text().await.expect("probe body"))
    }

    /// `POST /-/reload`; returns the status code.
    pub async fn reload(&self) -> u16 {
        let response = self.client.post(format!("http://{}/-/reload", self.addr)).send().await;
        response.unwrap_or_else(|err| self.guard.fail(&format!("POST /-/reload: {err}"))).status().as_u16()
    }

    /// Process diagnostics (log tail).
    pub fn diagnostics(&self) -> String {
        self.guard.diagnostics()
    }
}

/// A running Prometheus with `--web.enable-lifecycle`.
pub struct Prometheus {
    /// `127.0.0.1:<port>`.
    pub addr: SocketAddr,
    /// Directory of `prometheus.yml` and the rule files (relative rule file
    /// names in the config resolve here).
    pub config_dir: PathBuf,
    client: reqwest::Client,
    guard: ChildGuard,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus with `config_yaml` as `prometheus.yml` and each
    /// `(file name, contents)` of `rule_files` next to it.
    pub async fn start(config_yaml: &str, rule_files: &[(&str, &str)]) -> Option<Prometheus> {
        let binary = require_binary("prometheus", "prometheus")?;
        let dir = shared_temp_dir("prometheus");
        let config_dir = dir.path().to_owned();
        let config_path = config_dir.join("prometheus.yml");
        write_file(&config_path, config_yaml, 0o644);
        for (name, contents) in rule_files {
            write_file(&config_dir.join(name), contents, 0o644);
        }
        let port = free_port();
        let mut command = Command::new(binary);
        command
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--web.enable-lifecycle");
        let mut guard = ChildGuard::spawn("prometheus", command, &dir.path().join("prometheus.log"));
        let addr = loopback(port);
        wait_http_ok(&mut guard, format!("http://{addr}/-/ready")).await;
        Some(Prometheus { addr, config_dir, client: http_client(), guard, _dir: dir })
    }

    /// Instant query: the `data.result` array (`[]` when nothing matches).
    pub async fn query(&self, expr: &str) -> Vec<serde_json::Value> {
        let response = self
            .client
            .get(format!("http://{}/api/v1/query", self.addr))
            .query(&[("query", expr)])
            .send()
            .await
            .unwrap_or_else(|err| self.guard.fail(&format!("query {expr}: {err}")));
        let body: serde_json::Value = response.json().await.expect("query json");
        if body["status"] != "success" {
            self.guard.fail(&format!("query {expr}: {body}"));
        }
        body["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until `expr` returns at least one series; returns them.
    /// Panics after `timeout`.
    pub async fn wait_until(&self, expr: &str, timeout: Duration) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let result = self.query(expr).await;
            if !result.is_empty() {
                return result;
            }
            if Instant::now() >= deadline {
                self.guard.fail(&format!("{expr} still empty after {timeout:?}"));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `POST /-/reload` after rewriting files in `config_dir`; returns the status.
    pub async fn reload(&self) -> u16 {
        let response = self.client.post(format!("http://{}/-/reload", self.addr)).send().await;
        response.unwrap_or_else(|err| self.guard.fail(&format!("POST /-/reload: {err}"))).status().as_u16()
    }

    /// Process diagnostics (log tail).
    pub fn diagnostics(&self) -> String {
        self.guard.diagnostics()
    }
}

/// A running Alertmanager (`/usr/bin/prometheus-alertmanager`, 0.25).
pub struct Alertmanager {
    /// API and UI: `127.0.0.1:<port>`.
    pub addr: SocketAddr,
    /// Gossip address, when clustered.
    pub cluster_addr: Option<SocketAddr>,
    client: reqwest::Client,
    guard: ChildGuard,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    /// Starts one Alertmanager with clustering disabled.
    pub async fn start(config_yaml: &str) -> Option<Alertmanager> {
        Alertmanager::spawn(config_yaml, None, &[]).await
    }

    /// Starts `count` Alertmanagers gossiping with each other, all with
    /// `config_yaml`, and waits until each sees all `count` members.
    pub async fn start_cluster(config_yaml: &str, count: usize) -> Option<Vec<Alertmanager>> {
        let cluster_ports = free_ports(count);
        let mut members = Vec::with_capacity(count);
        for &port in &cluster_ports {
            let peers: Vec<SocketAddr> =
                cluster_ports.iter().filter(|&&other| other != port).map(|&other| loopback(other)).collect();
            members.push(Alertmanager::spawn(config_yaml, Some(loopback(port)), &peers).await?);
        }
        for member in &members {
            member.wait_for_peers(count, START_TIMEOUT).await;
        }
        Some(members)
    }

    async fn spawn(config_yaml: &str, cluster_addr: Option<SocketAddr>, peers: &[SocketAddr]) -> Option<Alertmanager> {
        let binary = require_binary("prometheus-alertmanager", "prometheus-alertmanager")?;
        let dir = shared_temp_dir("alertmanager");
        let config_path = dir.path().join("alertmanager.yml");
        write_file(&config_path, config_yaml, 0o644);
        let port = free_port();
        let mut command = Command::new(binary);
        command
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"));
        match cluster_addr {
            Some(cluster_addr) => {
                command
                    .arg(format!("--cluster.listen-address={cluster_addr}"))
                    .arg(format!("--cluster.advertise-address={cluster_addr}"))
                    // Settle quickly: tests create fresh clusters.
                    .args(["--cluster.settle-timeout=2s", "--cluster.pushpull-interval=2s"]);
                for peer in peers {
                    command.arg(format!("--cluster.peer={peer}"));
                }
            }
            // An empty listen address disables clustering.
            None => {
                command.arg("--cluster.listen-address=");
            }
        }
        let mut guard = ChildGuard::spawn("alertmanager", command, &dir.path().join("alertmanager.log"));
        let addr = loopback(port);
        wait_http_ok(&mut guard, format!("http://{addr}/-/ready")).await;
        Some(Alertmanager { addr, cluster_addr, client: http_client(), guard, _dir: dir })
    }

    /// `GET /api/v2/status`.
    pub async fn status(&self) -> serde_json::Value {
        self.get("/api/v2/status").await
    }

    /// `GET /api/v2/alerts` (active, silenced and inhibited).
    pub async fn alerts(&self) -> Vec<serde_json::Value> {
        self.get("/api/v2/alerts").await.as_array().cloned().unwrap_or_default()
    }

    /// `POST /api/v2/alerts` with a JSON array of postable alerts; returns
    /// the status code.
    pub async fn post_alerts(&self, alerts: &serde_json::Value) -> u16 {
        let response = self
            .client
            .post(format!("http://{}/api/v2/alerts", self.addr))
            .json(alerts)
            .send()
            .await
            .unwrap_or_else(|err| self.guard.fail(&format!("POST /api/v2/alerts: {err}")));
        response.status().as_u16()
    }

    /// Waits until the cluster status lists `count` peers (this one included)
    /// and gossip has settled (`"ready"`).
    pub async fn wait_for_peers(&self, count: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.status().await;
            let peers = status["cluster"]["peers"].as_array().map_or(0, Vec::len);
            if peers >= count && status["cluster"]["status"] == "ready" {
                return;
            }
            if Instant::now() >= deadline {
                self.guard.fail(&format!("{peers} of {count} cluster peers after {timeout:?}: {status}"));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn get(&self, path: &str) -> serde_json::Value {
        let response = self
            .client
            .get(format!("http://{}{path}", self.addr))
            .send()
            .await
            .unwrap_or_else(|err| self.guard.fail(&format!("GET {path}: {err}")));
        response.json().await.unwrap_or_else(|err| self.guard.fail(&format!("GET {path} json: {err}")))
    }

    /// Process diagnostics (log tail).
    pub fn diagnostics(&self) -> String {
        self.guard.diagnostics()
    }
}
