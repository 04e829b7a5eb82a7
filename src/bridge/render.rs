//! Rendering: turns a notification [`View`] into the [`Outgoing`] text of one
//! channel with minijinja templates, then cuts it to the channel's limits.
//!
//! Templates see the view's fields (`kind`, `status`, `receiver`,
//! `group_labels`, `common_labels`, `common_annotations`, `external_url`,
//! `alerts`, `firing`, `resolved`, `still_firing`, `suppressed_count`,
//! `counts` (exact sizes of the four lists, which summaries cut), `contact`, `message`, `acknowledge_url`), plus `channel`, `now` (RFC 3339) and, in body templates, the
//! rendered `subject`. Alertmanager-style filters are registered: `toUpper`,
//! `toLower`, `title`, `trimSpace`, `join`, `humanizeDuration` (seconds),
//! `since` (timestamp → duration until `now`), `date(format, tz)` (strftime
//! syntax, IANA zone), `sortedPairs` (`[{name, value}]`), `labelNames`,
//! `labelValues`, `without(names)`, `formatLabels(sep)`,
//! `reReplaceAll(pattern, replacement)`, plus minijinja's built-ins such as
//! `tojson` and `urlencode`. The default templates' macros can be imported
//! with `{% import "checkit/macros.txt" as m %}`.
//!
//! Every template is compiled and test-rendered against sample views at
//! load, so a broken template fails the config check with its YAML path.

use crate::bridge::channels::ChannelKind;
use crate::config::Problem;
use chrono::{DateTime, Utc};
use minijinja::value::{Rest, Value, ValueKind};
use minijinja::{Environment, ErrorKind, State, UndefinedBehavior};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// What a [`View`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ViewKind {
    /// One Alertmanager notification (or the part of it a contact gets).
    Notification,
    /// Summary after quiet hours: what fired, what still fires, what
    /// resolved meanwhile.
    CatchUp,
    /// Summary of notifications held back by a rate limit.
    Overflow,
    /// A message from the message API: `message` holds its subject, body,
    /// severity and sender (its one alert repeats them as labels and
    /// annotations, for templates that do not know messages).
    Message,
}

/// One alert as templates see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertView {
    /// `firing` or `resolved`.
    pub status: String,
    /// Full label set, sorted by name.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations, sorted by name.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// When the alert started firing.
    pub starts_at: DateTime<Utc>,
    /// When it resolved; `None` while firing.
    #[serde(default)]
    pub ends_at: Option<DateTime<Utc>>,
    /// Alertmanager's fingerprint (16 hex characters).
    #[serde(default)]
    pub fingerprint: String,
    /// Link to the expression in Prometheus.
    #[serde(default)]
    pub generator_url: String,
    /// How long it has fired (or fired, once resolved), e.g. `1h 5m`.
    /// Filled by [`AlertView::with_duration`].
    #[serde(default)]
    pub firing_for: Option<String>,
}

impl AlertView {
    /// Fills `firing_for`: until `ends_at` for a resolved alert, until `now`
    /// otherwise.
    pub fn with_duration(mut self, now: DateTime<Utc>) -> Self {
        let end = match (self.status.as_str(), self.ends_at) {
            ("resolved", Some(ends_at)) => ends_at,
            _ => now,
        };
        let seconds = (end - self.starts_at).num_seconds().max(0);
        self.firing_for = Some(human_duration(seconds as f64));
        self
    }

    /// True when the alert is resolved.
    pub fn is_resolved(&self) -> bool {
        self.status == "resolved"
    }
}

