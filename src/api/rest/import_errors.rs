//! `/api/v2/importErrors`: DAG files that failed to load, one entry per problem.

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::query::QueryParams;
use crate::api::ApiState;
use crate::api::error::{ApiError, ApiJson, ApiPath};
use crate::storage::import_errors::{self, ImportError};

/// Airflow's `ImportErrorResponse`, plus weir's `line`, `column` and `message`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImportErrorResponse {
    pub import_error_id: i64,
    pub timestamp: DateTime<Utc>,
    pub filename: String,
    pub bundle_name: Option<String>,
    /// `file:line:column: message`, the form `weir dags validate` prints.
    pub stack_trace: String,
    pub line: u32,
    pub column: u32,
    pub message: String,
}

/// Airflow's `ImportErrorCollectionResponse`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImportErrorCollectionResponse {
    pub import_errors: Vec<ImportErrorResponse>,
    pub total_entries: usize,
}

fn view(error: ImportError) -> ImportErrorResponse {
    ImportErrorResponse {
        import_error_id: error.id,
        timestamp: error.timestamp,
        stack_trace: format!("{}:{}:{}: {}", error.filename, error.line, error.column, error.message),
        filename: error.filename,
        bundle_name: Some("dags-folder".to_string()),
        line: error.line,
        column: error.column,
        message: error.message,
    }
}

/// `GET /api/v2/importErrors`
pub async fn list(
    State(state): State<ApiState>,
    params: QueryParams,
) -> Result<ApiJson<ImportErrorCollectionResponse>, ApiError> {
    let page = params.page()?;
    let order = params.order_by(&["id", "import_error_id", "filename", "timestamp"], "id")?;
    let mut connection = state.db.acquire().await?;
    let mut errors: Vec<ImportErrorResponse> = import_errors::list(&mut connection)
        .await?
        .into_iter()
        .map(view)
        .collect();
    errors.sort_by(|a, b| {
        let ordering = match order.field.as_str() {
            "filename" => a.filename.cmp(&b.filename),
            "timestamp" => a.timestamp.cmp(&b.timestamp),
            _ => std::cmp::Ordering::Equal,
        };
        let ordering = ordering.then_with(|| a.import_error_id.cmp(&b.import_error_id));
        if order.descending { ordering.reverse() } else { ordering }
    });
    let total_entries = errors.len();
    Ok(ApiJson(ImportErrorCollectionResponse {
        import_errors: page.slice(errors),
        total_entries,
    }))
}

/// `GET /api/v2/importErrors/{import_error_id}`
pub async fn get(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<ImportErrorResponse>, ApiError> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("import_error_id must be an integer, got `{id}`")))?;
    let mut connection = state.db.acquire().await?;
    let error = import_errors::get(&mut connection, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no import error {id}")))?;
    Ok(ApiJson(view(error)))
}
