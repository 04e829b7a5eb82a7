//! The HTTP surfaces and the one web layer in front of all of them.
//!
//! Each surface is one router whose handlers parse the request, call one
//! service and map its errors to status codes: [`exporter`] (`/probe`,
//! `/metrics`, `/-/reload`, `/logs`, …), the bridge's webhook and its
//! deliveries API. [`compose`] merges the surfaces a listener serves and puts
//! the `--web.config.file` layer (basic auth, extra headers) in front of them,
//! so every listener is guarded the same way; [`serve()`] runs a router on an
//! already-bound listener (HTTPS when the web config has TLS).

pub mod exporter;
pub mod history;
pub mod serve;
pub mod threads;
pub mod webconfig;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use webconfig::Web;

/// Which requests, by path (without the route prefix) and query, are served
/// without a login.
pub type Public = Arc<dyn Fn(&str, Option<&str>) -> bool + Send + Sync>;

/// Merges `surfaces` under `route_prefix` (`/` for none) behind the web layer.
pub fn compose(surfaces: impl IntoIterator<Item = Router>, route_prefix: &str, web: &Web) -> Router {
    compose_with_public(surfaces, route_prefix, web, Arc::new(|_: &str, _: Option<&str>| false))
}

/// Like [`compose`], serving the paths `public` accepts without a login
/// (credentials that are sent must still be right).
pub fn compose_with_public(
    surfaces: impl IntoIterator<Item = Router>,
    route_prefix: &str,
    web: &Web,
    public: Public,
) -> Router {
    let routes = surfaces.into_iter().fold(Router::new(), Router::merge);
    let prefix = route_prefix.trim_end_matches('/').to_string();
    let routes = if prefix.is_empty() { routes } else { Router::new().nest(&prefix, routes) };
    let layer = Layer { web: web.clone(), prefix, public };
    routes.layer(middleware::from_fn_with_state(Arc::new(layer), web_layer))
}

/// The web layer's state.
struct Layer {
    web: Web,
    prefix: String,
    public: Public,
}

/// Merges `surfaces` under `route_prefix` with no web layer: for surfaces
/// whose callers authenticate by their own secret (heartbeat pings carry a
/// UUID or ping key, pushed results a per-check token), merged beside a
/// [`compose`]d router so jobs never need the operator's login.
pub fn open(surfaces: impl IntoIterator<Item = Router>, route_prefix: &str) -> Router {
    let routes = surfaces.into_iter().fold(Router::new(), Router::merge);
    let prefix = route_prefix.trim_end_matches('/');
    if prefix.is_empty() { routes } else { Router::new().nest(prefix, routes) }
}

/// Basic auth and extra headers from `--web.config.file`, on every endpoint
/// of every listener except the public ones.
async fn web_layer(State(layer): State<Arc<Layer>>, request: Request, next: Next) -> Response {
    let web = &layer.web;
    let authorization = request.headers().get(header::AUTHORIZATION).and_then(|value| value.to_str().ok());
    let uri = request.uri();
    let public = authorization.is_none()
        && uri.path().strip_prefix(layer.prefix.as_str()).is_some_and(|path| (layer.public)(path, uri.query()));
    let verdict = if public { webconfig::Authorization::Allowed } else { web.authorize(authorization).await };
    match verdict {
        webconfig::Authorization::Allowed => {}
        webconfig::Authorization::Denied => {
            return Response::builder()
                .status(StatusCode::UNAUTHORIZED)
                .header(header::WWW_AUTHENTICATE, "Basic")
                .body(Body::from("Unauthorized\n"))
                .unwrap_or_default();
        }
        webconfig::Authorization::Busy => {
            return text(StatusCode::SERVICE_UNAVAILABLE, "Too many password checks in progress; try again later\n");
        }
    }
    let mut response = next.run(request).await;
    for (name, value) in web.headers.iter() {
        if let (Ok(name), Ok(value)) = (header::HeaderName::try_from(name.as_str()), HeaderValue::from_str(value)) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// A plain-text answer (the exporter's and the web layer's refusals and errors).
fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body.into()).into_response()
}

pub use serve::serve;
