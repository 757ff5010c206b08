//! `/api/v2/eventLogs`: the audit log in Airflow 3's shape (`EventLogResponse`,
//! `EventLogCollectionResponse`), with weir's `surface` and `address` beside Airflow's fields.

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::query::QueryParams;
use crate::api::ApiState;
use utoipa::ToSchema;

use crate::api::error::{ApiError, ApiJson, ApiPath};
use crate::domain::audit::{Entry, Surface};
use crate::domain::dates::parse_date_in;
use crate::storage::event_log::{self, EntryFilter, SortColumn};

/// Airflow's `EventLogResponse`, plus `surface` and `address`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventLogResponse {
    pub event_log_id: i64,
    pub when: DateTime<Utc>,
    pub dag_id: Option<String>,
    pub task_id: Option<String>,
    pub run_id: Option<String>,
    /// Always `null`: weir has no mapped tasks.
    pub map_index: Option<i64>,
    pub try_number: Option<u32>,
    pub event: String,
    pub logical_date: Option<DateTime<Utc>>,
    /// The username (`anonymous` without authentication; the OS user for the CLI).
    pub owner: String,
    pub owner_display_name: String,
    /// A JSON object as text (Airflow's type): names and ids, never values.
    pub extra: Option<String>,
    /// `api`, `ui` or `cli`.
    pub surface: &'static str,
    /// The client's IP address (HTTP) or the host name (CLI), when known.
    pub address: Option<String>,
}

/// Airflow's `EventLogCollectionResponse`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventLogCollectionResponse {
    pub event_logs: Vec<EventLogResponse>,
    pub total_entries: i64,
}

fn view(entry: Entry) -> EventLogResponse {
    EventLogResponse {
        event_log_id: entry.id,
        when: entry.when,
        dag_id: entry.dag_id,
        task_id: entry.task_id,
        run_id: entry.run_id,
        map_index: None,
        try_number: entry.try_number,
        event: entry.event,
        logical_date: entry.logical_date,
        owner_display_name: entry.owner.clone(),
        owner: entry.owner,
        extra: (!entry.extra.is_empty()).then(|| serde_json::Value::Object(entry.extra).to_string()),
        surface: entry.surface.as_str(),
        address: entry.address,
    }
}

/// The fields `order_by` accepts (Airflow's names, with `id` and `dttm` as aliases).
const ORDER_FIELDS: &[&str] = &[
    "event_log_id",
    "id",
    "when",
    "dttm",
    "dag_id",
    "task_id",
    "run_id",
    "event",
    "logical_date",
    "owner",
];

fn sort_column(field: &str) -> SortColumn {
    match field {
        "when" | "dttm" => SortColumn::When,
        "dag_id" => SortColumn::DagId,
        "task_id" => SortColumn::TaskId,
        "run_id" => SortColumn::RunId,
        "event" => SortColumn::Event,
        "logical_date" => SortColumn::LogicalDate,
        "owner" => SortColumn::Owner,
        _ => SortColumn::Id,
    }
}

fn time(params: &QueryParams, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
    params
        .one(name)
        .map(|text| {
            parse_date_in(text, chrono_tz::UTC)
                .map_err(|error| ApiError::BadRequest(format!("query parameter `{name}`: {error}")))
        })
        .transpose()
}

/// `GET /api/v2/eventLogs?dag_id=&task_id=&run_id=&try_number=&owner=&event=&included_events=&excluded_events=&before=&after=&surface=&limit=&offset=&order_by=`
pub async fn list(
    State(state): State<ApiState>,
    params: QueryParams,
) -> Result<ApiJson<EventLogCollectionResponse>, ApiError> {
    let page = params.page()?;
    let order = params.order_by(ORDER_FIELDS, "event_log_id")?;
    if params.one("map_index").is_some_and(|value| value != "-1") {
        return Err(ApiError::BadRequest(
            "weir has no mapped tasks: map_index can only be -1".to_string(),
        ));
    }
    let try_number = params
        .one("try_number")
        .map(|text| {
            text.parse::<u32>().map_err(|_| {
                ApiError::BadRequest(format!(
                    "query parameter `try_number` must be a non-negative integer, got `{text}`"
                ))
            })
        })
        .transpose()?;
    let surface = params
        .one("surface")
        .map(|text| text.parse::<Surface>())
        .transpose()
        .map_err(|error| ApiError::BadRequest(error.to_string()))?;
    let filter = EntryFilter {
        dag_id: params.one("dag_id").map(str::to_string),
        task_id: params.one("task_id").map(str::to_string),
        run_id: params.one("run_id").map(str::to_string),
        try_number,
        owner: params.one("owner").map(str::to_string),
        event: params.one("event").map(str::to_string),
        included_events: params.list("included_events"),
        excluded_events: params.list("excluded_events"),
        surface,
        before: time(&params, "before")?,
        after: time(&params, "after")?,
        order: sort_column(&order.field),
        descending: order.descending,
        limit: Some(page.limit),
        offset: page.offset,
    };
    let mut connection = state.db.acquire().await?;
    let total_entries = event_log::count(&mut connection, &filter).await?;
    let event_logs = event_log::list(&mut connection, &filter)
        .await?
        .into_iter()
        .map(view)
        .collect();
    Ok(ApiJson(EventLogCollectionResponse {
        event_logs,
        total_entries,
    }))
}

/// `GET /api/v2/eventLogs/{event_log_id}`
pub async fn get(
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<EventLogResponse>, ApiError> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("event_log_id must be an integer, got `{id}`")))?;
    let mut connection = state.db.acquire().await?;
    let entry = event_log::get(&mut connection, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no event log entry {id}: see GET /api/v2/eventLogs")))?;
    Ok(ApiJson(view(entry)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_order_field_names_a_column() {
        for field in ORDER_FIELDS {
            let column = sort_column(field);
            assert!(
                column != SortColumn::Id || matches!(*field, "id" | "event_log_id"),
                "{field} sorts by id"
            );
        }
    }
}
