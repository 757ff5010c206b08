//! `/api/v2/dags`: list (filters, order, pages), get, details, and pause/unpause (`PATCH`). A DAG
//! is what the database recorded joined with its loaded definition, as in Airflow.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use super::query::{self, QueryParams};
use crate::api::ApiState;
use crate::api::audit::AuditNote;
use crate::api::error::{ApiError, ApiJson, ApiPath};
use crate::domain::dag::Dag;
use crate::domain::ids::DagId;
use crate::domain::schedule::Schedule;
use crate::runtime::loader::DagBag;
use crate::runtime::operations;
use crate::storage::{self, dags::DagRecord, runs};

/// Airflow's `DagTagResponse`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DagTagResponse {
    pub name: String,
    pub dag_id: String,
    pub dag_display_name: String,
}

/// Airflow's `DAGResponse`, plus weir's `is_active` and `timezone`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DagResponse {
    pub dag_id: String,
    pub dag_display_name: String,
    pub is_paused: bool,
    pub is_stale: bool,
    pub is_active: bool,
    pub last_parsed_time: Option<DateTime<Utc>>,
    pub last_expired: Option<DateTime<Utc>>,
    pub bundle_name: Option<String>,
    pub bundle_version: Option<String>,
    pub relative_fileloc: Option<String>,
    pub fileloc: String,
    pub file_token: String,
    pub description: Option<String>,
    pub timetable_summary: Option<String>,
    pub timetable_description: Option<String>,
    pub timetable_partitioned: bool,
    pub timetable_periodic: bool,
    pub timezone: String,
    pub tags: Vec<DagTagResponse>,
    pub max_active_tasks: u32,
    pub max_active_runs: Option<u32>,
    pub max_consecutive_failed_dag_runs: u32,
    pub has_task_concurrency_limits: bool,
    pub has_import_errors: bool,
    pub is_backfillable: bool,
    pub next_dagrun_logical_date: Option<DateTime<Utc>>,
    pub next_dagrun_data_interval_start: Option<DateTime<Utc>>,
    pub next_dagrun_data_interval_end: Option<DateTime<Utc>>,
    pub next_dagrun_run_after: Option<DateTime<Utc>>,
    pub owners: Vec<String>,
}

/// Airflow's `DAGCollectionResponse`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DagCollectionResponse {
    pub dags: Vec<DagResponse>,
    pub total_entries: usize,
}

/// Airflow's `DAGDetailsResponse`: the DAG plus its definition's settings.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DagDetailsResponse {
    #[serde(flatten)]
    pub dag: DagResponse,
    pub catchup: bool,
    pub concurrency: u32,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    pub is_paused_upon_creation: Option<bool>,
    pub params: Option<Map<String, Value>>,
    pub render_template_as_native_obj: bool,
    pub doc_md: Option<String>,
    pub last_parsed: Option<DateTime<Utc>>,
    pub active_runs_count: u32,
    pub template_search_path: Option<Vec<String>>,
    pub owner_links: Option<Map<String, Value>>,
    pub dag_run_timeout: Option<String>,
    pub default_args: Option<Map<String, Value>>,
    pub latest_dag_version: Option<Value>,
}

/// A DAG as weir knows it: the database record, the loaded definition, or both.
struct DagSource {
    record: Option<DagRecord>,
    dag: Option<Arc<Dag>>,
}

/// A stable opaque token for a file (Airflow's `file_token`): FNV-1a of its path, in hex.
fn file_token(fileloc: &str) -> String {
    format!("{:032x}", super::fnv1a_128(fileloc.as_bytes()))
}

