//! Grafana dashboard JSON as the tests need it: every panel (rows and
//! collapsed rows included), every query with its panel, the template
//! variables, and Grafana's variable interpolation for Prometheus queries.

use regex::Regex;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One dashboard file.
pub struct Dashboard {
    /// The file it came from.
    pub path: PathBuf,
    /// The parsed JSON model.
    pub json: Value,
}

/// One panel query (a target with an `expr`).
#[derive(Debug, Clone)]
pub struct Query {
    /// Panel title (for messages).
    pub panel: String,
    /// The target's `refId`.
    pub ref_id: String,
    /// The PromQL expression, variables not yet interpolated.
    pub expr: String,
}

/// One template variable.
#[derive(Debug, Clone)]
pub struct Variable {
    /// `$name`.
    pub name: String,
    /// `query`, `interval`, `custom`, `datasource`, `constant`, `textbox`…
    pub kind: String,
    /// The variable's query (for `query` variables: `label_values(…)`; for
    /// `interval`/`custom`: the comma-separated options).
    pub query: String,
    /// Whether several values may be selected (then they become a regex).
    pub multi: bool,
    /// Whether an "All" option exists.
    pub include_all: bool,
    /// What "All" stands for, when set.
    pub all_value: Option<String>,
    /// The saved current value, if any.
    pub current: Option<String>,
}

/// Loads every `*.json` in `dir`, sorted by file name.
pub fn dashboards_in(dir: &Path) -> Vec<Dashboard> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|err| panic!("read {}: {err}", dir.display()))
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    paths.sort();
    paths.into_iter().map(|path| Dashboard::load(&path)).collect()
}

impl Dashboard {
    /// Parses one dashboard file; panics with the file name when it is not JSON.
    pub fn load(path: &Path) -> Dashboard {
        let text = std::fs::read_to_string(path).unwrap_or_else(|err| panic!("read {}: {err}", path.display()));
        let json = serde_json::from_str(&text).unwrap_or_else(|err| panic!("{} is not JSON: {err}", path.display()));
        Dashboard { path: path.to_owned(), json }
    }

    /// The file name, for messages.
    pub fn name(&self) -> String {
        self.path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default()
    }

    /// Every panel, depth first: top-level panels, panels inside rows, and
    /// the `rows[].panels` of pre-5.0 dashboards.
    pub fn panels(&self) -> Vec<&Value> {
        fn walk<'a>(panels: &'a Value, out: &mut Vec<&'a Value>) {
            for panel in panels.as_array().into_iter().flatten() {
                out.push(panel);
                walk(&panel["panels"], out);
            }
        }
        let mut out = Vec::new();
        walk(&self.json["panels"], &mut out);
        for row in self.json["rows"].as_array().into_iter().flatten() {
            walk(&row["panels"], &mut out);
        }
        out
    }

    /// Every panel query, in panel order.
    pub fn queries(&self) -> Vec<Query> {
        let mut queries = Vec::new();
        for panel in self.panels() {
            let title = panel["title"].as_str().unwrap_or("<untitled>").to_owned();
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str().filter(|expr| !expr.trim().is_empty()) {
                    queries.push(Query {
                        panel: title.clone(),
                        ref_id: target["refId"].as_str().unwrap_or("?").to_owned(),
                        expr: expr.to_owned(),
                    });
                }
            }
        }
        queries
    }

    /// The template variables, in dashboard order (later ones may refer to
    /// earlier ones).
    pub fn variables(&self) -> Vec<Variable> {
        let list = self.json["templating"]["list"].as_array().cloned().unwrap_or_default();
        list.iter()
            .map(|variable| {
                let query = match &variable["query"] {
                    Value::String(query) => query.clone(),
                    Value::Object(object) => object.get("query").and_then(Value::as_str).unwrap_or("").to_owned(),
                    _ => String::new(),
                };
                let current = match &variable["current"]["value"] {
                    Value::String(value) => Some(value.clone()),
                    Value::Array(values) => values.first().and_then(Value::as_str).map(str::to_owned),
                    _ => None,
                };
                Variable {
                    name: variable["name"].as_str().unwrap_or("").to_owned(),
                    kind: variable["type"].as_str().unwrap_or("").to_owned(),
                    query,
                    multi: variable["multi"].as_bool().unwrap_or(false),
                    include_all: variable["includeAll"].as_bool().unwrap_or(false),
                    all_value: variable["allValue"].as_str().filter(|value| !value.is_empty()).map(str::to_owned),
                    current,
                }
            })
            .collect()
    }
}

/// What a `label_values(…)` variable query asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelValues {
    /// The series selector, when given.
    pub selector: Option<String>,
    /// The label whose values are listed.
    pub label: String,
}

/// Parses `label_values(label)` and `label_values(selector, label)`.
pub fn parse_label_values(query: &str) -> Option<LabelValues> {
    let inner = query.trim().strip_prefix("label_values(")?.strip_suffix(')')?;
    match inner.rsplit_once(',') {
        Some((selector, label)) => {
            Some(LabelValues { selector: Some(selector.trim().to_owned()), label: label.trim().to_owned() })
        }
        None => Some(LabelValues { selector: None, label: inner.trim().to_owned() }),
    }
}

/// How Grafana writes a variable's value(s) into a Prometheus query: one
/// value as is (backslashes and quotes escaped), several as an escaped regex
/// alternation `(a|b)`.
pub fn interpolation(values: &[String], multi: bool) -> String {
    // Grafana's `prometheusRegularEscape` and `prometheusSpecialRegexEscape`.
    fn escape_single(value: &str) -> String {
        value.replace('\\', "\\\\").replace('\'', "\\\\'")
    }
    fn escape_regex(value: &str) -> String {
        let mut out = String::new();
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\\\\\"),
                c if "$^*{}[]'+?.()|".contains(c) => {
                    out.push_str("\\\\");
                    out.push(c);
                }
                c => out.push(c),
            }
        }
        out
    }
    match values {
        [] => String::new(),
        [single] if !multi => escape_single(single),
        many => format!("({})", many.iter().map(|value| escape_regex(value)).collect::<Vec<_>>().join("|")),
    }
}

/// Replaces `$name`, `${name}`, `${name:format}` and `[[name]]` with
/// `values[name]`; panics on a variable that has no value, so a typo in a
/// dashboard fails the test instead of producing an odd query.
pub fn substitute(expr: &str, values: &BTreeMap<String, String>) -> String {
    let pattern = Regex::new(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]").expect("variable regex");
    pattern
        .replace_all(expr, |captures: &regex::Captures<'_>| {
            let name = captures.get(1).or(captures.get(2)).or(captures.get(3)).map_or("", |m| m.as_str());
            values.get(name).cloned().unwrap_or_else(|| panic!("no value for ${name} in {expr}"))
        })
        .into_owned()
}

/// Values for Grafana's built-in variables, chosen for a short test history.
pub fn builtin_values() -> BTreeMap<String, String> {
    [
        ("__rate_interval", "1m"),
        ("__interval", "15s"),
        ("__interval_ms", "15000"),
        ("__range", "5m"),
        ("__range_s", "300"),
        ("__range_ms", "300000"),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .collect()
}
