//! The web UI: the operator pages under `/ui/`, their embedded assets, and
//! the badge and chart renderers.
//!
//! Pages are rendered on the server with minijinja from templates compiled
//! into the binary (`templates/`); the JavaScript in `assets/app.js` only
//! enhances them. Nothing is loaded from another origin, and the Content
//! Security Policy says so to the browser.
//!
//! - `access`: visitors, roles and the cross-site form guard.
//! - `assets`: `/assets/*`.
//! - `badge`, `svg`: badge SVG and shields JSON; day bars, charts, timelines.
//! - `deliveries`: the bridge's history and outbox pages; `acknowledge`: its
//!   Acknowledge button.
//! - `status`: status pages, check pages, badges, the checks list;
//!   `heartbeat` what they add for heartbeats (status words, pings).
//! - `operate`: incident notes and maintenance windows from the UI;
//!   `markdown` renders the notes safely.
//! - `config`: the `ui:` block.

pub mod access;
mod acknowledge;
pub mod assets;
pub mod badge;
pub mod config;
mod deliveries;
mod heartbeat;
mod locations;
pub mod markdown;
mod operate;
mod status;
pub mod status_config;
pub mod svg;

use crate::bridge::Bridge;
use crate::checks::Checks;
use crate::config::live::Live;
use crate::http::exporter::Reload;
use crate::http::webconfig::Web;
use access::{Csrf, Posted, Visitor};
use axum::Router;
use axum::extract::{Form, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use minijinja::{Environment, Value, context};
use serde::Deserialize;
use std::sync::Arc;

/// What the UI shows and operates, handed over by `app`.
#[derive(Clone)]
pub struct Services {
    /// The pipeline, when configured (history, outbox, acknowledgement).
    pub bridge: Option<Arc<Bridge>>,
    /// The scheduled checks, when configured.
    pub checks: Option<Arc<Checks>>,
    /// The heartbeats, when configured (their pings on check pages).
    pub heartbeats: Option<Arc<crate::heartbeat::Heartbeats>>,
    /// The UI's part of the config in force; `app` replaces it on reload.
    pub settings: Arc<Live<config::Settings>>,
    /// The web config (users, for the visitor's role).
    pub web: Web,
    /// The route prefix as a path that starts and ends with `/`, for links.
    pub base_path: String,
    /// Reloads the whole config (the operator's Reload button).
    pub reload: Reload,
}

impl Services {
    fn bridge(&self) -> Option<&Bridge> {
        self.bridge.as_deref()
    }

    fn checks(&self) -> Option<&Checks> {
        self.checks.as_deref()
    }

    fn config(&self) -> Arc<config::Settings> {
        self.settings.get()
    }

    fn web(&self) -> &Web {
        &self.web
    }

    fn base_path(&self) -> String {
        self.base_path.clone()
    }

    async fn reload(&self) -> Result<(), String> {
        (self.reload)().await
    }
}

/// The UI's state: the services it shows, its templates and its form key.
pub struct Ui {
    services: Services,
    templates: Environment<'static>,
    csrf: Csrf,
}

/// `(name, text)` of each file under `templates/`, named once.
macro_rules! templates {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("templates/", $name)))),*]
    };
}

/// The templates, by name; `.html` names are auto-escaped.
const TEMPLATES: &[(&str, &str)] = templates![
    "layout.html",
    "filters.html",
    "error.html",
    "home.html",
    "deliveries.html",
    "delivery.html",
    "outbox.html",
    "status.html",
    "check.html",
    "checks.html",
    "incidents.html",
    "incident.html",
    "maintenance.html"
];

/// Every page forbids other origins, inline script and framing.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; \
     script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

impl Ui {
    fn new(services: Services) -> Ui {
        let mut templates = Environment::new();
        templates.set_undefined_behavior(minijinja::UndefinedBehavior::SemiStrict);
        // minijinja's HTML escaping also escapes `/`, which turns every link
        // into `&#x2f;ui&#x2f;…`: correct but twice the bytes. Escaping the
        // five characters that matter is enough in text and quoted attributes.
        templates.set_formatter(|out, state, value| match value.as_str() {
            Some(text) if state.auto_escape() == minijinja::AutoEscape::Html && !value.is_safe() => out
                .write_str(&badge::escape(text))
                .map_err(|_| minijinja::Error::new(minijinja::ErrorKind::WriteFailure, "cannot write the page")),
            _ => minijinja::escape_formatter(out, state, value),
        });
        // Compiled on first use: a process that only exports probes never
        // shows a page, and compiled templates are a few hundred KiB of heap.
        // They are part of the binary and covered by `every_template_compiles`;
        // a broken one is logged by `page` when rendered.
        templates.set_loader(|name| {
            Ok(TEMPLATES.iter().find(|(known, _)| *known == name).map(|(_, source)| source.to_string()))
        });
        Ui { services, templates, csrf: Csrf::new() }
    }

    /// The route prefix as a path ending in `/`, for links.
    fn base(&self) -> String {
        self.services.base_path()
    }