/// Everything a template may show about one message to one contact.
///
/// For [`ViewKind::Notification`], `alerts` is the notification's alert list
/// and `firing`/`resolved` split it; `still_firing` is empty.
/// For [`ViewKind::CatchUp`], `firing` lists the alerts that started firing
/// during the quiet period, `still_firing` those firing now and `resolved`
/// those that resolved meanwhile.
/// For [`ViewKind::Overflow`], `suppressed_count` is the number of alerts
/// held back and `still_firing` those of them still firing.
///
/// Summaries list at most a display limit of alerts per list; `counts` holds
/// the exact size of each list before the cut, so texts say "9995 held back,
/// 9995 still firing" and list the first few.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct View {
    /// What this view reports.
    pub kind: ViewKind,
    /// `firing` when any alert fires, else `resolved`.
    pub status: String,
    /// The (unescaped) Alertmanager receiver.
    #[serde(default)]
    pub receiver: String,
    /// Alertmanager's `groupLabels`.
    #[serde(default)]
    pub group_labels: BTreeMap<String, String>,
    /// Alertmanager's `commonLabels`.
    #[serde(default)]
    pub common_labels: BTreeMap<String, String>,
    /// Alertmanager's `commonAnnotations`.
    #[serde(default)]
    pub common_annotations: BTreeMap<String, String>,
    /// Alertmanager's `externalURL`.
    #[serde(default)]
    pub external_url: String,
    /// All alerts of the message.
    #[serde(default)]
    pub alerts: Vec<AlertView>,
    /// Firing alerts (see the type's docs per kind).
    #[serde(default)]
    pub firing: Vec<AlertView>,
    /// Resolved alerts.
    #[serde(default)]
    pub resolved: Vec<AlertView>,
    /// Alerts still firing (catch-up and overflow).
    #[serde(default)]
    pub still_firing: Vec<AlertView>,
    /// Alerts held back by a rate limit (overflow).
    #[serde(default)]
    pub suppressed_count: u64,
    /// Exact sizes of `alerts`, `firing`, `resolved` and `still_firing`.
    #[serde(default)]
    pub counts: Counts,
    /// The contact's name.
    #[serde(default)]
    pub contact: String,
    /// For [`ViewKind::Message`]: the message.
    #[serde(default)]
    pub message: Option<crate::bridge::payload::Message>,
    /// The contact's acknowledge link, on firing notifications when
    /// acknowledgement is configured.
    #[serde(default)]
    pub acknowledge_url: Option<String>,
}

impl View {
    /// Fills `firing_for` on every alert.
    pub fn with_durations(mut self, now: DateTime<Utc>) -> Self {
        for list in [&mut self.alerts, &mut self.firing, &mut self.resolved, &mut self.still_firing] {
            *list = std::mem::take(list).into_iter().map(|alert| alert.with_duration(now)).collect();
        }
        self
    }

    /// An example view of `kind`, modelled on a real Alertmanager payload.
    /// Templates are test-rendered against these at load; `/config` dry-runs
    /// can use them too.
    pub fn sample(kind: ViewKind) -> View {
        let at =
            |text: &str| DateTime::parse_from_rfc3339(text).map(|time| time.with_timezone(&Utc)).unwrap_or_default();
        let alert = |instance: &str, status: &str, ends_at: Option<&str>| AlertView {
            status: status.to_string(),
            labels: BTreeMap::from([
                ("alertname".to_string(), "HighLatency".to_string()),
                ("instance".to_string(), format!("{instance}:9100")),
                ("job".to_string(), "api".to_string()),
                ("severity".to_string(), "critical".to_string()),
                ("team".to_string(), "payments".to_string()),
            ]),
            annotations: BTreeMap::from([
                ("summary".to_string(), format!("High request latency on {instance}")),
                ("description".to_string(), "p99 latency is 2.3s (threshold 1s)".to_string()),
                ("runbook_url".to_string(), "https://runbooks.example/HighLatency".to_string()),
            ]),
            starts_at: at("2026-11-22T17:11:51Z"),
            ends_at: ends_at.map(at),
            fingerprint: "8cb9ba740429b172".to_string(),
            generator_url: "http://prometheus.example:9090/graph?g0.expr=up".to_string(),
            firing_for: None,
        };
        let resolved = alert("api-1", "resolved", Some("2026-11-22T18:16:51Z"));
        let firing = alert("api-2", "firing", None);
        let now = at("2026-11-22T19:00:00Z");
        let mut view = View {
            kind,
            status: "firing".to_string(),
            receiver: "team-payments".to_string(),
            group_labels: BTreeMap::from([("alertname".to_string(), "HighLatency".to_string())]),
            common_labels: BTreeMap::from([
                ("alertname".to_string(), "HighLatency".to_string()),
                ("job".to_string(), "api".to_string()),
                ("severity".to_string(), "critical".to_string()),
                ("team".to_string(), "payments".to_string()),
            ]),
            common_annotations: BTreeMap::from([(
                "runbook_url".to_string(),
                "https://runbooks.example/HighLatency".to_string(),
            )]),
            external_url: "http://alertmanager.example:9093".to_string(),
            alerts: vec![resolved.clone(), firing.clone()],
            firing: vec![firing.clone()],
            resolved: vec![resolved],
            still_firing: Vec::new(),
            suppressed_count: 0,
            counts: Counts::default(),
            contact: "alice".to_string(),
            message: None,
            acknowledge_url: None,
        };
        match kind {
            ViewKind::Notification => {
                view.acknowledge_url =
                    Some("https://checkit.example/ack/17.YWxpY2U.1795000000.c2lnbmF0dXJl".to_string())
            }
            ViewKind::Message => {
                view.message = Some(crate::bridge::payload::Message {
                    sender: "ci".to_string(),
                    subject: "Nightly build failed".to_string(),
                    body: "Build 1234 of main failed in the test stage.\nhttps://ci.example/1234".to_string(),
                    severity: "warning".to_string(),
                    report: None,
                });
            }
            ViewKind::CatchUp => view.still_firing = vec![firing],
            ViewKind::Overflow => {
                view.still_firing = vec![firing];
                view.suppressed_count = 12;
            }
        }
        view.counts = Counts::of(&view);
        view.with_durations(now)
    }
}

