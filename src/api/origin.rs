//! Whether a browser request comes from weir's own pages: the `Origin` (or, without it, the
//! `Referer`) a browser attaches, compared with the addresses weir answers at. The UI's CSRF check
//! requires it on every form post; the REST API refuses state changes sent by another origin; and
//! a weir listening on loopback answers no request addressed to another host name (DNS rebinding).

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use reqwest::Url;

use super::ApiState;
use super::error::ApiError;
use crate::config::BindAddress;

/// The addresses weir counts as its own origin.
#[derive(Debug, Clone)]
pub struct OwnOrigin {
    /// The origin of `[webserver] base_url` (`scheme://host[:port]`).
    base: Option<String>,
    /// Whether weir listens on a loopback address only: then a `Host` that names anything but a
    /// loopback address is a page that pointed its own DNS name at 127.0.0.1 (DNS rebinding).
    loopback_only: bool,
}

/// Why a request is not from weir's own pages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForeignRequest {
    #[error("the request carries neither an Origin nor a Referer header, so weir cannot tell which page sent it")]
    NoOrigin,
    #[error("it was sent by a page at {0}, not by weir's own pages")]
    OtherOrigin(String),
}

impl OwnOrigin {
    /// `base_url` as configured (or its default `http://<bind>`) and the address weir listens on.
    pub fn new(base_url: &str, bind: &BindAddress) -> OwnOrigin {
        let base = Url::parse(base_url).ok().map(|url| url.origin().ascii_serialization());
        OwnOrigin {
            base,
            loopback_only: bind.is_loopback(),
        }
    }

    /// Whether `origin` (the text of an `Origin` header, or any URL) is weir's own, for a request
    /// that came with `host` (its `Host` header): the origin of `base_url`, or the address the
    /// browser used to reach weir (same scheme-less authority as `Host`).
    pub fn accepts(&self, origin: &str, host: Option<&str>) -> bool {
        let Ok(url) = Url::parse(origin) else {
            return false;
        };
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return false;
        }
        let serialized = url.origin().ascii_serialization();
        if self.base.as_deref() == Some(serialized.as_str()) {
            return true;
        }
        let Some(host) = host.filter(|host| host.bytes().all(|byte| byte.is_ascii_graphic())) else {
            return false;
        };
        let Ok(reached) = Url::parse(&format!("{}://{host}", url.scheme())) else {
            return false;
        };
        if reached.path() != "/" || reached.query().is_some() || !reached.username().is_empty() {
            return false;
        }
        if self.loopback_only && !names_loopback(&reached) {
            return false;
        }
        reached.origin().ascii_serialization() == serialized
    }

    /// Checks a browser's request: its `Origin` must be weir's own; without `Origin`, its
    /// `Referer` must be a page of weir's own origin; without either it is refused.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), ForeignRequest> {
        let host = headers.get(header::HOST).and_then(|value| value.to_str().ok());
        let claimed = match (headers.get(header::ORIGIN), headers.get(header::REFERER)) {
            (Some(origin), _) => origin,
            (None, Some(referer)) => referer,
            (None, None) => return Err(ForeignRequest::NoOrigin),
        };
        let claimed = String::from_utf8_lossy(claimed.as_bytes()).into_owned();
        if self.accepts(&claimed, host) {
            Ok(())
        } else {
            Err(ForeignRequest::OtherOrigin(shown_origin(&claimed)))
        }
    }
}

impl OwnOrigin {
    /// Whether a request addressed to `host` (its `Host` header) may be answered at all: always,
    /// unless weir listens on loopback only and `host` names another machine that is not the host
    /// of `base_url`. Such a request comes from a page whose DNS name was pointed at 127.0.0.1
    /// (DNS rebinding) to read or drive a weir that has no other protection.
    pub fn answers_host(&self, host: Option<&str>) -> bool {
        let Some(host) = host else {
            return true;
        };
        if !self.loopback_only {
            return true;
        }
        let Ok(reached) = Url::parse(&format!("http://{host}")) else {
            return false;
        };
        if names_loopback(&reached) {
            return true;
        }
        let base_host = self.base.as_deref().and_then(|base| Url::parse(base).ok());
        base_host.is_some_and(|base| base.host_str().is_some() && base.host_str() == reached.host_str())
    }
}

