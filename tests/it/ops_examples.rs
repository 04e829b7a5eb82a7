//! The shipped examples and dashboards, each checked by the tool that reads
//! it: `promtool check config` (which also reads the rule files and target
//! lists it references), `amtool check-config`, `checkit --config.check`; the
//! compose file and Grafana provisioning (no Docker engine or Grafana here)
//! are parsed and cross-checked against each other and the Dockerfile.

use crate::support::grafana::dashboards_in;
use checkit::config::yaml::{Value, parse_value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|err| panic!("read {path}: {err}"))
}

/// Parses a YAML file of the repository, with `<<` merge keys applied.
fn yaml(path: &str) -> Value {
    let mut value = parse_value(&read(path)).unwrap_or_else(|err| panic!("{path}: {err:?}"));
    value.apply_merge().unwrap_or_else(|err| panic!("{path}: merge keys: {err}"));
    value
}

/// Runs a checking tool in the repository root; panics with its output on failure.
/// Runs `checkit --config.check` on `config`: it passes, or (on a machine
/// without the image's `/var/lib/checkit`) its one problem is that directory.
fn check_in_image_layout(checkit: &Path, config: &Path, working_dir: &Path) {
    let output = Command::new(checkit)
        .args(["--config.check", &format!("--config.file={}", config.display())])
        .current_dir(working_dir)
        .output()
        .expect("run checkit");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    if Path::new("/var/lib/checkit").is_dir() {
        assert!(output.status.success() && text.contains("Config file is ok"), "{text}");
    } else {
        assert!(text.contains("1 problem(s)"), "only the image's state directory is missing: {text}");
        assert!(text.contains("storage.sqlite.path: directory \"/var/lib/checkit\" does not exist"), "{text}");
    }
}

fn check(tool: &Path, args: &[&str]) -> String {
    let output = Command::new(tool).args(args).current_dir(repo("")).output().expect("run checker");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{} {args:?} failed:\n{text}", tool.display());
    text
}

fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(value, |value, key| value.get(*key))?.as_str()
}

/// `host` of `http://host:port/...` or `host:port`.
fn host_of(address: &str) -> &str {
    let without_scheme = address.split_once("://").map_or(address, |(_, rest)| rest);
    without_scheme.split(['/', ':']).next().unwrap_or_default()
}

fn compose_services() -> Value {
    yaml("examples/docker-compose.yml").get("services").cloned().expect("compose services")
}

/// Every `source:target` bind mount of a compose service.
fn bind_mounts(service: &Value) -> Vec<(String, String)> {
    service
        .get("volumes")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|volume| volume.starts_with('.'))
        .map(|volume| {
            let mut parts = volume.split(':');
            (parts.next().unwrap_or_default().to_owned(), parts.next().unwrap_or_default().to_owned())
        })
        .collect()
}

#[test]
fn prometheus_example_passes_promtool_with_its_rules_and_target_lists() {
    let promtool = crate::require_binary!("promtool", "prometheus");
    let output = check(&promtool, &["check", "config", "examples/prometheus.yml"]);
    assert!(output.contains("SUCCESS: examples/prometheus.yml is valid"), "{output}");
    // The relative rule glob reaches the shipped rules.
    for rules in ["alerts/probes.rules.yml", "alerts/expiry.rules.yml"] {
        assert!(output.contains(&format!("Checking {rules}")), "{rules} not loaded:\n{output}");
    }
}

