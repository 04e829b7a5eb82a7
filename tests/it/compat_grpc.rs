//! Differential test: the `grpc` prober's families, HELP lines and samples
//! against Debian's blackbox_exporter 0.23 probing the same servers.

use crate::peer;
use crate::probe_grpc::grpc_server;
use crate::support::peers::{Nginx, NginxOpts};
use crate::support::{ChildGuard, free_port, loopback, require_binary, shared_temp_dir, write_file};
use std::collections::BTreeMap;
use std::time::Duration;

const MODULE: &str = "    prober: grpc\n    timeout: 5s\n    grpc:\n      preferred_ip_protocol: ip4\n";

struct Blackbox {
    addr: std::net::SocketAddr,
    _guard: ChildGuard,
    _dir: tempfile::TempDir,
}

async fn start_blackbox() -> Option<Blackbox> {
    let binary = require_binary("prometheus-blackbox-exporter", "prometheus-blackbox-exporter")?;
    let dir = shared_temp_dir("blackbox");
    let config = dir.path().join("blackbox.yml");
    write_file(&config, format!("modules:\n  grpc:\n{MODULE}"), 0o644);
    let addr = loopback(free_port());
    let mut command = std::process::Command::new(binary);
    command.arg(format!("--config.file={}", config.display())).arg(format!("--web.listen-address={addr}"));
    let mut guard = ChildGuard::spawn("blackbox_exporter", command, &dir.path().join("blackbox.out"));
    guard.wait_for_port(addr, Duration::from_secs(30)).await;
    Some(Blackbox { addr, _guard: guard, _dir: dir })
}

/// Families by name: the HELP line and the sample lines (durations and other
/// timing-dependent values are replaced by their family name).
fn families(text: &str) -> BTreeMap<String, (String, Vec<String>)> {
    let mut families: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP line");
            families.entry(name.to_string()).or_default().0 = help.to_string();
        } else if !line.starts_with('#') && !line.is_empty() {
            let name = line.split(['{', ' ']).next().expect("sample name").to_string();
            let sample = if name.contains("duration") || name.contains("lookup_time") {
                line.rsplit_once(' ').expect("sample value").0.to_string()
            } else {
                line.to_string()
            };
            families.entry(name).or_default().1.push(sample);
        }
    }
    families
}

async fn compare(blackbox: &Blackbox, target: &str) {
    let url = format!("http://{}/probe?module=grpc&target={target}", blackbox.addr);
    let theirs = reqwest::get(&url).await.expect("blackbox /probe").text().await.expect("blackbox body");
    let config = checkit::settings::Config::parse(&format!("modules:\n  grpc:\n{MODULE}")).expect("config");
    let outcome =
        crate::support::module::run_with(&config, &config.modules["grpc"], target, None, Duration::from_secs(5)).await;
    let ours = outcome.registry.encode();

    let mut theirs = families(&theirs);
    let mut ours = families(&ours);
    // 0.23 emits `probe_ssl_earliest_cert_expiry 0` without TLS; 0.26 fixed
    // that (#1338) and checkit follows. checkit adds `probe_failure_info`.
    theirs.remove("probe_ssl_earliest_cert_expiry");
    ours.remove("probe_failure_info");
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>(),
        "family sets differ for {target}\nours:\n{ours:#?}\ntheirs:\n{theirs:#?}"
    );
    for (name, (help, samples)) in &theirs {
        assert_eq!(&ours[name].0, help, "HELP of {name}");
        if name != "probe_ip_addr_hash" {
            assert_eq!(&ours[name].1, samples, "samples of {name}");
        }
    }
}

#[tokio::test]
async fn grpc_families_match_blackbox_0_23() {
    let blackbox = peer!(start_blackbox().await);
    let server = grpc_server(None).await;
    compare(&blackbox, &server.addr.to_string()).await;

    let nginx = peer!(Nginx::start(NginxOpts::default()).await);
    compare(&blackbox, &nginx.addr.to_string()).await;
}