/// `localhost`, `*.localhost`, 127.0.0.0/8 or `[::1]`.
fn names_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => name == "localhost" || name.ends_with(".localhost"),
        Some(url::Host::Ipv4(address)) => address.is_loopback(),
        Some(url::Host::Ipv6(address)) => address.is_loopback(),
        None => false,
    }
}

/// The origin part of a claimed URL, for a message (never a whole Referer with its query).
fn shown_origin(claimed: &str) -> String {
    match Url::parse(claimed) {
        Ok(url) => url.origin().ascii_serialization(),
        Err(_) => "an unreadable address".to_string(),
    }
}

/// Methods that change nothing (RFC 9110's safe methods).
pub fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE)
}

/// Middleware for the REST API: a state-changing request that a browser sent from another origin
/// (it carries a foreign `Origin`) is refused with 403 before any handler runs. API clients send
/// no `Origin` and are not affected.
pub async fn refuse_foreign_browsers(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    if is_safe(request.method()) || !request.headers().contains_key(header::ORIGIN) {
        return next.run(request).await;
    }
    let own = OwnOrigin::new(&state.config.base_url, &state.config.bind);
    match own.check(request.headers()) {
        Ok(()) => next.run(request).await,
        Err(refusal) => ApiError::Forbidden(format!(
            "refused: {refusal}. The REST API does not accept state changes from other web pages; call it from a client (with no Origin header) or from weir's own address"
        ))
        .into_response(),
    }
}

