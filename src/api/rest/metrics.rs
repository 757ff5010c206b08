//! `GET /metrics`: Prometheus text exposition, written by hand from database counts (runs and
//! task instances by state, queue depth, pool slots, import errors, scheduler heartbeat age) and,
//! under `weir serve`, the in-process scheduler's step times and task attempt durations.

use std::collections::BTreeMap;
use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::api::ApiState;
use crate::api::error::ApiError;
use crate::domain::state::{RunState, TaskState};
use crate::storage::{self, import_errors, runs, task_instances};

/// Appends one gauge family: its help, type and one sample per label set.
fn gauge(out: &mut String, name: &str, help: &str, samples: &[(String, i64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

fn by_state(counts: Vec<(String, i64)>, states: &[&str]) -> Vec<(String, i64)> {
    let counts: BTreeMap<String, i64> = counts.into_iter().collect();
    states
        .iter()
        .map(|state| (format!("state=\"{state}\""), counts.get(*state).copied().unwrap_or(0)))
        .collect()
}

/// `GET /metrics`
pub async fn metrics(State(state): State<ApiState>) -> Result<impl IntoResponse, ApiError> {
    let mut connection = state.db.acquire().await?;
    let run_counts = runs::count_by_state(&mut connection).await?;
    let task_counts = task_instances::count_by_state(&mut connection).await?;
    let import_error_count = import_errors::list(&mut connection).await?.len();
    let pool_usage = task_instances::pool_usage(&mut connection).await?;
    let heartbeat = storage::last_heartbeat(&mut connection).await?;
    drop(connection);

    let run_states: Vec<&str> = RunState::ALL.iter().map(|state| state.as_str()).collect();
    let task_states: Vec<&str> = TaskState::ALL.iter().map(|state| state.as_str()).collect();
    let task_samples = by_state(task_counts, &task_states);
    let waiting: i64 = task_samples
        .iter()
        .filter(|(labels, _)| labels == "state=\"scheduled\"")
        .map(|(_, count)| count)
        .sum();
    let mut out = String::new();
    if let Some(scheduler) = &state.scheduler_metrics {
        scheduler.render(&mut out);
    }
    gauge(
        &mut out,
        "weir_dag_runs",
        "Runs in the metadata database, by state.",
        &by_state(run_counts, &run_states),
    );
    gauge(
        &mut out,
        "weir_task_instances",
        "Task instances in the metadata database, by state.",
        &task_samples,
    );
    gauge(
        &mut out,
        "weir_queue_depth",
        "Task instances scheduled and waiting for a slot.",
        &[(String::new(), waiting)],
    );
    let mut pool_samples = Vec::new();
    for (name, slots) in &state.config.pools {
        pool_samples.push((format!("pool=\"{name}\",kind=\"total\""), i64::from(*slots)));
        for task_state in [TaskState::Running, TaskState::Queued, TaskState::Scheduled] {
            let used: i64 = pool_usage
                .iter()
                .filter(|(pool, used_state, _)| pool == name && *used_state == task_state)
                .map(|(_, _, slots)| slots)
                .sum();
            pool_samples.push((format!("pool=\"{name}\",kind=\"{}\"", task_state.as_str()), used));
        }
    }
    gauge(
        &mut out,
        "weir_pool_slots",
        "Pool slots from config.toml and their use.",
        &pool_samples,
    );
    gauge(
        &mut out,
        "weir_import_errors",
        "Problems in DAG files that failed to load.",
        &[(String::new(), i64::try_from(import_error_count).unwrap_or(i64::MAX))],
    );
    let age = heartbeat.map_or(-1, |beat| (chrono::Utc::now() - beat).num_seconds());
    gauge(
        &mut out,
        "weir_scheduler_heartbeat_age_seconds",
        "Seconds since the scheduler's last heartbeat (-1: never).",
        &[(String::new(), age)],
    );
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        out,
    ))
}
