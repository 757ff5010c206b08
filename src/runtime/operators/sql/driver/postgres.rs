//! PostgreSQL: column kinds by type name, exact NUMERIC and UUID reading from the binary wire
//! format, and the precision of NUMERIC source columns from the catalog.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use sqlx::error::BoxDynError;
use sqlx::postgres::types::Oid;
use sqlx::postgres::{PgArguments, PgColumn, PgConnection, PgQueryResult, PgRow, PgValueFormat, Postgres};
use sqlx::types::Json;
use sqlx::{Arguments, Column, Executor, Row, SqlSafeStr, Statement, TypeInfo, ValueRef};

use super::Driver;
use crate::runtime::operators::sql::cell::{Cell, ColumnKind, ColumnSpec, DecimalShape};
use crate::runtime::operators::sql::dialect::TableName;
use crate::runtime::operators::sql::error::database_message;
use crate::runtime::operators::sql::{Backend, SqlTaskError};

/// The kind of a PostgreSQL type, by the name sqlx reports (`INT8`, `TIMESTAMPTZ`, `citext`).
pub(super) fn kind_of(type_name: &str) -> ColumnKind {
    match type_name {
        "BOOL" => ColumnKind::Bool,
        "INT2" | "INT4" | "INT8" | "OID" => ColumnKind::Int,
        "FLOAT4" | "FLOAT8" => ColumnKind::Float,
        "NUMERIC" => ColumnKind::Decimal,
        "TEXT" | "VARCHAR" | "CHAR" | "NAME" | "UNKNOWN" | "UUID" | "citext" => ColumnKind::Text,
        "DATE" => ColumnKind::Date,
        "TIMESTAMP" => ColumnKind::Timestamp,
        "TIMESTAMPTZ" => ColumnKind::TimestampTz,
        "BYTEA" => ColumnKind::Bytes,
        "JSON" | "JSONB" => ColumnKind::Json,
        "VOID" => ColumnKind::Dynamic,
        _ => ColumnKind::Unsupported,
    }
}

impl Driver for Postgres {
    const BACKEND: Backend = Backend::Postgres;

    fn column_spec(column: &PgColumn) -> ColumnSpec {
        let type_name = column.type_info().name();
        ColumnSpec::new(column.name(), kind_of(type_name), type_name)
    }

    fn decode(row: &PgRow, index: usize, column: &ColumnSpec) -> Result<Cell, String> {
        let raw = row.try_get_raw(index).map_err(|error| error.to_string())?;
        if raw.is_null() {
            return Ok(Cell::Null);
        }
        let binary = raw.format() == PgValueFormat::Binary;
        let text = |error: sqlx::Error| error.to_string();
        Ok(match (column.kind, column.type_name.as_str()) {
            (ColumnKind::Bool, _) => Cell::Bool(row.try_get(index).map_err(text)?),
            (ColumnKind::Int, "INT2") => Cell::Int(row.try_get::<i16, _>(index).map_err(text)?.into()),
            (ColumnKind::Int, "INT4") => Cell::Int(row.try_get::<i32, _>(index).map_err(text)?.into()),
            (ColumnKind::Int, "OID") => Cell::Int(row.try_get::<Oid, _>(index).map_err(text)?.0.into()),
            (ColumnKind::Int, _) => Cell::Int(row.try_get(index).map_err(text)?),
            (ColumnKind::Float, "FLOAT4") => {
                let value: f32 = row.try_get(index).map_err(text)?;
                // Through the shortest text of the f32, so 1.1 stays 1.1 instead of 1.100000023841858.
                Cell::Float(value.to_string().parse().unwrap_or(f64::from(value)))
            }
            (ColumnKind::Float, _) => Cell::Float(row.try_get(index).map_err(text)?),
            (ColumnKind::Decimal, _) if binary => {
                Cell::Decimal(numeric_text(raw.as_bytes().map_err(|error| error.to_string())?)?)
            }
            (ColumnKind::Text, "UUID") if binary => {
                Cell::Text(uuid_text(raw.as_bytes().map_err(|error| error.to_string())?)?)
            }
            (ColumnKind::Decimal, _) => Cell::Decimal(row.try_get_unchecked(index).map_err(text)?),
            (ColumnKind::Text, _) => Cell::Text(row.try_get_unchecked(index).map_err(text)?),
            (ColumnKind::Date, _) => Cell::Date(row.try_get(index).map_err(text)?),
            (ColumnKind::Timestamp, _) => Cell::Timestamp(row.try_get(index).map_err(text)?),
            (ColumnKind::TimestampTz, _) => Cell::TimestampTz(row.try_get(index).map_err(text)?),
            (ColumnKind::Bytes, _) => Cell::Bytes(row.try_get(index).map_err(text)?),
            (ColumnKind::Json, _) => Cell::Json(row.try_get::<Json<serde_json::Value>, _>(index).map_err(text)?.0),
            (ColumnKind::Dynamic, _) => Cell::Null,
            (ColumnKind::Unsupported, type_name) => return Err(format!("type {type_name} is not supported")),
        })
    }

