//! What each database needs to read rows into cells and bind cells back: one `Driver` per
//! backend (SQLite, PostgreSQL, MySQL/MariaDB) over sqlx's concrete drivers, which, unlike the
//! `Any` driver, carry decimals, dates and timestamps.

mod mysql;
mod postgres;
mod sqlite;

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use sqlx::database::HasStatementCache;
use sqlx::error::BoxDynError;
use sqlx::{Connection, Database, Executor, IntoArguments, Row, Transaction};

use super::cell::{Cell, ColumnKind, ColumnSpec};
use super::dialect::TableName;
use super::error::database_message;
use super::lock::LockWait;
use super::{Backend, SqlTaskError};

pub(super) use mysql::describe_source as describe_mysql_source;
pub(super) use postgres::describe_source as describe_postgres_source;
pub(super) use sqlite::describe_source as describe_sqlite_source;

/// One backend as weir uses it: how its result columns map to kinds, how one value is decoded
/// into a cell, and how a cell is bound as a parameter.
pub(super) trait Driver: Database + HasStatementCache {
    const BACKEND: Backend;

    /// The spec of a result column, from the type the database reports for it.
    fn column_spec(column: &Self::Column) -> ColumnSpec;

    /// The value at `index` of `row`, read as `column` says. `Err` explains a value that does
    /// not fit (an unsigned integer past i64, a SQLite text that is no date).
    fn decode(row: &Self::Row, index: usize, column: &ColumnSpec) -> Result<Cell, String>;

    /// Like [`Driver::decode`], for a `sql` task's output, where a value that does not match
    /// its declared type is better shown as it is than failing the task. Only SQLite, which does
    /// not enforce declared types, differs.
    fn decode_for_output(row: &Self::Row, index: usize, column: &ColumnSpec) -> Result<Cell, String> {
        Self::decode(row, index, column)
    }

    /// Adds `cell` (already conformed to `kind`) to `arguments`; a `Null` is bound with the
    /// type of `kind`, so a prepared INSERT sees the same parameter types on every row.
    fn bind(arguments: &mut Self::Arguments, cell: Cell, kind: ColumnKind) -> Result<(), BoxDynError>;

    /// Rows a statement inserted, updated or deleted.
    fn rows_affected(result: &Self::QueryResult) -> u64;

    /// A query that returns a row when `table` exists, with its parameters.
    fn table_exists_query(table: &TableName) -> (String, Vec<Cell>);

    /// A query that returns a row when `table` has a primary key or unique index on exactly
    /// `keys`, for backends whose upsert would silently insert duplicates without one (MySQL);
    /// `None` where the database refuses such an upsert itself.
    fn unique_key_query(_table: &TableName, _keys: &[String]) -> Option<(String, Vec<Cell>)> {
        None
    }

    /// Most bytes of values one INSERT should carry, for servers that refuse larger packets.
    fn max_insert_bytes() -> Option<usize> {
        None
    }

    /// Begins a transaction that writes. SQLite (given how its connection waits) takes the write
    /// lock up front, see [`super::lock::begin_write`]; the servers lock row by row as they go.
    fn begin_write<'c: 'l, 'l>(
        connection: &'c mut Self::Connection,
        _waits: Option<&'l LockWait>,
        _log: &'l mut (dyn FnMut(&str) + Send),
    ) -> BoxFuture<'l, Result<Transaction<'c, Self>, SqlTaskError>> {
        Box::pin(async move {
            connection.begin().await.map_err(|error| SqlTaskError::Begin {
                message: database_message(&error),
            })
        })
    }
}

/// How to suggest a cast in messages about a column weir cannot read.
pub(super) fn cast_suggestion(backend: Backend, column: &str) -> String {
    let target = match backend {
        Backend::MySql => "CHAR",
        Backend::Postgres | Backend::Sqlite => "TEXT",
    };
    format!("CAST({column} AS {target}) AS {column}")
}

/// The error for a column whose type weir cannot move.
pub(super) fn unsupported(backend: Backend, column: &ColumnSpec) -> SqlTaskError {
    SqlTaskError::UnsupportedType {
        column: column.name.clone(),
        type_name: column.type_name.clone(),
        suggestion: cast_suggestion(backend, &column.name),
    }
}

/// The specs of a row's columns.
pub(super) fn row_columns<DB: Driver>(row: &DB::Row) -> Vec<ColumnSpec> {
    row.columns().iter().map(DB::column_spec).collect()
}

/// Every value of `row` as cells, for loading elsewhere: strict about declared types.
pub(super) fn decode_row<DB: Driver>(row: &DB::Row, columns: &[ColumnSpec]) -> Result<Vec<Cell>, SqlTaskError> {
    decode_row_with(row, columns, DB::BACKEND, DB::decode)
}

/// Every value of `row` as cells, for a `sql` task's output.
pub(super) fn decode_row_for_output<DB: Driver>(
    row: &DB::Row,
    columns: &[ColumnSpec],
) -> Result<Vec<Cell>, SqlTaskError> {
    decode_row_with(row, columns, DB::BACKEND, DB::decode_for_output)
}

fn decode_row_with<R>(
    row: &R,
    columns: &[ColumnSpec],
    backend: Backend,
    decode: fn(&R, usize, &ColumnSpec) -> Result<Cell, String>,
) -> Result<Vec<Cell>, SqlTaskError> {
    columns
        .iter()
        .enumerate()
        .map(|(index, column)| {
            if column.kind == ColumnKind::Unsupported {
                return Err(unsupported(backend, column));
            }
            decode(row, index, column).map_err(|problem| SqlTaskError::BadValue {
                column: column.name.clone(),
                type_name: column.type_name.clone(),
                problem,
            })
        })
        .collect()
}

/// The rows of `sql` on `connection` as cells, streamed: rows are read from the server as the
/// stream is polled, never collected.
pub(super) fn stream_rows<'c, DB>(
    connection: &'c mut DB::Connection,
    sql: String,
    columns: Vec<ColumnSpec>,
) -> BoxStream<'c, Result<Vec<Cell>, SqlTaskError>>
where
    DB: Driver,
    for<'e> &'e mut DB::Connection: Executor<'e, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
{
    sqlx::query::<DB>(sqlx::AssertSqlSafe(sql))
        .fetch(connection)
        .map(move |row| match row {
            Ok(row) => decode_row::<DB>(&row, &columns),
            Err(error) => Err(SqlTaskError::Source {
                message: database_message(&error),
            }),
        })
        .boxed()
}
