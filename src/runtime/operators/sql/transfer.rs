//! The `transfer` task: the rows of a source query streamed, in batches, into a table of any
//! backend, which is created from the source columns when missing.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use sqlx::mysql::MySql;
use sqlx::postgres::Postgres;
use sqlx::sqlite::Sqlite;
use sqlx::{Arguments, Connection, Executor, IntoArguments};

use super::cell::{Cell, ColumnKind, ColumnSpec, settle_dynamic_kinds};
use super::dialect::{TableName, column_type, create_table_sql, delete_all_sql, insert_sql, rows_per_insert};
use super::driver::{
    Driver, describe_mysql_source, describe_postgres_source, describe_sqlite_source, stream_rows, unsupported,
};
use super::error::database_message;
use super::lock::LockWait;
use super::url::{connect_mysql, connect_postgres, connect_sqlite, describe_target, redact_url};
use super::{Backend, SqlTaskError, backend_of};

/// How rows land in the target table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferMode {
    /// Insert every row; what the table held stays.
    Append,
    /// Delete every row of the table, then insert, in the same transaction.
    Replace,
    /// Insert new rows and update the rows whose `keys` already exist.
    Upsert,
}

impl FromStr for TransferMode {
    type Err = SqlTaskError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "append" => Ok(TransferMode::Append),
            "replace" => Ok(TransferMode::Replace),
            "upsert" => Ok(TransferMode::Upsert),
            _ => Err(SqlTaskError::UnknownMode {
                given: text.to_string(),
            }),
        }
    }
}

impl TransferMode {
    pub fn as_str(self) -> &'static str {
        match self {
            TransferMode::Append => "append",
            TransferMode::Replace => "replace",
            TransferMode::Upsert => "upsert",
        }
    }
}

/// One transfer: the rows of `from_sql` on `from_url` into `table` on `to_url`.
#[derive(Clone, PartialEq, Eq)]
pub struct TransferSpec {
    pub from_url: String,
    pub from_sql: String,
    pub to_url: String,
    /// `orders` or `schema.orders`.
    pub table: String,
    pub mode: TransferMode,
    /// The columns that identify a row: required for upsert, the primary key of a table it creates.
    pub keys: Vec<String>,
    /// Rows read from the source and written per batch; memory holds at most one batch.
    pub batch_size: usize,
}

impl std::fmt::Debug for TransferSpec {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("TransferSpec")
            .field("from_url", &redact_url(&self.from_url))
            .field("from_sql", &self.from_sql)
            .field("to_url", &redact_url(&self.to_url))
            .field("table", &self.table)
            .field("mode", &self.mode)
            .field("keys", &self.keys)
            .field("batch_size", &self.batch_size)
            .finish()
    }
}

/// Rows of the source, decoded into cells, in the order the query returns them.
type SourceRows<'c> = BoxStream<'c, Result<Vec<Cell>, SqlTaskError>>;

/// Streams the rows of `from_sql` (never the whole result in memory) into `table`, in batches
/// of `batch_size` rows, each batch one multi-row INSERT (several when rows × columns would
/// pass the backend's bind parameter limit); returns the rows written.
///
/// All or nothing: the whole load is ONE transaction on the target, committed after the last
/// batch, so a failure at any point (a bad value, a constraint, the source breaking off) leaves
/// the target as it was, and `replace` never shows an empty table to readers. A missing table
/// is created from the source columns (with a primary key on `keys` for upsert) inside that
/// transaction too, except on MySQL, where CREATE TABLE always commits on its own: there a
/// failed load leaves the new, empty table behind. The price of one transaction is that a very
/// large load holds its locks (and, on PostgreSQL, its row versions) until it commits.
pub async fn transfer(spec: &TransferSpec, log: &mut (dyn FnMut(&str) + Send)) -> Result<u64, SqlTaskError> {
    if spec.batch_size == 0 {
        return Err(SqlTaskError::ZeroBatchSize);
    }
    if spec.mode == TransferMode::Upsert && spec.keys.is_empty() {
        return Err(SqlTaskError::UpsertWithoutKeys);
    }
    let table = TableName::parse(&spec.table)?;
    let target_backend = backend_of(&spec.to_url)?;
    match backend_of(&spec.from_url)? {
        Backend::Sqlite => {
            let (mut source, wait) = connect_sqlite(&spec.from_url).await?;
            log(&format!(
                "connected to source {} ({})",
                describe_target(&spec.from_url),
                wait.describe()
            ));
            let columns = describe_sqlite_source(&mut source, &spec.from_sql).await?;
            check_source_columns(Backend::Sqlite, &columns, spec)?;
            let rows = stream_rows::<Sqlite>(&mut source, spec.from_sql.clone(), columns.clone());
            let moved = load(spec, &table, target_backend, columns, rows, log).await;
            let _ = source.close().await;
            moved
        }
        Backend::Postgres => {
            let mut source = connect_postgres(&spec.from_url).await?;
            log(&format!("connected to source {}", describe_target(&spec.from_url)));
            let columns = describe_postgres_source(&mut source, &spec.from_sql).await?;
            check_source_columns(Backend::Postgres, &columns, spec)?;
            let rows = stream_rows::<Postgres>(&mut source, spec.from_sql.clone(), columns.clone());
            let moved = load(spec, &table, target_backend, columns, rows, log).await;
            let _ = source.close().await;
            moved
        }
        Backend::MySql => {
            let mut source = connect_mysql(&spec.from_url).await?;
            log(&format!("connected to source {}", describe_target(&spec.from_url)));
            let columns = describe_mysql_source(&mut source, &spec.from_sql).await?;
            check_source_columns(Backend::MySql, &columns, spec)?;
            let rows = stream_rows::<MySql>(&mut source, spec.from_sql.clone(), columns.clone());
            let moved = load(spec, &table, target_backend, columns, rows, log).await;
            let _ = source.close().await;
            moved
        }
    }
}