    fn bind(arguments: &mut PgArguments, cell: Cell, kind: ColumnKind) -> Result<(), BoxDynError> {
        match cell {
            Cell::Null => match kind {
                ColumnKind::Bool => arguments.add(None::<bool>),
                ColumnKind::Int => arguments.add(None::<i64>),
                ColumnKind::Float => arguments.add(None::<f64>),
                ColumnKind::Date => arguments.add(None::<NaiveDate>),
                ColumnKind::Timestamp => arguments.add(None::<NaiveDateTime>),
                ColumnKind::TimestampTz => arguments.add(None::<DateTime<Utc>>),
                ColumnKind::Bytes => arguments.add(None::<Vec<u8>>),
                ColumnKind::Json => arguments.add(None::<Json<serde_json::Value>>),
                ColumnKind::Decimal | ColumnKind::Text | ColumnKind::Dynamic | ColumnKind::Unsupported => {
                    arguments.add(None::<String>)
                }
            },
            Cell::Bool(value) => arguments.add(value),
            Cell::Int(value) => arguments.add(value),
            Cell::Float(value) => arguments.add(value),
            // Bound as text and cast with `::numeric` in the INSERT: exact at any precision.
            Cell::Decimal(text) | Cell::Text(text) => arguments.add(text),
            Cell::Date(value) => arguments.add(value),
            Cell::Timestamp(value) => arguments.add(value),
            Cell::TimestampTz(value) => arguments.add(value),
            Cell::Bytes(value) => arguments.add(value),
            Cell::Json(value) => arguments.add(Json(value)),
        }
    }

    fn rows_affected(result: &PgQueryResult) -> u64 {
        result.rows_affected()
    }

    fn table_exists_query(table: &TableName) -> (String, Vec<Cell>) {
        (
            "SELECT 1 WHERE to_regclass($1) IS NOT NULL".into(),
            vec![Cell::Text(table.quoted(Backend::Postgres))],
        )
    }
}

/// The exact decimal text of a NUMERIC in PostgreSQL's binary format: a header of digit count,
/// weight (in base-10000 digits), sign and display scale, then the base-10000 digits.
pub(super) fn numeric_text(bytes: &[u8]) -> Result<String, String> {
    let word = |position: usize| -> Result<u16, String> {
        bytes
            .get(position..position + 2)
            .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
            .ok_or_else(|| "a NUMERIC value is cut short".to_string())
    };
    let digit_count = usize::from(word(0)?);
    let weight = i64::from(word(2)? as i16);
    let sign = word(4)?;
    let scale = usize::from(word(6)?);
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => return Ok("NaN".into()),
        0xD000 => return Ok("Infinity".into()),
        0xF000 => return Ok("-Infinity".into()),
        other => return Err(format!("a NUMERIC value has an unknown sign {other:#x}")),
    }
    let mut digits = Vec::with_capacity(digit_count);
    for index in 0..digit_count {
        digits.push(word(8 + index * 2)?);
    }
    let digit_at = |position: i64| -> u16 {
        usize::try_from(position)
            .ok()
            .and_then(|position| digits.get(position).copied())
            .unwrap_or(0)
    };
    let mut text = String::new();
    if sign == 0x4000 {
        text.push('-');
    }
    if weight < 0 {
        text.push('0');
    } else {
        for position in 0..=weight {
            let digit = digit_at(position);
            if position == 0 {
                text.push_str(&digit.to_string());
            } else {
                text.push_str(&format!("{digit:04}"));
            }
        }
    }
    if scale > 0 {
        let mut fraction = String::new();
        let mut group = 1;
        while fraction.len() < scale {
            fraction.push_str(&format!("{:04}", digit_at(weight + group)));
            group += 1;
        }
        fraction.truncate(scale);
        text.push('.');
        text.push_str(&fraction);
    }
    Ok(text)
}

