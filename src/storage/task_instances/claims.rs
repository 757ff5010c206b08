//! Taking task instances for attempts: the scheduled ones waiting for a slot, the slots held,
//! the claim (`scheduled → queued`, at most once) and recovery's take-over of a dead scheduler's.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, Row};

use super::{COLUMNS, ROWS_PER_STATEMENT, TaskInstance, count, from_row};
use crate::domain::ids::{DagId, TaskId};
use crate::storage::{StorageError, Transaction, from_micros, micros, parse_column};

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
    transaction: &mut Transaction,
    run_pk: i64,
    task_id: &TaskId,
    try_number: u32,
    from: Option<i64>,
    to: i64,
) -> Result<bool, StorageError> {
    let connection = transaction.changes();
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
