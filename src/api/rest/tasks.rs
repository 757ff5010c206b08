//! `/api/v2/dags/{dag_id}/tasks`: a DAG's tasks as defined in its file.

use std::time::Duration;

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use super::dags::loaded;
use super::query::{self, QueryParams};
use crate::api::ApiState;
use crate::api::error::{ApiError, ApiJson, ApiPath};
use crate::domain::dag::{Dag, Task};

/// Airflow's `TimeDelta`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TimeDelta {
    #[serde(rename = "__type")]
    pub kind: &'static str,
    pub days: u64,
    pub seconds: u64,
    pub microseconds: u32,
}

impl From<Duration> for TimeDelta {
    fn from(duration: Duration) -> Self {
        let total = duration.as_secs();
        TimeDelta {
            kind: "TimeDelta",
            days: total / 86_400,
            seconds: total % 86_400,
            microseconds: duration.subsec_micros(),
        }
    }
}

/// Airflow's `TaskResponse`, plus weir's `upstream_task_ids`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TaskResponse {
    pub task_id: String,
    pub task_display_name: String,
    pub owner: Option<String>,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    pub trigger_rule: String,
    pub depends_on_past: bool,
    pub wait_for_downstream: bool,
    pub retries: u32,
    pub queue: Option<String>,
    pub pool: String,
    pub pool_slots: u32,
    pub execution_timeout: Option<TimeDelta>,
    pub retry_delay: TimeDelta,
    /// Airflow 3's backoff multiplier: 2 (doubling) with exponential backoff, else 0.
    pub retry_exponential_backoff: f64,
    pub priority_weight: i64,
    pub weight_rule: Option<String>,
    pub ui_color: Option<String>,
    pub ui_fgcolor: Option<String>,
    pub template_fields: Vec<String>,
    pub downstream_task_ids: Vec<String>,
    pub upstream_task_ids: Vec<String>,
    pub doc_md: Option<String>,
    pub operator_name: String,
    pub params: Map<String, Value>,
    pub class_ref: Value,
    pub is_mapped: bool,
    pub extra_links: Vec<String>,
}

/// Airflow's `TaskCollectionResponse`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TaskCollectionResponse {
    pub tasks: Vec<TaskResponse>,
    pub total_entries: usize,
}

fn view(dag: &Dag, task: &Task) -> TaskResponse {
    let mut template_fields: Vec<String> = task
        .operator
        .templated_fields()
        .iter()
        .map(|(name, _)| name.to_string())
        .collect();
    if !task.env.is_empty() {
        template_fields.push("env".to_string());
    }
    TaskResponse {
        task_id: task.task_id.to_string(),
        task_display_name: task.task_id.to_string(),
        owner: (!dag.owner.is_empty()).then(|| dag.owner.clone()),
        start_date: dag.timetable.start_date,
        end_date: dag.timetable.end_date,
        trigger_rule: task.trigger_rule.as_str().to_string(),
        depends_on_past: task.depends_on_past,
        wait_for_downstream: false,
        retries: task.retry.retries,
        queue: None,
        pool: task.pool.clone(),
        pool_slots: task.pool_slots,
        execution_timeout: task.timeout.map(TimeDelta::from),
        retry_delay: TimeDelta::from(task.retry.retry_delay),
        retry_exponential_backoff: if task.retry.exponential_backoff { 2.0 } else { 0.0 },
        priority_weight: task.priority_weight,
        weight_rule: None,
        ui_color: None,
        ui_fgcolor: None,
        template_fields,
        downstream_task_ids: task.downstream.iter().map(ToString::to_string).collect(),
        upstream_task_ids: task.upstream.iter().map(ToString::to_string).collect(),
        doc_md: task.doc.clone(),
        operator_name: task.operator.type_name().to_string(),
        params: Map::new(),
        class_ref: json!({ "module_path": "weir", "class_name": task.operator.type_name() }),
        is_mapped: false,
        extra_links: Vec::new(),
    }
}

/// `GET /api/v2/dags/{dag_id}/tasks`
pub async fn list(
    State(state): State<ApiState>,
    ApiPath(dag_id): ApiPath<String>,
    params: QueryParams,
) -> Result<ApiJson<TaskCollectionResponse>, ApiError> {
    let dag_id = query::dag_id(&dag_id)?;
    let order = params.order_by(&["task_id"], "task_id")?;
    let dag = loaded(&state, &dag_id)?;
    let mut tasks: Vec<TaskResponse> = dag.tasks.iter().map(|task| view(&dag, task)).collect();
    tasks.sort_by(|a, b| a.task_id.cmp(&b.task_id));
    if order.descending {
        tasks.reverse();
    }
    let total_entries = tasks.len();
    Ok(ApiJson(TaskCollectionResponse { tasks, total_entries }))
}

/// `GET /api/v2/dags/{dag_id}/tasks/{task_id}`
pub async fn get(
    State(state): State<ApiState>,
    ApiPath((dag_id, task_id)): ApiPath<(String, String)>,
) -> Result<ApiJson<TaskResponse>, ApiError> {
    let dag_id = query::dag_id(&dag_id)?;
    let task_id = query::task_id(&task_id)?;
    let dag = loaded(&state, &dag_id)?;
    let task = dag
        .task(task_id.as_str())
        .ok_or_else(|| ApiError::NotFound(format!("DAG `{dag_id}` has no task `{task_id}`")))?;
    Ok(ApiJson(view(&dag, task)))
}
