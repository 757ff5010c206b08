//! `/api/v2/backfills`: list, create, dry run, get, pause, unpause and cancel (§3.8), in Airflow
//! 3's shapes, through the same operations as `weir dags backfill` and `weir backfills`.

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::dags::loaded;
use super::query::{self, QueryParams};
use crate::api::ApiState;
use crate::api::audit::AuditNote;
use crate::api::error::{ApiError, ApiJson, ApiPath};
use crate::domain::backfill::{BackfillState, DateAction, PlannedDate, Reprocess};
use crate::domain::dag::Dag;
use crate::domain::dates::{DateError, RangeEnd, parse_range_bound};
use crate::runtime::operations::{self, BackfillRequest};
use crate::storage::backfills::{self, Backfill};

/// Airflow's `BackfillResponse`, plus weir's `state`, `run_backwards` and progress.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BackfillResponse {
    pub id: i64,
    pub dag_id: String,
    pub dag_display_name: String,
    pub from_date: DateTime<Utc>,
    pub to_date: DateTime<Utc>,
    pub dag_run_conf: Option<Map<String, Value>>,
    pub is_paused: bool,
    pub reprocess_behavior: &'static str,
    pub max_active_runs: u32,
    pub run_backwards: bool,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    /// `running`, `paused`, `completed` or `cancelled`.
    pub state: &'static str,
    /// Dates that get a run (created or re-run).
    pub runs_total: u32,
    /// Of those, runs that have finished.
    pub runs_done: u32,
}

/// Airflow's `BackfillCollectionResponse`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BackfillCollectionResponse {
    pub backfills: Vec<BackfillResponse>,
    pub total_entries: usize,
}

/// Airflow's `DryRunBackfillResponse`, plus what would happen to the date and to which run.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DryRunBackfillResponse {
    pub logical_date: DateTime<Utc>,
    /// `create` (a new run) or `rerun` (the existing run is cleared).
    pub action: &'static str,
    pub dag_run_id: Option<String>,
    pub data_interval_start: DateTime<Utc>,
    pub data_interval_end: DateTime<Utc>,
}

/// Airflow's `DryRunBackfillCollectionResponse`: the dates that would get a run, in the order
/// they would run; `skipped` (weir's) counts the dates left alone.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DryRunBackfillCollectionResponse {
    pub backfills: Vec<DryRunBackfillResponse>,
    pub total_entries: usize,
    pub skipped: usize,
}

async fn view(state: &ApiState, backfill: &Backfill) -> Result<BackfillResponse, ApiError> {
    let mut connection = state.db.acquire().await?;
    let (runs_total, runs_done) = backfills::progress(&mut connection, backfill.id).await?;
    Ok(BackfillResponse {
        id: backfill.id,
        dag_id: backfill.dag_id.to_string(),
        dag_display_name: backfill.dag_id.to_string(),
        from_date: backfill.from_date,
        to_date: backfill.to_date,
        dag_run_conf: match &backfill.conf {
            Value::Object(map) => Some(map.clone()),
            _ => None,
        },
        is_paused: backfill.state == BackfillState::Paused,
        reprocess_behavior: backfill.reprocess.as_str(),
        max_active_runs: backfill.max_active_runs,
        run_backwards: backfill.run_backwards,
        created_at: backfill.created_at,
        completed_at: backfill.completed_at,
        updated_at: backfill.updated_at,
        state: backfill.state.as_str(),
        runs_total,
        runs_done,
    })
}

const ORDER_FIELDS: &[&str] = &[
    "id",
    "dag_id",
    "from_date",
    "to_date",
    "created_at",
    "updated_at",
    "state",
];