fn view(source: &DagSource, import_error_files: &HashSet<String>) -> DagResponse {
    let record = source.record.as_ref();
    let dag = source.dag.as_deref();
    let dag_id = dag
        .map(|dag| dag.dag_id.to_string())
        .or_else(|| record.map(|record| record.dag_id.to_string()))
        .unwrap_or_default();
    let fileloc = dag
        .map(|dag| dag.fileloc.display().to_string())
        .or_else(|| record.map(|record| record.fileloc.clone()))
        .unwrap_or_default();
    let is_active = dag.is_some() || record.is_some_and(|record| record.is_active);
    let schedule = dag.map(|dag| &dag.timetable.schedule);
    let periodic = schedule.is_some_and(|schedule| matches!(schedule, Schedule::Cron { .. }));
    let summary = dag
        .map(|dag| dag.timetable.schedule.describe())
        .or_else(|| record.map(|record| record.schedule.clone()));
    let tags = dag
        .map(|dag| dag.tags.clone())
        .or_else(|| record.map(|record| record.tags.clone()))
        .unwrap_or_default();
    let owner = dag
        .map(|dag| dag.owner.clone())
        .or_else(|| record.map(|record| record.owner.clone()))
        .unwrap_or_default();
    let relative_fileloc = dag
        .and_then(|dag| dag.fileloc.file_name())
        .map(|name| name.to_string_lossy().to_string());
    DagResponse {
        dag_display_name: dag_id.clone(),
        is_paused: record.map_or_else(
            || dag.is_some_and(|dag| dag.is_paused_upon_creation),
            |record| record.is_paused,
        ),
        is_stale: !is_active,
        is_active,
        last_parsed_time: record.map(|record| record.last_parsed_at),
        last_expired: None,
        bundle_name: Some("dags-folder".to_string()),
        bundle_version: None,
        relative_fileloc,
        file_token: file_token(&fileloc),
        has_import_errors: import_error_files.contains(&fileloc),
        fileloc,
        description: dag
            .and_then(|dag| dag.description.clone())
            .or_else(|| record.and_then(|record| record.description.clone())),
        timetable_description: summary.clone(),
        timetable_summary: summary,
        timetable_partitioned: false,
        timetable_periodic: periodic,
        timezone: dag
            .map(|dag| dag.timetable.timezone.name().to_string())
            .or_else(|| record.map(|record| record.timezone.clone()))
            .unwrap_or_default(),
        tags: tags
            .into_iter()
            .map(|name| DagTagResponse {
                name,
                dag_id: dag_id.clone(),
                dag_display_name: dag_id.clone(),
            })
            .collect(),
        max_active_tasks: dag.map_or(16, |dag| dag.max_active_tasks),
        max_active_runs: Some(dag.map_or(16, |dag| dag.max_active_runs)),
        max_consecutive_failed_dag_runs: 0,
        has_task_concurrency_limits: false,
        is_backfillable: periodic,
        next_dagrun_logical_date: record.and_then(|record| record.next_dagrun_logical_date),
        next_dagrun_data_interval_start: None,
        next_dagrun_data_interval_end: None,
        next_dagrun_run_after: record.and_then(|record| record.next_dagrun_run_after),
        owners: if owner.is_empty() { Vec::new() } else { vec![owner] },
        dag_id,
    }
}

/// Every DAG: recorded ones joined with the loaded definitions, plus loaded ones not yet recorded.
async fn sources(state: &ApiState) -> Result<(Vec<DagSource>, HashSet<String>), ApiError> {
    let bag = state.bag();
    let mut connection = state.db.acquire().await?;
    let records = storage::dags::list(&mut connection).await?;
    let import_error_files: HashSet<String> = storage::import_errors::list(&mut connection)
        .await?
        .into_iter()
        .map(|error| error.filename)
        .collect();
    let mut by_id: BTreeMap<DagId, DagSource> = records
        .into_iter()
        .map(|record| {
            let dag = bag.get(&record.dag_id).cloned();
            (
                record.dag_id.clone(),
                DagSource {
                    record: Some(record),
                    dag,
                },
            )
        })
        .collect();
    for (dag_id, dag) in &bag.dags {
        by_id.entry(dag_id.clone()).or_insert_with(|| DagSource {
            record: None,
            dag: Some(Arc::clone(dag)),
        });
    }
    Ok((by_id.into_values().collect(), import_error_files))
}

