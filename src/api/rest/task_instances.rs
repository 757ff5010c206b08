//! Task instances under `/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances`: list, get,
//! set state (with a dry run), tries (logs by try number are `task_logs.rs`); and `POST
//! /api/v2/dags/{dag_id}/clearTaskInstances`.

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::dag_runs::{find, seconds_between};
use super::dags::loaded;
use super::query::{self, QueryParams};
pub use super::task_instance_id::instance_uuid;
pub use super::task_logs::{TaskInstancesLogResponse, logs};
use crate::api::ApiState;
use crate::api::audit::AuditNote;
use crate::api::error::{ApiError, ApiJson, ApiPath};
use crate::domain::dag::Dag;
use crate::domain::dates::Timestamp;
use crate::domain::ids::{DagId, RunId, TaskId};
use crate::domain::state::TaskState;
use crate::runtime::operations::{self, ClearPlan, ClearRequest};
use crate::storage::runs::DagRun;
use crate::storage::task_instances::{self, Attempt, TaskInstance};

/// Airflow's `TaskInstanceResponse`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TaskInstanceResponse {
    pub id: String,
    pub task_id: String,
    pub task_display_name: String,
    pub dag_id: String,
    pub dag_display_name: String,
    pub dag_run_id: String,
    pub map_index: i64,
    pub logical_date: Option<DateTime<Utc>>,
    pub run_after: DateTime<Utc>,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    pub duration: Option<f64>,
    /// `null` is Airflow's "no status" (weir's `none`).
    pub state: Option<TaskState>,
    pub try_number: u32,
    /// Retries allowed, Airflow's meaning: attempts allowed minus one.
    pub max_tries: u32,
    pub hostname: Option<String>,
    pub unixname: Option<String>,
    pub pool: String,
    pub pool_slots: u32,
    pub queue: Option<String>,
    pub priority_weight: Option<i64>,
    pub operator: Option<String>,
    pub operator_name: Option<String>,
    pub queued_when: Option<DateTime<Utc>>,
    pub scheduled_when: Option<DateTime<Utc>>,
    pub pid: Option<i64>,
    pub executor: Option<String>,
    pub executor_config: String,
    pub note: Option<String>,
    pub rendered_map_index: Option<String>,
    pub rendered_fields: Option<Map<String, Value>>,
    pub trigger: Option<Value>,
    pub triggerer_job: Option<Value>,
    pub dag_version: Option<Value>,
}

/// Airflow's `TaskInstanceCollectionResponse`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TaskInstanceCollectionResponse {
    pub task_instances: Vec<TaskInstanceResponse>,
    pub total_entries: usize,
}

/// Airflow's `TaskInstanceHistoryResponse`: one attempt.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TaskInstanceHistoryResponse {
    pub task_id: String,
    pub task_display_name: String,
    pub dag_id: String,
    pub dag_display_name: String,
    pub dag_run_id: String,
    pub map_index: i64,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    pub duration: Option<f64>,
    pub state: Option<TaskState>,
    pub try_number: u32,
    pub max_tries: u32,
    pub hostname: Option<String>,
    pub unixname: Option<String>,
    pub pool: String,
    pub pool_slots: u32,
    pub queue: Option<String>,
    pub priority_weight: Option<i64>,
    pub operator: Option<String>,
    pub operator_name: Option<String>,
    pub queued_when: Option<DateTime<Utc>>,
    pub scheduled_when: Option<DateTime<Utc>>,
    pub pid: Option<i64>,
    pub executor: Option<String>,
    pub executor_config: String,
    pub dag_version: Option<Value>,
    /// weir's own: the attempt's exit code, output and error.
    pub exit_code: Option<i64>,
    pub output: Option<String>,
    pub error: Option<String>,
}

/// Airflow's `TaskInstanceHistoryCollectionResponse`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TaskInstanceHistoryCollectionResponse {
    pub task_instances: Vec<TaskInstanceHistoryResponse>,
    pub total_entries: usize,
}

fn airflow_state(state: TaskState) -> Option<TaskState> {
    (state != TaskState::None).then_some(state)
}

fn operator_name(dag: Option<&Dag>, task_id: &TaskId) -> Option<String> {
    dag.and_then(|dag| dag.task(task_id.as_str()))
        .map(|task| task.operator.type_name().to_string())
}

