//! The `dag_run` table: one row per run of a DAG, its type, state, dates and conf.

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{StorageError, Transaction, from_micros, micros, opt_time, parse_column};
use crate::domain::ids::{DagId, RunId};
use crate::domain::state::{RunState, RunType};

mod listing;

pub use listing::{RunFilter, RunOrder, RunSortColumn, count, get_many, keys, list, newest_page};

/// A run as recorded. `pk` is the database's own key; `run_id` is the one people see.
#[derive(Debug, Clone, PartialEq)]
pub struct DagRun {
    pub pk: i64,
    pub dag_id: DagId,
    pub run_id: RunId,
    pub run_type: RunType,
    pub state: RunState,
    pub logical_date: DateTime<Utc>,
    pub data_interval_start: DateTime<Utc>,
    pub data_interval_end: DateTime<Utc>,
    pub run_after: DateTime<Utc>,
    pub queued_at: Option<DateTime<Utc>>,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    pub conf: serde_json::Value,
    /// `None` for runs the scheduler daemon drives; set by `weir dags test`, which drives its own.
    pub owner: Option<String>,
    pub backfill_id: Option<i64>,
}

/// A run to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRun {
    pub dag_id: DagId,
    pub run_id: RunId,
    pub run_type: RunType,
    pub logical_date: DateTime<Utc>,
    pub data_interval_start: DateTime<Utc>,
    pub data_interval_end: DateTime<Utc>,
    pub run_after: DateTime<Utc>,
    pub conf: serde_json::Value,
    pub owner: Option<String>,
}

const COLUMNS: &str = "id, dag_id, run_id, run_type, state, logical_date, data_interval_start, data_interval_end, run_after, queued_at, start_date, end_date, conf, owner, backfill_id";

fn from_row(row: AnyRow) -> Result<DagRun, StorageError> {
    let conf: String = row.try_get("conf")?;
    Ok(DagRun {
        pk: row.try_get("id")?,
        dag_id: parse_column(row.try_get("dag_id")?, "dag_id")?,
        run_id: RunId::parse(row.try_get::<String, _>("run_id")?)
            .map_err(|error| StorageError::Corrupt(error.to_string()))?,
        run_type: parse_column(row.try_get("run_type")?, "run_type")?,
        state: parse_column(row.try_get("state")?, "state")?,
        logical_date: from_micros(row.try_get("logical_date")?),
        data_interval_start: from_micros(row.try_get("data_interval_start")?),
        data_interval_end: from_micros(row.try_get("data_interval_end")?),
        run_after: from_micros(row.try_get("run_after")?),
        queued_at: opt_time(row.try_get("queued_at")?),
        start_date: opt_time(row.try_get("start_date")?),
        end_date: opt_time(row.try_get("end_date")?),
        conf: serde_json::from_str(&conf).map_err(|error| StorageError::Corrupt(format!("conf `{conf}`: {error}")))?,
        owner: row.try_get("owner")?,
        backfill_id: row.try_get("backfill_id")?,
    })
}

/// The run id Airflow would give: `scheduled__2026-03-01T00:00:00+00:00`.
pub fn generated_run_id(run_type: RunType, logical_date: DateTime<Utc>) -> RunId {
    let stamp = logical_date.format("%Y-%m-%dT%H:%M:%S%.f+00:00").to_string();
    RunId::parse(format!("{}__{stamp}", run_type.as_str())).expect("generated run ids use only allowed characters")
}

