//! Turns a DAG file's text into a validated [`Dag`], or into every problem found in it, each with
//! line:column and a hint (§2). Parsing stops at the first syntax or type error (the YAML reader
//! cannot go on past it); every check after parsing reports all of its findings at once.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use indexmap::IndexMap;
use serde_saphyr::Spanned;

use super::dag::{Dag, DagAlerts};
use super::dates::DateError;
pub use super::dates::parse_date_in;
use super::duration::parse_duration;
use super::ids::DagId;
use super::params::{Param, ParamType, Params};
use super::schedule::{Schedule, Timetable};
use super::spec::{DagSpec, ParamDecl, ScheduleSpec};
use super::template;

pub mod limits;
mod operators;

pub use operators::TASK_TYPES;
mod syntax;
mod tasks;

/// What validation needs to know from the configuration.
#[derive(Debug, Clone)]
pub struct ValidationContext {
    pub default_timezone: Tz,
    pub catchup_by_default: bool,
    pub dags_are_paused_at_creation: bool,
    pub default_task_retries: u32,
    pub default_task_retry_delay: Duration,
    /// Pool name → its slots (`[pools]`, always with `default`).
    pub pools: BTreeMap<String, u32>,
    pub alert_channels: BTreeSet<String>,
}

impl Default for ValidationContext {
    fn default() -> Self {
        ValidationContext {
            default_timezone: Tz::UTC,
            catchup_by_default: false,
            dags_are_paused_at_creation: false,
            default_task_retries: 0,
            default_task_retry_delay: Duration::from_secs(300),
            pools: BTreeMap::from([("default".to_string(), DEFAULT_POOL_SLOTS)]),
            alert_channels: BTreeSet::new(),
        }
    }
}

/// The slots of the `default` pool when `[pools]` does not set it.
pub const DEFAULT_POOL_SLOTS: u32 = 128;

/// The most retries a task may have. Far above what a flaky task needs (Airflow DAGs use a
/// handful); a task that must keep trying for days is a sensor, with `poke_interval` and
/// `timeout`. Past it, a typo (`retries: 4294967295`) would retry for ever.
pub const MAX_RETRIES: u32 = 1000;

/// The most runs or tasks `max_active_runs` and `max_active_tasks` may allow at once: more than
/// one machine runs, so a larger value is a typo rather than a limit.
pub const MAX_ACTIVE: u32 = 10_000;

/// The longest duration a DAG file may give (`timeout`, `retry_delay`, `sla`, ...): a year.
/// Longer ones are typos, or attempts to say "never", which leaving the key out already says.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// One thing wrong with a DAG file, where it is, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: u32,
    pub column: u32,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

/// A DAG file that could not be loaded: its path and every problem found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct DagFileError {
    pub path: PathBuf,
    pub problems: Vec<Problem>,
}

impl DagFileError {
    /// The error of the file at `path`, its problems within [`limits::bounded`]'s bounds.
    pub fn new(path: &Path, problems: Vec<Problem>) -> Self {
        DagFileError {
            path: path.to_path_buf(),
            problems: limits::bounded(problems),
        }
    }
}

impl fmt::Display for DagFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (position, problem) in self.problems.iter().enumerate() {
            if position > 0 {
                writeln!(f)?;
            }
            write!(f, "{}:{problem}", self.path.display())?;
        }
        Ok(())
    }
}

struct Problems(Vec<Problem>);

impl Problems {
    fn at<T>(&mut self, spanned: &Spanned<T>, message: impl Into<String>) {
        self.at_location(spanned.referenced, message);
    }

    fn at_location(&mut self, location: serde_saphyr::Location, message: impl Into<String>) {
        self.0.push(Problem {
            line: u32::try_from(location.line()).unwrap_or(u32::MAX).max(1),
            column: u32::try_from(location.column()).unwrap_or(u32::MAX).max(1),
            message: message.into(),
        });
    }

    fn top(&mut self, message: impl Into<String>) {
        self.0.push(Problem {
            line: 1,
            column: 1,
            message: message.into(),
        });
    }
}

/// The largest DAG file weir reads (a DAG of a thousand tasks is about 100 KiB).
pub const MAX_DAG_FILE_BYTES: usize = 4 * 1024 * 1024;