/// Refuses, before anything is written, a source weir cannot load: no columns, a column name
/// twice, a type it cannot move, upsert keys the query does not return.
fn check_source_columns(backend: Backend, columns: &[ColumnSpec], spec: &TransferSpec) -> Result<(), SqlTaskError> {
    if columns.is_empty() {
        return Err(SqlTaskError::NoColumns);
    }
    for (index, column) in columns.iter().enumerate() {
        if column.kind == ColumnKind::Unsupported {
            return Err(unsupported(backend, column));
        }
        if columns[..index].iter().any(|earlier| earlier.name == column.name) {
            return Err(SqlTaskError::DuplicateColumn {
                column: column.name.clone(),
            });
        }
    }
    if spec.mode == TransferMode::Upsert {
        let missing: Vec<String> = spec
            .keys
            .iter()
            .filter(|key| !columns.iter().any(|column| &column.name == *key))
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(SqlTaskError::KeysNotInSource {
                missing,
                available: columns.iter().map(|column| column.name.clone()).collect(),
            });
        }
    }
    Ok(())
}

async fn load(
    spec: &TransferSpec,
    table: &TableName,
    target_backend: Backend,
    columns: Vec<ColumnSpec>,
    rows: SourceRows<'_>,
    log: &mut (dyn FnMut(&str) + Send),
) -> Result<u64, SqlTaskError> {
    match target_backend {
        Backend::Sqlite => {
            let (mut target, wait) = connect_sqlite(&spec.to_url).await?;
            log(&format!(
                "connected to target {} ({})",
                describe_target(&spec.to_url),
                wait.describe()
            ));
            let moved = load_into::<Sqlite>(&mut target, spec, table, columns, rows, Some(&wait), log).await;
            let _ = target.close().await;
            moved
        }
        Backend::Postgres => {
            let mut target = connect_postgres(&spec.to_url).await?;
            log(&format!("connected to target {}", describe_target(&spec.to_url)));
            let moved = load_into::<Postgres>(&mut target, spec, table, columns, rows, None, log).await;
            let _ = target.close().await;
            moved
        }
        Backend::MySql => {
            let mut target = connect_mysql(&spec.to_url).await?;
            log(&format!("connected to target {}", describe_target(&spec.to_url)));
            let moved = load_into::<MySql>(&mut target, spec, table, columns, rows, None, log).await;
            let _ = target.close().await;
            moved
        }
    }
}

/// The next `batch_size` rows of the source (fewer at its end, none once it is exhausted).
async fn next_batch(rows: &mut SourceRows<'_>, batch_size: usize) -> Result<Vec<Vec<Cell>>, SqlTaskError> {
    let mut batch = Vec::with_capacity(batch_size.min(100_000));
    while batch.len() < batch_size {
        match rows.next().await {
            Some(row) => batch.push(row?),
            None => break,
        }
    }
    Ok(batch)
}