pub fn instance_view(
    ti: &TaskInstance,
    run: &DagRun,
    dag: Option<&Dag>,
    rendered: Option<Map<String, Value>>,
) -> TaskInstanceResponse {
    let operator = operator_name(dag, &ti.task_id);
    TaskInstanceResponse {
        id: instance_uuid(ti.dag_id.as_str(), ti.run_id.as_str(), ti.task_id.as_str()),
        task_id: ti.task_id.to_string(),
        task_display_name: ti.task_id.to_string(),
        dag_id: ti.dag_id.to_string(),
        dag_display_name: ti.dag_id.to_string(),
        dag_run_id: ti.run_id.to_string(),
        map_index: -1,
        logical_date: Some(run.logical_date),
        run_after: run.run_after,
        start_date: ti.start_date,
        end_date: ti.end_date,
        duration: seconds_between(ti.start_date, ti.end_date),
        state: airflow_state(ti.state),
        try_number: ti.try_number,
        max_tries: ti.max_tries.saturating_sub(1),
        hostname: ti.hostname.clone(),
        unixname: None,
        pool: ti.pool.clone(),
        pool_slots: ti.pool_slots,
        queue: None,
        priority_weight: Some(ti.priority_weight),
        operator: operator.clone(),
        operator_name: operator,
        queued_when: ti.queued_at,
        scheduled_when: None,
        pid: ti.pid,
        executor: None,
        executor_config: "{}".to_string(),
        note: None,
        rendered_map_index: None,
        rendered_fields: rendered,
        trigger: None,
        triggerer_job: None,
        dag_version: None,
    }
}

fn attempt_view(ti: &TaskInstance, attempt: &Attempt, dag: Option<&Dag>) -> TaskInstanceHistoryResponse {
    let operator = operator_name(dag, &ti.task_id);
    TaskInstanceHistoryResponse {
        task_id: ti.task_id.to_string(),
        task_display_name: ti.task_id.to_string(),
        dag_id: ti.dag_id.to_string(),
        dag_display_name: ti.dag_id.to_string(),
        dag_run_id: ti.run_id.to_string(),
        map_index: -1,
        start_date: attempt.start_date,
        end_date: attempt.end_date,
        duration: seconds_between(attempt.start_date, attempt.end_date),
        state: airflow_state(attempt.state),
        try_number: attempt.try_number,
        max_tries: ti.max_tries.saturating_sub(1),
        hostname: attempt.hostname.clone(),
        unixname: None,
        pool: ti.pool.clone(),
        pool_slots: ti.pool_slots,
        queue: None,
        priority_weight: Some(ti.priority_weight),
        operator: operator.clone(),
        operator_name: operator,
        queued_when: Some(attempt.queued_at),
        scheduled_when: None,
        pid: attempt.pid,
        executor: None,
        executor_config: "{}".to_string(),
        dag_version: None,
        exit_code: attempt.exit_code,
        output: attempt.output.clone(),
        error: attempt.error.clone(),
    }
}

/// The task instances a clear plan names, as they are now.
pub(super) async fn instance_views(
    state: &ApiState,
    dag_id: &DagId,
    plan: &ClearPlan,
) -> Result<Vec<TaskInstanceResponse>, ApiError> {
    let dag = state.bag().get(dag_id).cloned();
    let mut connection = state.db.acquire().await?;
    let mut views = Vec::new();
    for (run, task_ids) in plan.values() {
        let current = task_instances::for_run(&mut connection, run.pk).await?;
        views.extend(
            current
                .iter()
                .filter(|ti| task_ids.contains(&ti.task_id))
                .map(|ti| instance_view(ti, run, dag.as_deref(), None)),
        );
    }
    Ok(views)
}

pub(super) fn ids(dag_id: &str, run_id: &str, task_id: &str) -> Result<(DagId, RunId, TaskId), ApiError> {
    Ok((query::dag_id(dag_id)?, query::run_id(run_id)?, query::task_id(task_id)?))
}

pub(super) async fn find_instance(state: &ApiState, run: &DagRun, task_id: &TaskId) -> Result<TaskInstance, ApiError> {
    let mut connection = state.db.acquire().await?;
    task_instances::get(&mut connection, run.pk, task_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("run `{}` has no task instance `{task_id}`", run.run_id)))
}

/// Only `map_index` -1 exists: weir has no mapped tasks.
pub(super) fn check_map_index(params: &QueryParams) -> Result<(), ApiError> {
    match params.one("map_index") {
        None | Some("-1") => Ok(()),
        Some(other) => Err(ApiError::NotFound(format!(
            "weir has no mapped tasks: map_index `{other}` does not exist (use -1 or leave it out)"
        ))),
    }
}

