//! The schemas of the OpenAPI document: collected into `components/schemas` while it is built,
//! derived from the DTOs with utoipa's `ToSchema`, plus the domain types the DTOs carry.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::{Value, json};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, SchemaType, Type};
use utoipa::{PartialSchema, ToSchema};

use crate::api::rest::dag_runs::DagRunResponse;
use crate::api::rest::task_instances::TaskInstanceCollectionResponse;
use crate::domain::dates::Timestamp;
use crate::domain::state::{RunState, TaskState};

/// The named schemas a document refers to (`components/schemas`), collected while it is built.
#[derive(Debug, Default)]
pub struct Schemas(pub(super) BTreeMap<String, Value>);

impl Schemas {
    fn add(&mut self, name: &str, schema: RefOr<Schema>) {
        let schema = serde_json::to_value(schema).expect("utoipa's schema types always serialize to JSON");
        self.0.insert(name.to_string(), schema);
    }
}

/// Writes a schema into `components` (with every schema it refers to) and returns its `$ref`.
pub(super) type SchemaFn = fn(&mut Schemas) -> Value;

pub(super) fn schema<T: ToSchema>(schemas: &mut Schemas) -> Value {
    let mut referenced = Vec::new();
    T::schemas(&mut referenced);
    for (name, schema) in referenced {
        schemas.add(&name, schema);
    }
    let name = T::name();
    schemas.add(&name, T::schema());
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// `POST .../dagRuns/{dag_run_id}/clear`: the instances a dry run would clear, or the run after.
pub(super) fn cleared_run(schemas: &mut Schemas) -> Value {
    json!({ "anyOf": [schema::<TaskInstanceCollectionResponse>(schemas), schema::<DagRunResponse>(schemas)] })
}

/// A JSON document: this OpenAPI document, or the DAG file schema.
pub(super) fn json_document(_: &mut Schemas) -> Value {
    json!({ "type": "object" })
}

/// Airflow's `DagRunState`.
impl PartialSchema for RunState {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .enum_values(Some(RunState::ALL.iter().map(|state| state.as_str())))
            .into()
    }
}

impl ToSchema for RunState {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("DagRunState")
    }
}

/// Airflow's `TaskInstanceState`: every state but weir's `none`, which the API shows as `null`.
impl PartialSchema for TaskState {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .enum_values(Some(
                TaskState::ALL
                    .iter()
                    .filter(|state| **state != TaskState::None)
                    .map(|state| state.as_str()),
            ))
            .into()
    }
}

impl ToSchema for TaskState {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("TaskInstanceState")
    }
}

/// A time in a request body: RFC 3339 with a year (in UTC) from 1000 to 9999.
impl PartialSchema for Timestamp {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .pattern(Some("^[1-9][0-9]{3}-"))
            .description(Some("RFC 3339, with a year (in UTC) from 1000 to 9999"))
            .into()
    }
}

impl ToSchema for Timestamp {}
