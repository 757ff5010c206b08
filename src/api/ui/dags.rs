//! The DAG list, the DAG page (grid, graph, code, runs, trigger form, backfill form),
//! pause/unpause, triggering a run from the form, and the import errors page.

use std::collections::{BTreeSet, HashMap};

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::error::{UiForm, UiPath, UiQuery};
use super::graph::{self, GraphCache};
use super::views::{self, Pager, RunView, TaskInstanceView};
use super::{back_to, backfills, find_dag, render};
use crate::api::ApiState;
use crate::api::audit::AuditNote;
use crate::api::error::ApiError;
use crate::domain::dag::Dag;
use crate::domain::ui_paths;
use crate::runtime::operations;
use crate::storage::{dags as dag_rows, import_errors, runs as run_rows, task_instances};

mod trigger_form;

use trigger_form::param_fields;
pub use trigger_form::trigger;

/// Runs per grid or history page.
const RUNS_PER_PAGE: u32 = 25;
/// Coloured dots per DAG in the list.
const RECENT_RUNS: u32 = 8;
/// DAGs per page of the list: with a thousand DAGs, one page of everything is megabytes of HTML
/// and a query over every run.
const DAGS_PER_PAGE: usize = 100;

#[derive(Debug, Serialize)]
struct DagRow {
    dag_id: String,
    url: String,
    description: Option<String>,
    owner: String,
    tags: Vec<String>,
    paused: bool,
    schedule: String,
    schedule_words: Option<String>,
    timezone: String,
    next_run: Option<String>,
    recent: Vec<RunView>,
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    tag: String,
    notice: Option<String>,
    #[serde(default)]
    offset: usize,
}

/// `GET /`: the loaded DAGs, filtered by a search text and a tag, a page at a time.
pub async fn list(State(state): State<ApiState>, UiQuery(query): UiQuery<ListQuery>) -> Result<Response, ApiError> {
    let bag = state.bag();
    let now = Utc::now();
    let mut connection = state.db.acquire().await?;
    let records: HashMap<String, dag_rows::DagRecord> = dag_rows::list(&mut connection)
        .await?
        .into_iter()
        .map(|record| (record.dag_id.to_string(), record))
        .collect();
    let n_import_errors = import_errors::list(&mut connection).await?.len().max(bag.errors.len());

    let all_tags: BTreeSet<String> = bag.dags.values().flat_map(|dag| dag.tags.iter().cloned()).collect();
    let search = query.q.trim().to_lowercase();
    let matching: Vec<&std::sync::Arc<Dag>> = bag
        .dags
        .values()
        .filter(|dag| {
            search.is_empty()
                || dag.dag_id.as_str().to_lowercase().contains(&search)
                || dag
                    .description
                    .as_deref()
                    .is_some_and(|text| text.to_lowercase().contains(&search))
                || dag.owner.to_lowercase().contains(&search)
        })
        .filter(|dag| query.tag.is_empty() || dag.tags.contains(&query.tag))
        .collect();
    let total = matching.len();
    let offset = query
        .offset
        .min(total.saturating_sub(1) / DAGS_PER_PAGE * DAGS_PER_PAGE);
    let mut rows: Vec<DagRow> = Vec::new();
    for dag in matching.iter().skip(offset).take(DAGS_PER_PAGE) {
        // Only this page's DAGs: a few indexed reads instead of ranking every run there is.
        let recent: Vec<RunView> = run_rows::list(&mut connection, &run_rows::newest_page(&dag.dag_id, RECENT_RUNS, 0))
            .await?
            .iter()
            .map(|run| RunView::new(run, now))
            .collect();
        rows.push({
            let dag: &Dag = dag;
            let record = records.get(dag.dag_id.as_str());
            let (schedule, schedule_words) = views::schedule(dag);
            let mut runs = recent;
            // Oldest on the left, as a timeline reads.
            runs.reverse();
            DagRow {
                dag_id: dag.dag_id.to_string(),
                url: ui_paths::dag(dag.dag_id.as_str()),
                description: dag.description.clone(),
                owner: dag.owner.clone(),
                tags: dag.tags.clone(),
                paused: record.map_or(dag.is_paused_upon_creation, |record| record.is_paused),
                schedule,
                schedule_words,
                timezone: dag.timetable.timezone.name().to_string(),
                next_run: record.and_then(|record| views::opt_time(record.next_dagrun_logical_date)),
                recent: runs,
            }
        });
    }
    drop(connection);
    let page_link = |offset: usize| {
        let mut url = format!("/?q={}&tag={}", views::encode(&query.q), views::encode(&query.tag));
        if offset > 0 {
            url.push_str(&format!("&offset={offset}"));
        }
        url
    };
    let previous_url = (offset > 0).then(|| page_link(offset.saturating_sub(DAGS_PER_PAGE)));
    let next_url = (offset + rows.len() < total).then(|| page_link(offset + DAGS_PER_PAGE));
    let first_shown = if rows.is_empty() { 0 } else { offset + 1 };
    let last_shown = offset + rows.len();
    let live = rows.iter().any(|row| row.recent.iter().any(|run| run.active));
    let html = render::page(
        "dags.html",
        context! {
            rows,
            n_dags => bag.dags.len(),
            total,
            first_shown,
            last_shown,
            previous_url,
            next_url,
            all_tags,
            q => query.q,
            tag => query.tag,
            n_import_errors,
            notice => query.notice,
            live,
        },
    )?;
    Ok(html.into_response())
}

