//! Preparing one attempt of a task: the template context of §2, the rendered fields, the
//! environment of §4, the log and output paths, and the secrets to mask.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use chrono::{DateTime, Duration as ChronoDuration, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use crate::domain::dag::{Dag, Operator, SqlSource, SqlTask, Task};
use crate::domain::template::{self, RenderError};
use crate::storage::runs::DagRun;

/// The fields of one attempt after rendering: the operator with every templated field filled in
/// (a sql file read), and the task's env.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedFields {
    pub operator: Operator,
    pub env: Vec<(String, String)>,
}

impl RenderedFields {
    /// As stored with the attempt and shown by `weir tasks render`: field name → rendered text,
    /// and `env` as a map.
    pub fn to_json(&self) -> Value {
        let mut fields: Map<String, Value> = self
            .operator
            .templated_fields()
            .into_iter()
            .map(|(name, text)| (name, Value::String(text)))
            .collect();
        let env: Map<String, Value> = self
            .env
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        fields.insert("env".to_string(), Value::Object(env));
        Value::Object(fields)
    }
}

/// Variables from `WEIR_VAR_<NAME>` (name lower-cased), as Airflow reads `AIRFLOW_VAR_<NAME>`.
pub fn variables_from_env(environment: impl IntoIterator<Item = (String, String)>) -> BTreeMap<String, String> {
    environment
        .into_iter()
        .filter_map(|(name, value)| name.strip_prefix("WEIR_VAR_").map(|var| (var.to_lowercase(), value)))
        .collect()
}

/// Names that mark a value as secret (§4); defined in the domain, where connections use it too.
pub use crate::domain::secret::is_secret_name;

/// Passwords of connections given as `WEIR_CONN_<NAME>=<url>` (§5.8): never shown.
pub fn connection_passwords_from_env(environment: impl IntoIterator<Item = (String, String)>) -> Vec<String> {
    environment
        .into_iter()
        .filter(|(name, _)| name.starts_with("WEIR_CONN_"))
        .filter_map(|(_, url)| {
            let after_scheme = url.split_once("://")?.1;
            let credentials = after_scheme.rsplit_once('@')?.0;
            let password = credentials.split_once(':')?.1;
            (!password.is_empty()).then(|| password.to_string())
        })
        .collect()
}

/// Values to mask in logs and rendered fields: secret-named variables and task env values, and
/// connection passwords.
pub fn secrets(
    variables: &BTreeMap<String, String>,
    task_env: &[(String, String)],
    connection_passwords: &[String],
) -> Vec<String> {
    let mut secrets: Vec<String> = variables
        .iter()
        .map(|(name, value)| (name.as_str(), value))
        .chain(task_env.iter().map(|(name, value)| (name.as_str(), value)))
        .filter(|(name, value)| is_secret_name(name) && !value.is_empty())
        .map(|(_, value)| value.clone())
        .collect();
    secrets.extend(connection_passwords.iter().cloned());
    secrets
}

fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, false)
}

/// The neighbouring scheduled logical dates, for `prev_ds`/`next_ds`.
fn neighbours(dag: &Dag, logical_date: DateTime<Utc>) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let timetable = &dag.timetable;
    if !timetable.schedule.is_time_based() {
        return (None, None);
    }
    let next = timetable.next_after(Some(logical_date)).map(|run| run.logical_date);
    // Widening windows keep this cheap for minutely schedules and correct for yearly ones.
    let previous = [1, 40, 400, 4000].into_iter().find_map(|days| {
        let from = logical_date - ChronoDuration::days(days);
        timetable
            .runs_between(from, logical_date - ChronoDuration::microseconds(1))
            .last()
            .map(|run| run.logical_date)
    });
    (previous, next)
}

