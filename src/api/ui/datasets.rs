//! The datasets page (§6): each dataset between the tasks that update it and the DAGs scheduled
//! on it (lineage), its last update linking to the producing run, and the latest updates.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use minijinja::context;
use serde::Serialize;

use super::{render, views};
use crate::api::ApiState;
use crate::api::error::ApiError;
use crate::domain::ui_paths;
use crate::runtime::datasets::{DatasetOverview, overview};
use crate::storage::datasets::{self, DatasetEvent, EventFilter};

/// Updates listed under the lineage table.
const RECENT_EVENTS: u32 = 20;

#[derive(Debug, Serialize)]
struct Producer {
    dag_id: String,
    task_id: String,
    dag_url: String,
}

#[derive(Debug, Serialize)]
struct Consumer {
    dag_id: String,
    dag_url: String,
}

/// One event, with the producing run's and task's pages.
#[derive(Debug, Serialize)]
struct EventView {
    dataset: String,
    dag_id: String,
    task_id: String,
    run_id: String,
    try_number: u32,
    time: String,
    run_url: String,
    task_url: String,
}

impl EventView {
    fn new(event: DatasetEvent) -> EventView {
        EventView {
            run_url: ui_paths::run(&event.source_dag_id, &event.source_run_id),
            task_url: ui_paths::task(&event.source_dag_id, &event.source_run_id, &event.source_task_id),
            time: views::time(event.created_at),
            dataset: event.dataset,
            dag_id: event.source_dag_id,
            task_id: event.source_task_id,
            run_id: event.source_run_id,
            try_number: event.source_try_number,
        }
    }
}

#[derive(Debug, Serialize)]
struct DatasetRow {
    name: String,
    producers: Vec<Producer>,
    consumers: Vec<Consumer>,
    last: Option<EventView>,
    events_total: i64,
}

fn row(dataset: DatasetOverview) -> DatasetRow {
    DatasetRow {
        name: dataset.name,
        producers: dataset
            .lineage
            .producers
            .into_iter()
            .map(|(dag_id, task_id)| Producer {
                dag_url: ui_paths::dag(dag_id.as_str()),
                dag_id: dag_id.to_string(),
                task_id: task_id.to_string(),
            })
            .collect(),
        consumers: dataset
            .lineage
            .consumers
            .into_iter()
            .map(|dag_id| Consumer {
                dag_url: ui_paths::dag(dag_id.as_str()),
                dag_id: dag_id.to_string(),
            })
            .collect(),
        events_total: dataset.events.as_ref().map_or(0, |events| events.events_total),
        last: dataset.events.map(|events| EventView::new(events.newest)),
    }
}

/// `GET /datasets`.
pub async fn list(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let mut connection = state.db.acquire().await?;
    let rows: Vec<DatasetRow> = overview(&mut connection, &state.bag())
        .await?
        .into_iter()
        .map(row)
        .collect();
    let recent_filter = EventFilter {
        limit: Some(RECENT_EVENTS),
        ..EventFilter::default()
    };
    let recent: Vec<EventView> = datasets::events(&mut connection, &recent_filter)
        .await?
        .into_iter()
        .map(EventView::new)
        .collect();
    let html = render::page("datasets.html", context! { rows, recent })?;
    Ok(html.into_response())
}