async fn load_into<T>(
    connection: &mut T::Connection,
    spec: &TransferSpec,
    table: &TableName,
    mut columns: Vec<ColumnSpec>,
    mut rows: SourceRows<'_>,
    waits: Option<&LockWait>,
    log: &mut (dyn FnMut(&str) + Send),
) -> Result<u64, SqlTaskError>
where
    T: Driver,
    for<'e> &'e mut T::Connection: Executor<'e, Database = T>,
    T::Arguments: IntoArguments<T>,
{
    let backend = T::BACKEND;
    let target_error = |error: sqlx::Error| SqlTaskError::Target {
        table: table.to_string(),
        message: database_message(&error),
    };
    // The first batch settles the kind of untyped (SQLite expression) columns before the table
    // is created from them.
    let mut batch = next_batch(&mut rows, spec.batch_size).await?;
    settle_dynamic_kinds(&mut columns, &batch);
    let keys: &[String] = if spec.mode == TransferMode::Upsert {
        &spec.keys
    } else {
        &[]
    };

    let (exists_sql, exists_parameters) = T::table_exists_query(table);
    let exists = returns_row::<T>(connection, exists_sql, exists_parameters)
        .await
        .map_err(target_error)?;
    if spec.mode == TransferMode::Upsert
        && exists
        && let Some((unique_sql, unique_parameters)) = T::unique_key_query(table, keys)
        && !returns_row::<T>(connection, unique_sql, unique_parameters)
            .await
            .map_err(target_error)?
    {
        return Err(SqlTaskError::NoUniqueKey {
            table: table.to_string(),
            keys: keys.join(", "),
        });
    }
    let create = (!exists).then(|| create_table_sql(backend, table, &columns, keys));
    if backend == Backend::MySql
        && let Some(create) = &create
    {
        execute::<T>(connection, create).await.map_err(target_error)?;
    }
    let mut transaction = T::begin_write(connection, waits, &mut *log).await?;
    let loaded = async {
        if let Some(create) = &create {
            if backend != Backend::MySql {
                execute::<T>(&mut transaction, create).await.map_err(target_error)?;
            }
            log(&created_table_line(backend, table, &columns, keys));
        }
        if spec.mode == TransferMode::Replace && exists {
            let deleted = execute::<T>(&mut transaction, &delete_all_sql(backend, table))
                .await
                .map_err(target_error)?;
            log(&format!("replace: deleted the {deleted} rows {table} held"));
        }
        let per_insert = rows_per_insert(backend, columns.len(), spec.batch_size);
        let full_insert: Arc<str> = insert_sql(backend, table, &columns, per_insert, spec.mode, keys).into();
        let key_indexes: Vec<usize> = keys
            .iter()
            .filter_map(|key| columns.iter().position(|column| &column.name == key))
            .collect();
        let mut moved: u64 = 0;
        let mut batch_number: u64 = 0;
        while !batch.is_empty() {
            batch_number += 1;
            let mut conformed = conform_batch(batch, &columns)?;
            if spec.mode == TransferMode::Upsert {
                conformed = last_row_per_key(conformed, &key_indexes);
            }
            let written = conformed.len() as u64;
            let load_error = |message: String| SqlTaskError::Load {
                table: table.to_string(),
                batch: batch_number,
                message,
            };
            let mut remaining = conformed.into_iter().peekable();
            while remaining.peek().is_some() {
                let chunk = take_chunk(&mut remaining, per_insert, T::max_insert_bytes());
                let sql = if chunk.len() == per_insert {
                    Arc::clone(&full_insert)
                } else {
                    insert_sql(backend, table, &columns, chunk.len(), spec.mode, keys).into()
                };
                insert_chunk::<T>(&mut transaction, sql, chunk, &columns)
                    .await
                    .map_err(load_error)?;
            }
            moved += written;
            log(&format!("batch {batch_number}: {moved} rows moved so far"));
            batch = next_batch(&mut rows, spec.batch_size).await?;
        }
        Ok::<u64, SqlTaskError>(moved)
    }
    .await;
    match loaded {
        Ok(moved) => {
            let committing = Instant::now();
            transaction.commit().await.map_err(|error| {
                LockWait::explain(waits, error, "committing", committing, |error| SqlTaskError::Commit {
                    message: database_message(&error),
                })
            })?;
            log(&format!(
                "committed: {moved} rows moved into {table} ({})",
                spec.mode.as_str()
            ));
            Ok(moved)
        }
        Err(error) => {
            let _ = transaction.rollback().await;
            log("the load failed: rolled back, the target table is as it was");
            Err(error)
        }
    }
}

