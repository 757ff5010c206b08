//! The HTTP surface's one error type, for the REST API and the UI alike, and its two renderings:
//! JSON in Airflow's shape (`{"detail": ...}`) for the API, and weir's error page for the UI
//! (`api::ui::error`, applied to every UI route by the UI router). 4xx messages say precisely
//! what is wrong; 5xx messages are generic and the cause is logged; a transient database error
//! is a 503 with `Retry-After` in both.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::runtime::operations::OperationError;
use crate::storage::StorageError;
use crate::storage::failure::{ErrorClass, class_of_anyhow};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// The request is well-formed but its content is invalid (FastAPI's 422).
    #[error("{0}")]
    Unprocessable(String),
    /// The resource exists but cannot be changed this way (pools come from config.toml).
    #[error("{0}")]
    MethodNotAllowed(String),
    /// Switched off by configuration, a role too low, or refused by the UI's CSRF check.
    #[error("{0}")]
    Forbidden(String),
    /// The metadata database cannot be reached now (an outage weir waits out): try again.
    #[error("the metadata database is unavailable: {0}; retry shortly")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(#[from] anyhow::Error),
}

/// How many seconds a 503's `Retry-After` suggests.
const RETRY_AFTER_SECONDS: &str = "5";

/// What a 500 tells its reader; the cause goes to the server log.
const INTERNAL_MESSAGE: &str = "internal server error; the cause is in the weir server log";

/// Why the database is unavailable, when `error` is a transient database error.
pub fn unavailable_reason(error: &anyhow::Error) -> Option<String> {
    (class_of_anyhow(error) == ErrorClass::Transient).then(|| error.root_cause().to_string())
}

/// What an error tells the person reading it, whichever rendering shows it: its status and its
/// message, already logged when the cause is not for them. The JSON rendering leaves it in its
/// response's extensions, which is how the UI's layer renders the same error as a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorReport {
    pub status: StatusCode,
    pub message: String,
}

impl ErrorReport {
    /// `Retry-After` for a 503: the database is expected back.
    pub fn retry_after(&self) -> Option<(header::HeaderName, HeaderValue)> {
        (self.status == StatusCode::SERVICE_UNAVAILABLE)
            .then(|| (header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS)))
    }
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The status and message for the reader. An outage reached through `?` and anyhow is still
    /// an outage, not a bug; a 500's cause is logged here, once, and not shown.
    pub fn report(self) -> ErrorReport {
        let this = match self {
            ApiError::Internal(error) => match unavailable_reason(&error) {
                Some(reason) => ApiError::Unavailable(reason),
                None => ApiError::Internal(error),
            },
            other => other,
        };
        let message = match &this {
            ApiError::Internal(error) => {
                tracing::error!("HTTP request failed: {error:#}");
                INTERNAL_MESSAGE.to_string()
            }
            ApiError::Unavailable(_) => {
                tracing::debug!("HTTP request answered 503: {this}");
                this.to_string()
            }
            other => other.to_string(),
        };
        ErrorReport {
            status: this.status(),
            message,
        }
    }

    /// The REST API's rendering: `{"detail": message}` with the status (and `Retry-After` on a
    /// 503). The report rides along in the response's extensions for the UI's layer.
    pub fn into_json_response(self) -> Response {
        let report = self.report();
        let mut response = (report.status, Json(json!({ "detail": report.message }))).into_response();
        if let Some((name, value)) = report.retry_after() {
            response.headers_mut().insert(name, value);
        }
        response.extensions_mut().insert(report);
        response
    }

    /// The UI's rendering: weir's error page, escaped by the template engine.
    pub fn into_html_response(self) -> Response {
        crate::api::ui::error_page(self.report())
    }
}

/// A handler's error is JSON unless its route is a UI row, whose layer renders it as a page.
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.into_json_response()
    }
}

impl From<StorageError> for ApiError {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::Conflict(message) => ApiError::Conflict(message),
            StorageError::NotFound(message) => ApiError::NotFound(message),
            other => ApiError::Internal(other.into()),
        }
    }
}

impl From<OperationError> for ApiError {
    fn from(error: OperationError) -> Self {
        match error {
            OperationError::Invalid(message) => ApiError::BadRequest(message),
            OperationError::NotFound(message) => ApiError::NotFound(message),
            OperationError::Conflict(message) => ApiError::Conflict(message),
            OperationError::Storage(error) => ApiError::from(error),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        ApiError::Internal(error.into())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            // A date out of range is refused with 400 wherever it enters (`domain::dates`).
            JsonRejection::JsonDataError(error) if error.body_text().contains(crate::domain::dates::OUT_OF_RANGE) => {
                ApiError::BadRequest(format!("invalid request body: {}", error.body_text()))
            }
            JsonRejection::JsonDataError(error) => {
                ApiError::Unprocessable(format!("invalid request body: {}", error.body_text()))
            }
            JsonRejection::JsonSyntaxError(error) => {
                ApiError::BadRequest(format!("malformed JSON body: {}", error.body_text()))
            }
            JsonRejection::MissingJsonContentType(_) => {
                ApiError::BadRequest("send the body as JSON with `Content-Type: application/json`".to_string())
            }
            other => ApiError::BadRequest(other.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::Unprocessable(format!("invalid query parameters: {}", rejection.body_text()))
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::BadRequest(format!("invalid path: {}", rejection.body_text()))
    }
}

/// `axum::Json` whose rejections come back in our error shape.
#[derive(Debug, Clone, Copy, Default, axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

impl<T: serde::Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        Json(self.0).into_response()
    }
}

/// Query strings whose rejections come back in our error shape.
#[derive(Debug, Clone, Copy, Default, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// Path parameters whose rejections come back in our error shape.
#[derive(Debug, Clone, Copy, Default, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

#[cfg(test)]
mod tests {
    use super::*;

    fn outage() -> StorageError {
        StorageError::from(sqlx::Error::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset,
        )))
    }

    #[tokio::test]
    async fn an_unreachable_database_is_a_503_that_says_so_and_when_to_retry() {
        let response = ApiError::from(outage()).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[axum::http::header::RETRY_AFTER], RETRY_AFTER_SECONDS);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let detail = body["detail"].as_str().unwrap();
        assert!(
            detail.starts_with("the metadata database is unavailable: connection reset")
                && detail.ends_with("; retry shortly"),
            "{detail}"
        );
    }

    #[test]
    fn a_broken_database_is_a_500_and_an_outage_under_context_layers_still_a_503() {
        let ahead = StorageError::SchemaAhead {
            current: 9,
            supported: 7,
        };
        assert_eq!(
            ApiError::from(ahead).into_response().status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        let wrapped = ApiError::Internal(anyhow::Error::from(outage()).context("listing DAGs"));
        assert_eq!(wrapped.into_response().status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