/// How many alerts each list of a [`View`] has before a summary cuts it to
/// its display limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Size of `alerts`.
    pub alerts: u64,
    /// Size of `firing`.
    pub firing: u64,
    /// Size of `resolved`.
    pub resolved: u64,
    /// Size of `still_firing`.
    pub still_firing: u64,
}

impl Counts {
    /// The sizes of lists that were not cut.
    pub fn of(view: &View) -> Counts {
        let count = |list: &Vec<AlertView>| list.len() as u64;
        Counts {
            alerts: count(&view.alerts),
            firing: count(&view.firing),
            resolved: count(&view.resolved),
            still_firing: count(&view.still_firing),
        }
    }
}

/// A rendered message, ready for a channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outgoing {
    /// One line: email subject, ntfy title, the log's subject field.
    pub subject: String,
    /// Plain text body (for `webhook`: the JSON document).
    pub body: String,
    /// HTML alternative (email only).
    pub html: Option<String>,
}

/// Formats seconds like `1h 5m`, `3d 2h`, `45s`: the two largest units,
/// dropping a zero second unit.
pub fn human_duration(seconds: f64) -> String {
    if !seconds.is_finite() {
        return "0s".to_string();
    }
    let sign = if seconds < 0.0 { "-" } else { "" };
    let total = seconds.abs().floor() as u64;
    const UNITS: [(u64, &str); 4] = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
    let parts: Vec<u64> = UNITS
        .iter()
        .scan(total, |rest, (size, _)| {
            let count = *rest / size;
            *rest %= size;
            Some(count)
        })
        .collect();
    let Some(first) = parts.iter().position(|count| *count > 0) else {
        return "0s".to_string();
    };
    let mut text = format!("{sign}{}{}", parts[first], UNITS[first].1);
    if let Some(next) = parts.get(first + 1).filter(|count| **count > 0) {
        let _ = write!(text, " {next}{}", UNITS[first + 1].1);
    }
    text
}

/// Optional template overrides for one channel. Each template is given
/// inline or as a `*_file` path, not both.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TemplateSet {
    /// Subject (one line; newlines are folded).
    pub subject: Option<String>,
    /// File holding the subject template.
    pub subject_file: Option<String>,
    /// Plain text body (for `webhook`: must produce JSON; values print as
    /// JSON, so write `{"text": {{ subject }}}`).
    pub body: Option<String>,
    /// File holding the body template.
    pub body_file: Option<String>,
    /// HTML body, email only; values are HTML-escaped.
    pub html: Option<String>,
    /// File holding the HTML template.
    pub html_file: Option<String>,
}

/// A channel's built-in templates (its file's `TEMPLATES`).
#[derive(Debug, Clone, Copy)]
pub struct Defaults {
    /// The body template; `None`: the view itself, as JSON.
    pub body: Option<&'static str>,
    /// The HTML template; only a channel with one takes an `html` override.
    pub html: Option<&'static str>,
    /// Whether the body is JSON (overrides are `.json` templates, checked to parse).
    pub json: bool,
}

impl Defaults {
    /// The short text most chat channels use.
    pub const SHORT: Defaults = Defaults { body: Some("checkit/short.txt"), html: None, json: false };
}

