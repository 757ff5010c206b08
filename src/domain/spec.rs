//! The DAG file format as written: serde types, unvalidated, with source locations kept for the
//! checks that happen after parsing. `dag::Dag::from_yaml` turns these into a validated DAG.
//!
//! The same types derive the DAG file's JSON Schema ([`dag_file_schema`], `docs/dag.schema.json`),
//! so editors and the parser cannot disagree about which keys exist. The `///` lines on fields are
//! the descriptions editors show; notes for developers are `//` comments.

mod schema;

pub use schema::{DAG_SCHEMA_PATH, dag_file_schema};

use std::fmt;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Location, Spanned};

/// A whole DAG file.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "weir DAG file")]
pub struct DagSpec {
    /// The DAG's id: letters, digits, `_`, `.` and `-`, at most 250. Default: the file name without
    /// `.yaml`/`.yml`.
    #[schemars(with = "Option<schema::Id>")]
    pub dag_id: Option<Spanned<String>>,
    /// One line shown in the DAG list.
    pub description: Option<String>,
    /// Who to ask about this DAG. Default: `weir`.
    pub owner: Option<String>,
    /// Labels to filter the DAG list by (`weir dags list`, `GET /api/v2/dags?tags=`).
    #[serde(default)]
    #[schemars(with = "Vec<schema::Text>")]
    pub tags: Vec<String>,
    /// When runs are created: a 5-field cron expression (`"0 3 * * *"`), an alias (`@hourly`,
    /// `@daily`, `@weekly`, `@monthly`, `@quarterly`, `@yearly`, `@once`), `null` for manual runs
    /// only, `{cron: ..., data_interval: false}` for runs at their fire time, or `{datasets: [...]}`.
    /// Default: `null`.
    #[serde(default)]
    #[schemars(with = "Option<ScheduleSpec>")]
    pub schedule: Option<Spanned<ScheduleSpec>>,
    /// IANA time zone the schedule and bare dates are read in (`Europe/Berlin`). Default: `[core]
    /// timezone` of config.toml (UTC).
    #[schemars(with = "Option<String>")]
    pub timezone: Option<Spanned<String>>,
    /// First data interval starts at the first fire time at or after this date (`2026-01-01`) or
    /// RFC 3339 date-time. Needed by every time-based schedule.
    #[schemars(with = "Option<String>")]
    pub start_date: Option<Spanned<String>>,
    /// No data interval starts after this date or date-time. Default: none.
    #[schemars(with = "Option<String>")]
    pub end_date: Option<Spanned<String>>,
    /// Whether every missed interval since `start_date` gets a run (`true`) or only the newest
    /// (`false`). Default: `[core] catchup_by_default` (false).
    pub catchup: Option<bool>,
    /// Most runs of this DAG running at once (backfills have their own limit). Default: 16.
    // Signed so that `0` and `-1` reach validation and are reported as "at least 1".
    #[schemars(with = "Option<schema::Count>")]
    pub max_active_runs: Option<Spanned<i64>>,
    /// Most task attempts of one run running at once. Default: 16.
    #[schemars(with = "Option<schema::Count>")]
    pub max_active_tasks: Option<Spanned<i64>>,
    /// Whether the DAG is paused when weir first sees it. Default: `[core]
    /// dags_are_paused_at_creation` (false).
    pub is_paused_upon_creation: Option<bool>,
    /// Run parameters, checked when a run is triggered and read as `{{ params.NAME }}`: a default
    /// value, or a declaration such as `{type: string, default: kr, enum: [kr, us]}`.
    #[serde(default)]
    #[schemars(with = "std::collections::BTreeMap<String, ParamDecl>")]
    pub params: IndexMap<String, Spanned<ParamDecl>>,
    /// Task keys every task of this DAG gets unless it sets them itself (`retries`, `timeout`,
    /// `pool`, `env`, ...).
    #[schemars(with = "Option<TaskSpec>")]
    pub defaults: Option<Spanned<TaskSpec>>,
    /// Which alert channels (defined in config.toml) hear each event.
    #[serde(default)]
    pub alerts: AlertsSpec,
    /// A run not finished this long after it became due raises a `sla_miss` alert (`2h`).
    /// Default: none.
    #[schemars(with = "Option<schema::Duration>")]
    pub sla: Option<Spanned<String>>,
    /// The tasks, by id (letters, digits, `_`, `.` and `-`, at most 250). At least one.
    // `None` when the key is present but has no value (`tasks:`); a missing key has an unknown
    // location. Both are reported as "no tasks" by validation rather than as a type error.
    #[serde(default = "no_tasks")]
    #[schemars(with = "schema::Tasks")]
    pub tasks: Spanned<Option<IndexMap<Spanned<String>, Spanned<TaskSpec>>>>,
}