#[test]
fn prometheus_example_probes_every_listed_module_through_every_exporter() {
    let config = yaml("examples/prometheus.yml");
    let jobs = config.get("scrape_configs").and_then(Value::as_sequence).expect("scrape_configs");
    let probe_jobs: Vec<&Value> = jobs.iter().filter(|job| str_at(job, &["metrics_path"]) == Some("/probe")).collect();
    assert!(probe_jobs.len() >= 2, "one probe job per exporter location");
    let services = compose_services();
    let mut locations = BTreeSet::new();
    for job in &probe_jobs {
        let relabel = job.get("relabel_configs").and_then(Value::as_sequence).expect("relabel_configs");
        let replacement = |target: &str| {
            relabel
                .iter()
                .find(|rule| str_at(rule, &["target_label"]) == Some(target))
                .and_then(|rule| str_at(rule, &["replacement"]).or_else(|| str_at(rule, &["source_labels"])))
                .map(str::to_owned)
        };
        let targets_param = relabel.iter().any(|rule| {
            str_at(rule, &["target_label"]) == Some("__param_target")
                && rule
                    .get("source_labels")
                    .and_then(Value::as_sequence)
                    .is_some_and(|labels| labels.iter().any(|label| label.as_str() == Some("__address__")))
        });
        assert!(targets_param, "{job:?}: the listed target must become the target parameter");
        assert!(relabel.iter().any(|rule| str_at(rule, &["target_label"]) == Some("__param_module")));
        let exporter = replacement("__address__").expect("exporter address");
        assert!(services.get(host_of(&exporter)).is_some(), "{exporter} is not a compose service");
        assert!(locations.insert(replacement("location").expect("location label")), "locations must differ");
        assert_eq!(replacement("job").as_deref(), Some("probe"), "one job label for every location");
    }
    // Each target file names a module that both exporters' configs define.
    // Module names only: checkit_example_passes_config_check checks the files whole.
    let modules = |path: &str| -> Vec<String> {
        let config = yaml(path);
        let modules = config.get("modules").and_then(Value::as_mapping).expect("modules");
        modules.keys().filter_map(Value::as_str).map(str::to_owned).collect()
    };
    let (home, image_default) = (modules("examples/checkit.yml"), modules("config/docker.yml"));
    let mut files = 0;
    for entry in std::fs::read_dir(repo("examples/targets")).expect("examples/targets") {
        let path = entry.expect("dir entry").path();
        let name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default().to_owned();
        let groups = yaml(&format!("examples/targets/{name}"));
        for group in groups.as_sequence().expect("a list of target groups") {
            let module = str_at(group, &["labels", "module"]).unwrap_or_else(|| panic!("{name}: no module label"));
            assert_eq!(name, format!("{module}.yml"), "one file per module, named after it");
            assert!(home.iter().any(|name| name == module), "{module} missing in examples/checkit.yml");
            assert!(image_default.iter().any(|name| name == module), "{module} missing in config/docker.yml");
            // Offline-safe: the example probes only its own services.
            for target in group.get("targets").and_then(Value::as_sequence).into_iter().flatten() {
                let target = target.as_str().expect("a target string");
                assert!(compose_services().get(host_of(target)).is_some(), "{name}: {target} is not a compose service");
            }
        }
        files += 1;
    }
    assert!(files >= 2, "target lists for several modules");
}

#[test]
fn alertmanager_example_passes_amtool_and_sends_to_the_bridge() {
    let amtool = crate::require_binary!("amtool", "prometheus-alertmanager");
    let output = check(&amtool, &["check-config", "examples/alertmanager.yml"]);
    assert!(output.contains("SUCCESS"), "{output}");
    let config = yaml("examples/alertmanager.yml");
    let receivers = config.get("receivers").and_then(Value::as_sequence).expect("receivers");
    let webhooks: Vec<&Value> = receivers
        .iter()
        .flat_map(|receiver| receiver.get("webhook_configs").and_then(Value::as_sequence).into_iter().flatten())
        .collect();
    assert!(!webhooks.is_empty(), "a webhook receiver");
    for webhook in webhooks {
        let url = str_at(webhook, &["url"]).expect("url");
        assert!(url.ends_with("/webhook"), "{url}: the bridge's intake path");
        assert!(compose_services().get(host_of(url)).is_some(), "{url}: not a compose service");
        assert_eq!(webhook.get("send_resolved").and_then(Value::as_bool), Some(true));
        assert_eq!(webhook.get("max_alerts").and_then(Value::as_u64), Some(0));
        assert_eq!(str_at(webhook, &["http_config", "authorization", "type"]), Some("Bearer"));
        // amtool does not open credential files; Alertmanager resolves them
        // relative to its config file.
        let token = str_at(webhook, &["http_config", "authorization", "credentials_file"]).expect("credentials_file");
        assert!(repo("examples").join(token).is_file(), "examples/{token} is missing");
    }
    // The bridge's own alerts reach a person without the bridge: a route
    // for them to a receiver that emails through a compose service.
    let routes = config.get("route").and_then(|route| route.get("routes")).and_then(Value::as_sequence);
    let bridge_route = routes
        .into_iter()
        .flatten()
        .find(|route| format!("{:?}", route.get("matchers")).contains("Bridge"))
        .expect("a route for the bridge's alerts");
    let receiver_name = str_at(bridge_route, &["receiver"]).expect("receiver");
    let receiver =
        receivers.iter().find(|receiver| str_at(receiver, &["name"]) == Some(receiver_name)).expect("receiver");
    assert!(receiver.get("webhook_configs").is_none(), "{receiver_name}: must not go through the bridge");
    let emails = receiver.get("email_configs").and_then(Value::as_sequence).expect("email_configs");
    for email in emails {
        let smarthost = str_at(email, &["smarthost"]).expect("smarthost");
        assert!(compose_services().get(host_of(smarthost)).is_some(), "{smarthost}: not a compose service");
    }
}

