//! The `event_log` table: the audit log (Airflow's `log` table). Entries are only ever added,
//! listed and aged out by `db clean`; nothing updates one.

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{StorageError, from_micros, micros, opt_time, parse_column};
use crate::domain::audit::{Entry, NewEntry, Surface};

const COLUMNS: &str =
    "id, dttm, event, owner, surface, address, dag_id, run_id, task_id, try_number, logical_date, extra";

fn from_row(row: &AnyRow) -> Result<Entry, StorageError> {
    let extra: Option<String> = row.try_get("extra")?;
    let extra = match extra {
        None => serde_json::Map::new(),
        Some(text) => serde_json::from_str(&text)
            .map_err(|error| StorageError::Corrupt(format!("event_log extra `{text}`: {error}")))?,
    };
    Ok(Entry {
        id: row.try_get("id")?,
        when: from_micros(row.try_get("dttm")?),
        event: row.try_get("event")?,
        owner: row.try_get("owner")?,
        surface: parse_column(row.try_get("surface")?, "surface")?,
        address: row.try_get("address")?,
        dag_id: row.try_get("dag_id")?,
        run_id: row.try_get("run_id")?,
        task_id: row.try_get("task_id")?,
        try_number: row
            .try_get::<Option<i64>, _>("try_number")?
            .and_then(|number| u32::try_from(number).ok()),
        logical_date: opt_time(row.try_get("logical_date")?),
        extra,
    })
}

/// Records `entry` at `now`; returns its id.
pub async fn insert(connection: &mut AnyConnection, entry: &NewEntry, now: DateTime<Utc>) -> Result<i64, StorageError> {
    let extra = (!entry.extra.is_empty()).then(|| serde_json::Value::Object(entry.extra.clone()).to_string());
    Ok(sqlx::query(
        "INSERT INTO event_log (dttm, event, owner, surface, address, dag_id, run_id, task_id, try_number, logical_date, extra) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
    )
    .bind(micros(now))
    .bind(entry.event.as_str())
    .bind(entry.owner.as_str())
    .bind(entry.surface.as_str())
    .bind(entry.address.as_deref())
    .bind(entry.dag_id.as_deref())
    .bind(entry.run_id.as_deref())
    .bind(entry.task_id.as_deref())
    .bind(entry.try_number.map(i64::from))
    .bind(entry.logical_date.map(micros))
    .bind(extra)
    .fetch_one(connection)
    .await?
    .try_get(0)?)
}

/// A column entries can be listed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortColumn {
    #[default]
    Id,
    When,
    DagId,
    TaskId,
    RunId,
    Event,
    LogicalDate,
    Owner,
}

impl SortColumn {
    fn sql(self) -> &'static str {
        match self {
            SortColumn::Id => "id",
            SortColumn::When => "dttm",
            SortColumn::DagId => "dag_id",
            SortColumn::TaskId => "task_id",
            SortColumn::RunId => "run_id",
            SortColumn::Event => "event",
            SortColumn::LogicalDate => "logical_date",
            SortColumn::Owner => "owner",
        }
    }
}

/// Which entries to list; every field left empty matches everything.
#[derive(Debug, Clone, Default)]
pub struct EntryFilter {
    pub dag_id: Option<String>,
    pub task_id: Option<String>,
    pub run_id: Option<String>,
    pub try_number: Option<u32>,
    pub owner: Option<String>,
    pub event: Option<String>,
    /// Only these events (when not empty).
    pub included_events: Vec<String>,
    pub excluded_events: Vec<String>,
    pub surface: Option<Surface>,
    /// Strictly before / after, as Airflow's `before` and `after`.
    pub before: Option<DateTime<Utc>>,
    pub after: Option<DateTime<Utc>>,
    pub order: SortColumn,
    pub descending: bool,
    pub limit: Option<u32>,
    pub offset: u32,
}

/// A bound value of a filter.
enum Bind {
    Text(String),
    Integer(i64),
}

