//! The `task_instance` and `task_attempt` tables: each task's state within a run, and the history
//! of its attempts (rendered fields, exit code, output, error). This file reads and changes the
//! instances of a run; `claims.rs` is what dispatch and recovery take and hold, `attempt.rs` each
//! attempt's start, end and history.

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{StorageError, Transaction, micros, opt_time, parse_column};
use crate::domain::dag::Task;
use crate::domain::ids::{DagId, RunId, TaskId};
use crate::domain::planner::TaskInstanceState;
use crate::domain::state::TaskState;

mod attempt;
mod claims;

pub use attempt::{
    Attempt, AttemptEnd, AttemptStart, RecordedEnd, attempt_state, attempts, finish_attempt, mark_started, outputs,
};
pub use claims::{SlotHolder, Waiting, active, claim, claim_many, held_by_others, scheduled, slot_holders, take_over};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskInstance {
    pub run_pk: i64,
    pub dag_id: DagId,
    pub run_id: RunId,
    pub task_id: TaskId,
    pub state: TaskState,
    pub try_number: u32,
    pub max_tries: u32,
    pub pool: String,
    pub pool_slots: u32,
    pub priority_weight: i64,
    pub next_retry_at: Option<DateTime<Utc>>,
    pub queued_at: Option<DateTime<Utc>>,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    pub pid: Option<i64>,
    pub hostname: Option<String>,
    /// Attempts ended by their scheduler's death (crash or kill) since the instance was created or
    /// last cleared.
    pub crash_ends: u32,
}

/// Task instances one batched statement (claims, schedules) names: within every backend's bind
/// limit with room to spare.
const ROWS_PER_STATEMENT: usize = 100;

const COLUMNS: &str = "run_pk, dag_id, run_id, task_id, state, try_number, max_tries, pool, pool_slots, priority_weight, next_retry_at, queued_at, start_date, end_date, pid, hostname, crash_ends";

fn count(row: &AnyRow, column: &str) -> Result<u32, StorageError> {
    Ok(u32::try_from(row.try_get::<i64, _>(column)?).unwrap_or(0))
}

fn from_row(row: AnyRow) -> Result<TaskInstance, StorageError> {
    Ok(TaskInstance {
        run_pk: row.try_get("run_pk")?,
        dag_id: parse_column(row.try_get("dag_id")?, "dag_id")?,
        run_id: RunId::parse(row.try_get::<String, _>("run_id")?)
            .map_err(|error| StorageError::Corrupt(error.to_string()))?,
        task_id: TaskId::parse(row.try_get::<String, _>("task_id")?)
            .map_err(|error| StorageError::Corrupt(error.to_string()))?,
        state: parse_column(row.try_get("state")?, "state")?,
        try_number: count(&row, "try_number")?,
        max_tries: count(&row, "max_tries")?,
        pool: row.try_get("pool")?,
        pool_slots: count(&row, "pool_slots")?,
        priority_weight: row.try_get("priority_weight")?,
        next_retry_at: opt_time(row.try_get("next_retry_at")?),
        queued_at: opt_time(row.try_get("queued_at")?),
        start_date: opt_time(row.try_get("start_date")?),
        end_date: opt_time(row.try_get("end_date")?),
        pid: row.try_get("pid")?,
        hostname: row.try_get("hostname")?,
        crash_ends: count(&row, "crash_ends")?,
    })
}

pub async fn for_run(connection: &mut AnyConnection, run_pk: i64) -> Result<Vec<TaskInstance>, StorageError> {
    let sql = format!("SELECT {COLUMNS} FROM task_instance WHERE run_pk = $1 ORDER BY task_id");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(run_pk)
        .fetch_all(connection)
        .await?
        .into_iter()
        .map(from_row)
        .collect()
}

