//! SQLite: kinds from a column's declared type (SQLite's type affinity, plus DATE, DATETIME,
//! TIMESTAMP, BOOLEAN, DECIMAL and JSON by name), values read by their storage class, and
//! dates and timestamps kept as ISO 8601 text.

use chrono::DateTime;
use futures_util::future::BoxFuture;
use sqlx::error::BoxDynError;
use sqlx::sqlite::{Sqlite, SqliteArguments, SqliteColumn, SqliteConnection, SqliteQueryResult, SqliteRow};
use sqlx::{Arguments, Column, Connection, Executor, Row, SqlSafeStr, Statement, Transaction, TypeInfo, ValueRef};

use super::Driver;
use crate::runtime::operators::sql::cell::{
    Cell, ColumnKind, ColumnSpec, DecimalShape, is_decimal_text, parse_date_text, parse_timestamp_text,
};
use crate::runtime::operators::sql::dialect::{TableName, quote};
use crate::runtime::operators::sql::error::database_message;
use crate::runtime::operators::sql::lock::{LockWait, begin_write};
use crate::runtime::operators::sql::{Backend, SqlTaskError};

/// The text format weir writes timestamps in, the one SQLite's own `datetime()` uses.
pub(super) const TIMESTAMP_FORMAT: &str = "%Y-%m-%d %H:%M:%S%.f";

/// The kind of a column from its declared type as written in CREATE TABLE. SQLite's affinity
/// rules decide integers, text, blobs and reals; names SQLite itself does not know (DATE,
/// DATETIME, TIMESTAMP, TIMESTAMPTZ, BOOLEAN, DECIMAL(p,s), JSON) are read as what they say.
/// No declared type, or one of none of these, leaves the kind to the values.
pub(super) fn kind_of_declared(declared: &str) -> (ColumnKind, Option<DecimalShape>) {
    let upper = declared.trim().to_ascii_uppercase();
    let base = upper.split('(').next().unwrap_or("").trim();
    let kind = if base.is_empty() {
        ColumnKind::Dynamic
    } else if base.contains("BOOL") {
        ColumnKind::Bool
    } else if base.contains("INT") {
        ColumnKind::Int
    } else if base == "DATE" {
        ColumnKind::Date
    } else if base.starts_with("TIMESTAMPTZ") || base.contains("WITH TIME ZONE") {
        ColumnKind::TimestampTz
    } else if base.contains("DATETIME") || base.starts_with("TIMESTAMP") {
        ColumnKind::Timestamp
    } else if base.contains("CHAR") || base.contains("CLOB") || base.contains("TEXT") {
        ColumnKind::Text
    } else if base.contains("BLOB") {
        ColumnKind::Bytes
    } else if base.contains("REAL") || base.contains("FLOA") || base.contains("DOUB") {
        ColumnKind::Float
    } else if base.starts_with("DECIMAL") || base.starts_with("NUMERIC") || base.starts_with("NUMBER") {
        ColumnKind::Decimal
    } else if base.contains("JSON") {
        ColumnKind::Json
    } else {
        ColumnKind::Dynamic
    };
    let shape = if kind == ColumnKind::Decimal {
        decimal_shape(&upper)
    } else {
        None
    };
    (kind, shape)
}

/// `(p,s)` or `(p)` from a declared type such as `DECIMAL(12,2)`.
fn decimal_shape(declared: &str) -> Option<DecimalShape> {
    let inside = declared.split_once('(')?.1.split_once(')')?.0;
    let (precision, scale) = match inside.split_once(',') {
        Some((precision, scale)) => (precision.trim().parse().ok()?, scale.trim().parse().ok()?),
        None => (inside.trim().parse().ok()?, 0),
    };
    Some(DecimalShape { precision, scale })
}

/// The kind from the name sqlx gives a result column (its own reading of the declared type, or
/// `NULL` when there is none it knows).
fn kind_of_sqlx_name(type_name: &str) -> ColumnKind {
    match type_name {
        "INTEGER" => ColumnKind::Int,
        "REAL" => ColumnKind::Float,
        "TEXT" | "TIME" => ColumnKind::Text,
        "BLOB" => ColumnKind::Bytes,
        "BOOLEAN" => ColumnKind::Bool,
        "DATE" => ColumnKind::Date,
        "DATETIME" => ColumnKind::Timestamp,
        "NUMERIC" => ColumnKind::Decimal,
        _ => ColumnKind::Dynamic,
    }
}

/// One SQLite value by its storage class.
enum Stored {
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl Stored {
    fn class(&self) -> &'static str {
        match self {
            Stored::Integer(_) => "INTEGER",
            Stored::Real(_) => "REAL",
            Stored::Text(_) => "TEXT",
            Stored::Blob(_) => "BLOB",
        }
    }

    fn preview(&self) -> String {
        match self {
            Stored::Integer(value) => value.to_string(),
            Stored::Real(value) => value.to_string(),
            Stored::Text(text) => Cell::Text(text.clone()).preview(),
            Stored::Blob(bytes) => Cell::Bytes(bytes.clone()).preview(),
        }
    }
}

