//! Everything that runs: the scheduler loop, the executors and child processes, the DAG folder
//! loader. Every loop has a public single-step function that tests call directly.

pub mod alerts;
pub mod attempt;
pub mod builtin;
pub mod connection_probe;
pub mod connections;
pub mod datasets;
pub mod executor;
pub mod exit_record;
pub mod health;
pub mod loader;
pub mod masking;
pub mod metrics;
pub mod operations;
pub mod operators;
pub mod process;
pub mod recovery;
pub mod scheduler;
pub mod scheduler_lock;
pub mod users;
