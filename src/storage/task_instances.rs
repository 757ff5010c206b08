//! The `task_instance` and `task_attempt` tables: each task's state within a run, and the history
//! of its attempts (rendered fields, exit code, output, error).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{StorageError, from_micros, micros, opt_time, parse_column};
use crate::domain::dag::Task;
use crate::domain::ids::{DagId, RunId, TaskId};
use crate::domain::planner::TaskInstanceState;
use crate::domain::state::TaskState;

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

/// A scheduled task instance waiting for a slot, with what admission needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub run_pk: i64,
    pub dag_id: DagId,
    pub task_id: TaskId,
    pub logical_date: DateTime<Utc>,
    pub pool: String,
    pub pool_slots: u32,
    pub priority_weight: i64,
    /// Tries so far: the next attempt is `try_number + 1`.
    pub try_number: u32,
}

/// Scheduled task instances of running runs driven by `owner` (`None` = the daemon).
/// Scheduled task instances of running runs (of `owner`'s runs, or the daemon's when `None`), in
/// the order admission considers them (§3.6: highest `priority_weight` first, then oldest logical
/// date, then run and task): `limit` of them from `offset` on. The dispatcher reads a page at a
/// time, so thousands waiting for a few free slots are not all read at every step.
pub async fn scheduled(
    connection: &mut AnyConnection,
    owner: Option<&str>,
    limit: usize,
    offset: usize,
) -> Result<Vec<Waiting>, StorageError> {
    let owner_clause = if owner.is_some() {
        "r.owner = $3"
    } else {
        "r.owner IS NULL"
    };
    let sql = format!(
        "SELECT t.run_pk, t.dag_id, t.task_id, r.logical_date, t.pool, t.pool_slots, t.priority_weight, t.try_number FROM task_instance t JOIN dag_run r ON r.id = t.run_pk WHERE t.state = 'scheduled' AND r.state = 'running' AND {owner_clause} ORDER BY t.priority_weight DESC, r.logical_date, t.run_pk, t.task_id LIMIT $1 OFFSET $2"
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .bind(i64::try_from(offset).unwrap_or(i64::MAX));
    if let Some(owner) = owner {
        query = query.bind(owner.to_string());
    }
    query
        .fetch_all(connection)
        .await?
        .into_iter()
        .map(|row| {
            Ok(Waiting {
                run_pk: row.try_get("run_pk")?,
                dag_id: parse_column(row.try_get("dag_id")?, "dag_id")?,
                task_id: TaskId::parse(row.try_get::<String, _>("task_id")?)
                    .map_err(|error| StorageError::Corrupt(error.to_string()))?,
                logical_date: from_micros(row.try_get("logical_date")?),
                pool: row.try_get("pool")?,
                pool_slots: count(&row, "pool_slots")?,
                priority_weight: row.try_get("priority_weight")?,
                try_number: u32::try_from(row.try_get::<i64, _>("try_number")?).unwrap_or(0),
            })
        })
        .collect()
}

/// A task instance holding slots (queued or running): what capacity counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotHolder {
    pub run_pk: i64,
    pub pool: String,
    pub pool_slots: u32,
}

/// The slots taken (by queued and running task instances), everywhere: read at every dispatch,
/// so only the three columns capacity needs.
pub async fn slot_holders(connection: &mut AnyConnection) -> Result<Vec<SlotHolder>, StorageError> {
    sqlx::query("SELECT run_pk, pool, pool_slots FROM task_instance WHERE state IN ('queued', 'running')")
        .fetch_all(connection)
        .await?
        .into_iter()
        .map(|row| {
            Ok(SlotHolder {
                run_pk: row.try_get("run_pk")?,
                pool: row.try_get("pool")?,
                pool_slots: count(&row, "pool_slots")?,
            })
        })
        .collect()
}

/// Task instances holding a slot (queued or running), everywhere.
pub async fn active(connection: &mut AnyConnection) -> Result<Vec<TaskInstance>, StorageError> {
    let sql = format!("SELECT {COLUMNS} FROM task_instance WHERE state IN ('queued', 'running')");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(connection)
        .await?
        .into_iter()
        .map(from_row)
        .collect()
}

