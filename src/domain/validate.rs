//! Turns a DAG file's text into a validated [`Dag`], or into every problem found in it, each with
//! line:column and a hint (§2). Parsing stops at the first syntax or type error (the YAML reader
//! cannot go on past it); every check after parsing reports all of its findings at once.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use indexmap::IndexMap;
use serde_saphyr::Spanned;

use super::dag::{Dag, DagAlerts, Operator, RetryPolicy, Task};
use super::duration::parse_duration;
use super::ids::{DagId, TaskId};
use super::params::{Param, ParamType, Params};
use super::schedule::{Schedule, Timetable};
use super::spec::{DagSpec, ParamDecl, ScheduleSpec, TaskSpec};
use super::template;
use super::trigger_rule::TriggerRule;

/// What validation needs to know from the configuration.
#[derive(Debug, Clone)]
pub struct ValidationContext {
    pub default_timezone: Tz,
    pub catchup_by_default: bool,
    pub dags_are_paused_at_creation: bool,
    pub default_task_retries: u32,
    pub default_task_retry_delay: Duration,
    pub pools: BTreeSet<String>,
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
            pools: BTreeSet::from(["default".to_string()]),
            alert_channels: BTreeSet::new(),
        }
    }
}

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

impl Dag {
    /// Parses and validates one DAG file. `path` names the file in messages and gives the default
    /// `dag_id` (its stem) and the folder tasks run in.
    pub fn from_yaml(
        path: &Path,
        text: &str,
        context: &ValidationContext,
    ) -> Result<Dag, DagFileError> {
        let fail = |problems: Vec<Problem>| DagFileError {
            path: path.to_path_buf(),
            problems,
        };
        let spec: DagSpec =
            serde_saphyr::from_str(text).map_err(|error| fail(vec![syntax_problem(&error)]))?;
        let mut problems = Problems(Vec::new());
        let dag = build(path, text, spec, context, &mut problems);
        match dag {
            Some(dag) if problems.0.is_empty() => Ok(dag),
            _ => {
                problems
                    .0
                    .sort_by_key(|problem| (problem.line, problem.column));
                Err(fail(problems.0))
            }
        }
    }
}

fn syntax_problem(error: &serde_saphyr::Error) -> Problem {
    let (line, column) = error
        .location()
        .map(|location| {
            (
                u32::try_from(location.line()).unwrap_or(u32::MAX).max(1),
                u32::try_from(location.column()).unwrap_or(u32::MAX).max(1),
            )
        })
        .unwrap_or((1, 1));
    let rendered = error.without_snippet().to_string();
    // The rendered message may carry its own "line N column M" prefix; we report those as fields.
    let message = rendered
        .lines()
        .next()
        .unwrap_or("invalid YAML")
        .trim()
        .to_string();
    let hint = if message.contains("unknown field") {
        " (check the spelling; see the DAG file format in SPEC §2)"
    } else if message.contains("duplicate") {
        " (each key may appear once)"
    } else {
        ""
    };
    Problem {
        line,
        column,
        message: format!("{message}{hint}"),
    }
}

