//! One attempt's record in `task_attempt` and on its task instance: its start, its end (applied
//! only while the instance is still on that attempt), and the history read back.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, Row};

use super::count;
use crate::domain::ids::TaskId;
use crate::domain::state::TaskState;
use crate::storage::{StorageError, from_micros, micros, opt_time, parse_column};

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
