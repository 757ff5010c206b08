//! The `dataset_event` and `dataset_consumer` tables (§6): an event per outlet of each successful
//! task, and per dataset-scheduled DAG a watermark for each dataset it lists.
//!
//! Why watermarks: a DAG scheduled on `[a, b]` runs once both have had an event since its last
//! dataset run. `dataset_consumer` keeps, per (DAG, dataset), the id of the newest event already
//! consumed; events above it are pending. Creating a run moves every watermark of the DAG with a
//! compare-and-set ([`advance_watermark`]) in the same transaction as the run's insert, so a
//! second scheduler that decided from the same reads changes no row and rolls back: one run per
//! set of events. Nothing is deleted when a run is created, so a paused DAG's pending events
//! simply stay above its watermarks until it is unpaused (Airflow queues them the same way).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{StorageError, Transaction, from_micros, micros};
use crate::domain::ids::DagId;

/// An event to record: `dataset` was updated by one successful attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDatasetEvent<'a> {
    pub dataset: &'a str,
    pub source_dag_id: &'a str,
    pub source_run_id: &'a str,
    pub source_task_id: &'a str,
    pub source_try_number: u32,
}

/// A recorded event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetEvent {
    pub id: i64,
    pub dataset: String,
    pub source_dag_id: String,
    pub source_run_id: String,
    pub source_task_id: String,
    pub source_try_number: u32,
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, dataset, source_dag_id, source_run_id, source_task_id, source_try_number, created_at";

fn from_row(row: &AnyRow) -> Result<DatasetEvent, StorageError> {
    Ok(DatasetEvent {
        id: row.try_get("id")?,
        dataset: row.try_get("dataset")?,
        source_dag_id: row.try_get("source_dag_id")?,
        source_run_id: row.try_get("source_run_id")?,
        source_task_id: row.try_get("source_task_id")?,
        source_try_number: u32::try_from(row.try_get::<i64, _>("source_try_number")?).unwrap_or(0),
        created_at: from_micros(row.try_get("created_at")?),
    })
}

/// Records one event; returns its id.
pub async fn record_event(
    transaction: &mut Transaction,
    event: &NewDatasetEvent<'_>,
    now: DateTime<Utc>,
) -> Result<i64, StorageError> {
    let connection = transaction.changes();
    Ok(sqlx::query(
        "INSERT INTO dataset_event (dataset, source_dag_id, source_run_id, source_task_id, source_try_number, created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(event.dataset)
    .bind(event.source_dag_id)
    .bind(event.source_run_id)
    .bind(event.source_task_id)
    .bind(i64::from(event.source_try_number))
    .bind(micros(now))
    .fetch_one(connection)
    .await?
    .try_get(0)?)
}

/// The id of the dataset's newest event (an index lookup), `None` when it has none.
pub async fn newest_event_id(connection: &mut AnyConnection, dataset: &str) -> Result<Option<i64>, StorageError> {
    Ok(sqlx::query("SELECT MAX(id) FROM dataset_event WHERE dataset = $1")
        .bind(dataset)
        .fetch_one(connection)
        .await?
        .try_get(0)?)
}

/// Every watermark, by (DAG, dataset): the id of the newest event the DAG has consumed.
pub async fn watermarks(connection: &mut AnyConnection) -> Result<HashMap<(DagId, String), i64>, StorageError> {
    let rows = sqlx::query("SELECT dag_id, dataset, consumed_event_id FROM dataset_consumer")
        .fetch_all(connection)
        .await?;
    rows.iter()
        .map(|row| {
            let dag_id: DagId = super::parse_column(row.try_get("dag_id")?, "dag_id")?;
            Ok(((dag_id, row.try_get("dataset")?), row.try_get("consumed_event_id")?))
        })
        .collect()
}

/// Starts tracking `dataset` for `dag_id` at its newest event, so only later events count. A row
/// already there (another scheduler was first) is left alone.
pub async fn track(connection: &mut AnyConnection, dag_id: &DagId, dataset: &str) -> Result<(), StorageError> {
    // The SELECT keeps its WHERE clause: SQLite needs one to parse `ON CONFLICT` after a SELECT.
    sqlx::query(
        "INSERT INTO dataset_consumer (dag_id, dataset, consumed_event_id) SELECT $1, $2, COALESCE(MAX(id), 0) FROM dataset_event WHERE dataset = $2 ON CONFLICT (dag_id, dataset) DO NOTHING",
    )
    .bind(dag_id.as_str())
    .bind(dataset)
    .execute(connection)
    .await?;
    Ok(())
}

/// Moves a watermark from `from` to `to`, only if it is still at `from`; returns whether it
/// moved. `false` means another scheduler consumed these events first.
pub async fn advance_watermark(
    connection: &mut AnyConnection,
    dag_id: &DagId,
    dataset: &str,
    from: i64,
    to: i64,
) -> Result<bool, StorageError> {
    let moved = sqlx::query(
        "UPDATE dataset_consumer SET consumed_event_id = $4 WHERE dag_id = $1 AND dataset = $2 AND consumed_event_id = $3",
    )
    .bind(dag_id.as_str())
    .bind(dataset)
    .bind(from)
    .bind(to)
    .execute(connection)
    .await?
    .rows_affected();
    Ok(moved == 1)
}

/// When the first and the last of the dataset's events with ids in `(after, through]` were
/// recorded; `None` when there are none.
pub async fn event_span(
    connection: &mut AnyConnection,
    dataset: &str,
    after: i64,
    through: i64,
) -> Result<Option<(DateTime<Utc>, DateTime<Utc>)>, StorageError> {
    let row = sqlx::query(
        "SELECT MIN(created_at), MAX(created_at) FROM dataset_event WHERE dataset = $1 AND id > $2 AND id <= $3",
    )
    .bind(dataset)
    .bind(after)
    .bind(through)
    .fetch_one(connection)
    .await?;
    let first: Option<i64> = row.try_get(0)?;
    let last: Option<i64> = row.try_get(1)?;
    Ok(first
        .zip(last)
        .map(|(first, last)| (from_micros(first), from_micros(last))))
}

/// A dataset that has events: how many, and the newest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetSummary {
    pub events_total: i64,
    pub newest: DatasetEvent,
}

