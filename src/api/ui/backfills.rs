//! Backfills in the UI (§3.8): the DAG page's Backfill tab (a form with a preview of every date
//! and the DAG's backfills), starting one, its page with progress and dates, and the Pause /
//! Resume / Cancel buttons. Everything goes through `runtime::operations`.

use std::collections::HashMap;

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use minijinja::context;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::AnyConnection;

use super::dags::DagPage;
use super::error::{UiForm, UiPath, UiQuery};
use super::graph::GraphCache;
use super::{back_to, find_dag, render, views};
use crate::api::ApiState;
use crate::api::audit::AuditNote;
use crate::api::error::ApiError;
use crate::domain::backfill::{BackfillState, DateAction, PlannedDate, Reprocess};
use crate::domain::dag::Dag;
use crate::domain::dates::{RangeEnd, parse_range_bound};
use crate::domain::ids::RunId;
use crate::domain::ui_paths;
use crate::runtime::operations::{self, BackfillRequest, OperationError};
use crate::storage::backfills::{self, Backfill};
use crate::storage::runs as run_rows;
use crate::storage::{StorageError, dags as dag_rows};

/// Backfills listed on the Backfill tab.
const LISTED: usize = 20;

/// One backfill as a row of a list or the head of its page.
#[derive(Debug, Serialize)]
pub struct BackfillView {
    id: i64,
    url: String,
    dag_id: String,
    state: &'static str,
    active: bool,
    from_date: String,
    to_date: String,
    reprocess: &'static str,
    max_active_runs: u32,
    run_backwards: bool,
    conf: Option<String>,
    created_at: String,
    updated_at: String,
    completed_at: Option<String>,
    runs_total: u32,
    runs_done: u32,
    percent: u32,
}

impl BackfillView {
    async fn load(connection: &mut AnyConnection, backfill: &Backfill) -> Result<BackfillView, StorageError> {
        let (runs_total, runs_done) = backfills::progress(connection, backfill.id).await?;
        Ok(BackfillView {
            id: backfill.id,
            url: ui_paths::backfill(backfill.dag_id.as_str(), backfill.id),
            dag_id: backfill.dag_id.to_string(),
            state: backfill.state.as_str(),
            active: backfill.state.is_active(),
            from_date: views::time(backfill.from_date),
            to_date: views::time(backfill.to_date),
            reprocess: backfill.reprocess.as_str(),
            max_active_runs: backfill.max_active_runs,
            run_backwards: backfill.run_backwards,
            conf: (!backfill.conf.is_null()).then(|| backfill.conf.to_string()),
            created_at: views::time(backfill.created_at),
            updated_at: views::time(backfill.updated_at),
            completed_at: views::opt_time(backfill.completed_at),
            runs_total,
            runs_done,
            percent: (runs_done * 100).checked_div(runs_total).unwrap_or(100),
        })
    }
}

/// The DAG's active backfill, for the banner on every tab of its page.
pub async fn active_view(connection: &mut AnyConnection, dag: &Dag) -> Result<Option<BackfillView>, StorageError> {
    match backfills::active_for_dag(connection, &dag.dag_id).await? {
        Some(backfill) => Ok(Some(BackfillView::load(connection, &backfill).await?)),
        None => Ok(None),
    }
}

/// What the form holds, as typed (shown again after a preview or a refusal).
#[derive(Debug, Clone, Serialize)]
pub struct FormValues {
    from: String,
    to: String,
    reprocess: String,
    max_active_runs: String,
    reverse: bool,
    conf: String,
    intent: String,
}

impl Default for FormValues {
    fn default() -> Self {
        FormValues {
            from: String::new(),
            to: String::new(),
            reprocess: Reprocess::default().as_str().to_string(),
            max_active_runs: "10".to_string(),
            reverse: false,
            conf: String::new(),
            intent: "preview".to_string(),
        }
    }
}

impl FormValues {
    fn read(fields: Vec<(String, String)>) -> FormValues {
        let submitted: HashMap<String, String> = fields.into_iter().collect();
        let text = |name: &str, default: String| submitted.get(name).cloned().unwrap_or(default);
        let defaults = FormValues::default();
        FormValues {
            from: text("from", defaults.from),
            to: text("to", defaults.to),
            reprocess: text("reprocess", defaults.reprocess),
            max_active_runs: text("max_active_runs", defaults.max_active_runs),
            reverse: submitted
                .get("reverse")
                .is_some_and(|value| matches!(value.as_str(), "true" | "on")),
            conf: text("conf", defaults.conf),
            intent: text("intent", defaults.intent),
        }
    }