/// The problem of a file past [`MAX_DAG_FILE_BYTES`].
pub fn too_large(bytes: u64) -> Problem {
    Problem {
        line: 1,
        column: 1,
        message: format!(
            "the file is {bytes} bytes, more than a DAG file may hold ({MAX_DAG_FILE_BYTES} bytes): split it into several DAGs"
        ),
    }
}

/// The YAML reader's limits for DAG files, far above any real DAG and far below what would
/// hurt the daemon: anchors and aliases (a "billion laughs" file expands to at most a few MiB),
/// nesting depth, and the number of nodes. A file past one is refused at the line and column
/// where it happened.
fn yaml_options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_aliases = 10_000;
    budget.max_anchors = 10_000;
    budget.max_recorded_anchor_events = 100_000;
    budget.max_recorded_anchor_bytes = 4 * 1024 * 1024;
    budget.max_depth = 32;
    budget.max_nodes = 200_000;
    budget.max_events = 500_000;
    budget.max_total_scalar_bytes = 16 * 1024 * 1024;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options
}

impl Dag {
    /// Parses and validates one DAG file. `path` names the file in messages and gives the default
    /// `dag_id` (its stem) and the folder tasks run in.
    pub fn from_yaml(path: &Path, text: &str, context: &ValidationContext) -> Result<Dag, DagFileError> {
        let fail = |problems: Vec<Problem>| DagFileError::new(path, problems);
        if text.len() > MAX_DAG_FILE_BYTES {
            return Err(fail(vec![too_large(text.len() as u64)]));
        }
        let spec: DagSpec = serde_saphyr::from_str_with_options(text, yaml_options())
            .map_err(|error| fail(vec![syntax::syntax_problem(text, &error)]))?;
        let mut problems = Problems(Vec::new());
        let dag = build(path, text, spec, context, &mut problems);
        match dag {
            Some(dag) if problems.0.is_empty() => Ok(dag),
            _ => {
                problems.0.sort_by_key(|problem| (problem.line, problem.column));
                Err(fail(problems.0))
            }
        }
    }
}

fn build(path: &Path, text: &str, spec: DagSpec, context: &ValidationContext, problems: &mut Problems) -> Option<Dag> {
    let dag_id = dag_id(path, &spec, problems);
    let timezone = match &spec.timezone {
        None => context.default_timezone,
        Some(name) => match name.value.parse::<Tz>() {
            Ok(timezone) => timezone,
            Err(_) => {
                problems.at(
                    name,
                    format!(
                        "`{}` is not an IANA time zone name: use one like UTC, Europe/Berlin or Asia/Seoul",
                        name.value
                    ),
                );
                context.default_timezone
            }
        },
    };
    let schedule = schedule(&spec, problems);
    let start_date = spec
        .start_date
        .as_ref()
        .and_then(|date| parse_date(date, timezone, "start_date", problems));
    let end_date = spec
        .end_date
        .as_ref()
        .and_then(|date| parse_date(date, timezone, "end_date", problems));
    if let (Some(start), Some(end), Some(start_spec), Some(end_spec)) =
        (start_date, end_date, &spec.start_date, &spec.end_date)
        && start > end
    {
        problems.at(
            end_spec,
            format!(
                "end_date {} is before start_date {}: move end_date later or start_date earlier",
                end_spec.value.trim(),
                start_spec.value.trim()
            ),
        );
    }
    if let Some(schedule_spec) = &spec.schedule
        && schedule.is_time_based()
        && spec.start_date.is_none()
    {
        problems.at(
            schedule_spec,
            format!(
                "schedule `{}` needs a start_date: add e.g. `start_date: 2026-01-01`",
                schedule.describe()
            ),
        );
    }
    let max_active_runs = count(spec.max_active_runs.as_ref(), "max_active_runs", MAX_ACTIVE, problems).unwrap_or(16);
    let max_active_tasks =
        count(spec.max_active_tasks.as_ref(), "max_active_tasks", MAX_ACTIVE, problems).unwrap_or(16);
    let params = params(&spec.params, problems);
    let alerts = alerts(&spec, context, problems);
    let sla = spec.sla.as_ref().and_then(|sla| duration(sla, "sla", problems));
    let tasks = tasks::tasks(&spec, context, problems);

    let timetable = Timetable {
        schedule,
        timezone,
        start_date,
        end_date,
    };
    let mut dag = Dag::empty(dag_id?, path.to_path_buf(), timetable);
    dag.source = text.to_string();
    dag.description = spec.description;
    dag.owner = spec.owner.unwrap_or_else(|| "weir".to_string());
    dag.tags = spec.tags;
    dag.catchup = spec.catchup.unwrap_or(context.catchup_by_default);
    dag.max_active_runs = max_active_runs;
    dag.max_active_tasks = max_active_tasks;
    dag.is_paused_upon_creation = spec
        .is_paused_upon_creation
        .unwrap_or(context.dags_are_paused_at_creation);
    dag.params = params;
    dag.alerts = alerts;
    dag.sla = sla;
    Some(Dag::assemble(dag, tasks?))
}

