//! The import layering, enforced: each top-level module of `src/` may name
//! only the modules listed for it in [`LAYERS`] (`crate::…` paths, in `use`
//! lines and inline). A new edge is a design decision: add it here, with the
//! reason, and to ARCHITECTURE.md.

use std::path::Path;

/// Module → the `crate::` paths it may name (a module, or `module::item` for
/// a narrower exception). Its own paths are always allowed.
const LAYERS: &[(&str, &[&str])] = &[
    // The composition root builds everything.
    (
        "app",
        &[
            "bridge",
            "checks",
            "config",
            "heartbeat",
            "http",
            "logging",
            "probe",
            "reports",
            "settings",
            "storage",
            "telemetry",
            "web",
        ],
    ),
    // Flags, handed to `app`; `checkit probe`, `checkit send` and `checkit agent` run a part directly.
    ("cli", &["agent", "app", "bridge", "config", "http", "logging", "probe", "settings"]),
    // The remote agent: the checks' slots and wire types, probes, its queue
    // on the storage layer and the clock abstraction.
    ("agent", &["bridge::clock", "checks::agents", "checks::schedule", "config", "probe", "storage"]),
    // Surfaces parse, call one service, map errors; the bridge's own surfaces
    // are composed in by `app`, so `http` does not name the bridge.
    ("http", &["config", "probe", "settings", "telemetry"]),
    // The pipeline: TLS clients from `net`, its tables in the storage layer.
    ("bridge", &["config", "net", "storage"]),
    // The storage layer: SQLite and PostgreSQL under every part that keeps
    // state; it imports nothing above it (TLS to PostgreSQL comes from `net`).
    ("storage", &["config", "net"]),
    // Only the lists of the bridge's and the checks' metric names, to join them with the exporter's.
    (
        "telemetry",
        &["agent::METRIC_NAMES", "bridge::metrics", "checks::metrics::METRIC_NAMES", "heartbeat::METRIC_NAMES"],
    ),
    // The whole config gathers every part's block, so it sits above the parts;
    // only `app`, `cli` and the exporter surface (`/config`, reload) name it.
    ("settings", &["bridge", "checks", "config", "heartbeat", "probe", "storage", "web"]),
    // The leaf every part reads its block with (YAML, paths, secrets, problems).
    ("config", &[]),
    // Scheduled checks run probes and hand transitions to the pipeline.
    ("checks", &["bridge", "config", "probe", "storage"]),
    // Pages show the checks (status pages, check pages, badges), the
    // heartbeats' pings and the pipeline's history; `app` hands the UI these
    // services, never itself.
    ("web", &["bridge", "checks", "config", "heartbeat", "http"]),
    // Reports read the checks' history and their last probe's families, and
    // commit through the pipeline.
    ("reports", &["bridge", "checks", "config", "probe::metrics"]),
    // Heartbeats hand missed or failed runs to the pipeline, and are checks
    // without a prober: their outcomes enter the checks' history.
    ("heartbeat", &["bridge", "checks", "config", "storage"]),
    // Probers import nothing above them.
    ("probe", &["config", "net"]),
    // Shared networking below the probers and the bridge.
    ("net", &["config"]),
    ("logging", &[]),
];

/// Every forbidden `crate::` path in `files` (path relative to `src/`, text),
/// as `file:line: module names crate::path`.
fn violations<'a>(files: impl IntoIterator<Item = (String, &'a str)>) -> Vec<String> {
    let mut found = Vec::new();
    for (path, text) in files {
        let module = path.split(['/', '.']).next().unwrap_or_default();
        if matches!(module, "lib" | "main") {
            continue;
        }
        let Some((_, allowed)) = LAYERS.iter().find(|(name, _)| *name == module) else {
            found.push(format!("{path}: module {module} is not in LAYERS"));
            continue;
        };
        for (index, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for (offset, _) in code.match_indices("crate::") {
                let rest = &code[offset + "crate::".len()..];
                let named: String =
                    rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':').collect();
                let named = named.trim_end_matches(':');
                let top = named.split("::").next().unwrap_or_default();
                let permitted = top == module
                    || allowed.iter().any(|entry| named == *entry || named.starts_with(&format!("{entry}::")));
                // `use crate::{a, b}` lists: check each name in the braces.
                if top.is_empty() && rest.starts_with('{') {
                    let inside = rest[1..].split('}').next().unwrap_or_default();
                    for part in inside.split(',').map(str::trim).filter(|part| !part.is_empty()) {
                        let part_top = part.split("::").next().unwrap_or_default();
                        let ok = part_top == module
                            || allowed.iter().any(|entry| part == *entry || part.starts_with(&format!("{entry}::")));
                        if !ok {
                            found.push(format!("{path}:{}: {module} names crate::{part}", index + 1));
                        }
                    }
                    continue;
                }
                if !permitted {
                    found.push(format!("{path}:{}: {module} names crate::{named}", index + 1));
                }
            }
        }
    }
    found
}

