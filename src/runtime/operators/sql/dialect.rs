//! The SQL text a transfer writes on each backend: quoted names, the column types of a created
//! table, multi-row INSERTs with their upsert clauses, and how many rows one INSERT may carry.

use super::cell::{ColumnKind, ColumnSpec};
use super::{Backend, SqlTaskError, TransferMode};

/// Most bind parameters one statement may carry: SQLite's `SQLITE_MAX_VARIABLE_NUMBER` (32766
/// since 3.32, and the bundled SQLite is newer), and the 16-bit parameter count of the
/// PostgreSQL and MySQL protocols.
pub fn max_bind_parameters(backend: Backend) -> usize {
    match backend {
        Backend::Sqlite => 32_766,
        Backend::Postgres | Backend::MySql => 65_535,
    }
}

/// Rows per INSERT: the batch size, lowered so that rows × columns stays within the backend's
/// bind parameter limit. Always at least one row.
pub fn rows_per_insert(backend: Backend, column_count: usize, batch_size: usize) -> usize {
    let by_parameters = max_bind_parameters(backend) / column_count.max(1);
    batch_size.min(by_parameters).max(1)
}

/// A target table, optionally qualified by a schema (PostgreSQL), database (MySQL) or attached
/// database (SQLite).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName {
    pub schema: Option<String>,
    pub name: String,
}

impl TableName {
    /// Reads `orders` or `staging.orders`; either part may be wrapped in `"..."` or `` `...` ``
    /// (the quotes are dropped, so a quoted part may hold a dot).
    pub fn parse(text: &str) -> Result<TableName, SqlTaskError> {
        let invalid = |reason: &str| SqlTaskError::InvalidTableName {
            table: text.to_string(),
            reason: reason.to_string(),
        };
        let mut parts = Vec::new();
        let mut rest = text.trim();
        loop {
            let (part, after) = if let Some(quote) = rest.chars().next().filter(|first| matches!(first, '"' | '`')) {
                let body = &rest[1..];
                let end = body.find(quote).ok_or_else(|| invalid("a quoted part is not closed"))?;
                (body[..end].to_string(), &body[end + 1..])
            } else {
                let end = rest.find('.').unwrap_or(rest.len());
                (rest[..end].trim().to_string(), &rest[end..])
            };
            if part.is_empty() {
                return Err(invalid("a part of the name is empty"));
            }
            parts.push(part);
            let after = after.trim_start();
            if after.is_empty() {
                break;
            }
            rest = after
                .strip_prefix('.')
                .ok_or_else(|| invalid("parts must be separated by a dot"))?
                .trim_start();
        }
        match parts.len() {
            1 => Ok(TableName {
                schema: None,
                name: parts.remove(0),
            }),
            2 => Ok(TableName {
                name: parts.remove(1),
                schema: Some(parts.remove(0)),
            }),
            _ => Err(invalid("use `table` or `schema.table`")),
        }
    }

    /// The name quoted for `backend`, with its schema when it has one.
    pub fn quoted(&self, backend: Backend) -> String {
        match &self.schema {
            Some(schema) => format!("{}.{}", quote(backend, schema), quote(backend, &self.name)),
            None => quote(backend, &self.name),
        }
    }
}

impl std::fmt::Display for TableName {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.schema {
            Some(schema) => write!(formatter, "{schema}.{}", self.name),
            None => formatter.write_str(&self.name),
        }
    }
}

/// An identifier quoted for `backend`: `"name"` (PostgreSQL, SQLite) or `` `name` `` (MySQL),
/// with the quote character doubled inside.
pub fn quote(backend: Backend, identifier: &str) -> String {
    match backend {
        Backend::Postgres | Backend::Sqlite => format!("\"{}\"", identifier.replace('"', "\"\"")),
        Backend::MySql => format!("`{}`", identifier.replace('`', "``")),
    }
}

/// Largest precision each backend's exact decimal type takes.
fn max_decimal_precision(backend: Backend) -> u32 {
    match backend {
        Backend::Postgres => 1000,
        Backend::MySql => 65,
        // A REAL holds 15 significant digits exactly: up to there NUMERIC keeps every digit.
        Backend::Sqlite => 15,
    }
}

