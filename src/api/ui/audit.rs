//! The audit page: who changed what, when and from where (REST API, UI, CLI, logins), newest
//! first, filtered by DAG, event, owner and surface, a page at a time.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::error::UiQuery;
use super::{render, views};
use crate::api::ApiState;
use crate::api::error::ApiError;
use crate::domain::audit::{Entry, Surface};
use crate::domain::ui_paths;
use crate::storage::event_log::{self, EntryFilter, SortColumn};

/// Entries per page.
const PAGE_SIZE: u32 = 50;

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    dag_id: String,
    #[serde(default)]
    event: String,
    #[serde(default)]
    owner: String,
    #[serde(default)]
    surface: String,
    #[serde(default)]
    offset: u32,
}

#[derive(Debug, Serialize)]
struct EntryRow {
    id: i64,
    when: String,
    event: String,
    owner: String,
    surface: &'static str,
    address: Option<String>,
    dag_id: Option<String>,
    dag_url: Option<String>,
    run_id: Option<String>,
    run_url: Option<String>,
    task_id: Option<String>,
    task_url: Option<String>,
    logical_date: Option<String>,
    details: Vec<(String, String)>,
}

fn row(entry: Entry) -> EntryRow {
    let dag_url = entry.dag_id.as_deref().map(ui_paths::dag);
    let run_url = match (&entry.dag_id, &entry.run_id) {
        (Some(dag_id), Some(run_id)) => Some(ui_paths::run(dag_id, run_id)),
        _ => None,
    };
    let task_url = match (&entry.dag_id, &entry.run_id, &entry.task_id) {
        (Some(dag_id), Some(run_id), Some(task_id)) => Some(ui_paths::task(dag_id, run_id, task_id)),
        _ => None,
    };
    let details = entry
        .extra
        .iter()
        .map(|(name, value)| {
            let text = match value {
                serde_json::Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            (name.clone(), text)
        })
        .collect();
    EntryRow {
        id: entry.id,
        when: views::time(entry.when),
        event: entry.event,
        owner: entry.owner,
        surface: entry.surface.as_str(),
        address: entry.address,
        dag_url,
        dag_id: entry.dag_id,
        run_url,
        run_id: entry.run_id,
        task_url,
        task_id: entry.task_id,
        logical_date: views::opt_time(entry.logical_date),
        details,
    }
}

fn filled(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// `GET /audit?dag_id=&event=&owner=&surface=&offset=`.
pub async fn list(State(state): State<ApiState>, UiQuery(query): UiQuery<AuditQuery>) -> Result<Response, ApiError> {
    let surface = filled(&query.surface)
        .map(|text| text.parse::<Surface>())
        .transpose()
        .map_err(|error| ApiError::BadRequest(error.to_string()))?;
    let mut filter = EntryFilter {
        dag_id: filled(&query.dag_id),
        event: filled(&query.event),
        owner: filled(&query.owner),
        surface,
        order: SortColumn::Id,
        descending: true,
        limit: Some(PAGE_SIZE),
        offset: query.offset,
        ..EntryFilter::default()
    };
    let mut connection = state.db.acquire().await?;
    let total = u64::try_from(event_log::count(&mut connection, &filter).await?).unwrap_or(0);
    // An offset past the end shows the last page, not an empty one.
    let last_page = u32::try_from(total.saturating_sub(1) / u64::from(PAGE_SIZE) * u64::from(PAGE_SIZE)).unwrap_or(0);
    filter.offset = filter.offset.min(last_page);
    let rows: Vec<EntryRow> = event_log::list(&mut connection, &filter)
        .await?
        .into_iter()
        .map(row)
        .collect();
    drop(connection);
    let base_url = format!(
        "/audit?dag_id={}&event={}&owner={}&surface={}",
        views::encode(&query.dag_id),
        views::encode(&query.event),
        views::encode(&query.owner),
        views::encode(&query.surface)
    );
    let pager = views::Pager::new(
        &base_url,
        u64::from(filter.offset),
        u64::from(PAGE_SIZE),
        total,
        rows.len() as u64,
    );
    let filtered = filter.dag_id.is_some() || filter.event.is_some() || filter.owner.is_some() || surface.is_some();
    let html = render::page(
        "audit.html",
        context! {
            rows,
            pager,
            filtered,
            dag_id => query.dag_id,
            event => query.event,
            owner => query.owner,
            surface => surface.map(Surface::as_str),
            surfaces => Surface::ALL.map(Surface::as_str),
        },
    )?;
    Ok(html.into_response())
}
