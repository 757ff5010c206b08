//! MySQL and MariaDB: column kinds by type name, unsigned integers that must fit i64, exact
//! DECIMAL text, and the precision of DECIMAL source columns from information_schema.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use sqlx::error::BoxDynError;
use sqlx::mysql::{MySql, MySqlArguments, MySqlColumn, MySqlConnection, MySqlQueryResult, MySqlRow, MySqlTypeInfo};
use sqlx::{Arguments, Column, Executor, Row, SqlSafeStr, Statement, TypeInfo, ValueRef};

use super::Driver;
use crate::runtime::operators::sql::cell::{Cell, ColumnKind, ColumnSpec, DecimalShape};
use crate::runtime::operators::sql::dialect::TableName;
use crate::runtime::operators::sql::error::database_message;
use crate::runtime::operators::sql::{Backend, SqlTaskError};

/// The kind of a MySQL/MariaDB type, by the name sqlx reports (`BIGINT UNSIGNED`, `DATETIME`).
/// `BOOLEAN` is how a `TINYINT(1)` column is reported. MariaDB's JSON is a LONGTEXT and reads as text.
pub(super) fn kind_of(type_name: &str) -> ColumnKind {
    match type_name {
        "BOOLEAN" => ColumnKind::Bool,
        "TINYINT" | "SMALLINT" | "MEDIUMINT" | "INT" | "BIGINT" | "TINYINT UNSIGNED" | "SMALLINT UNSIGNED"
        | "MEDIUMINT UNSIGNED" | "INT UNSIGNED" | "BIGINT UNSIGNED" | "YEAR" | "BIT" => ColumnKind::Int,
        "DECIMAL" => ColumnKind::Decimal,
        "FLOAT" | "DOUBLE" => ColumnKind::Float,
        "CHAR" | "VARCHAR" | "TINYTEXT" | "TEXT" | "MEDIUMTEXT" | "LONGTEXT" | "ENUM" | "SET" => ColumnKind::Text,
        "BINARY" | "VARBINARY" | "TINYBLOB" | "BLOB" | "MEDIUMBLOB" | "LONGBLOB" => ColumnKind::Bytes,
        "DATE" => ColumnKind::Date,
        "DATETIME" => ColumnKind::Timestamp,
        // sqlx sets the session time zone to UTC, so a TIMESTAMP reads as a UTC instant.
        "TIMESTAMP" => ColumnKind::TimestampTz,
        "JSON" => ColumnKind::Json,
        "NULL" => ColumnKind::Dynamic,
        _ => ColumnKind::Unsupported,
    }
}

/// Whether a string column holds bytes (character set `binary`, collation id 63) rather than
/// text. The protocol's BINARY flag, which sqlx names types by, is also set for text with a
/// `_bin` collation (`VARCHAR ... COLLATE utf8mb4_bin`, MariaDB's JSON), and sqlx keeps the
/// collation private, so it is read from the type's `Debug` form.
fn has_binary_character_set(type_info: &MySqlTypeInfo) -> bool {
    let shown = format!("{type_info:?}");
    match shown
        .split_once("collation: Collation(")
        .and_then(|(_, rest)| rest.split_once(')'))
    {
        Some((id, _)) => id.trim() == "63",
        // Unknown layout: trust the BINARY flag, as sqlx does.
        None => true,
    }
}

/// The text type a binary-collated column really is (`LONGBLOB` -> `LONGTEXT`).
fn text_type_name(type_name: &str) -> &'static str {
    match type_name {
        "BINARY" => "CHAR",
        "VARBINARY" => "VARCHAR",
        "TINYBLOB" => "TINYTEXT",
        "MEDIUMBLOB" => "MEDIUMTEXT",
        "LONGBLOB" => "LONGTEXT",
        _ => "TEXT",
    }
}

fn is_unsigned(type_name: &str) -> bool {
    type_name.ends_with("UNSIGNED") || type_name == "BIT"
}

impl Driver for MySql {
    const BACKEND: Backend = Backend::MySql;