#[derive(Debug, Deserialize)]
pub struct DagQuery {
    tab: Option<String>,
    #[serde(default)]
    offset: u32,
    run_id: Option<String>,
    notice: Option<String>,
}

#[derive(Debug, Serialize)]
struct GridRow {
    task_id: String,
    cells: Vec<TaskInstanceView>,
}

/// `GET /dags/{dag_id}`: the DAG's header and one tab.
pub async fn show(
    State(state): State<ApiState>,
    Extension(graphs): Extension<GraphCache>,
    UiPath(dag_id): UiPath<String>,
    UiQuery(query): UiQuery<DagQuery>,
) -> Result<Response, ApiError> {
    let dag = find_dag(&state, &dag_id)?;
    let tab = match query.tab.as_deref() {
        None | Some("" | "grid") => "grid",
        Some("graph") => "graph",
        Some("code") => "code",
        Some("runs") => "runs",
        Some("trigger") => "trigger",
        Some("backfill") => "backfill",
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "there is no tab `{other}`: use grid, graph, code, runs, trigger or backfill"
            )));
        }
    };
    let page = DagPage::load(&state, &dag, tab, &query, &graphs).await?;
    page.render(&dag, query.notice.as_deref(), &[], None, StatusCode::OK)
}

/// What every tab of the DAG page needs, loaded once.
pub(super) struct DagPage {
    tab: &'static str,
    header: minijinja::Value,
    pub(super) tab_context: minijinja::Value,
    live: bool,
}

impl DagPage {
    /// The first page of `tab`, as a form handler shows it again.
    pub(super) async fn load_tab(
        state: &ApiState,
        dag: &Dag,
        tab: &'static str,
        graphs: &GraphCache,
    ) -> Result<DagPage, ApiError> {
        let query = DagQuery {
            tab: Some(tab.to_string()),
            offset: 0,
            run_id: None,
            notice: None,
        };
        DagPage::load(state, dag, tab, &query, graphs).await
    }

