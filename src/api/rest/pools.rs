//! `/api/v2/pools`: the pools of `config.toml` with their current use. Read-only: pools are
//! changed in the config file, so writes answer 405 saying so.

use std::collections::BTreeMap;

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::query::QueryParams;
use crate::api::ApiState;
use crate::api::error::{ApiError, ApiJson, ApiPath};
use crate::domain::state::TaskState;
use crate::storage::task_instances;

/// Airflow's `PoolResponse`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PoolResponse {
    pub name: String,
    pub slots: i64,
    pub description: Option<String>,
    pub include_deferred: bool,
    pub occupied_slots: i64,
    pub running_slots: i64,
    pub queued_slots: i64,
    pub scheduled_slots: i64,
    pub open_slots: i64,
    pub deferred_slots: i64,
    pub team_name: Option<String>,
}

/// Airflow's `PoolCollectionResponse`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PoolCollectionResponse {
    pub pools: Vec<PoolResponse>,
    pub total_entries: usize,
}

async fn all(state: &ApiState) -> Result<Vec<PoolResponse>, ApiError> {
    let mut connection = state.db.acquire().await?;
    let mut usage: BTreeMap<(String, &'static str), i64> = BTreeMap::new();
    for (pool, task_state, slots) in task_instances::pool_usage(&mut connection).await? {
        *usage.entry((pool, task_state.as_str())).or_default() += slots;
    }
    let used = |pool: &str, task_state: TaskState| {
        usage
            .get(&(pool.to_string(), task_state.as_str()))
            .copied()
            .unwrap_or(0)
    };
    Ok(state
        .config
        .pools
        .iter()
        .map(|(name, slots)| {
            let running = used(name, TaskState::Running);
            let queued = used(name, TaskState::Queued);
            let slots = i64::from(*slots);
            PoolResponse {
                name: name.clone(),
                slots,
                description: Some("from [pools] in config.toml".to_string()),
                include_deferred: false,
                occupied_slots: running + queued,
                running_slots: running,
                queued_slots: queued,
                scheduled_slots: used(name, TaskState::Scheduled),
                open_slots: (slots - running - queued).max(0),
                deferred_slots: 0,
                team_name: None,
            }
        })
        .collect())
}

/// `GET /api/v2/pools`
pub async fn list(
    State(state): State<ApiState>,
    params: QueryParams,
) -> Result<ApiJson<PoolCollectionResponse>, ApiError> {
    let page = params.page()?;
    let order = params.order_by(&["name", "pool", "slots"], "name")?;
    let mut pools = all(&state).await?;
    pools.sort_by(|a, b| {
        let ordering = match order.field.as_str() {
            "slots" => a.slots.cmp(&b.slots).then_with(|| a.name.cmp(&b.name)),
            _ => a.name.cmp(&b.name),
        };
        if order.descending { ordering.reverse() } else { ordering }
    });
    let total_entries = pools.len();
    Ok(ApiJson(PoolCollectionResponse {
        pools: page.slice(pools),
        total_entries,
    }))
}

/// `GET /api/v2/pools/{pool_name}`
pub async fn get(
    State(state): State<ApiState>,
    ApiPath(name): ApiPath<String>,
) -> Result<ApiJson<PoolResponse>, ApiError> {
    all(&state)
        .await?
        .into_iter()
        .find(|pool| pool.name == name)
        .map(ApiJson)
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "no pool `{name}`: pools are defined under [pools] in config.toml"
            ))
        })
}

/// `POST`, `PATCH` and `DELETE` on pools: refused, pools live in the config file.
pub async fn read_only() -> ApiError {
    ApiError::MethodNotAllowed(
        "pools are read-only here: they come from [pools] in config.toml (name = slots); edit it and restart weir"
            .to_string(),
    )
}