/// The template context of §2 for one attempt.
pub fn template_context(
    dag: &Dag,
    run: &DagRun,
    task_id: &str,
    try_number: u32,
    outputs: &HashMap<String, String>,
    variables: &BTreeMap<String, String>,
    connections: &Value,
) -> Value {
    let timezone = dag.timetable.timezone;
    let local = run.logical_date.with_timezone(&timezone);
    let ds = local.format("%Y-%m-%d").to_string();
    let (previous, next) = neighbours(dag, run.logical_date);
    let format_ds =
        |time: Option<DateTime<Utc>>| time.map(|time| time.with_timezone(&timezone).format("%Y-%m-%d").to_string());
    let tasks: Map<String, Value> = outputs
        .iter()
        .map(|(task, output)| {
            let value = serde_json::from_str(output).unwrap_or_else(|_| Value::String(output.clone()));
            (task.clone(), json!({ "output": value }))
        })
        .collect();
    // `var.name` as the spec says; `var.value.name` and `var.json.name` as Airflow users write it.
    let plain: Map<String, Value> = variables
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let parsed: Map<String, Value> = variables
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.clone())),
            )
        })
        .collect();
    let mut var = plain.clone();
    var.insert("value".to_string(), Value::Object(plain));
    var.insert("json".to_string(), Value::Object(parsed));
    json!({
        "ds": ds,
        "ds_nodash": ds.replace('-', ""),
        "ts": rfc3339(run.logical_date),
        "ts_nodash": run.logical_date.format("%Y%m%dT%H%M%S").to_string(),
        "logical_date": rfc3339(run.logical_date),
        "data_interval_start": rfc3339(run.data_interval_start),
        "data_interval_end": rfc3339(run.data_interval_end),
        "prev_ds": format_ds(previous),
        "next_ds": format_ds(next),
        "run_id": run.run_id.as_str(),
        "dag_id": dag.dag_id.as_str(),
        "task_id": task_id,
        "try_number": try_number,
        "params": run.conf.clone(),
        "conf": run.conf.clone(),
        "var": var,
        "conn": connections,
        "tasks": tasks,
    })
}

/// Whether rendering `task` reads the template context: some field has template syntax, or it
/// runs a SQL file (read, and rendered, at each attempt). A task without either renders to
/// itself, so the scheduler skips building a context for it.
pub fn needs_context(task: &Task) -> bool {
    matches!(
        task.operator,
        Operator::Sql(SqlTask {
            sql: SqlSource::File(_),
            ..
        })
    ) || task
        .operator
        .templated_fields()
        .iter()
        .any(|(_, text)| template::has_syntax(text))
        || task.env.iter().any(|(_, value)| template::has_syntax(value))
}

/// Renders every templated field of `task`; the first failure names its field. A `sql_file`
/// (relative to `folder`, the DAG file's) is read here and rendered as `sql`.
pub fn render_fields(task: &Task, folder: &Path, context: &Value) -> Result<RenderedFields, RenderError> {
    let is_shell = matches!(task.operator, Operator::Shell { .. });
    let mut operator = task.operator.render_with(&mut |field, text| {
        if is_shell && field == "command" {
            template::render_shell_command(text, context)
        } else {
            template::render(field, text, context)
        }
    })?;
    if let Operator::Sql(SqlTask {
        sql: SqlSource::File(path),
        conn,
        parameters,
    }) = &operator
    {
        let full = folder.join(path);
        let text = read_sql_file(&full).map_err(|reason| RenderError {
            field: "sql_file".to_string(),
            reason,
        })?;
        template::check_sql_text("sql_file", &text).map_err(|reason| RenderError {
            field: "sql_file".to_string(),
            reason,
        })?;
        operator = Operator::Sql(SqlTask {
            conn: conn.clone(),
            sql: SqlSource::Inline(template::render("sql", &text, context)?),
            parameters: parameters.clone(),
        });
    }
    let env = task
        .env
        .iter()
        .map(|(name, value)| Ok((name.clone(), template::render(&format!("env.{name}"), value, context)?)))
        .collect::<Result<Vec<_>, RenderError>>()?;
    Ok(RenderedFields { operator, env })
}

