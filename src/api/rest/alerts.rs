//! `/api/v2/alerts` (§9), weir's own resource: alert deliveries (one per alert and channel),
//! newest first, with their status, attempts and last error.

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::query::{self, QueryParams};
use crate::api::ApiState;
use crate::api::error::{ApiError, ApiJson, ApiPath};
use crate::domain::alerts::DeliveryStatus;
use crate::storage::alerts::{self, Alert, AlertFilter};

/// One delivery, with the field names of `weir alerts list --output json` (§7).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AlertResponse {
    pub id: i64,
    pub channel: String,
    /// `on_failure`, `on_retry`, `on_success` or `sla_miss`.
    pub event: String,
    pub dag_id: String,
    pub dag_run_id: String,
    /// `null` for run events.
    pub task_id: Option<String>,
    /// `pending` (waiting or being sent), `delivered` or `failed`.
    pub status: String,
    pub attempts: u32,
    /// Why the last attempt failed.
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    /// When a pending delivery is tried next.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The §9 fields as sent.
    pub payload: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AlertCollectionResponse {
    pub alerts: Vec<AlertResponse>,
    pub total_entries: i64,
}

fn view(alert: Alert) -> AlertResponse {
    let status = alert.status.shown();
    AlertResponse {
        id: alert.id,
        channel: alert.channel,
        event: alert.event.as_str().to_string(),
        dag_id: alert.dag_id,
        dag_run_id: alert.run_id,
        task_id: alert.task_id,
        status: status.as_str().to_string(),
        attempts: alert.attempts,
        error: alert.error,
        created_at: alert.created_at,
        delivered_at: alert.delivered_at,
        next_attempt_at: (status == DeliveryStatus::Pending).then_some(alert.next_attempt_at),
        payload: alert.payload,
    }
}

/// `GET /api/v2/alerts?dag_id=&status=&limit=&offset=`
pub async fn list(
    State(state): State<ApiState>,
    params: QueryParams,
) -> Result<ApiJson<AlertCollectionResponse>, ApiError> {
    let page = params.page()?;
    let status = match params.one("status") {
        Some(text) => Some(match text.parse::<DeliveryStatus>() {
            Ok(status) if status != DeliveryStatus::Sending => status,
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "query parameter `status` must be pending, delivered or failed, got `{text}`"
                )));
            }
        }),
        None => None,
    };
    let filter = AlertFilter {
        dag_id: params
            .one("dag_id")
            .map(query::dag_id)
            .transpose()?
            .map(|dag_id| dag_id.to_string()),
        status,
        limit: Some(page.limit),
        offset: page.offset,
    };
    let mut connection = state.db.acquire().await?;
    let total_entries = alerts::count(&mut connection, &filter).await?;
    let alerts = alerts::list(&mut connection, &filter)
        .await?
        .into_iter()
        .map(view)
        .collect();
    Ok(ApiJson(AlertCollectionResponse { alerts, total_entries }))
}

/// `GET /api/v2/alerts/{alert_id}`
pub async fn get(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<AlertResponse>, ApiError> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("alert_id must be an integer, got `{id}`")))?;
    let mut connection = state.db.acquire().await?;
    let alert = alerts::get(&mut connection, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no alert {id}: see GET /api/v2/alerts")))?;
    Ok(ApiJson(view(alert)))
}