fn build(
    path: &Path,
    text: &str,
    spec: DagSpec,
    context: &ValidationContext,
    problems: &mut Problems,
) -> Option<Dag> {
    let dag_id = dag_id(path, &spec, problems);
    let timezone = match &spec.timezone {
        None => context.default_timezone,
        Some(name) => match name.value.parse::<Tz>() {
            Ok(timezone) => timezone,
            Err(_) => {
                problems.at(name, format!("`{}` is not an IANA time zone name: use one like UTC, Europe/Berlin or Asia/Seoul", name.value));
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
    if let (Some(start), Some(end), Some(end_spec)) = (start_date, end_date, &spec.end_date)
        && start > end
    {
        problems.at(end_spec, format!("end_date {end} is before start_date {start}: move end_date later or start_date earlier"));
    }
    if schedule.is_time_based() && start_date.is_none() {
        problems.top(format!(
            "schedule `{}` needs a start_date: add e.g. `start_date: 2026-01-01`",
            schedule.describe()
        ));
    }
    let max_active_runs = positive(spec.max_active_runs, 16, "max_active_runs", problems);
    let max_active_tasks = positive(spec.max_active_tasks, 16, "max_active_tasks", problems);
    let params = params(&spec.params, problems);
    let alerts = alerts(&spec, context, problems);
    let sla = spec
        .sla
        .as_ref()
        .and_then(|sla| duration(sla, "sla", problems));
    let tasks = tasks(&spec, context, problems);

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
            let stem = path
                .file_stem()
                .and_then(|stem| stem.to_str())
                .unwrap_or_default();
            match DagId::parse(stem) {
                Ok(dag_id) => Some(dag_id),
                Err(error) => {
                    problems.top(format!(
                        "{error} (taken from the file name): add a `dag_id:` key"
                    ));
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
        ScheduleSpec::Cron(cron) => Schedule::parse(&cron.cron, cron.data_interval),
        ScheduleSpec::Datasets(datasets) => {
            if datasets.datasets.is_empty() {
                problems.at(
                    schedule,
                    "`datasets:` lists no dataset: name at least one, or use `schedule: null`",
                );
            }
            Ok(Schedule::Datasets(datasets.datasets.clone()))
        }
    };
    parsed.unwrap_or_else(|error| {
        problems.at(schedule, error.to_string());
        Schedule::Never
    })
}

/// Dates are `2026-01-01`, `2026-01-01T03:00:00` (both in the DAG's time zone) or RFC 3339.
pub fn parse_date_in(text: &str, timezone: Tz) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(instant) = DateTime::parse_from_rfc3339(text) {
        return Some(instant.with_timezone(&Utc));
    }
    let naive = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .or_else(|| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S").ok())
        .or_else(|| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").ok())
        .or_else(|| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M").ok())
        .or_else(|| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").ok())?;
    timezone
        .from_local_datetime(&naive)
        .earliest()
        .map(|local| local.with_timezone(&Utc))
}

fn parse_date(
    date: &Spanned<String>,
    timezone: Tz,
    key: &str,
    problems: &mut Problems,
) -> Option<DateTime<Utc>> {
    let parsed = parse_date_in(&date.value, timezone);
    if parsed.is_none() {
        problems.at(
            date,
            format!("{key} `{}` is not a date: write 2026-01-01, 2026-01-01T03:00:00 or an RFC 3339 time", date.value),
        );
    }
    parsed
}

fn positive(value: Option<u32>, default: u32, key: &str, problems: &mut Problems) -> u32 {
    match value {
        Some(0) => {
            problems.top(format!("{key} must be at least 1"));
            default
        }
        Some(value) => value,
        None => default,
    }
}

fn duration(text: &Spanned<String>, key: &str, problems: &mut Problems) -> Option<Duration> {
    match parse_duration(&text.value) {
        Ok(duration) => Some(duration),
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
                        .map_err(|error| {
                            problems.at(
                                decl,
                                format!("param `{name}` has an invalid pattern: {error}"),
                            )
                        })
                        .ok()
                });
                let param = Param {
                    kind,
                    default: spec.default.clone(),
                    allowed: spec.allowed.clone(),
                    minimum: spec.minimum,
                    maximum: spec.maximum,
                    min_length: spec.min_length,
                    max_length: spec.max_length,
                    pattern,
                    description: spec.description.clone(),
                };
                if let Some(default) = &param.default {
                    for problem in param.problems(name, default) {
                        problems.at(
                            decl,
                            format!("the default breaks its own declaration: {problem}"),
                        );
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
                            if known.is_empty() { "none".to_string() } else { known.join(", ") }
                        ),
                    );
                }
                name.value.clone()
            })
            .collect()
    };
    DagAlerts {
        on_failure: check(&spec.alerts.on_failure),
        on_retry: check(&spec.alerts.on_retry),
        on_success: check(&spec.alerts.on_success),
        sla_miss: check(&spec.alerts.sla_miss),
    }
}

/// The task fields after merging `defaults:` under each task's own values.
fn merged<'a, T>(own: &'a Option<T>, default: Option<&'a Option<T>>) -> Option<&'a T> {
    own.as_ref().or_else(|| default.and_then(Option::as_ref))
}

const OTHER_TASK_TYPES: &[&str] = &["http", "sql", "transfer", "sensor", "trigger_dag"];

fn tasks(
    spec: &DagSpec,
    context: &ValidationContext,
    problems: &mut Problems,
) -> Option<Vec<Task>> {
    if spec.tasks.is_empty() {
        problems.top("`tasks:` is empty: a DAG needs at least one task");
    }
    let defaults = spec.defaults.as_ref();
    if let Some(defaults) = defaults
        && let Some(depends_on) = defaults
            .value
            .depends_on
            .as_ref()
            .and_then(|list| list.first())
    {
        problems.at(
            depends_on,
            "depends_on cannot be a default: set it on each task",
        );
    }
    let default =
        |pick: fn(&TaskSpec) -> &Option<Spanned<String>>| defaults.map(|d| pick(&d.value));

    let mut ids: HashMap<&str, TaskId> = HashMap::new();
    let mut built: Vec<(Task, &Spanned<TaskSpec>)> = Vec::new();
    let mut all_valid = true;
    for (raw_id, task_spec) in &spec.tasks {
        let task_id = match TaskId::parse(raw_id.value.clone()) {
            Ok(task_id) => task_id,
            Err(error) => {
                problems.at(raw_id, error.to_string());
                all_valid = false;
                continue;
            }
        };
        ids.insert(raw_id.value.as_str(), task_id.clone());
        let own = &task_spec.value;
        let fallback = defaults.map(|d| &d.value);

        let kind = merged(&own.kind, default(|d| &d.kind));
        let type_name = kind.map(|kind| kind.value.as_str()).unwrap_or("shell");
        let operator = match type_name {
            "shell" => match merged(&own.command, default(|d| &d.command)) {
                Some(command) => {
                    check_template(command, "command", problems);
                    let cwd = merged(&own.cwd, default(|d| &d.cwd));
                    if let Some(cwd) = cwd {
                        check_template(cwd, "cwd", problems);
                    }
                    Some(Operator::Shell {
                        command: command.value.clone(),
                        cwd: cwd.map(|cwd| cwd.value.clone()),
                        skip_exit_code: own
                            .skip_exit_code
                            .or(fallback.and_then(|d| d.skip_exit_code))
                            .unwrap_or(99),
                    })
                }
                None => {
                    problems.at(task_spec, format!("task `{task_id}` is a shell task without `command:`: add the command to run"));
                    None
                }
            },
            other => {
                let location = kind
                    .map(|kind| kind.referenced)
                    .unwrap_or(task_spec.referenced);
                let message = if OTHER_TASK_TYPES.contains(&other) {
                    format!(
                        "task type `{other}` is not supported by this version of weir yet: use `type: shell`"
                    )
                } else {
                    format!(
                        "unknown task type `{other}`: use shell (http, sql, transfer, sensor and trigger_dag are planned)"
                    )
                };
                problems.at_location(location, message);
                None
            }
        };

        let trigger_rule = match merged(&own.trigger_rule, default(|d| &d.trigger_rule)) {
            None => TriggerRule::AllSuccess,
            Some(rule) => {
                rule.value
                    .parse()
                    .unwrap_or_else(|error: super::state::UnknownVariant| {
                        problems.at(rule, error.to_string());
                        TriggerRule::AllSuccess
                    })
            }
        };
        let retry_delay = merged(&own.retry_delay, default(|d| &d.retry_delay))
            .and_then(|text| duration(text, "retry_delay", problems))
            .unwrap_or(context.default_task_retry_delay);
        let max_retry_delay = merged(&own.max_retry_delay, default(|d| &d.max_retry_delay))
            .and_then(|text| duration(text, "max_retry_delay", problems));
        let timeout = merged(&own.timeout, default(|d| &d.timeout))
            .and_then(|text| duration(text, "timeout", problems));
        if timeout == Some(Duration::ZERO) {
            problems.at(
                task_spec,
                format!(
                    "task `{task_id}` has a zero timeout: remove it or give a positive duration"
                ),
            );
        }
        let pool = match merged(&own.pool, default(|d| &d.pool)) {
            None => "default".to_string(),
            Some(pool) => {
                if !context.pools.contains(&pool.value) {
                    let known: Vec<&str> = context.pools.iter().map(String::as_str).collect();
                    problems.at(
                        pool,
                        format!("unknown pool `{}`: add it under [pools] in config.toml (known pools: {})", pool.value, known.join(", ")),
                    );
                }
                pool.value.clone()
            }
        };
        let pool_slots = own
            .pool_slots
            .or(fallback.and_then(|d| d.pool_slots))
            .unwrap_or(1);
        if pool_slots == 0 {
            problems.at(
                task_spec,
                format!("task `{task_id}` has pool_slots 0: use at least 1"),
            );
        }
        let mut env = Vec::new();
        for source in [fallback.and_then(|d| d.env.as_ref()), own.env.as_ref()]
            .into_iter()
            .flatten()
        {
            for (name, value) in source {
                check_template(value, &format!("env.{name}"), problems);
                env.retain(|(existing, _): &(String, String)| existing != name);
                env.push((name.clone(), value.value.clone()));
            }
        }
        let Some(operator) = operator else {
            all_valid = false;
            continue;
        };
        let task = Task {
            task_id,
            operator,
            upstream: Vec::new(),
            downstream: Vec::new(),
            trigger_rule,
            retry: RetryPolicy {
                retries: own
                    .retries
                    .or(fallback.and_then(|d| d.retries))
                    .unwrap_or(context.default_task_retries),
                retry_delay,
                exponential_backoff: own
                    .retry_exponential_backoff
                    .or(fallback.and_then(|d| d.retry_exponential_backoff))
                    .unwrap_or(false),
                max_retry_delay,
            },
            timeout,
            pool,
            pool_slots,
            priority_weight: own
                .priority_weight
                .or(fallback.and_then(|d| d.priority_weight))
                .unwrap_or(1),
            env,
            depends_on_past: own
                .depends_on_past
                .or(fallback.and_then(|d| d.depends_on_past))
                .unwrap_or(false),
            outlets: own
                .outlets
                .clone()
                .or_else(|| fallback.and_then(|d| d.outlets.clone()))
                .unwrap_or_default(),
            doc: own.doc.clone(),
        };
        built.push((task, task_spec));
    }

    // Dependencies: every entry must name another task, once.
    for (task, task_spec) in &mut built {
        let mut seen = HashSet::new();
        for entry in task_spec.value.depends_on.iter().flatten() {
            match ids.get(entry.value.as_str()) {
                None => {
                    let mut known: Vec<&str> = ids.keys().copied().collect();
                    known.sort_unstable();
                    problems.at(
                        entry,
                        format!(
                            "task `{}` depends on unknown task `{}`: known tasks are {}",
                            task.task_id,
                            entry.value,
                            known.join(", ")
                        ),
                    );
                }
                Some(upstream) if *upstream == task.task_id => {
                    problems.at(
                        entry,
                        format!(
                            "task `{}` depends on itself: remove it from its own depends_on",
                            task.task_id
                        ),
                    );
                }
                Some(upstream) => {
                    if seen.insert(upstream.clone()) {
                        task.upstream.push(upstream.clone());
                    } else {
                        problems.at(
                            entry,
                            format!(
                                "task `{}` lists `{}` twice in depends_on: remove one",
                                task.task_id, entry.value
                            ),
                        );
                    }
                }
            }
        }
    }
    let ordered = topological_order(&built, problems)?;
    if !all_valid {
        return None;
    }
    Some(ordered)
}

/// Orders tasks so each comes after its upstream tasks; a cycle is reported with its members.
fn topological_order(
    built: &[(Task, &Spanned<TaskSpec>)],
    problems: &mut Problems,
) -> Option<Vec<Task>> {
    let position: HashMap<&TaskId, usize> = built
        .iter()
        .enumerate()
        .map(|(i, (task, _))| (&task.task_id, i))
        .collect();
    // Depth-first search with colours; a grey node reached again closes a cycle.
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        White,
        Grey,
        Black,
    }
    let mut marks = vec![Mark::White; built.len()];
    let mut order = Vec::with_capacity(built.len());
    let mut cycle_found = false;
    for start in 0..built.len() {
        if marks[start] != Mark::White {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        marks[start] = Mark::Grey;
        while let Some(&mut (node, ref mut next_edge)) = stack.last_mut() {
            let upstream = &built[node].0.upstream;
            if *next_edge < upstream.len() {
                let target = position[&upstream[*next_edge]];
                *next_edge += 1;
                match marks[target] {
                    Mark::White => {
                        marks[target] = Mark::Grey;
                        stack.push((target, 0));
                    }
                    Mark::Grey if !cycle_found => {
                        cycle_found = true;
                        let from = stack.iter().position(|(n, _)| *n == target).unwrap_or(0);
                        // The stack walks upstream edges: each member depends on the next one.
                        let members: Vec<&str> = stack[from..]
                            .iter()
                            .map(|(n, _)| built[*n].0.task_id.as_str())
                            .collect();
                        let first = members.first().copied().unwrap_or_default();
                        let path = format!(
                            "{} -> {first} (each depends on the next)",
                            members.join(" -> ")
                        );
                        let culprit = built[node].1;
                        let entry = culprit
                            .value
                            .depends_on
                            .iter()
                            .flatten()
                            .find(|entry| entry.value == built[target].0.task_id.as_str());
                        let message = format!(
                            "tasks form a cycle: {path}; remove one of these depends_on entries"
                        );
                        match entry {
                            Some(entry) => problems.at(entry, message),
                            None => problems.at(culprit, message),
                        }
                    }
                    _ => {}
                }
            } else {
                marks[node] = Mark::Black;
                order.push(node);
                stack.pop();
            }
        }
    }
    if cycle_found {
        return None;
    }
    let mut tasks: Vec<Task> = order.into_iter().map(|i| built[i].0.clone()).collect();
    let mut downstream: HashMap<TaskId, Vec<TaskId>> = HashMap::new();
    for task in &tasks {
        for upstream in &task.upstream {
            downstream
                .entry(upstream.clone())
                .or_default()
                .push(task.task_id.clone());
        }
    }
    for task in &mut tasks {
        task.downstream = downstream.remove(&task.task_id).unwrap_or_default();
    }
    Some(tasks)
}

fn check_template(value: &Spanned<String>, field: &str, problems: &mut Problems) {
    if let Err(error) = template::check_syntax(&value.value) {
        problems.at(
            value,
            format!("template error in `{field}`: {error}; check the {{{{ }}}} and {{% %}} pairs"),
        );
    }
}