const ORDER_FIELDS: &[&str] = &[
    "task_id",
    "state",
    "start_date",
    "end_date",
    "duration",
    "try_number",
    "priority_weight",
    "pool",
    "map_index",
];

/// `GET .../dagRuns/{dag_run_id}/taskInstances`
pub async fn list(
    State(state): State<ApiState>,
    ApiPath((dag_id, run_id)): ApiPath<(String, String)>,
    params: QueryParams,
) -> Result<ApiJson<TaskInstanceCollectionResponse>, ApiError> {
    if dag_id == "~" || run_id == "~" {
        return Err(ApiError::BadRequest(
            "list task instances of one run: `~` for every DAG or run is not supported yet".to_string(),
        ));
    }
    let dag_id = query::dag_id(&dag_id)?;
    let run_id = query::run_id(&run_id)?;
    let page = params.page()?;
    let order = params.order_by(ORDER_FIELDS, "map_index")?;
    let states: Vec<String> = params.list("state");
    for state_name in &states {
        if state_name != "no_status" && state_name.parse::<TaskState>().is_err() {
            return Err(ApiError::BadRequest(format!(
                "unknown task instance state `{state_name}`"
            )));
        }
    }
    let task_filter = params.one("task_id").map(str::to_string);
    let run = find(&state, &dag_id, &run_id).await?;
    let dag = state.bag().get(&dag_id).cloned();
    let mut connection = state.db.acquire().await?;
    let mut instances: Vec<TaskInstanceResponse> = task_instances::for_run(&mut connection, run.pk)
        .await?
        .iter()
        .filter(|ti| {
            states.is_empty()
                || states
                    .iter()
                    .any(|wanted| wanted == ti.state.as_str() || (wanted == "no_status" && ti.state == TaskState::None))
        })
        .filter(|ti| {
            task_filter
                .as_deref()
                .is_none_or(|wanted| wanted == ti.task_id.as_str())
        })
        .map(|ti| instance_view(ti, &run, dag.as_deref(), None))
        .collect();
    instances.sort_by(|a, b| {
        let ordering = match order.field.as_str() {
            "state" => a.state.map(TaskState::as_str).cmp(&b.state.map(TaskState::as_str)),
            "start_date" => a.start_date.cmp(&b.start_date),
            "end_date" => a.end_date.cmp(&b.end_date),
            "duration" => a.duration.partial_cmp(&b.duration).unwrap_or(std::cmp::Ordering::Equal),
            "try_number" => a.try_number.cmp(&b.try_number),
            "priority_weight" => a.priority_weight.cmp(&b.priority_weight),
            "pool" => a.pool.cmp(&b.pool),
            _ => std::cmp::Ordering::Equal,
        };
        let ordering = ordering.then_with(|| a.task_id.cmp(&b.task_id));
        if order.descending { ordering.reverse() } else { ordering }
    });
    let total_entries = instances.len();
    Ok(ApiJson(TaskInstanceCollectionResponse {
        task_instances: page.slice(instances),
        total_entries,
    }))
}

/// `GET .../taskInstances/{task_id}`, with the latest attempt's rendered fields.
pub async fn get(
    State(state): State<ApiState>,
    ApiPath((dag_id, run_id, task_id)): ApiPath<(String, String, String)>,
) -> Result<ApiJson<TaskInstanceResponse>, ApiError> {
    let (dag_id, run_id, task_id) = ids(&dag_id, &run_id, &task_id)?;
    let run = find(&state, &dag_id, &run_id).await?;
    let ti = find_instance(&state, &run, &task_id).await?;
    let mut connection = state.db.acquire().await?;
    let rendered = task_instances::attempts(&mut connection, run.pk, &task_id)
        .await?
        .into_iter()
        .next_back()
        .and_then(|attempt| match attempt.rendered {
            Value::Object(map) => Some(map),
            _ => None,
        });
    let dag = state.bag().get(&dag_id).cloned();
    Ok(ApiJson(instance_view(&ti, &run, dag.as_deref(), rendered)))
}

