//! The run page: the run's details, its task instances with mark buttons, a Gantt chart of the
//! attempts' times, and clearing the run's failed (or all) tasks.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::error::{UiForm, UiPath, UiQuery};
use super::views::{self, RunView, TaskInstanceView};
use super::{back_to, find_dag, find_run, render};
use crate::api::ApiState;
use crate::api::error::ApiError;
use crate::domain::ui_paths;
use crate::runtime::operations::{self, ClearRequest};
use crate::storage::task_instances::{self, TaskInstance};

#[derive(Debug, Deserialize)]
pub struct PageQuery {
    notice: Option<String>,
}

/// One bar of the Gantt chart, as percentages of the run's span.
#[derive(Debug, Serialize)]
struct GanttBar {
    task: TaskInstanceView,
    left: f64,
    width: f64,
    has_bar: bool,
}

/// `GET /dags/{dag_id}/runs/{dag_run_id}`.
pub async fn show(
    State(state): State<ApiState>,
    UiPath((dag_id, run_id)): UiPath<(String, String)>,
    UiQuery(query): UiQuery<PageQuery>,
) -> Result<Response, ApiError> {
    let dag = find_dag(&state, &dag_id)?;
    let run = find_run(&state, &dag, &run_id).await?;
    let now = Utc::now();
    let mut connection = state.db.acquire().await?;
    let instances = task_instances::for_run(&mut connection, run.pk).await?;
    drop(connection);
    // Tasks in the DAG's order, then instances of tasks no longer in the file.
    let mut ordered: Vec<Option<&TaskInstance>> = dag
        .tasks
        .iter()
        .map(|task| instances.iter().find(|ti| ti.task_id == task.task_id))
        .collect();
    ordered.extend(
        instances
            .iter()
            .filter(|ti| dag.task(ti.task_id.as_str()).is_none())
            .map(Some),
    );
    let tasks: Vec<TaskInstanceView> = dag
        .tasks
        .iter()
        .map(|task| task.task_id.as_str())
        .chain(
            instances
                .iter()
                .filter(|ti| dag.task(ti.task_id.as_str()).is_none())
                .map(|ti| ti.task_id.as_str()),
        )
        .zip(&ordered)
        .map(|(task_id, instance)| match instance {
            Some(ti) => TaskInstanceView::new(ti, now),
            None => TaskInstanceView::missing(dag.dag_id.as_str(), run.run_id.as_str(), task_id),
        })
        .collect();
    let (gantt, gantt_start, gantt_end) = gantt(&ordered, &tasks, run.start_date, run.end_date, now);
    let conf = serde_json::to_string_pretty(&run.conf).unwrap_or_default();
    let run_view = RunView::new(&run, now);
    let page_url = run_view.url.clone();
    let html = render::page(
        "run.html",
        context! {
            dag => context! { dag_id => dag.dag_id.as_str(), url => ui_paths::dag(dag.dag_id.as_str()) },
            run => run_view,
            page_url,
            conf,
            tasks,
            gantt,
            gantt_start => gantt_start.map(views::time),
            gantt_span => match (gantt_start, gantt_end) {
                (Some(start), Some(end)) => Some(views::duration((end - start).num_milliseconds() as f64 / 1000.0)),
                _ => None,
            },
            notice => query.notice,
            live => !run.state.is_finished(),
            legend_states => views::LEGEND,
        },
    )?;
    Ok(html.into_response())
}

/// Bars from each instance's start to its end (or now while it runs), scaled to the span from
/// the earliest start to the latest end.
fn gantt(
    instances: &[Option<&TaskInstance>],
    views: &[TaskInstanceView],
    run_start: Option<DateTime<Utc>>,
    run_end: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> (Vec<GanttBar>, Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let starts = instances.iter().flatten().filter_map(|ti| ti.start_date);
    let start = starts.chain(run_start).min();
    let ends = instances
        .iter()
        .flatten()
        .filter_map(|ti| ti.start_date.map(|_| ti.end_date.unwrap_or(now)));
    let end = ends.chain(run_end).max();
    let span_ms = match (start, end) {
        (Some(start), Some(end)) => ((end - start).num_milliseconds() as f64).max(1.0),
        _ => 1.0,
    };
    let bars = instances
        .iter()
        .zip(views)
        .map(|(instance, view)| {
            let placed = instance.and_then(|ti| Some((ti.start_date?, ti.end_date.unwrap_or(now))));
            let (left, width) = match (placed, start) {
                (Some((bar_start, bar_end)), Some(origin)) => {
                    let left = (bar_start - origin).num_milliseconds() as f64 / span_ms * 100.0;
                    let width = (bar_end - bar_start).num_milliseconds() as f64 / span_ms * 100.0;
                    (left.clamp(0.0, 100.0), width.clamp(0.0, 100.0 - left.clamp(0.0, 100.0)))
                }
                _ => (0.0, 0.0),
            };
            GanttBar {
                task: view.clone(),
                left,
                width,
                has_bar: placed.is_some(),
            }
        })
        .collect();
    (bars, start, end)
}

#[derive(Debug, Deserialize)]
pub struct ClearRunForm {
    /// `failed` (default) or `all`.
    which: Option<String>,
}

/// `POST /dags/{dag_id}/runs/{dag_run_id}/clear`: clears the failed tasks (or all) of the run.
pub async fn clear(
    State(state): State<ApiState>,
    UiPath((dag_id, run_id)): UiPath<(String, String)>,
    UiForm(form): UiForm<ClearRunForm>,
) -> Result<Response, ApiError> {
    let dag = find_dag(&state, &dag_id)?;
    let run = find_run(&state, &dag, &run_id).await?;
    let only_failed = match form.which.as_deref() {
        None | Some("failed") => true,
        Some("all") => false,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "`which` must be `failed` or `all`, got `{other}`"
            )));
        }
    };
    let request = ClearRequest {
        run_id: Some(run.run_id.clone()),
        only_failed,
        ..ClearRequest::default()
    };
    let plan = operations::plan_clear(&state.db, &dag, &request).await?;
    let cleared = operations::apply_clear(&state.db, &dag, &plan).await?;
    let notice = match cleared {
        0 => "Nothing to clear: no finished task matched".to_string(),
        1 => "Cleared 1 task instance".to_string(),
        n => format!("Cleared {n} task instances"),
    };
    let url = ui_paths::run(dag.dag_id.as_str(), run.run_id.as_str());
    Ok(back_to(None, &url, &notice).into_response())
}