/// Inserts a queued run. A second run for the same id, or for the same logical date of a
/// scheduled DAG, is a Conflict with a message saying which.
pub async fn insert(transaction: &mut Transaction, run: &NewRun, now: DateTime<Utc>) -> Result<DagRun, StorageError> {
    let connection = transaction.changes();
    let existing = sqlx::query("SELECT run_id FROM dag_run WHERE dag_id = $1 AND run_id = $2")
        .bind(run.dag_id.as_str())
        .bind(run.run_id.as_str())
        .fetch_optional(&mut *connection)
        .await?;
    if existing.is_some() {
        return Err(duplicate_run_id(run));
    }
    if matches!(run.run_type, RunType::Scheduled | RunType::Backfill) {
        let same_date = sqlx::query("SELECT run_id FROM dag_run WHERE dag_id = $1 AND logical_date = $2 AND run_type IN ('scheduled', 'backfill')")
            .bind(run.dag_id.as_str())
            .bind(micros(run.logical_date))
            .fetch_optional(&mut *connection)
            .await?;
        if let Some(row) = same_date {
            let other: String = row.try_get(0)?;
            return Err(StorageError::Conflict(format!(
                "DAG `{}` already has run `{other}` for logical date {}",
                run.dag_id,
                run.logical_date.to_rfc3339()
            )));
        }
    }
    let sql = format!(
        "INSERT INTO dag_run (dag_id, run_id, run_type, state, logical_date, data_interval_start, data_interval_end, run_after, queued_at, conf, owner) VALUES ($1, $2, $3, 'queued', $4, $5, $6, $7, $8, $9, $10) RETURNING {COLUMNS}"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(run.dag_id.as_str())
        .bind(run.run_id.as_str())
        .bind(run.run_type.as_str())
        .bind(micros(run.logical_date))
        .bind(micros(run.data_interval_start))
        .bind(micros(run.data_interval_end))
        .bind(micros(run.run_after))
        .bind(micros(now))
        .bind(run.conf.to_string())
        .bind(run.owner.as_deref())
        .fetch_one(connection)
        .await
        .map_err(|error| match &error {
            // Another writer inserted the same run between the checks above and this insert
            // (PostgreSQL's read committed lets both pass the checks): the same Conflict.
            sqlx::Error::Database(database_error) if database_error.is_unique_violation() => {
                let on_logical_date = database_error.constraint() == Some("dag_run_one_per_interval")
                    || database_error.message().contains("logical_date");
                if on_logical_date {
                    StorageError::Conflict(format!(
                        "DAG `{}` already has a run for logical date {}",
                        run.dag_id,
                        run.logical_date.to_rfc3339()
                    ))
                } else {
                    duplicate_run_id(run)
                }
            }
            _ => StorageError::from(error),
        })?;
    from_row(row)
}

fn duplicate_run_id(run: &NewRun) -> StorageError {
    StorageError::Conflict(format!(
        "DAG `{}` already has a run with id `{}`: choose another --run-id",
        run.dag_id, run.run_id
    ))
}

/// The newest logical date among the DAG's scheduled runs: where the timetable continues from.
pub async fn latest_scheduled_logical_date(
    connection: &mut AnyConnection,
    dag_id: &DagId,
) -> Result<Option<DateTime<Utc>>, StorageError> {
    let value: Option<i64> =
        sqlx::query("SELECT MAX(logical_date) FROM dag_run WHERE dag_id = $1 AND run_type = 'scheduled'")
            .bind(dag_id.as_str())
            .fetch_one(connection)
            .await?
            .try_get(0)?;
    Ok(opt_time(value))
}

/// Queued and running runs that a process other than the daemon drives (`weir dags test`).
pub async fn owned_active(connection: &mut AnyConnection) -> Result<Vec<DagRun>, StorageError> {
    let sql =
        format!("SELECT {COLUMNS} FROM dag_run WHERE state IN ('queued', 'running') AND owner IS NOT NULL ORDER BY id");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(connection)
        .await?
        .into_iter()
        .map(from_row)
        .collect()
}

/// Hands the run `run_pk`, still owned by `owner`, to the daemon (its owner is cleared); false
/// when it is no longer `owner`'s.
pub async fn adopt(transaction: &mut Transaction, run_pk: i64, owner: &str) -> Result<bool, StorageError> {
    let connection = transaction.changes();
    Ok(
        sqlx::query("UPDATE dag_run SET owner = NULL WHERE id = $1 AND owner = $2")
            .bind(run_pk)
            .bind(owner)
            .execute(connection)
            .await?
            .rows_affected()
            > 0,
    )
}

/// Deletes a run with its task instances and attempts (their log files stay on disk).
pub async fn delete(transaction: &mut Transaction, pk: i64) -> Result<bool, StorageError> {
    let connection = transaction.changes();
    for table in ["task_attempt", "task_instance"] {
        sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE run_pk = $1")))
            .bind(pk)
            .execute(&mut *connection)
            .await?;
    }
    let deleted = sqlx::query("DELETE FROM dag_run WHERE id = $1")
        .bind(pk)
        .execute(connection)
        .await?
        .rows_affected();
    Ok(deleted > 0)
}

/// How many runs are in each state, everywhere (for `/metrics`).
pub async fn count_by_state(connection: &mut AnyConnection) -> Result<Vec<(String, i64)>, StorageError> {
    let rows = sqlx::query("SELECT state, COUNT(*) FROM dag_run GROUP BY state ORDER BY state")
        .fetch_all(connection)
        .await?;
    rows.into_iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect()
}

/// Every run of a DAG for one logical date (a dag_run sensor's question).
pub async fn with_logical_date(
    connection: &mut AnyConnection,
    dag_id: &DagId,
    logical_date: DateTime<Utc>,
) -> Result<Vec<DagRun>, StorageError> {
    let sql = format!("SELECT {COLUMNS} FROM dag_run WHERE dag_id = $1 AND logical_date = $2 ORDER BY id");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(dag_id.as_str())
        .bind(micros(logical_date))
        .fetch_all(connection)
        .await?
        .into_iter()
        .map(from_row)
        .collect()
}

pub async fn get(
    connection: &mut AnyConnection,
    dag_id: &DagId,
    run_id: &RunId,
) -> Result<Option<DagRun>, StorageError> {
    let sql = format!("SELECT {COLUMNS} FROM dag_run WHERE dag_id = $1 AND run_id = $2");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(dag_id.as_str())
        .bind(run_id.as_str())
        .fetch_optional(connection)
        .await?
        .map(from_row)
        .transpose()
}

pub async fn get_by_pk(connection: &mut AnyConnection, pk: i64) -> Result<Option<DagRun>, StorageError> {
    let sql = format!("SELECT {COLUMNS} FROM dag_run WHERE id = $1");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(pk)
        .fetch_optional(connection)
        .await?
        .map(from_row)
        .transpose()
}

/// The run just before this one by logical date (any type), for `depends_on_past`.
pub async fn previous(connection: &mut AnyConnection, run: &DagRun) -> Result<Option<DagRun>, StorageError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM dag_run WHERE dag_id = $1 AND (logical_date < $2 OR (logical_date = $2 AND id < $3)) ORDER BY logical_date DESC, id DESC LIMIT 1"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(run.dag_id.as_str())
        .bind(micros(run.logical_date))
        .bind(run.pk)
        .fetch_optional(connection)
        .await?
        .map(from_row)
        .transpose()
}

