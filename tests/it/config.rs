//! Config loading: every invalid fixture fails with its message and path, and
//! every shipped config parses.

use checkit::config::{Config, Error};
use std::path::Path;

fn problems_of(path: &Path) -> Vec<String> {
    match Config::load(path) {
        Ok(_) => panic!("{} should not load", path.display()),
        Err(Error::Invalid(problems)) => problems.iter().map(ToString::to_string).collect(),
        Err(other) => panic!("{}: unexpected error {other}", path.display()),
    }
}

/// Fixture file → substrings every one of which must appear in some problem.
const INVALID: &[(&str, &[&str])] = &[
    ("invalid-unknown-top-level-key.yml", &["unknown field `modulez`"]),
    ("invalid-unknown-prober.yml", &["modules.m.prober: prober 'smtpx' is not valid"]),
    ("invalid-missing-prober.yml", &["modules.m.prober: prober must be set"]),
    ("invalid-timeout-days.yml", &["modules.m.timeout", "unknown unit \"d\""]),
    ("invalid-module-unknown-key.yml", &["modules.m", "unknown field `tpc`"]),
    ("invalid-allowlist-entry.yml", &["exporter.targets.allow[0]: \"10.0.0.0/33\" is neither a CIDR"]),
    ("invalid-max-concurrent.yml", &["exporter.max_concurrent_probes: must be at least 1"]),
    (
        "invalid-several-problems.yml",
        &["modules.a.prober: prober 'nope' is not valid", "modules.b.timeout", "exporter.targets.deny[0]"],
    ),
    ("invalid-yaml-syntax.yml", &["line 3"]),
];

#[test]
fn every_invalid_fixture_reports_its_problems() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config");
    let mut listed: Vec<&str> = INVALID.iter().map(|(file, _)| *file).collect();
    listed.sort_unstable();
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .expect("fixture dir")
        .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("invalid-"))
        .collect();
    on_disk.sort_unstable();
    assert_eq!(listed, on_disk, "every fixture is in the table and vice versa");
    for (file, expected) in INVALID {
        let problems = problems_of(&dir.join(file));
        for needle in *expected {
            assert!(
                problems.iter().any(|problem| problem.contains(needle)),
                "{file}: no problem contains {needle:?}; got {problems:#?}"
            );
        }
    }
}

#[test]
fn several_problems_are_all_reported() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config");
    let problems = problems_of(&dir.join("invalid-several-problems.yml"));
    assert_eq!(problems.len(), 3, "{problems:#?}");
}

#[test]
fn every_shipped_config_parses() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut checked = 0;
    for entry in std::fs::read_dir(&root).expect("config dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|ext| ext == "yml" || ext == "yaml") {
            Config::load(&path).unwrap_or_else(|err| panic!("{} does not load: {err}", path.display()));
            checked += 1;
        }
    }
    assert!(checked >= 1, "config/ holds at least the default config");
    Config::parse(checkit::config::DEFAULT_CONFIG).expect("embedded default parses");
}

#[test]
fn config_check_flag_prints_every_problem_and_fails() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_checkit"))
        .arg(format!("--config.file={}", dir.join("invalid-several-problems.yml").display()))
        .arg("--config.check")
        .output()
        .expect("run checkit");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("3 problem(s)"), "{stderr}");
    assert!(stderr.contains("modules.b.timeout"), "{stderr}");
    let ok = std::process::Command::new(env!("CARGO_BIN_EXE_checkit"))
        .arg(format!("--config.file={}", Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.yml").display()))
        .arg("--config.check")
        .output()
        .expect("run checkit");
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
}
