//! The HTTP surfaces and the one web layer in front of all of them.
//!
//! Each surface is one router whose handlers parse the request, call one
//! service and map its errors to status codes: [`exporter`] (`/probe`,
//! `/metrics`, `/-/reload`, `/logs`, …), the bridge's webhook and its
//! deliveries API. [`compose`] merges the surfaces a listener serves and puts
//! the `--web.config.file` layer (basic auth, extra headers) in front of them,
//! so every listener is guarded the same way; [`serve`] runs a router on an
//! already-bound listener (HTTPS when the web config has TLS).

pub mod exporter;
pub mod history;
pub mod webconfig;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use webconfig::Web;

/// Which paths (without the route prefix) are served without a login.
pub type Public = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Merges `surfaces` under `route_prefix` (`/` for none) behind the web layer.
pub fn compose(surfaces: impl IntoIterator<Item = Router>, route_prefix: &str, web: &Web) -> Router {
    compose_with_public(surfaces, route_prefix, web, Arc::new(|_: &str| false))
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

/// Basic auth and extra headers from `--web.config.file`, on every endpoint
/// of every listener except the public ones.
async fn web_layer(State(layer): State<Arc<Layer>>, request: Request, next: Next) -> Response {
    let web = &layer.web;
    let authorization = request.headers().get(header::AUTHORIZATION).and_then(|value| value.to_str().ok());
    let public = authorization.is_none()
        && request.uri().path().strip_prefix(layer.prefix.as_str()).is_some_and(|path| (layer.public)(path));
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
            return Response::builder()
                .status(StatusCode::SERVICE_UNAVAILABLE)
                .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
                .body(Body::from("Too many password checks in progress; try again later\n"))
                .unwrap_or_default();
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

/// Serves `router` on `listener` (HTTPS when `tls` is set) until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let Some(tls) = tls else {
        return axum::serve(listener, router).with_graceful_shutdown(shutdown.cancelled_owned()).await;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(error = %err, "Accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => return Ok(()),
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        // One task per connection, ended by the peer or the handshake timeout.
        tokio::spawn(async move {
            let Ok(Ok(stream)) = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await else {
                return;
            };
            let service = hyper_util::service::TowerToHyperService::new(router);
            let builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            if let Err(err) = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service).await {
                tracing::debug!(error = %err, "HTTPS connection ended with an error");
            }
        });
    }
}