/// `GET /api/v2/backfills`: ordered by id unless `order_by` says otherwise; `dag_id` narrows the
/// list to one DAG (Airflow requires it; weir lists every DAG's without it).
pub async fn list(
    State(state): State<ApiState>,
    params: QueryParams,
) -> Result<ApiJson<BackfillCollectionResponse>, ApiError> {
    let page = params.page()?;
    let order = params.order_by(ORDER_FIELDS, "id")?;
    let dag_id = params.one("dag_id").map(query::dag_id).transpose()?;
    let mut connection = state.db.acquire().await?;
    if let Some(dag_id) = &dag_id
        && state.bag().get(dag_id).is_none()
        && crate::storage::dags::get(&mut connection, dag_id).await?.is_none()
    {
        return Err(ApiError::NotFound(format!("no DAG `{dag_id}`")));
    }
    let mut all = backfills::list(&mut connection, dag_id.as_ref(), None).await?;
    drop(connection);
    all.sort_by(|a, b| {
        let ordering = match order.field.as_str() {
            "dag_id" => a.dag_id.as_str().cmp(b.dag_id.as_str()),
            "from_date" => a.from_date.cmp(&b.from_date),
            "to_date" => a.to_date.cmp(&b.to_date),
            "created_at" => a.created_at.cmp(&b.created_at),
            "updated_at" => a.updated_at.cmp(&b.updated_at),
            "state" => a.state.as_str().cmp(b.state.as_str()),
            _ => std::cmp::Ordering::Equal,
        }
        .then(a.id.cmp(&b.id));
        if order.descending { ordering.reverse() } else { ordering }
    });
    let total_entries = all.len();
    let mut views = Vec::new();
    for backfill in page.slice(all) {
        views.push(view(&state, &backfill).await?);
    }
    Ok(ApiJson(BackfillCollectionResponse {
        backfills: views,
        total_entries,
    }))
}

/// Airflow's `BackfillPostBody`. Dates are RFC 3339, or a date or local time read in the DAG's
/// time zone (as `weir dags backfill --from` reads them); both ends are included, and a date
/// alone covers its whole day (`to_date: 2026-03-31` includes that day's runs).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackfillPostBody {
    #[schema(pattern = "^[A-Za-z0-9_.-]{1,250}$")]
    pub dag_id: String,
    pub from_date: String,
    pub to_date: String,
    #[serde(default)]
    pub run_backwards: Option<bool>,
    #[serde(default)]
    pub dag_run_conf: Option<Map<String, Value>>,
    #[serde(default)]
    #[schema(pattern = "^(none|failed|completed)$")]
    pub reprocess_behavior: Option<String>,
    #[serde(default)]
    #[schema(minimum = 1)]
    pub max_active_runs: Option<u32>,
    /// Accepted for Airflow clients; weir has no DAG versions, so it changes nothing.
    #[allow(dead_code, reason = "accepted and ignored: weir has no DAG versions")]
    #[serde(default)]
    pub run_on_latest_version: Option<bool>,
}

/// The DAG and the request a body asks for, or a precise refusal.
fn request(state: &ApiState, body: BackfillPostBody) -> Result<(std::sync::Arc<Dag>, BackfillRequest), ApiError> {
    let dag_id = query::dag_id(&body.dag_id)?;
    let dag = loaded(state, &dag_id)?;
    let timezone = dag.timetable.timezone;
    let date = |name: &str, text: &str, end: RangeEnd| {
        parse_range_bound(text, timezone, end).map_err(|error| match error {
            DateError::NotADate(_) => ApiError::Unprocessable(format!("{name} {error}")),
            DateError::OutOfRange(_) => ApiError::BadRequest(format!("{name}: {error}")),
        })
    };
    let from = date("from_date", &body.from_date, RangeEnd::Start)?;
    let to = date("to_date", &body.to_date, RangeEnd::End)?;
    let reprocess = match body.reprocess_behavior.as_deref() {
        None => Reprocess::default(),
        Some(text) => text
            .parse::<Reprocess>()
            .map_err(|error| ApiError::Unprocessable(error.to_string()))?,
    };
    let request = BackfillRequest {
        from,
        to,
        reprocess,
        max_active_runs: body.max_active_runs.unwrap_or(10),
        reverse: body.run_backwards.unwrap_or(false),
        conf: body.dag_run_conf.map_or(Value::Null, Value::Object),
        max_dates: state.config.max_backfill_dates,
    };
    Ok((dag, request))
}

