//! The engine behind the `sql` and `transfer` task types (SPEC §5.3, §5.4): run a script in one
//! transaction on SQLite, PostgreSQL or MySQL/MariaDB, and stream the rows of a query from one
//! database into a table of another.
//!
//! Values cross databases as [`Cell`]s, decoded by each column's type with sqlx's concrete
//! drivers (the `Any` driver cannot carry decimals, dates or timestamps). Progress goes to the
//! caller's `log` as lines for the task log; no message or log line carries a password.

mod cell;
mod dialect;
mod driver;
mod error;
mod lock;
mod parameters;
mod script;
mod split;
mod transfer;
mod url;

pub use cell::{Cell, ColumnKind, ColumnSpec, DecimalShape};
pub use dialect::{TableName, column_type, rows_per_insert};
pub use error::SqlTaskError;
pub use lock::DEFAULT_BUSY_TIMEOUT;
pub use parameters::{BoundStatement, bind_statement, cell_of};
pub use script::{SqlOutcome, run_sql};
pub use split::split_statements;
pub use transfer::{TransferMode, TransferSpec, transfer};
pub use url::{Backend, backend_of, describe_target, redact_url};

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}

    #[test]
    fn the_task_futures_can_be_spawned_on_a_multi_threaded_runtime() {
        let mut log = |_: &str| {};
        let script = run_sql("sqlite::memory:", "SELECT 1", &[], 10, &mut log);
        assert_send(&script);
        drop(script);
        let spec = TransferSpec {
            from_url: "sqlite::memory:".into(),
            from_sql: "SELECT 1 AS one".into(),
            to_url: "sqlite::memory:".into(),
            table: "t".into(),
            mode: TransferMode::Append,
            keys: vec![],
            batch_size: 10,
        };
        let moving = transfer(&spec, &mut log);
        assert_send(&moving);
    }
}