    async fn load(
        state: &ApiState,
        dag: &Dag,
        tab: &'static str,
        query: &DagQuery,
        graphs: &GraphCache,
    ) -> Result<DagPage, ApiError> {
        let now = Utc::now();
        let mut connection = state.db.acquire().await?;
        let record = dag_rows::get(&mut connection, &dag.dag_id).await?;
        let filter = run_rows::RunFilter {
            dag_id: Some(dag.dag_id.clone()),
            ..run_rows::RunFilter::default()
        };
        let total_runs = u64::try_from(run_rows::count(&mut connection, &filter).await?).unwrap_or(0);
        let runs = run_rows::list(
            &mut connection,
            &run_rows::newest_page(&dag.dag_id, RUNS_PER_PAGE, query.offset),
        )
        .await?;
        let active_backfill = backfills::active_view(&mut connection, dag).await?;
        let live = runs.iter().any(|run| !run.state.is_finished()) || active_backfill.is_some();
        let (schedule, schedule_words) = views::schedule(dag);
        let dag_url = ui_paths::dag(dag.dag_id.as_str());
        let header = context! {
            dag_id => dag.dag_id.as_str(),
            url => &dag_url,
            description => &dag.description,
            owner => &dag.owner,
            tags => &dag.tags,
            paused => record.as_ref().map_or(dag.is_paused_upon_creation, |record| record.is_paused),
            schedule,
            schedule_words,
            timezone => dag.timetable.timezone.name(),
            next_run => record.as_ref().and_then(|record| views::opt_time(record.next_dagrun_logical_date)),
            fileloc => dag.fileloc.display().to_string(),
            n_tasks => dag.tasks.len(),
            total_runs,
            active_backfill,
            time_based => dag.timetable.schedule.is_time_based(),
        };
        let tab_url = format!("{dag_url}?tab={tab}");
        let pager = Pager::new(
            &tab_url,
            u64::from(query.offset),
            u64::from(RUNS_PER_PAGE),
            total_runs,
            runs.len() as u64,
        );
        let tab_context = match tab {
            "grid" => {
                let run_pks: Vec<i64> = runs.iter().map(|run| run.pk).collect();
                let instances = task_instances::for_runs(&mut connection, &run_pks).await?;
                let mut by_cell: HashMap<(i64, String), TaskInstanceView> = instances
                    .iter()
                    .map(|ti| ((ti.run_pk, ti.task_id.to_string()), TaskInstanceView::new(ti, now)))
                    .collect();
                let rows: Vec<GridRow> = dag
                    .tasks
                    .iter()
                    .map(|task| GridRow {
                        task_id: task.task_id.to_string(),
                        cells: runs
                            .iter()
                            .map(|run| {
                                by_cell.remove(&(run.pk, task.task_id.to_string())).unwrap_or_else(|| {
                                    TaskInstanceView::missing(
                                        dag.dag_id.as_str(),
                                        run.run_id.as_str(),
                                        task.task_id.as_str(),
                                    )
                                })
                            })
                            .collect(),
                    })
                    .collect();
                let runs: Vec<RunView> = runs.iter().map(|run| RunView::new(run, now)).collect();
                context! { runs, rows, pager }
            }
            "graph" => {
                let selected = match &query.run_id {
                    Some(run_id) if !run_id.is_empty() => {
                        let run_id = crate::domain::ids::RunId::parse(run_id.as_str())
                            .map_err(|error| ApiError::BadRequest(error.to_string()))?;
                        Some(
                            run_rows::get(&mut connection, &dag.dag_id, &run_id)
                                .await?
                                .ok_or_else(|| {
                                    ApiError::NotFound(format!("DAG `{}` has no run `{run_id}`.", dag.dag_id))
                                })?,
                        )
                    }
                    _ => runs.first().cloned(),
                };
                let instances = match &selected {
                    Some(run) => task_instances::for_run(&mut connection, run.pk).await?,
                    None => Vec::new(),
                };
                let states: Vec<(String, String)> = dag
                    .tasks
                    .iter()
                    .map(|task| {
                        let state = instances
                            .iter()
                            .find(|ti| ti.task_id == task.task_id)
                            .map_or("none".to_string(), |ti| ti.state.to_string());
                        (task.task_id.to_string(), state)
                    })
                    .collect();
                let svg = graph::colour(&graphs.svg(dag), &states);
                let tasks: Vec<TaskInstanceView> = dag
                    .tasks
                    .iter()
                    .map(
                        |task| match (&selected, instances.iter().find(|ti| ti.task_id == task.task_id)) {
                            (_, Some(ti)) => TaskInstanceView::new(ti, now),
                            (Some(run), None) => TaskInstanceView::missing(
                                dag.dag_id.as_str(),
                                run.run_id.as_str(),
                                task.task_id.as_str(),
                            ),
                            (None, None) => TaskInstanceView {
                                url: String::new(),
                                ..TaskInstanceView::missing(dag.dag_id.as_str(), "-", task.task_id.as_str())
                            },
                        },
                    )
                    .collect();
                let upstream: Vec<(String, Vec<String>)> = dag
                    .tasks
                    .iter()
                    .map(|task| {
                        (
                            task.task_id.to_string(),
                            task.upstream.iter().map(ToString::to_string).collect(),
                        )
                    })
                    .collect();
                let run_choices: Vec<RunView> = runs.iter().map(|run| RunView::new(run, now)).collect();
                context! {
                    svg,
                    tasks,
                    upstream,
                    selected => selected.as_ref().map(|run| RunView::new(run, now)),
                    run_choices,
                }
            }
            "code" => {
                let lines: Vec<&str> = dag.source.lines().collect();
                context! { lines }
            }
            "runs" => {
                let runs: Vec<RunView> = runs.iter().map(|run| RunView::new(run, now)).collect();
                context! { runs, pager }
            }
            "backfill" => backfills::tab_context(&mut connection, dag, &backfills::FormValues::default(), None).await?,
            _ => context! {},
        };
        Ok(DagPage {
            tab,
            header,
            tab_context,
            live,
        })
    }