macro_rules! templates_config {
    ($($(#[$doc:meta])* $variant:ident $module:ident;)*) => {
/// The `bridge.templates:` section: per-channel overrides of the defaults.
///
/// ```yaml
/// email:
///   subject: '[{{ status|toUpper }}] {{ common_labels.alertname }}'
///   html_file: /etc/checkit/email.html.j2
/// telegram:
///   body: |
///     {% for a in firing %}🔥 {{ a.annotations.summary }} ({{ a.starts_at|since }}){% endfor %}
/// webhook:
///   body: '{"text": {{ subject }}, "alerts": {{ alerts|length }}}'
/// ```
        #[derive(Debug, Clone, Default, Serialize, Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct TemplatesConfig {
            $(
                #[doc = concat!("`", stringify!($module), "`: overrides of the channel's templates.")]
                pub $module: Option<TemplateSet>,
            )*
        }

        impl TemplatesConfig {
            /// The overrides of `kind`, if any.
            pub fn set(&self, kind: ChannelKind) -> Option<&TemplateSet> {
                match kind {
                    $(ChannelKind::$variant => self.$module.as_ref(),)*
                }
            }
        }
    };
}
crate::bridge::channels::for_each_channel!(templates_config);

impl TemplatesConfig {
    /// Records every problem below `path`: reads, compiles and test-renders
    /// every template, exactly as [`Templates::new`] does.
    pub fn validate(&self, path: &str, problems: &mut crate::config::Problems) {
        if let Err(found) = Templates::build(self, path) {
            problems.0.extend(found);
        }
    }
}

/// A template that failed while rendering a message.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// minijinja reported an error.
    #[error("cannot render {template}: {message}")]
    Render {
        /// The template's name, e.g. `email/subject.txt`.
        template: String,
        /// minijinja's explanation.
        message: String,
    },
    /// The webhook body template did not produce JSON.
    #[error("webhook body is not JSON: {0}")]
    NotJson(String),
    /// The view could not be serialised to JSON.
    #[error("cannot serialise view: {0}")]
    View(String),
}

/// Which template renders each part for one channel.
#[derive(Debug, Clone)]
struct Parts {
    subject: String,
    body: Option<String>,
    html: Option<String>,
}

/// The compiled templates of every channel.
pub struct Templates {
    environment: Environment<'static>,
    parts: BTreeMap<ChannelKind, Parts>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates").field("parts", &self.parts).finish_non_exhaustive()
    }
}

/// Upper bound on template work per render; defaults use a small fraction
/// even for hundreds of alerts, while a runaway user template stops here.
const FUEL_PER_RENDER: u64 = 20_000_000;
/// Longest subject kept; mail clients and ntfy show far less.
const SUBJECT_MAX_CHARS: usize = 255;

const DEFAULT_MACROS: &str = include_str!("render/macros.txt");
const DEFAULT_SUBJECT: &str = include_str!("render/subject.txt");
const DEFAULT_SHORT: &str = include_str!("render/short.txt");
const DEFAULT_FULL_TEXT: &str = include_str!("render/full.txt");
const DEFAULT_FULL_HTML: &str = include_str!("render/full.html");
const DEFAULT_SMS: &str = include_str!("render/sms.txt");
const DEFAULT_REPORT_TEXT: &str = include_str!("render/report.txt");
const DEFAULT_REPORT_HTML: &str = include_str!("render/report.html");
const DEFAULT_REPORT_SHORT: &str = include_str!("render/report_short.txt");

impl Templates {
    /// Compiles the defaults and every override of `config`, and test-renders
    /// each channel against [`View::sample`] of every kind. Problems carry
    /// their path below `bridge.templates`.
    pub fn new(config: &TemplatesConfig) -> Result<Templates, Vec<Problem>> {
        Self::build(config, "bridge.templates")
    }

