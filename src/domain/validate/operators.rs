//! What each task type needs (§5): turns a task's type-specific keys into an [`Operator`], and
//! reports keys that are missing, malformed or belong to another type.

use std::time::Duration;

use serde_saphyr::{Location, Spanned};

use super::{Problems, check_template, duration, merged};
use crate::domain::dag::{HttpBody, HttpTask, Operator, StatusExpectation, StatusRule};
use crate::domain::spec::TaskSpec;
use crate::domain::template;

mod sensor;
mod sql;

use sensor::{sensor, trigger_dag};
use sql::{sql, transfer};

/// The task types of §5.
pub const TASK_TYPES: &[&str] = &["shell", "http", "sql", "transfer", "sensor", "trigger_dag"];

const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Airflow's `skip_on_exit_code` default.
const DEFAULT_SKIP_EXIT_CODE: i32 = 99;
const HTTP_METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/// One task's keys, its own and the `defaults:` block's.
pub(super) struct TaskKeys<'a> {
    pub task_id: &'a str,
    /// Where the task is declared (its id), for problems about the task as a whole.
    pub at: Location,
    pub own: &'a TaskSpec,
    pub defaults: Option<&'a TaskSpec>,
}

impl TaskKeys<'_> {
    fn pick<T>(&self, field: fn(&TaskSpec) -> &Option<T>) -> Option<&T> {
        merged(field(self.own), self.defaults.map(field))
    }

    /// The type-specific keys set on this task itself, with where they are.
    fn own_type_keys(&self) -> Vec<(&'static str, Location)> {
        let own = self.own;
        let mut keys = Vec::new();
        let mut add = |name: &'static str, at: Option<Location>| {
            if let Some(at) = at {
                keys.push((name, at));
            }
        };
        add("command", own.command.as_ref().map(|v| v.referenced));
        add("cwd", own.cwd.as_ref().map(|v| v.referenced));
        add("skip_exit_code", own.skip_exit_code.as_ref().map(|v| v.referenced));
        add("conn", own.conn.as_ref().map(|v| v.referenced));
        add("url", own.url.as_ref().map(|v| v.referenced));
        add("method", own.method.as_ref().map(|v| v.referenced));
        add("headers", own.headers.as_ref().map(|_| self.at));
        add("json", own.json.as_ref().map(|v| v.referenced));
        add("body", own.body.as_ref().map(|v| v.referenced));
        add("expect_status", own.expect_status.as_ref().map(|v| v.referenced));
        add("request_timeout", own.request_timeout.as_ref().map(|v| v.referenced));
        add("sql", own.sql.as_ref().map(|v| v.referenced));
        add("sql_file", own.sql_file.as_ref().map(|v| v.referenced));
        add("parameters", own.parameters.as_ref().map(|v| v.referenced));
        add("from", own.from.as_ref().map(|v| v.referenced));
        add("to", own.to.as_ref().map(|v| v.referenced));
        add("batch_size", own.batch_size.as_ref().map(|v| v.referenced));
        add("file", own.file.as_ref().map(|v| v.referenced));
        add("http", own.http.as_ref().map(|v| v.referenced));
        add("dag_run", own.dag_run.as_ref().map(|v| v.referenced));
        add("poke_interval", own.poke_interval.as_ref().map(|v| v.referenced));
        add("soft_fail", own.soft_fail.map(|_| self.at));
        add("dag_id", own.dag_id.as_ref().map(|v| v.referenced));
        add("conf", own.conf.as_ref().map(|v| v.referenced));
        add("wait_for_completion", own.wait_for_completion.map(|_| self.at));
        keys
    }
}

/// The keys each type reads besides the common ones.
fn keys_of(type_name: &str) -> &'static [&'static str] {
    match type_name {
        "shell" => &["command", "cwd", "skip_exit_code"],
        "http" => &[
            "conn",
            "url",
            "method",
            "headers",
            "json",
            "body",
            "expect_status",
            "request_timeout",
        ],
        "sql" => &["conn", "sql", "sql_file", "parameters"],
        "transfer" => &["from", "to", "batch_size"],
        "sensor" => &["file", "http", "sql", "dag_run", "poke_interval", "soft_fail"],
        "trigger_dag" => &["dag_id", "conf", "wait_for_completion", "poke_interval"],
        _ => &[],
    }
}

