//! Cross-site request forgery protection for every UI route, as one layer: a state-changing
//! request (any method but GET/HEAD/OPTIONS/TRACE) is handled only when it comes from weir's own
//! origin (`Origin`, else `Referer`) AND carries the `csrf_token` field equal to the `weir_csrf`
//! cookie (double submit, compared in constant time). Otherwise it gets a 403 page and no handler
//! runs. Every UI response to a browser without the cookie sets a fresh random one; templates put
//! the token in each form with `{{ csrf_field() }}`.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use chacha20poly1305::aead::OsRng;
use chacha20poly1305::aead::rand_core::RngCore;
use subtle::ConstantTimeEq;

use crate::api::ApiState;
use crate::api::error::ApiError;
use crate::api::origin::{ForeignRequest, OwnOrigin, is_safe};

/// The cookie that holds the token (HttpOnly, `SameSite=Strict`, `Secure` under https).
pub const COOKIE_NAME: &str = "weir_csrf";
/// The form field that echoes it.
pub const FIELD_NAME: &str = "csrf_token";
/// Random bytes in a token (from the operating system's generator), written as hex.
const TOKEN_BYTES: usize = 32;

tokio::task_local! {
    /// The token of the UI request being handled, for the `csrf_field()` template function.
    static REQUEST_TOKEN: CsrfToken;
}

/// A token: 64 lower-case hex digits.
#[derive(Clone, PartialEq, Eq)]
pub struct CsrfToken(String);

impl std::fmt::Debug for CsrfToken {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("CsrfToken(***)")
    }
}

