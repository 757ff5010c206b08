//! `/api/v2/datasets` and `/api/v2/datasets/events` (§6), weir's own resource: each dataset with
//! its producing tasks, consuming DAGs and newest event, and the events newest first. Airflow 3
//! calls datasets "assets"; the same lists are served at `/api/v2/assets` and
//! `/api/v2/assets/events` under Airflow's collection keys (`assets`, `asset_events`).

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::query::{self, QueryParams};
use crate::api::ApiState;
use crate::api::error::{ApiError, ApiJson};
use crate::runtime::datasets::{DatasetOverview, overview};
use crate::storage::datasets::{self, DatasetEvent, EventFilter};

/// A task whose `outlets` list the dataset.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProducingTask {
    pub dag_id: String,
    pub task_id: String,
}

/// A DAG whose schedule lists the dataset.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConsumingDag {
    pub dag_id: String,
}

/// The newest event of a dataset: which attempt updated it, and when.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LastEvent {
    pub id: i64,
    pub dag_id: String,
    pub run_id: String,
    pub task_id: String,
    pub try_number: u32,
    pub timestamp: DateTime<Utc>,
}

/// One dataset. `name` and `uri` are the same: the name written in `outlets` and schedules.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DatasetResponse {
    pub name: String,
    pub uri: String,
    pub producing_tasks: Vec<ProducingTask>,
    pub consuming_dags: Vec<ConsumingDag>,
    pub last_event: Option<LastEvent>,
    pub events_total: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DatasetCollectionResponse {
    pub datasets: Vec<DatasetResponse>,
    pub total_entries: usize,
}

/// The same list under Airflow 3's key.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AssetCollectionResponse {
    pub assets: Vec<DatasetResponse>,
    pub total_entries: usize,
}

/// One event, with Airflow's `AssetEventResponse` field names where they apply.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DatasetEventResponse {
    pub id: i64,
    pub name: String,
    pub uri: String,
    pub source_dag_id: String,
    pub source_task_id: String,
    pub source_run_id: String,
    pub source_try_number: u32,
    pub source_map_index: i64,
    pub timestamp: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DatasetEventCollectionResponse {
    pub dataset_events: Vec<DatasetEventResponse>,
    pub total_entries: i64,
}

/// The same list under Airflow 3's key.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AssetEventCollectionResponse {
    pub asset_events: Vec<DatasetEventResponse>,
    pub total_entries: i64,
}

fn dataset_view(dataset: DatasetOverview) -> DatasetResponse {
    DatasetResponse {
        uri: dataset.name.clone(),
        name: dataset.name,
        producing_tasks: dataset
            .lineage
            .producers
            .into_iter()
            .map(|(dag_id, task_id)| ProducingTask {
                dag_id: dag_id.to_string(),
                task_id: task_id.to_string(),
            })
            .collect(),
        consuming_dags: dataset
            .lineage
            .consumers
            .into_iter()
            .map(|dag_id| ConsumingDag {
                dag_id: dag_id.to_string(),
            })
            .collect(),
        events_total: dataset.events.as_ref().map_or(0, |events| events.events_total),
        last_event: dataset.events.map(|events| LastEvent {
            id: events.newest.id,
            dag_id: events.newest.source_dag_id,
            run_id: events.newest.source_run_id,
            task_id: events.newest.source_task_id,
            try_number: events.newest.source_try_number,
            timestamp: events.newest.created_at,
        }),
    }
}

fn event_view(event: DatasetEvent) -> DatasetEventResponse {
    DatasetEventResponse {
        id: event.id,
        uri: event.dataset.clone(),
        name: event.dataset,
        source_dag_id: event.source_dag_id,
        source_task_id: event.source_task_id,
        source_run_id: event.source_run_id,
        source_try_number: event.source_try_number,
        source_map_index: -1,
        timestamp: event.created_at,
    }
}