/// Attempts in flight (queued or running) that the scheduler `me` did not claim, each with the
/// scheduler that did (`None`: claimed before schedulers were recorded).
pub async fn held_by_others(
    connection: &mut AnyConnection,
    me: i64,
) -> Result<Vec<(TaskInstance, Option<i64>)>, StorageError> {
    let sql = format!(
        "SELECT {COLUMNS}, scheduler_id FROM task_instance WHERE state IN ('queued', 'running') AND (scheduler_id IS NULL OR scheduler_id <> $1)"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(me)
        .fetch_all(connection)
        .await?
        .into_iter()
        .map(|row| {
            let holder: Option<i64> = row.try_get("scheduler_id")?;
            Ok((from_row(row)?, holder))
        })
        .collect()
}

/// Moves the attempt `try_number` in flight from the scheduler `from` to `to`, if it is still held
/// by `from`: of two schedulers recovering the same dead one's attempt, one gets it.
pub async fn take_over(
    connection: &mut AnyConnection,
    run_pk: i64,
    task_id: &TaskId,
    try_number: u32,
    from: Option<i64>,
    to: i64,
) -> Result<bool, StorageError> {
    let held_by = if from.is_some() {
        "scheduler_id = $5"
    } else {
        "scheduler_id IS NULL"
    };
    let sql = format!(
        "UPDATE task_instance SET scheduler_id = $4 WHERE run_pk = $1 AND task_id = $2 AND try_number = $3 AND state IN ('queued', 'running') AND {held_by}"
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(run_pk)
        .bind(task_id.as_str())
        .bind(i64::from(try_number))
        .bind(to);
    if let Some(from) = from {
        query = query.bind(from);
    }
    Ok(query.execute(connection).await?.rows_affected() > 0)
}

/// Takes a scheduled task instance for one attempt: `scheduled → queued`, try number + 1, and the
/// attempt recorded with its rendered fields. Returns the try number, or `None` when another
/// scheduler got there first (the state check makes a double claim impossible).
pub async fn claim(
    connection: &mut AnyConnection,
    run_pk: i64,
    task_id: &TaskId,
    rendered: &serde_json::Value,
    now: DateTime<Utc>,
) -> Result<Option<u32>, StorageError> {
    Ok(claim_many(connection, run_pk, &[(task_id, rendered)], None, now)
        .await?
        .into_iter()
        .next()
        .map(|(_, try_number)| try_number))
}

/// [`claim`] for several task instances of one run, in two statements per hundred: the
/// dispatcher claims a whole step's tasks at once. Returns the ones claimed with their try
/// numbers, in no particular order; a task another claim got first is left out. The attempts
/// are recorded as held by `scheduler_id` (the claiming scheduler's row), so recovery leaves
/// them alone while that scheduler lives.
pub async fn claim_many(
    connection: &mut AnyConnection,
    run_pk: i64,
    tasks: &[(&TaskId, &serde_json::Value)],
    scheduler_id: Option<i64>,
    now: DateTime<Utc>,
) -> Result<Vec<(TaskId, u32)>, StorageError> {
    let mut claimed = Vec::with_capacity(tasks.len());
    for chunk in tasks.chunks(ROWS_PER_STATEMENT) {
        let placeholders: Vec<String> = (0..chunk.len()).map(|index| format!("${}", index + 4)).collect();
        let sql = format!(
            "UPDATE task_instance SET state = 'queued', try_number = try_number + 1, queued_at = $2, start_date = NULL, end_date = NULL, pid = NULL, next_retry_at = NULL, scheduler_id = $3 WHERE run_pk = $1 AND state = 'scheduled' AND task_id IN ({}) RETURNING task_id, try_number",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(run_pk)
            .bind(micros(now))
            .bind(scheduler_id);
        for (task_id, _) in chunk {
            query = query.bind(task_id.as_str());
        }
        let mut now_claimed: Vec<(TaskId, u32)> = Vec::new();
        for row in query.fetch_all(&mut *connection).await? {
            let task_id = TaskId::parse(row.try_get::<String, _>("task_id")?)
                .map_err(|error| StorageError::Corrupt(error.to_string()))?;
            now_claimed.push((task_id, count(&row, "try_number")?));
        }
        if now_claimed.is_empty() {
            continue;
        }
        // A sensor's next poke continues its try: the row exists and keeps its first start.
        let values: Vec<String> = (0..now_claimed.len())
            .map(|index| {
                format!(
                    "($1, ${}, ${}, 'queued', $2, ${})",
                    3 * index + 3,
                    3 * index + 4,
                    3 * index + 5
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO task_attempt (run_pk, task_id, try_number, state, queued_at, rendered) VALUES {} ON CONFLICT (run_pk, task_id, try_number) DO UPDATE SET state = 'queued', rendered = excluded.rendered, end_date = NULL, error = NULL",
            values.join(", ")
        );
        let rendered_of: HashMap<&TaskId, &serde_json::Value> = chunk.iter().copied().collect();
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(run_pk).bind(micros(now));
        for (task_id, try_number) in &now_claimed {
            let rendered = rendered_of
                .get(task_id)
                .map(|rendered| rendered.to_string())
                .unwrap_or_default();
            query = query.bind(task_id.as_str()).bind(i64::from(*try_number)).bind(rendered);
        }
        query.execute(&mut *connection).await?;
        claimed.extend(now_claimed);
    }
    Ok(claimed)
}

/// The executor started the attempt: `queued → running`, with its pid and host.
pub async fn mark_started(
    connection: &mut AnyConnection,
    run_pk: i64,
    task_id: &TaskId,
    try_number: u32,
    pid: Option<u32>,
    hostname: &str,
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    sqlx::query("UPDATE task_instance SET state = 'running', start_date = $4, pid = $5, hostname = $6 WHERE run_pk = $1 AND task_id = $2 AND try_number = $3 AND state = 'queued'")
        .bind(run_pk)
        .bind(task_id.as_str())
        .bind(i64::from(try_number))
        .bind(micros(now))
        .bind(pid.map(i64::from))
        .bind(hostname)
        .execute(&mut *connection)
        .await?;
    // An attempt already ended keeps its end: a start recorded again after it (a retry after a
    // lost commit answer) must not make it running again.
    sqlx::query("UPDATE task_attempt SET state = 'running', start_date = COALESCE(start_date, $4), pid = $5, hostname = $6 WHERE run_pk = $1 AND task_id = $2 AND try_number = $3 AND end_date IS NULL")
        .bind(run_pk)
        .bind(task_id.as_str())
        .bind(i64::from(try_number))
        .bind(micros(now))
        .bind(pid.map(i64::from))
        .bind(hostname)
        .execute(connection)
        .await?;
    Ok(())
}

/// How one attempt ended, as recorded (decided in the domain, written here).
pub use crate::domain::attempt_end::AttemptEnd;

/// When and where an attempt's process started, for an end recorded together with its start (a
/// task that began and ended between two scheduler steps).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptStart<'a> {
    pub at: DateTime<Utc>,
    pub pid: Option<u32>,
    pub hostname: &'a str,
}

/// An end the task instance took: it was still on this attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEnd {
    pub start_date: Option<DateTime<Utc>>,
}

/// Records an attempt's end at `now` (and its start, if it was not recorded yet). The task
/// instance changes only if it is still on this attempt (a clear or a mark in the meantime wins);
/// returns `None` when it did not. The instance's columns are set from
/// [`AttemptEnd::instance_change`], the change the scheduler's kept copy applies too.
pub async fn finish_attempt(
    connection: &mut AnyConnection,
    run_pk: i64,
    task_id: &TaskId,
    try_number: u32,
    end: &AttemptEnd,
    start: Option<&AttemptStart<'_>>,
    now: DateTime<Utc>,
) -> Result<Option<RecordedEnd>, StorageError> {
    let started_at = micros(start.map_or(now, |start| start.at));
    let pid = start.and_then(|start| start.pid).map(i64::from);
    let hostname = start.map(|start| start.hostname);
    sqlx::query("UPDATE task_attempt SET state = $4, end_date = $5, exit_code = $6, output = $7, error = $8, start_date = COALESCE(start_date, $9), pid = COALESCE($10, pid), hostname = COALESCE($11, hostname) WHERE run_pk = $1 AND task_id = $2 AND try_number = $3")
        .bind(run_pk)
        .bind(task_id.as_str())
        .bind(i64::from(try_number))
        .bind(end.attempt_state.as_str())
        .bind(micros(now))
        .bind(end.exit_code.map(i64::from))
        .bind(end.output.as_deref())
        .bind(end.error.as_deref())
        .bind(started_at)
        .bind(pid)
        .bind(hostname)
        .execute(&mut *connection)
        .await?;
    let change = end.instance_change();
    let changed = sqlx::query("UPDATE task_instance SET state = $4, end_date = $5, next_retry_at = $6, start_date = COALESCE(start_date, $9), pid = COALESCE($10, pid), hostname = COALESCE($11, hostname), max_tries = max_tries + $7, try_number = try_number - $8, crash_ends = crash_ends + $12 WHERE run_pk = $1 AND task_id = $2 AND try_number = $3 AND state IN ('queued', 'running') RETURNING start_date")
        .bind(run_pk)
        .bind(task_id.as_str())
        .bind(i64::from(try_number))
        .bind(change.state.as_str())
        .bind(micros(now))
        .bind(change.next_retry_at.map(micros))
        .bind(i64::from(change.max_tries_added))
        .bind(i64::from(change.try_number_taken_back))
        .bind(started_at)
        .bind(pid)
        .bind(hostname)
        .bind(i64::from(change.crash_ends_added))
        .fetch_optional(connection)
        .await?;
    changed
        .map(|row| {
            Ok(RecordedEnd {
                start_date: opt_time(row.try_get(0)?),
            })
        })
        .transpose()
}

/// One recorded attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub try_number: u32,
    pub state: TaskState,
    pub queued_at: DateTime<Utc>,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    pub exit_code: Option<i64>,
    pub pid: Option<i64>,
    pub hostname: Option<String>,
    pub rendered: serde_json::Value,
    pub output: Option<String>,
    pub error: Option<String>,
}

pub async fn attempts(
    connection: &mut AnyConnection,
    run_pk: i64,
    task_id: &TaskId,
) -> Result<Vec<Attempt>, StorageError> {
    let rows = sqlx::query("SELECT try_number, state, queued_at, start_date, end_date, exit_code, pid, hostname, rendered, output, error FROM task_attempt WHERE run_pk = $1 AND task_id = $2 ORDER BY try_number")
        .bind(run_pk)
        .bind(task_id.as_str())
        .fetch_all(connection)
        .await?;
    rows.into_iter()
        .map(|row| {
            let rendered: String = row.try_get("rendered")?;
            Ok(Attempt {
                try_number: count(&row, "try_number")?,
                state: parse_column(row.try_get("state")?, "state")?,
                queued_at: from_micros(row.try_get("queued_at")?),
                start_date: opt_time(row.try_get("start_date")?),
                end_date: opt_time(row.try_get("end_date")?),
                exit_code: row.try_get("exit_code")?,
                pid: row.try_get("pid")?,
                hostname: row.try_get("hostname")?,
                rendered: serde_json::from_str(&rendered).unwrap_or(serde_json::Value::Null),
                output: row.try_get("output")?,
                error: row.try_get("error")?,
            })
        })
        .collect()
}

/// The state of one attempt, without its fields (polled while its log streams).
pub async fn attempt_state(
    connection: &mut AnyConnection,
    run_pk: i64,
    task_id: &TaskId,
    try_number: u32,
) -> Result<Option<TaskState>, StorageError> {
    sqlx::query("SELECT state FROM task_attempt WHERE run_pk = $1 AND task_id = $2 AND try_number = $3")
        .bind(run_pk)
        .bind(task_id.as_str())
        .bind(i64::from(try_number))
        .fetch_optional(connection)
        .await?
        .map(|row| parse_column(row.try_get("state")?, "state"))
        .transpose()
}

/// The output of each task's latest successful attempt in a run (for `tasks.<id>.output`).
pub async fn outputs(connection: &mut AnyConnection, run_pk: i64) -> Result<HashMap<String, String>, StorageError> {
    let rows = sqlx::query("SELECT task_id, output FROM task_attempt WHERE run_pk = $1 AND state = 'success' AND output IS NOT NULL ORDER BY try_number")
        .bind(run_pk)
        .fetch_all(connection)
        .await?;
    let mut outputs = HashMap::new();
    for row in rows {
        outputs.insert(
            row.try_get::<String, _>("task_id")?,
            row.try_get::<String, _>("output")?,
        );
    }
    Ok(outputs)
}

/// Sets task instances back to `none` (§3.7): history stays, the retry budget is renewed
/// (`max_tries = try_number + retries + 1`), and so are the free re-runs after crashes.
pub async fn clear(
    connection: &mut AnyConnection,
    run_pk: i64,
    task_id: &TaskId,
    retries: u32,
) -> Result<(), StorageError> {
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
    connection: &mut AnyConnection,
    run_pk: i64,
    task_id: &TaskId,
    state: TaskState,
    now: DateTime<Utc>,
) -> Result<bool, StorageError> {
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