fn created_table_line(backend: Backend, table: &TableName, columns: &[ColumnSpec], keys: &[String]) -> String {
    let described: Vec<String> = columns
        .iter()
        .map(|column| {
            format!(
                "{} {}",
                column.name,
                column_type(backend, column, keys.contains(&column.name))
            )
        })
        .collect();
    let mut line = format!("created table {table} ({})", described.join(", "));
    if !keys.is_empty() {
        line.push_str(&format!(" with primary key ({})", keys.join(", ")));
    }
    if backend == Backend::Sqlite
        && columns
            .iter()
            .any(|column| column.kind == ColumnKind::Decimal && column_type(backend, column, false) == "TEXT")
    {
        line.push_str(
            "; decimals without a precision of at most 15 digits are kept as TEXT, because SQLite's NUMERIC would round them through a float",
        );
    }
    line
}

/// Each cell made to fit its column's kind; `Err` names the column and the value.
fn conform_batch(batch: Vec<Vec<Cell>>, columns: &[ColumnSpec]) -> Result<Vec<Vec<Cell>>, SqlTaskError> {
    batch
        .into_iter()
        .map(|row| {
            row.into_iter()
                .zip(columns)
                .map(|(cell, column)| {
                    cell.conform(column.kind).map_err(|problem| SqlTaskError::BadValue {
                        column: column.name.clone(),
                        type_name: column.type_name.clone(),
                        problem,
                    })
                })
                .collect()
        })
        .collect()
}

/// The batch with only the last row of each key, in order: one INSERT may not touch the same
/// row twice on PostgreSQL, and the last row read is the newest one on every backend.
fn last_row_per_key(batch: Vec<Vec<Cell>>, key_indexes: &[usize]) -> Vec<Vec<Cell>> {
    let key_of = |row: &Vec<Cell>| -> String {
        key_indexes
            .iter()
            .map(|&index| format!("{:?}", row.get(index)))
            .collect::<Vec<_>>()
            .join("\u{1f}")
    };
    let mut last_index: HashMap<String, usize> = HashMap::with_capacity(batch.len());
    for (index, row) in batch.iter().enumerate() {
        last_index.insert(key_of(row), index);
    }
    if last_index.len() == batch.len() {
        return batch;
    }
    batch
        .into_iter()
        .enumerate()
        .filter(|(index, row)| last_index.get(&key_of(row)) == Some(index))
        .map(|(_, row)| row)
        .collect()
}

/// The next rows for one INSERT: `per_insert` of them, fewer when their values would pass
/// `max_bytes` (always at least one).
fn take_chunk(
    rows: &mut std::iter::Peekable<std::vec::IntoIter<Vec<Cell>>>,
    per_insert: usize,
    max_bytes: Option<usize>,
) -> Vec<Vec<Cell>> {
    let mut chunk = Vec::with_capacity(per_insert.min(rows.len()));
    let mut bytes = 0;
    while chunk.len() < per_insert {
        let Some(row) = rows.peek() else { break };
        if let Some(limit) = max_bytes {
            let row_bytes: usize = row.iter().map(approximate_size).sum();
            if !chunk.is_empty() && bytes + row_bytes > limit {
                break;
            }
            bytes += row_bytes;
        }
        chunk.extend(rows.next());
    }
    chunk
}

/// Roughly how many bytes a value takes on the wire.
fn approximate_size(cell: &Cell) -> usize {
    match cell {
        Cell::Text(text) | Cell::Decimal(text) => text.len() + 9,
        Cell::Bytes(bytes) => bytes.len() + 9,
        Cell::Json(value) => value.to_string().len() + 9,
        _ => 16,
    }
}

/// Whether `sql` with `parameters` returns at least one row.
async fn returns_row<T>(connection: &mut T::Connection, sql: String, parameters: Vec<Cell>) -> Result<bool, sqlx::Error>
where
    T: Driver,
    for<'e> &'e mut T::Connection: Executor<'e, Database = T>,
    T::Arguments: IntoArguments<T>,
{
    let mut arguments = T::Arguments::default();
    for parameter in parameters {
        let kind = parameter.kind().unwrap_or(ColumnKind::Text);
        T::bind(&mut arguments, parameter, kind).map_err(sqlx::Error::Encode)?;
    }
    let found = sqlx::query_with::<T, _>(sqlx::AssertSqlSafe(sql), arguments)
        .fetch_optional(&mut *connection)
        .await?;
    Ok(found.is_some())
}