/// The column type a created table gets for a source column. `is_key` marks primary-key
/// columns, which MySQL cannot index as TEXT/BLOB (they get `VARCHAR(255)`/`VARBINARY(255)`).
///
/// Decimals: `NUMERIC(p,s)` when the source declares its precision, else `NUMERIC` on
/// PostgreSQL (any precision) and `DECIMAL(38,10)` on MySQL (which needs one). SQLite has no
/// exact decimal type: its `NUMERIC` affinity stores a REAL, exact only to 15 significant
/// digits, so a decimal of known precision up to 15 becomes `NUMERIC(p,s)` (a number SQLite can
/// compute with) and any other decimal `TEXT` (every digit kept, compared as text).
pub fn column_type(backend: Backend, column: &ColumnSpec, is_key: bool) -> String {
    let decimal = column
        .decimal
        .filter(|shape| shape.precision >= 1 && shape.precision <= max_decimal_precision(backend));
    match (backend, column.kind) {
        (Backend::Postgres, ColumnKind::Bool) => "BOOLEAN".into(),
        (Backend::Postgres, ColumnKind::Int) => "BIGINT".into(),
        (Backend::Postgres, ColumnKind::Float) => "DOUBLE PRECISION".into(),
        (Backend::Postgres, ColumnKind::Decimal) => decimal.map_or_else(
            || "NUMERIC".into(),
            |shape| format!("NUMERIC({},{})", shape.precision, shape.scale),
        ),
        (Backend::Postgres, ColumnKind::Date) => "DATE".into(),
        (Backend::Postgres, ColumnKind::Timestamp) => "TIMESTAMP".into(),
        (Backend::Postgres, ColumnKind::TimestampTz) => "TIMESTAMPTZ".into(),
        (Backend::Postgres, ColumnKind::Bytes) => "BYTEA".into(),
        (Backend::Postgres, ColumnKind::Json) => "JSONB".into(),

        (Backend::MySql, ColumnKind::Bool) => "BOOLEAN".into(),
        (Backend::MySql, ColumnKind::Int) => "BIGINT".into(),
        (Backend::MySql, ColumnKind::Float) => "DOUBLE".into(),
        (Backend::MySql, ColumnKind::Decimal) => decimal.map_or_else(
            || "DECIMAL(38,10)".into(),
            |shape| format!("DECIMAL({},{})", shape.precision, shape.scale.min(30)),
        ),
        (Backend::MySql, ColumnKind::Date) => "DATE".into(),
        // MySQL's TIMESTAMP stops in 2038 and converts with the session zone: DATETIME(6) in UTC.
        (Backend::MySql, ColumnKind::Timestamp | ColumnKind::TimestampTz) => "DATETIME(6)".into(),
        (Backend::MySql, ColumnKind::Bytes) if is_key => "VARBINARY(255)".into(),
        (Backend::MySql, ColumnKind::Bytes) => "LONGBLOB".into(),
        (Backend::MySql, ColumnKind::Json) => "JSON".into(),
        (Backend::MySql, _) if is_key => "VARCHAR(255)".into(),
        (Backend::MySql, _) => "LONGTEXT".into(),

        (Backend::Sqlite, ColumnKind::Bool) => "BOOLEAN".into(),
        (Backend::Sqlite, ColumnKind::Int) => "INTEGER".into(),
        (Backend::Sqlite, ColumnKind::Float) => "REAL".into(),
        (Backend::Sqlite, ColumnKind::Decimal) => decimal.map_or_else(
            || "TEXT".into(),
            |shape| format!("NUMERIC({},{})", shape.precision, shape.scale),
        ),
        (Backend::Sqlite, ColumnKind::Date) => "DATE".into(),
        (Backend::Sqlite, ColumnKind::Timestamp) => "DATETIME".into(),
        (Backend::Sqlite, ColumnKind::TimestampTz) => "TIMESTAMPTZ".into(),
        (Backend::Sqlite, ColumnKind::Bytes) => "BLOB".into(),
        (Backend::Sqlite, ColumnKind::Json) => "JSON".into(),

        (_, ColumnKind::Text | ColumnKind::Dynamic | ColumnKind::Unsupported) => "TEXT".into(),
    }
}

/// `CREATE TABLE IF NOT EXISTS` for the source columns, with a primary key on `keys` when given.
pub fn create_table_sql(backend: Backend, table: &TableName, columns: &[ColumnSpec], keys: &[String]) -> String {
    let mut definitions: Vec<String> = columns
        .iter()
        .map(|column| {
            let is_key = keys.contains(&column.name);
            let mut definition = format!(
                "{} {}",
                quote(backend, &column.name),
                column_type(backend, column, is_key)
            );
            if is_key {
                definition.push_str(" NOT NULL");
            }
            definition
        })
        .collect();
    if !keys.is_empty() {
        let key_list: Vec<String> = keys.iter().map(|key| quote(backend, key)).collect();
        definitions.push(format!("PRIMARY KEY ({})", key_list.join(", ")));
    }
    format!(
        "CREATE TABLE IF NOT EXISTS {} ({})",
        table.quoted(backend),
        definitions.join(", ")
    )
}

