//! The login page, login and logout: a session is the caller's token in an HttpOnly,
//! `SameSite=Lax` cookie (`Secure` when configured), as Airflow 3 keeps it. The login itself is
//! `api::auth::login`, shared with `POST /auth/token`.

use axum::extract::State;
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;

use super::error::{UiForm, UiQuery};
use super::render;
use crate::api::ApiState;
use crate::api::audit::AuditNote;
use crate::api::auth::{self, LoginFailure, LoginRequest};
use crate::api::error::ApiError;
use crate::config::AuthMode;
use crate::domain::audit::Surface;

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

/// Where to go after logging in: a path on weir itself ([`super::local_path`]: no `//host`,
/// `/\host`, tabs or line breaks, also once percent-decoded), else the DAG list; never back to
/// the login or logout page.
pub fn safe_next(next: Option<&str>) -> String {
    let Some(next) = next.and_then(super::local_path) else {
        return "/".to_string();
    };
    let path_only = next.split(['?', '#']).next().unwrap_or_default();
    if matches!(path_only, "/login" | "/logout") {
        return "/".to_string();
    }
    next.to_string()
}

fn login_page(status: StatusCode, next: &str, username: &str, error: Option<String>) -> Result<Response, ApiError> {
    let html = render::page("login.html", context! { next, username, error })?;
    Ok((status, html).into_response())
}

/// `GET /login`: the form; straight on to `next` when no login is needed or the session is good.
pub async fn page(
    State(state): State<ApiState>,
    headers: HeaderMap,
    UiQuery(query): UiQuery<LoginQuery>,
) -> Result<Response, ApiError> {
    let next = safe_next(query.next.as_deref());
    if state.auth.mode() == AuthMode::None || state.auth.authenticate(&state.db, &headers, true).await.is_ok() {
        return Ok(Redirect::to(&next).into_response());
    }
    login_page(StatusCode::OK, &next, "", None)
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

/// `POST /login`: a session cookie and a redirect to `next`, or the form again with why not.
pub async fn submit(
    State(state): State<ApiState>,
    extensions: Extensions,
    UiForm(form): UiForm<LoginForm>,
) -> Result<Response, ApiError> {
    let next = safe_next(form.next.as_deref());
    let request = LoginRequest {
        username: form.username.trim().to_string(),
        password: form.password,
    };
    if request.username.is_empty() || request.password.is_empty() {
        let error = Some("Enter your username and password.".to_string());
        return login_page(StatusCode::BAD_REQUEST, &next, &request.username, error);
    }
    match auth::login(&state, &request, Surface::Ui, auth::client_address(&extensions)).await {
        Ok((_, token)) => {
            // `login` recorded the sign-in with the username tried; the audit layer must not.
            let mut response = (AuditNote::not_recorded(), Redirect::to(&next)).into_response();
            let cookie = HeaderValue::from_str(&state.auth.session_cookie(&token))
                .map_err(|error| ApiError::Internal(anyhow::anyhow!("session cookie: {error}")))?;
            response.headers_mut().insert(header::SET_COOKIE, cookie);
            Ok(response)
        }
        Err(LoginFailure::Refused) => login_page(
            StatusCode::UNAUTHORIZED,
            &next,
            &request.username,
            Some("Wrong username or password.".to_string()),
        ),
        Err(failure @ LoginFailure::Throttled { retry_after }) => {
            let mut response = login_page(
                StatusCode::TOO_MANY_REQUESTS,
                &next,
                &request.username,
                Some(format!("{failure}.")),
            )?;
            if let Ok(value) = HeaderValue::from_str(&auth::retry_seconds(retry_after).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            Ok(response)
        }
        Err(LoginFailure::Internal(error)) => Err(ApiError::Internal(error)),
    }
}

/// `POST /logout`: ends the session in this browser and goes to the login page. The route is
/// public (an expired session can still log out), so no guard names the caller: the session, when
/// valid, does, for the audit log; without one nobody logged out and nothing is recorded.
pub async fn logout(State(state): State<ApiState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let mut response = Redirect::to("/login").into_response();
    match state.auth.authenticate(&state.db, &headers, true).await {
        Ok(principal) => {
            response.extensions_mut().insert(principal);
        }
        Err(_) => {
            response.extensions_mut().insert(AuditNote::not_recorded());
        }
    }
    let cookie = HeaderValue::from_str(&state.auth.cleared_session_cookie())
        .map_err(|error| ApiError::Internal(anyhow::anyhow!("session cookie: {error}")))?;
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_accepts_same_origin_paths_only() {
        for good in ["/", "/dags/shop?tab=runs", "/dags/a%20b"] {
            assert_eq!(safe_next(Some(good)), good);
        }
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "/x\r\nSet-Cookie: a=b",
            "/%2F%2Fevil.example",
            "javascript:alert(1)",
            "evil",
            "/login?next=/",
            "/logout",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/");
    }
}
