//! The `sql` and `transfer` task types: their statement or file, `:name` parameters, and the
//! source, target and batch of a transfer.

use serde_saphyr::{Location, Spanned};

use super::{TaskKeys, missing, templated};
use crate::domain::dag::{Operator, SqlSource, SqlTask, TransferMode, TransferTask};
use crate::domain::spec::SqlSpec;
use crate::domain::template;
use crate::domain::validate::Problems;

const DEFAULT_BATCH_SIZE: usize = 10_000;
/// A transfer holds one batch of rows in memory: a million rows of a wide table is already
/// gigabytes.
const MAX_BATCH_SIZE: i64 = 1_000_000;

pub(super) fn sql(keys: &TaskKeys<'_>, problems: &mut Problems) -> Option<Operator> {
    let conn = keys.pick(|d| &d.conn);
    let source = match (keys.own.sql.as_ref(), keys.own.sql_file.as_ref()) {
        (Some(sql), Some(_)) => {
            problems.at(sql, "give either `sql:` or `sql_file:`, not both");
            None
        }
        (Some(sql), None) => match &sql.value {
            SqlSpec::Text(text) => {
                let spanned = Spanned::new(text.clone(), sql.referenced, sql.defined);
                if template::check_syntax(text).is_ok()
                    && let Err(error) = template::check_sql_text("sql", text)
                {
                    problems.at(sql, error);
                }
                Some(SqlSource::Inline(templated(&spanned, "sql", problems)))
            }
            SqlSpec::Query(_) => {
                problems.at(
                    sql,
                    "in a sql task `sql:` is the SQL text and `conn:` is a key of the task; the `{conn, sql}` form belongs to sql sensors",
                );
                None
            }
        },
        (None, Some(file)) => Some(SqlSource::File(templated(file, "sql_file", problems))),
        (None, None) => {
            missing(
                keys,
                problems,
                format!(
                    "sql task `{}` has no `sql:`: give the statements, or `sql_file:` with a path relative to the DAG file",
                    keys.task_id
                ),
            );
            None
        }
    };
    let Some(conn) = conn else {
        missing(
            keys,
            problems,
            format!(
                "sql task `{}` has no `conn:`: name the connection to run it on (see `weir connections list`)",
                keys.task_id
            ),
        );
        return None;
    };
    let parameters = sql_parameters(keys, problems);
    Some(Operator::Sql(SqlTask {
        conn: conn.value.clone(),
        sql: source?,
        parameters: parameters?,
    }))
}

/// `parameters:` of a sql task: a map of names (`:name` in the SQL) to text (templated),
/// numbers, booleans or null.
fn sql_parameters(keys: &TaskKeys<'_>, problems: &mut Problems) -> Option<Vec<(String, serde_json::Value)>> {
    let Some(given) = keys.pick(|d| &d.parameters) else {
        return Some(Vec::new());
    };
    let mut parameters = Vec::new();
    let mut valid = true;
    for (name, value) in &given.value {
        let is_name = name
            .chars()
            .next()
            .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
            && name
                .chars()
                .all(|character| character.is_ascii_alphanumeric() || character == '_');
        if !is_name {
            problems.at(
                value,
                format!(
                    "parameter name `{name}` cannot be written as `:{name}` in SQL: use letters, digits and `_`, starting with a letter"
                ),
            );
            valid = false;
            continue;
        }
        match &value.value {
            serde_json::Value::Array(_) | serde_json::Value::Object(_) => {
                problems.at(
                    value,
                    format!("parameter `{name}` is a list or map, which SQL cannot bind: give text, a number, true/false or null"),
                );
                valid = false;
            }
            serde_json::Value::String(text) => {
                if let Err(error) = template::check_syntax(text) {
                    problems.at(
                        value,
                        format!(
                            "template error in `parameters.{name}`: {error}; check the {{{{ }}}} and {{% %}} pairs"
                        ),
                    );
                    valid = false;
                }
                parameters.push((name.clone(), value.value.clone()));
            }
            other => parameters.push((name.clone(), other.clone())),
        }
    }
    valid.then_some(parameters)
}

pub(super) fn transfer(keys: &TaskKeys<'_>, problems: &mut Problems) -> Option<Operator> {
    let (Some(from), Some(to)) = (keys.own.from.as_ref(), keys.own.to.as_ref()) else {
        missing(
            keys,
            problems,
            format!(
                "transfer task `{}` needs `from: {{conn, sql}}` and `to: {{conn, table}}`",
                keys.task_id
            ),
        );
        return None;
    };
    let mut complete = true;
    let mut require = |value: &Option<String>, key: &str, at: Location| -> String {
        match value {
            Some(value) if !value.trim().is_empty() => value.clone(),
            _ => {
                problems.at_location(at, format!("`{key}` is missing: transfer tasks need it"));
                complete = false;
                String::new()
            }
        }
    };
    let from_conn = require(&from.value.conn, "from.conn", from.referenced);
    let from_sql = require(&from.value.sql, "from.sql", from.referenced);
    let to_conn = require(&to.value.conn, "to.conn", to.referenced);
    let table = require(&to.value.table, "to.table", to.referenced);
    for (text, field, at) in [
        (&from_sql, "from.sql", from.referenced),
        (&table, "to.table", to.referenced),
    ] {
        if let Err(error) = template::check_syntax(text) {
            problems.at_location(at, format!("template error in `{field}`: {error}"));
        } else if let Err(error) = template::check_sql_text(field, text) {
            problems.at_location(at, error);
        }
    }
    let mode = match to.value.mode.as_deref() {
        None | Some("append") => TransferMode::Append,
        Some("replace") => TransferMode::Replace,
        Some("upsert") => TransferMode::Upsert,
        Some(other) => {
            problems.at(
                to,
                format!("unknown transfer mode `{other}`: use append, replace or upsert"),
            );
            return None;
        }
    };
    if mode == TransferMode::Upsert && to.value.keys.is_empty() {
        problems.at(
            to,
            "`mode: upsert` needs `keys:`, the columns that identify a row, e.g. `keys: [order_id]`",
        );
        return None;
    }
    let batch_size = match keys.pick(|d| &d.batch_size) {
        None => DEFAULT_BATCH_SIZE,
        Some(size) if (1..=MAX_BATCH_SIZE).contains(&size.value) => {
            usize::try_from(size.value).unwrap_or(DEFAULT_BATCH_SIZE)
        }
        Some(size) if size.value < 1 => {
            problems.at(size, "`batch_size` must be at least 1");
            return None;
        }
        Some(size) => {
            problems.at(
                size,
                format!(
                    "`batch_size` must be at most {MAX_BATCH_SIZE}, not {}: a batch of rows is held in memory",
                    size.value
                ),
            );
            return None;
        }
    };
    complete.then(|| {
        Operator::Transfer(Box::new(TransferTask {
            from_conn,
            from_sql,
            to_conn,
            table,
            mode,
            keys: to.value.keys.clone(),
            batch_size,
        }))
    })
}
