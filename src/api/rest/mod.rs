//! The REST API under `/api/v2`, following Airflow 3's stable REST API: paths, field names,
//! `limit`/`offset` pagination with `total_entries`, errors as `{"detail": ...}`.

mod monitor;

use axum::Router;
use axum::routing::get;

use super::ApiState;

pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/api/v2/monitor/health", get(monitor::health))
        .route("/api/v2/version", get(monitor::version))
}