fn no_tasks() -> Spanned<Option<IndexMap<Spanned<String>, Spanned<TaskSpec>>>> {
    Spanned::new(None, Location::UNKNOWN, Location::UNKNOWN)
}

/// `schedule:` is a string (cron or alias), or a map for trigger mode or datasets. Which keys of
/// the map go together is checked by validation, where the location is known.
#[derive(Debug)]
pub enum ScheduleSpec {
    Text(String),
    Map(ScheduleMap),
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleMap {
    /// A 5-field cron expression or an alias such as `@daily`.
    pub cron: Option<String>,
    /// `false`: each run is created at its fire time with an empty data interval (Airflow 3's
    /// default). Default: `true`, runs cover the interval between two fire times.
    pub data_interval: Option<bool>,
    /// Dataset names: a run is created once every one has been updated since the last such run.
    /// Not together with `cron`.
    pub datasets: Option<Vec<String>>,
}

// By hand rather than `#[serde(untagged)]`: an untagged enum replaces every inner error (a typo
// in `data_interval`, a wrong type) with "data did not match any variant".
impl<'de> Deserialize<'de> for ScheduleSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScheduleVisitor;

        impl<'de> Visitor<'de> for ScheduleVisitor {
            type Value = ScheduleSpec;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a cron expression such as \"0 3 * * *\", an alias such as @daily, null, or a map with `cron:` or `datasets:`",
                )
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<ScheduleSpec, E> {
                Ok(ScheduleSpec::Text(text.to_string()))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ScheduleSpec, A::Error> {
                ScheduleMap::deserialize(MapAccessDeserializer::new(map)).map(ScheduleSpec::Map)
            }
        }

        deserializer.deserialize_any(ScheduleVisitor)
    }
}

/// A run parameter: a map is a JSON-schema-like declaration, anything else a bare default value.
#[derive(Debug)]
pub enum ParamDecl {
    Full(Box<ParamSpec>),
    Plain(serde_json::Value),
}