    /// The request the form asks for, or every problem with it.
    fn request(&self, dag: &Dag, max_dates: u32) -> Result<BackfillRequest, Vec<String>> {
        let mut problems = Vec::new();
        let timezone = dag.timetable.timezone;
        let mut date = |label: &str, text: &str, end: RangeEnd| {
            let text = text.trim();
            if text.is_empty() {
                problems.push(format!("{label}: give a logical date, such as 2026-03-01"));
                return None;
            }
            parse_range_bound(text, timezone, end)
                .map_err(|error| problems.push(format!("{label}: {error}")))
                .ok()
        };
        let from = date("From", &self.from, RangeEnd::Start);
        let to = date("To", &self.to, RangeEnd::End);
        let reprocess = self
            .reprocess
            .parse::<Reprocess>()
            .map_err(|error| problems.push(error.to_string()))
            .ok();
        let max_active_runs = self
            .max_active_runs
            .trim()
            .parse::<u32>()
            .map_err(|_| {
                problems.push(format!(
                    "Max active runs must be a whole number of at least 1, got `{}`",
                    self.max_active_runs.trim()
                ))
            })
            .ok();
        let conf = match self.conf.trim() {
            "" => Some(Value::Null),
            text => match serde_json::from_str::<Value>(text) {
                Ok(value @ Value::Object(_)) => Some(value),
                Ok(_) => {
                    problems.push("Conf must be a JSON object, such as {\"region\": \"us\"}".to_string());
                    None
                }
                Err(error) => {
                    problems.push(format!("Conf is not valid JSON: {error}"));
                    None
                }
            },
        };
        match (from, to, reprocess, max_active_runs, conf) {
            (Some(from), Some(to), Some(reprocess), Some(max_active_runs), Some(conf)) if problems.is_empty() => {
                Ok(BackfillRequest {
                    from,
                    to,
                    reprocess,
                    max_active_runs,
                    reverse: self.reverse,
                    conf,
                    max_dates,
                })
            }
            _ => Err(problems),
        }
    }
}

/// One date of a preview or of a backfill, with its run if it has one.
#[derive(Debug, Serialize)]
struct DateRow {
    logical_date: String,
    data_interval: String,
    action: &'static str,
    /// What happens, in words.
    what: String,
    run_id: Option<String>,
    run_url: Option<String>,
    /// The run's state (`none` when it has no run).
    state: String,
    reason: Option<String>,
}

/// What happens to a date, in words.
fn action_words(action: DateAction, existing_run_id: Option<&str>, reason: Option<&str>) -> String {
    match action {
        DateAction::Create => "new run".to_string(),
        DateAction::Rerun => format!("re-run {}", existing_run_id.unwrap_or("the existing run")),
        DateAction::Skip => format!("skipped: {}", reason.unwrap_or("a run exists")),
    }
}

async fn preview_rows(
    connection: &mut AnyConnection,
    dag: &Dag,
    dates: &[PlannedDate],
) -> Result<Vec<DateRow>, ApiError> {
    let mut rows = Vec::with_capacity(dates.len());
    for date in dates {
        let existing = match date.existing_run_id.as_deref().map(RunId::parse) {
            Some(Ok(run_id)) => run_rows::get(connection, &dag.dag_id, &run_id).await?,
            _ => None,
        };
        rows.push(DateRow {
            logical_date: views::time(date.run.logical_date),
            data_interval: format!(
                "{} → {}",
                views::time(date.run.data_interval.start),
                views::time(date.run.data_interval.end)
            ),
            action: date.action.as_str(),
            what: action_words(date.action, date.existing_run_id.as_deref(), date.reason.as_deref()),
            run_url: existing
                .as_ref()
                .map(|run| ui_paths::run(run.dag_id.as_str(), run.run_id.as_str())),
            run_id: date.existing_run_id.clone(),
            state: existing.map_or("none".to_string(), |run| run.state.to_string()),
            reason: date.reason.clone(),
        });
    }
    Ok(rows)
}

/// The Backfill tab: the form (with what was typed), a preview when one was asked for, and the
/// DAG's backfills, newest first.
pub async fn tab_context(
    connection: &mut AnyConnection,
    dag: &Dag,
    form: &FormValues,
    preview: Option<DateRowsSummary>,
) -> Result<minijinja::Value, ApiError> {
    let mut listed = Vec::new();
    for backfill in backfills::list(connection, Some(&dag.dag_id), None)
        .await?
        .iter()
        .take(LISTED)
    {
        listed.push(BackfillView::load(connection, backfill).await?);
    }
    Ok(context! {
        form,
        backfills => listed,
        preview,
        time_based => dag.timetable.schedule.is_time_based(),
        timezone => dag.timetable.timezone.name(),
        reprocess_choices => [
            ("none", "none: skip dates that already have a run"),
            ("failed", "failed: re-run failed runs"),
            ("completed", "completed: re-run every finished run"),
        ],
    })
}

