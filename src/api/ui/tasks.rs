//! The task instance page: its attempts, the selected attempt's rendered fields, output, error
//! and log (a window of the file, live while the attempt runs), and the clear and mark buttons.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use minijinja::context;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::{UiForm, UiPath, UiQuery};
use super::logs::{self, LOG_WINDOW_BYTES};
use super::views::{self, AttemptView, RunView, TaskInstanceView};
use super::{back_to, find_dag, find_run, parse_task_id, render};
use crate::api::ApiState;
use crate::api::audit::AuditNote;
use crate::api::error::ApiError;
use crate::domain::state::TaskState;
use crate::domain::ui_paths;
use crate::runtime::operations::{self, ClearRequest};
use crate::runtime::task_log::LogPath;
use crate::storage::task_instances;

#[derive(Debug, Deserialize)]
pub struct TaskQuery {
    #[serde(rename = "try")]
    try_number: Option<u32>,
    offset: Option<u64>,
    notice: Option<String>,
}

#[derive(Debug, Serialize)]
struct LogView {
    exists: bool,
    text: String,
    start: u64,
    end: u64,
    size: u64,
    earlier_url: Option<String>,
    later_url: Option<String>,
    tail_url: Option<String>,
    stream_url: Option<String>,
}

/// `GET /dags/{dag_id}/runs/{dag_run_id}/tasks/{task_id}?try=N&offset=B`.
pub async fn show(
    State(state): State<ApiState>,
    UiPath((dag_id, run_id, task_id)): UiPath<(String, String, String)>,
    UiQuery(query): UiQuery<TaskQuery>,
) -> Result<Response, ApiError> {
    let dag = find_dag(&state, &dag_id)?;
    let run = find_run(&state, &dag, &run_id).await?;
    let task_id = parse_task_id(&task_id)?;
    let now = Utc::now();
    let mut connection = state.db.acquire().await?;
    let instance = task_instances::get(&mut connection, run.pk, &task_id).await?;
    let task = dag.task(task_id.as_str());
    if instance.is_none() && task.is_none() {
        return Err(ApiError::NotFound(format!(
            "run `{}` of DAG `{}` has no task `{task_id}`.",
            run.run_id, dag.dag_id
        )));
    }
    let attempts = task_instances::attempts(&mut connection, run.pk, &task_id).await?;
    drop(connection);
    let page_url = ui_paths::task(dag.dag_id.as_str(), run.run_id.as_str(), task_id.as_str());
    let selected_try = match query.try_number {
        Some(try_number) => {
            if !attempts.iter().any(|attempt| attempt.try_number == try_number) {
                return Err(ApiError::NotFound(format!(
                    "task `{task_id}` of run `{}` has no try {try_number}.",
                    run.run_id
                )));
            }
            Some(try_number)
        }
        None => attempts.last().map(|attempt| attempt.try_number),
    };
    let selected = attempts.iter().find(|attempt| Some(attempt.try_number) == selected_try);
    let attempt_views: Vec<AttemptView> = attempts
        .iter()
        .map(|attempt| AttemptView::new(attempt, &page_url, Some(attempt.try_number) == selected_try, now))
        .collect();

    let log = match selected {
        Some(attempt) => {
            let path = LogPath::new(
                &state.config.logs_dir(),
                &dag.dag_id,
                &run.run_id,
                &task_id,
                attempt.try_number,
            );
            let window = logs::read_window(&path, query.offset)
                .await
                .map_err(|error| ApiError::Internal(anyhow::anyhow!("reading {path}: {error}")))?;
            let try_url = format!("{page_url}?try={}", attempt.try_number);
            let at_tail = window.end >= window.size;
            Some(LogView {
                earlier_url: (window.start > 0)
                    .then(|| format!("{try_url}&offset={}", window.start.saturating_sub(LOG_WINDOW_BYTES))),
                later_url: (!at_tail).then(|| format!("{try_url}&offset={}", window.end)),
                tail_url: (!at_tail).then(|| try_url.clone()),
                stream_url: (at_tail && !attempt.state.is_finished())
                    .then(|| format!("{page_url}/logs/{}/stream?from={}", attempt.try_number, window.end)),
                exists: window.exists,
                text: window.text,
                start: window.start,
                end: window.end,
                size: window.size,
            })
        }
        None => None,
    };
    let rendered: Vec<(String, String)> = selected
        .and_then(|attempt| attempt.rendered.as_object())
        .map(|fields| {
            fields
                .iter()
                .map(|(name, value)| {
                    let text = match value {
                        Value::String(text) => text.clone(),
                        other => serde_json::to_string_pretty(other).unwrap_or_default(),
                    };
                    (name.clone(), text)
                })
                .collect()
        })
        .unwrap_or_default();
    let output = selected.and_then(|attempt| attempt.output.as_deref()).map(|output| {
        match serde_json::from_str::<Value>(output) {
            Ok(Value::String(text)) => text,
            Ok(value) => serde_json::to_string_pretty(&value).unwrap_or_else(|_| output.to_string()),
            Err(_) => output.to_string(),
        }
    });
    let instance_view = match &instance {
        Some(ti) => TaskInstanceView::new(ti, now),
        None => TaskInstanceView::missing(dag.dag_id.as_str(), run.run_id.as_str(), task_id.as_str()),
    };
    let details = task.map(|task| {
        context! {
            operator => task.operator.type_name(),
            templated => task.operator.templated_fields().into_iter().map(|(name, text)| (name, text.to_string())).collect::<Vec<_>>(),
            upstream => task.upstream.iter().map(ToString::to_string).collect::<Vec<_>>(),
            downstream => task.downstream.iter().map(ToString::to_string).collect::<Vec<_>>(),
            trigger_rule => task.trigger_rule.to_string(),
            retries => task.retry.retries,
            pool => &task.pool,
            doc => &task.doc,
        }
    });
    let live = !run.state.is_finished();
    let html = render::page(
        "task.html",
        context! {
            dag => context! { dag_id => dag.dag_id.as_str(), url => ui_paths::dag(dag.dag_id.as_str()) },
            run => RunView::new(&run, now),
            ti => instance_view,
            details,
            page_url,
            attempts => attempt_views,
            selected_try,
            rendered,
            output,
            error => selected.and_then(|attempt| attempt.error.clone()),
            exit_code => selected.and_then(|attempt| attempt.exit_code),
            log,
            notice => query.notice,
            live,
            legend_states => views::LEGEND,
        },
    )?;
    Ok(html.into_response())
}

