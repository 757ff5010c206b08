//! Database engines behind the in-process task types.

pub mod sql;
