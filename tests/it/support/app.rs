//! The real checkit app on 127.0.0.1:0, with a config file in a temp dir, and
//! a parser for the text exposition its `/probe` answers with.

use checkit::app::{App, ConfigSource, Options};
use checkit::http::webconfig::Web;
use checkit::settings::Config;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// A running app; stops on drop.
pub struct TestApp {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The app state (for reloads and telemetry).
    pub app: Arc<App>,
    /// The config file it was started with (rewrite it, then reload).
    pub config_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.app.stop();
    }
}

/// Starts the app with `config_yaml` and default options.
pub async fn start_app(config_yaml: &str) -> TestApp {
    start_app_with(config_yaml, Options::default(), Web::default()).await
}

/// Starts the app with explicit options and web config.
pub async fn start_app_with(config_yaml: &str, options: Options, web: Web) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let config_path = dir.path().join("checkit.yml");
    std::fs::write(&config_path, config_yaml).expect("write config");
    let config = Config::load(&config_path).unwrap_or_else(|err| panic!("test config does not load: {err}"));
    let app = App::new(config, ConfigSource::File(config_path.clone()), options, web).await.expect("app starts");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    app.serve(listener, app.router(), &Default::default());
    TestApp { addr, app, config_path, _dir: dir }
}

impl TestApp {
    /// `http://127.0.0.1:port`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// GET `path`, returning status and body.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let response = reqwest::get(self.url(path)).await.expect("request");
        let status = response.status().as_u16();
        (status, response.text().await.expect("body"))
    }

    /// `/probe?module=…&target=…`.
    pub async fn probe(&self, module: &str, target: &str) -> (u16, String) {
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("module", module)
            .append_pair("target", target)
            .finish();
        self.get(&format!("/probe?{query}")).await
    }
}

/// One family of a text exposition.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Family {
    /// HELP text.
    pub help: String,
    /// TYPE.
    pub kind: String,
    /// Samples: labels → value.
    pub samples: Vec<(BTreeMap<String, String>, f64)>,
}

/// Parses the Prometheus text format (enough for checkit's and blackbox's output).
pub fn parse_exposition(text: &str) -> BTreeMap<String, Family> {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            families.entry(name.to_string()).or_default().help = help.to_string();
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            families.entry(name.to_string()).or_default().kind = kind.to_string();
        } else if !line.is_empty() && !line.starts_with('#') {
            let (series, value) = line.rsplit_once(' ').expect("sample line has a value");
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => (name, parse_labels(labels.trim_end_matches('}'))),
                None => (series, BTreeMap::new()),
            };
            let value = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                other => other.parse().expect("numeric value"),
            };
            families.entry(name.to_string()).or_default().samples.push((labels, value));
        }
    }
    families
}

fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while let Some((name, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((index, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, other)) => value.push(other),
                    None => {}
                },
                '"' => {
                    end = index + 1;
                    break;
                }
                other => value.push(other),
            }
        }
        labels.insert(name.trim_start_matches(',').to_string(), value);
        rest = &after[end..];
    }
    labels
}

/// The single unlabelled value of `name`, if present.
pub fn value(families: &BTreeMap<String, Family>, name: &str) -> Option<f64> {
    families.get(name).and_then(|family| family.samples.first()).map(|(_, value)| *value)
}