    fn build(config: &TemplatesConfig, base: &str) -> Result<Templates, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut environment = new_environment();
        for (name, source) in [
            ("checkit/macros.txt", DEFAULT_MACROS),
            ("checkit/subject.txt", DEFAULT_SUBJECT),
            ("checkit/short.txt", DEFAULT_SHORT),
            ("checkit/full.txt", DEFAULT_FULL_TEXT),
            ("checkit/full.html", DEFAULT_FULL_HTML),
            ("checkit/sms.txt", DEFAULT_SMS),
            ("checkit/report.txt", DEFAULT_REPORT_TEXT),
            ("checkit/report.html", DEFAULT_REPORT_HTML),
            ("checkit/report_short.txt", DEFAULT_REPORT_SHORT),
        ] {
            if let Err(err) = environment.add_template(name, source) {
                problems.push(Problem::new(base, format!("built-in {name}: {err}")));
            }
        }
        let builtins_ok = problems.is_empty();
        let mut parts = BTreeMap::new();
        let mut compiled = Vec::new();
        for &kind in ChannelKind::all() {
            let problems_before = problems.len();
            let mut channel_parts = default_parts(kind);
            let set = config.set(kind).cloned().unwrap_or_default();
            let path = format!("{base}.{kind}");
            let overrides = [
                ("subject", &set.subject, &set.subject_file),
                ("body", &set.body, &set.body_file),
                ("html", &set.html, &set.html_file),
            ];
            for (field, inline, file) in overrides {
                let field_path = format!("{path}.{field}");
                if field == "html" && kind.templates().html.is_none() && (inline.is_some() || file.is_some()) {
                    problems.push(Problem::new(field_path.clone(), "html is only used by the email channel"));
                    continue;
                }
                let source = match (inline, file) {
                    (Some(_), Some(_)) => {
                        problems.push(Problem::new(
                            field_path.clone(),
                            format!("{field} and {field}_file are mutually exclusive"),
                        ));
                        continue;
                    }
                    (Some(text), None) => text.clone(),
                    (None, Some(file)) => match std::fs::read_to_string(file) {
                        Ok(text) => text,
                        Err(err) => {
                            problems.push(Problem::new(
                                format!("{field_path}_file"),
                                format!("cannot read {file:?}: {err}"),
                            ));
                            continue;
                        }
                    },
                    (None, None) => continue,
                };
                let name = override_name(kind, field);
                if let Err(err) = environment.add_template_owned(name.clone(), source) {
                    problems.push(Problem::new(field_path, format!("invalid template: {err}")));
                    continue;
                }
                match field {
                    "subject" => channel_parts.subject = name,
                    "body" => channel_parts.body = Some(name),
                    _ => channel_parts.html = Some(name),
                }
            }
            parts.insert(kind, channel_parts);
            if builtins_ok && problems.len() == problems_before {
                compiled.push(kind);
            }
        }
        let templates = Templates { environment, parts };
        // Test-render every channel whose templates compiled, so that one
        // broken channel does not hide the problems of another.
        for kind in compiled {
            {
                let report = View::of_report(&crate::bridge::report::Report::sample(), "alice");
                let samples = [ViewKind::Notification, ViewKind::CatchUp, ViewKind::Overflow, ViewKind::Message]
                    .map(View::sample)
                    .into_iter()
                    .chain([report]);
                for sample in samples {
                    if let Err(err) = templates.render_at(kind, &sample, Utc::now()) {
                        let field = match &err {
                            Error::Render { template, .. } => template_field(template).unwrap_or("body"),
                            _ => "body",
                        };
                        let problem = Problem::new(format!("{base}.{kind}.{field}"), err.to_string());
                        if !problems.contains(&problem) {
                            problems.push(problem);
                        }
                    }
                }
            }
        }
        if problems.is_empty() { Ok(templates) } else { Err(problems) }
    }

    /// Renders `view` for `kind` at the current time.
    pub fn render(&self, kind: ChannelKind, view: &View) -> Result<Outgoing, Error> {
        self.render_at(kind, view, Utc::now())
    }

    /// Renders `view` for `kind` as if the time were `now` (for `since` and
    /// for tests).
    pub fn render_at(&self, kind: ChannelKind, view: &View, now: DateTime<Utc>) -> Result<Outgoing, Error> {
        let parts = self.parts.get(&kind).cloned().unwrap_or_else(|| default_parts(kind));
        let view_value = Value::from_serialize(view);
        let context = minijinja::context! {
            channel => kind.as_str(),
            now => now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            ..view_value.clone()
        };
        let subject = fold_line(&self.render_template(&parts.subject, &context)?);
        let subject = truncate_chars(&subject, SUBJECT_MAX_CHARS, ELLIPSIS);
        let body_context = minijinja::context! { subject => subject.clone(), ..context.clone() };
        let body = match (&parts.body, kind) {
            (Some(name), kind) if kind.templates().json => {
                let body = self.render_template(name, &body_context)?;
                serde_json::from_str::<serde_json::Value>(&body).map_err(|err| Error::NotJson(err.to_string()))?;
                body
            }
            (Some(name), _) => tidy(&self.render_template(name, &body_context)?),
            (None, _) => serde_json::to_string(view).map_err(|err| Error::View(err.to_string()))?,
        };
        let html = match &parts.html {
            Some(name) => Some(self.render_template(name, &body_context)?),
            None => None,
        };
        Ok(Outgoing { subject, body: truncate_for(kind, &body), html })
    }

    fn render_template(&self, name: &str, context: &Value) -> Result<String, Error> {
        let to_error = |err: minijinja::Error| Error::Render { template: name.to_string(), message: err.to_string() };
        self.environment.get_template(name).map_err(to_error)?.render(context).map_err(to_error)
    }
}

