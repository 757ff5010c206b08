//! `GET /api/v2/monitor/health` and `GET /api/v2/version`.

use axum::Json;
use axum::extract::State;
use chrono::SecondsFormat;
use serde_json::{Value, json};

use crate::api::ApiState;
use crate::storage;

/// Healthy when the database answers and the scheduler wrote a heartbeat in the last 30 s.
pub async fn health(State(state): State<ApiState>) -> Json<Value> {
    let database = storage::ping(&state.db).await;
    let heartbeat = match state.db.acquire().await {
        Ok(mut connection) => storage::last_heartbeat(&mut connection).await.ok().flatten(),
        Err(_) => None,
    };
    let healthy = heartbeat.is_some_and(|beat| chrono::Utc::now() - beat < chrono::Duration::seconds(30));
    let beat = heartbeat.map(|beat| beat.to_rfc3339_opts(SecondsFormat::Micros, true));
    let status = if healthy { "healthy" } else { "unhealthy" };
    Json(json!({
        "metadatabase": { "status": if database.is_ok() { "healthy" } else { "unhealthy" } },
        "scheduler": { "status": status, "latest_scheduler_heartbeat": beat },
        "triggerer": { "status": Value::Null, "latest_triggerer_heartbeat": Value::Null },
        "dag_processor": { "status": status, "latest_dag_processor_heartbeat": beat },
    }))
}

pub async fn version() -> Json<Value> {
    Json(json!({ "version": env!("CARGO_PKG_VERSION"), "git_version": Value::Null }))
}
