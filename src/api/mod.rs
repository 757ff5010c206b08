//! The HTTP surface. For now `GET /api/v2/monitor/health` in Airflow 3's shape; the REST API and
//! UI of §8 grow here.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chrono::SecondsFormat;
use serde_json::{Value, json};

use crate::storage::{self, Db};

#[derive(Clone)]
pub struct ApiState {
    pub db: Db,
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/v2/monitor/health", get(health))
        .with_state(state)
}

/// Healthy when the database answers and the scheduler wrote a heartbeat in the last 30 s.
async fn health(State(state): State<ApiState>) -> Json<Value> {
    let database = storage::ping(&state.db).await;
    let heartbeat = match state.db.acquire().await {
        Ok(mut connection) => storage::last_heartbeat(&mut connection).await.ok().flatten(),
        Err(_) => None,
    };
    let scheduler_healthy = heartbeat.is_some_and(|beat| chrono::Utc::now() - beat < chrono::Duration::seconds(30));
    Json(json!({
        "metadatabase": { "status": if database.is_ok() { "healthy" } else { "unhealthy" } },
        "scheduler": {
            "status": if scheduler_healthy { "healthy" } else { "unhealthy" },
            "latest_scheduler_heartbeat": heartbeat.map(|beat| beat.to_rfc3339_opts(SecondsFormat::Micros, false)),
        },
        "triggerer": { "status": Value::Null, "latest_triggerer_heartbeat": Value::Null },
        "dag_processor": { "status": if scheduler_healthy { "healthy" } else { "unhealthy" }, "latest_dag_processor_heartbeat": heartbeat.map(|beat| beat.to_rfc3339_opts(SecondsFormat::Micros, false)) },
    }))
}