    fn column_spec(column: &MySqlColumn) -> ColumnSpec {
        let type_name = column.type_info().name();
        if kind_of(type_name) == ColumnKind::Bytes && !has_binary_character_set(column.type_info()) {
            return ColumnSpec::new(column.name(), ColumnKind::Text, text_type_name(type_name));
        }
        ColumnSpec::new(column.name(), kind_of(type_name), type_name)
    }

    fn decode(row: &MySqlRow, index: usize, column: &ColumnSpec) -> Result<Cell, String> {
        let raw = row.try_get_raw(index).map_err(|error| error.to_string())?;
        if raw.is_null() {
            return Ok(Cell::Null);
        }
        let text = |error: sqlx::Error| error.to_string();
        Ok(match column.kind {
            ColumnKind::Bool => Cell::Bool(row.try_get(index).map_err(text)?),
            ColumnKind::Int if is_unsigned(&column.type_name) => {
                let value: u64 = row.try_get_unchecked(index).map_err(text)?;
                Cell::Int(i64::try_from(value).map_err(|_| {
                    format!(
                        "{value} is larger than a signed 64-bit integer; cast it in the query, e.g. CAST({0} AS DECIMAL(20,0)) AS {0}",
                        column.name
                    )
                })?)
            }
            ColumnKind::Int => Cell::Int(row.try_get_unchecked(index).map_err(text)?),
            ColumnKind::Float if column.type_name == "FLOAT" => {
                let value: f32 = row.try_get_unchecked(index).map_err(text)?;
                // Through the shortest text of the f32, so 1.1 stays 1.1.
                Cell::Float(value.to_string().parse().unwrap_or(f64::from(value)))
            }
            ColumnKind::Float => Cell::Float(row.try_get_unchecked(index).map_err(text)?),
            // DECIMAL travels as text on the wire: read it as such, every digit kept.
            ColumnKind::Decimal => Cell::Decimal(row.try_get_unchecked(index).map_err(text)?),
            ColumnKind::Text => Cell::Text(row.try_get_unchecked(index).map_err(text)?),
            ColumnKind::Bytes => Cell::Bytes(row.try_get_unchecked(index).map_err(text)?),
            ColumnKind::Date => Cell::Date(row.try_get_unchecked(index).map_err(text)?),
            ColumnKind::Timestamp => Cell::Timestamp(row.try_get_unchecked(index).map_err(text)?),
            ColumnKind::TimestampTz => Cell::TimestampTz(row.try_get_unchecked(index).map_err(text)?),
            ColumnKind::Json => {
                let json: String = row.try_get_unchecked(index).map_err(text)?;
                Cell::Json(serde_json::from_str(&json).map_err(|error| format!("not valid JSON: {error}"))?)
            }
            ColumnKind::Dynamic => Cell::Null,
            ColumnKind::Unsupported => return Err(format!("type {} is not supported", column.type_name)),
        })
    }

    fn bind(arguments: &mut MySqlArguments, cell: Cell, kind: ColumnKind) -> Result<(), BoxDynError> {
        match cell {
            Cell::Null => match kind {
                ColumnKind::Bool => arguments.add(None::<bool>),
                ColumnKind::Int => arguments.add(None::<i64>),
                ColumnKind::Float => arguments.add(None::<f64>),
                ColumnKind::Date => arguments.add(None::<NaiveDate>),
                ColumnKind::Timestamp | ColumnKind::TimestampTz => arguments.add(None::<NaiveDateTime>),
                ColumnKind::Bytes => arguments.add(None::<Vec<u8>>),
                _ => arguments.add(None::<String>),
            },
            Cell::Bool(value) => arguments.add(value),
            Cell::Int(value) => arguments.add(value),
            Cell::Float(value) => arguments.add(value),
            // MySQL converts a decimal text exactly.
            Cell::Decimal(text) | Cell::Text(text) => arguments.add(text),
            Cell::Date(value) => arguments.add(value),
            Cell::Timestamp(value) => arguments.add(value),
            // Stored as the UTC wall time in a DATETIME(6).
            Cell::TimestampTz(value) => arguments.add(utc_wall_time(value)),
            Cell::Bytes(value) => arguments.add(value),
            Cell::Json(value) => arguments.add(value.to_string()),
        }
    }

