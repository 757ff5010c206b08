//! What people do to runs and tasks: trigger, pause, clear, mark. Shared by the CLI and the web
//! server, so both refuse the same things with the same words.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::domain::backfill::{
    BackfillState, ExistingRun, PlannedDate, Reprocess, check_something_to_do, count_dates, plan_dates,
};
use crate::domain::dag::Dag;
use crate::domain::dates;
use crate::domain::ids::{DagId, RunId, TaskId};
use crate::domain::state::{RunState, RunType, TaskState};
use crate::storage::backfills::{self, Backfill, NewBackfill};
use crate::storage::runs::{self, DagRun, NewRun, RunFilter};
use crate::storage::{self, Db, StorageError, task_instances};

/// Why an operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum OperationError {
    /// The request breaks a rule (conf against params, a bad id): fix the request.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Storage(StorageError),
}

impl From<StorageError> for OperationError {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::Conflict(message) => OperationError::Conflict(message),
            StorageError::NotFound(message) => OperationError::NotFound(message),
            other => OperationError::Storage(other),
        }
    }
}

impl From<sqlx::Error> for OperationError {
    fn from(error: sqlx::Error) -> Self {
        OperationError::Storage(StorageError::Database(error))
    }
}

/// A manual run of `dag` (§3.3): `conf` checked against the DAG's params with defaults filled in,
/// logical date now unless given, data interval from the schedule.
pub fn manual_run(
    dag: &Dag,
    conf: &Value,
    logical_date: Option<DateTime<Utc>>,
    run_id: Option<&str>,
    owner: Option<String>,
) -> Result<NewRun, OperationError> {
    let conf = dag
        .params
        .resolve(conf)
        .map_err(|error| OperationError::Invalid(error.to_string()))?;
    // Stored times have microsecond precision; the run id must match the stored logical date.
    let logical_date = logical_date.unwrap_or_else(Utc::now);
    dates::check(logical_date).map_err(|error| OperationError::Invalid(format!("logical_date: {error}")))?;
    let logical_date = DateTime::from_timestamp_micros(logical_date.timestamp_micros()).unwrap_or(logical_date);
    let run_id = match run_id {
        Some(run_id) => RunId::parse(run_id).map_err(|error| OperationError::Invalid(error.to_string()))?,
        None => runs::generated_run_id(RunType::Manual, logical_date),
    };
    let interval = dag.timetable.manual_interval(logical_date);
    Ok(NewRun {
        dag_id: dag.dag_id.clone(),
        run_id,
        run_type: RunType::Manual,
        logical_date,
        data_interval_start: interval.start,
        data_interval_end: interval.end,
        run_after: logical_date,
        conf: Value::Object(conf),
        owner,
    })
}

/// Records a new run (and the DAG, if no daemon has yet) and tells a running scheduler.
pub async fn trigger(db: &Db, dag: &Dag, run: &NewRun) -> Result<DagRun, OperationError> {
    let now = Utc::now();
    let mut transaction = db.begin().await?;
    if storage::dags::get(&mut transaction, &dag.dag_id).await?.is_none() {
        storage::dags::upsert(&mut transaction, dag, now).await?;
    }
    let inserted = runs::insert(&mut transaction, run, now).await?;
    transaction.commit().await?;
    Ok(inserted)
}

/// Pauses or unpauses a DAG (recording it first if no daemon has).
pub async fn set_paused(db: &Db, dag: &Dag, paused: bool) -> Result<(), OperationError> {
    let mut transaction = db.begin().await?;
    if storage::dags::get(&mut transaction, &dag.dag_id).await?.is_none() {
        storage::dags::upsert(&mut transaction, dag, Utc::now()).await?;
    }
    storage::dags::set_paused(&mut transaction, &dag.dag_id, paused).await?;
    transaction.commit().await?;
    Ok(())
}

/// Pauses or unpauses a DAG the database knows but the DAG folder no longer holds.
pub async fn set_paused_recorded(db: &Db, dag_id: &DagId, paused: bool) -> Result<(), OperationError> {
    let mut transaction = db.begin().await?;
    storage::dags::set_paused(&mut transaction, dag_id, paused).await?;
    transaction.commit().await?;
    Ok(())
}

/// Which task instances to clear (§3.7).
#[derive(Debug, Clone, Default)]
pub struct ClearRequest {
    /// One run, or every run whose logical date is within the range (both ends optional).
    pub run_id: Option<RunId>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Tasks whose id matches; `None` = every task.
    pub task_pattern: Option<regex::Regex>,
    /// Only these tasks (on top of `task_pattern`); empty = no restriction.
    pub task_ids: Vec<TaskId>,
    pub include_downstream: bool,
    pub only_failed: bool,
}