/// Builds the operator of a task of type `type_name`; `None` when something is wrong (reported).
pub(super) fn operator(
    type_name: &str,
    type_at: Location,
    keys: &TaskKeys<'_>,
    problems: &mut Problems,
) -> Option<Operator> {
    if !TASK_TYPES.contains(&type_name) {
        problems.at_location(
            type_at,
            format!("unknown task type `{type_name}`: use one of {}", TASK_TYPES.join(", ")),
        );
        return None;
    }
    let allowed = keys_of(type_name);
    let mut foreign = false;
    for (key, at) in keys.own_type_keys() {
        if !allowed.contains(&key) {
            let owner = TASK_TYPES
                .iter()
                .filter(|other| keys_of(other).contains(&key))
                .copied()
                .collect::<Vec<_>>()
                .join(" and ");
            problems.at_location(
                at,
                format!(
                    "`{key}` is not used by {type_name} tasks (it belongs to {owner} tasks): remove it or change `type:`"
                ),
            );
            foreign = true;
        }
    }
    let built = match type_name {
        "shell" => shell(keys, problems),
        "http" => http(keys, problems),
        "sql" => sql(keys, problems),
        "transfer" => transfer(keys, problems),
        "sensor" => sensor(keys, problems),
        _ => trigger_dag(keys, problems),
    };
    if foreign { None } else { built }
}

fn templated(value: &Spanned<String>, field: &str, problems: &mut Problems) -> String {
    check_template(value, field, problems);
    value.value.clone()
}

/// Checks the template syntax of every string inside a JSON value.
fn check_json_templates(value: &serde_json::Value, field: &str, at: Location, problems: &mut Problems) {
    match value {
        serde_json::Value::String(text) => {
            if let Err(error) = template::check_syntax(text) {
                problems.at_location(
                    at,
                    format!("template error in `{field}`: {error}; check the {{{{ }}}} and {{% %}} pairs"),
                );
            }
        }
        serde_json::Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                check_json_templates(item, &format!("{field}.{index}"), at, problems);
            }
        }
        serde_json::Value::Object(map) => {
            for (key, item) in map {
                check_json_templates(item, &format!("{field}.{key}"), at, problems);
            }
        }
        _ => {}
    }
}

fn missing(keys: &TaskKeys<'_>, problems: &mut Problems, message: String) {
    problems.at_location(keys.at, message);
}

fn shell(keys: &TaskKeys<'_>, problems: &mut Problems) -> Option<Operator> {
    let Some(command) = keys.pick(|d| &d.command) else {
        missing(
            keys,
            problems,
            format!(
                "task `{}` is a shell task without `command:`: add the command to run",
                keys.task_id
            ),
        );
        return None;
    };
    if template::check_syntax(&command.value).is_ok()
        && let Err(error) = template::check_shell_command(&command.value)
    {
        problems.at(command, format!("template error in `command`: {error}"));
    }
    let command = templated(command, "command", problems);
    let cwd = keys.pick(|d| &d.cwd).map(|cwd| templated(cwd, "cwd", problems));
    let skip_exit_code = match keys.pick(|d| &d.skip_exit_code) {
        None => DEFAULT_SKIP_EXIT_CODE,
        Some(code) => skip_exit_code(code, problems)?,
    };
    Some(Operator::Shell {
        command,
        cwd,
        skip_exit_code,
    })
}

/// An exit code a process can end with (1 to 255: 0 is success, and a shell reports a signal
/// as 128 + its number), reported at its value otherwise.
fn skip_exit_code(code: &Spanned<i64>, problems: &mut Problems) -> Option<i32> {
    match i32::try_from(code.value) {
        Ok(value @ 1..=255) => Some(value),
        Ok(0) => {
            problems.at(
                code,
                "skip_exit_code cannot be 0: exit code 0 means success; pick another code from 1 to 255 (99 if you leave it out)",
            );
            None
        }
        _ => {
            problems.at(
                code,
                format!(
                    "skip_exit_code must be an exit code from 1 to 255, not {}: a process cannot end with any other",
                    code.value
                ),
            );
            None
        }
    }
}

