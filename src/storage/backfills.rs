//! The `backfill` and `backfill_date` tables: backfills as first-class objects, each date they
//! cover, and the run each date got.

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{StorageError, Transaction, from_micros, micros, opt_time, parse_column};
use crate::domain::backfill::{BackfillState, DateAction, PlannedDate, Reprocess};
use crate::domain::ids::DagId;

#[derive(Debug, Clone, PartialEq)]
pub struct Backfill {
    pub id: i64,
    pub dag_id: DagId,
    pub from_date: DateTime<Utc>,
    pub to_date: DateTime<Utc>,
    pub reprocess: Reprocess,
    pub max_active_runs: u32,
    pub run_backwards: bool,
    pub conf: serde_json::Value,
    pub state: BackfillState,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// A backfill to record, with its planned dates.
#[derive(Debug, Clone, PartialEq)]
pub struct NewBackfill {
    pub dag_id: DagId,
    pub from_date: DateTime<Utc>,
    pub to_date: DateTime<Utc>,
    pub reprocess: Reprocess,
    pub max_active_runs: u32,
    pub run_backwards: bool,
    pub conf: serde_json::Value,
}

/// One date of a backfill, in the order it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackfillDate {
    pub ordinal: i64,
    pub logical_date: DateTime<Utc>,
    pub data_interval_start: DateTime<Utc>,
    pub data_interval_end: DateTime<Utc>,
    pub run_after: DateTime<Utc>,
    pub action: DateAction,
    pub existing_run_id: Option<String>,
    pub reason: Option<String>,
    pub run_pk: Option<i64>,
}

const COLUMNS: &str = "id, dag_id, from_date, to_date, reprocess_behavior, max_active_runs, run_backwards, conf, state, created_at, updated_at, completed_at";

fn from_row(row: AnyRow) -> Result<Backfill, StorageError> {
    let conf: String = row.try_get("conf")?;
    Ok(Backfill {
        id: row.try_get("id")?,
        dag_id: parse_column(row.try_get("dag_id")?, "dag_id")?,
        from_date: from_micros(row.try_get("from_date")?),
        to_date: from_micros(row.try_get("to_date")?),
        reprocess: parse_column(row.try_get("reprocess_behavior")?, "reprocess_behavior")?,
        max_active_runs: u32::try_from(row.try_get::<i64, _>("max_active_runs")?).unwrap_or(1),
        run_backwards: row.try_get::<i64, _>("run_backwards")? != 0,
        conf: serde_json::from_str(&conf).map_err(|error| StorageError::Corrupt(format!("conf `{conf}`: {error}")))?,
        state: parse_column(row.try_get("state")?, "state")?,
        created_at: from_micros(row.try_get("created_at")?),
        updated_at: from_micros(row.try_get("updated_at")?),
        completed_at: opt_time(row.try_get("completed_at")?),
    })
}

/// The DAG's active (running or paused) backfill, if any.
pub async fn active_for_dag(connection: &mut AnyConnection, dag_id: &DagId) -> Result<Option<Backfill>, StorageError> {
    let sql = format!("SELECT {COLUMNS} FROM backfill WHERE dag_id = $1 AND state IN ('running', 'paused')");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(dag_id.as_str())
        .fetch_optional(connection)
        .await?
        .map(from_row)
        .transpose()
}

