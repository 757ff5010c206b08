//! The DAG file format as written (§2): serde types, unvalidated, with source locations kept for
//! the checks that happen after parsing. `dag::Dag::from_yaml` turns these into a validated DAG.

use indexmap::IndexMap;
use serde::Deserialize;
use serde_saphyr::Spanned;

/// A whole DAG file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DagSpec {
    pub dag_id: Option<Spanned<String>>,
    pub description: Option<String>,
    pub owner: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub schedule: Option<Spanned<ScheduleSpec>>,
    pub timezone: Option<Spanned<String>>,
    pub start_date: Option<Spanned<String>>,
    pub end_date: Option<Spanned<String>>,
    pub catchup: Option<bool>,
    pub max_active_runs: Option<u32>,
    pub max_active_tasks: Option<u32>,
    pub is_paused_upon_creation: Option<bool>,
    #[serde(default)]
    pub params: IndexMap<String, Spanned<ParamDecl>>,
    pub defaults: Option<Spanned<TaskSpec>>,
    #[serde(default)]
    pub alerts: AlertsSpec,
    pub sla: Option<Spanned<String>>,
    pub tasks: IndexMap<Spanned<String>, Spanned<TaskSpec>>,
}

/// `schedule:` is a string (cron or alias), or a map for trigger mode or datasets.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ScheduleSpec {
    Text(String),
    Cron(CronScheduleSpec),
    Datasets(DatasetScheduleSpec),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CronScheduleSpec {
    pub cron: String,
    #[serde(default = "yes")]
    pub data_interval: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetScheduleSpec {
    pub datasets: Vec<String>,
}

fn yes() -> bool {
    true
}

/// A run parameter: a JSON-schema-like declaration, or a bare default value.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ParamDecl {
    Full(ParamSpec),
    Plain(serde_json::Value),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub default: Option<serde_json::Value>,
    #[serde(rename = "enum")]
    pub allowed: Option<Vec<serde_json::Value>>,
    pub minimum: Option<f64>,
    pub maximum: Option<f64>,
    #[serde(rename = "minLength", alias = "min_length")]
    pub min_length: Option<usize>,
    #[serde(rename = "maxLength", alias = "max_length")]
    pub max_length: Option<usize>,
    pub pattern: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsSpec {
    #[serde(default)]
    pub on_failure: Vec<Spanned<String>>,
    #[serde(default)]
    pub on_retry: Vec<Spanned<String>>,
    #[serde(default)]
    pub on_success: Vec<Spanned<String>>,
    #[serde(default)]
    pub sla_miss: Vec<Spanned<String>>,
}

/// One task, or the `defaults:` block (every field optional; a task's own value wins).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    #[serde(rename = "type")]
    pub kind: Option<Spanned<String>>,
    pub command: Option<Spanned<String>>,
    pub cwd: Option<Spanned<String>>,
    pub skip_exit_code: Option<i32>,
    pub depends_on: Option<Vec<Spanned<String>>>,
    pub trigger_rule: Option<Spanned<String>>,
    pub retries: Option<u32>,
    pub retry_delay: Option<Spanned<String>>,
    pub retry_exponential_backoff: Option<bool>,
    pub max_retry_delay: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    pub pool: Option<Spanned<String>>,
    pub pool_slots: Option<u32>,
    pub priority_weight: Option<i64>,
    pub env: Option<IndexMap<String, Spanned<String>>>,
    pub depends_on_past: Option<bool>,
    pub outlets: Option<Vec<String>>,
    pub doc: Option<String>,
}