/// Reads a task's SQL file: a regular file of at most [`template::MAX_RENDERED_FIELD_BYTES`]
/// (its text is a rendered field, stored with the attempt), without reading more than that.
/// `/dev/zero` or a FIFO would otherwise be read forever or block the scheduler.
fn read_sql_file(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let cannot_read = |error: std::io::Error| format!("cannot read {}: {error}", path.display());
    let metadata = std::fs::metadata(path).map_err(cannot_read)?;
    if !metadata.is_file() {
        return Err(format!(
            "{} is not a regular file: point `sql_file` at a file of SQL text",
            path.display()
        ));
    }
    let limit = template::MAX_RENDERED_FIELD_BYTES;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(limit as u64 + 1).read_to_end(&mut bytes))
        .map_err(cannot_read)?;
    if bytes.len() > limit {
        return Err(format!(
            "{} is larger than {limit} bytes (1 MiB), the most a SQL file may hold: split it into several tasks, or load the data with a `transfer` task",
            path.display()
        ));
    }
    String::from_utf8(bytes).map_err(|_| format!("{} is not UTF-8 text", path.display()))
}

/// The environment of §4 on top of the task's own.
pub fn attempt_env(
    run: &DagRun,
    dag: &Dag,
    task_id: &str,
    try_number: u32,
    rendered_env: &[(String, String)],
    output_file: &Path,
) -> Vec<(String, String)> {
    let ds = run
        .logical_date
        .with_timezone(&dag.timetable.timezone)
        .format("%Y-%m-%d")
        .to_string();
    let mut env = param_env(&run.conf);
    env.extend_from_slice(rendered_env);
    env.extend([
        ("WEIR_DAG_ID".to_string(), dag.dag_id.to_string()),
        ("WEIR_TASK_ID".to_string(), task_id.to_string()),
        ("WEIR_RUN_ID".to_string(), run.run_id.to_string()),
        ("WEIR_TRY_NUMBER".to_string(), try_number.to_string()),
        ("WEIR_DS".to_string(), ds),
        ("WEIR_LOGICAL_DATE".to_string(), rfc3339(run.logical_date)),
        ("WEIR_DATA_INTERVAL_START".to_string(), rfc3339(run.data_interval_start)),
        ("WEIR_DATA_INTERVAL_END".to_string(), rfc3339(run.data_interval_end)),
        ("WEIR_OUTPUT".to_string(), output_file.display().to_string()),
    ]);
    env
}

/// The run's params (its `conf` with the declared defaults) as `WEIR_PARAM_<NAME>`, the name
/// upper-cased: strings as they are, other values as JSON. A name that is not an environment
/// variable name (letters, digits and `_`, not starting with a digit) is left out, and so is a
/// value holding a NUL byte, which no environment can carry; templates still reach both.
pub fn param_env(conf: &Value) -> Vec<(String, String)> {
    let Some(params) = conf.as_object() else {
        return Vec::new();
    };
    params
        .iter()
        .filter(|(name, _)| is_env_name(name))
        .map(|(name, value)| {
            let text = match value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            (format!("WEIR_PARAM_{}", name.to_uppercase()), text)
        })
        .filter(|(_, text)| !text.contains('\0'))
        .collect()
}

fn is_env_name(name: &str) -> bool {
    let mut characters = name.chars();
    characters
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && characters.all(|character| character.is_ascii_alphanumeric() || character == '_')
}

/// The markers that identify one attempt's processes (they carry them in their environment), used
/// to find orphans after a crash.
pub fn attempt_markers(dag_id: &str, run_id: &str, task_id: &str, try_number: u32) -> Vec<(String, String)> {
    vec![
        ("WEIR_DAG_ID".to_string(), dag_id.to_string()),
        ("WEIR_RUN_ID".to_string(), run_id.to_string()),
        ("WEIR_TASK_ID".to_string(), task_id.to_string()),
        ("WEIR_TRY_NUMBER".to_string(), try_number.to_string()),
    ]
}

/// Most output kept per attempt (§5.7).
pub const MAX_OUTPUT_BYTES: usize = 1024 * 1024;

