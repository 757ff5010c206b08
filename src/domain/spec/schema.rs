//! The DAG file's JSON Schema, derived from the serde types of `spec.rs` (schemars) plus the few
//! value shapes the parser reads as text (durations, ids, task types, trigger rules): what editors
//! use for completion and red squiggles, published as `docs/dag.schema.json` and served at
//! [`DAG_SCHEMA_PATH`].
//!
//! The schema checks the shape of a file (keys, types, allowed words); `weir dags validate`
//! checks everything else (cycles, unknown upstream tasks, cron syntax, keys that belong to
//! another task type, templates). A file the schema accepts may still fail validation. The other
//! way round, the schema is stricter in two ways: it knows a param's `minLength`/`maxLength` only
//! by those names (weir also reads `min_length`/`max_length`), and where weir reads text it takes
//! a bare number or boolean (`command: 5`, YAML scalars are text to the parser) only in `tags`,
//! `env` and `headers`, where people write them; elsewhere it asks for text.

use std::borrow::Cow;

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde_json::Value;

use super::{DagSpec, ParamDecl, ParamSpec, ScheduleMap, ScheduleSpec, SqlQuerySpec, SqlSpec, TaskSpec};
use crate::domain::params::ParamType;
use crate::domain::trigger_rule::TriggerRule;
use crate::domain::validate::TASK_TYPES;

/// Where the daemon serves the schema (no login needed: it holds no data).
pub const DAG_SCHEMA_PATH: &str = "/schemas/dag.schema.json";

/// The schema as a JSON document (draft 7, which every YAML language server reads).
pub fn dag_file_schema() -> Value {
    let schema = SchemaSettings::draft07()
        .into_generator()
        .into_root_schema_for::<DagSpec>();
    let mut document = schema.to_value();
    unwrap_descriptions(&mut document);
    if let Some(root) = document.as_object_mut() {
        // `tasks` has a serde default only so that a missing key is reported by validation
        // with the other problems; for an editor it is required.
        root.insert("required".into(), Value::from(vec!["tasks"]));
        root.insert(
            "$comment".into(),
            Value::from("Generated from weir's source; regenerate with WEIR_UPDATE_DOCS=1 cargo test --test integration generated_docs"),
        );
    }
    document
}

/// Doc comments keep their source line breaks; editors show a description as one paragraph, so
/// the lines of each paragraph are joined.
fn unwrap_descriptions(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                match inner {
                    Value::String(text) if key == "description" => {
                        let paragraphs: Vec<String> = text
                            .split("\n\n")
                            .map(|paragraph| paragraph.lines().map(str::trim).collect::<Vec<_>>().join(" "))
                            .collect();
                        *text = paragraphs.join("\n\n");
                    }
                    _ => unwrap_descriptions(inner),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(unwrap_descriptions),
        _ => {}
    }
}

/// Ids of DAGs and tasks.
pub(super) struct Id;

impl JsonSchema for Id {
    fn schema_name() -> Cow<'static, str> {
        "Id".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^[A-Za-z0-9_.-]{1,250}$",
        })
    }
}

/// `500ms`, `30s`, `5m`, `1h30m`, `2d`.
pub(super) struct Duration;

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A duration: numbers with units ms, s, m, h, d, e.g. 500ms, 30s, 5m, 1h30m, 2d.",
            "type": "string",
            "pattern": "^\\s*([0-9]+(ms|s|m|h|d))+\\s*$",
        })
    }
}

/// Text, or a number or boolean written bare, which the parser reads as its text.
pub(super) struct Text;

impl JsonSchema for Text {
    fn schema_name() -> Cow<'static, str> {
        "Text".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": ["string", "number", "boolean"] })
    }
}

/// A whole number of at least 1 (runs, slots, rows).
pub(super) struct Count;

impl JsonSchema for Count {
    fn schema_name() -> Cow<'static, str> {
        "Count".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "integer", "minimum": 1 })
    }
}

pub(super) struct TaskType;

impl JsonSchema for TaskType {
    fn schema_name() -> Cow<'static, str> {
        "TaskType".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "enum": TASK_TYPES })
    }
}

pub(super) struct TriggerRuleName;

impl JsonSchema for TriggerRuleName {
    fn schema_name() -> Cow<'static, str> {
        "TriggerRule".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "enum": TriggerRule::names().collect::<Vec<_>>() })
    }
}

pub(super) struct ParamKind;

impl JsonSchema for ParamKind {
    fn schema_name() -> Cow<'static, str> {
        "ParamType".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let names: Vec<&str> = ParamType::ALL.iter().map(|kind| kind.as_str()).collect();
        json_schema!({ "type": "string", "enum": names })
    }
}

pub(super) struct TransferMode;

impl JsonSchema for TransferMode {
    fn schema_name() -> Cow<'static, str> {
        "TransferMode".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "enum": ["append", "replace", "upsert"] })
    }
}

/// `200`, `"2xx"`, or a list of them.
pub(super) struct ExpectStatus;

impl JsonSchema for ExpectStatus {
    fn schema_name() -> Cow<'static, str> {
        "ExpectStatus".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let one = json_schema!({
            "anyOf": [
                { "type": "integer", "minimum": 100, "maximum": 599 },
                { "type": "string", "pattern": "^\\s*([1-5][xX][xX]|[1-5][0-9][0-9])\\s*$" },
            ]
        });
        json_schema!({
            "anyOf": [
                one,
                { "type": "array", "items": one, "minItems": 1 },
            ]
        })
    }
}

/// `tasks:`: task id → task, at least one.
pub(super) struct Tasks;

impl JsonSchema for Tasks {
    fn schema_name() -> Cow<'static, str> {
        "Tasks".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let task = generator.subschema_for::<TaskSpec>();
        let id = generator.subschema_for::<Id>();
        json_schema!({
            "type": "object",
            "propertyNames": id,
            "additionalProperties": task,
            "minProperties": 1,
        })
    }
}

impl JsonSchema for ScheduleSpec {
    fn schema_name() -> Cow<'static, str> {
        "Schedule".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let map = generator.subschema_for::<ScheduleMap>();
        json_schema!({
            "anyOf": [
                { "type": "string", "examples": ["0 3 * * *", "@daily", "@once"] },
                { "type": "null" },
                map,
            ]
        })
    }
}

impl JsonSchema for ParamDecl {
    fn schema_name() -> Cow<'static, str> {
        "Param".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        // A map is always read as a declaration, so a plain default can be anything but a map.
        let declaration = generator.subschema_for::<ParamSpec>();
        json_schema!({
            "anyOf": [
                { "type": ["string", "number", "integer", "boolean", "array", "null"] },
                declaration,
            ]
        })
    }
}

impl JsonSchema for SqlSpec {
    fn schema_name() -> Cow<'static, str> {
        "Sql".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let query = generator.subschema_for::<SqlQuerySpec>();
        json_schema!({ "anyOf": [{ "type": "string" }, query] })
    }
}
