//! The `alert` table (§9): the delivery outbox. One row per alert and channel, inserted in the
//! transaction of the state change that raised it; the delivery loop claims a due row with a
//! conditional update (`pending → sending`, attempts + 1) before sending, so a row is never sent
//! by two loops at once, and records the outcome only if its claim still holds.
//!
//! A claim carries a lease (`claimed_until`): a row left `sending` by a process that died goes
//! back to `pending` when the lease lapses ([`release_lapsed`]), which makes a crash in the middle
//! of a send an at-least-once delivery.

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{StorageError, from_micros, micros, opt_time, parse_column};
use crate::domain::alerts::{AlertEvent, DeliveryStatus};

/// An alert to record for one channel.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAlert<'a> {
    pub channel: &'a str,
    pub event: AlertEvent,
    pub dag_id: &'a str,
    pub run_id: &'a str,
    pub task_id: Option<&'a str>,
    /// The §9 fields, frozen now: later deliveries send exactly this.
    pub payload: &'a serde_json::Value,
}

/// A recorded alert delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub id: i64,
    pub channel: String,
    pub event: AlertEvent,
    pub dag_id: String,
    pub run_id: String,
    pub task_id: Option<String>,
    pub payload: serde_json::Value,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, channel, event, dag_id, run_id, task_id, payload, status, attempts, next_attempt_at, error, created_at, delivered_at";

fn from_row(row: &AnyRow) -> Result<Alert, StorageError> {
    let payload: String = row.try_get("payload")?;
    Ok(Alert {
        id: row.try_get("id")?,
        channel: row.try_get("channel")?,
        event: parse_column(row.try_get("event")?, "event")?,
        dag_id: row.try_get("dag_id")?,
        run_id: row.try_get("run_id")?,
        task_id: row.try_get("task_id")?,
        payload: serde_json::from_str(&payload)
            .map_err(|error| StorageError::Corrupt(format!("alert payload `{payload}`: {error}")))?,
        status: parse_column(row.try_get("status")?, "status")?,
        attempts: u32::try_from(row.try_get::<i64, _>("attempts")?).unwrap_or(0),
        next_attempt_at: from_micros(row.try_get("next_attempt_at")?),
        error: row.try_get("error")?,
        created_at: from_micros(row.try_get("created_at")?),
        delivered_at: opt_time(row.try_get("delivered_at")?),
    })
}

/// Records a pending delivery, due at once; returns its id.
pub async fn insert(
    connection: &mut AnyConnection,
    alert: &NewAlert<'_>,
    now: DateTime<Utc>,
) -> Result<i64, StorageError> {
    Ok(sqlx::query(
        "INSERT INTO alert (channel, event, dag_id, run_id, task_id, payload, status, attempts, next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7) RETURNING id",
    )
    .bind(alert.channel)
    .bind(alert.event.as_str())
    .bind(alert.dag_id)
    .bind(alert.run_id)
    .bind(alert.task_id)
    .bind(alert.payload.to_string())
    .bind(micros(now))
    .fetch_one(connection)
    .await?
    .try_get(0)?)
}

/// Pending deliveries due at `now`, the longest-waiting first (a read: each must still be
/// [`claim`]ed).
pub async fn due(connection: &mut AnyConnection, now: DateTime<Utc>, limit: u32) -> Result<Vec<Alert>, StorageError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM alert WHERE status = 'pending' AND next_attempt_at <= $1 ORDER BY next_attempt_at, id LIMIT {limit}"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(micros(now))
        .fetch_all(connection)
        .await?;
    rows.iter().map(from_row).collect()
}

/// Takes a pending delivery for one attempt: `pending → sending`, attempts + 1, held until
/// `claimed_until`. Returns the attempt's number, or `None` when another loop took it first.
pub async fn claim(
    connection: &mut AnyConnection,
    id: i64,
    claimed_until: DateTime<Utc>,
) -> Result<Option<u32>, StorageError> {
    let row = sqlx::query(
        "UPDATE alert SET status = 'sending', attempts = attempts + 1, claimed_until = $2 WHERE id = $1 AND status = 'pending' RETURNING attempts",
    )
    .bind(id)
    .bind(micros(claimed_until))
    .fetch_optional(connection)
    .await?;
    match row {
        Some(row) => Ok(Some(u32::try_from(row.try_get::<i64, _>(0)?).unwrap_or(u32::MAX))),
        None => Ok(None),
    }
}

/// How one claimed attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered,
    /// Failed; tried again at the given time.
    Retry {
        error: String,
        at: DateTime<Utc>,
    },
    /// Failed, and no attempt is left.
    Failed {
        error: String,
    },
}