fn where_clause(filter: &EntryFilter) -> (String, Vec<Bind>) {
    let mut sql = String::from(" WHERE 1 = 1");
    let mut binds = Vec::new();
    let mut equal = |sql: &mut String, column: &str, bind: Bind| {
        binds.push(bind);
        sql.push_str(&format!(" AND {column} = ${}", binds.len()));
    };
    let texts = [
        ("dag_id", &filter.dag_id),
        ("task_id", &filter.task_id),
        ("run_id", &filter.run_id),
        ("owner", &filter.owner),
        ("event", &filter.event),
    ];
    for (column, value) in texts {
        if let Some(value) = value {
            equal(&mut sql, column, Bind::Text(value.clone()));
        }
    }
    if let Some(surface) = filter.surface {
        equal(&mut sql, "surface", Bind::Text(surface.as_str().to_string()));
    }
    if let Some(try_number) = filter.try_number {
        equal(&mut sql, "try_number", Bind::Integer(i64::from(try_number)));
    }
    for (events, operator) in [(&filter.included_events, "IN"), (&filter.excluded_events, "NOT IN")] {
        if events.is_empty() {
            continue;
        }
        let mut placeholders = Vec::new();
        for event in events {
            binds.push(Bind::Text(event.clone()));
            placeholders.push(format!("${}", binds.len()));
        }
        sql.push_str(&format!(" AND event {operator} ({})", placeholders.join(", ")));
    }
    for (time, operator) in [(filter.before, "<"), (filter.after, ">")] {
        if let Some(time) = time {
            binds.push(Bind::Integer(micros(time)));
            sql.push_str(&format!(" AND dttm {operator} ${}", binds.len()));
        }
    }
    (sql, binds)
}

fn bound<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    binds: Vec<Bind>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    for bind in binds {
        query = match bind {
            Bind::Text(text) => query.bind(text),
            Bind::Integer(number) => query.bind(number),
        };
    }
    query
}

/// Entries matching `filter`, in its order (ties broken by id, the order they were recorded).
pub async fn list(connection: &mut AnyConnection, filter: &EntryFilter) -> Result<Vec<Entry>, StorageError> {
    let (where_sql, binds) = where_clause(filter);
    let direction = if filter.descending { "DESC" } else { "ASC" };
    let mut sql = format!(
        "SELECT {COLUMNS} FROM event_log{where_sql} ORDER BY {} {direction}, id {direction}",
        filter.order.sql()
    );
    sql.push_str(&super::page_clause(filter.limit, filter.offset));
    bound(sqlx::query(sqlx::AssertSqlSafe(sql)), binds)
        .fetch_all(connection)
        .await?
        .iter()
        .map(from_row)
        .collect()
}

/// How many entries match (limit and offset aside), for `total_entries`.
pub async fn count(connection: &mut AnyConnection, filter: &EntryFilter) -> Result<i64, StorageError> {
    let (where_sql, binds) = where_clause(filter);
    let sql = format!("SELECT COUNT(*) FROM event_log{where_sql}");
    Ok(bound(sqlx::query(sqlx::AssertSqlSafe(sql)), binds)
        .fetch_one(connection)
        .await?
        .try_get(0)?)
}

pub async fn get(connection: &mut AnyConnection, id: i64) -> Result<Option<Entry>, StorageError> {
    let sql = format!("SELECT {COLUMNS} FROM event_log WHERE id = $1");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(connection)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// Entries recorded before `cutoff` (only `dag_id`'s when given), for `db clean`: removed, or only
/// counted with `dry_run`.
pub async fn clean_before(
    connection: &mut AnyConnection,
    cutoff: DateTime<Utc>,
    dag_id: Option<&str>,
    dry_run: bool,
) -> Result<u64, StorageError> {
    let filter = match dag_id {
        Some(_) => "dttm < $1 AND dag_id = $2",
        None => "dttm < $1",
    };
    if dry_run {
        let sql = format!("SELECT COUNT(*) FROM event_log WHERE {filter}");
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(micros(cutoff));
        if let Some(dag_id) = dag_id {
            query = query.bind(dag_id);
        }
        let count: i64 = query.fetch_one(connection).await?.try_get(0)?;
        return Ok(u64::try_from(count).unwrap_or(0));
    }
    let sql = format!("DELETE FROM event_log WHERE {filter}");
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(micros(cutoff));
    if let Some(dag_id) = dag_id {
        query = query.bind(dag_id);
    }
    Ok(query.execute(connection).await?.rows_affected())
}
