//! `/api/v2/dags/{dag_id}/dagRuns`: list (`~` for every DAG), get, trigger, set state, clear and
//! delete, through the same operations as the CLI so both refuse the same things.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::dags::loaded;
use super::query::{self, QueryParams};
use super::task_instances::{TaskInstanceCollectionResponse, instance_views};
use crate::api::ApiState;
use crate::api::audit::AuditNote;
use crate::api::error::{ApiError, ApiJson, ApiPath};
use crate::domain::dates::Timestamp;
use crate::domain::ids::{DagId, RunId};
use crate::domain::state::{RunState, RunType};
use crate::runtime::operations::{self, ClearRequest};
use crate::storage::runs::{self, DagRun, RunFilter, RunOrder, RunSortColumn};

/// Airflow's `DAGRunResponse`, plus weir's `backfill_id`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DagRunResponse {
    pub dag_run_id: String,
    pub dag_id: String,
    pub dag_display_name: String,
    pub logical_date: Option<DateTime<Utc>>,
    pub queued_at: Option<DateTime<Utc>>,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    pub duration: Option<f64>,
    pub data_interval_start: Option<DateTime<Utc>>,
    pub data_interval_end: Option<DateTime<Utc>>,
    pub run_after: DateTime<Utc>,
    pub last_scheduling_decision: Option<DateTime<Utc>>,
    pub run_type: &'static str,
    pub state: RunState,
    pub triggered_by: Option<&'static str>,
    pub triggering_user_name: Option<String>,
    pub conf: Option<Map<String, Value>>,
    pub note: Option<String>,
    pub dag_versions: Vec<Value>,
    pub bundle_version: Option<String>,
    pub partition_key: Option<String>,
    pub backfill_id: Option<i64>,
}

/// Airflow's `DAGRunCollectionResponse`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DagRunCollectionResponse {
    pub dag_runs: Vec<DagRunResponse>,
    pub total_entries: i64,
}

/// Airflow's spelling of a run type (`dataset` runs are Airflow 3's `asset_triggered`).
pub fn run_type_name(run_type: RunType) -> &'static str {
    match run_type {
        RunType::Scheduled => "scheduled",
        RunType::Manual => "manual",
        RunType::Backfill => "backfill",
        RunType::Dataset => "asset_triggered",
    }
}

pub(super) fn seconds_between(start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>) -> Option<f64> {
    let (start, end) = (start?, end?);
    Some((end - start).num_microseconds().unwrap_or(0) as f64 / 1_000_000.0)
}

pub fn run_view(run: &DagRun) -> DagRunResponse {
    DagRunResponse {
        dag_run_id: run.run_id.to_string(),
        dag_id: run.dag_id.to_string(),
        dag_display_name: run.dag_id.to_string(),
        logical_date: Some(run.logical_date),
        queued_at: run.queued_at,
        start_date: run.start_date,
        end_date: run.end_date,
        duration: seconds_between(run.start_date, run.end_date),
        data_interval_start: Some(run.data_interval_start),
        data_interval_end: Some(run.data_interval_end),
        run_after: run.run_after,
        last_scheduling_decision: None,
        run_type: run_type_name(run.run_type),
        state: run.state,
        triggered_by: match run.run_type {
            RunType::Scheduled => Some("timetable"),
            RunType::Backfill => Some("backfill"),
            RunType::Dataset => Some("asset"),
            RunType::Manual if run.owner.is_some() => Some("test"),
            RunType::Manual => None,
        },
        triggering_user_name: None,
        conf: match &run.conf {
            Value::Object(map) => Some(map.clone()),
            _ => None,
        },
        note: None,
        dag_versions: Vec::new(),
        bundle_version: None,
        partition_key: None,
        backfill_id: run.backfill_id,
    }
}

/// The run `run_id` of `dag_id`, or a 404.
pub(super) async fn find(state: &ApiState, dag_id: &DagId, run_id: &RunId) -> Result<DagRun, ApiError> {
    let mut connection = state.db.acquire().await?;
    runs::get(&mut connection, dag_id, run_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("DAG `{dag_id}` has no run `{run_id}`")))
}

fn sort_column(field: &str) -> RunSortColumn {
    match field {
        "dag_id" => RunSortColumn::DagId,
        "run_id" | "dag_run_id" => RunSortColumn::RunId,
        "state" => RunSortColumn::State,
        "run_type" => RunSortColumn::RunType,
        "logical_date" => RunSortColumn::LogicalDate,
        "run_after" => RunSortColumn::RunAfter,
        "queued_at" => RunSortColumn::QueuedAt,
        "start_date" => RunSortColumn::StartDate,
        "end_date" => RunSortColumn::EndDate,
        "data_interval_start" => RunSortColumn::DataIntervalStart,
        "data_interval_end" => RunSortColumn::DataIntervalEnd,
        _ => RunSortColumn::Id,
    }
}

const ORDER_FIELDS: &[&str] = &[
    "id",
    "dag_id",
    "run_id",
    "dag_run_id",
    "state",
    "run_type",
    "logical_date",
    "run_after",
    "queued_at",
    "start_date",
    "end_date",
    "data_interval_start",
    "data_interval_end",
];

