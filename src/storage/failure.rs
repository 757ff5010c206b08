//! What a failed database call means for the loop that made it: the one place that tells an
//! outage (wait and try again) from a database weir cannot work with (stop) and from a failure
//! of this one operation (report it and carry on).

use super::StorageError;

/// How a database error is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The database is unreachable or busy for now (network cut, server restart, a SQLite file
    /// locked by another process): the same call is expected to work later, so loops retry it
    /// with a backoff and keep what they could not record yet.
    Transient,
    /// The database is not one this weir can use (its schema moved ahead or lost a table, the
    /// database or its credentials are gone, the pool was closed): retrying cannot help, so a
    /// daemon stops with a non-zero exit status and a supervisor restarts it.
    Fatal,
    /// This operation failed (a constraint, a value weir cannot read): the loop reports it and
    /// goes on with its other work.
    Operation,
}

impl StorageError {
    pub fn class(&self) -> ErrorClass {
        match self {
            StorageError::Database(error) => class_of_sqlx(error),
            StorageError::SchemaBehind { .. } | StorageError::SchemaAhead { .. } => ErrorClass::Fatal,
            // Only start-up opens the database; a server that is not up yet comes up later.
            StorageError::Open { .. } => ErrorClass::Transient,
            StorageError::Conflict(_)
            | StorageError::NotFound(_)
            | StorageError::Corrupt(_)
            | StorageError::Undecryptable(_)
            | StorageError::UndecryptableVariable(_) => ErrorClass::Operation,
        }
    }

    /// Whether waiting and trying again is expected to work (see [`ErrorClass::Transient`]).
    pub fn is_transient(&self) -> bool {
        self.class() == ErrorClass::Transient
    }
}

/// The class of an error from sqlx.
pub fn class_of_sqlx(error: &sqlx::Error) -> ErrorClass {
    match error {
        // Connection refused, reset or closed mid-query; a TLS handshake cut short; a message
        // cut in half by a dropped connection; no connection free within the acquire timeout; a
        // SQLite connection's worker thread gone (the pool opens a new one).
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed => ErrorClass::Transient,
        // The code of a SQLite error is its extended result code, a number; PostgreSQL's is a
        // SQLSTATE, which may be digits too ("08006"): the driver tells them apart.
        sqlx::Error::Database(error) if error.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() => {
            let code = error.code().and_then(|code| code.parse().ok()).unwrap_or_default();
            class_of_sqlite(code, error.message())
        }
        sqlx::Error::Database(error) => error
            .code()
            .map_or(ErrorClass::Operation, |code| class_of_sqlstate(&code)),
        // A closed pool means this process is shutting down; a column the query names is
        // missing from the table: the schema is not this weir's.
        sqlx::Error::PoolClosed | sqlx::Error::ColumnNotFound(_) | sqlx::Error::Configuration(_) => ErrorClass::Fatal,
        _ => ErrorClass::Operation,
    }
}

/// The class of a PostgreSQL error, from its SQLSTATE code.
pub fn class_of_sqlstate(code: &str) -> ErrorClass {
    match code {
        // Connection exceptions (class 08), the server shutting down or starting up, too many
        // connections, and the conflicts a transaction is meant to be retried after.
        _ if code.starts_with("08") => ErrorClass::Transient,
        "57P01" | "57P02" | "57P03" | "53300" | "40001" | "40P01" | "55P03" => ErrorClass::Transient,
        // Undefined table, column or function, a missing schema or database, bad credentials.
        "42P01" | "42703" | "42883" | "3F000" | "3D000" | "28000" | "28P01" => ErrorClass::Fatal,
        _ => ErrorClass::Operation,
    }
}

/// The class of a SQLite error, from its extended result code (the primary code is its low
/// byte) and message.
pub fn class_of_sqlite(code: u32, message: &str) -> ErrorClass {
    const SQLITE_ERROR: u32 = 1;
    const SQLITE_BUSY: u32 = 5;
    const SQLITE_LOCKED: u32 = 6;
    const SQLITE_CORRUPT: u32 = 11;
    const SQLITE_NOTADB: u32 = 26;
    match code & 0xff {
        SQLITE_BUSY | SQLITE_LOCKED => ErrorClass::Transient,
        SQLITE_CORRUPT | SQLITE_NOTADB => ErrorClass::Fatal,
        // The generic code also reports a schema that is not this weir's.
        SQLITE_ERROR if message.contains("no such table") || message.contains("no such column") => ErrorClass::Fatal,
        _ => ErrorClass::Operation,
    }
}