/// `DELETE FROM table`: replace empties the table this way, not with TRUNCATE, because TRUNCATE
/// commits on its own in MySQL and would break the all-or-nothing load.
pub fn delete_all_sql(backend: Backend, table: &TableName) -> String {
    format!("DELETE FROM {}", table.quoted(backend))
}

/// One multi-row INSERT of `row_count` rows, with the mode's conflict clause. PostgreSQL
/// decimal placeholders carry `::numeric`: decimals are bound as exact text.
pub fn insert_sql(
    backend: Backend,
    table: &TableName,
    columns: &[ColumnSpec],
    row_count: usize,
    mode: TransferMode,
    keys: &[String],
) -> String {
    let column_list: Vec<String> = columns.iter().map(|column| quote(backend, &column.name)).collect();
    let mut sql = format!(
        "INSERT INTO {} ({}) VALUES ",
        table.quoted(backend),
        column_list.join(", ")
    );
    // Room for each row's placeholders, to build the text of a large INSERT without regrowing.
    sql.reserve(row_count * columns.len() * 8);
    let mut parameter = 0;
    for row in 0..row_count {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for (index, column) in columns.iter().enumerate() {
            if index > 0 {
                sql.push_str(", ");
            }
            parameter += 1;
            match backend {
                Backend::Postgres => {
                    sql.push('$');
                    sql.push_str(&parameter.to_string());
                    if column.kind == ColumnKind::Decimal {
                        sql.push_str("::numeric");
                    }
                }
                Backend::MySql | Backend::Sqlite => sql.push('?'),
            }
        }
        sql.push(')');
    }
    if mode == TransferMode::Upsert {
        sql.push_str(&upsert_clause(backend, columns, keys));
    }
    sql
}

