//! Authentication and roles, as an attacker and as each role would meet them, on SQLite and
//! PostgreSQL: every row of the REST and UI route tables × {no token, garbage token, Viewer, User,
//! Op, Admin}; tokens from `POST /auth/token` (throttled, expiring, revoked); the UI's login,
//! session cookie and role-aware pages; `weir users ...`; and the first start's `admin`.

mod first_start;
mod routes;
mod sessions;
mod tokens;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::api::Api;

/// An answer with its headers, for what `Api::send` does not keep (Location, Set-Cookie).
#[derive(Debug)]
pub struct RawAnswer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl RawAnswer {
    pub fn location(&self) -> &str {
        self.headers
            .get(axum::http::header::LOCATION)
            .map_or("", |value| value.to_str().unwrap())
    }

    pub fn detail(&self) -> String {
        serde_json::from_str::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|body| body["detail"].as_str().map(str::to_string))
            .unwrap_or_default()
    }
}

/// Sends `request` exactly as built (no token added).
pub async fn send_raw(api: &Api, request: Request<Body>) -> RawAnswer {
    let response = api.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    RawAnswer {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}