/// Records a backfill and its dates. A second active backfill for the DAG is a Conflict that
/// names the first.
pub async fn insert(
    transaction: &mut Transaction,
    backfill: &NewBackfill,
    dates: &[PlannedDate],
    now: DateTime<Utc>,
) -> Result<Backfill, StorageError> {
    let connection = transaction.changes();
    let conflict = |existing: &Backfill| {
        StorageError::Conflict(format!(
            "DAG `{}` already has an active backfill (id {}, {}, {} to {}): wait for it, or pause or cancel it with `weir backfills cancel {}`",
            existing.dag_id,
            existing.id,
            existing.state,
            existing.from_date.to_rfc3339(),
            existing.to_date.to_rfc3339(),
            existing.id
        ))
    };
    if let Some(existing) = active_for_dag(connection, &backfill.dag_id).await? {
        return Err(conflict(&existing));
    }
    let sql = format!(
        "INSERT INTO backfill (dag_id, from_date, to_date, reprocess_behavior, max_active_runs, run_backwards, conf, state, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'running', $8, $8) RETURNING {COLUMNS}"
    );
    let inserted = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(backfill.dag_id.as_str())
        .bind(micros(backfill.from_date))
        .bind(micros(backfill.to_date))
        .bind(backfill.reprocess.as_str())
        .bind(i64::from(backfill.max_active_runs))
        .bind(i64::from(backfill.run_backwards))
        .bind(backfill.conf.to_string())
        .bind(micros(now))
        .fetch_one(&mut *connection)
        .await;
    let row = match inserted {
        Ok(row) => row,
        // Two requests at once: the partial unique index turns the second away.
        Err(sqlx::Error::Database(error)) if error.is_unique_violation() => {
            return match active_for_dag(connection, &backfill.dag_id).await? {
                Some(existing) => Err(conflict(&existing)),
                None => Err(StorageError::Conflict(format!(
                    "DAG `{}` already has an active backfill",
                    backfill.dag_id
                ))),
            };
        }
        Err(error) => return Err(error.into()),
    };
    let created = from_row(row)?;
    for (ordinal, date) in dates.iter().enumerate() {
        sqlx::query(
            "INSERT INTO backfill_date (backfill_id, ordinal, logical_date, data_interval_start, data_interval_end, run_after, action, existing_run_id, reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(created.id)
        .bind(i64::try_from(ordinal).unwrap_or(i64::MAX))
        .bind(micros(date.run.logical_date))
        .bind(micros(date.run.data_interval.start))
        .bind(micros(date.run.data_interval.end))
        .bind(micros(date.run.run_after))
        .bind(date.action.as_str())
        .bind(date.existing_run_id.as_deref())
        .bind(date.reason.as_deref())
        .execute(&mut *connection)
        .await?;
    }
    Ok(created)
}

pub async fn get(connection: &mut AnyConnection, id: i64) -> Result<Option<Backfill>, StorageError> {
    let sql = format!("SELECT {COLUMNS} FROM backfill WHERE id = $1");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(connection)
        .await?
        .map(from_row)
        .transpose()
}

/// Backfills, newest first; only one DAG's when given; only in `state` when given.
pub async fn list(
    connection: &mut AnyConnection,
    dag_id: Option<&DagId>,
    state: Option<BackfillState>,
) -> Result<Vec<Backfill>, StorageError> {
    let mut sql = format!("SELECT {COLUMNS} FROM backfill WHERE 1 = 1");
    if dag_id.is_some() {
        sql.push_str(" AND dag_id = $1");
    }
    if let Some(state) = state {
        sql.push_str(&format!(" AND state = '{}'", state.as_str()));
    }
    sql.push_str(" ORDER BY id DESC");
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    if let Some(dag_id) = dag_id {
        query = query.bind(dag_id.to_string());
    }
    query.fetch_all(connection).await?.into_iter().map(from_row).collect()
}

pub async fn dates(connection: &mut AnyConnection, backfill_id: i64) -> Result<Vec<BackfillDate>, StorageError> {
    let rows = sqlx::query(
        "SELECT ordinal, logical_date, data_interval_start, data_interval_end, run_after, action, existing_run_id, reason, run_pk FROM backfill_date WHERE backfill_id = $1 ORDER BY ordinal",
    )
    .bind(backfill_id)
    .fetch_all(connection)
    .await?;
    rows.into_iter()
        .map(|row| {
            Ok(BackfillDate {
                ordinal: row.try_get("ordinal")?,
                logical_date: from_micros(row.try_get("logical_date")?),
                data_interval_start: from_micros(row.try_get("data_interval_start")?),
                data_interval_end: from_micros(row.try_get("data_interval_end")?),
                run_after: from_micros(row.try_get("run_after")?),
                action: parse_column(row.try_get("action")?, "action")?,
                existing_run_id: row.try_get("existing_run_id")?,
                reason: row.try_get("reason")?,
                run_pk: row.try_get("run_pk")?,
            })
        })
        .collect()
}

/// Records the run a date got (created or cleared), or that it was skipped after all.
pub async fn set_date_run(
    connection: &mut AnyConnection,
    backfill_id: i64,
    ordinal: i64,
    run_pk: Option<i64>,
    skip_reason: Option<&str>,
) -> Result<(), StorageError> {
    let action = if skip_reason.is_some() {
        Some(DateAction::Skip.as_str())
    } else {
        None
    };
    sqlx::query(
        "UPDATE backfill_date SET run_pk = $3, action = COALESCE($4, action), reason = COALESCE($5, reason) WHERE backfill_id = $1 AND ordinal = $2",
    )
    .bind(backfill_id)
    .bind(ordinal)
    .bind(run_pk)
    .bind(action)
    .bind(skip_reason)
    .execute(connection)
    .await?;
    Ok(())
}

/// Moves a backfill to `state`; `completed_at` is set when it ends.
pub async fn set_state(
    transaction: &mut Transaction,
    id: i64,
    state: BackfillState,
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    let connection = transaction.changes();
    let completed_at = (!state.is_active()).then(|| micros(now));
    sqlx::query(
        "UPDATE backfill SET state = $2, updated_at = $3, completed_at = COALESCE($4, completed_at) WHERE id = $1",
    )
    .bind(id)
    .bind(state.as_str())
    .bind(micros(now))
    .bind(completed_at)
    .execute(connection)
    .await?;
    Ok(())
}

/// Dates to run (not skipped) and how many of their runs have finished.
pub async fn progress(connection: &mut AnyConnection, backfill_id: i64) -> Result<(u32, u32), StorageError> {
    let row = sqlx::query(
        "SELECT COUNT(*), COALESCE(SUM(CASE WHEN r.state IN ('success', 'failed') THEN 1 ELSE 0 END), 0) FROM backfill_date d LEFT JOIN dag_run r ON r.id = d.run_pk WHERE d.backfill_id = $1 AND d.action <> 'skip'",
    )
    .bind(backfill_id)
    .fetch_one(connection)
    .await?;
    let total = u32::try_from(row.try_get::<i64, _>(0)?).unwrap_or(0);
    let done = u32::try_from(row.try_get::<i64, _>(1)?).unwrap_or(0);
    Ok((total, done))
}