/// The task instances a clear would reset, per run. Instances still queued or running are left
/// alone: they are busy, and their attempt decides their state.
pub type ClearPlan = BTreeMap<i64, (DagRun, Vec<TaskId>)>;

pub async fn plan_clear(db: &Db, dag: &Dag, request: &ClearRequest) -> Result<ClearPlan, OperationError> {
    let mut roots: Vec<TaskId> = dag
        .tasks
        .iter()
        .filter(|task| {
            request
                .task_pattern
                .as_ref()
                .is_none_or(|pattern| pattern.is_match(task.task_id.as_str()))
        })
        .filter(|task| request.task_ids.is_empty() || request.task_ids.contains(&task.task_id))
        .map(|task| task.task_id.clone())
        .collect();
    if request.include_downstream {
        roots = dag.with_downstream(&roots);
    }
    let mut connection = db.acquire().await?;
    let selected: Vec<DagRun> = match &request.run_id {
        Some(run_id) => vec![
            runs::get(&mut connection, &dag.dag_id, run_id)
                .await?
                .ok_or_else(|| OperationError::NotFound(format!("DAG `{}` has no run `{run_id}`", dag.dag_id)))?,
        ],
        None => {
            let filter = RunFilter {
                dag_id: Some(dag.dag_id.clone()),
                ..RunFilter::default()
            };
            runs::list(&mut connection, &filter)
                .await?
                .into_iter()
                .filter(|run| request.from.is_none_or(|from| run.logical_date >= from))
                .filter(|run| request.to.is_none_or(|to| run.logical_date <= to))
                .collect()
        }
    };
    let mut plan = ClearPlan::new();
    for run in selected {
        let chosen: Vec<TaskId> = task_instances::for_run(&mut connection, run.pk)
            .await?
            .into_iter()
            .filter(|ti| roots.contains(&ti.task_id))
            .filter(|ti| !request.only_failed || matches!(ti.state, TaskState::Failed | TaskState::UpstreamFailed))
            .filter(|ti| !ti.state.is_active())
            .map(|ti| ti.task_id)
            .collect();
        if !chosen.is_empty() {
            plan.insert(run.pk, (run, chosen));
        }
    }
    Ok(plan)
}

/// Resets the planned task instances to `none` with a renewed retry budget, and puts finished
/// runs back to `queued` so the scheduler runs them again. Returns how many were cleared.
pub async fn apply_clear(db: &Db, dag: &Dag, plan: &ClearPlan) -> Result<usize, OperationError> {
    let now = Utc::now();
    let mut cleared = 0;
    let mut transaction = db.begin().await?;
    for (run, tasks) in plan.values() {
        for task_id in tasks {
            let retries = dag.task(task_id.as_str()).map_or(0, |task| task.retry.retries);
            task_instances::clear(&mut transaction, run.pk, task_id, retries).await?;
            cleared += 1;
        }
        if run.state.is_finished() {
            runs::set_state(&mut transaction, run.pk, RunState::Queued, now).await?;
        }
    }
    transaction.commit().await?;
    Ok(cleared)
}

/// Marks one task instance success or failed by hand.
pub async fn mark_task(
    db: &Db,
    dag_id: &DagId,
    run_id: &RunId,
    task_id: &TaskId,
    state: TaskState,
) -> Result<(), OperationError> {
    if !matches!(state, TaskState::Success | TaskState::Failed) {
        return Err(OperationError::Invalid(format!(
            "a task can be marked success or failed, not {state}"
        )));
    }
    let mut transaction = db.begin().await?;
    let run = runs::get(&mut transaction, dag_id, run_id)
        .await?
        .ok_or_else(|| OperationError::NotFound(format!("DAG `{dag_id}` has no run `{run_id}`")))?;
    if !task_instances::mark(&mut transaction, run.pk, task_id, state, Utc::now()).await? {
        return Err(OperationError::NotFound(format!(
            "run `{run_id}` has no task instance `{task_id}`"
        )));
    }
    transaction.commit().await?;
    Ok(())
}

/// A backfill request (§3.8), as the CLI, the API and the UI give it.
#[derive(Debug, Clone)]
pub struct BackfillRequest {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub reprocess: Reprocess,
    pub max_active_runs: u32,
    pub reverse: bool,
    pub conf: Value,
    /// The most dates the range may hold (`[core] max_backfill_dates`), checked before anything
    /// is read or planned.
    pub max_dates: u32,
}

