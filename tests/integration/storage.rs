//! The metadata database on every backend: each case runs against a fresh SQLite database and,
//! when reachable, a fresh PostgreSQL one, and says which failed.

mod connections;
mod dags;
mod meta;
mod runs;
mod schedulers;
mod schema;
mod task_instances;

use chrono::{DateTime, Utc};
use serde_json::json;
use weir::domain::ids::{DagId, RunId, TaskId};
use weir::domain::state::RunType;
use weir::storage::Db;
use weir::storage::runs::{DagRun, NewRun};

const PIPELINE: &str = "
dag_id: orders_pipeline
description: Loads yesterday's orders
owner: data-team
tags: [orders, daily]
schedule: '30 6 * * *'
timezone: Europe/Berlin
start_date: 2026-01-01
tasks:
  extract: { command: 'echo extract', retries: 2, priority_weight: 5 }
  load: { command: 'echo load', depends_on: [extract], pool_slots: 2 }
";

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("test times are RFC 3339")
        .with_timezone(&Utc)
}

fn dag_id(value: &str) -> DagId {
    DagId::parse(value).expect("test DAG ids are valid")
}

fn run_id(value: &str) -> RunId {
    RunId::parse(value).expect("test run ids are valid")
}

fn task_id(value: &str) -> TaskId {
    TaskId::parse(value).expect("test task ids are valid")
}

fn new_run(dag: &str, run: &str, run_type: RunType, logical_date: &str) -> NewRun {
    let logical_date = at(logical_date);
    NewRun {
        dag_id: dag_id(dag),
        run_id: run_id(run),
        run_type,
        logical_date,
        data_interval_start: logical_date,
        data_interval_end: logical_date + chrono::Duration::days(1),
        run_after: logical_date + chrono::Duration::days(1),
        conf: json!({}),
        owner: None,
    }
}

async fn insert_run(db: &Db, label: &str, run: &NewRun) -> DagRun {
    let mut transaction = db.begin().await.expect(label);
    let inserted = weir::storage::runs::insert(&mut transaction, run, at("2026-03-02T00:00:00Z"))
        .await
        .unwrap_or_else(|error| panic!("{label}: inserting {}: {error}", run.run_id));
    transaction.commit().await.expect(label);
    inserted
}