    /// Renders page `name` for `visitor` with the shared layout variables.
    fn page(&self, status: StatusCode, name: &str, visitor: &Visitor, nav: &str, title: &str, page: Value) -> Response {
        let config = self.services.config();
        let shared = context! {
            base => self.base(),
            asset_version => assets::version(),
            visitor => visitor,
            csrf => self.csrf.token(visitor),
            nav => nav,
            title => title,
            home_path => "ui/",
            has_bridge => self.services.bridge().is_some(),
            has_checks => self.services.checks().is_some(),
            status_links => config.status_pages.iter().map(|page| context! { slug => &page.slug, title => &page.title, public => page.public }).collect::<Vec<_>>(),
            operators => config.ui.operators.clone(),
        };
        let rendered =
            self.templates.get_template(name).and_then(|template| template.render(context! { ..page, ..shared }));
        match rendered {
            Ok(html) => html_response(status, html),
            Err(err) => {
                tracing::error!(template = name, error = %format!("{err:#}"), "Cannot render page");
                (StatusCode::INTERNAL_SERVER_ERROR, "cannot render page\n").into_response()
            }
        }
    }

    /// An error page with `status` and a reason.
    fn error(&self, visitor: &Visitor, status: StatusCode, message: &str, back: &str) -> Response {
        let title = status.canonical_reason().unwrap_or("Error");
        self.page(status, "error.html", visitor, "", title, context! { message, back })
    }
}

/// An HTML answer with the UI's security headers; pages show live data,
/// so they are never stored by caches.
fn html_response(status: StatusCode, html: String) -> Response {
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The UI's routes, to be merged into the main router (inside the auth layer).
pub fn router(services: Services) -> Router {
    let ui = Arc::new(Ui::new(services));
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("ui/") }))
        .route("/ui/", get(home))
        .route("/ui/reload", post(reload))
        .route("/ui/deliveries", get(deliveries::list))
        .route("/ui/deliveries/{id}", get(deliveries::detail))
        .route("/ui/deliveries/{id}/acknowledge", post(acknowledge::acknowledge))
        .route("/ui/outbox", get(deliveries::outbox))
        .route("/ui/checks", get(status::list))
        .route("/ui/checks/pause", post(status::pause))
        .route("/ui/incidents", get(operate::incidents))
        .route("/ui/incidents/{id}", get(operate::incident).post(operate::annotate))
        .route("/ui/maintenance", get(operate::maintenance).post(operate::plan))
        .route("/ui/maintenance/{id}/end", post(operate::end))
        .route("/checks/{name}", get(status::check_page))
        .route("/checks/{name}/results.csv", get(status::results_csv))
        .route("/status/{slug}", get(status::page))
        .route("/status/{slug}/summary.json", get(status::summary))
        .route("/status/{slug}/feed.atom", get(status::feed))
        .route("/status/{slug}/logo", get(status::logo))
        .route("/status/{slug}/days/{check}", get(status::days))
        .route("/badge/{check}/{*rest}", get(status::badge))
        .route("/assets/{name}", get(assets::serve))
        .with_state(ui)
}

/// True when `path` (without the route prefix) with `query` is served
/// without a login: the health check, the static assets (they hold no
/// data), public status pages with their JSON, feed and logo, the badges of
/// checks shown on a public status page, and any check's badges with its
/// `?token=` (see `ui.badge_key_file`).
pub fn is_public(services: &Services, path: &str, query: Option<&str>) -> bool {
    if path == "/-/healthy" || path.starts_with("/assets/") {
        return true;
    }
    if let Some(rest) = path.strip_prefix("/status/") {
        let slug = rest.split('/').next().unwrap_or_default();
        return status::page_is_public(services, slug);
    }
    if let Some(rest) = path.strip_prefix("/badge/") {
        let encoded = rest.split('/').next().unwrap_or_default();
        let name = percent_encoding::percent_decode_str(encoded).decode_utf8_lossy();
        return status::check_is_public(services, &name) || status::badge_token_matches(services, &name, query);
    }
    false
}

/// A time as shown on pages.
pub(crate) fn time_text(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// How far `time` is from `now`, in words (`in 5 min`, `3 h ago`, `now`).
pub(crate) fn relative_text(time: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let seconds = (time - now).num_seconds();
    if seconds.abs() < 5 {
        return "now".into();
    }
    let words = svg::format_duration(seconds.unsigned_abs());
    if seconds > 0 { format!("in {words}") } else { format!("{words} ago") }
}

async fn home(State(ui): State<Arc<Ui>>, visitor: Visitor) -> Response {
    ui.page(StatusCode::OK, "home.html", &visitor, "home", "Overview", context! { flash => Value::UNDEFINED })
}

/// A form that carries only the cross-site token.
#[derive(Debug, Deserialize)]
struct TokenForm {
    #[serde(default)]
    csrf: String,
}

async fn reload(State(ui): State<Arc<Ui>>, post: Posted<Form<TokenForm>>) -> Response {
    if let Some(page) = post.refusal(&ui, &post.body.csrf, &format!("{}ui/", ui.base())) {
        return page;
    }
    let visitor = post.visitor;
    let flash = match ui.services.reload().await {
        Ok(()) => "Configuration reloaded.".to_string(),
        Err(err) => format!("Reload failed; the running configuration stays: {err}"),
    };
    ui.page(StatusCode::OK, "home.html", &visitor, "home", "Overview", context! { flash })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn every_template_compiles() {
        let mut templates = Environment::new();
        for (name, source) in TEMPLATES {
            templates.add_template(name, source).unwrap_or_else(|err| panic!("{name}: {err:#}"));
        }
    }

    #[test]
    fn relative_times_read_naturally() {
        let now = Utc.with_ymd_and_hms(2026, 12, 6, 12, 0, 0).unwrap();
        assert_eq!(relative_text(now + chrono::Duration::minutes(5), now), "in 5 min");
        assert_eq!(relative_text(now - chrono::Duration::hours(3), now), "3 h ago");
        assert_eq!(relative_text(now, now), "now");
    }
}