async fn source(state: &ApiState, dag_id: &DagId) -> Result<(DagSource, HashSet<String>), ApiError> {
    let bag = state.bag();
    let mut connection = state.db.acquire().await?;
    let record = storage::dags::get(&mut connection, dag_id).await?;
    let dag = bag.get(dag_id).cloned();
    if record.is_none() && dag.is_none() {
        return Err(ApiError::NotFound(format!(
            "no DAG `{dag_id}`{}",
            did_you_mean(&bag, dag_id)
        )));
    }
    let import_error_files = storage::import_errors::list(&mut connection)
        .await?
        .into_iter()
        .map(|error| error.filename)
        .collect();
    Ok((DagSource { record, dag }, import_error_files))
}

/// The loaded definition of a DAG, or a 404 saying why it is missing.
pub(super) fn loaded(state: &ApiState, dag_id: &DagId) -> Result<Arc<Dag>, ApiError> {
    let bag = state.bag();
    bag.get(dag_id).cloned().ok_or_else(|| {
        ApiError::NotFound(format!(
            "DAG `{dag_id}` is not loaded from the DAG folder (its file is missing or broken: see /api/v2/importErrors){}",
            did_you_mean(&bag, dag_id)
        ))
    })
}

/// ` (did you mean `hello_world`?)` when a loaded DAG's id is near the one asked for.
fn did_you_mean(bag: &DagBag, dag_id: &DagId) -> String {
    crate::domain::suggest::closest(dag_id.as_str(), bag.dags.keys().map(DagId::as_str))
        .map(|nearest| format!(" (did you mean `{nearest}`?)"))
        .unwrap_or_default()
}

const ORDER_FIELDS: &[&str] = &["dag_id", "dag_display_name", "next_dagrun", "is_paused", "fileloc"];

/// `GET /api/v2/dags`
pub async fn list(
    State(state): State<ApiState>,
    params: QueryParams,
) -> Result<ApiJson<DagCollectionResponse>, ApiError> {
    let page = params.page()?;
    let order = params.order_by(ORDER_FIELDS, "dag_id")?;
    let pattern = params.one("dag_id_pattern").map(str::to_string);
    let tags = params.list("tags");
    let match_all_tags = match params.one("tags_match_mode") {
        None | Some("any") => false,
        Some("all") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "tags_match_mode must be `any` or `all`, got `{other}`"
            )));
        }
    };
    let paused = params.bool("paused")?;
    let exclude_stale = params.bool("exclude_stale")?.unwrap_or(true);
    let has_import_errors = params.bool("has_import_errors")?;
    let owners = params.list("owners");
    let (sources, import_error_files) = sources(&state).await?;
    let mut dags: Vec<DagResponse> = sources
        .iter()
        .map(|source| view(source, &import_error_files))
        .filter(|dag| {
            pattern
                .as_deref()
                .is_none_or(|pattern| query::like(pattern, &dag.dag_id))
        })
        .filter(|dag| {
            let has = |tag: &String| dag.tags.iter().any(|own| &own.name == tag);
            tags.is_empty()
                || if match_all_tags {
                    tags.iter().all(has)
                } else {
                    tags.iter().any(has)
                }
        })
        .filter(|dag| paused.is_none_or(|paused| dag.is_paused == paused))
        .filter(|dag| !exclude_stale || !dag.is_stale)
        .filter(|dag| has_import_errors.is_none_or(|wanted| dag.has_import_errors == wanted))
        .filter(|dag| owners.is_empty() || dag.owners.iter().any(|owner| owners.contains(owner)))
        .collect();
    dags.sort_by(|a, b| {
        let ordering = match order.field.as_str() {
            "next_dagrun" => a.next_dagrun_logical_date.cmp(&b.next_dagrun_logical_date),
            "is_paused" => a.is_paused.cmp(&b.is_paused),
            "fileloc" => a.fileloc.cmp(&b.fileloc),
            _ => a.dag_id.cmp(&b.dag_id),
        };
        let ordering = ordering.then_with(|| a.dag_id.cmp(&b.dag_id));
        if order.descending { ordering.reverse() } else { ordering }
    });
    let total_entries = dags.len();
    Ok(ApiJson(DagCollectionResponse {
        dags: page.slice(dags),
        total_entries,
    }))
}