/// A preview: its dates and how many of each action.
#[derive(Debug, Serialize)]
pub struct DateRowsSummary {
    dates: Vec<DateRow>,
    create: usize,
    rerun: usize,
    skip: usize,
}

/// `POST /dags/{dag_id}/backfill`: `intent=preview` shows every date and what would happen to
/// it; `intent=start` creates the backfill and goes to its page. Problems show the form again.
pub async fn submit(
    State(state): State<ApiState>,
    Extension(graphs): Extension<GraphCache>,
    UiPath(dag_id): UiPath<String>,
    UiForm(fields): UiForm<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let dag = find_dag(&state, &dag_id)?;
    let form = FormValues::read(fields);
    let mut problems = Vec::new();
    let mut preview = None;
    let status = match (
        form.request(&dag, state.config.max_backfill_dates),
        form.intent.as_str(),
    ) {
        (Err(found), _) => {
            problems = found;
            StatusCode::BAD_REQUEST
        }
        (Ok(request), "start") => match operations::create_backfill(&state.db, &dag, &request).await {
            Ok(backfill) => {
                let url = ui_paths::backfill(dag.dag_id.as_str(), backfill.id);
                let notice = format!("Started backfill {} of {}", backfill.id, dag.dag_id);
                let note = AuditNote::new().detail("backfill_id", backfill.id);
                return Ok((note, back_to(Some(&url), &url, &notice)).into_response());
            }
            Err(error) => refusal(error, &mut problems)?,
        },
        (Ok(request), "preview") => match operations::plan_backfill(&state.db, &dag, &request).await {
            Ok(dates) => {
                let mut connection = state.db.acquire().await?;
                let rows = preview_rows(&mut connection, &dag, &dates).await?;
                let count = |action: DateAction| dates.iter().filter(|date| date.action == action).count();
                preview = Some(DateRowsSummary {
                    create: count(DateAction::Create),
                    rerun: count(DateAction::Rerun),
                    skip: count(DateAction::Skip),
                    dates: rows,
                });
                StatusCode::OK
            }
            Err(error) => refusal(error, &mut problems)?,
        },
        (Ok(_), other) => {
            problems.push(format!("unknown action `{other}`: use Preview or Start backfill"));
            StatusCode::BAD_REQUEST
        }
    };
    let mut page = DagPage::load_tab(&state, &dag, "backfill", &graphs).await?;
    let mut connection = state.db.acquire().await?;
    page.tab_context = tab_context(&mut connection, &dag, &form, preview).await?;
    drop(connection);
    page.render(&dag, None, &problems, None, status)
}

/// A refusal shown on the form, with its status; failures of the server stay errors.
fn refusal(error: OperationError, problems: &mut Vec<String>) -> Result<StatusCode, ApiError> {
    match error {
        OperationError::Invalid(message) => {
            problems.push(message);
            Ok(StatusCode::BAD_REQUEST)
        }
        OperationError::Conflict(message) => {
            problems.push(message);
            Ok(StatusCode::CONFLICT)
        }
        other => Err(other.into()),
    }
}

#[derive(Debug, Deserialize)]
pub struct PageQuery {
    notice: Option<String>,
}

/// The backfill `raw_id` of `dag`, or a readable 4xx.
async fn find_backfill(connection: &mut AnyConnection, dag: &Dag, raw_id: &str) -> Result<Backfill, ApiError> {
    let id = raw_id
        .parse::<i64>()
        .map_err(|_| ApiError::BadRequest(format!("`{raw_id}` is not a backfill id: ids are whole numbers")))?;
    backfills::get(connection, id)
        .await?
        .filter(|backfill| backfill.dag_id == dag.dag_id)
        .ok_or_else(|| ApiError::NotFound(format!("DAG `{}` has no backfill {id}.", dag.dag_id)))
}

/// A slice of the progress bar: how many of the backfill's runs are in one state.
#[derive(Debug, Serialize)]
struct Segment {
    state: String,
    count: usize,
    width: f64,
}

