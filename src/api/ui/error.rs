//! The HTML rendering of the one error type (`api::error::ApiError`): weir's error page with the
//! error's status and message, escaped by the template engine. UI handlers return `ApiError` like
//! the REST API's; [`render_errors_as_pages`], on every UI row, turns its JSON into this page.

use axum::extract::Request;
use axum::extract::rejection::{FormRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};

use super::render;
use crate::api::error::{ApiError, ErrorReport};

/// Weir's error page for `report`, with `Retry-After` on a 503.
pub fn error_page(report: ErrorReport) -> Response {
    let title = match report.status {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::BAD_REQUEST => "Bad request",
        StatusCode::CONFLICT => "Conflict",
        StatusCode::FORBIDDEN => "Forbidden",
        StatusCode::METHOD_NOT_ALLOWED => "Not allowed",
        StatusCode::UNPROCESSABLE_ENTITY => "Invalid request",
        StatusCode::TOO_MANY_REQUESTS => "Too many attempts",
        StatusCode::SERVICE_UNAVAILABLE => "Service unavailable",
        _ => "Server error",
    };
    let context = minijinja::context! {
        title,
        message => report.message,
        status => report.status.as_u16(),
    };
    let mut response = match render::page("error.html", context) {
        Ok(html) => (report.status, html).into_response(),
        Err(error) => {
            tracing::error!("rendering the error page failed: {error:#}");
            (
                report.status,
                Html(format!("<!doctype html><title>{title}</title><h1>{title}</h1>")),
            )
                .into_response()
        }
    };
    if let Some((name, value)) = report.retry_after() {
        response.headers_mut().insert(name, value);
    }
    response
}

/// The layer on every UI row: an `ApiError` the handler (or a UI extractor) answered with becomes
/// its page; every other response passes untouched. It runs inside the guard, so the page's menu
/// is the caller's.
pub async fn render_errors_as_pages(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    match response.extensions_mut().remove::<ErrorReport>() {
        Some(report) => {
            let mut page = error_page(report);
            // Whatever else the handler attached (an audit note) still reaches the outer layers.
            *page.extensions_mut() = std::mem::take(response.extensions_mut());
            page
        }
        None => response,
    }
}

/// A UI extractor's refusal: a browser's bad address, query or form is a 400 (the REST API's
/// FastAPI-shaped 422 is for programs).
#[derive(Debug)]
pub struct UiRejection(ApiError);

impl IntoResponse for UiRejection {
    fn into_response(self) -> Response {
        self.0.into_html_response()
    }
}

impl From<PathRejection> for UiRejection {
    fn from(rejection: PathRejection) -> Self {
        UiRejection(ApiError::BadRequest(format!(
            "invalid address: {}",
            rejection.body_text()
        )))
    }
}

impl From<QueryRejection> for UiRejection {
    fn from(rejection: QueryRejection) -> Self {
        UiRejection(ApiError::BadRequest(format!(
            "invalid query parameters: {}",
            rejection.body_text()
        )))
    }
}

impl From<FormRejection> for UiRejection {
    fn from(rejection: FormRejection) -> Self {
        UiRejection(ApiError::BadRequest(format!("invalid form: {}", rejection.body_text())))
    }
}

/// Path parameters whose rejections become a readable page.
#[derive(Debug, Clone, Copy, Default, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(UiRejection))]
pub struct UiPath<T>(pub T);

/// Query strings whose rejections become a readable page.
#[derive(Debug, Clone, Copy, Default, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(UiRejection))]
pub struct UiQuery<T>(pub T);

/// Form bodies whose rejections become a readable page.
#[derive(Debug, Clone, Copy, Default, axum::extract::FromRequest)]
#[from_request(via(axum::extract::Form), rejection(UiRejection))]
pub struct UiForm<T>(pub T);

#[cfg(test)]
mod tests {
    use axum::http::header;

    use super::*;
    use crate::storage::StorageError;

    async fn body_of(response: Response) -> String {
        let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        String::from_utf8(body.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn an_outage_is_a_503_page_that_says_when_to_retry() {
        let outage = StorageError::from(sqlx::Error::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset,
        )));
        let response = ApiError::Internal(anyhow::Error::from(outage).context("listing DAGs")).into_html_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "5");
        let body = body_of(response).await;
        assert!(body.contains("<!doctype html>"), "{body}");
        assert!(body.contains("Service unavailable"), "{body}");
        assert!(
            body.contains("the metadata database is unavailable: connection reset"),
            "{body}"
        );
    }

    #[tokio::test]
    async fn a_message_is_escaped_and_a_cause_of_a_500_is_not_shown() {
        let response = ApiError::NotFound("There is no DAG `<script>x</script>`.".to_string()).into_html_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert!(response.headers().get(header::RETRY_AFTER).is_none());
        let body = body_of(response).await;
        assert!(body.contains("&lt;script&gt;x&lt;/script&gt;"), "{body}");
        assert!(!body.contains("<script>x"), "{body}");

        let response = ApiError::Internal(anyhow::anyhow!("secret cause")).into_html_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = body_of(response).await;
        assert!(body.contains("the cause is in the weir server log"), "{body}");
        assert!(!body.contains("secret cause"), "{body}");
    }

    #[tokio::test]
    async fn the_json_rendering_carries_the_report_its_page_is_rendered_from() {
        let json = ApiError::Conflict("`shop` is already running.".to_string()).into_json_response();
        let report = json.extensions().get::<ErrorReport>().cloned().unwrap();
        let page = body_of(error_page(report.clone())).await;
        assert_eq!(report.status, StatusCode::CONFLICT);
        assert!(page.contains("`shop` is already running."), "{page}");
        assert_eq!(
            body_of(json).await,
            r#"{"detail":"`shop` is already running."}"#,
            "the API's body is unchanged"
        );
    }
}