fn dag_id(path: &Path, spec: &DagSpec, problems: &mut Problems) -> Option<DagId> {
    match &spec.dag_id {
        Some(id) => match DagId::parse(id.value.clone()) {
            Ok(dag_id) => Some(dag_id),
            Err(error) => {
                problems.at(id, error.to_string());
                None
            }
        },
        None => {
            let stem = path.file_stem().and_then(|stem| stem.to_str()).unwrap_or_default();
            match DagId::parse(stem) {
                Ok(dag_id) => Some(dag_id),
                Err(error) => {
                    problems.top(format!("{error} (taken from the file name): add a `dag_id:` key"));
                    None
                }
            }
        }
    }
}

fn schedule(spec: &DagSpec, problems: &mut Problems) -> Schedule {
    let Some(schedule) = &spec.schedule else {
        return Schedule::Never;
    };
    let parsed = match &schedule.value {
        ScheduleSpec::Text(text) => Schedule::parse(text, true),
        ScheduleSpec::Map(map) => match (&map.cron, &map.datasets) {
            (Some(cron), None) => Schedule::parse(cron, map.data_interval.unwrap_or(true)),
            (None, Some(datasets)) => {
                if map.data_interval.is_some() {
                    problems.at(schedule, "`data_interval` only applies to `cron:` schedules: remove it");
                }
                if datasets.is_empty() {
                    problems.at(
                        schedule,
                        "`datasets:` lists no dataset: name at least one, or use `schedule: null`",
                    );
                }
                Ok(Schedule::Datasets(datasets.clone()))
            }
            (Some(_), Some(_)) => {
                problems.at(
                    schedule,
                    "a schedule has `cron:` or `datasets:`, not both: keep one of them",
                );
                return Schedule::Never;
            }
            (None, None) => {
                problems.at(
                    schedule,
                    "the schedule map needs `cron:` (e.g. `cron: \"0 3 * * *\"`) or `datasets:`",
                );
                return Schedule::Never;
            }
        },
    };
    parsed.unwrap_or_else(|error| {
        problems.at(schedule, error.to_string());
        Schedule::Never
    })
}

fn parse_date(date: &Spanned<String>, timezone: Tz, key: &str, problems: &mut Problems) -> Option<DateTime<Utc>> {
    match parse_date_in(&date.value, timezone) {
        Ok(parsed) => Some(parsed),
        Err(DateError::NotADate(_)) => {
            problems.at(
                date,
                format!(
                    "{key} `{}` is not a date: write 2026-01-01, 2026-01-01T03:00:00 or an RFC 3339 time",
                    date.value
                ),
            );
            None
        }
        Err(error) => {
            problems.at(date, format!("{key}: {error}"));
            None
        }
    }
}

/// A count from 1 to `max`, reported at its value otherwise.
fn count(value: Option<&Spanned<i64>>, key: &str, max: u32, problems: &mut Problems) -> Option<u32> {
    let value = value?;
    if value.value < 1 {
        problems.at(value, format!("{key} must be at least 1, not {}", value.value));
        return None;
    }
    match u32::try_from(value.value) {
        Ok(count) if count <= max => Some(count),
        _ => {
            problems.at(value, format!("{key} must be at most {max}, not {}", value.value));
            None
        }
    }
}