/// queued → running.
pub async fn start(connection: &mut AnyConnection, pk: i64, now: DateTime<Utc>) -> Result<(), StorageError> {
    sqlx::query("UPDATE dag_run SET state = 'running', start_date = COALESCE(start_date, $2), end_date = NULL WHERE id = $1 AND state = 'queued'")
        .bind(pk)
        .bind(micros(now))
        .execute(connection)
        .await?;
    Ok(())
}

/// Sets a final state (success/failed) with its end date, or puts a run back to queued.
pub async fn set_state(
    transaction: &mut Transaction,
    pk: i64,
    state: RunState,
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    let connection = transaction.changes();
    let sql = match state {
        RunState::Success | RunState::Failed => "UPDATE dag_run SET state = $2, end_date = $3 WHERE id = $1",
        RunState::Queued => "UPDATE dag_run SET state = $2, queued_at = $3, end_date = NULL WHERE id = $1",
        RunState::Running => {
            "UPDATE dag_run SET state = $2, start_date = COALESCE(start_date, $3), end_date = NULL WHERE id = $1"
        }
    };
    sqlx::query(sql)
        .bind(pk)
        .bind(state.as_str())
        .bind(micros(now))
        .execute(connection)
        .await?;
    Ok(())
}

/// running → success/failed, only if the run is still running (a concurrent clear or mark wins).
pub async fn finish(
    connection: &mut AnyConnection,
    pk: i64,
    state: RunState,
    now: DateTime<Utc>,
) -> Result<bool, StorageError> {
    let changed = sqlx::query("UPDATE dag_run SET state = $2, end_date = $3 WHERE id = $1 AND state = 'running'")
        .bind(pk)
        .bind(state.as_str())
        .bind(micros(now))
        .execute(connection)
        .await?
        .rows_affected();
    Ok(changed > 0)
}

/// How many runs of a DAG are queued or running, outside backfills (counts against the DAG's
/// `max_active_runs`; a backfill has its own).
pub async fn count_active(connection: &mut AnyConnection, dag_id: &DagId) -> Result<(u32, u32), StorageError> {
    let rows = sqlx::query(
        "SELECT state, COUNT(*) FROM dag_run WHERE dag_id = $1 AND state IN ('queued', 'running') AND backfill_id IS NULL GROUP BY state",
    )
    .bind(dag_id.as_str())
    .fetch_all(connection)
    .await?;
    let mut queued = 0;
    let mut running = 0;
    for row in rows {
        let state: String = row.try_get(0)?;
        let count = u32::try_from(row.try_get::<i64, _>(1)?).unwrap_or(u32::MAX);
        if state == "queued" {
            queued = count;
        } else {
            running = count;
        }
    }
    Ok((queued, running))
}

