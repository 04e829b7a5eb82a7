//! blackbox_exporter (Debian's 0.23) on a free loopback port with a given
//! config, for differential tests against checkit's probers.

use std::net::SocketAddr;
use std::process::Command;

use super::START_TIMEOUT;
use crate::support::{ChildGuard, free_port, loopback, require_binary, shared_temp_dir, write_file};

/// Where Debian installs it.
const BINARY: &str = "/usr/bin/prometheus-blackbox-exporter";

/// A running blackbox_exporter.
pub struct Blackbox {
    /// Where it listens.
    pub addr: SocketAddr,
    guard: ChildGuard,
    _dir: tempfile::TempDir,
}

impl Blackbox {
    /// Starts blackbox_exporter with `config_yaml` as its `blackbox.yml`.
    pub async fn start(config_yaml: &str) -> Option<Blackbox> {
        let binary = require_binary(BINARY, "prometheus-blackbox-exporter")?;
        let dir = shared_temp_dir("blackbox");
        let config_path = dir.path().join("blackbox.yml");
        write_file(&config_path, config_yaml, 0o644);
        let addr = loopback(free_port());
        let mut command = Command::new(binary);
        command
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=debug");
        let mut guard = ChildGuard::spawn("blackbox_exporter", command, &dir.path().join("blackbox.out"));
        guard.wait_for_port(addr, START_TIMEOUT).await;
        Some(Blackbox { addr, guard, _dir: dir })
    }

    /// `/probe?module=…&target=…` (plus `extra` query pairs): the body text.
    pub async fn probe(&self, module: &str, target: &str, extra: &[(&str, &str)]) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query.append_pair("module", module).append_pair("target", target);
        for (key, value) in extra {
            query.append_pair(key, value);
        }
        let url = format!("http://{}/probe?{}", self.addr, query.finish());
        let response = reqwest::get(&url).await.unwrap_or_else(|err| self.guard.fail(&format!("GET {url}: {err}")));
        let status = response.status();
        let body = response.text().await.unwrap_or_else(|err| self.guard.fail(&format!("body of {url}: {err}")));
        if !status.is_success() {
            self.guard.fail(&format!("GET {url}: {status}: {body}"));
        }
        body
    }

    /// Process diagnostics (log tail).
    pub fn diagnostics(&self) -> String {
        self.guard.diagnostics()
    }
}
