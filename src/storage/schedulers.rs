//! The `scheduler` table: one row per scheduler process (`weir serve`, `weir scheduler`,
//! `weir dags test`) with its host, pid, heartbeat and clean stop, so recovery can tell a dead
//! owner's attempts and runs from a live one's.

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{StorageError, from_micros, micros, opt_time, parse_column};
use crate::domain::liveness::{SchedulerKind, SchedulerRecord};

const COLUMNS: &str = "id, kind, hostname, pid, pid_start, started_at, heartbeat_at, stopped_at";

fn from_row(row: &AnyRow) -> Result<SchedulerRecord, StorageError> {
    Ok(SchedulerRecord {
        id: row.try_get("id")?,
        kind: parse_column(row.try_get("kind")?, "scheduler.kind")?,
        hostname: row.try_get("hostname")?,
        pid: u32::try_from(row.try_get::<i64, _>("pid")?)
            .map_err(|_| StorageError::Corrupt("scheduler.pid out of range".to_string()))?,
        pid_start: row
            .try_get::<Option<i64>, _>("pid_start")?
            .and_then(|ticks| u64::try_from(ticks).ok()),
        started_at: from_micros(row.try_get("started_at")?),
        heartbeat_at: from_micros(row.try_get("heartbeat_at")?),
        stopped_at: opt_time(row.try_get("stopped_at")?),
    })
}

/// A scheduler process about to register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewScheduler<'a> {
    pub kind: SchedulerKind,
    pub hostname: &'a str,
    pub pid: u32,
    pub pid_start: Option<u64>,
}

/// Records a scheduler that starts at `now` (its first heartbeat); returns its id.
pub async fn register(
    connection: &mut AnyConnection,
    scheduler: &NewScheduler<'_>,
    now: DateTime<Utc>,
) -> Result<i64, StorageError> {
    Ok(sqlx::query(
        "INSERT INTO scheduler (kind, hostname, pid, pid_start, started_at, heartbeat_at) VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
    )
    .bind(scheduler.kind.as_str())
    .bind(scheduler.hostname)
    .bind(i64::from(scheduler.pid))
    .bind(scheduler.pid_start.and_then(|ticks| i64::try_from(ticks).ok()))
    .bind(micros(now))
    .fetch_one(connection)
    .await?
    .try_get(0)?)
}

/// The scheduler `id` is alive at `now`.
pub async fn heartbeat(connection: &mut AnyConnection, id: i64, now: DateTime<Utc>) -> Result<(), StorageError> {
    sqlx::query("UPDATE scheduler SET heartbeat_at = $2 WHERE id = $1")
        .bind(id)
        .bind(micros(now))
        .execute(connection)
        .await?;
    Ok(())
}

/// The scheduler `id` stopped cleanly at `now`: whatever it still holds is anyone's to recover.
pub async fn mark_stopped(connection: &mut AnyConnection, id: i64, now: DateTime<Utc>) -> Result<(), StorageError> {
    sqlx::query("UPDATE scheduler SET stopped_at = $2, heartbeat_at = $2 WHERE id = $1")
        .bind(id)
        .bind(micros(now))
        .execute(connection)
        .await?;
    Ok(())
}

/// The rows of the schedulers `ids` (those that exist).
pub async fn get_many(connection: &mut AnyConnection, ids: &[i64]) -> Result<Vec<SchedulerRecord>, StorageError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders: Vec<String> = (1..=ids.len()).map(|position| format!("${position}")).collect();
    let sql = format!(
        "SELECT {COLUMNS} FROM scheduler WHERE id IN ({})",
        placeholders.join(", ")
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for id in ids {
        query = query.bind(*id);
    }
    query.fetch_all(connection).await?.iter().map(from_row).collect()
}

/// The schedulers that have not stopped cleanly, oldest first (live ones, and dead ones whose
/// rows wait for [`forget_before`]).
pub async fn not_stopped(connection: &mut AnyConnection) -> Result<Vec<SchedulerRecord>, StorageError> {
    let sql = format!("SELECT {COLUMNS} FROM scheduler WHERE stopped_at IS NULL ORDER BY id");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(connection)
        .await?
        .iter()
        .map(from_row)
        .collect()
}

/// Removes the rows of schedulers silent or stopped since before `cutoff`; every `weir dags
/// test` adds one. An attempt or run still naming a removed row counts as a dead owner's.
pub async fn forget_before(connection: &mut AnyConnection, cutoff: DateTime<Utc>) -> Result<u64, StorageError> {
    Ok(
        sqlx::query("DELETE FROM scheduler WHERE COALESCE(stopped_at, heartbeat_at) < $1")
            .bind(micros(cutoff))
            .execute(connection)
            .await?
            .rows_affected(),
    )
}