// By hand rather than `#[serde(untagged)]`: untagged, a declaration with a misspelt key
// (`defualt: kr`) silently became a plain default whose value was the whole map.
impl<'de> Deserialize<'de> for ParamDecl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ParamVisitor;

        impl<'de> Visitor<'de> for ParamVisitor {
            type Value = ParamDecl;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a default value, or a map such as `{ type: string, default: kr }`")
            }

            fn visit_bool<E: de::Error>(self, value: bool) -> Result<ParamDecl, E> {
                Ok(ParamDecl::Plain(value.into()))
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<ParamDecl, E> {
                Ok(ParamDecl::Plain(value.into()))
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<ParamDecl, E> {
                Ok(ParamDecl::Plain(value.into()))
            }

            fn visit_f64<E: de::Error>(self, value: f64) -> Result<ParamDecl, E> {
                Ok(ParamDecl::Plain(value.into()))
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<ParamDecl, E> {
                Ok(ParamDecl::Plain(value.into()))
            }

            fn visit_unit<E: de::Error>(self) -> Result<ParamDecl, E> {
                Ok(ParamDecl::Plain(serde_json::Value::Null))
            }

            fn visit_none<E: de::Error>(self) -> Result<ParamDecl, E> {
                Ok(ParamDecl::Plain(serde_json::Value::Null))
            }

            fn visit_some<D: Deserializer<'de>>(self, inner: D) -> Result<ParamDecl, D::Error> {
                ParamDecl::deserialize(inner)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<ParamDecl, A::Error> {
                serde_json::Value::deserialize(SeqAccessDeserializer::new(seq)).map(ParamDecl::Plain)
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ParamDecl, A::Error> {
                ParamSpec::deserialize(MapAccessDeserializer::new(map)).map(|spec| ParamDecl::Full(Box::new(spec)))
            }
        }

        deserializer.deserialize_any(ParamVisitor)
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    /// The value's JSON type: `string`, `integer`, `number`, `boolean`, `array`, `object` or `any`.
    /// Default: `any`.
    #[serde(rename = "type")]
    #[schemars(with = "Option<schema::ParamKind>")]
    pub kind: Option<String>,
    /// The value a run gets when its conf does not set this parameter.
    #[schemars(with = "Option<serde_json::Value>")]
    pub default: Option<Spanned<serde_json::Value>>,
    /// The only values allowed.
    #[serde(rename = "enum")]
    pub allowed: Option<Vec<serde_json::Value>>,
    /// Smallest number allowed.
    pub minimum: Option<f64>,
    /// Largest number allowed.
    pub maximum: Option<f64>,
    /// Shortest text allowed (also `min_length`).
    #[serde(rename = "minLength", alias = "min_length")]
    pub min_length: Option<usize>,
    /// Longest text allowed (also `max_length`).
    #[serde(rename = "maxLength", alias = "max_length")]
    pub max_length: Option<usize>,
    /// A regular expression the text must match.
    pub pattern: Option<String>,
    /// Shown beside the field in the trigger form.
    pub description: Option<String>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertsSpec {
    /// Channels told when a task fails for good and when a run fails. Absent: `[alerts]
    /// default_on_failure` of config.toml; `[]`: none.
    #[schemars(with = "Option<Vec<String>>")]
    pub on_failure: Option<Vec<Spanned<String>>>,
    /// Channels told when a task attempt fails and will be retried. Absent: `[alerts]
    /// default_on_retry`.
    #[schemars(with = "Option<Vec<String>>")]
    pub on_retry: Option<Vec<Spanned<String>>>,
    /// Channels told when a run succeeds. Absent: `[alerts] default_on_success`.
    #[schemars(with = "Option<Vec<String>>")]
    pub on_success: Option<Vec<Spanned<String>>>,
    /// Channels told when a run misses its `sla`. Absent: `[alerts] default_sla_miss`.
    #[schemars(with = "Option<Vec<String>>")]
    pub sla_miss: Option<Vec<Spanned<String>>>,
}

/// One task, or the `defaults:` block (every field optional; a task's own value wins).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// What the task does: `shell`, `http`, `sql`, `transfer`, `sensor` or `trigger_dag`. Default:
    /// `shell`.
    #[serde(rename = "type")]
    #[schemars(with = "Option<schema::TaskType>")]
    pub kind: Option<Spanned<String>>,
    /// shell: the command, run with `sh -c` in its own process group (templated; each `{{ ... }}`
    /// is shell-quoted).
    #[schemars(with = "Option<String>")]
    pub command: Option<Spanned<String>>,
    /// shell: the working directory. Default: the DAG file's folder.
    #[schemars(with = "Option<String>")]
    pub cwd: Option<Spanned<String>>,
    /// shell: the exit code that marks the task skipped instead of failed (0-255). Default: 99.
    // Signed and wide so that `-1` and `256` reach validation and are reported as exit codes.
    #[schemars(with = "Option<i64>")]
    pub skip_exit_code: Option<Spanned<i64>>,
    /// Ids of the tasks this one runs after.
    #[schemars(with = "Option<Vec<schema::Id>>")]
    pub depends_on: Option<Vec<Spanned<String>>>,
    /// When the task may run, given its upstream tasks' states. Default: `all_success`.
    #[schemars(with = "Option<schema::TriggerRuleName>")]
    pub trigger_rule: Option<Spanned<String>>,
    /// Attempts after the first failed one (at most 1000). Default: `[core] default_task_retries`
    /// (0).
    #[schemars(with = "Option<u32>")]
    pub retries: Option<Spanned<u32>>,
    /// Wait before a retry. Default: `[core] default_task_retry_delay` (`5m`).
    #[schemars(with = "Option<schema::Duration>")]
    pub retry_delay: Option<Spanned<String>>,
    /// Double the wait after each failed attempt (up to `max_retry_delay`). Default: false.
    pub retry_exponential_backoff: Option<bool>,
    /// The longest wait between attempts with exponential backoff. Default: none.
    #[schemars(with = "Option<schema::Duration>")]
    pub max_retry_delay: Option<Spanned<String>>,
    /// An attempt running longer is killed with its process tree and fails. Default: none (sensors:
    /// 7 days, counted from the first poke).
    #[schemars(with = "Option<schema::Duration>")]
    pub timeout: Option<Spanned<String>>,
    /// The pool (`[pools]` of config.toml) whose slots the task takes. Default: `default`.
    #[schemars(with = "Option<String>")]
    pub pool: Option<Spanned<String>>,
    /// Slots of the pool one attempt takes. Default: 1.
    // Signed so that `0` and `-1` reach validation and are reported as "at least 1".
    #[schemars(with = "Option<schema::Count>")]
    pub pool_slots: Option<Spanned<i64>>,
    /// Higher runs first when tasks wait for a slot. Default: 1.
    #[schemars(with = "Option<i32>")]
    pub priority_weight: Option<Spanned<i64>>,
    /// Environment variables for the task (values templated); with `defaults:`, both maps merge.
    #[schemars(with = "Option<std::collections::BTreeMap<String, schema::Text>>")]
    pub env: Option<IndexMap<String, Spanned<String>>>,
    /// Wait until the same task in the previous run succeeded or was skipped. Default: false.
    pub depends_on_past: Option<bool>,
    /// Datasets this task updates: each success records an event that can trigger DAGs
    /// scheduled on them.
    pub outlets: Option<Vec<String>>,
    /// Notes shown on the task's page.
    pub doc: Option<String>,

    // `http`; `conn` also names the database of `sql` and the source of nothing else.
    /// http: a connection whose host is the base URL (and login/password basic auth); sql: the
    /// database's connection.
    #[schemars(with = "Option<String>")]
    pub conn: Option<Spanned<String>>,
    /// http: the URL, or the path after the connection's base URL (templated).
    #[schemars(with = "Option<String>")]
    pub url: Option<Spanned<String>>,
    /// http: `GET`, `POST`, `PUT`, `PATCH`, `DELETE`, `HEAD` or `OPTIONS`. Default: `POST` with a
    /// body, else `GET`.
    #[schemars(with = "Option<String>")]
    pub method: Option<Spanned<String>>,
    /// http: request headers (values templated).
    #[schemars(with = "Option<std::collections::BTreeMap<String, schema::Text>>")]
    pub headers: Option<IndexMap<String, Spanned<String>>>,
    /// http: a JSON body (strings templated). Not together with `body`.
    #[schemars(with = "Option<serde_json::Value>")]
    pub json: Option<Spanned<serde_json::Value>>,
    /// http: a text body (templated). Not together with `json`.
    #[schemars(with = "Option<String>")]
    pub body: Option<Spanned<String>>,
    /// http: the statuses that count as success: a status (`200`), a class (`"2xx"`) or a list of
    /// either. Default: `"2xx"`.
    #[schemars(with = "Option<schema::ExpectStatus>")]
    pub expect_status: Option<Spanned<serde_json::Value>>,
    /// http: how long the request may take. Default: `60s`.
    #[schemars(with = "Option<schema::Duration>")]
    pub request_timeout: Option<Spanned<String>>,

    // `sql`: `sql` is text in a sql task and `{conn, sql}` in a sql sensor.
    /// sql: the statements, run in one transaction (templated); sensor: `{conn, sql}`, a query
    /// whose first column of the first row must be truthy.
    #[schemars(with = "Option<SqlSpec>")]
    pub sql: Option<Spanned<SqlSpec>>,
    /// sql: a file holding the statements, relative to the DAG file (templated). Not together
    /// with `sql`.
    #[schemars(with = "Option<String>")]
    pub sql_file: Option<Spanned<String>>,
    /// sql: bind parameters, name to value (templated), used as `:name` in the SQL.
    #[schemars(with = "Option<std::collections::BTreeMap<String, serde_json::Value>>")]
    pub parameters: Option<Spanned<IndexMap<String, Spanned<serde_json::Value>>>>,

    // `transfer`
    /// transfer: where rows come from: `{conn, sql}`.
    #[schemars(with = "Option<TransferFromSpec>")]
    pub from: Option<Spanned<TransferFromSpec>>,
    /// transfer: where rows go: `{conn, table, mode, keys}`.
    #[schemars(with = "Option<TransferToSpec>")]
    pub to: Option<Spanned<TransferToSpec>>,
    /// transfer: rows per batch (at most 1,000,000). Default: 10000.
    // Signed so that `0` and `-1` reach validation and are reported as "at least 1".
    #[schemars(with = "Option<schema::Count>")]
    pub batch_size: Option<Spanned<i64>>,

    // `sensor`
    /// sensor: wait until this file exists (templated).
    #[schemars(with = "Option<String>")]
    pub file: Option<Spanned<String>>,
    /// sensor: wait until a GET of `url` answers with an expected status.
    #[schemars(with = "Option<HttpSensorSpec>")]
    pub http: Option<Spanned<HttpSensorSpec>>,
    /// sensor: wait until a task (or the whole run) of another DAG with the same logical date
    /// succeeded.
    #[schemars(with = "Option<DagRunSensorSpec>")]
    pub dag_run: Option<Spanned<DagRunSensorSpec>>,
    /// sensor, trigger_dag: time between checks. Default: `30s` (trigger_dag: `10s`).
    #[schemars(with = "Option<schema::Duration>")]
    pub poke_interval: Option<Spanned<String>>,
    /// sensor: on timeout the task is skipped instead of failed. Default: false.
    pub soft_fail: Option<bool>,

    // `trigger_dag`
    /// trigger_dag: the DAG to start a run of.
    #[schemars(with = "Option<schema::Id>")]
    pub dag_id: Option<Spanned<String>>,
    /// trigger_dag: the triggered run's conf, a map of run parameters (strings templated).
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub conf: Option<Spanned<serde_json::Value>>,
    /// trigger_dag: wait for the triggered run to finish and fail when it fails. Default: false.
    pub wait_for_completion: Option<bool>,
}

/// `sql:` is the statements of a sql task, or the `{conn, sql}` query of a sql sensor.
#[derive(Debug)]
pub enum SqlSpec {
    Text(String),
    Query(SqlQuerySpec),
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlQuerySpec {
    /// The database's connection.
    pub conn: Option<String>,
    /// The query (templated).
    pub sql: Option<String>,
}

// By hand for the same reason as `ScheduleSpec`: untagged enums hide the inner error.
impl<'de> Deserialize<'de> for SqlSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SqlVisitor;

        impl<'de> Visitor<'de> for SqlVisitor {
            type Value = SqlSpec;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("SQL text, or (in a sensor) a map `{conn: NAME, sql: QUERY}`")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<SqlSpec, E> {
                Ok(SqlSpec::Text(text.to_string()))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<SqlSpec, A::Error> {
                SqlQuerySpec::deserialize(MapAccessDeserializer::new(map)).map(SqlSpec::Query)
            }
        }

        deserializer.deserialize_any(SqlVisitor)
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferFromSpec {
    /// The source database's connection.
    pub conn: Option<String>,
    /// The query whose rows are moved (templated).
    pub sql: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferToSpec {
    /// The target database's connection.
    pub conn: Option<String>,
    /// The target table, created with mapped column types when missing.
    pub table: Option<String>,
    /// `append`, `replace` (empty the table first) or `upsert` (by `keys`). Default: `append`.
    #[schemars(with = "Option<schema::TransferMode>")]
    pub mode: Option<String>,
    /// upsert: the columns that identify a row.
    #[serde(default)]
    pub keys: Vec<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpSensorSpec {
    /// A connection whose host is the base URL.
    pub conn: Option<String>,
    /// The URL, or the path after the connection's base URL (templated).
    pub url: Option<String>,
    /// The statuses that count as met, as for http tasks. Default: `"2xx"`.
    #[schemars(with = "Option<schema::ExpectStatus>")]
    pub expect_status: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DagRunSensorSpec {
    /// The other DAG.
    pub dag_id: Option<String>,
    /// One of its tasks. Default: the whole run.
    pub task_id: Option<String>,
}