/// The class of the first database error in `error`'s chain of causes; an error that does not
/// come from the database is a failure of its operation.
pub fn class_of(error: &(dyn std::error::Error + 'static)) -> ErrorClass {
    let mut cause = Some(error);
    while let Some(current) = cause {
        if let Some(storage) = current.downcast_ref::<StorageError>() {
            return storage.class();
        }
        if let Some(sqlx_error) = current.downcast_ref::<sqlx::Error>() {
            return class_of_sqlx(sqlx_error);
        }
        cause = current.source();
    }
    ErrorClass::Operation
}

/// [`class_of`] for an `anyhow` error, whose context layers hide the cause from `source()`.
pub fn class_of_anyhow(error: &anyhow::Error) -> ErrorClass {
    for cause in error.chain() {
        if let Some(storage) = cause.downcast_ref::<StorageError>() {
            return storage.class();
        }
        if let Some(sqlx_error) = cause.downcast_ref::<sqlx::Error>() {
            return class_of_sqlx(sqlx_error);
        }
    }
    ErrorClass::Operation
}

#[cfg(test)]
mod tests {
    use anyhow::Context;

    use super::*;

    #[test]
    fn a_lost_connection_or_a_locked_file_is_transient() {
        let reset = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert_eq!(class_of_sqlx(&reset), ErrorClass::Transient);
        assert_eq!(class_of_sqlx(&sqlx::Error::PoolTimedOut), ErrorClass::Transient);
        // SQLITE_BUSY, SQLITE_LOCKED and an extended busy code (SQLITE_BUSY_SNAPSHOT = 517).
        for code in [5, 6, 517] {
            assert_eq!(
                class_of_sqlite(code, "database is locked"),
                ErrorClass::Transient,
                "{code}"
            );
        }
        // PostgreSQL: admin shutdown, cannot connect now, a connection failure (class 08).
        for code in ["57P01", "57P03", "08006", "08001", "40001"] {
            assert_eq!(class_of_sqlstate(code), ErrorClass::Transient, "{code}");
        }
    }

    #[test]
    fn a_schema_that_is_not_weirs_is_fatal() {
        assert_eq!(class_of_sqlite(1, "no such table: weir_meta"), ErrorClass::Fatal);
        assert_eq!(class_of_sqlstate("42P01"), ErrorClass::Fatal);
        let ahead = StorageError::SchemaAhead {
            current: 9,
            supported: 7,
        };
        assert_eq!(ahead.class(), ErrorClass::Fatal);
        assert_eq!(class_of_sqlx(&sqlx::Error::PoolClosed), ErrorClass::Fatal);
    }

    #[test]
    fn a_constraint_or_an_unreadable_value_fails_only_its_operation() {
        // UNIQUE constraint (SQLITE_CONSTRAINT_UNIQUE = 2067), PostgreSQL's unique_violation.
        assert_eq!(class_of_sqlite(2067, "UNIQUE constraint failed"), ErrorClass::Operation);
        assert_eq!(class_of_sqlstate("23505"), ErrorClass::Operation);
        assert_eq!(
            StorageError::Corrupt("state `nope`".to_string()).class(),
            ErrorClass::Operation
        );
        assert!(!StorageError::Conflict("taken".to_string()).is_transient());
    }

    #[test]
    fn the_class_is_found_under_context_layers() {
        let cut = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
        let error = Err::<(), _>(StorageError::from(cut))
            .context("recording executor events")
            .context("scheduler step")
            .unwrap_err();
        assert_eq!(class_of_anyhow(&error), ErrorClass::Transient);
        let plain = anyhow::anyhow!("the planner created a task the DAG lacks");
        assert_eq!(class_of_anyhow(&plain), ErrorClass::Operation);
        let storage = StorageError::from(sqlx::Error::PoolTimedOut);
        assert_eq!(class_of(&storage), ErrorClass::Transient);
    }
}
