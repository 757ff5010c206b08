//! The validated DAG model: what the scheduler and workers run. Built only by
//! [`Dag::from_yaml`](crate::domain::validate), so every `Dag` in memory is known to be sound.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use super::ids::{DagId, TaskId};
use super::params::Params;
use super::schedule::Timetable;
use super::trigger_rule::TriggerRule;

/// One DAG, validated.
#[derive(Debug, Clone)]
pub struct Dag {
    pub dag_id: DagId,
    /// The file it was read from.
    pub fileloc: PathBuf,
    /// The YAML as read, for display.
    pub source: String,
    pub description: Option<String>,
    pub owner: String,
    pub tags: Vec<String>,
    pub timetable: Timetable,
    pub catchup: bool,
    pub max_active_runs: u32,
    pub max_active_tasks: u32,
    pub is_paused_upon_creation: bool,
    pub params: Params,
    pub alerts: DagAlerts,
    pub sla: Option<Duration>,
    /// In topological order: every task comes after all of its upstream tasks.
    pub tasks: Vec<Task>,
    index: HashMap<TaskId, usize>,
}

/// Alert channel names per event (§9), as the DAG file lists them. `None`: the file does not
/// name the event, so the `[alerts] default_*` channels of config.toml apply; `Some([])`: no
/// alert for this DAG. See [`crate::domain::alerts::channels_for`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DagAlerts {
    pub on_failure: Option<Vec<String>>,
    pub on_retry: Option<Vec<String>>,
    pub on_success: Option<Vec<String>>,
    pub sla_miss: Option<Vec<String>>,
}

#[derive(Debug, Clone)]
pub struct Task {
    pub task_id: TaskId,
    pub operator: Operator,
    pub upstream: Vec<TaskId>,
    pub downstream: Vec<TaskId>,
    pub trigger_rule: TriggerRule,
    pub retry: RetryPolicy,
    pub timeout: Option<Duration>,
    pub pool: String,
    pub pool_slots: u32,
    pub priority_weight: i64,
    /// Templated values, rendered per attempt.
    pub env: Vec<(String, String)>,
    pub depends_on_past: bool,
    pub outlets: Vec<String>,
    pub doc: Option<String>,
}

/// What a task does (§5). Text fields marked "templated" are rendered per attempt; the rest are
/// fixed by the file.
#[derive(Debug, Clone, PartialEq)]
pub enum Operator {
    Shell {
        /// Templated.
        command: String,
        /// Templated; relative to the DAG file's folder. `None` = that folder.
        cwd: Option<String>,
        skip_exit_code: i32,
    },
    // The larger task types are boxed so that a `Task` costs what a shell task needs: a DAG folder
    // is mostly shell tasks, and every task is kept in memory while weir runs (about 160 bytes
    // less per task).
    Http(Box<HttpTask>),
    Sql(SqlTask),
    Transfer(Box<TransferTask>),
    Sensor(Box<SensorTask>),
    TriggerDag(Box<TriggerDagTask>),
}

/// One HTTP request (§5.2). With `conn`, `url` may be a path joined to the connection's base URL.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpTask {
    pub conn: Option<String>,
    /// Templated.
    pub url: String,
    pub method: String,
    /// Values templated.
    pub headers: Vec<(String, String)>,
    pub body: HttpBody,
    pub expect_status: StatusExpectation,
    pub request_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub enum HttpBody {
    None,
    /// Every string inside is templated.
    Json(serde_json::Value),
    /// Templated.
    Text(String),
}

/// Which HTTP statuses count as success: exact codes or classes such as `2xx`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusExpectation(pub Vec<StatusRule>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusRule {
    Exact(u16),
    /// `2` for `2xx`.
    Class(u16),
}

impl StatusExpectation {
    pub fn any_2xx() -> Self {
        StatusExpectation(vec![StatusRule::Class(2)])
    }

    pub fn accepts(&self, status: u16) -> bool {
        self.0.iter().any(|rule| match rule {
            StatusRule::Exact(code) => *code == status,
            StatusRule::Class(class) => status / 100 == *class,
        })
    }
}