/// The dates a backfill would cover and what would happen to each, before anything is created.
pub async fn plan_backfill(db: &Db, dag: &Dag, request: &BackfillRequest) -> Result<Vec<PlannedDate>, OperationError> {
    if !dag.timetable.schedule.is_time_based() {
        return Err(OperationError::Invalid(format!(
            "DAG `{}` has schedule `{}`: only scheduled DAGs have logical dates to backfill",
            dag.dag_id,
            dag.timetable.schedule.describe()
        )));
    }
    if request.from > request.to {
        return Err(OperationError::Invalid(format!(
            "the range is empty: from {} is after to {}",
            request.from.to_rfc3339(),
            request.to.to_rfc3339()
        )));
    }
    if request.max_active_runs == 0 {
        return Err(OperationError::Invalid(
            "max_active_runs must be at least 1".to_string(),
        ));
    }
    dag.params
        .resolve(&request.conf)
        .map_err(|error| OperationError::Invalid(error.to_string()))?;
    for date in [request.from, request.to] {
        dates::check(date).map_err(|error| OperationError::Invalid(error.to_string()))?;
    }
    count_dates(&dag.timetable, request.from, request.to, request.max_dates)
        .map_err(|error| OperationError::Invalid(error.to_string()))?;
    let mut connection = db.acquire().await?;
    let filter = RunFilter {
        dag_id: Some(dag.dag_id.clone()),
        ..RunFilter::default()
    };
    let existing: Vec<ExistingRun> = runs::list(&mut connection, &filter)
        .await?
        .into_iter()
        .filter(|run| matches!(run.run_type, RunType::Scheduled | RunType::Backfill))
        .map(|run| ExistingRun {
            logical_date: run.logical_date,
            run_id: run.run_id.to_string(),
            state: run.state,
        })
        .collect();
    let dates = plan_dates(
        &dag.timetable,
        request.from,
        request.to,
        request.reprocess,
        &existing,
        request.reverse,
    );
    if dates.is_empty() {
        return Err(OperationError::Invalid(format!(
            "schedule `{}` has no logical dates between {} and {}",
            dag.timetable.schedule.describe(),
            request.from.to_rfc3339(),
            request.to.to_rfc3339()
        )));
    }
    Ok(dates)
}

/// Creates a backfill; the scheduler starts its runs. One active backfill per DAG. A backfill that
/// would start no run (every date has one that `reprocess` leaves alone) is refused, not recorded.
pub async fn create_backfill(db: &Db, dag: &Dag, request: &BackfillRequest) -> Result<Backfill, OperationError> {
    let dates = plan_backfill(db, dag, request).await?;
    check_something_to_do(&dates, request.reprocess)
        .map_err(|refusal| OperationError::Conflict(refusal.to_string()))?;
    let now = Utc::now();
    let mut transaction = db.begin().await?;
    if storage::dags::get(&mut transaction, &dag.dag_id).await?.is_none() {
        storage::dags::upsert(&mut transaction, dag, now).await?;
    }
    let backfill = NewBackfill {
        dag_id: dag.dag_id.clone(),
        from_date: request.from,
        to_date: request.to,
        reprocess: request.reprocess,
        max_active_runs: request.max_active_runs,
        run_backwards: request.reverse,
        conf: request.conf.clone(),
    };
    let created = backfills::insert(&mut transaction, &backfill, &dates, now).await?;
    transaction.commit().await?;
    Ok(created)
}

/// Pauses, resumes or cancels a backfill. Cancelling starts no further runs, lets running ones
/// finish, and fails the ones that had not started, so none is left queued.
pub async fn change_backfill(db: &Db, id: i64, to: BackfillState) -> Result<Backfill, OperationError> {
    let now = Utc::now();
    let mut transaction = db.begin().await?;
    let backfill = backfills::get(&mut transaction, id)
        .await?
        .ok_or_else(|| OperationError::NotFound(format!("there is no backfill with id {id}")))?;
    let allowed = matches!(
        (backfill.state, to),
        (BackfillState::Running, BackfillState::Paused)
            | (BackfillState::Paused, BackfillState::Running)
            | (BackfillState::Running | BackfillState::Paused, BackfillState::Cancelled)
    );
    if !allowed {
        return Err(OperationError::Conflict(format!(
            "backfill {id} is {}: it cannot become {to}",
            backfill.state
        )));
    }
    backfills::set_state(&mut transaction, id, to, now).await?;
    if to == BackfillState::Cancelled {
        runs::fail_queued_of_backfill(&mut transaction, id, now).await?;
    }
    // As stored: state, updated_at and completed_at exactly as the next read will see them.
    let changed = backfills::get(&mut transaction, id)
        .await?
        .ok_or_else(|| OperationError::NotFound(format!("backfill {id} vanished while it was changed")))?;
    transaction.commit().await?;
    Ok(changed)
}

