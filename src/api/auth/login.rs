//! Logging in: [`login`] is the one function that decides a login, for `POST /auth/token` and for
//! the UI's login page alike (throttle, password check, token), so whatever must happen at every
//! login (the audit log) is added there once.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::extract::connect_info::ConnectInfo;
use axum::http::{Extensions, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::throttle;
use crate::api::ApiState;
use crate::api::audit::{self, AuditNote, LoginOutcome};
use crate::api::error::{ApiError, ApiJson};
use crate::config::AuthMode;
use crate::domain::audit::Surface;
use crate::domain::auth::Principal;
use crate::runtime::users::{self, Login};

/// `POST /auth/token`'s body, as Airflow 3 takes it; the login form has the same fields.
#[derive(Clone, Deserialize, utoipa::ToSchema)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

/// `POST /auth/token`'s answer, as Airflow 3 gives it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("LoginRequest")
            .field("username", &self.username)
            .field("password", &"***")
            .finish()
    }
}

/// Why a login did not give a token.
#[derive(Debug, thiserror::Error)]
pub enum LoginFailure {
    /// Too many failures for this username or from this address within a minute.
    #[error("Too many failed logins: try again in {} seconds", retry_seconds(*retry_after))]
    Throttled { retry_after: Duration },
    #[error("Invalid credentials: wrong username or password")]
    Refused,
    #[error("internal error: {0}")]
    Internal(#[from] anyhow::Error),
}

/// Decides a login from `address` (`None` when the server does not know it): throttled, refused,
/// or a token for the user. Every login, from the API or the UI, goes through here.
pub async fn login(
    state: &ApiState,
    request: &LoginRequest,
    surface: Surface,
    address: Option<IpAddr>,
) -> Result<(Principal, String), LoginFailure> {
    let outcome = decide_login(state, request, address).await;
    match &outcome {
        Ok((principal, _)) => tracing::info!(user = %principal.username, ?address, "login"),
        Err(LoginFailure::Internal(error)) => tracing::error!("login failed: {error:#}"),
        Err(failure) => tracing::warn!(user = %request.username, ?address, "login refused: {failure}"),
    }
    let audited = match &outcome {
        Ok(_) => Some(LoginOutcome::Succeeded),
        Err(LoginFailure::Refused | LoginFailure::Throttled { .. }) => Some(LoginOutcome::Failed),
        Err(LoginFailure::Internal(_)) => None,
    };
    if let Some(audited) = audited {
        audit::record_login(&state.db, audited, &request.username, surface, address).await;
    }
    outcome
}

async fn decide_login(
    state: &ApiState,
    request: &LoginRequest,
    address: Option<IpAddr>,
) -> Result<(Principal, String), LoginFailure> {
    let auth = &state.auth;
    let now = chrono::Utc::now();
    if auth.mode() == AuthMode::None {
        let principal = super::anonymous();
        let token = auth.issue(&principal, 0, now)?;
        return Ok((principal, token));
    }
    let keys = throttle::keys(&request.username, address);
    if let Some(retry_after) = auth.throttle().blocked(&keys, Instant::now()) {
        return Err(LoginFailure::Throttled { retry_after });
    }
    match users::check_login(&state.db, &request.username, &request.password)
        .await
        .map_err(anyhow::Error::from)?
    {
        Login::Accepted { principal, token_epoch } => {
            auth.throttle().record_success(&principal.username);
            let token = auth.issue(&principal, token_epoch, now)?;
            Ok((principal, token))
        }
        Login::Refused => {
            auth.throttle().record_failure(&keys, Instant::now());
            Err(LoginFailure::Refused)
        }
    }
}

/// Whole seconds to wait, rounded up, for `Retry-After`.
pub fn retry_seconds(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// The client's address, when the server was started with connection info.
pub fn client_address(extensions: &Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip())
}

/// `POST /auth/token`: `{"username", "password"}` → `201 {"access_token": ...}`, as Airflow 3.
pub async fn token_endpoint(
    State(state): State<ApiState>,
    extensions: Extensions,
    ApiJson(request): ApiJson<LoginRequest>,
) -> Response {
    // `login` records the attempt itself (with the username tried), so the audit layer does not.
    let response = match login(&state, &request, Surface::Api, client_address(&extensions)).await {
        Ok((_, token)) => (StatusCode::CREATED, axum::Json(TokenResponse { access_token: token })).into_response(),
        Err(failure @ LoginFailure::Refused) => {
            let mut response = (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({ "detail": failure.to_string() })),
            )
                .into_response();
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        }
        Err(failure @ LoginFailure::Throttled { retry_after }) => {
            let mut response = (
                StatusCode::TOO_MANY_REQUESTS,
                axum::Json(json!({ "detail": failure.to_string() })),
            )
                .into_response();
            if let Ok(value) = HeaderValue::from_str(&retry_seconds(retry_after).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
        Err(LoginFailure::Internal(error)) => ApiError::Internal(error).into_response(),
    };
    (AuditNote::not_recorded(), response).into_response()
}