    fn rows_affected(result: &MySqlQueryResult) -> u64 {
        result.rows_affected()
    }

    fn unique_key_query(table: &TableName, keys: &[String]) -> Option<(String, Vec<Cell>)> {
        let placeholders = vec!["?"; keys.len()].join(", ");
        let mut parameters = vec![
            table.schema.clone().map_or(Cell::Null, Cell::Text),
            Cell::Text(table.name.clone()),
            Cell::Int(keys.len() as i64),
        ];
        parameters.extend(keys.iter().cloned().map(Cell::Text));
        parameters.push(Cell::Int(keys.len() as i64));
        Some((
            format!(
                "SELECT INDEX_NAME FROM information_schema.STATISTICS \
                 WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? AND NON_UNIQUE = 0 \
                 GROUP BY INDEX_NAME HAVING COUNT(*) = ? AND SUM(COLUMN_NAME IN ({placeholders})) = ?"
            ),
            parameters,
        ))
    }

    /// Half of MariaDB's default `max_allowed_packet` (16 MiB): room for the statement and overhead.
    fn max_insert_bytes() -> Option<usize> {
        Some(8 * 1024 * 1024)
    }

    fn table_exists_query(table: &TableName) -> (String, Vec<Cell>) {
        (
            "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ?"
                .into(),
            vec![
                table.schema.clone().map_or(Cell::Null, Cell::Text),
                Cell::Text(table.name.clone()),
            ],
        )
    }
}

fn utc_wall_time(value: DateTime<Utc>) -> NaiveDateTime {
    value.naive_utc()
}

/// The columns `sql` returns, with the declared precision of DECIMAL columns read from a table.
pub(in crate::runtime::operators::sql) async fn describe_source(
    connection: &mut MySqlConnection,
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
        let mut spec = MySql::column_spec(column);
        if spec.kind == ColumnKind::Decimal
            && let Some(origin) = column.origin().table_column()
        {
            let (schema, table) = match origin.table.split_once('.') {
                Some((schema, table)) => (Some(schema.to_string()), table.to_string()),
                None => (None, origin.table.to_string()),
            };
            spec.decimal = decimal_shape(connection, schema, &table, &origin.name).await;
        }
        columns.push(spec);
    }
    Ok(columns)
}

async fn decimal_shape(
    connection: &mut MySqlConnection,
    schema: Option<String>,
    table: &str,
    column: &str,
) -> Option<DecimalShape> {
    let row = sqlx::query(
        "SELECT CAST(NUMERIC_PRECISION AS SIGNED), CAST(NUMERIC_SCALE AS SIGNED) FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? AND COLUMN_NAME = ?",
    )
    .bind(schema)
    .bind(table)
    .bind(column)
    .fetch_optional(&mut *connection)
    .await
    .ok()??;
    let precision: Option<i64> = row.try_get(0).ok()?;
    let scale: Option<i64> = row.try_get(1).ok()?;
    Some(DecimalShape {
        precision: u32::try_from(precision?).ok()?,
        scale: u32::try_from(scale?).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mysql_types_map_to_kinds() {
        assert_eq!(kind_of("BOOLEAN"), ColumnKind::Bool);
        assert_eq!(kind_of("INT UNSIGNED"), ColumnKind::Int);
        assert_eq!(kind_of("DECIMAL"), ColumnKind::Decimal);
        assert_eq!(kind_of("LONGTEXT"), ColumnKind::Text);
        assert_eq!(kind_of("DATETIME"), ColumnKind::Timestamp);
        assert_eq!(kind_of("TIMESTAMP"), ColumnKind::TimestampTz);
        assert_eq!(kind_of("GEOMETRY"), ColumnKind::Unsupported);
        assert_eq!(kind_of("TIME"), ColumnKind::Unsupported);
    }
}