/// A duration up to [`MAX_DURATION`], reported at its value otherwise.
fn duration(text: &Spanned<String>, key: &str, problems: &mut Problems) -> Option<Duration> {
    match parse_duration(&text.value) {
        Ok(duration) if duration <= MAX_DURATION => Some(duration),
        Ok(_) => {
            problems.at(
                text,
                format!(
                    "{key} `{}` is longer than weir accepts (365d): give at most 365d, or leave `{key}` out",
                    text.value.trim()
                ),
            );
            None
        }
        Err(error) => {
            problems.at(text, format!("{key}: {error}"));
            None
        }
    }
}

fn params(declared: &IndexMap<String, Spanned<ParamDecl>>, problems: &mut Problems) -> Params {
    let mut params = IndexMap::new();
    for (name, decl) in declared {
        let param = match &decl.value {
            ParamDecl::Plain(default) => Param {
                kind: ParamType::Any,
                default: Some(default.clone()),
                allowed: None,
                minimum: None,
                maximum: None,
                min_length: None,
                max_length: None,
                pattern: None,
                description: None,
            },
            ParamDecl::Full(spec) => {
                let kind = match spec.kind.as_deref() {
                    None => ParamType::Any,
                    Some(kind) => ParamType::parse(kind).unwrap_or_else(|| {
                        problems.at(decl, format!("param `{name}` has unknown type `{kind}`: use string, integer, number, boolean, array or object"));
                        ParamType::Any
                    }),
                };
                let pattern = spec.pattern.as_ref().and_then(|pattern| {
                    regex::Regex::new(pattern)
                        .map_err(|error| problems.at(decl, format!("param `{name}` has an invalid pattern: {error}")))
                        .ok()
                });
                let param = Param {
                    kind,
                    default: spec.default.as_ref().map(|default| default.value.clone()),
                    allowed: spec.allowed.clone(),
                    minimum: spec.minimum,
                    maximum: spec.maximum,
                    min_length: spec.min_length,
                    max_length: spec.max_length,
                    pattern,
                    description: spec.description.clone(),
                };
                if let (Some(default), Some(written)) = (&param.default, &spec.default) {
                    for problem in param.problems(name, default) {
                        problems.at(written, format!("the default breaks its own declaration: {problem}"));
                    }
                }
                param
            }
        };
        params.insert(name.clone(), param);
    }
    Params(params)
}

fn alerts(spec: &DagSpec, context: &ValidationContext, problems: &mut Problems) -> DagAlerts {
    let mut check = |names: &[Spanned<String>]| -> Vec<String> {
        names
            .iter()
            .map(|name| {
                if !context.alert_channels.contains(&name.value) {
                    let known: Vec<&str> = context.alert_channels.iter().map(String::as_str).collect();
                    problems.at(
                        name,
                        format!(
                            "unknown alert channel `{}`: define [alerts.{}] in config.toml (known channels: {})",
                            name.value,
                            name.value,
                            if known.is_empty() {
                                "none".to_string()
                            } else {
                                known.join(", ")
                            }
                        ),
                    );
                }
                name.value.clone()
            })
            .collect()
    };
    DagAlerts {
        on_failure: spec.alerts.on_failure.as_deref().map(&mut check),
        on_retry: spec.alerts.on_retry.as_deref().map(&mut check),
        on_success: spec.alerts.on_success.as_deref().map(&mut check),
        sla_miss: spec.alerts.sla_miss.as_deref().map(&mut check),
    }
}

/// The task fields after merging `defaults:` under each task's own values.
fn merged<'a, T>(own: &'a Option<T>, default: Option<&'a Option<T>>) -> Option<&'a T> {
    own.as_ref().or_else(|| default.and_then(Option::as_ref))
}

fn check_template(value: &Spanned<String>, field: &str, problems: &mut Problems) {
    if let Err(error) = template::check_syntax(&value.value) {
        problems.at(
            value,
            format!("template error in `{field}`: {error}; check the {{{{ }}}} and {{% %}} pairs"),
        );
    }
}

#[cfg(test)]
mod tests;