/// Sets a run's state by hand, as Airflow does: `success` marks every unfinished task instance
/// success; `failed` marks queued and running ones failed and the rest of the unfinished ones
/// skipped; `queued` puts the run back in the queue and leaves its task instances alone.
pub async fn set_run_state(db: &Db, dag_id: &DagId, run_id: &RunId, state: RunState) -> Result<DagRun, OperationError> {
    if state == RunState::Running {
        return Err(OperationError::Invalid(
            "a run can be set to queued, success or failed, not running".to_string(),
        ));
    }
    let now = Utc::now();
    let mut transaction = db.begin().await?;
    let run = runs::get(&mut transaction, dag_id, run_id)
        .await?
        .ok_or_else(|| OperationError::NotFound(format!("DAG `{dag_id}` has no run `{run_id}`")))?;
    if state != RunState::Queued {
        for ti in task_instances::for_run(&mut transaction, run.pk).await? {
            if ti.state.is_finished() {
                continue;
            }
            let new_state = match state {
                RunState::Success => TaskState::Success,
                _ if ti.state.is_active() => TaskState::Failed,
                _ => TaskState::Skipped,
            };
            task_instances::mark(&mut transaction, run.pk, &ti.task_id, new_state, now).await?;
        }
    }
    runs::set_state(&mut transaction, run.pk, state, now).await?;
    let updated = runs::get_by_pk(&mut transaction, run.pk)
        .await?
        .ok_or_else(|| OperationError::NotFound(format!("DAG `{dag_id}` has no run `{run_id}`")))?;
    transaction.commit().await?;
    Ok(updated)
}

/// Deletes a run with its task instances and their history (log files stay on disk).
pub async fn delete_run(db: &Db, dag_id: &DagId, run_id: &RunId) -> Result<(), OperationError> {
    let mut transaction = db.begin().await?;
    let run = runs::get(&mut transaction, dag_id, run_id)
        .await?
        .ok_or_else(|| OperationError::NotFound(format!("DAG `{dag_id}` has no run `{run_id}`")))?;
    runs::delete(&mut transaction, run.pk).await?;
    transaction.commit().await?;
    Ok(())
}

/// What `weir db clean` removed (or would remove, on a dry run).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanReport {
    pub runs: u64,
    pub task_instances: u64,
    pub attempts: u64,
    pub log_folders: u64,
    /// Delivered or failed alerts of the removed runs (pending ones are still delivered).
    pub alerts: u64,
    /// Dataset events of the removed runs that every consumer has used (never a dataset's newest).
    pub dataset_events: u64,
    /// Audit log entries recorded before the cutoff (of the DAG, when one is given).
    pub event_logs: u64,
}

/// Deletes finished runs whose logical date is before `cutoff`, with their task instances,
/// attempts (outputs, rendered fields), log folders, finished alerts and consumed dataset events;
/// and audit log entries recorded before `cutoff`. Nothing newer, nothing still running.
pub async fn clean_history(
    db: &Db,
    logs_dir: &std::path::Path,
    cutoff: DateTime<Utc>,
    dag_id: Option<&DagId>,
    dry_run: bool,
) -> Result<CleanReport, OperationError> {
    let mut report = CleanReport::default();
    let mut connection = db.acquire().await?;
    let old = runs::finished_before(&mut connection, cutoff, dag_id).await?;
    report.event_logs =
        storage::event_log::clean_before(&mut connection, cutoff, dag_id.map(DagId::as_str), dry_run).await?;
    drop(connection);
    for run in old {
        let mut transaction = db.begin().await?;
        let (instances, attempts) = runs::history_size(&mut transaction, run.pk).await?;
        report.alerts +=
            storage::alerts::clean_finished_of_run(&mut transaction, run.dag_id.as_str(), run.run_id.as_str(), dry_run)
                .await?;
        report.dataset_events += storage::datasets::clean_consumed_events_of_run(
            &mut transaction,
            run.dag_id.as_str(),
            run.run_id.as_str(),
            dry_run,
        )
        .await?;
        if !dry_run {
            runs::delete(&mut transaction, run.pk).await?;
        }
        transaction.commit().await?;
        report.runs += 1;
        report.task_instances += instances;
        report.attempts += attempts;
        // Ids are validated newtypes, so the folder is always inside the logs folder.
        let folder = logs_dir.join(run.dag_id.as_str()).join(run.run_id.as_str());
        if folder.is_dir() {
            report.log_folders += 1;
            if !dry_run {
                let removing = folder.clone();
                tokio::task::spawn_blocking(move || std::fs::remove_dir_all(removing))
                    .await
                    .map_err(|error| OperationError::Storage(StorageError::Corrupt(error.to_string())))?
                    .map_err(|error| {
                        OperationError::Invalid(format!("cannot remove the log folder {}: {error}", folder.display()))
                    })?;
            }
        }
    }
    Ok(report)
}