impl CsrfToken {
    fn generate() -> CsrfToken {
        let mut bytes = [0u8; TOKEN_BYTES];
        OsRng.fill_bytes(&mut bytes);
        CsrfToken(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
    }

    /// A well-formed token, or `None`.
    pub fn parse(text: &str) -> Option<CsrfToken> {
        (text.len() == TOKEN_BYTES * 2 && text.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f')))
            .then(|| CsrfToken(text.to_string()))
    }

    /// Whether `submitted` is this token, in time that does not depend on where they differ.
    fn matches(&self, submitted: &str) -> bool {
        bool::from(self.0.as_bytes().ct_eq(submitted.as_bytes()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The hidden field that carries the token of the request being rendered; `None` outside a UI
/// request (a template rendered elsewhere cannot hold a form that would work).
pub fn current_field() -> Option<String> {
    REQUEST_TOKEN
        .try_with(|token| {
            format!(
                "<input type=\"hidden\" name=\"{FIELD_NAME}\" value=\"{}\">",
                token.as_str()
            )
        })
        .ok()
}

/// Why a state-changing request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrfRefusal {
    #[error("{0}")]
    Foreign(#[from] ForeignRequest),
    #[error("your browser sent no {COOKIE_NAME} cookie (weir sets it with every page; cookies may be blocked)")]
    MissingCookie,
    #[error("the form carries no {FIELD_NAME} field (it was not made by a weir page)")]
    MissingField,
    #[error(
        "the form's {FIELD_NAME} does not match your {COOKIE_NAME} cookie (the page is older than the cookie, or it was not made by weir)"
    )]
    Mismatch,
}

/// The middleware: see the module documentation.
pub async fn protect(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let cookie_token = token_from_cookies(request.headers());
    let request = if is_safe(request.method()) {
        request
    } else {
        let own = OwnOrigin::new(&state.config.base_url, &state.config.bind);
        let (parts, body) = request.into_parts();
        let Ok(bytes) = to_bytes(body, crate::api::MAX_BODY_BYTES).await else {
            return ApiError::BadRequest(format!(
                "The form could not be read: it is larger than {} KiB, or the upload broke off. Nothing was changed.",
                crate::api::MAX_BODY_BYTES / 1024
            ))
            .into_html_response();
        };
        if let Err(refusal) = verify(&own, &parts.headers, cookie_token.as_ref(), &bytes) {
            tracing::warn!(method = %parts.method, path = %parts.uri.path(), "refused a UI request: {refusal}");
            return refused(&refusal);
        }
        Request::from_parts(parts, Body::from(bytes))
    };
    let (token, fresh) = match cookie_token {
        Some(token) => (token, false),
        None => (CsrfToken::generate(), true),
    };
    let mut response = REQUEST_TOKEN.scope(token.clone(), next.run(request)).await;
    if fresh {
        let secure = if state.config.base_url.starts_with("https://") {
            "; Secure"
        } else {
            ""
        };
        let cookie = format!(
            "{COOKIE_NAME}={}; Path=/; HttpOnly; SameSite=Strict{secure}",
            token.as_str()
        );
        match HeaderValue::from_str(&cookie) {
            Ok(value) => {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
            Err(error) => tracing::error!("the CSRF cookie is not a valid header value: {error}"),
        }
    }
    response
}

/// The checks, in order: the sending page's origin, then the token pair.
pub fn verify(
    own: &OwnOrigin,
    headers: &HeaderMap,
    cookie_token: Option<&CsrfToken>,
    form_body: &[u8],
) -> Result<(), CsrfRefusal> {
    own.check(headers)?;
    let cookie_token = cookie_token.ok_or(CsrfRefusal::MissingCookie)?;
    let submitted = form_urlencoded::parse(form_body)
        .find(|(name, _)| name == FIELD_NAME)
        .map(|(_, value)| value.into_owned())
        .ok_or(CsrfRefusal::MissingField)?;
    if cookie_token.matches(&submitted) {
        Ok(())
    } else {
        Err(CsrfRefusal::Mismatch)
    }
}

/// The first well-formed `weir_csrf` cookie of the request.
fn token_from_cookies(headers: &HeaderMap) -> Option<CsrfToken> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == COOKIE_NAME)
        .find_map(|(_, value)| CsrfToken::parse(value.trim_matches('"')))
}

fn refused(refusal: &CsrfRefusal) -> Response {
    ApiError::Forbidden(format!(
        "weir refused this request and changed nothing: {refusal}. Go back to the weir page, reload it, and submit the form again. If this keeps happening, check that your browser accepts cookies from weir and that you open weir at its own address ([webserver] base_url when it is behind a proxy)."
    ))
    .into_html_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own() -> OwnOrigin {
        OwnOrigin::new("http://127.0.0.1:8080", &"127.0.0.1:8080".parse().unwrap())
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn a_token_is_64_hex_digits_from_the_os_generator_and_never_repeats() {
        let first = CsrfToken::generate();
        let second = CsrfToken::generate();
        assert_eq!(CsrfToken::parse(first.as_str()), Some(first.clone()));
        assert_ne!(first, second);
        assert_eq!(format!("{first:?}"), "CsrfToken(***)");
        for bad in [
            "",
            "abc",
            &"A".repeat(64),
            &"g".repeat(64),
            &"a".repeat(63),
            &"a".repeat(65),
        ] {
            assert_eq!(CsrfToken::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_form_passes_only_from_weirs_origin_with_the_cookies_token() {
        let token = CsrfToken::generate();
        let other = CsrfToken::generate();
        let good_body = format!("state=success&{FIELD_NAME}={}", token.as_str());
        let ours = headers(&[("origin", "http://127.0.0.1:8080")]);
        type Case<'a> = (
            &'a str,
            HeaderMap,
            Option<&'a CsrfToken>,
            String,
            Result<(), CsrfRefusal>,
        );
        let cases: Vec<Case> = vec![
            ("all present", ours.clone(), Some(&token), good_body.clone(), Ok(())),
            (
                "referer instead of origin",
                headers(&[("referer", "http://127.0.0.1:8080/dags/x")]),
                Some(&token),
                good_body.clone(),
                Ok(()),
            ),
            (
                "another origin, even with the right token",
                headers(&[("origin", "http://127.0.0.1:3000")]),
                Some(&token),
                good_body.clone(),
                Err(CsrfRefusal::Foreign(ForeignRequest::OtherOrigin(
                    "http://127.0.0.1:3000".into(),
                ))),
            ),
            (
                "no origin, no referer",
                HeaderMap::new(),
                Some(&token),
                good_body.clone(),
                Err(CsrfRefusal::Foreign(ForeignRequest::NoOrigin)),
            ),
            (
                "no cookie",
                ours.clone(),
                None,
                good_body.clone(),
                Err(CsrfRefusal::MissingCookie),
            ),
            (
                "no field",
                ours.clone(),
                Some(&token),
                "state=success".into(),
                Err(CsrfRefusal::MissingField),
            ),
            (
                "another token",
                ours.clone(),
                Some(&other),
                good_body.clone(),
                Err(CsrfRefusal::Mismatch),
            ),
            (
                "an empty token",
                ours.clone(),
                Some(&token),
                format!("{FIELD_NAME}="),
                Err(CsrfRefusal::Mismatch),
            ),
            (
                "a prefix of the token",
                ours.clone(),
                Some(&token),
                format!("{FIELD_NAME}={}", &token.as_str()[..32]),
                Err(CsrfRefusal::Mismatch),
            ),
        ];
        for (what, headers, cookie, body, expected) in cases {
            assert_eq!(verify(&own(), &headers, cookie, body.as_bytes()), expected, "{what}");
        }
    }

    #[test]
    fn the_cookie_is_found_among_others_and_a_malformed_one_is_ignored() {
        let token = CsrfToken::generate();
        let found = token_from_cookies(&headers(&[
            ("cookie", "session=abc; weir_csrf=not-a-token"),
            ("cookie", &format!("theme=dark; {COOKIE_NAME}={}", token.as_str())),
        ]));
        assert_eq!(found, Some(token));
        assert_eq!(token_from_cookies(&headers(&[("cookie", "weir_csrf_other=1")])), None);
    }
}
