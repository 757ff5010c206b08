//! What can go wrong in a `sql` or `transfer` task, worded for the person reading the task log.
//! No message carries a password: URLs are redacted and connection errors scrubbed.

/// Why a `sql` or `transfer` task failed.
#[derive(Debug, thiserror::Error)]
pub enum SqlTaskError {
    #[error(
        "`{url}` is not a database URL weir can use: it must start with sqlite:, postgres:, postgresql:, mysql: or mariadb:"
    )]
    UnsupportedUrl { url: String },

    #[error("cannot connect to {target}: {message}")]
    Connect { target: String, message: String },

    #[error("the SQL script has no statements (it is empty or only comments)")]
    EmptyScript,

    #[error(
        "statement {number} of {total} failed, so the whole script was rolled back: {message}\n  the statement: {statement}"
    )]
    Statement {
        number: usize,
        total: usize,
        message: String,
        /// The statement's first line(s), shortened.
        statement: String,
    },

    #[error(
        "the SQL uses `:{name}`, which is not among the task's parameters ({known}): add it under `parameters:` or fix the name"
    )]
    UnknownParameter { name: String, known: String },

    #[error("parameter `{name}` cannot be bound: {problem}")]
    BadParameter { name: String, problem: String },

    #[error("starting a transaction failed: {message}")]
    Begin { message: String },

    #[error("committing the transaction failed, nothing was saved: {message}")]
    Commit { message: String },

    #[error(
        "the database file {file} stayed locked by another connection: {during} waited {waited} (busy_timeout {busy_timeout}) and gave up, so nothing was saved ({message}). Something keeps a write transaction open that long: find it, or give the connection a longer wait with the extra busy_timeout, e.g. busy_timeout=5m"
    )]
    Locked {
        file: String,
        /// What the task was doing: `starting a write transaction`, `statement 2 of 3`.
        during: String,
        waited: String,
        busy_timeout: String,
        message: String,
    },

    #[error("column `{column}` has type {type_name}, which weir cannot move; cast it in the query, e.g. {suggestion}")]
    UnsupportedType {
        column: String,
        type_name: String,
        suggestion: String,
    },

    #[error("column `{column}` (type {type_name}) holds a value weir cannot read: {problem}")]
    BadValue {
        column: String,
        type_name: String,
        problem: String,
    },

    #[error("the source query failed: {message}")]
    Source { message: String },

    #[error("the source query returns no columns; a transfer reads rows from a query such as `SELECT * FROM orders`")]
    NoColumns,

    #[error("the source query returns column `{column}` twice; give one of them another name with AS")]
    DuplicateColumn { column: String },

    #[error("`{given}` is not a transfer mode: use append, replace or upsert")]
    UnknownMode { given: String },

    #[error("mode upsert needs `keys`: the columns that identify a row, e.g. keys: [id]")]
    UpsertWithoutKeys,

    #[error("upsert key column(s) {missing:?} are not among the source query's columns {available:?}")]
    KeysNotInSource {
        missing: Vec<String>,
        available: Vec<String>,
    },

    #[error("batch_size must be at least 1")]
    ZeroBatchSize,

    #[error("`{table}` is not a table name weir can use: {reason}")]
    InvalidTableName { table: String, reason: String },

    #[error(
        "upsert into {table} needs a PRIMARY KEY or UNIQUE index on exactly ({keys}); without one MySQL would insert duplicates. Add one, or let the transfer create the table"
    )]
    NoUniqueKey { table: String, keys: String },

    #[error("preparing target table {table} failed, nothing was loaded: {message}")]
    Target { table: String, message: String },

    #[error("loading batch {batch} into {table} failed, so the whole load was rolled back: {message}")]
    Load { table: String, batch: u64, message: String },
}

/// The database's own message for an error: for a database error its text and code, without the
/// generic prefix sqlx adds.
pub(super) fn database_message(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Database(database_error) => {
            let mut message = database_error.message().to_string();
            if let Some(postgres) = database_error.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                if let Some(detail) = postgres.detail() {
                    message.push_str(&format!("; detail: {detail}"));
                }
                if let Some(hint) = postgres.hint() {
                    message.push_str(&format!("; hint: {hint}"));
                }
            }
            if let Some(code) = database_error.code() {
                message.push_str(&format!(" (code {code})"));
            }
            message
        }
        other => other.to_string(),
    }
}

/// The first 200 characters of a statement on one line, for error messages.
pub(super) fn statement_preview(statement: &str) -> String {
    let one_line = statement.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 200 {
        format!("{}...", one_line.chars().take(197).collect::<String>())
    } else {
        one_line
    }
}