/// `GET /dags/{dag_id}/backfills/{id}`: state, progress, every date with its run, and buttons.
pub async fn show(
    State(state): State<ApiState>,
    UiPath((dag_id, raw_id)): UiPath<(String, String)>,
    UiQuery(query): UiQuery<PageQuery>,
) -> Result<Response, ApiError> {
    let dag = find_dag(&state, &dag_id)?;
    let mut connection = state.db.acquire().await?;
    let backfill = find_backfill(&mut connection, &dag, &raw_id).await?;
    let view = BackfillView::load(&mut connection, &backfill).await?;
    let mut rows = Vec::new();
    let mut by_state: Vec<(String, usize)> = Vec::new();
    let mut live = backfill.state.is_active();
    for date in backfills::dates(&mut connection, backfill.id).await? {
        let run = match date.run_pk {
            Some(pk) => run_rows::get_by_pk(&mut connection, pk).await?,
            None => None,
        };
        let run_state = run.as_ref().map_or("none".to_string(), |run| run.state.to_string());
        if run.as_ref().is_some_and(|run| !run.state.is_finished()) {
            live = true;
        }
        if date.action != DateAction::Skip {
            match by_state.iter_mut().find(|(state, _)| *state == run_state) {
                Some((_, count)) => *count += 1,
                None => by_state.push((run_state.clone(), 1)),
            }
        }
        rows.push(DateRow {
            logical_date: views::time(date.logical_date),
            data_interval: format!(
                "{} → {}",
                views::time(date.data_interval_start),
                views::time(date.data_interval_end)
            ),
            action: date.action.as_str(),
            what: action_words(date.action, date.existing_run_id.as_deref(), date.reason.as_deref()),
            run_url: run
                .as_ref()
                .map(|run| ui_paths::run(run.dag_id.as_str(), run.run_id.as_str())),
            run_id: run.as_ref().map(|run| run.run_id.to_string()),
            state: run_state,
            reason: date.reason,
        });
    }
    let record = dag_rows::get(&mut connection, &dag.dag_id).await?;
    drop(connection);
    let planned: usize = by_state.iter().map(|(_, count)| count).sum();
    // Finished states first, so the bar fills from the left.
    let order = |state: &str| match state {
        "success" => 0,
        "failed" => 1,
        "running" => 2,
        "queued" => 3,
        _ => 4,
    };
    by_state.sort_by_key(|(state, _)| order(state));
    let segments: Vec<Segment> = by_state
        .into_iter()
        .map(|(state, count)| Segment {
            width: if planned == 0 {
                0.0
            } else {
                (count as f64) * 100.0 / planned as f64
            },
            state,
            count,
        })
        .collect();
    let html = render::page(
        "backfill.html",
        context! {
            dag => context! {
                dag_id => dag.dag_id.as_str(),
                url => ui_paths::dag(dag.dag_id.as_str()),
                paused => record.as_ref().is_some_and(|record| record.is_paused),
            },
            backfill => view,
            dates => rows,
            segments,
            notice => query.notice,
            live,
            now => views::time(Utc::now()),
            legend_states => views::LEGEND,
        },
    )?;
    Ok(html.into_response())
}

#[derive(Debug, Deserialize)]
pub struct ChangeForm {
    to: String,
}

/// `POST /dags/{dag_id}/backfills/{id}/state` with `to=paused|running|cancelled`.
pub async fn change(
    State(state): State<ApiState>,
    UiPath((dag_id, raw_id)): UiPath<(String, String)>,
    UiForm(form): UiForm<ChangeForm>,
) -> Result<Response, ApiError> {
    let dag = find_dag(&state, &dag_id)?;
    let mut connection = state.db.acquire().await?;
    let backfill = find_backfill(&mut connection, &dag, &raw_id).await?;
    drop(connection);
    let (to, done, event) = match form.to.as_str() {
        "paused" => (BackfillState::Paused, "Paused", "pause_backfill"),
        "running" => (BackfillState::Running, "Resumed", "unpause_backfill"),
        "cancelled" => (BackfillState::Cancelled, "Cancelled", "cancel_backfill"),
        other => {
            return Err(ApiError::BadRequest(format!(
                "a backfill can be paused, running (resumed) or cancelled, not `{other}`"
            )));
        }
    };
    operations::change_backfill(&state.db, backfill.id, to).await?;
    let url = ui_paths::backfill(dag.dag_id.as_str(), backfill.id);
    let note = AuditNote::new().event(event);
    Ok((
        note,
        back_to(Some(&url), &url, &format!("{done} backfill {}", backfill.id)),
    )
        .into_response())
}