fn source_files(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            source_files(&path, root, out);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            let relative = path.strip_prefix(root).expect("under src").display().to_string();
            out.push((relative, std::fs::read_to_string(&path).expect("read source")));
        }
    }
}

#[test]
fn every_module_imports_only_what_its_layer_allows() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    source_files(&root, &root, &mut files);
    assert!(files.len() > 50, "found only {} source files", files.len());
    let found = violations(files.iter().map(|(path, text)| (path.clone(), text.as_str())));
    assert!(found.is_empty(), "imports across layers (see LAYERS in tests/it/tidy_layers.rs):\n{}", found.join("\n"));
}

#[test]
fn the_checker_catches_a_forbidden_import() {
    let files = [
        ("probe/tcp.rs".to_string(), "use crate::config::types::GoDuration;\nuse crate::bridge::Bridge;\n"),
        ("http/exporter.rs".to_string(), "let x = crate::bridge::submit::Submitter::clone(&y); // crate::app\n"),
        ("bridge/outbox.rs".to_string(), "use crate::net::tls::Client;\nuse crate::probe::http::probe;\n"),
        ("probe/dns.rs".to_string(), "use crate::{config::Problems, telemetry::Telemetry};\n"),
        ("config/mod.rs".to_string(), "use crate::probe::Module;\n"),
        ("newpart/mod.rs".to_string(), "\n"),
    ];
    let found = violations(files.iter().map(|(path, text)| (path.clone(), *text)));
    assert_eq!(
        found,
        [
            "probe/tcp.rs:2: probe names crate::bridge::Bridge",
            "http/exporter.rs:1: http names crate::bridge::submit::Submitter::clone",
            "bridge/outbox.rs:2: bridge names crate::probe::http::probe",
            "probe/dns.rs:1: probe names crate::telemetry::Telemetry",
            "config/mod.rs:1: config names crate::probe::Module",
            "newpart/mod.rs: module newpart is not in LAYERS",
        ]
    );
}

/// Files that may call `tokio::spawn` outside their tests, with the reason.
const SPAWNERS: &[(&str, &str)] = &[
    ("app.rs", "the composition root of `checkit`"),
    ("agent/mod.rs", "the composition root of `checkit agent`, and its schedule loop's per-check tasks"),
    ("probe/http/exchange.rs", "the driver of one probe's HTTP connection, ended with the probe"),
    ("storage/postgres.rs", "the driver of one pooled connection, ended with the connection"),
];

/// Every `tokio::spawn` outside the files of [`SPAWNERS`], test modules left out.
fn spawn_violations<'a>(files: impl IntoIterator<Item = (String, &'a str)>) -> Vec<String> {
    let mut found = Vec::new();
    for (path, text) in files {
        if SPAWNERS.iter().any(|(allowed, _)| *allowed == path) {
            continue;
        }
        let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or_default();
        for (index, line) in code.lines().enumerate() {
            if line.split("//").next().unwrap_or_default().contains("tokio::spawn(") {
                found.push(format!("{path}:{}: spawns a task", index + 1));
            }
        }
    }
    found
}

#[test]
fn only_composition_roots_spawn_long_lived_tasks() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    source_files(&root, &root, &mut files);
    let found = spawn_violations(files.iter().map(|(path, text)| (path.clone(), text.as_str())));
    assert!(
        found.is_empty(),
        "hand long-lived tasks to `app` (take_tasks), or spawn per-item tasks into the part's supervising \
         JoinSet (see SPAWNERS in tests/it/tidy_layers.rs):\n{}",
        found.join("\n")
    );
    let caught = spawn_violations([
        ("checks/mod.rs".to_string(), "fn f() { tokio::spawn(loop_forever()); }\n"),
        (
            "checks/schedule.rs".to_string(),
            "// tokio::spawn( in a comment\n#[cfg(test)]\nmod tests { tokio::spawn(x); }\n",
        ),
    ]);
    assert_eq!(caught, ["checks/mod.rs:1: spawns a task"]);
}