/// Every dataset with at least one event, by name.
pub async fn summaries(connection: &mut AnyConnection) -> Result<HashMap<String, DatasetSummary>, StorageError> {
    let sql = format!(
        "SELECT {}, counts.events_total FROM dataset_event e JOIN (SELECT MAX(id) AS newest_id, COUNT(*) AS events_total FROM dataset_event GROUP BY dataset) counts ON e.id = counts.newest_id",
        COLUMNS
            .split(", ")
            .map(|column| format!("e.{column}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(connection).await?;
    rows.iter()
        .map(|row| {
            let newest = from_row(row)?;
            Ok((
                newest.dataset.clone(),
                DatasetSummary {
                    events_total: row.try_get("events_total")?,
                    newest,
                },
            ))
        })
        .collect()
}

/// Which events to list; every field set narrows the list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    pub dataset: Option<String>,
    pub source_dag_id: Option<String>,
    pub source_run_id: Option<String>,
    pub source_task_id: Option<String>,
    pub limit: Option<u32>,
    pub offset: u32,
    /// Oldest first instead of the default newest first.
    pub oldest_first: bool,
}

fn where_clause(filter: &EventFilter) -> (String, Vec<String>) {
    let mut sql = String::from(" WHERE 1 = 1");
    let mut binds = Vec::new();
    for (column, value) in [
        ("dataset", &filter.dataset),
        ("source_dag_id", &filter.source_dag_id),
        ("source_run_id", &filter.source_run_id),
        ("source_task_id", &filter.source_task_id),
    ] {
        if let Some(value) = value {
            binds.push(value.clone());
            sql.push_str(&format!(" AND {column} = ${}", binds.len()));
        }
    }
    (sql, binds)
}

/// Events matching the filter, newest first unless asked otherwise.
pub async fn events(connection: &mut AnyConnection, filter: &EventFilter) -> Result<Vec<DatasetEvent>, StorageError> {
    let (where_sql, binds) = where_clause(filter);
    let direction = if filter.oldest_first { "ASC" } else { "DESC" };
    let mut sql = format!("SELECT {COLUMNS} FROM dataset_event{where_sql} ORDER BY id {direction}");
    sql.push_str(&super::page_clause(filter.limit, filter.offset));
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for bind in binds {
        query = query.bind(bind);
    }
    query.fetch_all(connection).await?.iter().map(from_row).collect()
}

/// How many events match the filter (its limit and offset aside), for `total_entries`.
pub async fn count_events(connection: &mut AnyConnection, filter: &EventFilter) -> Result<i64, StorageError> {
    let (where_sql, binds) = where_clause(filter);
    let mut query = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM dataset_event{where_sql}"
    )));
    for bind in binds {
        query = query.bind(bind);
    }
    Ok(query.fetch_one(connection).await?.try_get(0)?)
}

/// Dataset events one run produced, for `db clean`: removed (or only counted with `dry_run`) when
/// every DAG scheduled on the dataset has consumed them, and never the newest event of a dataset
/// (the datasets page shows it as the last update).
pub async fn clean_consumed_events_of_run(
    connection: &mut AnyConnection,
    dag_id: &str,
    run_id: &str,
    dry_run: bool,
) -> Result<u64, StorageError> {
    super::delete_or_count_run_rows(
        connection,
        "dataset_event",
        "source_dag_id = $1 AND source_run_id = $2 \
         AND id < (SELECT MAX(newer.id) FROM dataset_event newer WHERE newer.dataset = dataset_event.dataset) \
         AND id <= COALESCE((SELECT MIN(c.consumed_event_id) FROM dataset_consumer c WHERE c.dataset = dataset_event.dataset), id)",
        dag_id,
        run_id,
        dry_run,
    )
    .await
}
