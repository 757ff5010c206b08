//! Task types that weir runs in its own process instead of a child process: SQL scripts and transfers.
pub mod sql;