fn default_parts(kind: ChannelKind) -> Parts {
    let subject = "checkit/subject.txt".to_string();
    let defaults = kind.templates();
    Parts { subject, body: defaults.body.map(str::to_string), html: defaults.html.map(str::to_string) }
}

/// Template names choose auto-escaping: `.html` escapes HTML, `.json` JSON.
fn override_name(kind: ChannelKind, field: &str) -> String {
    match (kind, field) {
        (_, "html") => format!("{kind}/html.html"),
        (_, "body") if kind.templates().json => format!("{kind}/body.json"),
        _ => format!("{kind}/{field}.txt"),
    }
}

/// The config field an override template name came from.
fn template_field(name: &str) -> Option<&'static str> {
    let file = name.rsplit('/').next()?;
    if file.starts_with("subject") {
        Some("subject")
    } else if file.starts_with("html") {
        Some("html")
    } else if file.starts_with("body") {
        Some("body")
    } else {
        None
    }
}

fn new_environment() -> Environment<'static> {
    let mut environment = Environment::new();
    // Missing labels or annotations print as empty text instead of failing a
    // delivery; typos in names show up in the load-time test render output.
    environment.set_undefined_behavior(UndefinedBehavior::Chainable);
    environment.set_fuel(Some(FUEL_PER_RENDER));
    environment.set_recursion_limit(64);
    environment.set_trim_blocks(true);
    environment.set_lstrip_blocks(true);
    environment.add_filter("toUpper", |value: String| value.to_uppercase());
    environment.add_filter("toLower", |value: String| value.to_lowercase());
    environment.add_filter("trimSpace", |value: String| value.trim().to_string());
    environment.add_filter("humanizeDuration", humanize_duration_filter);
    environment.add_filter("since", since_filter);
    environment.add_filter("date", date_filter);
    environment.add_filter("sortedPairs", sorted_pairs_filter);
    environment.add_filter("labelNames", |value: Value| -> Result<Value, minijinja::Error> {
        Ok(Value::from(label_pairs(&value)?.into_iter().map(|(name, _)| name).collect::<Vec<_>>()))
    });
    environment.add_filter("labelValues", |value: Value| -> Result<Value, minijinja::Error> {
        Ok(Value::from(label_pairs(&value)?.into_iter().map(|(_, value)| value).collect::<Vec<_>>()))
    });
    environment.add_filter("without", without_filter);
    environment.add_filter("formatLabels", format_labels_filter);
    environment.add_filter("reReplaceAll", re_replace_all_filter);
    environment
}

fn invalid(message: impl Into<String>) -> minijinja::Error {
    minijinja::Error::new(ErrorKind::InvalidOperation, message.into())
}

/// A map value's entries as sorted string pairs; undefined and none are empty.
fn label_pairs(value: &Value) -> Result<Vec<(String, String)>, minijinja::Error> {
    if value.is_undefined() || value.is_none() {
        return Ok(Vec::new());
    }
    if value.kind() != ValueKind::Map {
        return Err(invalid(format!("expected a map of labels, got {}", value.kind())));
    }
    let mut pairs = Vec::new();
    for key in value.try_iter()? {
        let item = value.get_item(&key)?;
        pairs.push((key.to_string(), item.to_string()));
    }
    pairs.sort();
    Ok(pairs)
}

fn sorted_pairs_filter(value: Value) -> Result<Value, minijinja::Error> {
    let pairs: Vec<BTreeMap<&str, String>> = label_pairs(&value)?
        .into_iter()
        .map(|(name, value)| BTreeMap::from([("name", name), ("value", value)]))
        .collect();
    Ok(Value::from_serialize(pairs))
}

fn without_filter(value: Value, names: Rest<Value>) -> Result<Value, minijinja::Error> {
    let mut removed = Vec::new();
    for name in names.iter() {
        if name.kind() == ValueKind::Seq {
            for item in name.try_iter()? {
                removed.push(item.to_string());
            }
        } else {
            removed.push(name.to_string());
        }
    }
    let kept: BTreeMap<String, String> =
        label_pairs(&value)?.into_iter().filter(|(name, _)| !removed.contains(name)).collect();
    Ok(Value::from_serialize(kept))
}