fn read_stored(row: &SqliteRow, index: usize) -> Result<Option<Stored>, String> {
    let raw = row.try_get_raw(index).map_err(|error| error.to_string())?;
    if raw.is_null() {
        return Ok(None);
    }
    let class = raw.type_info().name().to_string();
    let text = |error: sqlx::Error| error.to_string();
    Ok(Some(match class.as_str() {
        "INTEGER" => Stored::Integer(row.try_get_unchecked(index).map_err(text)?),
        "REAL" => Stored::Real(row.try_get_unchecked(index).map_err(text)?),
        "BLOB" => Stored::Blob(row.try_get_unchecked(index).map_err(text)?),
        _ => Stored::Text(row.try_get_unchecked(index).map_err(text)?),
    }))
}

impl Driver for Sqlite {
    const BACKEND: Backend = Backend::Sqlite;

    fn column_spec(column: &SqliteColumn) -> ColumnSpec {
        let type_name = column.type_info().name();
        ColumnSpec::new(column.name(), kind_of_sqlx_name(type_name), type_name)
    }

    fn decode(row: &SqliteRow, index: usize, column: &ColumnSpec) -> Result<Cell, String> {
        let Some(stored) = read_stored(row, index)? else {
            return Ok(Cell::Null);
        };
        let mismatch = |stored: &Stored| {
            format!(
                "a {} value ({}) where a {} is declared; SQLite does not enforce declared types, so convert or filter such rows in the query",
                stored.class(),
                stored.preview(),
                column.kind.label()
            )
        };
        Ok(match (column.kind, stored) {
            (ColumnKind::Dynamic | ColumnKind::Int, Stored::Integer(value)) => Cell::Int(value),
            (ColumnKind::Dynamic | ColumnKind::Float, Stored::Real(value)) => Cell::Float(value),
            (ColumnKind::Dynamic | ColumnKind::Text, Stored::Text(text)) => Cell::Text(text),
            (ColumnKind::Dynamic | ColumnKind::Bytes, Stored::Blob(bytes)) => Cell::Bytes(bytes),
            (ColumnKind::Float, Stored::Integer(value)) => Cell::Float(value as f64),
            (ColumnKind::Bool, Stored::Integer(value)) => Cell::Bool(value != 0),
            (ColumnKind::Bool, Stored::Text(text)) if text.eq_ignore_ascii_case("true") => Cell::Bool(true),
            (ColumnKind::Bool, Stored::Text(text)) if text.eq_ignore_ascii_case("false") => Cell::Bool(false),
            (ColumnKind::Decimal, Stored::Integer(value)) => Cell::Decimal(value.to_string()),
            (ColumnKind::Decimal, Stored::Real(value)) if value.is_finite() => Cell::Decimal(value.to_string()),
            (ColumnKind::Decimal, Stored::Text(text)) if is_decimal_text(text.trim()) => {
                Cell::Decimal(text.trim().to_string())
            }
            (ColumnKind::Text, Stored::Integer(value)) => Cell::Text(value.to_string()),
            (ColumnKind::Text, Stored::Real(value)) => Cell::Text(value.to_string()),
            (ColumnKind::Bytes, Stored::Text(text)) => Cell::Bytes(text.into_bytes()),
            (ColumnKind::Date, Stored::Text(text)) => match parse_date_text(&text) {
                Some(date) => Cell::Date(date),
                None => return Err(mismatch(&Stored::Text(text))),
            },
            (ColumnKind::Timestamp | ColumnKind::TimestampTz, Stored::Text(text)) => {
                match parse_timestamp_text(&text) {
                    Some(timestamp) if column.kind == ColumnKind::TimestampTz => Cell::TimestampTz(timestamp.and_utc()),
                    Some(timestamp) => Cell::Timestamp(timestamp),
                    None => return Err(mismatch(&Stored::Text(text))),
                }
            }
            // Unix time in seconds, as SQLite's `unixepoch()` gives it.
            (ColumnKind::Timestamp | ColumnKind::TimestampTz, Stored::Integer(seconds)) => {
                match DateTime::from_timestamp(seconds, 0) {
                    Some(instant) if column.kind == ColumnKind::TimestampTz => Cell::TimestampTz(instant),
                    Some(instant) => Cell::Timestamp(instant.naive_utc()),
                    None => return Err(mismatch(&Stored::Integer(seconds))),
                }
            }
            (ColumnKind::Json, Stored::Text(text)) => {
                Cell::Json(serde_json::from_str(&text).map_err(|error| format!("not valid JSON: {error}"))?)
            }
            (ColumnKind::Json, Stored::Integer(value)) => Cell::Json(value.into()),
            (ColumnKind::Json, Stored::Real(value)) => Cell::Json(value.into()),
            (ColumnKind::Unsupported, _) => return Err(format!("type {} is not supported", column.type_name)),
            (_, stored) => return Err(mismatch(&stored)),
        })
    }

    fn decode_for_output(row: &SqliteRow, index: usize, column: &ColumnSpec) -> Result<Cell, String> {
        Self::decode(row, index, column).or_else(|_| {
            let as_stored = ColumnSpec {
                kind: ColumnKind::Dynamic,
                ..column.clone()
            };
            Self::decode(row, index, &as_stored)
        })
    }