impl std::fmt::Display for StatusExpectation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rules: Vec<String> = self
            .0
            .iter()
            .map(|rule| match rule {
                StatusRule::Exact(code) => code.to_string(),
                StatusRule::Class(class) => format!("{class}xx"),
            })
            .collect();
        f.write_str(&rules.join(" or "))
    }
}

/// Statements run in one transaction on a database connection (§5.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlTask {
    pub conn: String,
    pub sql: SqlSource,
    /// Bind parameters by name, used as `:name` in the SQL: text (templated), numbers, booleans
    /// or null. Their values are bound, never pasted into the SQL text.
    pub parameters: Vec<(String, serde_json::Value)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlSource {
    /// Templated.
    Inline(String),
    /// A file relative to the DAG file's folder, read and templated per attempt.
    File(String),
}

/// Rows streamed from a query on one connection into a table on another (§5.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferTask {
    pub from_conn: String,
    /// Templated.
    pub from_sql: String,
    pub to_conn: String,
    /// Templated.
    pub table: String,
    pub mode: TransferMode,
    pub keys: Vec<String>,
    pub batch_size: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferMode {
    Append,
    Replace,
    Upsert,
}

impl TransferMode {
    pub fn as_str(self) -> &'static str {
        match self {
            TransferMode::Append => "append",
            TransferMode::Replace => "replace",
            TransferMode::Upsert => "upsert",
        }
    }
}

/// Waits until a condition holds, poking every `poke_interval` without holding a worker slot in
/// between (§5.5). How long it may wait is the task's `timeout` (default seven days, as in Airflow).
#[derive(Debug, Clone, PartialEq)]
pub struct SensorTask {
    pub condition: SensorCondition,
    pub poke_interval: Duration,
    pub soft_fail: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SensorCondition {
    /// Templated; relative to the DAG file's folder. Holds once the path exists.
    File { path: String },
    /// Holds once a GET of the URL (templated) answers with an expected status.
    Http {
        conn: Option<String>,
        url: String,
        expect_status: StatusExpectation,
    },
    /// Holds once the first column of the first row is truthy. `sql` is templated.
    Sql { conn: String, sql: String },
    /// Holds once the other DAG's run for the same logical date (or one task of it) succeeded.
    DagRun { dag_id: String, task_id: Option<String> },
}

/// Triggers a run of another DAG, optionally waiting for it to finish (§5.6).
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerDagTask {
    pub dag_id: String,
    /// Every string inside is templated.
    pub conf: serde_json::Value,
    pub wait_for_completion: bool,
    pub poke_interval: Duration,
}

/// Sensors wait at most this long unless `timeout` says otherwise (Airflow's default).
pub const DEFAULT_SENSOR_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);

