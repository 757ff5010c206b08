//! The web UI (§8): server-rendered pages at Airflow's URLs (`/`, `/dags/{dag_id}`,
//! `/dags/{dag_id}/runs/{dag_run_id}`, `/dags/{dag_id}/runs/{dag_run_id}/tasks/{task_id}`), from
//! minijinja templates and plain CSS/JS embedded in the binary. Buttons post forms to routes here
//! that call `runtime::operations`, then redirect back (Post/Redirect/Get).

mod alerts;
mod backfills;
mod connections;
mod dags;
mod datasets;
mod error;
pub mod graph;
mod logs;
mod render;
mod runs;
mod tasks;
mod variables;
mod views;

use std::sync::Arc;

use axum::response::Redirect;
use axum::routing::{get, post};
use axum::{Extension, Router};

use self::error::UiError;
use super::ApiState;
use crate::domain::dag::Dag;
use crate::domain::ids::{DagId, RunId, TaskId};
use crate::storage::runs::{self as run_rows, DagRun};

pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/", get(dags::list))
        .route("/import-errors", get(dags::import_errors))
        .route("/datasets", get(datasets::list))
        .route("/alerts", get(alerts::list))
        .route("/variables", get(variables::list).post(variables::set))
        .route("/variables/delete", post(variables::delete))
        .route("/connections", get(connections::list).post(connections::add))
        .route("/connections/delete", post(connections::delete))
        .route("/connections/test", post(connections::test))
        .route("/static/{*path}", get(render::asset))
        .route("/dags/{dag_id}", get(dags::show))
        .route("/dags/{dag_id}/pause", post(dags::pause))
        .route("/dags/{dag_id}/trigger", post(dags::trigger))
        .route("/dags/{dag_id}/backfill", post(backfills::submit))
        .route("/dags/{dag_id}/backfills/{backfill_id}", get(backfills::show))
        .route("/dags/{dag_id}/backfills/{backfill_id}/state", post(backfills::change))
        .route("/dags/{dag_id}/runs/{run_id}", get(runs::show))
        .route("/dags/{dag_id}/runs/{run_id}/clear", post(runs::clear))
        .route("/dags/{dag_id}/runs/{run_id}/tasks/{task_id}", get(tasks::show))
        .route("/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/clear", post(tasks::clear))
        .route("/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/mark", post(tasks::mark))
        .route(
            "/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/logs/{try_number}/stream",
            get(logs::stream),
        )
        .layer(Extension(graph::GraphCache::default()))
}

/// The loaded DAG named in the address.
fn find_dag(state: &ApiState, raw_dag_id: &str) -> Result<Arc<Dag>, UiError> {
    let dag_id = DagId::parse(raw_dag_id).map_err(|error| UiError::BadRequest(error.to_string()))?;
    state.bag().get(&dag_id).cloned().ok_or_else(|| {
        UiError::NotFound(format!(
            "There is no DAG `{dag_id}`: no file in the DAG folder defines it, or its file has import errors."
        ))
    })
}

/// The run of `dag` named in the address.
async fn find_run(state: &ApiState, dag: &Dag, raw_run_id: &str) -> Result<DagRun, UiError> {
    let run_id = RunId::parse(raw_run_id).map_err(|error| UiError::BadRequest(error.to_string()))?;
    let mut connection = state.db.acquire().await?;
    run_rows::get(&mut connection, &dag.dag_id, &run_id)
        .await?
        .ok_or_else(|| UiError::NotFound(format!("DAG `{}` has no run `{run_id}`.", dag.dag_id)))
}

fn parse_task_id(raw_task_id: &str) -> Result<TaskId, UiError> {
    TaskId::parse(raw_task_id).map_err(|error| UiError::BadRequest(error.to_string()))
}

/// Where a form goes back to: a local path given by the page, else `fallback`.
fn back_to(next: Option<&str>, fallback: &str, notice: &str) -> Redirect {
    let target = next
        .filter(|next| next.starts_with('/') && !next.starts_with("//") && !next.contains('\\'))
        .unwrap_or(fallback);
    let separator = if target.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{target}{separator}notice={}", views::encode(notice)))
}