/// `GET .../taskInstances/{task_id}/tries`: every attempt, oldest first.
pub async fn tries(
    State(state): State<ApiState>,
    ApiPath((dag_id, run_id, task_id)): ApiPath<(String, String, String)>,
) -> Result<ApiJson<TaskInstanceHistoryCollectionResponse>, ApiError> {
    let (dag_id, run_id, task_id) = ids(&dag_id, &run_id, &task_id)?;
    let run = find(&state, &dag_id, &run_id).await?;
    let ti = find_instance(&state, &run, &task_id).await?;
    let dag = state.bag().get(&dag_id).cloned();
    let mut connection = state.db.acquire().await?;
    let task_instances: Vec<TaskInstanceHistoryResponse> = task_instances::attempts(&mut connection, run.pk, &task_id)
        .await?
        .iter()
        .map(|attempt| attempt_view(&ti, attempt, dag.as_deref()))
        .collect();
    let total_entries = task_instances.len();
    Ok(ApiJson(TaskInstanceHistoryCollectionResponse {
        task_instances,
        total_entries,
    }))
}

/// Airflow's `PatchTaskInstanceBody` (plus `dry_run`, which Airflow has as a separate path).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchTaskInstanceBody {
    #[schema(pattern = "^(success|failed)$")]
    pub new_state: Option<String>,
    pub note: Option<String>,
    #[serde(default)]
    pub include_upstream: bool,
    #[serde(default)]
    pub include_downstream: bool,
    #[serde(default)]
    pub include_future: bool,
    #[serde(default)]
    pub include_past: bool,
    #[serde(default)]
    pub dry_run: bool,
}

/// `PATCH .../taskInstances/{task_id}`: marks it success or failed.
pub async fn patch(
    state: State<ApiState>,
    path: ApiPath<(String, String, String)>,
    params: QueryParams,
    ApiJson(body): ApiJson<PatchTaskInstanceBody>,
) -> Result<(AuditNote, ApiJson<TaskInstanceCollectionResponse>), ApiError> {
    let dry_run = body.dry_run;
    set_state(state, path, params, body, dry_run).await
}

/// `PATCH .../taskInstances/{task_id}/dry_run`: what `PATCH` would change, changing nothing.
pub async fn patch_dry_run(
    state: State<ApiState>,
    path: ApiPath<(String, String, String)>,
    params: QueryParams,
    ApiJson(body): ApiJson<PatchTaskInstanceBody>,
) -> Result<(AuditNote, ApiJson<TaskInstanceCollectionResponse>), ApiError> {
    set_state(state, path, params, body, true).await
}

async fn set_state(
    State(state): State<ApiState>,
    ApiPath((dag_id, run_id, task_id)): ApiPath<(String, String, String)>,
    params: QueryParams,
    body: PatchTaskInstanceBody,
    dry_run: bool,
) -> Result<(AuditNote, ApiJson<TaskInstanceCollectionResponse>), ApiError> {
    let (dag_id, run_id, task_id) = ids(&dag_id, &run_id, &task_id)?;
    check_map_index(&params)?;
    for field in params.list("update_mask") {
        if field != "new_state" && field != "note" {
            return Err(ApiError::BadRequest(format!(
                "update_mask names `{field}`, but only `new_state` can be changed"
            )));
        }
    }
    if body.include_upstream || body.include_downstream || body.include_future || body.include_past {
        return Err(ApiError::BadRequest(
            "weir marks one task instance at a time: include_upstream, include_downstream, include_future and include_past must be false".to_string(),
        ));
    }
    if body.note.is_some() {
        return Err(ApiError::BadRequest(
            "weir does not store notes on task instances yet".to_string(),
        ));
    }
    let new_state = match body.new_state.as_deref() {
        Some(text @ ("success" | "failed")) => text
            .parse::<TaskState>()
            .map_err(|error| ApiError::BadRequest(error.to_string()))?,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "a task instance can be marked success or failed, not `{other}`"
            )));
        }
        None => return Err(ApiError::BadRequest("give new_state: success or failed".to_string())),
    };
    let run = find(&state, &dag_id, &run_id).await?;
    find_instance(&state, &run, &task_id).await?;
    if !dry_run {
        operations::mark_task(&state.db, &dag_id, &run_id, &task_id, new_state).await?;
    }
    let ti = find_instance(&state, &run, &task_id).await?;
    let dag = state.bag().get(&dag_id).cloned();
    let note = if dry_run {
        AuditNote::not_recorded()
    } else {
        AuditNote::new().detail("new_state", new_state.as_str())
    };
    let response = ApiJson(TaskInstanceCollectionResponse {
        task_instances: vec![instance_view(&ti, &run, dag.as_deref(), None)],
        total_entries: 1,
    });
    Ok((note, response))
}

/// A task id in `task_ids`: a plain id, or Airflow's `[task_id, map_index]` pair.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum TaskIdEntry {
    Plain(String),
    Mapped(String, i64),
}