    fn bind(arguments: &mut SqliteArguments, cell: Cell, _kind: ColumnKind) -> Result<(), BoxDynError> {
        match cell {
            Cell::Null => arguments.add(None::<String>),
            Cell::Bool(value) => arguments.add(value),
            Cell::Int(value) => arguments.add(value),
            Cell::Float(value) => arguments.add(value),
            Cell::Decimal(text) | Cell::Text(text) => arguments.add(text),
            Cell::Date(value) => arguments.add(value.format("%Y-%m-%d").to_string()),
            Cell::Timestamp(value) => arguments.add(value.format(TIMESTAMP_FORMAT).to_string()),
            Cell::TimestampTz(value) => arguments.add(format!("{}+00:00", value.naive_utc().format(TIMESTAMP_FORMAT))),
            Cell::Bytes(value) => arguments.add(value),
            Cell::Json(value) => arguments.add(value.to_string()),
        }
    }

    fn rows_affected(result: &SqliteQueryResult) -> u64 {
        result.rows_affected()
    }

    fn begin_write<'c: 'l, 'l>(
        connection: &'c mut SqliteConnection,
        waits: Option<&'l LockWait>,
        log: &'l mut (dyn FnMut(&str) + Send),
    ) -> BoxFuture<'l, Result<Transaction<'c, Sqlite>, SqlTaskError>> {
        Box::pin(async move {
            match waits {
                Some(wait) => begin_write(connection, wait, log).await,
                None => connection.begin().await.map_err(|error| SqlTaskError::Begin {
                    message: database_message(&error),
                }),
            }
        })
    }

    fn table_exists_query(table: &TableName) -> (String, Vec<Cell>) {
        let schema = quote(Backend::Sqlite, table.schema.as_deref().unwrap_or("main"));
        (
            format!("SELECT 1 FROM {schema}.sqlite_master WHERE type IN ('table', 'view') AND name = ? COLLATE NOCASE"),
            vec![Cell::Text(table.name.clone())],
        )
    }
}

/// The columns `sql` returns, their kinds taken from the declared types of the table columns
/// they come from (`PRAGMA table_info`), since sqlx only names the types it knows itself.
pub(in crate::runtime::operators::sql) async fn describe_source(
    connection: &mut SqliteConnection,
    sql: &str,
) -> Result<Vec<ColumnSpec>, SqlTaskError> {
    let statement = connection
        .prepare(sqlx::AssertSqlSafe(sql.to_string()).into_sql_str())
        .await
        .map_err(|error| SqlTaskError::Source {
            message: database_message(&error),
        })?;
    let mut columns = Vec::with_capacity(statement.columns().len());
    for column in statement.columns() {
        let mut spec = Sqlite::column_spec(column);
        if let Some(origin) = column.origin().table_column() {
            let (schema, table) = match origin.table.split_once('.') {
                Some((schema, table)) => (schema.to_string(), table.to_string()),
                None => ("main".to_string(), origin.table.to_string()),
            };
            let declared: Option<String> =
                sqlx::query_scalar("SELECT type FROM pragma_table_info(?1, ?2) WHERE name = ?3")
                    .bind(table)
                    .bind(schema)
                    .bind(origin.name.to_string())
                    .fetch_optional(&mut *connection)
                    .await
                    .ok()
                    .flatten();
            if let Some(declared) = declared {
                let (kind, shape) = kind_of_declared(&declared);
                spec.kind = kind;
                spec.decimal = shape;
                spec.type_name = if declared.is_empty() { "(none)".into() } else { declared };
            }
        }
        columns.push(spec);
    }
    Ok(columns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_types_follow_affinity_and_the_names_sqlite_leaves_to_us() {
        let kind = |declared: &str| kind_of_declared(declared).0;
        assert_eq!(kind("BIGINT"), ColumnKind::Int);
        assert_eq!(kind("integer"), ColumnKind::Int);
        assert_eq!(kind("VARCHAR(20)"), ColumnKind::Text);
        assert_eq!(kind("double precision"), ColumnKind::Float);
        assert_eq!(kind("BLOB"), ColumnKind::Bytes);
        assert_eq!(kind("BOOLEAN"), ColumnKind::Bool);
        assert_eq!(kind("DATE"), ColumnKind::Date);
        assert_eq!(kind("DATETIME"), ColumnKind::Timestamp);
        assert_eq!(kind("TIMESTAMP"), ColumnKind::Timestamp);
        assert_eq!(kind("TIMESTAMPTZ"), ColumnKind::TimestampTz);
        assert_eq!(kind("JSON"), ColumnKind::Json);
        assert_eq!(kind(""), ColumnKind::Dynamic);
        assert_eq!(kind("WHATEVER"), ColumnKind::Dynamic);
        assert_eq!(
            kind_of_declared("decimal(12, 2)"),
            (
                ColumnKind::Decimal,
                Some(DecimalShape {
                    precision: 12,
                    scale: 2
                })
            )
        );
        assert_eq!(kind_of_declared("NUMERIC"), (ColumnKind::Decimal, None));
    }
}
