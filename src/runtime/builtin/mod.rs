//! Task types that run inside weir rather than as a child process (§5.2–§5.6): http, sql,
//! transfer, sensor and trigger_dag. Each attempt writes `[weir]` lines to its own log (secrets
//! masked), ends with the same [`AttemptResult`] a shell task does, and stops when weir shuts down.

mod http;
mod sensor;
mod sql;
mod trigger;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

pub use self::http::http_client;
pub use self::sensor::{PokeVerdict, after_poke};
use super::attempt::MAX_OUTPUT_BYTES;
use super::executor::AttemptResult;
use super::masking::mask_secrets;
use super::task_log::{LogPath, LogWriter};
use crate::domain::dag::{Dag, Operator};
use crate::domain::duration::format_duration;
use crate::domain::ids::{DagId, RunId, TaskId};
use crate::storage::Db;

/// Most rows a sql task keeps as its output (§5.3 "capped").
pub const SQL_OUTPUT_ROWS: usize = 1000;

/// Everything an in-process attempt needs, resolved before it starts.
#[derive(Clone)]
pub struct BuiltinAttempt {
    /// The task's operator with every templated field rendered.
    pub operator: Operator,
    /// Connection name → URL with credentials, for the connections the operator names.
    pub connections: HashMap<String, String>,
    pub log_path: LogPath,
    /// Masked as `***` in everything written to the log.
    pub secrets: Vec<String>,
    /// Output lines (a response body, rows) beyond this many bytes per poke are dropped.
    pub max_log_bytes: u64,
    /// The task's `timeout`: for sensors, how long they may wait in all since the first poke.
    pub timeout: Option<Duration>,
    /// The DAG file's folder: relative paths (sensor files, sql files) start there.
    pub folder: PathBuf,
    pub db: Db,
    pub dag_id: DagId,
    pub run_id: RunId,
    pub task_id: TaskId,
    pub logical_date: DateTime<Utc>,
    /// When this try's first poke started (sensors measure their timeout from it).
    pub first_poke: DateTime<Utc>,
    /// For trigger_dag: the DAG to trigger, when the DAG folder has it.
    pub target_dag: Option<Arc<Dag>>,
}

impl std::fmt::Debug for BuiltinAttempt {
    // By hand: connection URLs carry passwords and must not reach a debug print.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuiltinAttempt")
            .field("operator", &self.operator.type_name())
            .field("connections", &self.connections.keys().collect::<Vec<_>>())
            .field("log_path", &self.log_path)
            .field("dag_id", &self.dag_id)
            .field("run_id", &self.run_id)
            .field("task_id", &self.task_id)
            .finish_non_exhaustive()
    }
}

impl BuiltinAttempt {
    /// The URL of a connection the operator names (resolved before the attempt started).
    fn connection(&self, name: &str) -> Result<&str, String> {
        self.connections
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| format!("unknown connection `{name}`: add it with `weir connections add {name} --url ...`, as [connections.{name}] in config.toml, or as WEIR_CONN_{}", name.to_uppercase()))
    }
}

/// Runs one in-process attempt to its end: success with an output, failure with a message, a
/// sensor's reschedule, or an interruption when `cancel` fires (weir shutting down).
pub async fn run_builtin(attempt: &BuiltinAttempt, cancel: CancellationToken) -> AttemptResult {
    let mut log = match LogWriter::open(&attempt.log_path, &attempt.secrets, attempt.max_log_bytes) {
        Ok(log) => log,
        Err(error) => {
            return AttemptResult::Failed {
                exit_code: None,
                error: format!("could not open the log {}: {error}", attempt.log_path),
            };
        }
    };
    log.note(&format!(
        "{} task {}.{} for run {}",
        attempt.operator.type_name(),
        attempt.dag_id,
        attempt.task_id,
        attempt.run_id
    ));
    let work = run_operator(attempt, &mut log);
    // Sensors bound each poke by their own deadline; other types by the task's timeout.
    let deadline = match attempt.operator {
        Operator::Sensor(_) => None,
        _ => attempt.timeout,
    };
    let result = tokio::select! {
        biased;
        () = cancel.cancelled() => AttemptResult::Interrupted,
        result = with_deadline(work, deadline) => result,
    };
    match &result {
        AttemptResult::Success { .. } => log.note("done: success"),
        AttemptResult::Skipped => log.note("done: skipped"),
        AttemptResult::Failed { error, .. } => log.note(&format!("failed: {error}")),
        AttemptResult::Reschedule { at } => log.note(&format!(
            "condition not met yet: next poke at {}",
            at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        )),
        AttemptResult::Interrupted => log.note("interrupted: weir is shutting down"),
        // Only recovery, after the process running this attempt died, ends one this way.
        AttemptResult::CrashEnded { .. } => {}
    }
    result
}

async fn with_deadline(
    work: impl std::future::Future<Output = AttemptResult>,
    deadline: Option<Duration>,
) -> AttemptResult {
    match deadline {
        None => work.await,
        Some(limit) => match tokio::time::timeout(limit, work).await {
            Ok(result) => result,
            Err(_) => AttemptResult::Failed {
                exit_code: None,
                error: format!("timed out after {}", format_duration(limit)),
            },
        },
    }
}

async fn run_operator(attempt: &BuiltinAttempt, log: &mut LogWriter) -> AttemptResult {
    let outcome = match &attempt.operator {
        Operator::Shell { .. } => Err("a shell task cannot run in-process".to_string()),
        Operator::Http(http) => http::call(attempt, http, log).await.map(Some),
        Operator::Sql(sql) => sql::run(attempt, sql, log).await.map(Some),
        Operator::Transfer(transfer) => sql::transfer(attempt, transfer, log).await.map(Some),
        Operator::Sensor(sensor) => return sensor::poke(attempt, sensor, log).await,
        Operator::TriggerDag(trigger) => trigger::trigger(attempt, trigger, log).await.map(Some),
    };
    match outcome {
        Ok(output) => AttemptResult::Success {
            // Outputs are shown in the UI and API: a secret a server echoed back stays hidden.
            output: output.map(|value| mask_secrets(&capped_output(&value), &attempt.secrets)),
        },
        Err(error) => AttemptResult::Failed { exit_code: None, error },
    }
}

/// An output as stored (§5.7): JSON text, at most 1 MiB; a value over the cap is kept as the
/// start of its text.
pub fn capped_output(value: &serde_json::Value) -> String {
    let text = value.to_string();
    if text.len() <= MAX_OUTPUT_BYTES {
        return text;
    }
    // Half the cap: escaping the text as a JSON string can at most double it.
    let mut end = MAX_OUTPUT_BYTES / 2;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    serde_json::Value::String(text[..end].to_string()).to_string()
}