fn format_labels_filter(value: Value, separator: Option<String>) -> Result<String, minijinja::Error> {
    let separator = separator.unwrap_or_else(|| ", ".to_string());
    Ok(label_pairs(&value)?
        .into_iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join(&separator))
}

fn re_replace_all_filter(text: String, pattern: String, replacement: String) -> Result<String, minijinja::Error> {
    let regex =
        regex::Regex::new(&pattern).map_err(|err| invalid(format!("invalid regular expression {pattern:?}: {err}")))?;
    Ok(regex.replace_all(&text, replacement.as_str()).into_owned())
}

fn humanize_duration_filter(value: Value) -> Result<String, minijinja::Error> {
    let seconds = match value.kind() {
        ValueKind::Number => f64::try_from(value).map_err(|err| invalid(err.to_string()))?,
        ValueKind::String => value
            .as_str()
            .unwrap_or_default()
            .trim()
            .parse::<f64>()
            .map_err(|_| invalid(format!("humanizeDuration expects seconds, got {value}")))?,
        ValueKind::Undefined | ValueKind::None => return Ok(String::new()),
        other => {
            return Err(invalid(format!("humanizeDuration expects seconds, got {other}")));
        }
    };
    Ok(human_duration(seconds))
}

fn parse_time(value: &Value) -> Result<Option<DateTime<Utc>>, minijinja::Error> {
    if value.is_undefined() || value.is_none() {
        return Ok(None);
    }
    let text = value.to_string();
    DateTime::parse_from_rfc3339(&text)
        .map(|time| Some(time.with_timezone(&Utc)))
        .map_err(|err| invalid(format!("expected an RFC 3339 timestamp, got {text:?}: {err}")))
}

fn since_filter(state: &State, value: Value) -> Result<String, minijinja::Error> {
    let Some(then) = parse_time(&value)? else {
        return Ok(String::new());
    };
    let now = match state.lookup("now") {
        Some(now) => parse_time(&now)?.unwrap_or_else(Utc::now),
        None => Utc::now(),
    };
    Ok(human_duration((now - then).num_seconds() as f64))
}

fn date_filter(value: Value, format: Option<String>, timezone: Option<String>) -> Result<String, minijinja::Error> {
    let Some(time) = parse_time(&value)? else {
        return Ok(String::new());
    };
    let format = format.unwrap_or_else(|| "%Y-%m-%d %H:%M:%S %Z".to_string());
    let timezone: chrono_tz::Tz = match timezone.as_deref() {
        None => chrono_tz::UTC,
        Some(name) => name.parse().map_err(|_| invalid(format!("unknown time zone {name:?}")))?,
    };
    let mut text = String::new();
    // Writing (not `to_string`) turns a bad format string into an error
    // instead of a panic.
    write!(text, "{}", time.with_timezone(&timezone).format(&format))
        .map_err(|_| invalid(format!("invalid date format {format:?}")))?;
    Ok(text)
}

