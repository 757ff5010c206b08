//! The database engine behind the `sql` and `transfer` task types (the in-process task types
//! themselves live in `runtime::builtin`).

pub mod sql;
