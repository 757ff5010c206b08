//! `GET /api/v2/monitor/health`, `GET /api/v2/version` and the DAG file JSON Schema at
//! `GET /schemas/dag.schema.json`.

use std::sync::LazyLock;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::ApiState;
use crate::api::error::ApiJson;
use crate::runtime::health::{Component, ComponentState};
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

/// How old the scheduler's heartbeat may be for it to count as alive.
const HEARTBEAT_FRESH: chrono::Duration = chrono::Duration::seconds(30);

/// Each part's real state. The metadatabase: whether it answers a read now and no loop of this
/// process is waiting out an outage. The scheduler: its
/// heartbeat is fresh and, when it runs in this process, its loop is alive and reaching the
/// database. The DAG processor (the folder loader): its task is alive, reaching the database,
/// and scanned the folder recently. A process without the scheduler (`weir webserver`) judges it
/// by the heartbeat in the database alone.
pub async fn health(State(state): State<ApiState>) -> ApiJson<HealthInfoResponse> {
    let now = Utc::now();
    // Unhealthy also while a loop of this process cannot use it: a SQLite file whose write lock
    // another process holds still answers reads.
    let database = match state.health.check_database(&state.db).await {
        Ok(()) if state.health.database_outage() => Err("a loop of this process cannot use it".to_string()),
        checked => checked,
    };
    let stored_heartbeat = match &database {
        Ok(()) => match state.db.acquire().await {
            Ok(mut connection) => storage::last_heartbeat(&mut connection).await.ok().flatten(),
            Err(_) => None,
        },
        Err(_) => None,
    };
    let scheduler_here = state.health.component(Component::Scheduler);
    let heartbeat = stored_heartbeat.max(scheduler_here.as_ref().and_then(|scheduler| scheduler.last_beat));
    let scheduler_healthy = database.is_ok()
        && heartbeat.is_some_and(|beat| now - beat < HEARTBEAT_FRESH)
        && scheduler_here.as_ref().is_none_or(ComponentState::is_working);
    let (dag_processor_healthy, last_scan) = match state.health.component(Component::DagProcessor) {
        Some(loader) => {
            let poll = chrono::Duration::from_std(state.config.dag_dir_poll).unwrap_or(HEARTBEAT_FRESH);
            let fresh = loader
                .last_beat
                .is_some_and(|scan| now - scan < poll * 3 + HEARTBEAT_FRESH);
            (loader.is_working() && fresh, loader.last_beat)
        }
        None => (scheduler_healthy, heartbeat),
    };
    ApiJson(HealthInfoResponse {
        metadatabase: BaseInfoResponse {
            status: Some(status(database.is_ok())),
        },
        scheduler: SchedulerInfoResponse {
            status: Some(status(scheduler_healthy)),
            latest_scheduler_heartbeat: heartbeat,
        },
        triggerer: TriggererInfoResponse {
            status: None,
            latest_triggerer_heartbeat: None,
        },
        dag_processor: DagProcessorInfoResponse {
            status: Some(status(dag_processor_healthy)),
            latest_dag_processor_heartbeat: last_scan,
        },
    })
}

pub async fn version() -> ApiJson<VersionInfo> {
    ApiJson(VersionInfo {
        version: env!("CARGO_PKG_VERSION"),
        git_version: None,
    })
}

/// The JSON Schema of DAG files, for editors (`# yaml-language-server: $schema=...`). Open like
/// the OpenAPI document: it describes the file format and holds nothing about this installation.
pub async fn dag_schema() -> Json<serde_json::Value> {
    static SCHEMA: LazyLock<serde_json::Value> = LazyLock::new(crate::domain::spec::dag_file_schema);
    Json(SCHEMA.clone())
}