async fn execute<T>(connection: &mut T::Connection, sql: &str) -> Result<u64, sqlx::Error>
where
    T: Driver,
    for<'e> &'e mut T::Connection: Executor<'e, Database = T>,
    T::Arguments: IntoArguments<T>,
{
    let result = sqlx::query::<T>(sqlx::AssertSqlSafe(sql.to_string()))
        .persistent(false)
        .execute(&mut *connection)
        .await?;
    Ok(T::rows_affected(&result))
}

/// One multi-row INSERT of `chunk`, every value a bind parameter. The statement is prepared
/// once per text and reused, so a load of equal chunks parses one INSERT.
async fn insert_chunk<T>(
    connection: &mut T::Connection,
    sql: Arc<str>,
    chunk: Vec<Vec<Cell>>,
    columns: &[ColumnSpec],
) -> Result<(), String>
where
    T: Driver,
    for<'e> &'e mut T::Connection: Executor<'e, Database = T>,
    T::Arguments: IntoArguments<T>,
{
    let mut arguments = T::Arguments::default();
    arguments.reserve(chunk.len() * columns.len(), 0);
    for row in chunk {
        for (cell, column) in row.into_iter().zip(columns) {
            T::bind(&mut arguments, cell, column.kind).map_err(|error| format!("column `{}`: {error}", column.name))?;
        }
    }
    sqlx::query_with::<T, _>(sqlx::AssertSqlSafe(sql), arguments)
        .execute(&mut *connection)
        .await
        .map_err(|error| database_message(&error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_read_from_their_names() {
        assert_eq!("append".parse::<TransferMode>().unwrap(), TransferMode::Append);
        assert_eq!("Replace".parse::<TransferMode>().unwrap(), TransferMode::Replace);
        assert_eq!("upsert".parse::<TransferMode>().unwrap(), TransferMode::Upsert);
        let error = "merge".parse::<TransferMode>().unwrap_err().to_string();
        assert_eq!(error, "`merge` is not a transfer mode: use append, replace or upsert");
    }

    #[test]
    fn a_spec_never_shows_passwords_when_debugged() {
        let spec = TransferSpec {
            from_url: "postgres://u:hunter2@h/db".into(),
            from_sql: "SELECT 1".into(),
            to_url: "mysql://root:topsecret@h/db".into(),
            table: "t".into(),
            mode: TransferMode::Append,
            keys: vec![],
            batch_size: 10,
        };
        let shown = format!("{spec:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("topsecret"), "{shown}");
    }

    #[test]
    fn chunks_stop_at_the_row_count_or_the_byte_budget() {
        let row = |text: &str| vec![Cell::Int(1), Cell::Text(text.into())];
        let rows = vec![row("aaaa"), row("bbbb"), row("cccc"), row(&"x".repeat(100))];
        let mut remaining = rows.clone().into_iter().peekable();
        assert_eq!(take_chunk(&mut remaining, 3, None).len(), 3);
        assert_eq!(take_chunk(&mut remaining, 3, None).len(), 1);
        let mut remaining = rows.into_iter().peekable();
        // Each small row is 16 + 13 = 29 bytes: two fit in 60, the big one goes alone.
        assert_eq!(take_chunk(&mut remaining, 10, Some(60)).len(), 2);
        assert_eq!(take_chunk(&mut remaining, 10, Some(60)).len(), 1);
        assert_eq!(take_chunk(&mut remaining, 10, Some(60)).len(), 1);
        assert!(remaining.next().is_none());
    }

    #[test]
    fn upsert_batches_keep_the_last_row_of_each_key() {
        let row = |id: i64, name: &str| vec![Cell::Int(id), Cell::Text(name.into())];
        let batch = vec![row(1, "a"), row(2, "b"), row(1, "c"), row(3, "d")];
        assert_eq!(
            last_row_per_key(batch, &[0]),
            vec![row(2, "b"), row(1, "c"), row(3, "d")]
        );
    }

    #[test]
    fn a_source_without_the_upsert_keys_is_refused() {
        let spec = TransferSpec {
            from_url: "sqlite://a.db".into(),
            from_sql: "SELECT 1".into(),
            to_url: "sqlite://b.db".into(),
            table: "t".into(),
            mode: TransferMode::Upsert,
            keys: vec!["id".into(), "day".into()],
            batch_size: 10,
        };
        let columns = vec![
            ColumnSpec::new("id", ColumnKind::Int, "INTEGER"),
            ColumnSpec::new("name", ColumnKind::Text, "TEXT"),
        ];
        let error = check_source_columns(Backend::Sqlite, &columns, &spec)
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "upsert key column(s) [\"day\"] are not among the source query's columns [\"id\", \"name\"]"
        );
    }
}
