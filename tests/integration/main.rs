//! The one integration test binary: each module is a surface tested against real dependencies.

// Helpers outside #[test] functions unwrap too: a failed set-up step should fail the test loudly.
#![allow(clippy::unwrap_used)]

mod airflow_client;
mod alerts;
mod api;
mod attempt_logs;
mod audit;
mod auth;
mod backfill;
mod browser;
mod browser_safety;
mod cli;
mod cli_config;
mod cli_connections;
mod cli_refusals;
mod crash;
mod daemon;
mod datasets;
mod date_ranges;
mod e2e;
mod examples;
mod fresh_values;
mod generated_docs;
mod hostile_dags;
mod hostile_input;
mod in_process_daemon;
mod injection;
mod outage;
mod owners;
mod retention;
mod schemathesis;
mod secrets_at_rest;
mod sql_tasks;
mod sqlite_locks;
mod storage;
mod support;
mod task_log_walk;
mod task_types;
mod tidy;
mod ui;
