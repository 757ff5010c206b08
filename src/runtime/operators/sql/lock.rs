//! Waiting for another connection's lock on a SQLite file instead of failing: every connection
//! waits up to a busy timeout (the `busy_timeout` connection extra, 30 s unless set), files are
//! switched to WAL where they allow it (readers then never wait for the writer), a transaction
//! that writes takes the write lock before its first statement, and a lock held past the timeout
//! fails with the file's name and how long the task waited.

use std::time::{Duration, Instant};

use sqlx::sqlite::{Sqlite, SqliteConnection};
use sqlx::{Connection, Executor, Transaction};

use super::SqlTaskError;
use super::error::database_message;
use crate::domain::duration::{format_duration, parse_duration};

/// How long a SQLite connection waits for another connection's lock unless its URL (or the
/// connection's `extra`) says `busy_timeout=...`.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The name of the URL parameter (a connection extra) that sets the wait.
const BUSY_TIMEOUT_PARAMETER: &str = "busy_timeout";

/// How a SQLite connection waits for a lock another connection holds, kept to name in messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LockWait {
    /// The database file as the URL names it.
    pub(super) file: String,
    pub(super) busy_timeout: Duration,
    /// `wal` where the file allows it; `delete` (SQLite's default) or `memory` otherwise.
    pub(super) journal_mode: String,
}

/// The URL without its `busy_timeout` parameter (sqlx refuses parameters it does not know) and
/// the wait it sets. `Err` explains a value that is not a duration.
pub(super) fn take_busy_timeout(url: &str) -> Result<(String, Duration), String> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), DEFAULT_BUSY_TIMEOUT));
    };
    let mut busy_timeout = DEFAULT_BUSY_TIMEOUT;
    let mut kept = Vec::new();
    for parameter in query.split('&').filter(|parameter| !parameter.is_empty()) {
        match parameter.split_once('=') {
            Some((key, value)) if key.eq_ignore_ascii_case(BUSY_TIMEOUT_PARAMETER) => {
                let value = percent_encoding::percent_decode_str(value).decode_utf8_lossy();
                busy_timeout = parse_duration(&value).map_err(|error| {
                    format!("{BUSY_TIMEOUT_PARAMETER}: {error} (how long to wait for another connection's lock)")
                })?;
            }
            _ => kept.push(parameter),
        }
    }
    if kept.is_empty() {
        Ok((base.to_string(), busy_timeout))
    } else {
        Ok((format!("{base}?{}", kept.join("&")), busy_timeout))
    }
}

/// Whether `error` is SQLite finding the database locked (SQLITE_BUSY or SQLITE_LOCKED, any of
/// their extended codes).
pub(super) fn is_busy(error: &sqlx::Error) -> bool {
    let sqlx::Error::Database(database_error) = error else {
        return false;
    };
    let Some(code) = database_error.code().and_then(|code| code.parse::<i64>().ok()) else {
        return false;
    };
    matches!(code & 0xff, 5 | 6)
}

/// Whether every statement only reads (starts with SELECT, VALUES or EXPLAIN after comments and
/// parentheses): such a transaction takes no write lock, so it may begin deferred. Anything else,
/// `WITH` included (it may end in an INSERT), counts as writing.
pub(super) fn reads_only<'s>(statements: impl IntoIterator<Item = &'s str>) -> bool {
    statements.into_iter().all(|statement| {
        let keyword = first_keyword(statement).to_ascii_uppercase();
        matches!(keyword.as_str(), "SELECT" | "VALUES" | "EXPLAIN")
    })
}

fn first_keyword(statement: &str) -> &str {
    let mut rest = statement;
    loop {
        let trimmed = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '(');
        if let Some(comment) = trimmed.strip_prefix("--") {
            rest = comment.split_once('\n').map_or("", |(_, after)| after);
        } else if let Some(comment) = trimmed.strip_prefix("/*") {
            rest = comment.split_once("*/").map_or("", |(_, after)| after);
        } else {
            let end = trimmed
                .find(|c: char| !c.is_ascii_alphabetic())
                .unwrap_or(trimmed.len());
            return &trimmed[..end];
        }
    }
}

impl LockWait {
    /// `journal wal, busy_timeout 30s`, for the log line that says where a task connected.
    pub(super) fn describe(&self) -> String {
        format!(
            "journal {}, busy_timeout {}",
            self.journal_mode,
            format_duration(self.busy_timeout)
        )
    }

    /// `Locked` when `error` is the lock staying taken (`waits` is set only for SQLite), else
    /// `otherwise(error)`.
    pub(super) fn explain(
        waits: Option<&LockWait>,
        error: sqlx::Error,
        during: &str,
        started: Instant,
        otherwise: impl FnOnce(sqlx::Error) -> SqlTaskError,
    ) -> SqlTaskError {
        match waits {
            Some(wait) if is_busy(&error) => wait.locked(during, started, &error),
            _ => otherwise(error),
        }
    }