/// Folds a rendered subject onto one line.
fn fold_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Trims trailing spaces per line and squeezes runs of blank lines, so that
/// templates need not fight over whitespace.
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank_run = 0;
    for line in text.trim().lines() {
        let line = line.trim_end();
        if line.is_empty() {
            blank_run += 1;
            if blank_run > 1 {
                continue;
            }
        } else {
            blank_run = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.truncate(out.trim_end().len());
    out
}

/// The marker that ends a cut text.
pub const ELLIPSIS: &str = "…";
pub use crate::bridge::channels::ntfy::MAX_BYTES as NTFY_MAX_BYTES;
pub use crate::bridge::channels::slack::MAX_CHARS as SLACK_MAX_CHARS;
pub use crate::bridge::channels::telegram::MAX_UTF16 as TELEGRAM_MAX_UTF16;

/// Cuts a body to the limit of `kind` (its channel's file says how).
pub fn truncate_for(kind: ChannelKind, text: &str) -> String {
    crate::bridge::channels::truncate(kind, text)
}

/// Keeps at most `max_chars` characters, marker included.
pub fn truncate_chars(text: &str, max_chars: usize, marker: &str) -> String {
    truncate_by(text, max_chars, marker, |_| 1)
}

/// Keeps at most `max_bytes` UTF-8 bytes, marker included, never splitting a
/// character.
pub fn truncate_bytes(text: &str, max_bytes: usize, marker: &str) -> String {
    truncate_by(text, max_bytes, marker, char::len_utf8)
}

/// Keeps the longest prefix whose cost plus the marker's fits in `budget`,
/// then appends the marker. Text within budget is returned unchanged.
pub(crate) fn truncate_by(text: &str, budget: usize, marker: &str, cost: impl Fn(char) -> usize) -> String {
    let total: usize = text.chars().map(&cost).sum();
    if total <= budget {
        return text.to_string();
    }
    let marker_cost: usize = marker.chars().map(&cost).sum();
    let room = budget.saturating_sub(marker_cost);
    let mut used = 0;
    let mut end = 0;
    for (index, c) in text.char_indices() {
        if used + cost(c) > room {
            break;
        }
        used += cost(c);
        end = index + c.len_utf8();
    }
    let mut cut = text[..end].trim_end().to_string();
    cut.push_str(marker);
    cut
}

/// GSM 03.38 basic character set (one septet each).
const GSM_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// GSM 03.38 extension table (escape + septet: two septets each).
const GSM_EXTENSION: &str = "^{}\\[~]|€\u{000C}";

/// SMS cost model of a text: GSM-7 when every character is in the GSM
/// alphabet, otherwise UCS-2. Sizes per segment: 160/153 septets or 70/67
/// UTF-16 units (single/concatenated).
struct SmsEncoding {
    gsm: bool,
}

impl SmsEncoding {
    fn of(text: &str) -> Self {
        SmsEncoding { gsm: text.chars().all(|c| GSM_BASIC.contains(c) || GSM_EXTENSION.contains(c)) }
    }

    fn cost(&self, c: char) -> usize {
        if self.gsm { if GSM_EXTENSION.contains(c) { 2 } else { 1 } } else { c.len_utf16() }
    }

    fn single(&self) -> usize {
        if self.gsm { 160 } else { 70 }
    }

    fn concatenated(&self) -> usize {
        if self.gsm { 153 } else { 67 }
    }

    /// Segments needed. A character never straddles two segments (escape
    /// pairs and surrogate pairs stay whole), so this packs greedily.
    fn segments(&self, text: &str) -> u32 {
        let total: usize = text.chars().map(|c| self.cost(c)).sum();
        if total == 0 {
            return 0;
        }
        if total <= self.single() {
            return 1;
        }
        let mut packer = Packer::new(self.concatenated());
        for c in text.chars() {
            packer.add(self.cost(c));
        }
        packer.segments
    }
}

#[derive(Clone, Copy)]
struct Packer {
    capacity: usize,
    segments: u32,
    used: usize,
}

impl Packer {
    fn new(capacity: usize) -> Self {
        Packer { capacity, segments: 1, used: 0 }
    }

    fn add(&mut self, cost: usize) {
        if self.used + cost > self.capacity {
            self.segments += 1;
            self.used = cost;
        } else {
            self.used += cost;
        }
    }
}

/// Number of SMS segments `text` costs (0 for empty text).
pub fn sms_segments(text: &str) -> u32 {
    SmsEncoding::of(text).segments(text)
}

/// Cuts `text` to at most `max_segments` SMS segments, ending in `...`
/// (GSM text, where `…` would force the costlier UCS-2) or `…` (UCS-2).
pub fn truncate_sms(text: &str, max_segments: u32) -> String {
    let max_segments = max_segments.max(1);
    let encoding = SmsEncoding::of(text);
    if encoding.segments(text) <= max_segments {
        return text.to_string();
    }
    let marker = if encoding.gsm { "..." } else { ELLIPSIS };
    if max_segments == 1 {
        return truncate_by(text, encoding.single(), marker, |c| encoding.cost(c));
    }
    let fits = |packer: Packer| {
        let mut with_marker = packer;
        for c in marker.chars() {
            with_marker.add(encoding.cost(c));
        }
        with_marker.segments <= max_segments
    };
    let mut packer = Packer::new(encoding.concatenated());
    let mut end = 0;
    for (index, c) in text.char_indices() {
        let mut next = packer;
        next.add(encoding.cost(c));
        if !fits(next) {
            break;
        }
        packer = next;
        end = index + c.len_utf8();
    }
    let mut cut = text[..end].trim_end().to_string();
    cut.push_str(marker);
    cut
}

#[cfg(test)]
mod tests;
