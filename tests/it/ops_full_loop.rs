//! The README's path without Docker, run as shipped: `examples/local/` is
//! copied to a temp dir with only its ports changed (the shipped
//! `alerts/*.rules.yml` beside it, `for: 2m` shortened to 2s), and
//! `examples/local/run.sh` starts two checkit exporters, a real Prometheus, a
//! real Alertmanager and the aiosmtpd mail catcher. Then the README's steps:
//! add a closed port to `targets/tcp_connect.yml`, the firing email arrives
//! in `state/mail.log`; remove it, the resolved email follows.

use crate::support::process::ChildGuard;
use crate::support::{free_ports, loopback, require_binary};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Generous bounds for each step: the firing email takes `for:` + a scrape
/// and an evaluation (5s each) + `group_wait` (10s); the resolved one up to
/// `group_interval` (30s) more.
const STEP: Duration = Duration::from_secs(120);

/// The loopback ports examples/local/ uses, which the test replaces.
const SHIPPED_PORTS: [u16; 5] = [9115, 9116, 19090, 19093, 1025];

/// Reads a duration as the bridge writes it (`45s`, `3m`, `1m 5s`, `2h 1m`) in seconds.
fn seconds(text: &str) -> Option<u64> {
    text.split_whitespace().try_fold(0, |total, part| {
        let (number, unit) = part.split_at(part.find(|c: char| !c.is_ascii_digit())?);
        let factor = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86400,
            _ => return None,
        };
        Some(total + number.parse::<u64>().ok()? * factor)
    })
}

/// Replaces every `127.0.0.1:<port>` by its entry in `ports`, in one pass (a
/// new port may start with the digits of an old one); an unknown port panics.
fn substitute_ports(text: &str, ports: &BTreeMap<u16, u16>) -> String {
    const HOST: &str = "127.0.0.1:";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(HOST) {
        out.push_str(&rest[..at + HOST.len()]);
        rest = &rest[at + HOST.len()..];
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits > 0 {
            let port: u16 = rest[..digits].parse().expect("port");
            let new = ports.get(&port).unwrap_or_else(|| panic!("examples/local uses an unexpected port {port}"));
            out.push_str(&new.to_string());
            rest = &rest[digits..];
        }
    }
    out.push_str(rest);
    out
}

/// Files of examples/local/ as shipped: `state/` holds what run.sh wrote
/// on this machine, and only its `.gitignore` is part of the example.
fn shipped(path: &Path) -> bool {
    let in_state = path.parent().and_then(Path::file_name).is_some_and(|name| name == "state");
    !in_state || path.file_name().is_some_and(|name| name == ".gitignore")
}

/// Copies `from` into `to` (recursively), substituting ports in every file.
fn copy_with_ports(from: &Path, to: &Path, ports: &BTreeMap<u16, u16>) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read examples/local") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if !shipped(&entry.path()) {
            continue;
        }
        if entry.file_type().expect("file type").is_dir() {
            copy_with_ports(&entry.path(), &target, ports);
        } else {
            let text = std::fs::read_to_string(entry.path()).expect("read example file");
            std::fs::write(&target, substitute_ports(&text, ports)).expect("write example file");
            std::fs::set_permissions(&target, entry.metadata().expect("metadata").permissions()).expect("chmod");
        }
    }
}

/// Every message aiosmtpd printed, headers unfolded.
fn emails(mail_log: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(mail_log).unwrap_or_default();
    text.split("---------- MESSAGE FOLLOWS ----------")
        .skip(1)
        .filter(|message| message.contains("------------ END MESSAGE ------------"))
        // Unfold headers and undo quoted-printable soft line breaks.
        .map(|message| message.replace("\n ", " ").replace("=\n", ""))
        .collect()
}

fn subject(email: &str) -> &str {
    email.lines().find_map(|line| line.strip_prefix("Subject: ")).unwrap_or("")
}

async fn wait_for_emails(run: &mut ChildGuard, mail_log: &Path, count: usize) -> Vec<String> {
    run.wait_until(STEP, &format!("{count} email(s) in {}", mail_log.display()), || async {
        emails(mail_log).len() >= count
    })
    .await;
    emails(mail_log)
}

