//! The `import_error` table: DAG files that failed to parse or validate, with where and why.

use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, Row};

use super::{StorageError, from_micros, micros};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportError {
    pub id: i64,
    pub filename: String,
    pub line: u32,
    pub column: u32,
    pub message: String,
    pub timestamp: DateTime<Utc>,
}

/// One problem to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewImportError {
    pub filename: String,
    pub line: u32,
    pub column: u32,
    pub message: String,
}

/// Replaces the stored import errors with the current set (the loader always knows all of them).
pub async fn replace_all(
    connection: &mut AnyConnection,
    errors: &[NewImportError],
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    sqlx::query("DELETE FROM import_error")
        .execute(&mut *connection)
        .await?;
    for error in errors {
        sqlx::query("INSERT INTO import_error (filename, line, col, message, timestamp) VALUES ($1, $2, $3, $4, $5)")
            .bind(&error.filename)
            .bind(i64::from(error.line))
            .bind(i64::from(error.column))
            .bind(&error.message)
            .bind(micros(now))
            .execute(&mut *connection)
            .await?;
    }
    Ok(())
}

pub async fn list(connection: &mut AnyConnection) -> Result<Vec<ImportError>, StorageError> {
    let rows = sqlx::query(
        "SELECT id, filename, line, col, message, timestamp FROM import_error ORDER BY filename, line, col",
    )
    .fetch_all(connection)
    .await?;
    rows.into_iter()
        .map(|row| {
            Ok(ImportError {
                id: row.try_get("id")?,
                filename: row.try_get("filename")?,
                line: u32::try_from(row.try_get::<i64, _>("line")?).unwrap_or(0),
                column: u32::try_from(row.try_get::<i64, _>("col")?).unwrap_or(0),
                message: row.try_get("message")?,
                timestamp: from_micros(row.try_get("timestamp")?),
            })
        })
        .collect()
}

pub async fn get(connection: &mut AnyConnection, id: i64) -> Result<Option<ImportError>, StorageError> {
    Ok(list(connection).await?.into_iter().find(|error| error.id == id))
}
