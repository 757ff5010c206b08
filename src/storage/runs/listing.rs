//! Listing runs: the filters, orders and pages the API, the UI and the CLI ask for, and the
//! count of what a filter matches.

use sqlx::{AnyConnection, Row};

use super::{COLUMNS, DagRun, from_row};
use crate::domain::ids::DagId;
use crate::domain::state::RunState;
use crate::storage::{StorageError, parse_column};

/// Filters for listing runs.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub dag_id: Option<DagId>,
    pub states: Vec<RunState>,
    /// `Some(None)`: only daemon-driven runs; `Some(Some(x))`: only runs owned by `x`.
    pub owner: Option<Option<String>>,
    pub limit: Option<u32>,
    /// Rows to skip before the first one returned (pagination).
    pub offset: u32,
    pub newest_first: bool,
    /// An explicit order; when set, it wins over `newest_first`.
    pub order: Option<RunOrder>,
}

/// A column runs can be sorted by, for the API's `order_by`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunSortColumn {
    Id,
    DagId,
    RunId,
    State,
    RunType,
    LogicalDate,
    RunAfter,
    QueuedAt,
    StartDate,
    EndDate,
    DataIntervalStart,
    DataIntervalEnd,
}

impl RunSortColumn {
    fn column(self) -> &'static str {
        match self {
            RunSortColumn::Id => "id",
            RunSortColumn::DagId => "dag_id",
            RunSortColumn::RunId => "run_id",
            RunSortColumn::State => "state",
            RunSortColumn::RunType => "run_type",
            RunSortColumn::LogicalDate => "logical_date",
            RunSortColumn::RunAfter => "run_after",
            RunSortColumn::QueuedAt => "queued_at",
            RunSortColumn::StartDate => "start_date",
            RunSortColumn::EndDate => "end_date",
            RunSortColumn::DataIntervalStart => "data_interval_start",
            RunSortColumn::DataIntervalEnd => "data_interval_end",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunOrder {
    pub column: RunSortColumn,
    pub descending: bool,
}

/// The `WHERE` clause of a filter and its bind values.
fn where_clause(filter: &RunFilter) -> (String, Vec<String>) {
    let mut sql = String::from(" WHERE 1 = 1");
    let mut binds: Vec<String> = Vec::new();
    if let Some(dag_id) = &filter.dag_id {
        binds.push(dag_id.to_string());
        sql.push_str(&format!(" AND dag_id = ${}", binds.len()));
    }
    if !filter.states.is_empty() {
        let list: Vec<String> = filter
            .states
            .iter()
            .map(|state| format!("'{}'", state.as_str()))
            .collect();
        sql.push_str(&format!(" AND state IN ({})", list.join(", ")));
    }
    match &filter.owner {
        Some(None) => sql.push_str(" AND owner IS NULL"),
        Some(Some(owner)) => {
            binds.push(owner.clone());
            sql.push_str(&format!(" AND owner = ${}", binds.len()));
        }
        None => {}
    }
    (sql, binds)
}

/// One page of a DAG's runs, newest first (the UI's grid, run history and recent-run dots).
pub fn newest_page(dag_id: &DagId, limit: u32, offset: u32) -> RunFilter {
    RunFilter {
        dag_id: Some(dag_id.clone()),
        limit: Some(limit),
        offset,
        newest_first: true,
        ..RunFilter::default()
    }
}

pub async fn list(connection: &mut AnyConnection, filter: &RunFilter) -> Result<Vec<DagRun>, StorageError> {
    let (where_sql, binds) = where_clause(filter);
    let mut sql = format!("SELECT {COLUMNS} FROM dag_run{where_sql}");
    match filter.order {
        Some(order) => {
            let direction = if order.descending { "DESC" } else { "ASC" };
            sql.push_str(&format!(
                " ORDER BY {} {direction}, id {direction}",
                order.column.column()
            ));
        }
        None => sql.push_str(if filter.newest_first {
            " ORDER BY logical_date DESC, id DESC"
        } else {
            " ORDER BY logical_date, id"
        }),
    }
    sql.push_str(&crate::storage::page_clause(filter.limit, filter.offset));
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for bind in binds {
        query = query.bind(bind);
    }
    query.fetch_all(connection).await?.into_iter().map(from_row).collect()
}

/// How many runs match the filter (its limit and offset aside), for `total_entries`.
/// The id and DAG of each run a filter selects, in id order: what the scheduler needs at every
/// step to choose the runs it plans, without reading and parsing whole rows.
pub async fn keys(connection: &mut AnyConnection, filter: &RunFilter) -> Result<Vec<(i64, DagId)>, StorageError> {
    let (where_sql, binds) = where_clause(filter);
    let sql = format!("SELECT id, dag_id FROM dag_run{where_sql} ORDER BY id");
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for bind in binds {
        query = query.bind(bind);
    }
    query
        .fetch_all(connection)
        .await?
        .into_iter()
        .map(|row| Ok((row.try_get("id")?, parse_column(row.try_get("dag_id")?, "dag_id")?)))
        .collect()
}

/// The runs with these ids, oldest logical date first like [`list`] (ids that do not exist are
/// left out).
pub async fn get_many(connection: &mut AnyConnection, pks: &[i64]) -> Result<Vec<DagRun>, StorageError> {
    let mut runs = Vec::with_capacity(pks.len());
    // Chunks keep the statement within every backend's bind limit.
    for chunk in pks.chunks(500) {
        let placeholders: Vec<String> = (1..=chunk.len()).map(|position| format!("${position}")).collect();
        let sql = format!(
            "SELECT {COLUMNS} FROM dag_run WHERE id IN ({})",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for pk in chunk {
            query = query.bind(*pk);
        }
        for row in query.fetch_all(&mut *connection).await? {
            runs.push(from_row(row)?);
        }
    }
    runs.sort_by_key(|run| (run.logical_date, run.pk));
    Ok(runs)
}

pub async fn count(connection: &mut AnyConnection, filter: &RunFilter) -> Result<i64, StorageError> {
    let (where_sql, binds) = where_clause(filter);
    let sql = format!("SELECT COUNT(*) FROM dag_run{where_sql}");
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for bind in binds {
        query = query.bind(bind);
    }
    Ok(query.fetch_one(connection).await?.try_get(0)?)
}