/// What the planner needs of a run's task instances, and nothing more: it is read after every
/// event that touches the run, so the narrow row keeps that read cheap.
pub async fn planner_states(
    connection: &mut AnyConnection,
    run_pk: i64,
) -> Result<Vec<(TaskId, TaskInstanceState)>, StorageError> {
    sqlx::query("SELECT task_id, state, try_number, max_tries, next_retry_at FROM task_instance WHERE run_pk = $1")
        .bind(run_pk)
        .fetch_all(connection)
        .await?
        .into_iter()
        .map(|row| {
            let task_id = TaskId::parse(row.try_get::<String, _>("task_id")?)
                .map_err(|error| StorageError::Corrupt(error.to_string()))?;
            let view = TaskInstanceState {
                state: parse_column(row.try_get("state")?, "state")?,
                try_number: count(&row, "try_number")?,
                max_tries: count(&row, "max_tries")?,
                next_retry_at: opt_time(row.try_get("next_retry_at")?),
            };
            Ok((task_id, view))
        })
        .collect()
}

/// The task instances of several runs at once (the UI's grid), ordered by run then task.
pub async fn for_runs(connection: &mut AnyConnection, run_pks: &[i64]) -> Result<Vec<TaskInstance>, StorageError> {
    if run_pks.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders: Vec<String> = (1..=run_pks.len()).map(|position| format!("${position}")).collect();
    let sql = format!(
        "SELECT {COLUMNS} FROM task_instance WHERE run_pk IN ({}) ORDER BY run_pk, task_id",
        placeholders.join(", ")
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for run_pk in run_pks {
        query = query.bind(*run_pk);
    }
    query.fetch_all(connection).await?.into_iter().map(from_row).collect()
}

pub async fn get(
    connection: &mut AnyConnection,
    run_pk: i64,
    task_id: &TaskId,
) -> Result<Option<TaskInstance>, StorageError> {
    let sql = format!("SELECT {COLUMNS} FROM task_instance WHERE run_pk = $1 AND task_id = $2");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(run_pk)
        .bind(task_id.as_str())
        .fetch_optional(connection)
        .await?
        .map(from_row)
        .transpose()
}

/// Creates task instances in state `none` with a fresh retry budget, one statement per
/// [`ROWS_PER_STATEMENT`] tasks: a new run of a 200-task DAG is a few statements, not 200.
pub async fn create(
    connection: &mut AnyConnection,
    run_pk: i64,
    dag_id: &DagId,
    run_id: &RunId,
    tasks: &[&Task],
) -> Result<(), StorageError> {
    for chunk in tasks.chunks(ROWS_PER_STATEMENT) {
        let values: Vec<String> = (0..chunk.len())
            .map(|index| {
                let first = 5 * index + 4;
                format!(
                    "($1, ${first}, $2, $3, 'none', 0, ${}, ${}, ${}, ${})",
                    first + 1,
                    first + 2,
                    first + 3,
                    first + 4
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO task_instance (run_pk, task_id, dag_id, run_id, state, try_number, max_tries, pool, pool_slots, priority_weight) VALUES {}",
            values.join(", ")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(run_pk)
            .bind(dag_id.as_str())
            .bind(run_id.as_str());
        for task in chunk {
            query = query
                .bind(task.task_id.as_str())
                .bind(i64::from(task.retry.retries) + 1)
                .bind(task.pool.as_str())
                .bind(i64::from(task.pool_slots))
                .bind(task.priority_weight);
        }
        query.execute(&mut *connection).await?;
    }
    Ok(())
}

/// A planner transition (`scheduled`, `skipped`, `upstream_failed`, `removed`). Finished states get
/// an end date. `task` refreshes pool and priority from the current DAG file when scheduling.
pub async fn set_state(
    connection: &mut AnyConnection,
    run_pk: i64,
    task_id: &TaskId,
    state: TaskState,
    task: Option<&Task>,
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    let slots = task.map(TaskSlots::of);
    set_states(connection, run_pk, &[task_id], state, slots.as_ref(), now).await
}

/// Where a scheduled task takes its slots and how it ranks, as its DAG file says now.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TaskSlots {
    pub pool: String,
    pub pool_slots: u32,
    pub priority_weight: i64,
}

impl TaskSlots {
    pub fn of(task: &Task) -> TaskSlots {
        TaskSlots {
            pool: task.pool.clone(),
            pool_slots: task.pool_slots,
            priority_weight: task.priority_weight,
        }
    }
}

/// [`set_state`] for several task instances of one run that take the same transition (and, when
/// scheduled, the same slots): one statement per hundred, since a fan-out schedules hundreds at once.
pub async fn set_states(
    connection: &mut AnyConnection,
    run_pk: i64,
    task_ids: &[&TaskId],
    state: TaskState,
    slots: Option<&TaskSlots>,
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    let end_date = state.is_finished().then(|| micros(now));
    for chunk in task_ids.chunks(ROWS_PER_STATEMENT) {
        let placeholders: Vec<String> = (0..chunk.len()).map(|index| format!("${}", index + 7)).collect();
        let sql = format!(
            "UPDATE task_instance SET state = $2, end_date = COALESCE($3, end_date), next_retry_at = NULL, pool = COALESCE($4, pool), pool_slots = COALESCE($5, pool_slots), priority_weight = COALESCE($6, priority_weight) WHERE run_pk = $1 AND task_id IN ({})",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(run_pk)
            .bind(state.as_str())
            .bind(end_date)
            .bind(slots.map(|slots| slots.pool.as_str()))
            .bind(slots.map(|slots| i64::from(slots.pool_slots)))
            .bind(slots.map(|slots| slots.priority_weight));
        for task_id in chunk {
            query = query.bind(task_id.as_str());
        }
        query.execute(&mut *connection).await?;
    }
    Ok(())
}

/// Sets task instances back to `none` (§3.7): history stays, the retry budget is renewed
/// (`max_tries = try_number + retries + 1`), and so are the free re-runs after crashes.
pub async fn clear(
    transaction: &mut Transaction,
    run_pk: i64,
    task_id: &TaskId,
    retries: u32,
) -> Result<(), StorageError> {
    let connection = transaction.changes();
    sqlx::query("UPDATE task_instance SET state = 'none', max_tries = try_number + $3, crash_ends = 0, next_retry_at = NULL, end_date = NULL WHERE run_pk = $1 AND task_id = $2")
        .bind(run_pk)
        .bind(task_id.as_str())
        .bind(i64::from(retries) + 1)
        .execute(connection)
        .await?;
    Ok(())
}

/// Marks a task instance success or failed by hand.
pub async fn mark(
    transaction: &mut Transaction,
    run_pk: i64,
    task_id: &TaskId,
    state: TaskState,
    now: DateTime<Utc>,
) -> Result<bool, StorageError> {
    let connection = transaction.changes();
    let changed = sqlx::query(
        "UPDATE task_instance SET state = $3, end_date = $4, next_retry_at = NULL WHERE run_pk = $1 AND task_id = $2",
    )
    .bind(run_pk)
    .bind(task_id.as_str())
    .bind(state.as_str())
    .bind(micros(now))
    .execute(connection)
    .await?
    .rows_affected();
    Ok(changed > 0)
}

/// How many task instances are in each state, everywhere (for `/metrics`).
pub async fn count_by_state(connection: &mut AnyConnection) -> Result<Vec<(String, i64)>, StorageError> {
    let rows = sqlx::query("SELECT state, COUNT(*) FROM task_instance GROUP BY state ORDER BY state")
        .fetch_all(connection)
        .await?;
    rows.into_iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect()
}

/// Slots taken per pool and state, for the states that hold or wait for a slot (scheduled,
/// queued, running).
pub async fn pool_usage(connection: &mut AnyConnection) -> Result<Vec<(String, TaskState, i64)>, StorageError> {
    // PostgreSQL sums a BIGINT column as NUMERIC, which the Any driver cannot read: cast it back.
    let rows = sqlx::query("SELECT pool, state, CAST(SUM(pool_slots) AS BIGINT) FROM task_instance WHERE state IN ('scheduled', 'queued', 'running') GROUP BY pool, state")
        .fetch_all(connection)
        .await?;
    rows.into_iter()
        .map(|row| {
            Ok((
                row.try_get("pool")?,
                parse_column(row.try_get(1)?, "state")?,
                row.try_get(2)?,
            ))
        })
        .collect()
}