/// `GET /api/v2/dags/{dag_id}/dagRuns` (`~` lists every DAG's runs).
pub async fn list(
    State(state): State<ApiState>,
    ApiPath(dag_id): ApiPath<String>,
    params: QueryParams,
) -> Result<ApiJson<DagRunCollectionResponse>, ApiError> {
    let dag_id = if dag_id == "~" {
        None
    } else {
        Some(query::dag_id(&dag_id)?)
    };
    let page = params.page()?;
    let order = params.order_by(ORDER_FIELDS, "id")?;
    let states = params
        .list("state")
        .iter()
        .map(|state| state.parse::<RunState>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| ApiError::BadRequest(error.to_string()))?;
    let run_types: Vec<String> = params.list("run_type");
    for run_type in &run_types {
        if !RunType::ALL.iter().any(|known| run_type_name(*known) == run_type) {
            return Err(ApiError::BadRequest(format!(
                "unknown run_type `{run_type}`: use scheduled, manual, backfill or asset_triggered"
            )));
        }
    }
    let mut connection = state.db.acquire().await?;
    if let Some(dag_id) = &dag_id
        && storage_dag_missing(&state, &mut connection, dag_id).await?
    {
        return Err(ApiError::NotFound(format!("no DAG `{dag_id}`")));
    }
    let filter = RunFilter {
        dag_id,
        states,
        limit: Some(page.limit),
        offset: page.offset,
        order: Some(RunOrder {
            column: sort_column(&order.field),
            descending: order.descending,
        }),
        ..RunFilter::default()
    };
    if run_types.is_empty() {
        let total_entries = runs::count(&mut connection, &filter).await?;
        let dag_runs = runs::list(&mut connection, &filter)
            .await?
            .iter()
            .map(run_view)
            .collect();
        return Ok(ApiJson(DagRunCollectionResponse {
            dag_runs,
            total_entries,
        }));
    }
    // Run types are few and rarely filtered on: filter the whole list, then page it.
    let unpaged = RunFilter {
        limit: None,
        offset: 0,
        ..filter
    };
    let matching: Vec<DagRunResponse> = runs::list(&mut connection, &unpaged)
        .await?
        .iter()
        .map(run_view)
        .filter(|run| run_types.iter().any(|run_type| run_type == run.run_type))
        .collect();
    let total_entries = i64::try_from(matching.len()).unwrap_or(i64::MAX);
    Ok(ApiJson(DagRunCollectionResponse {
        dag_runs: page.slice(matching),
        total_entries,
    }))
}

async fn storage_dag_missing(
    state: &ApiState,
    connection: &mut sqlx::AnyConnection,
    dag_id: &DagId,
) -> Result<bool, ApiError> {
    Ok(state.bag().get(dag_id).is_none() && crate::storage::dags::get(connection, dag_id).await?.is_none())
}

fn ids(dag_id: &str, run_id: &str) -> Result<(DagId, RunId), ApiError> {
    Ok((query::dag_id(dag_id)?, query::run_id(run_id)?))
}

/// `GET /api/v2/dags/{dag_id}/dagRuns/{dag_run_id}`
pub async fn get(
    State(state): State<ApiState>,
    ApiPath((dag_id, run_id)): ApiPath<(String, String)>,
) -> Result<ApiJson<DagRunResponse>, ApiError> {
    let (dag_id, run_id) = ids(&dag_id, &run_id)?;
    Ok(ApiJson(run_view(&find(&state, &dag_id, &run_id).await?)))
}

/// Airflow's `TriggerDAGRunPostBody`. `logical_date` may be missing or null: the run's logical
/// date is then now.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerBody {
    #[schema(pattern = "^[A-Za-z0-9_.:+~-]{1,250}$")]
    pub dag_run_id: Option<String>,
    pub logical_date: Option<Timestamp>,
    pub run_after: Option<Timestamp>,
    pub data_interval_start: Option<Timestamp>,
    pub data_interval_end: Option<Timestamp>,
    pub conf: Option<Map<String, Value>>,
    pub note: Option<String>,
    pub partition_key: Option<String>,
}

/// `POST /api/v2/dags/{dag_id}/dagRuns`: a manual run, `conf` checked against the DAG's params.
pub async fn trigger(
    State(state): State<ApiState>,
    ApiPath(dag_id): ApiPath<String>,
    ApiJson(body): ApiJson<TriggerBody>,
) -> Result<(AuditNote, ApiJson<DagRunResponse>), ApiError> {
    let dag_id = query::dag_id(&dag_id)?;
    let dag = loaded(&state, &dag_id)?;
    if body.note.is_some() {
        return Err(ApiError::BadRequest(
            "weir does not store notes on runs yet: leave out note".to_string(),
        ));
    }
    if body.partition_key.is_some() {
        return Err(ApiError::BadRequest(
            "weir has no partitioned runs: leave out partition_key".to_string(),
        ));
    }
    let conf = body.conf.map_or(Value::Null, Value::Object);
    let mut new_run = operations::manual_run(
        &dag,
        &conf,
        body.logical_date.map(Timestamp::get),
        body.dag_run_id.as_deref(),
        None,
    )?;
    match (
        body.data_interval_start.map(Timestamp::get),
        body.data_interval_end.map(Timestamp::get),
    ) {
        (Some(start), Some(end)) if start <= end => {
            new_run.data_interval_start = start;
            new_run.data_interval_end = end;
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::BadRequest(
                "data_interval_start must not be after data_interval_end".to_string(),
            ));
        }
        (None, None) => {}
        _ => {
            return Err(ApiError::BadRequest(
                "give both data_interval_start and data_interval_end, or neither".to_string(),
            ));
        }
    }
    if let Some(run_after) = body.run_after {
        new_run.run_after = run_after.get();
    }
    let run = operations::trigger(&state.db, &dag, &new_run).await?;
    let note = AuditNote::new().run(run.run_id.as_str()).logical_date(run.logical_date);
    Ok((note, ApiJson(run_view(&run))))
}

