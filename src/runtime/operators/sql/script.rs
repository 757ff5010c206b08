//! The `sql` task: every statement of a script in one transaction, the rows of the last one as
//! JSON.

use std::time::Instant;

use futures_util::TryStreamExt;
use sqlx::mysql::MySql;
use sqlx::postgres::Postgres;
use sqlx::sqlite::Sqlite;
use sqlx::{Connection, Either, Executor, IntoArguments};

use super::cell::ColumnSpec;
use super::driver::{Driver, decode_row_for_output, row_columns};
use super::error::{database_message, statement_preview};
use super::lock::{LockWait, begin_write, reads_only};
use super::parameters::{BoundStatement, bind_statement, cell_of};
use super::split::split_statements;
use super::url::{connect_mysql, connect_postgres, connect_sqlite, describe_target};
use super::{Backend, SqlTaskError, backend_of};

/// What a script did.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlOutcome {
    /// The rows of the last statement, at most the cap, as a JSON array of objects (column name
    /// to value; serde_json orders the keys by name, see `columns` for the query's order).
    pub rows: serde_json::Value,
    /// The column names of those rows, in the query's order (empty when it returned none).
    pub columns: Vec<String>,
    /// Whether the last statement returned more rows than the cap.
    pub truncated: bool,
    /// How many statements ran.
    pub statements: usize,
    /// For each statement, the rows it inserted, updated or deleted; for a last statement that
    /// returned rows, how many it returned (all of them, also past the cap).
    pub rows_affected: Vec<u64>,
}

/// Runs every statement of `script` in ONE transaction on `url`: all of them take effect or,
/// when one fails, none (the error names the statement's number and the database's message).
/// Statements are split on `;` outside strings, quoted names, dollar quotes and comments.
/// The output is the rows of the last statement, at most `row_cap` of them.
///
/// `parameters` (name, value) are bound wherever a statement says `:name`: their values never
/// become SQL text, so a value from a trigger's conf cannot change what the statement does.
///
/// On MySQL/MariaDB, DDL (CREATE, ALTER, DROP, TRUNCATE, ...) commits implicitly, a rule of the
/// server that no client can change: work before such a statement cannot be rolled back there.
pub async fn run_sql(
    url: &str,
    script: &str,
    parameters: &[(String, serde_json::Value)],
    row_cap: usize,
    log: &mut (dyn FnMut(&str) + Send),
) -> Result<SqlOutcome, SqlTaskError> {
    let backend = backend_of(url)?;
    let cells = parameters
        .iter()
        .map(|(name, value)| Ok((name.clone(), cell_of(name, value)?)))
        .collect::<Result<Vec<_>, SqlTaskError>>()?;
    let statements = split_statements(script, backend)
        .iter()
        .map(|statement| bind_statement(statement, backend, &cells))
        .collect::<Result<Vec<_>, SqlTaskError>>()?;
    if statements.is_empty() {
        return Err(SqlTaskError::EmptyScript);
    }
    match backend {
        Backend::Sqlite => {
            let (mut connection, wait) = connect_sqlite(url).await?;
            log(&format!("connected to {} ({})", describe_target(url), wait.describe()));
            let outcome = {
                let begun = if reads_only(statements.iter().map(|statement| statement.sql.as_str())) {
                    connection.begin().await.map_err(begin_error)
                } else {
                    begin_write(&mut connection, &wait, log).await
                };
                match begun {
                    Ok(transaction) => {
                        run_statements::<Sqlite>(transaction, &statements, row_cap, Some(&wait), log).await
                    }
                    Err(error) => Err(error),
                }
            };
            let _ = connection.close().await;
            outcome
        }
        Backend::Postgres => {
            let mut connection = connect_postgres(url).await?;
            log(&format!("connected to {}", describe_target(url)));
            let outcome = match connection.begin().await.map_err(begin_error) {
                Ok(transaction) => run_statements::<Postgres>(transaction, &statements, row_cap, None, log).await,
                Err(error) => Err(error),
            };
            let _ = connection.close().await;
            outcome
        }
        Backend::MySql => {
            let mut connection = connect_mysql(url).await?;
            log(&format!("connected to {}", describe_target(url)));
            let outcome = match connection.begin().await.map_err(begin_error) {
                Ok(transaction) => run_statements::<MySql>(transaction, &statements, row_cap, None, log).await,
                Err(error) => Err(error),
            };
            let _ = connection.close().await;
            outcome
        }
    }
}

/// What the last statement gave.
struct LastStatement {
    rows: Vec<serde_json::Value>,
    columns: Vec<String>,
    returned: u64,
    affected: u64,
}

fn begin_error(error: sqlx::Error) -> SqlTaskError {
    SqlTaskError::Begin {
        message: database_message(&error),
    }
}