impl Operator {
    pub fn type_name(&self) -> &'static str {
        match self {
            Operator::Shell { .. } => "shell",
            Operator::Http(_) => "http",
            Operator::Sql(_) => "sql",
            Operator::Transfer(_) => "transfer",
            Operator::Sensor(_) => "sensor",
            Operator::TriggerDag(_) => "trigger_dag",
        }
    }

    /// The templated fields, by name, in a stable order (strings inside JSON values by their path,
    /// e.g. `json.customer.id`).
    pub fn templated_fields(&self) -> Vec<(String, String)> {
        let mut fields = Vec::new();
        let _ = self.render_with(
            &mut |name: &str, text: &str| -> Result<String, std::convert::Infallible> {
                fields.push((name.to_string(), text.to_string()));
                Ok(text.to_string())
            },
        );
        fields
    }

    /// The same operator with every templated field passed through `render(field name, text)`.
    pub fn render_with<E>(&self, render: &mut dyn FnMut(&str, &str) -> Result<String, E>) -> Result<Operator, E> {
        Ok(match self {
            Operator::Shell {
                command,
                cwd,
                skip_exit_code,
            } => Operator::Shell {
                command: render("command", command)?,
                cwd: cwd.as_deref().map(|cwd| render("cwd", cwd)).transpose()?,
                skip_exit_code: *skip_exit_code,
            },
            Operator::Http(http) => Operator::Http(Box::new(HttpTask {
                url: render("url", &http.url)?,
                headers: http
                    .headers
                    .iter()
                    .map(|(name, value)| Ok((name.clone(), render(&format!("headers.{name}"), value)?)))
                    .collect::<Result<_, E>>()?,
                body: match &http.body {
                    HttpBody::None => HttpBody::None,
                    HttpBody::Json(value) => HttpBody::Json(render_json("json", value, render)?),
                    HttpBody::Text(text) => HttpBody::Text(render("body", text)?),
                },
                ..HttpTask::clone(http)
            })),
            Operator::Sql(sql) => Operator::Sql(SqlTask {
                conn: sql.conn.clone(),
                sql: match &sql.sql {
                    SqlSource::Inline(text) => SqlSource::Inline(render("sql", text)?),
                    SqlSource::File(path) => SqlSource::File(render("sql_file", path)?),
                },
                parameters: sql
                    .parameters
                    .iter()
                    .map(|(name, value)| match value {
                        serde_json::Value::String(text) => Ok((
                            name.clone(),
                            serde_json::Value::String(render(&format!("parameters.{name}"), text)?),
                        )),
                        other => Ok((name.clone(), other.clone())),
                    })
                    .collect::<Result<_, E>>()?,
            }),
            Operator::Transfer(transfer) => Operator::Transfer(Box::new(TransferTask {
                from_sql: render("from.sql", &transfer.from_sql)?,
                table: render("to.table", &transfer.table)?,
                ..TransferTask::clone(transfer)
            })),
            Operator::Sensor(sensor) => Operator::Sensor(Box::new(SensorTask {
                condition: match &sensor.condition {
                    SensorCondition::File { path } => SensorCondition::File {
                        path: render("file", path)?,
                    },
                    SensorCondition::Http {
                        conn,
                        url,
                        expect_status,
                    } => SensorCondition::Http {
                        conn: conn.clone(),
                        url: render("http.url", url)?,
                        expect_status: expect_status.clone(),
                    },
                    SensorCondition::Sql { conn, sql } => SensorCondition::Sql {
                        conn: conn.clone(),
                        sql: render("sql.sql", sql)?,
                    },
                    SensorCondition::DagRun { dag_id, task_id } => SensorCondition::DagRun {
                        dag_id: dag_id.clone(),
                        task_id: task_id.clone(),
                    },
                },
                ..SensorTask::clone(sensor)
            })),
            Operator::TriggerDag(trigger) => Operator::TriggerDag(Box::new(TriggerDagTask {
                conf: render_json("conf", &trigger.conf, render)?,
                ..TriggerDagTask::clone(trigger)
            })),
        })
    }

    /// The connections an attempt needs, by name.
    pub fn connections(&self) -> Vec<&str> {
        match self {
            Operator::Shell { .. } | Operator::TriggerDag(_) => Vec::new(),
            Operator::Http(http) => http.conn.as_deref().into_iter().collect(),
            Operator::Sql(sql) => vec![sql.conn.as_str()],
            Operator::Transfer(transfer) => vec![transfer.from_conn.as_str(), transfer.to_conn.as_str()],
            Operator::Sensor(sensor) => match &sensor.condition {
                SensorCondition::Http { conn, .. } => conn.as_deref().into_iter().collect(),
                SensorCondition::Sql { conn, .. } => vec![conn.as_str()],
                SensorCondition::File { .. } | SensorCondition::DagRun { .. } => Vec::new(),
            },
        }
    }
}

/// Renders every string inside a JSON value; `path` names it in errors (`json.customer.id`).
fn render_json<E>(
    path: &str,
    value: &serde_json::Value,
    render: &mut dyn FnMut(&str, &str) -> Result<String, E>,
) -> Result<serde_json::Value, E> {
    use serde_json::Value;
    Ok(match value {
        Value::String(text) => Value::String(render(path, text)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(index, item)| render_json(&format!("{path}.{index}"), item, render))
                .collect::<Result<_, E>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, item)| Ok((key.clone(), render_json(&format!("{path}.{key}"), item, render)?)))
                .collect::<Result<_, E>>()?,
        ),
        other => other.clone(),
    })
}