#[derive(Debug, Deserialize)]
pub struct ClearTaskForm {
    /// `true` to clear the downstream tasks too.
    downstream: Option<String>,
}

/// `POST .../tasks/{task_id}/clear`: this task (and its downstream when asked) runs again.
pub async fn clear(
    State(state): State<ApiState>,
    UiPath((dag_id, run_id, task_id)): UiPath<(String, String, String)>,
    UiForm(form): UiForm<ClearTaskForm>,
) -> Result<Response, ApiError> {
    let dag = find_dag(&state, &dag_id)?;
    let run = find_run(&state, &dag, &run_id).await?;
    let task_id = parse_task_id(&task_id)?;
    if dag.task(task_id.as_str()).is_none() {
        return Err(ApiError::NotFound(format!(
            "DAG `{}` has no task `{task_id}` to clear.",
            dag.dag_id
        )));
    }
    let include_downstream = match form.downstream.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "`downstream` must be true or false, got `{other}`"
            )));
        }
    };
    let pattern = regex::Regex::new(&format!("^{}$", regex::escape(task_id.as_str())))
        .map_err(|error| ApiError::Internal(error.into()))?;
    let request = ClearRequest {
        run_id: Some(run.run_id.clone()),
        task_pattern: Some(pattern),
        include_downstream,
        ..ClearRequest::default()
    };
    let plan = operations::plan_clear(&state.db, &dag, &request).await?;
    let cleared = operations::apply_clear(&state.db, &dag, &plan).await?;
    let notice = match cleared {
        0 => "Nothing to clear: the task is still queued or running, or has not run".to_string(),
        1 => "Cleared 1 task instance".to_string(),
        n => format!("Cleared {n} task instances"),
    };
    let url = ui_paths::task(dag.dag_id.as_str(), run.run_id.as_str(), task_id.as_str());
    Ok(back_to(None, &url, &notice).into_response())
}

#[derive(Debug, Deserialize)]
pub struct MarkForm {
    state: String,
    next: Option<String>,
}

/// `POST .../tasks/{task_id}/mark` with `state=success|failed`.
pub async fn mark(
    State(state): State<ApiState>,
    UiPath((dag_id, run_id, task_id)): UiPath<(String, String, String)>,
    UiForm(form): UiForm<MarkForm>,
) -> Result<Response, ApiError> {
    let dag = find_dag(&state, &dag_id)?;
    let run = find_run(&state, &dag, &run_id).await?;
    let task_id = parse_task_id(&task_id)?;
    let new_state = match form.state.as_str() {
        "success" => TaskState::Success,
        "failed" => TaskState::Failed,
        other => {
            return Err(ApiError::BadRequest(format!(
                "a task can be marked `success` or `failed`, not `{other}`"
            )));
        }
    };
    operations::mark_task(&state.db, &dag.dag_id, &run.run_id, &task_id, new_state).await?;
    let url = ui_paths::task(dag.dag_id.as_str(), run.run_id.as_str(), task_id.as_str());
    let notice = format!("Marked {task_id} {new_state}");
    let note = AuditNote::new().detail("new_state", new_state.as_str());
    Ok((note, back_to(form.next.as_deref(), &url, &notice)).into_response())
}
