//! Process logging: `--log.level` and `--log.format` (`logfmt` or `json`),
//! like blackbox_exporter.

use std::fmt::Write as _;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Installs the global subscriber. Safe to call more than once (tests).
pub fn init(level: &str, format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{level},hyper=warn,h2=warn,rustls=warn,tokio_postgres=warn,mysql_async=warn,tiberius=error,suppaftp=warn,async_imap=warn,lettre=warn,reqwest=warn")));
    // suppaftp and async-imap log the PASS/LOGIN lines at trace level: cap them
    // whatever RUST_LOG says, so no probe password ever reaches the log.
    let filter = ["suppaftp=warn", "async_imap=warn"]
        .iter()
        .filter_map(|directive| directive.parse().ok())
        .fold(filter, tracing_subscriber::EnvFilter::add_directive);
    // tiberius warns "TLS encryption is not enabled" on every mssql probe: the
    // mssql prober encrypts beneath it, so the warning is false (mssql.rs).
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if format == "json" {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.event_format(Logfmt).try_init()
    };
}

/// `ts=… level=… msg="…" key=value` lines.
struct Logfmt;

struct Fields(String, String);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0 = value.to_string();
        } else {
            let _ = write!(self.1, " {}={}", field.name(), quote(value));
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
}

fn quote(value: &str) -> String {
    if !value.is_empty() && value.chars().all(|c| c.is_ascii_graphic() && c != '"' && c != '=') {
        value.to_string()
    } else {
        format!("{value:?}")
    }
}

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, _ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> std::fmt::Result {
        let mut fields = Fields(String::new(), String::new());
        event.record(&mut fields);
        let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let level = event.metadata().level().as_str().to_ascii_lowercase();
        writeln!(
            writer,
            "ts={ts} level={level} source={} msg={}{}",
            event.metadata().target(),
            quote(&fields.0),
            fields.1
        )
    }
}