/// ` ON CONFLICT (keys) DO UPDATE SET c = excluded.c` (PostgreSQL, SQLite) or
/// ` ON DUPLICATE KEY UPDATE c = VALUES(c)` (MySQL), over every column that is not a key.
fn upsert_clause(backend: Backend, columns: &[ColumnSpec], keys: &[String]) -> String {
    let others: Vec<&str> = columns
        .iter()
        .map(|column| column.name.as_str())
        .filter(|name| !keys.iter().any(|key| key == name))
        .collect();
    match backend {
        Backend::Postgres | Backend::Sqlite => {
            let key_list: Vec<String> = keys.iter().map(|key| quote(backend, key)).collect();
            if others.is_empty() {
                return format!(" ON CONFLICT ({}) DO NOTHING", key_list.join(", "));
            }
            let updates: Vec<String> = others
                .iter()
                .map(|name| format!("{0} = excluded.{0}", quote(backend, name)))
                .collect();
            format!(
                " ON CONFLICT ({}) DO UPDATE SET {}",
                key_list.join(", "),
                updates.join(", ")
            )
        }
        Backend::MySql => {
            // With nothing but keys, a no-op assignment keeps duplicates from failing.
            let assigned = if others.is_empty() {
                keys.iter().map(String::as_str).take(1).collect()
            } else {
                others
            };
            let updates: Vec<String> = assigned
                .iter()
                .map(|name| format!("{0} = VALUES({0})", quote(backend, name)))
                .collect();
            format!(" ON DUPLICATE KEY UPDATE {}", updates.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::operators::sql::cell::DecimalShape;

    fn columns() -> Vec<ColumnSpec> {
        let mut amount = ColumnSpec::new("amount", ColumnKind::Decimal, "NUMERIC");
        amount.decimal = Some(DecimalShape {
            precision: 12,
            scale: 2,
        });
        vec![ColumnSpec::new("id", ColumnKind::Int, "INT8"), amount]
    }

    #[test]
    fn rows_per_insert_stay_within_the_bind_parameter_limit() {
        assert_eq!(rows_per_insert(Backend::Sqlite, 6, 5000), 5000);
        assert_eq!(rows_per_insert(Backend::Sqlite, 10, 5000), 3276);
        assert_eq!(rows_per_insert(Backend::Postgres, 10, 100_000), 6553);
        assert_eq!(rows_per_insert(Backend::MySql, 2, 3), 3);
        assert_eq!(rows_per_insert(Backend::Sqlite, 40_000, 10), 1);
    }

    #[test]
    fn table_names_may_be_schema_qualified_and_quoted() {
        assert_eq!(
            TableName::parse("staging.orders").unwrap(),
            TableName {
                schema: Some("staging".into()),
                name: "orders".into()
            }
        );
        assert_eq!(TableName::parse("\"odd.name\"").unwrap().name, "odd.name");
        assert_eq!(
            TableName::parse("staging.orders").unwrap().quoted(Backend::Postgres),
            "\"staging\".\"orders\""
        );
        assert_eq!(
            TableName::parse("shop.orders").unwrap().quoted(Backend::MySql),
            "`shop`.`orders`"
        );
        for bad in ["", "a.b.c", "a..b", "\"open", "a.\"b\"c"] {
            assert!(TableName::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn identifiers_are_quoted_with_their_quote_doubled() {
        assert_eq!(quote(Backend::Postgres, "we\"ird"), "\"we\"\"ird\"");
        assert_eq!(quote(Backend::MySql, "we`ird"), "`we``ird`");
    }

    #[test]
    fn decimals_keep_their_declared_shape_where_the_backend_can() {
        let amount = &columns()[1];
        assert_eq!(column_type(Backend::Postgres, amount, false), "NUMERIC(12,2)");
        assert_eq!(column_type(Backend::MySql, amount, false), "DECIMAL(12,2)");
        assert_eq!(column_type(Backend::Sqlite, amount, false), "NUMERIC(12,2)");
        let unknown = ColumnSpec::new("x", ColumnKind::Decimal, "NUMERIC");
        assert_eq!(column_type(Backend::Postgres, &unknown, false), "NUMERIC");
        assert_eq!(column_type(Backend::MySql, &unknown, false), "DECIMAL(38,10)");
        assert_eq!(column_type(Backend::Sqlite, &unknown, false), "TEXT");
        let mut wide = unknown.clone();
        wide.decimal = Some(DecimalShape {
            precision: 30,
            scale: 4,
        });
        assert_eq!(column_type(Backend::Sqlite, &wide, false), "TEXT");
    }

    #[test]
    fn mysql_key_columns_of_text_get_an_indexable_type() {
        let name = ColumnSpec::new("code", ColumnKind::Text, "TEXT");
        assert_eq!(column_type(Backend::MySql, &name, true), "VARCHAR(255)");
        assert_eq!(column_type(Backend::MySql, &name, false), "LONGTEXT");
    }

    #[test]
    fn a_created_upsert_table_has_its_keys_as_primary_key() {
        let table = TableName::parse("orders").unwrap();
        assert_eq!(
            create_table_sql(Backend::Postgres, &table, &columns(), &["id".into()]),
            "CREATE TABLE IF NOT EXISTS \"orders\" (\"id\" BIGINT NOT NULL, \"amount\" NUMERIC(12,2), PRIMARY KEY (\"id\"))"
        );
    }

    #[test]
    fn inserts_carry_one_placeholder_per_value_and_the_upsert_clause() {
        let table = TableName::parse("orders").unwrap();
        assert_eq!(
            insert_sql(Backend::Postgres, &table, &columns(), 2, TransferMode::Append, &[]),
            "INSERT INTO \"orders\" (\"id\", \"amount\") VALUES ($1, $2::numeric), ($3, $4::numeric)"
        );
        assert_eq!(
            insert_sql(
                Backend::Sqlite,
                &table,
                &columns(),
                1,
                TransferMode::Upsert,
                &["id".into()]
            ),
            "INSERT INTO \"orders\" (\"id\", \"amount\") VALUES (?, ?) ON CONFLICT (\"id\") DO UPDATE SET \"amount\" = excluded.\"amount\""
        );
        assert_eq!(
            insert_sql(
                Backend::MySql,
                &table,
                &columns(),
                1,
                TransferMode::Upsert,
                &["id".into()]
            ),
            "INSERT INTO `orders` (`id`, `amount`) VALUES (?, ?) ON DUPLICATE KEY UPDATE `amount` = VALUES(`amount`)"
        );
        let only_keys = &columns()[..1];
        assert!(
            insert_sql(
                Backend::Postgres,
                &table,
                only_keys,
                1,
                TransferMode::Upsert,
                &["id".into()]
            )
            .ends_with("ON CONFLICT (\"id\") DO NOTHING")
        );
    }
}
