//! The `sql` and `transfer` tasks and the sql sensor's query, on top of the database engine in
//! [`crate::runtime::operators::sql`]: connection names resolved to URLs, progress to the log.

use super::{BuiltinAttempt, LogWriter, SQL_OUTPUT_ROWS};
use crate::domain::dag::{SqlSource, SqlTask, TransferMode, TransferTask};
use crate::runtime::operators::sql as engine;

pub(super) async fn run(
    attempt: &BuiltinAttempt,
    task: &SqlTask,
    log: &mut LogWriter,
) -> Result<serde_json::Value, String> {
    let url = attempt.connection(&task.conn)?;
    let SqlSource::Inline(script) = &task.sql else {
        return Err("the sql file was not read before the attempt started".to_string());
    };
    let outcome = engine::run_sql(url, script, &task.parameters, SQL_OUTPUT_ROWS, &mut |line: &str| {
        log.note(line)
    })
    .await
    .map_err(|error| error.to_string())?;
    if outcome.truncated {
        log.note(&format!(
            "the last statement returned more than {SQL_OUTPUT_ROWS} rows: the output keeps the first {SQL_OUTPUT_ROWS}"
        ));
    }
    Ok(outcome.rows)
}

/// The first column of the first row of `query` (null when there is no row).
pub(super) async fn first_value(url: &str, query: &str, log: &mut LogWriter) -> Result<serde_json::Value, String> {
    let outcome = engine::run_sql(url, query, &[], 1, &mut |line: &str| log.note(line))
        .await
        .map_err(|error| error.to_string())?;
    let first_column = outcome.columns.first();
    Ok(outcome
        .rows
        .get(0)
        .zip(first_column)
        .and_then(|(row, column)| row.get(column))
        .cloned()
        .unwrap_or(serde_json::Value::Null))
}

pub(super) async fn transfer(
    attempt: &BuiltinAttempt,
    task: &TransferTask,
    log: &mut LogWriter,
) -> Result<serde_json::Value, String> {
    let spec = engine::TransferSpec {
        from_url: attempt.connection(&task.from_conn)?.to_string(),
        from_sql: task.from_sql.clone(),
        to_url: attempt.connection(&task.to_conn)?.to_string(),
        table: task.table.clone(),
        mode: match task.mode {
            TransferMode::Append => engine::TransferMode::Append,
            TransferMode::Replace => engine::TransferMode::Replace,
            TransferMode::Upsert => engine::TransferMode::Upsert,
        },
        keys: task.keys.clone(),
        batch_size: task.batch_size,
    };
    let moved = engine::transfer(&spec, &mut |line: &str| log.note(line))
        .await
        .map_err(|error| error.to_string())?;
    log.note(&format!("{moved} rows moved into {}", task.table));
    Ok(serde_json::Value::from(moved))
}