/// `POST /api/v2/backfills`: creates a backfill; the scheduler starts its runs.
pub async fn create(
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<BackfillPostBody>,
) -> Result<(AuditNote, ApiJson<BackfillResponse>), ApiError> {
    let (dag, request) = request(&state, body)?;
    let backfill = operations::create_backfill(&state.db, &dag, &request).await?;
    let note = AuditNote::new()
        .dag(backfill.dag_id.as_str())
        .detail("backfill_id", backfill.id);
    Ok((note, ApiJson(view(&state, &backfill).await?)))
}

fn dry_run_view(date: &PlannedDate) -> DryRunBackfillResponse {
    DryRunBackfillResponse {
        logical_date: date.run.logical_date,
        action: date.action.as_str(),
        dag_run_id: date.existing_run_id.clone(),
        data_interval_start: date.run.data_interval.start,
        data_interval_end: date.run.data_interval.end,
    }
}

/// `POST /api/v2/backfills/dry_run`: the dates that would get a run (new or re-run), creating
/// nothing. Dates that would be skipped are left out, as Airflow does.
pub async fn dry_run(
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<BackfillPostBody>,
) -> Result<(AuditNote, ApiJson<DryRunBackfillCollectionResponse>), ApiError> {
    let (dag, request) = request(&state, body)?;
    let dates = operations::plan_backfill(&state.db, &dag, &request).await?;
    let runs: Vec<DryRunBackfillResponse> = dates
        .iter()
        .filter(|date| date.action != DateAction::Skip)
        .map(dry_run_view)
        .collect();
    let response = ApiJson(DryRunBackfillCollectionResponse {
        total_entries: runs.len(),
        skipped: dates.len() - runs.len(),
        backfills: runs,
    });
    Ok((AuditNote::not_recorded(), response))
}

fn backfill_id(text: &str) -> Result<i64, ApiError> {
    text.parse::<i64>()
        .ok()
        .filter(|id| *id >= 0)
        .ok_or_else(|| ApiError::Unprocessable(format!("backfill_id must be a non-negative integer, got `{text}`")))
}

/// `GET /api/v2/backfills/{backfill_id}`
pub async fn get(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<BackfillResponse>, ApiError> {
    let id = backfill_id(&id)?;
    let mut connection = state.db.acquire().await?;
    let backfill = backfills::get(&mut connection, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("there is no backfill with id {id}")))?;
    drop(connection);
    Ok(ApiJson(view(&state, &backfill).await?))
}

async fn change(
    state: &ApiState,
    id: &str,
    to: BackfillState,
) -> Result<(AuditNote, ApiJson<BackfillResponse>), ApiError> {
    let id = backfill_id(id)?;
    let changed = operations::change_backfill(&state.db, id, to).await?;
    // As stored (`completed_at` is set when it ends; times have microsecond precision).
    let mut connection = state.db.acquire().await?;
    let backfill = backfills::get(&mut connection, id).await?.unwrap_or(changed);
    drop(connection);
    let note = AuditNote::new().dag(backfill.dag_id.as_str());
    Ok((note, ApiJson(view(state, &backfill).await?)))
}

/// `PUT /api/v2/backfills/{backfill_id}/pause`: starts no further runs until unpaused.
pub async fn pause(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> Result<(AuditNote, ApiJson<BackfillResponse>), ApiError> {
    change(&state, &id, BackfillState::Paused).await
}

/// `PUT /api/v2/backfills/{backfill_id}/unpause`
pub async fn unpause(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> Result<(AuditNote, ApiJson<BackfillResponse>), ApiError> {
    change(&state, &id, BackfillState::Running).await
}

/// `PUT /api/v2/backfills/{backfill_id}/cancel`: no further runs; running ones finish, and the
/// ones not started are failed so none is left queued.
pub async fn cancel(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> Result<(AuditNote, ApiJson<BackfillResponse>), ApiError> {
    change(&state, &id, BackfillState::Cancelled).await
}