/// One page of datasets, filtered by `name_pattern`/`uri_pattern` and sorted by `order_by`.
async fn dataset_page(state: &ApiState, params: &QueryParams) -> Result<(Vec<DatasetResponse>, usize), ApiError> {
    let page = params.page()?;
    let order = params.order_by(&["name", "uri", "events_total", "last_event"], "name")?;
    let patterns: Vec<&str> = ["name_pattern", "uri_pattern"]
        .into_iter()
        .filter_map(|name| params.one(name))
        .collect();
    let mut connection = state.db.acquire().await?;
    let mut found: Vec<DatasetResponse> = overview(&mut connection, &state.bag())
        .await?
        .into_iter()
        .filter(|dataset| patterns.iter().all(|pattern| query::like(pattern, &dataset.name)))
        .map(dataset_view)
        .collect();
    found.sort_by(|a, b| {
        let ordering = match order.field.as_str() {
            "events_total" => a.events_total.cmp(&b.events_total),
            "last_event" => a
                .last_event
                .as_ref()
                .map(|event| event.id)
                .cmp(&b.last_event.as_ref().map(|event| event.id)),
            _ => std::cmp::Ordering::Equal,
        };
        let ordering = ordering.then_with(|| a.name.cmp(&b.name));
        if order.descending { ordering.reverse() } else { ordering }
    });
    let total_entries = found.len();
    Ok((page.slice(found), total_entries))
}

/// `GET /api/v2/datasets`
pub async fn list(
    State(state): State<ApiState>,
    params: QueryParams,
) -> Result<ApiJson<DatasetCollectionResponse>, ApiError> {
    let (datasets, total_entries) = dataset_page(&state, &params).await?;
    Ok(ApiJson(DatasetCollectionResponse {
        datasets,
        total_entries,
    }))
}

/// `GET /api/v2/assets`
pub async fn list_assets(
    State(state): State<ApiState>,
    params: QueryParams,
) -> Result<ApiJson<AssetCollectionResponse>, ApiError> {
    let (assets, total_entries) = dataset_page(&state, &params).await?;
    Ok(ApiJson(AssetCollectionResponse { assets, total_entries }))
}

/// The events filter from `dataset` (or Airflow's `name`/`uri`), `source_dag_id`,
/// `source_task_id`, `source_run_id`, `limit`, `offset` and `order_by` (`id` or `timestamp`,
/// newest first by default).
fn event_filter(params: &QueryParams) -> Result<EventFilter, ApiError> {
    let page = params.page()?;
    let order = params.order_by(&["id", "timestamp"], "-timestamp")?;
    let mut dataset = None;
    for name in ["dataset", "name", "uri"] {
        if let Some(value) = params.one(name) {
            if value.trim().is_empty() {
                return Err(ApiError::BadRequest(format!(
                    "query parameter `{name}` is empty: give a dataset name, as written in `outlets`"
                )));
            }
            dataset = Some(value.to_string());
        }
    }
    Ok(EventFilter {
        dataset,
        source_dag_id: params
            .one("source_dag_id")
            .map(query::dag_id)
            .transpose()?
            .map(|id| id.to_string()),
        source_task_id: params
            .one("source_task_id")
            .map(query::task_id)
            .transpose()?
            .map(|id| id.to_string()),
        source_run_id: params
            .one("source_run_id")
            .map(query::run_id)
            .transpose()?
            .map(|id| id.to_string()),
        limit: Some(page.limit),
        offset: page.offset,
        oldest_first: !order.descending,
    })
}

async fn event_page(state: &ApiState, params: &QueryParams) -> Result<(Vec<DatasetEventResponse>, i64), ApiError> {
    let filter = event_filter(params)?;
    let mut connection = state.db.acquire().await?;
    let total_entries = datasets::count_events(&mut connection, &filter).await?;
    let events = datasets::events(&mut connection, &filter)
        .await?
        .into_iter()
        .map(event_view)
        .collect();
    Ok((events, total_entries))
}

/// `GET /api/v2/datasets/events`
pub async fn events(
    State(state): State<ApiState>,
    params: QueryParams,
) -> Result<ApiJson<DatasetEventCollectionResponse>, ApiError> {
    let (dataset_events, total_entries) = event_page(&state, &params).await?;
    Ok(ApiJson(DatasetEventCollectionResponse {
        dataset_events,
        total_entries,
    }))
}

/// `GET /api/v2/assets/events`
pub async fn asset_events(
    State(state): State<ApiState>,
    params: QueryParams,
) -> Result<ApiJson<AssetEventCollectionResponse>, ApiError> {
    let (asset_events, total_entries) = event_page(&state, &params).await?;
    Ok(ApiJson(AssetEventCollectionResponse {
        asset_events,
        total_entries,
    }))
}
