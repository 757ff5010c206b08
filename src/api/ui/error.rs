//! The UI's error type: every failure becomes a readable HTML page with the right status; a 5xx
//! page is generic and its cause goes to the server log.

use axum::extract::rejection::{FormRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use super::render;
use crate::runtime::operations::OperationError;
use crate::storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum UiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// Switched off by configuration, or refused by the CSRF check.
    #[error("{0}")]
    Forbidden(String),
    #[error("internal error: {0}")]
    Internal(#[from] anyhow::Error),
}

impl UiError {
    fn status(&self) -> StatusCode {
        match self {
            UiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            UiError::NotFound(_) => StatusCode::NOT_FOUND,
            UiError::Conflict(_) => StatusCode::CONFLICT,
            UiError::Forbidden(_) => StatusCode::FORBIDDEN,
            UiError::Internal(error) if crate::api::error::unavailable_reason(error).is_some() => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            UiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            UiError::Internal(error) => match crate::api::error::unavailable_reason(error) {
                Some(reason) => {
                    format!("The metadata database is unavailable ({reason}); weir is waiting for it. Retry shortly.")
                }
                None => {
                    tracing::error!("UI request failed: {error:#}");
                    "Something went wrong on the server; the cause is in the weir server log.".to_string()
                }
            },
            other => other.to_string(),
        };
        let title = match status {
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::BAD_REQUEST => "Bad request",
            StatusCode::CONFLICT => "Conflict",
            StatusCode::FORBIDDEN => "Forbidden",
            StatusCode::TOO_MANY_REQUESTS => "Too many attempts",
            StatusCode::SERVICE_UNAVAILABLE => "Service unavailable",
            _ => "Server error",
        };
        let context = minijinja::context! { title, message, status => status.as_u16() };
        match render::page("error.html", context) {
            Ok(html) => (status, html).into_response(),
            Err(error) => {
                tracing::error!("rendering the error page failed: {error:#}");
                (
                    status,
                    Html(format!("<!doctype html><title>{title}</title><h1>{title}</h1>")),
                )
                    .into_response()
            }
        }
    }
}

impl From<StorageError> for UiError {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::Conflict(message) => UiError::Conflict(message),
            StorageError::NotFound(message) => UiError::NotFound(message),
            other => UiError::Internal(other.into()),
        }
    }
}

impl From<OperationError> for UiError {
    fn from(error: OperationError) -> Self {
        match error {
            OperationError::Invalid(message) => UiError::BadRequest(message),
            OperationError::NotFound(message) => UiError::NotFound(message),
            OperationError::Conflict(message) => UiError::Conflict(message),
            OperationError::Storage(error) => UiError::from(error),
        }
    }
}

impl From<sqlx::Error> for UiError {
    fn from(error: sqlx::Error) -> Self {
        UiError::Internal(error.into())
    }
}

impl From<PathRejection> for UiError {
    fn from(rejection: PathRejection) -> Self {
        UiError::BadRequest(format!("invalid address: {}", rejection.body_text()))
    }
}

impl From<QueryRejection> for UiError {
    fn from(rejection: QueryRejection) -> Self {
        UiError::BadRequest(format!("invalid query parameters: {}", rejection.body_text()))
    }
}

impl From<FormRejection> for UiError {
    fn from(rejection: FormRejection) -> Self {
        UiError::BadRequest(format!("invalid form: {}", rejection.body_text()))
    }
}

/// The page for a caller whose role may not do what they asked.
pub fn forbidden_page(message: String) -> Response {
    UiError::Forbidden(message).into_response()
}

/// Path parameters whose rejections become a readable page.
#[derive(Debug, Clone, Copy, Default, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(UiError))]
pub struct UiPath<T>(pub T);

/// Query strings whose rejections become a readable page.
#[derive(Debug, Clone, Copy, Default, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(UiError))]
pub struct UiQuery<T>(pub T);

/// Form bodies whose rejections become a readable page.
#[derive(Debug, Clone, Copy, Default, axum::extract::FromRequest)]
#[from_request(via(axum::extract::Form), rejection(UiError))]
pub struct UiForm<T>(pub T);
