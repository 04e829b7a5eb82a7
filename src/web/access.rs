//! Who is looking, and what they may do: public visitors, read-only viewers
//! and operators; and the cross-site request guard on every form.
//!
//! Identity comes from `--web.config.file`'s `basic_auth_users` (the browser's
//! own login prompt). A user listed under `ui.operators` in checkit's config
//! is an operator; every other web-config user is a read-only viewer. Without
//! web-config users the UI is open and everyone on the listen address is an
//! operator, as with blackbox_exporter's own pages and `/-/reload`.
//!
//! Forms carry a token bound to the user (HMAC-SHA256 under a key made at
//! start-up) and a POST is also refused when the browser says it came from
//! another site (`Sec-Fetch-Site`) or its `Origin` is not this host: basic
//! auth credentials are sent by the browser on cross-site posts too, so the
//! login alone does not stop forged requests.

use super::Ui;
use crate::http::webconfig::{Authorization, decode_basic};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use ring::hmac;
use serde::Serialize;
use std::sync::Arc;

/// What a visitor may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Not logged in, on a public page.
    Public,
    /// A web-config user not listed as an operator: reads everything, changes nothing.
    Viewer,
    /// May pause, resume, edit incidents and open maintenance.
    Operator,
}

/// The visitor of one request.
#[derive(Debug, Clone, Serialize)]
pub struct Visitor {
    /// The web-config user, when logged in.
    pub user: Option<String>,
    /// What they may do.
    pub role: Role,
    /// True when no web-config users exist, so the UI is open to anyone.
    pub open: bool,
}

impl Visitor {
    /// Finds the visitor from the request's `Authorization` header. Public
    /// routes skip the auth layer, so the header is verified here again.
    pub async fn of(ui: &Ui, headers: &HeaderMap) -> Visitor {
        let web = ui.services.web();
        if !web.auth_required() {
            return Visitor { user: None, role: Role::Operator, open: true };
        }
        let authorization = headers.get(header::AUTHORIZATION).and_then(|value| value.to_str().ok());
        let user = match authorization {
            Some(value) if web.authorize(Some(value)).await == Authorization::Allowed => {
                decode_basic(value).map(|(user, _)| user)
            }
            _ => None,
        };
        let role = match &user {
            None => Role::Public,
            Some(user) if ui.services.config().ui.operators.iter().any(|operator| operator == user) => Role::Operator,
            Some(_) => Role::Viewer,
        };
        Visitor { user, role, open: false }
    }

    /// True for operators.
    pub fn may_operate(&self) -> bool {
        self.role == Role::Operator
    }
}

impl FromRequestParts<Arc<Ui>> for Visitor {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, ui: &Arc<Ui>) -> Result<Self, Self::Rejection> {
        Ok(Visitor::of(ui, &parts.headers).await)
    }
}

/// A form post: who sent it, its headers and its body (`Bytes` or a
/// `Form`), to be accepted unless [`Posted::refusal`] says why not.
pub struct Posted<T> {
    /// The sender.
    pub visitor: Visitor,
    headers: HeaderMap,
    /// The body, as `T` reads it.
    pub body: T,
}

impl<T> Posted<T> {
    /// The page (linking `back`) refusing the post, unless [`Csrf::verify`]
    /// accepts its `token`: only an operator, from this site.
    pub fn refusal(&self, ui: &Ui, token: &str, back: &str) -> Option<Response> {
        let refusal = ui.csrf.verify(&self.visitor, &self.headers, token).err()?;
        Some(ui.error(&self.visitor, refusal.status(), &refusal.to_string(), back))
    }
}

impl<T: FromRequest<Arc<Ui>>> FromRequest<Arc<Ui>> for Posted<T> {
    type Rejection = Response;

    async fn from_request(request: Request, ui: &Arc<Ui>) -> Result<Self, Self::Rejection> {
        let (parts, body) = request.into_parts();
        let visitor = Visitor::of(ui, &parts.headers).await;
        let headers = parts.headers.clone();
        let body = T::from_request(Request::from_parts(parts, body), ui).await.map_err(IntoResponse::into_response)?;
        Ok(Posted { visitor, headers, body })
    }
}

/// Makes and checks form tokens.
pub struct Csrf {
    key: hmac::Key,
}