#[test]
fn checkit_example_passes_config_check() {
    let checkit = Path::new(env!("CARGO_BIN_EXE_checkit"));
    // Secret files are relative to the config's directory, so the check
    // passes from any working directory (here a fresh, writable one: the
    // SQLite store defaults to it).
    let elsewhere = tempfile::tempdir().expect("temp dir");
    check_in_image_layout(checkit, &repo("examples/checkit.yml"), elsewhere.path());
    // The store is in the state volume docker-compose.yml mounts.
    let compose = compose_services();
    assert!(
        compose["checkit"]["volumes"].as_sequence().is_some_and(|volumes| volumes
            .iter()
            .any(|volume| volume.as_str().is_some_and(|volume| volume.ends_with(":/var/lib/checkit")))),
        "the state volume is /var/lib/checkit"
    );
    assert!(yaml("examples/checkit.yml").get("bridge").is_some(), "the example runs the bridge");
    check_in_image_layout(checkit, &repo("config/docker.yml"), &repo(""));
}

#[test]
fn compose_file_wires_the_examples_together() {
    let services = compose_services();
    for name in ["checkit", "checkit-remote", "prometheus", "alertmanager", "grafana"] {
        assert!(services.get(name).is_some(), "compose service {name} missing");
    }
    // Every bind-mounted file or directory exists (paths are relative to examples/).
    let mut mounts = Vec::new();
    for (name, service) in services.as_mapping().expect("services mapping") {
        for (source, target) in bind_mounts(service) {
            assert!(repo("examples").join(&source).exists(), "{name:?}: {source} does not exist");
            mounts.push((name.as_str().unwrap_or_default().to_owned(), source, target));
        }
    }
    let mounted = |service: &str, source: &str| {
        mounts.iter().find(|(name, from, _)| name == service && from == source).map(|(_, _, to)| to.clone())
    };
    // Prometheus finds its rules and target lists where prometheus.yml's
    // relative paths point.
    assert_eq!(mounted("prometheus", "./prometheus.yml").as_deref(), Some("/etc/prometheus/prometheus.yml"));
    assert_eq!(mounted("prometheus", "./targets").as_deref(), Some("/etc/prometheus/targets"));
    assert_eq!(mounted("prometheus", "../alerts").as_deref(), Some("/etc/alerts"));
    // Alertmanager's credentials_file is relative to its config file.
    assert_eq!(mounted("alertmanager", "./alertmanager.yml").as_deref(), Some("/etc/alertmanager/alertmanager.yml"));
    assert_eq!(mounted("alertmanager", "./secrets").as_deref(), Some("/etc/alertmanager/secrets"));
    // checkit reads the example at the image's default config path.
    let dockerfile = read("Dockerfile");
    let default_config = "/etc/checkit/checkit.yml";
    assert!(dockerfile.contains(&format!("COPY config/docker.yml {default_config}")), "{dockerfile}");
    assert_eq!(mounted("checkit", "./checkit.yml").as_deref(), Some(default_config));
    // Grafana provisions the dashboards from where they are mounted.
    let provider = yaml("examples/grafana/provisioning/dashboards/checkit.yml");
    let dashboards_path = provider
        .get("providers")
        .and_then(Value::as_sequence)
        .and_then(|providers| providers.first())
        .and_then(|provider| str_at(provider, &["options", "path"]))
        .expect("dashboard provider path");
    assert_eq!(mounted("grafana", "../dashboards").as_deref(), Some(dashboards_path));
    assert_eq!(mounted("grafana", "./grafana/provisioning").as_deref(), Some("/etc/grafana/provisioning"));
    let datasources = yaml("examples/grafana/provisioning/datasources/prometheus.yml");
    let datasource = datasources.get("datasources").and_then(Value::as_sequence).and_then(|list| list.first());
    let datasource = datasource.expect("a data source");
    assert_eq!(str_at(datasource, &["type"]), Some("prometheus"));
    assert!(services.get(host_of(str_at(datasource, &["url"]).expect("url"))).is_some());
    // The image exposes the port the compose file publishes.
    let ports = services.get("checkit").and_then(|service| service.get("ports")).and_then(Value::as_sequence);
    let published: Vec<&str> = ports.into_iter().flatten().filter_map(Value::as_str).collect();
    assert_eq!(published, ["9115:9115"]);
    assert!(dockerfile.lines().any(|line| line.trim() == "EXPOSE 9115"), "{dockerfile}");
}

