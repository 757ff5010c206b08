//! The `dag` table: what the DAG folder holds, whether each DAG is paused or active, and the
//! next run the scheduler plans for it.

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{StorageError, Transaction, from_micros, micros, opt_time};
use crate::domain::dag::Dag;
use crate::domain::ids::DagId;

/// A DAG as the database knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DagRecord {
    pub dag_id: DagId,
    pub fileloc: String,
    pub is_paused: bool,
    pub is_active: bool,
    pub schedule: String,
    pub timezone: String,
    pub owner: String,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub next_dagrun_logical_date: Option<DateTime<Utc>>,
    pub next_dagrun_run_after: Option<DateTime<Utc>>,
    pub last_parsed_at: DateTime<Utc>,
}

const COLUMNS: &str = "dag_id, fileloc, is_paused, is_active, schedule, timezone, owner, description, tags, next_dagrun_logical_date, next_dagrun_run_after, last_parsed_at";

fn from_row(row: AnyRow) -> Result<DagRecord, StorageError> {
    let tags: String = row.try_get("tags")?;
    Ok(DagRecord {
        dag_id: super::parse_column(row.try_get("dag_id")?, "dag_id")?,
        fileloc: row.try_get("fileloc")?,
        is_paused: row.try_get::<i64, _>("is_paused")? != 0,
        is_active: row.try_get::<i64, _>("is_active")? != 0,
        schedule: row.try_get("schedule")?,
        timezone: row.try_get("timezone")?,
        owner: row.try_get("owner")?,
        description: row.try_get("description")?,
        tags: serde_json::from_str(&tags).map_err(|error| StorageError::Corrupt(format!("tags `{tags}`: {error}")))?,
        next_dagrun_logical_date: opt_time(row.try_get("next_dagrun_logical_date")?),
        next_dagrun_run_after: opt_time(row.try_get("next_dagrun_run_after")?),
        last_parsed_at: from_micros(row.try_get("last_parsed_at")?),
    })
}

impl std::str::FromStr for DagId {
    type Err = crate::domain::ids::InvalidId;
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        DagId::parse(value)
    }
}

/// Records a parsed DAG: inserted (paused if it asks to be) or updated and marked active; returns
/// whether it was new. The write is one `ON CONFLICT` statement, so two processes recording the
/// same DAG at once cannot collide.
pub async fn upsert(transaction: &mut Transaction, dag: &Dag, now: DateTime<Utc>) -> Result<bool, StorageError> {
    let connection = transaction.changes();
    let existed = sqlx::query("SELECT 1 FROM dag WHERE dag_id = $1")
        .bind(dag.dag_id.as_str())
        .fetch_optional(&mut *connection)
        .await?
        .is_some();
    let tags = serde_json::to_string(&dag.tags).unwrap_or_else(|_| "[]".to_string());
    sqlx::query(
        "INSERT INTO dag (dag_id, fileloc, is_paused, is_active, schedule, timezone, owner, description, tags, last_parsed_at) \
         VALUES ($1, $2, $3, 1, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (dag_id) DO UPDATE SET fileloc = excluded.fileloc, is_active = 1, schedule = excluded.schedule, \
         timezone = excluded.timezone, owner = excluded.owner, description = excluded.description, tags = excluded.tags, \
         last_parsed_at = excluded.last_parsed_at",
    )
    .bind(dag.dag_id.as_str())
    .bind(dag.fileloc.display().to_string())
    .bind(i64::from(dag.is_paused_upon_creation))
    .bind(dag.timetable.schedule.describe())
    .bind(dag.timetable.timezone.name())
    .bind(&dag.owner)
    .bind(dag.description.as_deref())
    .bind(&tags)
    .bind(micros(now))
    .execute(connection)
    .await?;
    Ok(!existed)
}

/// Marks every DAG not in `active` as inactive (its file is gone or broken); history stays.
pub async fn deactivate_others(transaction: &mut Transaction, active: &[DagId]) -> Result<u64, StorageError> {
    let connection = transaction.changes();
    let current = list(connection).await?;
    let mut changed = 0;
    for record in current {
        if record.is_active && !active.contains(&record.dag_id) {
            sqlx::query("UPDATE dag SET is_active = 0, next_dagrun_logical_date = NULL, next_dagrun_run_after = NULL WHERE dag_id = $1")
                .bind(record.dag_id.as_str())
                .execute(&mut *connection)
                .await?;
            changed += 1;
        }
    }
    Ok(changed)
}

pub async fn list(connection: &mut AnyConnection) -> Result<Vec<DagRecord>, StorageError> {
    let sql = format!("SELECT {COLUMNS} FROM dag ORDER BY dag_id");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(connection)
        .await?
        .into_iter()
        .map(from_row)
        .collect()
}

pub async fn get(connection: &mut AnyConnection, dag_id: &DagId) -> Result<Option<DagRecord>, StorageError> {
    let sql = format!("SELECT {COLUMNS} FROM dag WHERE dag_id = $1");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(dag_id.as_str())
        .fetch_optional(connection)
        .await?
        .map(from_row)
        .transpose()
}

/// Pauses or unpauses; NotFound when the DAG was never loaded.
pub async fn set_paused(transaction: &mut Transaction, dag_id: &DagId, paused: bool) -> Result<(), StorageError> {
    let connection = transaction.changes();
    let changed = sqlx::query("UPDATE dag SET is_paused = $2 WHERE dag_id = $1")
        .bind(dag_id.as_str())
        .bind(i64::from(paused))
        .execute(connection)
        .await?
        .rows_affected();
    if changed == 0 {
        return Err(StorageError::NotFound(format!(
            "DAG `{dag_id}` is not in the metadata database: check `weir dags list` (a daemon records DAGs when it loads them)"
        )));
    }
    Ok(())
}

pub async fn set_next_run(
    connection: &mut AnyConnection,
    dag_id: &DagId,
    logical_date: Option<DateTime<Utc>>,
    run_after: Option<DateTime<Utc>>,
) -> Result<(), StorageError> {
    sqlx::query("UPDATE dag SET next_dagrun_logical_date = $2, next_dagrun_run_after = $3 WHERE dag_id = $1")
        .bind(dag_id.as_str())
        .bind(logical_date.map(micros))
        .bind(run_after.map(micros))
        .execute(connection)
        .await?;
    Ok(())
}