/// Records the end of attempt `attempt` of a delivery, if its claim still holds (a lapsed claim
/// taken over by another loop is not overwritten). Returns whether it was recorded.
pub async fn finish_attempt(
    connection: &mut AnyConnection,
    id: i64,
    attempt: u32,
    outcome: &AttemptOutcome,
    now: DateTime<Utc>,
) -> Result<bool, StorageError> {
    let query = match outcome {
        AttemptOutcome::Delivered => sqlx::query(
            "UPDATE alert SET status = 'delivered', delivered_at = $3, error = NULL, claimed_until = NULL WHERE id = $1 AND attempts = $2 AND status = 'sending'",
        )
        .bind(id)
        .bind(i64::from(attempt))
        .bind(micros(now)),
        AttemptOutcome::Retry { error, at } => sqlx::query(
            "UPDATE alert SET status = 'pending', next_attempt_at = $3, error = $4, claimed_until = NULL WHERE id = $1 AND attempts = $2 AND status = 'sending'",
        )
        .bind(id)
        .bind(i64::from(attempt))
        .bind(micros(*at))
        .bind(error.clone()),
        AttemptOutcome::Failed { error } => sqlx::query(
            "UPDATE alert SET status = 'failed', error = $3, claimed_until = NULL WHERE id = $1 AND attempts = $2 AND status = 'sending'",
        )
        .bind(id)
        .bind(i64::from(attempt))
        .bind(error.clone()),
    };
    Ok(query.execute(connection).await?.rows_affected() > 0)
}

/// Gives back a claimed attempt that never ran to its end (weir shut down during it): pending
/// again, due at once, the attempt not counted.
pub async fn release(connection: &mut AnyConnection, id: i64, attempt: u32) -> Result<bool, StorageError> {
    Ok(sqlx::query(
        "UPDATE alert SET status = 'pending', attempts = attempts - 1, claimed_until = NULL WHERE id = $1 AND attempts = $2 AND status = 'sending'",
    )
    .bind(id)
    .bind(i64::from(attempt))
    .execute(connection)
    .await?
    .rows_affected()
        > 0)
}

/// Deliveries whose claim lapsed (the process sending them died) go back to pending, due at
/// once; the interrupted attempt counts. Returns how many.
pub async fn release_lapsed(connection: &mut AnyConnection, now: DateTime<Utc>) -> Result<u64, StorageError> {
    Ok(sqlx::query(
        "UPDATE alert SET status = 'pending', next_attempt_at = $1, claimed_until = NULL, error = 'the process sending this alert stopped during the attempt; sent again' WHERE status = 'sending' AND claimed_until < $1",
    )
    .bind(micros(now))
    .execute(connection)
    .await?
    .rows_affected())
}

/// When the delivery loop next has something to do: the earliest pending attempt or lapsing claim.
pub async fn next_wake(connection: &mut AnyConnection) -> Result<Option<DateTime<Utc>>, StorageError> {
    let row = sqlx::query(
        "SELECT (SELECT MIN(next_attempt_at) FROM alert WHERE status = 'pending'), (SELECT MIN(claimed_until) FROM alert WHERE status = 'sending')",
    )
    .fetch_one(connection)
    .await?;
    let pending: Option<i64> = row.try_get(0)?;
    let lapsing: Option<i64> = row.try_get(1)?;
    Ok([pending, lapsing].into_iter().flatten().min().map(from_micros))
}

/// Which deliveries to list.
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    pub dag_id: Option<String>,
    pub status: Option<DeliveryStatus>,
    pub limit: Option<u32>,
    pub offset: u32,
}

fn where_clause(filter: &AlertFilter) -> (String, Vec<String>) {
    let mut sql = String::from(" WHERE 1 = 1");
    let mut binds = Vec::new();
    if let Some(dag_id) = &filter.dag_id {
        binds.push(dag_id.clone());
        sql.push_str(&format!(" AND dag_id = ${}", binds.len()));
    }
    match filter.status {
        // People see a delivery being sent right now as pending (§7 lists three statuses).
        Some(DeliveryStatus::Pending | DeliveryStatus::Sending) => {
            sql.push_str(" AND status IN ('pending', 'sending')")
        }
        Some(status) => {
            binds.push(status.as_str().to_string());
            sql.push_str(&format!(" AND status = ${}", binds.len()));
        }
        None => {}
    }
    (sql, binds)
}

/// Deliveries, newest first.
pub async fn list(connection: &mut AnyConnection, filter: &AlertFilter) -> Result<Vec<Alert>, StorageError> {
    let (where_sql, binds) = where_clause(filter);
    let mut sql = format!("SELECT {COLUMNS} FROM alert{where_sql} ORDER BY id DESC");
    sql.push_str(&super::page_clause(filter.limit, filter.offset));
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for bind in binds {
        query = query.bind(bind);
    }
    query.fetch_all(connection).await?.iter().map(from_row).collect()
}

/// How many deliveries match (limit and offset aside), for `total_entries`.
pub async fn count(connection: &mut AnyConnection, filter: &AlertFilter) -> Result<i64, StorageError> {
    let (where_sql, binds) = where_clause(filter);
    let mut query = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM alert{where_sql}")));
    for bind in binds {
        query = query.bind(bind);
    }
    Ok(query.fetch_one(connection).await?.try_get(0)?)
}

pub async fn get(connection: &mut AnyConnection, id: i64) -> Result<Option<Alert>, StorageError> {
    let sql = format!("SELECT {COLUMNS} FROM alert WHERE id = $1");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(connection)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// Delivered and failed alerts of one run, for `db clean`: removed (or only counted with
/// `dry_run`). Pending ones stay and are still delivered.
pub async fn clean_finished_of_run(
    connection: &mut AnyConnection,
    dag_id: &str,
    run_id: &str,
    dry_run: bool,
) -> Result<u64, StorageError> {
    super::delete_or_count_run_rows(
        connection,
        "alert",
        "dag_id = $1 AND run_id = $2 AND status IN ('delivered', 'failed')",
        dag_id,
        run_id,
        dry_run,
    )
    .await
}
