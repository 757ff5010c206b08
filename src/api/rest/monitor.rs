//! `GET /api/v2/monitor/health` and `GET /api/v2/version`.

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::ApiState;
use crate::api::error::ApiJson;
use crate::storage;

/// `healthy` or `unhealthy`.
fn status(healthy: bool) -> &'static str {
    if healthy { "healthy" } else { "unhealthy" }
}

/// Airflow's `BaseInfoResponse`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BaseInfoResponse {
    pub status: Option<&'static str>,
}

/// Airflow's `SchedulerInfoResponse`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SchedulerInfoResponse {
    pub status: Option<&'static str>,
    pub latest_scheduler_heartbeat: Option<DateTime<Utc>>,
}

/// Airflow's `TriggererInfoResponse` (weir has no triggerer: both `null`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TriggererInfoResponse {
    pub status: Option<&'static str>,
    pub latest_triggerer_heartbeat: Option<DateTime<Utc>>,
}

/// Airflow's `DagProcessorInfoResponse` (weir's scheduler parses the DAG folder).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DagProcessorInfoResponse {
    pub status: Option<&'static str>,
    pub latest_dag_processor_heartbeat: Option<DateTime<Utc>>,
}

/// Airflow's `HealthInfoResponse`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HealthInfoResponse {
    pub metadatabase: BaseInfoResponse,
    pub scheduler: SchedulerInfoResponse,
    pub triggerer: TriggererInfoResponse,
    pub dag_processor: DagProcessorInfoResponse,
}

/// Airflow's `VersionInfo`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VersionInfo {
    pub version: &'static str,
    pub git_version: Option<String>,
}

/// Healthy when the database answers and the scheduler wrote a heartbeat in the last 30 s.
pub async fn health(State(state): State<ApiState>) -> ApiJson<HealthInfoResponse> {
    let database = storage::ping(&state.db).await;
    let heartbeat = match state.db.acquire().await {
        Ok(mut connection) => storage::last_heartbeat(&mut connection).await.ok().flatten(),
        Err(_) => None,
    };
    let healthy = heartbeat.is_some_and(|beat| Utc::now() - beat < chrono::Duration::seconds(30));
    ApiJson(HealthInfoResponse {
        metadatabase: BaseInfoResponse {
            status: Some(status(database.is_ok())),
        },
        scheduler: SchedulerInfoResponse {
            status: Some(status(healthy)),
            latest_scheduler_heartbeat: heartbeat,
        },
        triggerer: TriggererInfoResponse {
            status: None,
            latest_triggerer_heartbeat: None,
        },
        dag_processor: DagProcessorInfoResponse {
            status: Some(status(healthy)),
            latest_dag_processor_heartbeat: heartbeat,
        },
    })
}

pub async fn version() -> ApiJson<VersionInfo> {
    ApiJson(VersionInfo {
        version: env!("CARGO_PKG_VERSION"),
        git_version: None,
    })
}
