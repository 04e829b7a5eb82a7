//! The whole loop on real software, with the shipped configs: a real
//! Prometheus (examples/prometheus.yml's relabeling, two exporter
//! locations) scrapes checkit probing nginx and evaluates the shipped
//! alerts/probes.rules.yml (only `for:` shortened); a real Alertmanager
//! (examples/alertmanager.yml: bearer auth, send_resolved) notifies checkit's
//! bridge, whose email channel delivers to aiosmtpd. nginx stops: a firing
//! email arrives; nginx comes back: the resolved email says how long it fired.

use crate::support::app::start_app;
use crate::support::ops::{PrometheusExample, alertmanager_example, write_target_lists};
use crate::support::peers::{Alertmanager, Nginx, NginxOpts, Prometheus, SmtpOpts, SmtpServer};
use std::path::Path;
use std::time::{Duration, Instant};

/// Generous bounds for each step; the loop normally takes seconds.
const STEP: Duration = Duration::from_secs(60);

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_scrape_alert_route_deliver_and_resolve() {
    let smtp = crate::peer!(SmtpServer::start(SmtpOpts::default()).await);
    let mut nginx = crate::peer!(Nginx::start(NginxOpts::default()).await);
    let dir = tempfile::tempdir().expect("temp dir");
    let token_file = dir.path().join("webhook-token");
    std::fs::write(&token_file, "full-loop-token\n").expect("write token");

    let app = start_app(&format!(
        r#"
modules:
  http_2xx:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
bridge:
  auth:
    bearer:
      token_file: {token}
  store:
    sqlite:
      path: {store}
  contacts:
    alice:
      email: "Alice <alice@example.com>"
  routes:
    - contacts: [alice]
  channels:
    email:
      smarthost: localhost
      port: {smtp_port}
      from: "checkit <alerts@checkit.test>"
      ca_file: {smtp_ca}
"#,
        token = token_file.display(),
        store = dir.path().join("bridge.db").display(),
        smtp_port = smtp.addr.port(),
        smtp_ca = smtp.certs.ca.cert_path.display(),
    ))
    .await;

    let alertmanager = crate::peer!(Alertmanager::start(&alertmanager_example(app.addr, &token_file)).await);

    // The shipped probe rules, with minutes of `for:` turned into seconds.
    let rules_dir = dir.path().join("rules");
    std::fs::create_dir(&rules_dir).expect("rules dir");
    let shipped = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("alerts/probes.rules.yml"))
        .expect("read probes.rules.yml");
    assert!(shipped.contains("for: 2m"), "the failure rules wait 2 minutes");
    std::fs::write(rules_dir.join("probes.rules.yml"), shipped.replace("for: 2m", "for: 2s")).expect("write rules");
    let targets_dir = dir.path().join("targets");
    std::fs::create_dir(&targets_dir).expect("targets dir");
    let site = nginx.url("/");
    write_target_lists(&targets_dir, &[("http_2xx", vec![site.clone()])]);
    let prometheus_yml = PrometheusExample {
        exporter: app.addr,
        targets_dir: &targets_dir,
        rules_glob: &format!("{}/*.rules.yml", rules_dir.display()),
        alertmanager: alertmanager.addr,
        interval: "1s",
        extra_probe_labels: &[],
    }
    .render();
    let prometheus = crate::peer!(Prometheus::start(&prometheus_yml, &[]).await);

    // Both locations see the site up before it goes down.
    prometheus.wait_until("count(probe_success == 1) == 2", STEP).await;
    assert!(smtp.messages().is_empty(), "no email while everything is up");

    nginx.stop();
    let stopped_at = Instant::now();
    let mails = smtp.wait_for_messages(1, STEP).await;
    let firing = &mails[0];
    assert_eq!(firing.rcpt_tos, ["alice@example.com"]);
    assert!(firing.tls, "the email channel used STARTTLS");
    // Both exporter locations see it down: the multi-location rule pages.
    assert!(firing.data.contains("[FIRING:1]"), "{}", firing.data);
    assert!(firing.data.contains("ProbeFailedFromSeveralLocations"), "{}", firing.data);
    assert!(firing.data.contains(&site), "names the target: {}", firing.data);

    nginx.restart().await;
    let outage = stopped_at.elapsed();
    let mails = smtp.wait_for_messages(2, STEP).await;
    let resolved = &mails[1];
    assert_eq!(mails.len(), 2, "one firing and one resolved email");
    assert!(resolved.data.contains("[RESOLVED]"), "{}", resolved.data);
    assert!(resolved.data.contains(&site), "{}", resolved.data);
    // "… (resolved, was firing for 7s)": from when the rule fired (after
    // its `for:`) to when it resolved, so at most the outage plus a few
    // evaluation intervals.
    let told = resolved
        .data
        .split("was firing for ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("the resolved email tells how long it fired: {}", resolved.data));
    let fired = seconds(told).unwrap_or_else(|| panic!("unreadable duration {told:?}"));
    assert!(fired >= 1 && fired <= outage.as_secs() + 10, "fired for {fired}s, outage {outage:?}");

    // Alertmanager authenticated with the bearer token; nothing was refused.
    let (_, metrics) = app.get("/metrics").await;
    assert!(metrics.contains("checkit_bridge_webhooks_rejected_total{reason=\"unauthorized\"} 0"), "{metrics}");
    drop(prometheus);
}

#[test]
fn durations_are_read_as_the_bridge_writes_them() {
    assert_eq!(seconds("45s"), Some(45));
    assert_eq!(seconds("3m"), Some(180));
    assert_eq!(seconds("1m 5s"), Some(65));
    assert_eq!(seconds("2h 1m"), Some(7260));
    assert_eq!(seconds("soon"), None);
}