/// `GET /api/v2/dags/{dag_id}`
pub async fn get(
    State(state): State<ApiState>,
    ApiPath(dag_id): ApiPath<String>,
) -> Result<ApiJson<DagResponse>, ApiError> {
    let dag_id = query::dag_id(&dag_id)?;
    let (source, import_error_files) = source(&state, &dag_id).await?;
    Ok(ApiJson(view(&source, &import_error_files)))
}

/// The params of a DAG in Airflow's serialized shape: `{name: {value, description, schema}}`.
fn params_view(dag: &Dag) -> Map<String, Value> {
    dag.params
        .0
        .iter()
        .map(|(name, param)| {
            let mut schema = Map::new();
            schema.insert("type".to_string(), json!(param.kind.as_str()));
            let optional = [
                ("enum", param.allowed.as_ref().map(|allowed| json!(allowed))),
                ("minimum", param.minimum.map(|value| json!(value))),
                ("maximum", param.maximum.map(|value| json!(value))),
                ("minLength", param.min_length.map(|value| json!(value))),
                ("maxLength", param.max_length.map(|value| json!(value))),
                ("pattern", param.pattern.as_ref().map(|pattern| json!(pattern.as_str()))),
            ];
            for (key, value) in optional {
                if let Some(value) = value {
                    schema.insert(key.to_string(), value);
                }
            }
            let value = json!({
                "__class": "airflow.sdk.definitions.param.Param",
                "value": param.default.clone().unwrap_or(Value::Null),
                "description": param.description,
                "schema": schema,
            });
            (name.clone(), value)
        })
        .collect()
}

/// `GET /api/v2/dags/{dag_id}/details`
pub async fn details(
    State(state): State<ApiState>,
    ApiPath(dag_id): ApiPath<String>,
) -> Result<ApiJson<DagDetailsResponse>, ApiError> {
    let dag_id = query::dag_id(&dag_id)?;
    let (source, import_error_files) = source(&state, &dag_id).await?;
    let mut connection = state.db.acquire().await?;
    let (queued, running) = runs::count_active(&mut connection, &dag_id).await?;
    let dag = source.dag.clone();
    let view = view(&source, &import_error_files);
    Ok(ApiJson(DagDetailsResponse {
        catchup: dag.as_ref().is_some_and(|dag| dag.catchup),
        concurrency: view.max_active_tasks,
        start_date: dag.as_ref().and_then(|dag| dag.timetable.start_date),
        end_date: dag.as_ref().and_then(|dag| dag.timetable.end_date),
        is_paused_upon_creation: dag.as_ref().map(|dag| dag.is_paused_upon_creation),
        params: dag.as_deref().map(params_view),
        render_template_as_native_obj: false,
        doc_md: None,
        last_parsed: view.last_parsed_time,
        active_runs_count: queued + running,
        template_search_path: None,
        owner_links: None,
        dag_run_timeout: None,
        default_args: None,
        latest_dag_version: None,
        dag: view,
    }))
}

/// Airflow's `DAGPatchBody`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DagPatchBody {
    pub is_paused: bool,
}

/// `PATCH /api/v2/dags/{dag_id}`: pauses or unpauses (the only field that can change).
pub async fn patch(
    State(state): State<ApiState>,
    ApiPath(dag_id): ApiPath<String>,
    params: QueryParams,
    ApiJson(body): ApiJson<DagPatchBody>,
) -> Result<(AuditNote, ApiJson<DagResponse>), ApiError> {
    let dag_id = query::dag_id(&dag_id)?;
    for field in params.list("update_mask") {
        if field != "is_paused" {
            return Err(ApiError::BadRequest(format!(
                "update_mask names `{field}`, but only `is_paused` can be changed"
            )));
        }
    }
    let (source, _) = source(&state, &dag_id).await?;
    match &source.dag {
        Some(dag) => operations::set_paused(&state.db, dag, body.is_paused).await?,
        None => operations::set_paused_recorded(&state.db, &dag_id, body.is_paused).await?,
    }
    let (source, import_error_files) = self::source(&state, &dag_id).await?;
    let note = AuditNote::new().detail("is_paused", body.is_paused);
    Ok((note, ApiJson(view(&source, &import_error_files))))
}