/// The attempt's output: what it wrote to `$WEIR_OUTPUT` (JSON if it parses, else text), else
/// its last non-empty stdout line; capped at 1 MiB, and no more than that is read (a task may
/// point `$WEIR_OUTPUT` at a huge file, or `/dev/zero`).
pub fn read_output(output_file: &Path, last_stdout_line: Option<String>) -> Option<String> {
    let written = read_at_most(output_file, MAX_OUTPUT_BYTES).filter(|bytes| !bytes.is_empty());
    let text = match written {
        Some(bytes) => {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            match serde_json::from_str::<Value>(&text) {
                Ok(value) => value.to_string(),
                Err(_) => serde_json::to_string(text.trim_end()).unwrap_or_default(),
            }
        }
        None => serde_json::to_string(&last_stdout_line?).unwrap_or_default(),
    };
    Some(text)
}

/// The first `max` bytes of a file; `None` when it cannot be read (usually: the task wrote none).
fn read_at_most(path: &Path, max: usize) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(max as u64).read_to_end(&mut bytes))
        .ok()?;
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_read_only_up_to_its_cap_even_from_an_endless_file() {
        // `/dev/zero` never ends: a whole read would never return.
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || sender.send(read_output(Path::new("/dev/zero"), None)));
        let output = receiver
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("read_output returns from an endless file")
            .expect("an output");
        let text: String = serde_json::from_str(&output).expect("a JSON string");
        assert_eq!(text.len(), MAX_OUTPUT_BYTES);

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("1.output");
        std::fs::write(&file, format!("{}tail", "x".repeat(MAX_OUTPUT_BYTES))).unwrap();
        let text: String = serde_json::from_str(&read_output(&file, None).unwrap()).unwrap();
        assert_eq!(text, "x".repeat(MAX_OUTPUT_BYTES));
        assert_eq!(
            read_output(&dir.path().join("none"), Some("last".into())).as_deref(),
            Some("\"last\"")
        );
    }

    #[test]
    fn secrets_are_secret_named_variables_and_env_values_and_connection_passwords() {
        let variables = BTreeMap::from([
            ("api_token".to_string(), "tok-1".to_string()),
            ("region".to_string(), "kr".to_string()),
        ]);
        let env = vec![
            ("DB_PASSWORD".to_string(), "pw-2".to_string()),
            ("MODE".to_string(), "full".to_string()),
        ];
        let passwords = connection_passwords_from_env([
            (
                "WEIR_CONN_WAREHOUSE".to_string(),
                "postgres://loader:pw-3@db.internal:5432/dw".to_string(),
            ),
            ("WEIR_CONN_PUBLIC".to_string(), "https://api.example.com".to_string()),
            ("OTHER".to_string(), "postgres://x:not-ours@h/db".to_string()),
        ]);
        assert_eq!(passwords, ["pw-3"]);
        assert_eq!(secrets(&variables, &env, &passwords), ["tok-1", "pw-2", "pw-3"]);
    }

    #[test]
    fn params_become_weir_param_variables_with_json_for_non_strings() {
        let conf = serde_json::json!({
            "name": "x; touch PWNED",
            "limit": 5,
            "flags": {"full": true},
            "Mixed_case": "ok",
            "not-a-name": "left out",
            "9lives": "left out",
            "nul": "a\u{0}b",
        });
        assert_eq!(
            param_env(&conf),
            [
                ("WEIR_PARAM_NAME".to_string(), "x; touch PWNED".to_string()),
                ("WEIR_PARAM_LIMIT".to_string(), "5".to_string()),
                ("WEIR_PARAM_FLAGS".to_string(), r#"{"full":true}"#.to_string()),
                ("WEIR_PARAM_MIXED_CASE".to_string(), "ok".to_string()),
            ]
        );
        assert!(param_env(&Value::Null).is_empty());
    }

    #[test]
    fn variables_come_from_weir_var_with_lower_cased_names() {
        let variables = variables_from_env([
            ("WEIR_VAR_WORK_DIR".to_string(), "/data".to_string()),
            ("HOME".to_string(), "/root".to_string()),
        ]);
        assert_eq!(
            variables,
            BTreeMap::from([("work_dir".to_string(), "/data".to_string())])
        );
    }
}