/// Whether Prometheus' instant query `query` returns a sample.
async fn holds(client: &reqwest::Client, prometheus: &str, query: &str) -> bool {
    let Ok(response) = client.get(format!("{prometheus}/api/v1/query")).query(&[("query", query)]).send().await else {
        return false;
    };
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    body["data"]["result"].as_array().is_some_and(|result| !result.is_empty())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_local_stack_emails_an_alert_and_its_resolution() {
    let Some(prometheus_binary) = require_binary("prometheus", "prometheus") else { return };
    let Some(alertmanager_binary) = require_binary("prometheus-alertmanager", "prometheus-alertmanager") else {
        return;
    };
    let Some(python) = require_binary("/usr/bin/python3", "python3-aiosmtpd") else { return };
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().expect("temp dir");
    let fresh = free_ports(SHIPPED_PORTS.len() + 1);
    let ports: BTreeMap<u16, u16> = SHIPPED_PORTS.iter().copied().zip(fresh.iter().copied()).collect();
    let closed_port = fresh[SHIPPED_PORTS.len()];
    let local = dir.path().join("examples/local");
    copy_with_ports(&repo.join("examples/local"), &local, &ports);
    // The shipped rules where prometheus.yml's `../../alerts/` finds them.
    let alerts = dir.path().join("alerts");
    std::fs::create_dir(&alerts).expect("alerts dir");
    for entry in std::fs::read_dir(repo.join("alerts")).expect("alerts/") {
        let path = entry.expect("entry").path();
        if path.to_string_lossy().ends_with(".rules.yml") {
            let rules = std::fs::read_to_string(&path).expect("read rules").replace("for: 2m", "for: 2s");
            std::fs::write(alerts.join(path.file_name().expect("name")), rules).expect("write rules");
        }
    }
    let state = local.join("state");
    let mut script = Command::new("bash");
    script
        .arg(local.join("run.sh"))
        .env("CHECKIT", env!("CARGO_BIN_EXE_checkit"))
        .env("PROMETHEUS", &prometheus_binary)
        .env("ALERTMANAGER", &alertmanager_binary)
        .env("PYTHON", &python);
    let mut run = ChildGuard::spawn("examples/local/run.sh", script, &dir.path().join("run.log"));
    for name in ["checkit", "checkit-remote", "prometheus", "alertmanager", "mail"] {
        run = run.with_log(state.join(format!("{name}.log")));
    }

    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).no_proxy().build().expect("client");
    let checkit = format!("http://{}", loopback(ports[&9115]));
    let prometheus = format!("http://{}", loopback(ports[&19090]));
    // Every shipped target is up from both locations, and nobody is emailed.
    let listed: usize = ["http_2xx", "tcp_connect", "icmp"]
        .iter()
        .map(|module| {
            let list = std::fs::read_to_string(local.join(format!("targets/{module}.yml"))).expect("target list");
            list.lines().filter(|line| line.trim_start().starts_with("- ") && !line.contains("labels")).count()
        })
        .sum();
    let all_up = format!("count(probe_success == 1) == {}", 2 * listed);
    run.wait_until(STEP, "every example target up from both exporters", || holds(&client, &prometheus, &all_up)).await;
    let mail_log = state.join("mail.log");
    assert!(emails(&mail_log).is_empty(), "no email while everything is up");

    // README: "Add a site that is down, for example a closed port".
    let tcp_connect = local.join("targets/tcp_connect.yml");
    let shipped_list = std::fs::read_to_string(&tcp_connect).expect("tcp_connect.yml");
    let down = format!("127.0.0.1:{closed_port}");
    std::fs::write(&tcp_connect, format!("{shipped_list}    - {down}        # nothing listens here: refused\n"))
        .expect("add the closed port");
    let mails = wait_for_emails(&mut run, &mail_log, 1).await;
    let firing = &mails[0];
    assert_eq!(
        subject(firing),
        format!("[FIRING:1] ProbeFailedFromSeveralLocations {down} (probe tcp_connect critical)"),
        "{firing}"
    );
    assert!(firing.contains("To: Alice <alice@example.com>"), "{firing}");
    // Links point where --web.external-url says, not at the host name.
    let alertmanager = format!("http://{}", loopback(ports[&19093]));
    assert!(firing.contains(&format!("Alertmanager: {alertmanager}")), "{firing}");

    // The bridge said so at info level, naming contact, channel and alert.
    let bridge_log = std::fs::read_to_string(state.join("checkit.log")).expect("checkit.log");
    assert!(bridge_log.contains(&format!("store={}", state.join("checkit.db").display())), "{bridge_log}");
    for line in [
        "msg=\"Accepted a notification.\"",
        "alerts=ProbeFailedFromSeveralLocations to=alice/email",
        "msg=\"Delivered a message.\" contact=alice channel=email alerts=ProbeFailedFromSeveralLocations",
    ] {
        assert!(bridge_log.contains(line), "{line:?} not in the bridge's log:\n{bridge_log}");
    }
    // The history needs the token; asking without it does not count as a
    // refused webhook (which would page through BridgeWebhooksRejected).
    let deliveries = client.get(format!("{checkit}/api/v1/deliveries")).send().await.expect("deliveries");
    assert_eq!(deliveries.status(), 401);
    let token = std::fs::read_to_string(local.join("secrets/webhook-token")).expect("token");
    let deliveries: serde_json::Value = client
        .get(format!("{checkit}/api/v1/deliveries?status=sent"))
        .bearer_auth(token.trim())
        .send()
        .await
        .expect("deliveries")
        .json()
        .await
        .expect("history JSON");
    assert_eq!(deliveries["total"], 1, "{deliveries}");

    // README: "Remove the line again and a [RESOLVED] email follows".
    std::fs::write(&tcp_connect, &shipped_list).expect("remove the closed port");
    let mails = wait_for_emails(&mut run, &mail_log, 2).await;
    let resolved = &mails[1];
    assert_eq!(
        subject(resolved),
        format!("[RESOLVED] ProbeFailedFromSeveralLocations {down} (probe tcp_connect critical)"),
        "{resolved}"
    );
    let told = resolved
        .split("was firing for ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("the resolved email tells how long it fired: {resolved}"));
    let fired = seconds(told).unwrap_or_else(|| panic!("unreadable duration {told:?}"));
    assert!((1..=STEP.as_secs()).contains(&fired), "fired for {fired}s");

    let metrics = client.get(format!("{checkit}/metrics")).send().await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains("checkit_bridge_webhooks_rejected_total{reason=\"unauthorized\"} 0"), "{metrics}");
    assert_eq!(emails(&mail_log).len(), 2, "one firing and one resolved email, nothing else");
}

