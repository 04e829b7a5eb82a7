//! Tidy checks on the shipped operational assets: every metric name used in
//! `alerts/` rules and in dashboard queries (ours and the community
//! dashboards checkit promises to keep working) is one checkit emits
//! (`checkit::telemetry::metric_names()`), and that list has no duplicates.

use crate::support::grafana::{Dashboard, dashboards_in, parse_label_values};
use checkit::config::yaml::{Value, parse_value};
use checkit::telemetry::is_metric_name;
use regex::Regex;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// PromQL words that look like metric names but are not.
const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "inf",
    "nan",
    "atan2",
];

/// The metric names an expression reads (functions, keywords, label names,
/// strings, durations and Grafana variables left out). Also handles the
/// selector of a `label_values(selector, label)` variable query.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let strip = |pattern: &str, text: &str, with: &str| -> String {
        Regex::new(pattern).expect("regex").replace_all(text, with).into_owned()
    };
    let mut text = strip(r#""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`"#, expr, "\"\"");
    text = strip(r"#[^\n]*", &text, " ");
    text = strip(r"\{[^}]*\}", &text, " ");
    text = strip(r"\[[^\]]*\]", &text, " ");
    text = strip(r"\$\{\w+(?::\w+)?\}|\$\w+|\[\[\w+\]\]", &text, " ");
    text = strip(r"(?i)\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", &text, " ");
    let identifier = Regex::new(r"[A-Za-z_:][A-Za-z0-9_:]*").expect("regex");
    let mut names = BTreeSet::new();
    for found in identifier.find_iter(&text) {
        let before = text[..found.start()].chars().next_back();
        // `5m`, `1e3`, `0x1f`: part of a number, not a name.
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_') {
            continue;
        }
        // A function or aggregation call.
        if text[found.end()..].trim_start().starts_with('(') {
            continue;
        }
        // Keywords are case-insensitive (`OR vector(0)`).
        if KEYWORDS.iter().any(|keyword| keyword.eq_ignore_ascii_case(found.as_str())) {
            continue;
        }
        names.insert(found.as_str().to_owned());
    }
    names
}

/// Whether checkit emits `name`: listed as is, or a histogram's series.
fn emitted(name: &str) -> bool {
    is_metric_name(name)
        || ["_bucket", "_sum", "_count"].iter().any(|suffix| name.strip_suffix(suffix).is_some_and(is_metric_name))
}

/// Every `expr` of every rule in a Prometheus rule file.
fn rule_exprs(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("read rule file");
    let document = parse_value(&text).unwrap_or_else(|err| panic!("{}: {err:?}", path.display()));
    let mut exprs = Vec::new();
    for group in document.get("groups").and_then(Value::as_sequence).into_iter().flatten() {
        for rule in group.get("rules").and_then(Value::as_sequence).into_iter().flatten() {
            let expr = rule.get("expr").and_then(Value::as_str);
            exprs.push(expr.unwrap_or_else(|| panic!("{}: rule without expr", path.display())).to_owned());
        }
    }
    exprs
}

/// Every expression of a dashboard: panel queries and variable queries.
fn dashboard_exprs(dashboard: &Dashboard) -> Vec<String> {
    let mut exprs: Vec<String> = dashboard.queries().into_iter().map(|query| query.expr).collect();
    for variable in dashboard.variables() {
        if variable.kind != "query" {
            continue;
        }
        match parse_label_values(&variable.query) {
            Some(label_values) => exprs.extend(label_values.selector),
            None => exprs.push(variable.query.clone()),
        }
    }
    exprs
}

/// Checks `exprs` from `source`; returns one line per unknown name.
fn unknown_names(source: &str, exprs: &[String]) -> BTreeSet<String> {
    exprs
        .iter()
        .flat_map(|expr| metric_names(expr))
        .filter(|name| !emitted(name))
        .map(|name| format!("{source}: {name}"))
        .collect()
}

#[test]
fn metric_names_list_has_no_duplicates() {
    let mut seen = BTreeSet::new();
    let duplicates: Vec<&str> = checkit::telemetry::metric_names().filter(|name| !seen.insert(*name)).collect();
    assert!(duplicates.is_empty(), "listed twice in the metric name lists: {duplicates:?}");
}

#[test]
fn alert_rules_use_only_emitted_metrics() {
    let mut problems = BTreeSet::new();
    let mut checked = 0;
    for entry in std::fs::read_dir(repo("alerts")).expect("read alerts/") {
        let path = entry.expect("dir entry").path();
        let name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default().to_owned();
        // Test files hold input series, some deliberately not checkit's.
        if !name.ends_with(".rules.yml") {
            continue;
        }
        let exprs = rule_exprs(&path);
        assert!(!exprs.is_empty(), "{name} has no rules");
        checked += exprs.len();
        problems.extend(unknown_names(&format!("alerts/{name}"), &exprs));
    }
    assert!(checked > 10, "only {checked} rules found");
    assert!(
        problems.is_empty(),
        "metric names checkit does not emit:\n{}",
        problems.into_iter().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn checkit_dashboards_use_only_emitted_metrics() {
    let dashboards = dashboards_in(&repo("dashboards"));
    assert!(dashboards.len() >= 2, "expected the checkit dashboards in dashboards/");
    let mut problems = BTreeSet::new();
    for dashboard in &dashboards {
        let exprs = dashboard_exprs(dashboard);
        assert!(exprs.len() >= 5, "{}: only {} queries", dashboard.name(), exprs.len());
        problems.extend(unknown_names(&format!("dashboards/{}", dashboard.name()), &exprs));
    }
    assert!(
        problems.is_empty(),
        "metric names checkit does not emit:\n{}",
        problems.into_iter().collect::<Vec<_>>().join("\n")
    );
}

/// The community dashboards were written for blackbox_exporter; checkit
/// emits every family they read.
#[test]
fn community_dashboards_use_only_emitted_metrics() {
    let dashboards = dashboards_in(&repo("tests/fixtures/community-dashboards"));
    assert_eq!(dashboards.len(), 4, "the four community dashboards");
    let mut problems = BTreeSet::new();
    for dashboard in &dashboards {
        problems.extend(unknown_names(&dashboard.name(), &dashboard_exprs(dashboard)));
    }
    assert!(
        problems.is_empty(),
        "metric names checkit does not emit:\n{}",
        problems.into_iter().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn metric_name_extraction_skips_everything_but_names() {
    let names = metric_names(
        r#"sum by (instance, phase) (rate(probe_http_duration_seconds{job=~"$job", phase="tls"}[$__rate_interval]))
           / on (instance) group_left (version) max without (le) (probe_tls_version_info offset 5m) > 1e3
           or vector(0) and bool_thing{a="probe_fake"} unless histogram_quantile(0.9, x_bucket[5m]) * ${factor}"#,
    );
    let expected: BTreeSet<String> =
        ["probe_http_duration_seconds", "probe_tls_version_info", "bool_thing", "x_bucket"].map(String::from).into();
    assert_eq!(names, expected);
    assert!(metric_names("probe_success == 0 # a comment naming fake_metric").contains("probe_success"));
    assert!(!metric_names("probe_success == 0 # a comment naming fake_metric").contains("fake_metric"));
}