#[test]
fn dockerfile_builds_small_non_root_image_with_healthcheck() {
    let dockerfile = read("Dockerfile");
    let stages = dockerfile.lines().filter(|line| line.starts_with("FROM ")).count();
    assert!(stages >= 2, "multi-stage build");
    assert!(dockerfile.contains("--from=build"), "runtime copies the binary from the build stage");
    let user = dockerfile.lines().rev().find_map(|line| line.strip_prefix("USER ")).expect("USER");
    assert!(!["root", "0"].contains(&user.trim()), "runtime user {user}");
    assert!(dockerfile.lines().any(|line| line.starts_with("HEALTHCHECK ")), "HEALTHCHECK");
    assert!(dockerfile.contains("/-/healthy"), "health check hits /-/healthy");
    // Every path the build stage copies exists and is in the build context.
    let ignored: Vec<String> = read(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
        .collect();
    for line in dockerfile.lines().filter(|line| line.starts_with("COPY ") && !line.contains("--from")) {
        let parts: Vec<&str> = line.split_whitespace().collect();
        for source in &parts[1..parts.len() - 1] {
            assert!(repo(source).exists(), "Dockerfile copies {source}, which does not exist");
            let top = source.trim_start_matches("./").split('/').next().unwrap_or_default();
            assert!(!ignored.iter().any(|pattern| pattern == top), "{source} is excluded by .dockerignore");
        }
    }
}

/// Dashboards pick their Prometheus through a `datasource` variable, so they
/// work with whatever the data source is called where they are imported.
#[test]
fn checkit_dashboards_use_the_datasource_variable_everywhere() {
    let dashboards = dashboards_in(&repo("dashboards"));
    assert!(dashboards.len() >= 2);
    let mut uids = BTreeSet::new();
    for dashboard in &dashboards {
        let name = dashboard.name();
        assert!(uids.insert(dashboard.json["uid"].as_str().expect("uid").to_owned()), "{name}: duplicate uid");
        let variables = dashboard.variables();
        let datasource = variables.iter().find(|variable| variable.kind == "datasource").expect("datasource variable");
        assert_eq!((datasource.name.as_str(), datasource.query.as_str()), ("datasource", "prometheus"), "{name}");
        let is_variable = |value: &serde_json::Value| {
            matches!(value["uid"].as_str(), Some("${datasource}" | "$datasource"))
                && value["type"].as_str() == Some("prometheus")
        };
        for variable in dashboard.json["templating"]["list"].as_array().expect("templating") {
            if variable["type"] == "query" {
                assert!(is_variable(&variable["datasource"]), "{name}: variable {}", variable["name"]);
            }
        }
        let mut panels = 0;
        for panel in dashboard.panels().into_iter().filter(|panel| panel["type"] != "row") {
            let title = panel["title"].as_str().unwrap_or_default();
            assert!(is_variable(&panel["datasource"]), "{name}: panel {title:?} datasource {}", panel["datasource"]);
            let targets = panel["targets"].as_array().expect("targets");
            assert!(!targets.is_empty(), "{name}: panel {title:?} has no query");
            for target in targets {
                assert!(is_variable(&target["datasource"]), "{name}: panel {title:?} target {}", target["refId"]);
            }
            panels += 1;
        }
        assert!(panels >= 8, "{name}: {panels} panels");
    }
}