#[test]
fn ports_are_substituted_in_one_pass() {
    let ports = BTreeMap::from([(9115, 10250), (1025, 3333)]);
    assert_eq!(
        substitute_ports("a 127.0.0.1:9115 b http://127.0.0.1:1025/x 127.0.0.1:", &ports),
        "a 127.0.0.1:10250 b http://127.0.0.1:3333/x 127.0.0.1:"
    );
}

#[test]
fn durations_are_read_as_the_bridge_writes_them() {
    assert_eq!(seconds("45s"), Some(45));
    assert_eq!(seconds("3m"), Some(180));
    assert_eq!(seconds("1m 5s"), Some(65));
    assert_eq!(seconds("2h 1m"), Some(7260));
    assert_eq!(seconds("soon"), None);
}

/// The shipped example is what the test runs: no file of examples/local/
/// names a port outside [`SHIPPED_PORTS`], so substitution covers them all.
#[test]
fn the_local_example_uses_only_the_substituted_ports() {
    let ports: BTreeMap<u16, u16> = SHIPPED_PORTS.iter().map(|&port| (port, port)).collect();
    let mut stack: Vec<PathBuf> = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/local")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let path = entry.expect("entry").path();
            if !shipped(&path) {
                continue;
            } else if path.is_dir() {
                stack.push(path);
            } else if let Ok(text) = std::fs::read_to_string(&path) {
                assert_eq!(substitute_ports(&text, &ports), text, "{}", path.display());
            }
        }
    }
}