    pub(super) fn render(
        self,
        dag: &Dag,
        notice: Option<&str>,
        errors: &[String],
        submitted: Option<&HashMap<String, String>>,
        status: StatusCode,
    ) -> Result<Response, ApiError> {
        let fields = param_fields(dag, submitted);
        let html = render::page(
            "dag.html",
            context! {
                dag => self.header,
                tab => self.tab,
                t => self.tab_context,
                fields,
                errors,
                run_id_value => submitted.and_then(|values| values.get("run_id")).cloned().unwrap_or_default(),
                notice,
                live => self.live,
                legend_states => views::LEGEND,
            },
        )?;
        Ok((status, html).into_response())
    }
}

#[derive(Debug, Deserialize)]
pub struct PauseForm {
    paused: String,
    next: Option<String>,
}

/// `POST /dags/{dag_id}/pause` with `paused=true|false`.
pub async fn pause(
    State(state): State<ApiState>,
    UiPath(dag_id): UiPath<String>,
    UiForm(form): UiForm<PauseForm>,
) -> Result<Response, ApiError> {
    let dag = find_dag(&state, &dag_id)?;
    let paused = match form.paused.as_str() {
        "true" => true,
        "false" => false,
        other => {
            return Err(ApiError::BadRequest(format!(
                "`paused` must be true or false, got `{other}`"
            )));
        }
    };
    operations::set_paused(&state.db, &dag, paused).await?;
    let notice = if paused {
        format!("Paused {}", dag.dag_id)
    } else {
        format!("Unpaused {}", dag.dag_id)
    };
    let note = AuditNote::new().detail("is_paused", paused);
    Ok((
        note,
        back_to(form.next.as_deref(), &ui_paths::dag(dag.dag_id.as_str()), &notice),
    )
        .into_response())
}

#[derive(Debug, Serialize)]
struct ImportErrorRow {
    filename: String,
    line: u32,
    column: u32,
    message: String,
    timestamp: String,
}

/// `GET /import-errors`: the DAG files that failed, with where and why. What the loader of this
/// process found counts too (a web server without a scheduler records nothing).
pub async fn import_errors(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let mut connection = state.db.acquire().await?;
    let mut rows: Vec<ImportErrorRow> = import_errors::list(&mut connection)
        .await?
        .into_iter()
        .map(|error| ImportErrorRow {
            filename: error.filename,
            line: error.line,
            column: error.column,
            message: error.message,
            timestamp: views::time(error.timestamp),
        })
        .collect();
    if rows.is_empty() {
        let now = views::time(Utc::now());
        rows = state
            .bag()
            .import_errors()
            .into_iter()
            .map(|error| ImportErrorRow {
                filename: error.filename,
                line: error.line,
                column: error.column,
                message: error.message,
                timestamp: now.clone(),
            })
            .collect();
    }
    let n_import_errors = rows.len();
    let html = render::page("import_errors.html", context! { rows, n_import_errors })?;
    Ok(html.into_response())
}