/// Airflow's `DAGRunPatchBody`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DagRunPatchBody {
    #[schema(pattern = "^(queued|success|failed)$")]
    pub state: Option<String>,
    pub note: Option<String>,
}

/// `PATCH /api/v2/dags/{dag_id}/dagRuns/{dag_run_id}`: sets the state (queued, success, failed).
pub async fn patch(
    State(state): State<ApiState>,
    ApiPath((dag_id, run_id)): ApiPath<(String, String)>,
    params: QueryParams,
    ApiJson(body): ApiJson<DagRunPatchBody>,
) -> Result<(AuditNote, ApiJson<DagRunResponse>), ApiError> {
    let (dag_id, run_id) = ids(&dag_id, &run_id)?;
    let mask = params.list("update_mask");
    for field in &mask {
        if field != "state" && field != "note" {
            return Err(ApiError::BadRequest(format!(
                "update_mask names `{field}`, but only `state` (and `note`) can be changed"
            )));
        }
    }
    if body.note.is_some() && mask.iter().any(|field| field == "note") {
        return Err(ApiError::BadRequest(
            "weir does not store notes on runs yet".to_string(),
        ));
    }
    let wanted = match body.state.as_deref() {
        Some(text @ ("queued" | "success" | "failed")) => text
            .parse::<RunState>()
            .map_err(|error| ApiError::BadRequest(error.to_string()))?,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "a run's state can be set to queued, success or failed, not `{other}`"
            )));
        }
        None => {
            let run = find(&state, &dag_id, &run_id).await?;
            return Ok((AuditNote::not_recorded(), ApiJson(run_view(&run))));
        }
    };
    let run = operations::set_run_state(&state.db, &dag_id, &run_id, wanted).await?;
    Ok((
        AuditNote::new().detail("state", wanted.as_str()),
        ApiJson(run_view(&run)),
    ))
}

/// Airflow's `DAGRunClearBody`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DagRunClearBody {
    #[serde(default = "yes")]
    pub dry_run: bool,
    #[serde(default)]
    pub only_failed: bool,
    #[serde(default)]
    pub only_new: bool,
    pub note: Option<String>,
    /// Accepted for Airflow clients; weir has no DAG versions, so it changes nothing.
    #[allow(dead_code, reason = "accepted and ignored: weir has no DAG versions")]
    pub run_on_latest_version: Option<bool>,
}

fn yes() -> bool {
    true
}

/// `POST /api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/clear`: the task instances that would be
/// cleared (dry run, the default), or the run after clearing them.
pub async fn clear(
    State(state): State<ApiState>,
    ApiPath((dag_id, run_id)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<DagRunClearBody>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let (dag_id, run_id) = ids(&dag_id, &run_id)?;
    if body.note.is_some() {
        return Err(ApiError::BadRequest(
            "weir does not store notes on runs yet: leave out note".to_string(),
        ));
    }
    if body.only_new {
        return Err(ApiError::BadRequest(
            "weir has no DAG versions: only_new cannot be used".to_string(),
        ));
    }
    let dag = loaded(&state, &dag_id)?;
    let run = find(&state, &dag_id, &run_id).await?;
    let request = ClearRequest {
        run_id: Some(run_id.clone()),
        only_failed: body.only_failed,
        ..ClearRequest::default()
    };
    let plan = operations::plan_clear(&state.db, &dag, &request).await?;
    if body.dry_run {
        let task_instances = instance_views(&state, &dag_id, &plan).await?;
        let total_entries = task_instances.len();
        let response = ApiJson(TaskInstanceCollectionResponse {
            task_instances,
            total_entries,
        });
        return Ok((AuditNote::not_recorded(), response).into_response());
    }
    operations::apply_clear(&state.db, &dag, &plan).await?;
    let run = find(&state, &dag_id, &run.run_id).await?;
    Ok(ApiJson(run_view(&run)).into_response())
}

/// `DELETE /api/v2/dags/{dag_id}/dagRuns/{dag_run_id}`
pub async fn delete(
    State(state): State<ApiState>,
    ApiPath((dag_id, run_id)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (dag_id, run_id) = ids(&dag_id, &run_id)?;
    operations::delete_run(&state.db, &dag_id, &run_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