/// Hands a run to a backfill (a run it created, or an existing one it re-runs).
pub async fn set_backfill(connection: &mut AnyConnection, pk: i64, backfill_id: i64) -> Result<(), StorageError> {
    sqlx::query("UPDATE dag_run SET backfill_id = $2 WHERE id = $1")
        .bind(pk)
        .bind(backfill_id)
        .execute(connection)
        .await?;
    Ok(())
}

/// Fails the backfill's runs that have not started (cancelling leaves none stranded in queued).
pub async fn fail_queued_of_backfill(
    transaction: &mut Transaction,
    backfill_id: i64,
    now: DateTime<Utc>,
) -> Result<u64, StorageError> {
    let connection = transaction.changes();
    Ok(
        sqlx::query("UPDATE dag_run SET state = 'failed', end_date = $2 WHERE backfill_id = $1 AND state = 'queued'")
            .bind(backfill_id)
            .bind(micros(now))
            .execute(connection)
            .await?
            .rows_affected(),
    )
}

/// Finished runs whose logical date is before `cutoff` (optionally of one DAG), oldest first: what
/// `weir db clean` removes. Runs still queued or running are never included.
pub async fn finished_before(
    connection: &mut AnyConnection,
    cutoff: DateTime<Utc>,
    dag_id: Option<&DagId>,
) -> Result<Vec<DagRun>, StorageError> {
    let mut sql = format!("SELECT {COLUMNS} FROM dag_run WHERE logical_date < $1 AND state IN ('success', 'failed')");
    if dag_id.is_some() {
        sql.push_str(" AND dag_id = $2");
    }
    sql.push_str(" ORDER BY logical_date, id");
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(micros(cutoff));
    if let Some(dag_id) = dag_id {
        query = query.bind(dag_id.to_string());
    }
    query.fetch_all(connection).await?.into_iter().map(from_row).collect()
}

/// How many task instances and recorded attempts a run has (for `weir db clean` reports).
pub async fn history_size(connection: &mut AnyConnection, pk: i64) -> Result<(u64, u64), StorageError> {
    let count = |table: &'static str| format!("SELECT COUNT(*) FROM {table} WHERE run_pk = $1");
    let instances: i64 = sqlx::query(sqlx::AssertSqlSafe(count("task_instance")))
        .bind(pk)
        .fetch_one(&mut *connection)
        .await?
        .try_get(0)?;
    let attempts: i64 = sqlx::query(sqlx::AssertSqlSafe(count("task_attempt")))
        .bind(pk)
        .fetch_one(connection)
        .await?
        .try_get(0)?;
    Ok((
        u64::try_from(instances).unwrap_or(0),
        u64::try_from(attempts).unwrap_or(0),
    ))
}

/// The daemon's queued and running runs of `dag_ids` that have not yet missed their SLA: what the
/// scheduler's SLA check looks at (an index on state keeps it cheap).
pub async fn sla_candidates(connection: &mut AnyConnection, dag_ids: &[&DagId]) -> Result<Vec<DagRun>, StorageError> {
    if dag_ids.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders: Vec<String> = (1..=dag_ids.len()).map(|position| format!("${position}")).collect();
    let sql = format!(
        "SELECT {COLUMNS} FROM dag_run WHERE state IN ('queued', 'running') AND owner IS NULL AND sla_missed_at IS NULL AND dag_id IN ({}) ORDER BY id",
        placeholders.join(", ")
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for dag_id in dag_ids {
        query = query.bind(dag_id.as_str());
    }
    query.fetch_all(connection).await?.into_iter().map(from_row).collect()
}

/// Records that a run missed its SLA, once: `false` when it already had (or has finished since).
pub async fn mark_sla_missed(
    connection: &mut AnyConnection,
    pk: i64,
    now: DateTime<Utc>,
) -> Result<bool, StorageError> {
    let changed = sqlx::query(
        "UPDATE dag_run SET sla_missed_at = $2 WHERE id = $1 AND sla_missed_at IS NULL AND state IN ('queued', 'running')",
    )
    .bind(pk)
    .bind(micros(now))
    .execute(connection)
    .await?
    .rows_affected();
    Ok(changed > 0)
}