/// Runs the statements in `transaction` and commits it. `waits` (SQLite only) turns a lock that
/// stayed taken into an error naming the file and the wait.
async fn run_statements<DB>(
    mut transaction: sqlx::Transaction<'_, DB>,
    statements: &[BoundStatement],
    row_cap: usize,
    waits: Option<&LockWait>,
    log: &mut (dyn FnMut(&str) + Send),
) -> Result<SqlOutcome, SqlTaskError>
where
    DB: Driver,
    for<'e> &'e mut DB::Connection: Executor<'e, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
{
    let total = statements.len();
    let mut rows_affected = Vec::with_capacity(total);
    let mut last = None;
    for (index, statement) in statements.iter().enumerate() {
        let number = index + 1;
        let started = Instant::now();
        let failed = |error: sqlx::Error| {
            LockWait::explain(
                waits,
                error,
                &format!("statement {number} of {total}"),
                started,
                |error| SqlTaskError::Statement {
                    number,
                    total,
                    message: database_message(&error),
                    statement: statement_preview(&statement.sql),
                },
            )
        };
        let step = if number < total {
            arguments::<DB>(statement)
                .map_err(sqlx::Error::Encode)
                .map_err(failed)?
                .persistent(false)
                .execute(&mut *transaction)
                .await
                .map(|result| DB::rows_affected(&result))
                .map_err(failed)
        } else {
            run_last::<DB>(&mut transaction, statement, row_cap, failed)
                .await
                .map(|outcome| {
                    let count = if outcome.returned > 0 {
                        outcome.returned
                    } else {
                        outcome.affected
                    };
                    last = Some(outcome);
                    count
                })
        };
        match step {
            Ok(count) => {
                rows_affected.push(count);
                log(&step_line(number, total, count, last.as_ref(), row_cap));
            }
            Err(error) => {
                let _ = transaction.rollback().await;
                log(&format!("statement {number} of {total} failed: rolled back"));
                return Err(error);
            }
        }
    }
    let committing = Instant::now();
    transaction.commit().await.map_err(|error| {
        LockWait::explain(waits, error, "committing", committing, |error| SqlTaskError::Commit {
            message: database_message(&error),
        })
    })?;
    log(&format!("committed {total} statement(s)"));
    let last = last.unwrap_or(LastStatement {
        rows: Vec::new(),
        columns: Vec::new(),
        returned: 0,
        affected: 0,
    });
    Ok(SqlOutcome {
        truncated: last.returned > last.rows.len() as u64,
        rows: serde_json::Value::Array(last.rows),
        columns: last.columns,
        statements: total,
        rows_affected,
    })
}

/// The statement as a query with its parameters bound.
fn arguments<DB>(
    statement: &BoundStatement,
) -> Result<sqlx::query::Query<'static, DB, DB::Arguments>, sqlx::error::BoxDynError>
where
    DB: Driver,
    DB::Arguments: IntoArguments<DB>,
{
    let mut arguments = DB::Arguments::default();
    for value in &statement.values {
        let kind = value.kind().unwrap_or(super::ColumnKind::Text);
        DB::bind(&mut arguments, value.clone(), kind)?;
    }
    Ok(sqlx::query_with::<DB, _>(
        sqlx::AssertSqlSafe(statement.sql.clone()),
        arguments,
    ))
}

fn step_line(number: usize, total: usize, count: u64, last: Option<&LastStatement>, row_cap: usize) -> String {
    match last {
        Some(last) if number == total && last.returned > 0 => {
            let kept = if last.returned > row_cap as u64 {
                format!(" (the first {row_cap} kept)")
            } else {
                String::new()
            };
            format!("statement {number} of {total}: {} rows returned{kept}", last.returned)
        }
        _ => format!("statement {number} of {total}: {count} rows affected"),
    }
}

/// Runs the last statement, keeping the first `row_cap` rows as JSON and counting the rest
/// without decoding them.
async fn run_last<DB>(
    transaction: &mut sqlx::Transaction<'_, DB>,
    statement: &BoundStatement,
    row_cap: usize,
    failed: impl Fn(sqlx::Error) -> SqlTaskError,
) -> Result<LastStatement, SqlTaskError>
where
    DB: Driver,
    for<'e> &'e mut DB::Connection: Executor<'e, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
{
    let query = arguments::<DB>(statement)
        .map_err(sqlx::Error::Encode)
        .map_err(&failed)?
        .persistent(false);
    let mut steps = (&mut **transaction).fetch_many(query);
    let mut last = LastStatement {
        rows: Vec::new(),
        columns: Vec::new(),
        returned: 0,
        affected: 0,
    };
    let mut specs: Option<Vec<ColumnSpec>> = None;
    while let Some(step) = steps.try_next().await.map_err(&failed)? {
        match step {
            Either::Left(result) => last.affected += DB::rows_affected(&result),
            Either::Right(row) => {
                last.returned += 1;
                let columns = specs.get_or_insert_with(|| row_columns::<DB>(&row));
                if last.rows.len() >= row_cap {
                    continue;
                }
                let cells = decode_row_for_output::<DB>(&row, columns)?;
                let object: serde_json::Map<String, serde_json::Value> = columns
                    .iter()
                    .zip(&cells)
                    .map(|(column, cell)| (column.name.clone(), cell.to_json()))
                    .collect();
                last.rows.push(serde_json::Value::Object(object));
            }
        }
    }
    last.columns = specs
        .map(|columns| columns.into_iter().map(|column| column.name).collect())
        .unwrap_or_default();
    Ok(last)
}
