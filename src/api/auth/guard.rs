//! The one guard every route goes through, with the `Access` its row in the REST or UI route
//! table declares: public routes pass untouched; others need a caller (401, or for UI pages a
//! redirect to the login page) whose role is high enough (403). The caller goes into the
//! request's extensions as `Principal`.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use super::AuthFailure;
use crate::api::ApiState;
use crate::api::audit::AuditNote;
use crate::api::error::ApiError;
use crate::domain::auth::{Access, Principal};

/// Which table a route is in: the two answer a refusal differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// JSON errors in Airflow's shape; the session cookie counts only for GET and HEAD, so a
    /// browser cannot be made to send a change cross-origin.
    Api,
    /// HTML pages: without a session, a redirect to `/login?next=...`.
    Ui,
}

/// Middleware for one route: `State((state, access, surface))`.
pub async fn guard(
    State((state, access, surface)): State<(ApiState, Access, Surface)>,
    mut request: Request,
    next: Next,
) -> Response {
    let Access::AtLeast(_) = access else {
        return next.run(request).await;
    };
    let reading = matches!(*request.method(), Method::GET | Method::HEAD);
    let cookie_allowed = surface == Surface::Ui || reading;
    let principal = match state
        .auth
        .authenticate(&state.db, request.headers(), cookie_allowed)
        .await
    {
        Ok(principal) => principal,
        Err(AuthFailure::Storage { unavailable: true }) => {
            return refusal(
                surface,
                ApiError::Unavailable("it did not answer a token check".to_string()),
            );
        }
        Err(AuthFailure::Storage { unavailable: false }) => {
            return refusal(
                surface,
                ApiError::Internal(anyhow::anyhow!("the metadata database did not answer a token check")),
            );
        }
        Err(failure) => return unauthenticated(surface, &failure, &request),
    };
    if !principal.may(access) {
        let error = ApiError::Forbidden(forbidden_message(&principal, access));
        // Rendered as the caller, so the page's menu is theirs.
        return crate::api::ui::with_caller(principal, async move { refusal(surface, error) }).await;
    }
    request.extensions_mut().insert(principal.clone());
    let mut response = match surface {
        Surface::Api => next.run(request).await,
        Surface::Ui => crate::api::ui::with_caller(principal.clone(), next.run(request)).await,
    };
    // The audit layer wraps this guard (it must see refusals pass by unrecorded), so it learns who
    // asked from the response.
    response.extensions_mut().insert(principal);
    response
}

/// The guard's refusal in its surface's rendering: JSON for the API, a page for the UI.
fn refusal(surface: Surface, error: ApiError) -> Response {
    match surface {
        Surface::Api => error.into_json_response(),
        Surface::Ui => error.into_html_response(),
    }
}

fn unauthenticated(surface: Surface, failure: &AuthFailure, request: &Request) -> Response {
    match surface {
        Surface::Api => {
            let mut response = (
                StatusCode::UNAUTHORIZED,
                axum::Json(serde_json::json!({ "detail": failure.to_string() })),
            )
                .into_response();
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        }
        Surface::Ui => {
            let reading = matches!(*request.method(), Method::GET | Method::HEAD);
            let target = match request.uri().path_and_query() {
                Some(path) if reading => format!("/login?next={}", crate::api::ui::encode(path.as_str())),
                _ => "/login".to_string(),
            };
            // A redirect is how a UI form says it succeeded: this one changed nothing, so the
            // audit layer must not record it.
            (AuditNote::not_recorded(), Redirect::to(&target)).into_response()
        }
    }
}

fn forbidden_message(principal: &Principal, access: Access) -> String {
    let needed = match access {
        Access::AtLeast(role) => role.as_str(),
        Access::Public => "no",
    };
    format!(
        "Forbidden: this needs the {needed} role or above; `{}` has {}",
        principal.username, principal.role
    )
}