    fn locked(&self, during: &str, started: Instant, error: &sqlx::Error) -> SqlTaskError {
        SqlTaskError::Locked {
            file: self.file.clone(),
            during: during.to_string(),
            waited: format_duration(Duration::from_millis(
                u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            )),
            busy_timeout: format_duration(self.busy_timeout),
            message: database_message(error),
        }
    }

    /// Switches the file to WAL, where readers never wait for the writer nor it for them, when it
    /// is not in WAL yet and allows it. A file that does not (in memory, read-only, on a file
    /// system without shared memory, or in use by another connection right now: the switch
    /// cannot wait for a lock) stays as it is, and its readers and writers wait for each other.
    /// Returns the journal mode the file is in.
    pub(super) async fn prefer_wal(connection: &mut SqliteConnection, busy_timeout: Duration) -> String {
        let _ = set_busy_timeout(connection, Duration::ZERO).await;
        let switched: Result<String, sqlx::Error> = sqlx::query_scalar("PRAGMA journal_mode = WAL")
            .fetch_one(&mut *connection)
            .await;
        let _ = set_busy_timeout(connection, busy_timeout).await;
        match switched {
            Ok(mode) => mode.to_ascii_lowercase(),
            Err(_) => sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(&mut *connection)
                .await
                .map(|mode: String| mode.to_ascii_lowercase())
                .unwrap_or_else(|_| "unknown".to_string()),
        }
    }
}

async fn set_busy_timeout(connection: &mut SqliteConnection, timeout: Duration) -> Result<(), sqlx::Error> {
    let millis = timeout.as_millis().min(i32::MAX as u128);
    connection
        .execute(sqlx::AssertSqlSafe(format!("PRAGMA busy_timeout = {millis}")))
        .await
        .map(|_| ())
}

/// Begins a transaction that writes with `BEGIN IMMEDIATE`, which takes the write lock before the
/// first statement: SQLite refuses at once, without waiting, a transaction that read first and
/// then wants to write while another connection writes, so a deferred transaction could fail
/// however long the busy timeout. When another connection holds the lock, the log says so, then
/// the transaction waits up to the busy timeout; past it, the error names the file and the wait.
pub(super) async fn begin_write<'c>(
    connection: &'c mut SqliteConnection,
    wait: &LockWait,
    log: &mut (dyn FnMut(&str) + Send),
) -> Result<Transaction<'c, Sqlite>, SqlTaskError> {
    let begin_error = |error: sqlx::Error| SqlTaskError::Begin {
        message: database_message(&error),
    };
    // A first try that does not wait, only to tell the log when the file is locked.
    set_busy_timeout(connection, Duration::ZERO)
        .await
        .map_err(begin_error)?;
    let free = match connection.begin_with("BEGIN IMMEDIATE").await {
        Ok(probe) => {
            probe.rollback().await.map_err(begin_error)?;
            true
        }
        Err(error) if is_busy(&error) => false,
        Err(error) => return Err(begin_error(error)),
    };
    set_busy_timeout(connection, wait.busy_timeout)
        .await
        .map_err(begin_error)?;
    if !free {
        log(&format!(
            "the database file {} is locked by another connection: waiting up to {} for it (busy_timeout)",
            wait.file,
            format_duration(wait.busy_timeout)
        ));
    }
    let started = Instant::now();
    connection
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(|error| LockWait::explain(Some(wait), error, "starting a write transaction", started, begin_error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_busy_timeout_parameter_is_read_and_removed_from_the_url() {
        assert_eq!(
            take_busy_timeout("sqlite:///data/w.db").unwrap(),
            ("sqlite:///data/w.db".to_string(), DEFAULT_BUSY_TIMEOUT)
        );
        assert_eq!(
            take_busy_timeout("sqlite:///data/w.db?busy_timeout=2m").unwrap(),
            ("sqlite:///data/w.db".to_string(), Duration::from_secs(120))
        );
        assert_eq!(
            take_busy_timeout("sqlite:///data/w.db?mode=rwc&busy_timeout=500ms&cache=shared").unwrap(),
            (
                "sqlite:///data/w.db?mode=rwc&cache=shared".to_string(),
                Duration::from_millis(500)
            )
        );
    }

    #[test]
    fn only_scripts_that_only_read_begin_without_the_write_lock() {
        assert!(reads_only([
            "SELECT 1",
            "  -- a note\n/* more */ (select 2)",
            "values (1)"
        ]));
        assert!(reads_only(["EXPLAIN QUERY PLAN SELECT 1"]));
        assert!(!reads_only(["SELECT 1", "DELETE FROM t"]));
        assert!(!reads_only(["CREATE TABLE IF NOT EXISTS t (a INT)"]));
        assert!(!reads_only(["WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x"]));
        assert!(!reads_only(["-- only a comment"]));
    }

    #[test]
    fn a_busy_timeout_that_is_no_duration_is_refused_with_an_example() {
        let error = take_busy_timeout("sqlite:///w.db?busy_timeout=30").unwrap_err();
        assert!(error.contains("busy_timeout") && error.contains("30s"), "{error}");
    }
}