/// How often and when a failed attempt is tried again (§3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub retries: u32,
    pub retry_delay: Duration,
    pub exponential_backoff: bool,
    pub max_retry_delay: Option<Duration>,
}

impl RetryPolicy {
    /// The wait after attempt `failed_try` (1-based) failed, before the next attempt:
    /// `retry_delay`, or with backoff `min(retry_delay * 2^(failed_try-1), max_retry_delay)`.
    pub fn delay_after(&self, failed_try: u32) -> Duration {
        let delay = if self.exponential_backoff {
            let exponent = failed_try.saturating_sub(1).min(62);
            self.retry_delay
                .checked_mul(1u32 << exponent.min(31))
                .unwrap_or(Duration::MAX)
        } else {
            self.retry_delay
        };
        match self.max_retry_delay {
            Some(cap) => delay.min(cap),
            None => delay,
        }
    }
}

impl Dag {
    /// Assembles a DAG from validated parts; `tasks` must already be in topological order.
    pub(crate) fn assemble(mut dag: Dag, tasks: Vec<Task>) -> Dag {
        dag.index = tasks
            .iter()
            .enumerate()
            .map(|(position, task)| (task.task_id.clone(), position))
            .collect();
        dag.tasks = tasks;
        dag
    }

    pub(crate) fn empty(dag_id: DagId, fileloc: PathBuf, timetable: Timetable) -> Dag {
        Dag {
            dag_id,
            fileloc,
            source: String::new(),
            description: None,
            owner: String::new(),
            tags: Vec::new(),
            timetable,
            catchup: false,
            max_active_runs: 16,
            max_active_tasks: 16,
            is_paused_upon_creation: false,
            params: Params::default(),
            alerts: DagAlerts::default(),
            sla: None,
            tasks: Vec::new(),
            index: HashMap::new(),
        }
    }

    pub fn task(&self, task_id: &str) -> Option<&Task> {
        self.index.get(task_id).map(|&position| &self.tasks[position])
    }

    /// Tasks nothing depends on: their states decide the run's state (§3.6).
    pub fn leaves(&self) -> impl Iterator<Item = &Task> {
        self.tasks.iter().filter(|task| task.downstream.is_empty())
    }

    /// The task and everything downstream of it, in topological order.
    pub fn with_downstream(&self, roots: &[TaskId]) -> Vec<TaskId> {
        let mut included: std::collections::HashSet<&TaskId> = roots.iter().collect();
        for task in &self.tasks {
            if task.upstream.iter().any(|upstream| included.contains(upstream)) {
                included.insert(&task.task_id);
            }
        }
        self.tasks
            .iter()
            .filter(|task| included.contains(&task.task_id))
            .map(|task| task.task_id.clone())
            .collect()
    }

    /// The DAG folder-relative directory a task runs in by default.
    pub fn folder(&self) -> PathBuf {
        self.fileloc
            .parent()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_follow_the_policy_with_and_without_backoff_and_cap() {
        let fixed = RetryPolicy {
            retries: 3,
            retry_delay: Duration::from_secs(30),
            exponential_backoff: false,
            max_retry_delay: None,
        };
        let backoff = RetryPolicy {
            exponential_backoff: true,
            ..fixed
        };
        let capped = RetryPolicy {
            exponential_backoff: true,
            max_retry_delay: Some(Duration::from_secs(100)),
            ..fixed
        };
        let table = [
            (fixed, 1, 30),
            (fixed, 4, 30),
            (backoff, 1, 30),
            (backoff, 2, 60),
            (backoff, 3, 120),
            (backoff, 4, 240),
            (capped, 2, 60),
            (capped, 3, 100),
            (capped, 10, 100),
        ];
        for (policy, failed_try, seconds) in table {
            assert_eq!(
                policy.delay_after(failed_try),
                Duration::from_secs(seconds),
                "{policy:?} try {failed_try}"
            );
        }
        let huge = RetryPolicy {
            exponential_backoff: true,
            ..fixed
        };
        assert_eq!(huge.delay_after(200), fixed.retry_delay * (1u32 << 31));
    }
}
