//! The shipped alert rules (`alerts/`): every rule file passes
//! `promtool check rules` and has a `promtool test rules` unit test file that
//! passes, and every rule is exercised by some test.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository's `alerts/` directory.
fn alerts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("alerts")
}

/// Files in `alerts/` whose name ends with `suffix`, sorted.
fn alert_files(suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(alerts_dir())
        .expect("read alerts/")
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| path.file_name().and_then(|name| name.to_str()).is_some_and(|name| name.ends_with(suffix)))
        .collect();
    files.sort();
    files
}

/// Runs `promtool` with `args` in `alerts/`; panics with its output on failure.
fn promtool(promtool: &Path, args: &[&str]) -> String {
    let output = Command::new(promtool).args(args).current_dir(alerts_dir()).output().expect("run promtool");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

fn file_name(path: &Path) -> String {
    path.file_name().and_then(|name| name.to_str()).expect("utf-8 file name").to_owned()
}

#[test]
fn rule_files_pass_promtool_check_rules() {
    let promtool_path = crate::require_binary!("promtool", "prometheus");
    let rule_files = alert_files(".rules.yml");
    assert!(rule_files.len() >= 3, "expected the probe, expiry and bridge rule files: {rule_files:?}");
    let names: Vec<String> = rule_files.iter().map(|path| file_name(path)).collect();
    let mut args = vec!["check", "rules"];
    args.extend(names.iter().map(String::as_str));
    let output = promtool(&promtool_path, &args);
    for name in &names {
        assert!(output.contains(&format!("Checking {name}")), "{output}");
    }
    assert!(!output.contains("FAILED"), "{output}");
}

#[test]
fn every_rule_file_has_passing_promtool_unit_tests() {
    let promtool_path = crate::require_binary!("promtool", "prometheus");
    for rule_file in alert_files(".rules.yml") {
        let name = file_name(&rule_file);
        let test_name = name.replace(".rules.yml", ".test.yml");
        assert!(alerts_dir().join(&test_name).is_file(), "{name} has no unit tests in alerts/{test_name}");
        let output = promtool(&promtool_path, &["test", "rules", &test_name]);
        assert!(output.contains("SUCCESS"), "{output}");
    }
}

/// A rule nobody tests is a rule nobody knows works: every alert name in a
/// rule file appears as an `alertname:` of its test file.
#[test]
fn every_alert_is_unit_tested() {
    for rule_file in alert_files(".rules.yml") {
        let rules = std::fs::read_to_string(&rule_file).expect("read rule file");
        let test_file = rule_file.with_file_name(file_name(&rule_file).replace(".rules.yml", ".test.yml"));
        let tests = std::fs::read_to_string(&test_file).unwrap_or_default();
        let alert_names: BTreeSet<&str> =
            rules.lines().filter_map(|line| line.trim().strip_prefix("- alert: ")).map(str::trim).collect();
        assert!(!alert_names.is_empty(), "{} defines no alerts", rule_file.display());
        // An alert counts as tested only where the test expects it to fire.
        let tested: BTreeSet<&str> = tests
            .split("alertname: ")
            .skip(1)
            .filter(|block| block.lines().take(2).any(|line| line.trim() == "exp_alerts:"))
            .filter_map(|block| block.lines().next())
            .map(str::trim)
            .collect();
        let untested: Vec<&&str> = alert_names.difference(&tested).collect();
        assert!(untested.is_empty(), "{}: alerts never expected to fire in a test: {untested:?}", rule_file.display());
    }
}