/// A UUID's 16 bytes in the usual hyphenated form.
fn uuid_text(bytes: &[u8]) -> Result<String, String> {
    if bytes.len() != 16 {
        return Err(format!("a UUID should have 16 bytes, this one has {}", bytes.len()));
    }
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    ))
}

/// The columns `sql` returns, with the declared precision of NUMERIC columns read from a table.
pub(in crate::runtime::operators::sql) async fn describe_source(
    connection: &mut PgConnection,
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
        let mut spec = Postgres::column_spec(column);
        if spec.kind == ColumnKind::Decimal
            && let (Some(relation), Some(attribute)) = (column.relation_id(), column.relation_attribute_no())
        {
            spec.decimal = numeric_shape(connection, relation, attribute).await;
        }
        columns.push(spec);
    }
    Ok(columns)
}

/// Precision and scale of a table's NUMERIC column (`None` for a bare NUMERIC): the type
/// modifier is `((precision << 16) | scale) + 4`.
async fn numeric_shape(connection: &mut PgConnection, relation: Oid, attribute: i16) -> Option<DecimalShape> {
    let modifier: i32 = sqlx::query_scalar("SELECT atttypmod FROM pg_attribute WHERE attrelid = $1 AND attnum = $2")
        .bind(relation)
        .bind(attribute)
        .fetch_optional(&mut *connection)
        .await
        .ok()??;
    let packed = u32::try_from(modifier.checked_sub(4)?).ok()?;
    Some(DecimalShape {
        precision: packed >> 16,
        scale: packed & 0xffff,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(weight: i16, sign: u16, scale: u16, digits: &[u16]) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend((digits.len() as u16).to_be_bytes());
        bytes.extend(weight.to_be_bytes());
        bytes.extend(sign.to_be_bytes());
        bytes.extend(scale.to_be_bytes());
        for digit in digits {
            bytes.extend(digit.to_be_bytes());
        }
        bytes
    }

    #[test]
    fn numerics_are_read_exactly_from_the_binary_format() {
        assert_eq!(numeric_text(&numeric(1, 0, 2, &[1, 2345, 6700])).unwrap(), "12345.67");
        assert_eq!(numeric_text(&numeric(0, 0x4000, 3, &[5, 1200])).unwrap(), "-5.120");
        assert_eq!(numeric_text(&numeric(-2, 0, 8, &[12])).unwrap(), "0.00000012");
        assert_eq!(numeric_text(&numeric(2, 0, 0, &[1])).unwrap(), "100000000");
        assert_eq!(numeric_text(&numeric(0, 0, 0, &[])).unwrap(), "0");
        assert_eq!(numeric_text(&numeric(0, 0, 2, &[])).unwrap(), "0.00");
        assert_eq!(
            numeric_text(&numeric(4, 0, 4, &[1234, 5678, 9012, 3456, 7890, 9012])).unwrap(),
            "12345678901234567890.9012"
        );
        assert_eq!(numeric_text(&numeric(0, 0xC000, 0, &[])).unwrap(), "NaN");
        assert!(numeric_text(&[0, 1]).is_err());
    }

    #[test]
    fn uuids_are_hyphenated_hex() {
        let bytes: Vec<u8> = (0u8..16).collect();
        assert_eq!(uuid_text(&bytes).unwrap(), "00010203-0405-0607-0809-0a0b0c0d0e0f");
    }

    #[test]
    fn postgres_types_map_to_kinds() {
        assert_eq!(kind_of("INT4"), ColumnKind::Int);
        assert_eq!(kind_of("NUMERIC"), ColumnKind::Decimal);
        assert_eq!(kind_of("CHAR"), ColumnKind::Text);
        assert_eq!(kind_of("TIMESTAMPTZ"), ColumnKind::TimestampTz);
        assert_eq!(kind_of("JSONB"), ColumnKind::Json);
        assert_eq!(kind_of("INTERVAL"), ColumnKind::Unsupported);
        assert_eq!(kind_of("INT4[]"), ColumnKind::Unsupported);
    }
}