/// `expect_status`: `200`, `"2xx"`, or a list of either.
fn status_expectation(value: &serde_json::Value, at: Location, problems: &mut Problems) -> Option<StatusExpectation> {
    fn rule(value: &serde_json::Value) -> Option<StatusRule> {
        match value {
            serde_json::Value::Number(number) => {
                let code = u16::try_from(number.as_u64()?).ok()?;
                (100..=599).contains(&code).then_some(StatusRule::Exact(code))
            }
            serde_json::Value::String(text) => {
                let text = text.trim().to_ascii_lowercase();
                if let Some(class) = text.strip_suffix("xx") {
                    let class: u16 = class.parse().ok()?;
                    (1..=5).contains(&class).then_some(StatusRule::Class(class))
                } else {
                    let code: u16 = text.parse().ok()?;
                    (100..=599).contains(&code).then_some(StatusRule::Exact(code))
                }
            }
            _ => None,
        }
    }
    let items: Vec<&serde_json::Value> = match value {
        serde_json::Value::Array(items) => items.iter().collect(),
        single => vec![single],
    };
    let rules: Option<Vec<StatusRule>> = items.into_iter().map(rule).collect();
    match rules {
        Some(rules) if !rules.is_empty() => Some(StatusExpectation(rules)),
        _ => {
            problems.at_location(
                at,
                "`expect_status` must be a status code (200), a class (\"2xx\"), or a list of them, e.g. [200, 204]",
            );
            None
        }
    }
}

fn http(keys: &TaskKeys<'_>, problems: &mut Problems) -> Option<Operator> {
    let conn = keys.pick(|d| &d.conn).map(|conn| conn.value.clone());
    let url = match keys.pick(|d| &d.url) {
        Some(url) => templated(url, "url", problems),
        None if conn.is_some() => String::new(),
        None => {
            missing(
                keys,
                problems,
                format!(
                    "http task `{}` has neither `url:` nor `conn:`: give the URL to call, or a connection whose URL is the base",
                    keys.task_id
                ),
            );
            return None;
        }
    };
    let body = match (keys.own.json.as_ref(), keys.own.body.as_ref()) {
        (Some(json), Some(_)) => {
            problems.at(json, "give either `json:` or `body:`, not both");
            return None;
        }
        (Some(json), None) => {
            check_json_templates(&json.value, "json", json.referenced, problems);
            HttpBody::Json(json.value.clone())
        }
        (None, Some(body)) => HttpBody::Text(templated(body, "body", problems)),
        (None, None) => HttpBody::None,
    };
    let method = match keys.pick(|d| &d.method) {
        Some(method) => {
            let upper = method.value.to_ascii_uppercase();
            if !HTTP_METHODS.contains(&upper.as_str()) {
                problems.at(
                    method,
                    format!(
                        "unknown HTTP method `{}`: use one of {}",
                        method.value,
                        HTTP_METHODS.join(", ")
                    ),
                );
            }
            upper
        }
        // A request with a body is a POST unless said otherwise; without one, a GET.
        None if body == HttpBody::None => "GET".to_string(),
        None => "POST".to_string(),
    };
    let headers = keys
        .own
        .headers
        .iter()
        .flatten()
        .map(|(name, value)| (name.clone(), templated(value, &format!("headers.{name}"), problems)))
        .collect();
    let expect_status = match keys.pick(|d| &d.expect_status) {
        Some(value) => status_expectation(&value.value, value.referenced, problems)?,
        None => StatusExpectation::any_2xx(),
    };
    let request_timeout = keys
        .pick(|d| &d.request_timeout)
        .and_then(|text| duration(text, "request_timeout", problems))
        .unwrap_or(DEFAULT_REQUEST_TIMEOUT);
    Some(Operator::Http(Box::new(HttpTask {
        conn,
        url,
        method,
        headers,
        body,
        expect_status,
        request_timeout,
    })))
}