/// Airflow's `ClearTaskInstancesBody`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClearTaskInstancesBody {
    #[serde(default = "yes")]
    pub dry_run: bool,
    #[serde(default = "yes")]
    pub only_failed: bool,
    #[serde(default)]
    pub only_running: bool,
    #[serde(default)]
    pub include_downstream: bool,
    #[serde(default)]
    pub include_upstream: bool,
    #[serde(default)]
    pub include_future: bool,
    #[serde(default)]
    pub include_past: bool,
    #[serde(default = "yes")]
    pub reset_dag_runs: bool,
    pub task_ids: Option<Vec<TaskIdEntry>>,
    #[schema(pattern = "^[A-Za-z0-9_.:+~-]{1,250}$")]
    pub dag_run_id: Option<String>,
    pub start_date: Option<Timestamp>,
    pub end_date: Option<Timestamp>,
    pub note: Option<String>,
    /// Accepted for Airflow clients: weir never clears a queued or running instance anyway.
    #[allow(dead_code, reason = "accepted and ignored: running instances are never cleared")]
    pub prevent_running_task: Option<bool>,
    #[allow(dead_code, reason = "accepted and ignored: weir has no DAG versions")]
    pub run_on_latest_version: Option<bool>,
}

fn yes() -> bool {
    true
}

/// `POST /api/v2/dags/{dag_id}/clearTaskInstances`: the task instances cleared (or that would
/// be, with `dry_run`, the default).
pub async fn clear(
    State(state): State<ApiState>,
    ApiPath(dag_id): ApiPath<String>,
    ApiJson(body): ApiJson<ClearTaskInstancesBody>,
) -> Result<(AuditNote, ApiJson<TaskInstanceCollectionResponse>), ApiError> {
    let dag_id = query::dag_id(&dag_id)?;
    if body.include_upstream || body.include_future || body.include_past || body.only_running {
        return Err(ApiError::BadRequest(
            "weir clears by run or date range, with include_downstream: include_upstream, include_future, include_past and only_running must be false".to_string(),
        ));
    }
    if body.note.is_some() {
        return Err(ApiError::BadRequest(
            "weir does not store notes on task instances yet: leave out note".to_string(),
        ));
    }
    if !body.reset_dag_runs {
        return Err(ApiError::BadRequest(
            "weir always puts the runs of cleared task instances back to queued: reset_dag_runs must be true"
                .to_string(),
        ));
    }
    let dag = loaded(&state, &dag_id)?;
    let mut task_ids = Vec::new();
    for entry in body.task_ids.unwrap_or_default() {
        let task_id = match entry {
            TaskIdEntry::Plain(task_id) | TaskIdEntry::Mapped(task_id, -1) => query::task_id(&task_id)?,
            TaskIdEntry::Mapped(task_id, map_index) => {
                return Err(ApiError::BadRequest(format!(
                    "weir has no mapped tasks: [`{task_id}`, {map_index}] does not exist (use map index -1)"
                )));
            }
        };
        if dag.task(task_id.as_str()).is_none() {
            return Err(ApiError::NotFound(format!("DAG `{dag_id}` has no task `{task_id}`")));
        }
        task_ids.push(task_id);
    }
    if let (Some(start), Some(end)) = (body.start_date.map(Timestamp::get), body.end_date.map(Timestamp::get))
        && start > end
    {
        return Err(ApiError::BadRequest(
            "start_date must not be after end_date".to_string(),
        ));
    }
    let request = ClearRequest {
        run_id: body.dag_run_id.as_deref().map(query::run_id).transpose()?,
        from: body.start_date.map(Timestamp::get),
        to: body.end_date.map(Timestamp::get),
        task_pattern: None,
        task_ids,
        include_downstream: body.include_downstream,
        only_failed: body.only_failed,
    };
    let plan = operations::plan_clear(&state.db, &dag, &request).await?;
    if !body.dry_run {
        operations::apply_clear(&state.db, &dag, &plan).await?;
    }
    let task_instances = instance_views(&state, &dag_id, &plan).await?;
    let total_entries = task_instances.len();
    let note = match (body.dry_run, &request.run_id) {
        (true, _) => AuditNote::not_recorded(),
        (false, Some(run_id)) => AuditNote::new().run(run_id.as_str()).detail("cleared", total_entries),
        (false, None) => AuditNote::new().detail("cleared", total_entries),
    };
    let response = ApiJson(TaskInstanceCollectionResponse {
        task_instances,
        total_entries,
    });
    Ok((note, response))
}