impl Default for Csrf {
    fn default() -> Self {
        Csrf::new()
    }
}

/// Why a form post was refused; the text is shown to the person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The browser said the request came from another site.
    #[error("cross-site form posts are refused")]
    CrossSite,
    /// The `Origin` header names another host.
    #[error("the request's Origin is not this site")]
    ForeignOrigin,
    /// The token is missing or was made for another user or process.
    #[error("the form is stale or forged; reload the page and try again")]
    BadToken,
    /// The visitor is not an operator.
    #[error("only operators may change things; ask for your user to be listed under ui.operators")]
    NotOperator,
}

impl Refusal {
    /// The HTTP status for this refusal.
    pub fn status(self) -> StatusCode {
        StatusCode::FORBIDDEN
    }
}

impl Csrf {
    /// A fresh random key: tokens do not survive a restart, which only
    /// means an open form must be reloaded.
    pub fn new() -> Csrf {
        let mut key = [0u8; 32];
        rand::fill(&mut key);
        Csrf { key: hmac::Key::new(hmac::HMAC_SHA256, &key) }
    }

    /// The token for `visitor`'s forms.
    pub fn token(&self, visitor: &Visitor) -> String {
        let tag = hmac::sign(&self.key, Self::subject(visitor).as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag.as_ref())
    }

    fn subject(visitor: &Visitor) -> String {
        format!("checkit-form|{}", visitor.user.as_deref().unwrap_or(""))
    }

    /// Checks an operator's form post: fetch metadata, origin, token.
    pub fn verify(&self, visitor: &Visitor, headers: &HeaderMap, token: &str) -> Result<(), Refusal> {
        let header_text = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
        if let Some(site) = header_text("sec-fetch-site") {
            if site != "same-origin" && site != "none" {
                return Err(Refusal::CrossSite);
            }
        }
        if let Some(origin) = header_text("origin") {
            let origin_host = origin.split_once("://").map(|(_, host)| host.trim_end_matches('/'));
            if origin_host.is_none() || origin_host != header_text("host") {
                return Err(Refusal::ForeignOrigin);
            }
        }
        let given = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).map_err(|_| Refusal::BadToken)?;
        hmac::verify(&self.key, Self::subject(visitor).as_bytes(), &given).map_err(|_| Refusal::BadToken)?;
        if !visitor.may_operate() {
            return Err(Refusal::NotOperator);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn visitor(user: &str, role: Role) -> Visitor {
        Visitor { user: Some(user.into()), role, open: false }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn tokens_are_bound_to_the_user_and_the_site() {
        let csrf = Csrf::new();
        let alice = visitor("alice", Role::Operator);
        let token = csrf.token(&alice);
        let same = headers(&[("host", "127.0.0.1:9115"), ("origin", "http://127.0.0.1:9115")]);
        assert_eq!(csrf.verify(&alice, &same, &token), Ok(()));
        assert_eq!(csrf.verify(&alice, &headers(&[]), &token), Ok(()), "non-browser clients send no fetch metadata");
        let bob = visitor("bob", Role::Operator);
        assert_eq!(csrf.verify(&bob, &same, &token), Err(Refusal::BadToken));
        assert_eq!(csrf.verify(&alice, &same, ""), Err(Refusal::BadToken));
        assert_eq!(csrf.verify(&alice, &same, &Csrf::new().token(&alice)), Err(Refusal::BadToken));
        let cross = headers(&[("host", "127.0.0.1:9115"), ("sec-fetch-site", "cross-site")]);
        assert_eq!(csrf.verify(&alice, &cross, &token), Err(Refusal::CrossSite));
        let foreign = headers(&[("host", "127.0.0.1:9115"), ("origin", "http://evil.example")]);
        assert_eq!(csrf.verify(&alice, &foreign, &token), Err(Refusal::ForeignOrigin));
        let opaque = headers(&[("host", "127.0.0.1:9115"), ("origin", "null")]);
        assert_eq!(csrf.verify(&alice, &opaque, &token), Err(Refusal::ForeignOrigin));
        let viewer = visitor("carol", Role::Viewer);
        assert_eq!(csrf.verify(&viewer, &same, &csrf.token(&viewer)), Err(Refusal::NotOperator));
    }
}