/// Middleware for every route: see [`OwnOrigin::answers_host`]. The refusal says how to reach
/// weir instead.
pub async fn refuse_rebound_hosts(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let own = OwnOrigin::new(&state.config.base_url, &state.config.bind);
    let host = request
        .headers()
        .get(header::HOST)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    if own.answers_host(host.as_deref()) {
        return next.run(request).await;
    }
    tracing::warn!(
        host = host.as_deref().unwrap_or(""),
        "refused a request addressed to another host name"
    );
    (
        axum::http::StatusCode::MISDIRECTED_REQUEST,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!(
            "weir listens on a loopback address and answers only requests addressed to localhost, 127.0.0.1 or [::1] (or to the host of [webserver] base_url); this one was addressed to {}. Open weir at http://localhost:{}/ or set [webserver] base_url to the address you use.\n",
            host.unwrap_or_default(),
            state.config.bind.port()
        ),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loopback() -> OwnOrigin {
        OwnOrigin::new("http://127.0.0.1:8080", &"127.0.0.1:8080".parse().unwrap())
    }

    fn public() -> OwnOrigin {
        OwnOrigin::new("https://weir.example.com", &"0.0.0.0:8080".parse().unwrap())
    }

    #[test]
    fn a_loopback_weir_accepts_its_own_pages_only() {
        let cases: &[(&str, Option<&str>, bool)] = &[
            ("http://127.0.0.1:8080", None, true),
            ("http://127.0.0.1:8080", Some("127.0.0.1:8080"), true),
            ("http://127.0.0.1:8080/dags/x?tab=grid", Some("127.0.0.1:8080"), true),
            ("http://localhost:8080", Some("localhost:8080"), true),
            ("http://[::1]:8080", Some("[::1]:8080"), true),
            ("http://LOCALHOST:8080", Some("localhost:8080"), true),
            // Another port on the same host is another origin.
            ("http://127.0.0.1:3000", Some("127.0.0.1:8080"), false),
            ("http://localhost:3000", Some("localhost:8080"), false),
            ("http://127.0.0.1", Some("127.0.0.1:8080"), false),
            // A page that rebinds its own name to 127.0.0.1 sends a matching Host: still refused.
            ("http://evil.example:8080", Some("evil.example:8080"), false),
            // The browser reached weir through an https proxy that kept the Host.
            ("https://127.0.0.1:8080", Some("127.0.0.1:8080"), true),
            ("null", Some("127.0.0.1:8080"), false),
            ("", Some("127.0.0.1:8080"), false),
            ("file:///tmp/x.html", Some("127.0.0.1:8080"), false),
            ("data:text/html,x", Some("127.0.0.1:8080"), false),
            ("http://127.0.0.1:8080", Some("127.0.0.1:8080/x"), true),
            ("http://127.0.0.2:8080", Some("127.0.0.2:8080/x"), false),
            ("http://127.0.0.2:8080", Some("127.0.0.2:8080@evil"), false),
        ];
        for (origin, host, expected) in cases {
            assert_eq!(
                loopback().accepts(origin, *host),
                *expected,
                "origin {origin:?}, host {host:?}"
            );
        }
    }

    #[test]
    fn a_public_weir_accepts_its_base_url_and_the_address_the_browser_used() {
        let cases: &[(&str, Option<&str>, bool)] = &[
            ("https://weir.example.com", None, true),
            ("https://weir.example.com:443", Some("10.0.0.5:8080"), true),
            ("http://weir.example.com", None, false),
            ("https://weir.example.com.evil.example", None, false),
            ("http://10.0.0.5:8080", Some("10.0.0.5:8080"), true),
            ("http://10.0.0.5:8081", Some("10.0.0.5:8080"), false),
            ("https://evil.example", Some("10.0.0.5:8080"), false),
            ("https://evil.example", None, false),
        ];
        for (origin, host, expected) in cases {
            assert_eq!(
                public().accepts(origin, *host),
                *expected,
                "origin {origin:?}, host {host:?}"
            );
        }
    }

    #[test]
    fn a_loopback_weir_answers_loopback_names_and_its_base_url_host_only() {
        let behind_proxy = OwnOrigin::new("https://weir.example.com", &"127.0.0.1:8080".parse().unwrap());
        let cases: &[(&OwnOrigin, Option<&str>, bool)] = &[
            (&loopback(), None, true),
            (&loopback(), Some("127.0.0.1:8080"), true),
            (&loopback(), Some("localhost:8080"), true),
            (&loopback(), Some("app.localhost"), true),
            (&loopback(), Some("[::1]:8080"), true),
            (&loopback(), Some("127.1.2.3"), true),
            (&loopback(), Some("evil.example:8080"), false),
            (&loopback(), Some("localhost.evil.example:8080"), false),
            (&loopback(), Some("10.0.0.5:8080"), false),
            (&loopback(), Some("bad host"), false),
            (&behind_proxy, Some("weir.example.com"), true),
            (&behind_proxy, Some("evil.example"), false),
            (&public(), Some("anything.example:8080"), true),
        ];
        for (own, host, expected) in cases {
            assert_eq!(own.answers_host(*host), *expected, "host {host:?} for {own:?}");
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn origin_wins_over_referer_and_neither_is_refused() {
        let own = loopback();
        assert_eq!(own.check(&headers(&[("origin", "http://127.0.0.1:8080")])), Ok(()));
        assert_eq!(
            own.check(&headers(&[("referer", "http://127.0.0.1:8080/dags/shop?tab=grid")])),
            Ok(())
        );
        assert_eq!(
            own.check(&headers(&[
                ("origin", "http://127.0.0.1:3000"),
                ("referer", "http://127.0.0.1:8080/")
            ])),
            Err(ForeignRequest::OtherOrigin("http://127.0.0.1:3000".into()))
        );
        assert_eq!(
            own.check(&headers(&[("referer", "http://127.0.0.1:3000/attack.html?secret=1")])),
            Err(ForeignRequest::OtherOrigin("http://127.0.0.1:3000".into()))
        );
        assert_eq!(own.check(&headers(&[])), Err(ForeignRequest::NoOrigin));
    }
}
