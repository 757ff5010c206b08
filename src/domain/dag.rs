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

/// Alert channel names per event (§9); delivery comes with the alerts issue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DagAlerts {
    pub on_failure: Vec<String>,
    pub on_retry: Vec<String>,
    pub on_success: Vec<String>,
    pub sla_miss: Vec<String>,
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

/// What a task does. Only `shell` runs in this version; the other types of §5 are refused at
/// validation with a message saying so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operator {
    Shell {
        /// Templated.
        command: String,
        /// Templated; relative to the DAG file's folder. `None` = that folder.
        cwd: Option<String>,
        skip_exit_code: i32,
    },
}

impl Operator {
    pub fn type_name(&self) -> &'static str {
        match self {
            Operator::Shell { .. } => "shell",
        }
    }

    /// The templated fields, by name, in a stable order.
    pub fn templated_fields(&self) -> Vec<(&'static str, &str)> {
        match self {
            Operator::Shell { command, cwd, .. } => {
                let mut fields = vec![("command", command.as_str())];
                if let Some(cwd) = cwd {
                    fields.push(("cwd", cwd.as_str()));
                }
                fields
            }
        }
    }
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
