//! weir: a workflow scheduler for ETL/ELT pipelines written as YAML DAG files.
//!
//! Layers, each depending only on the ones before it: `domain` (decisions, no IO) ← `storage`
//! (the only SQL) ← `runtime` (scheduler loop, workers, processes, DAG folder) ← `api` ←
//! `daemon` (runtime and api wired into one running weir) ← `cli`.

pub mod api;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod domain;
pub mod runtime;
pub mod secrets;
pub mod storage;
pub mod telemetry;
