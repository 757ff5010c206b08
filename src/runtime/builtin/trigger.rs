//! The `trigger_dag` task (§5.6): creates a manual run of another DAG with `conf`, and with
//! `wait_for_completion` waits for it and takes its final state. The run id is derived from the
//! triggering attempt's run and task, so a retry finds the run it already created instead of
//! starting a second one.

use chrono::Utc;
use serde_json::json;

use super::{BuiltinAttempt, LogWriter};
use crate::domain::dag::TriggerDagTask;
use crate::domain::duration::format_duration;
use crate::domain::ids::RunId;
use crate::domain::state::RunState;
use crate::runtime::operations::{self, OperationError};
use crate::storage::runs;

/// The id of the run a trigger_dag task creates: stable across retries of the same task.
pub fn triggered_run_id(attempt: &BuiltinAttempt) -> Result<RunId, String> {
    let text = format!("triggered__{}__{}__{}", attempt.dag_id, attempt.run_id, attempt.task_id);
    let text: String = text.chars().take(250).collect();
    RunId::parse(text).map_err(|error| error.to_string())
}

pub(super) async fn trigger(
    attempt: &BuiltinAttempt,
    task: &TriggerDagTask,
    log: &mut LogWriter,
) -> Result<serde_json::Value, String> {
    let Some(target) = attempt.target_dag.as_deref() else {
        return Err(format!(
            "DAG `{}` is not in the DAG folder (or its file has import errors, see `weir import-errors`)",
            task.dag_id
        ));
    };
    let run_id = triggered_run_id(attempt)?;
    let database = |error: crate::storage::StorageError| format!("reading the metadata database: {error}");
    let mut connection = attempt.db.acquire().await.map_err(database)?;
    let existing = runs::get(&mut connection, &target.dag_id, &run_id)
        .await
        .map_err(database)?;
    drop(connection);
    match existing {
        Some(_) => log.note(&format!(
            "run {run_id} of {} exists already (an earlier try created it): not triggering again",
            target.dag_id
        )),
        None => {
            let new_run = operations::manual_run(target, &task.conf, Some(Utc::now()), Some(run_id.as_str()), None)
                .map_err(|error| format!("cannot trigger {}: {error}", target.dag_id))?;
            match operations::trigger(&attempt.db, target, &new_run).await {
                Ok(run) => log.note(&format!("triggered run {} of {}", run.run_id, target.dag_id)),
                // Two attempts raced (or a retry after a crash): the run exists, which is the goal.
                Err(OperationError::Conflict(message)) => log.note(&message),
                Err(error) => return Err(format!("cannot trigger {}: {error}", target.dag_id)),
            }
        }
    }
    let mut state = RunState::Queued;
    if task.wait_for_completion {
        log.note(&format!(
            "waiting for run {run_id} to finish (checking every {})",
            format_duration(task.poke_interval)
        ));
        loop {
            let mut connection = attempt.db.acquire().await.map_err(database)?;
            let run = runs::get(&mut connection, &target.dag_id, &run_id)
                .await
                .map_err(database)?
                .ok_or_else(|| format!("run {run_id} of {} was deleted while waiting for it", target.dag_id))?;
            drop(connection);
            state = run.state;
            if state.is_finished() {
                break;
            }
            tokio::time::sleep(task.poke_interval).await;
        }
        log.note(&format!("run {run_id} of {} ended {state}", target.dag_id));
        if state != RunState::Success {
            return Err(format!("the triggered run {run_id} of {} ended {state}", target.dag_id));
        }
    }
    Ok(json!({ "dag_id": target.dag_id.as_str(), "dag_run_id": run_id.as_str(), "state": state.as_str() }))
}
