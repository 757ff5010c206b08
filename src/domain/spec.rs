//! The DAG file format as written (§2): serde types, unvalidated, with source locations kept for
//! the checks that happen after parsing. `dag::Dag::from_yaml` turns these into a validated DAG.

use std::fmt;

use indexmap::IndexMap;
use serde::Deserialize;
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Location, Spanned};

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
    /// Signed so that `0` and `-1` reach validation and are reported as "at least 1".
    pub max_active_runs: Option<Spanned<i64>>,
    pub max_active_tasks: Option<Spanned<i64>>,
    pub is_paused_upon_creation: Option<bool>,
    #[serde(default)]
    pub params: IndexMap<String, Spanned<ParamDecl>>,
    pub defaults: Option<Spanned<TaskSpec>>,
    #[serde(default)]
    pub alerts: AlertsSpec,
    pub sla: Option<Spanned<String>>,
    /// `None` when the key is present but has no value (`tasks:`); a missing key has an unknown
    /// location. Both are reported as "no tasks" by validation rather than as a type error.
    #[serde(default = "no_tasks")]
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleMap {
    pub cron: Option<String>,
    pub data_interval: Option<bool>,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub default: Option<Spanned<serde_json::Value>>,
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
    /// Absent: the `[alerts] default_*` channels of config.toml; `[]`: none for this DAG.
    pub on_failure: Option<Vec<Spanned<String>>>,
    pub on_retry: Option<Vec<Spanned<String>>>,
    pub on_success: Option<Vec<Spanned<String>>>,
    pub sla_miss: Option<Vec<Spanned<String>>>,
}

/// One task, or the `defaults:` block (every field optional; a task's own value wins).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    #[serde(rename = "type")]
    pub kind: Option<Spanned<String>>,
    pub command: Option<Spanned<String>>,
    pub cwd: Option<Spanned<String>>,
    /// Signed and wide so that `-1` and `256` reach validation and are reported as exit codes.
    pub skip_exit_code: Option<Spanned<i64>>,
    pub depends_on: Option<Vec<Spanned<String>>>,
    pub trigger_rule: Option<Spanned<String>>,
    pub retries: Option<Spanned<u32>>,
    pub retry_delay: Option<Spanned<String>>,
    pub retry_exponential_backoff: Option<bool>,
    pub max_retry_delay: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    pub pool: Option<Spanned<String>>,
    /// Signed so that `0` and `-1` reach validation and are reported as "at least 1".
    pub pool_slots: Option<Spanned<i64>>,
    pub priority_weight: Option<Spanned<i64>>,
    pub env: Option<IndexMap<String, Spanned<String>>>,
    pub depends_on_past: Option<bool>,
    pub outlets: Option<Vec<String>>,
    pub doc: Option<String>,

    // `http` (§5.2); `conn` also names the database of `sql` and the source of nothing else.
    pub conn: Option<Spanned<String>>,
    pub url: Option<Spanned<String>>,
    pub method: Option<Spanned<String>>,
    pub headers: Option<IndexMap<String, Spanned<String>>>,
    pub json: Option<Spanned<serde_json::Value>>,
    pub body: Option<Spanned<String>>,
    /// A status (`200`), a class (`"2xx"`), or a list of either.
    pub expect_status: Option<Spanned<serde_json::Value>>,
    pub request_timeout: Option<Spanned<String>>,

    // `sql` (§5.3): `sql` is text in a sql task and `{conn, sql}` in a sql sensor.
    pub sql: Option<Spanned<SqlSpec>>,
    pub sql_file: Option<Spanned<String>>,
    /// Bind parameters of a sql task: name → value, used as `:name` in the SQL.
    pub parameters: Option<Spanned<IndexMap<String, Spanned<serde_json::Value>>>>,

    // `transfer` (§5.4)
    pub from: Option<Spanned<TransferFromSpec>>,
    pub to: Option<Spanned<TransferToSpec>>,
    /// Signed so that `0` and `-1` reach validation and are reported as "at least 1".
    pub batch_size: Option<Spanned<i64>>,

    // `sensor` (§5.5)
    pub file: Option<Spanned<String>>,
    pub http: Option<Spanned<HttpSensorSpec>>,
    pub dag_run: Option<Spanned<DagRunSensorSpec>>,
    pub poke_interval: Option<Spanned<String>>,
    pub soft_fail: Option<bool>,

    // `trigger_dag` (§5.6)
    pub dag_id: Option<Spanned<String>>,
    pub conf: Option<Spanned<serde_json::Value>>,
    pub wait_for_completion: Option<bool>,
}

/// `sql:` is the statements of a sql task, or the `{conn, sql}` query of a sql sensor.
#[derive(Debug)]
pub enum SqlSpec {
    Text(String),
    Query(SqlQuerySpec),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlQuerySpec {
    pub conn: Option<String>,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferFromSpec {
    pub conn: Option<String>,
    pub sql: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferToSpec {
    pub conn: Option<String>,
    pub table: Option<String>,
    pub mode: Option<String>,
    #[serde(default)]
    pub keys: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSensorSpec {
    pub conn: Option<String>,
    pub url: Option<String>,
    pub expect_status: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DagRunSensorSpec {
    pub dag_id: Option<String>,
    pub task_id: Option<String>,
}
