//! `GET /api/v2/openapi.json`: an OpenAPI 3.1 document generated from the route table (paths,
//! methods, ids) and from [`OPERATIONS`], one row per operation with its query parameters, request
//! body, success response and error statuses. Body schemas are derived from the DTOs with
//! utoipa's `ToSchema`, so the document changes with the types the handlers really use.

use std::borrow::Cow;
use std::collections::BTreeMap;

use axum::Json;
use serde_json::{Value, json};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, SchemaType, Type};
use utoipa::{PartialSchema, ToSchema};

use super::alerts::{AlertCollectionResponse, AlertResponse};
use super::backfills::{
    BackfillCollectionResponse, BackfillPostBody, BackfillResponse, DryRunBackfillCollectionResponse,
};
use super::connections::{ConnectionBody, ConnectionCollectionResponse, ConnectionResponse, ConnectionTestResponse};
use super::dag_runs::{DagRunClearBody, DagRunCollectionResponse, DagRunPatchBody, DagRunResponse, TriggerBody};
use super::dags::{DagCollectionResponse, DagDetailsResponse, DagPatchBody, DagResponse};
use super::datasets::{
    AssetCollectionResponse, AssetEventCollectionResponse, DatasetCollectionResponse, DatasetEventCollectionResponse,
};
use super::event_logs::{EventLogCollectionResponse, EventLogResponse};
use super::import_errors::{ImportErrorCollectionResponse, ImportErrorResponse};
use super::monitor::{HealthInfoResponse, VersionInfo};
use super::pools::{PoolCollectionResponse, PoolResponse};
use super::route_table;
use super::task_instances::{
    ClearTaskInstancesBody, PatchTaskInstanceBody, TaskInstanceCollectionResponse,
    TaskInstanceHistoryCollectionResponse, TaskInstanceResponse, TaskInstancesLogResponse,
};
use super::tasks::{TaskCollectionResponse, TaskResponse};
use super::variables::{VariableBody, VariableCollectionResponse, VariableResponse};
use crate::api::auth::{LoginRequest, TokenResponse};
use crate::domain::auth::Access;
use crate::domain::dates::Timestamp;
use crate::domain::state::{RunState, TaskState};

/// The named schemas a document refers to (`components/schemas`), collected while it is built.
#[derive(Debug, Default)]
pub struct Schemas(BTreeMap<String, Value>);

impl Schemas {
    fn add(&mut self, name: &str, schema: RefOr<Schema>) {
        let schema = serde_json::to_value(schema).expect("utoipa's schema types always serialize to JSON");
        self.0.insert(name.to_string(), schema);
    }
}

/// Writes a schema into `components` (with every schema it refers to) and returns its `$ref`.
type SchemaFn = fn(&mut Schemas) -> Value;

fn schema<T: ToSchema>(schemas: &mut Schemas) -> Value {
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
fn cleared_run(schemas: &mut Schemas) -> Value {
    json!({ "anyOf": [schema::<TaskInstanceCollectionResponse>(schemas), schema::<DagRunResponse>(schemas)] })
}

/// This document itself.
fn openapi_document(_: &mut Schemas) -> Value {
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

/// The type of a query parameter, as the handlers read it (`query::QueryParams`).
#[derive(Debug, Clone, Copy)]
enum Kind {
    Text,
    /// A non-negative integer (`limit`, `offset`).
    Count,
    Integer,
    Bool,
    /// Repeated keys (`tags=a&tags=b`); a comma-separated value counts as several.
    List,
    Choice(&'static [&'static str]),
}

impl Kind {
    fn schema(self) -> Value {
        match self {
            Kind::Text => json!({ "type": "string" }),
            Kind::Count => json!({ "type": "integer", "minimum": 0 }),
            Kind::Integer => json!({ "type": "integer" }),
            Kind::Bool => json!({ "type": "boolean" }),
            Kind::List => json!({ "type": "array", "items": { "type": "string" } }),
            Kind::Choice(values) => json!({ "type": "string", "enum": values }),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct QueryParam {
    name: &'static str,
    kind: Kind,
    description: &'static str,
}

const fn param(name: &'static str, kind: Kind, description: &'static str) -> QueryParam {
    QueryParam {
        name,
        kind,
        description,
    }
}

const LIMIT: QueryParam = param(
    "limit",
    Kind::Count,
    "Page size (default 50, larger than 1000 is clamped)",
);
const OFFSET: QueryParam = param("offset", Kind::Count, "Rows to skip");
const ORDER_BY: QueryParam = param(
    "order_by",
    Kind::Text,
    "Field to sort by; a leading `-` sorts descending",
);
const UPDATE_MASK: QueryParam = param("update_mask", Kind::List, "The fields to change (default: all)");
const MAP_INDEX: QueryParam = param("map_index", Kind::Integer, "Only -1: weir has no mapped tasks");
const PAGE: [QueryParam; 3] = [LIMIT, OFFSET, ORDER_BY];

/// What a successful answer carries.
#[derive(Debug, Clone, Copy)]
enum Success {
    Json(SchemaFn),
    /// `204 No Content`.
    NoContent,
    /// Prometheus text.
    Text,
    /// JSON, or the raw text with `Accept: text/plain` (task logs).
    JsonOrText(SchemaFn),
    /// Never succeeds (pools are read-only): only the refusal is documented.
    Refused,
}

/// Everything the document says about one operation besides its route.
#[derive(Debug, Clone, Copy)]
struct OperationDoc {
    operation_id: &'static str,
    query: &'static [QueryParam],
    body: Option<SchemaFn>,
    success: Success,
    /// Error statuses it can answer, each with an `HTTPExceptionResponse` body.
    errors: &'static [u16],
}

const fn op(
    operation_id: &'static str,
    query: &'static [QueryParam],
    body: Option<SchemaFn>,
    success: Success,
    errors: &'static [u16],
) -> OperationDoc {
    OperationDoc {
        operation_id,
        query,
        body,
        success,
        errors,
    }
}

/// Reads (an id in the path that may be invalid or missing).
const GET_ONE: &[u16] = &[400, 404, 422];
/// Lists (query parameters that may be invalid).
const LIST: &[u16] = &[400, 404, 422];
/// Changes with a JSON body.
const CHANGE: &[u16] = &[400, 404, 409, 422];
/// Refused: pools come from `config.toml`.
const READ_ONLY: &[u16] = &[405];

/// One row per operation of the route table, keyed by `operation_id`.
const OPERATIONS: &[OperationDoc] = &[
    op(
        "create_token",
        &[],
        Some(schema::<LoginRequest>),
        Success::Json(schema::<TokenResponse>),
        &[400, 401, 422, 429],
    ),
    op(
        "get_event_logs",
        &[
            LIMIT,
            OFFSET,
            ORDER_BY,
            param("dag_id", Kind::Text, "Only this DAG's entries"),
            param("task_id", Kind::Text, "Only this task's entries"),
            param("run_id", Kind::Text, "Only this run's entries"),
            param("try_number", Kind::Count, "Only this try's entries"),
            param("map_index", Kind::Integer, "Only -1: weir has no mapped tasks"),
            param("owner", Kind::Text, "Only this person's entries"),
            param("event", Kind::Text, "Only this event"),
            param("included_events", Kind::List, "Only these events"),
            param("excluded_events", Kind::List, "Not these events"),
            param("before", Kind::Text, "Recorded before this time (RFC 3339)"),
            param("after", Kind::Text, "Recorded after this time (RFC 3339)"),
            param(
                "surface",
                Kind::Choice(&["api", "ui", "cli"]),
                "Only entries from this surface",
            ),
        ],
        None,
        Success::Json(schema::<EventLogCollectionResponse>),
        LIST,
    ),
    op(
        "get_event_log",
        &[],
        None,
        Success::Json(schema::<EventLogResponse>),
        GET_ONE,
    ),
    op(
        "get_health",
        &[],
        None,
        Success::Json(schema::<HealthInfoResponse>),
        &[],
    ),
    op("get_version", &[], None, Success::Json(schema::<VersionInfo>), &[]),
    op("get_openapi", &[], None, Success::Json(openapi_document), &[]),
    op("get_metrics", &[], None, Success::Text, &[]),
    op(
        "get_dags",
        &[
            LIMIT,
            OFFSET,
            ORDER_BY,
            param(
                "dag_id_pattern",
                Kind::Text,
                "SQL LIKE pattern (`%`, `_`) on the DAG id",
            ),
            param("tags", Kind::List, "DAGs with any (or all) of these tags"),
            param("tags_match_mode", Kind::Choice(&["any", "all"]), "How `tags` match"),
            param("paused", Kind::Bool, "Only paused (true) or unpaused (false) DAGs"),
            param(
                "exclude_stale",
                Kind::Bool,
                "Leave out DAGs whose file is gone (default true)",
            ),
            param(
                "has_import_errors",
                Kind::Bool,
                "Only DAGs whose file has (or has no) import errors",
            ),
            param("owners", Kind::List, "DAGs of these owners"),
        ],
        None,
        Success::Json(schema::<DagCollectionResponse>),
        LIST,
    ),
    op("get_dag", &[], None, Success::Json(schema::<DagResponse>), GET_ONE),
    op(
        "patch_dag",
        &[UPDATE_MASK],
        Some(schema::<DagPatchBody>),
        Success::Json(schema::<DagResponse>),
        CHANGE,
    ),
    op(
        "get_dag_details",
        &[],
        None,
        Success::Json(schema::<DagDetailsResponse>),
        GET_ONE,
    ),
    op(
        "get_tasks",
        &[ORDER_BY],
        None,
        Success::Json(schema::<TaskCollectionResponse>),
        LIST,
    ),
    op("get_task", &[], None, Success::Json(schema::<TaskResponse>), GET_ONE),
    op(
        "get_dag_runs",
        &[
            LIMIT,
            OFFSET,
            ORDER_BY,
            param("state", Kind::List, "Runs in any of these states"),
            param("run_type", Kind::List, "Runs of any of these types"),
        ],
        None,
        Success::Json(schema::<DagRunCollectionResponse>),
        LIST,
    ),
    op(
        "trigger_dag_run",
        &[],
        Some(schema::<TriggerBody>),
        Success::Json(schema::<DagRunResponse>),
        CHANGE,
    ),
    op(
        "get_dag_run",
        &[],
        None,
        Success::Json(schema::<DagRunResponse>),
        GET_ONE,
    ),
    op(
        "patch_dag_run",
        &[UPDATE_MASK],
        Some(schema::<DagRunPatchBody>),
        Success::Json(schema::<DagRunResponse>),
        CHANGE,
    ),
    op("delete_dag_run", &[], None, Success::NoContent, &[400, 404, 409]),
    op(
        "clear_dag_run",
        &[],
        Some(schema::<DagRunClearBody>),
        Success::Json(cleared_run),
        CHANGE,
    ),
    op(
        "get_task_instances",
        &[
            LIMIT,
            OFFSET,
            ORDER_BY,
            param(
                "state",
                Kind::List,
                "Instances in any of these states (`no_status` for none)",
            ),
            param("task_id", Kind::Text, "Only this task"),
        ],
        None,
        Success::Json(schema::<TaskInstanceCollectionResponse>),
        LIST,
    ),
    op(
        "get_task_instance",
        &[],
        None,
        Success::Json(schema::<TaskInstanceResponse>),
        GET_ONE,
    ),
    op(
        "patch_task_instance",
        &[MAP_INDEX, UPDATE_MASK],
        Some(schema::<PatchTaskInstanceBody>),
        Success::Json(schema::<TaskInstanceCollectionResponse>),
        CHANGE,
    ),
    op(
        "patch_task_instance_dry_run",
        &[MAP_INDEX, UPDATE_MASK],
        Some(schema::<PatchTaskInstanceBody>),
        Success::Json(schema::<TaskInstanceCollectionResponse>),
        CHANGE,
    ),
    op(
        "get_task_instance_tries",
        &[],
        None,
        Success::Json(schema::<TaskInstanceHistoryCollectionResponse>),
        GET_ONE,
    ),
    op(
        "get_log",
        &[
            MAP_INDEX,
            param("token", Kind::Text, "The continuation token of an earlier answer"),
        ],
        None,
        Success::JsonOrText(schema::<TaskInstancesLogResponse>),
        GET_ONE,
    ),
    op(
        "post_clear_task_instances",
        &[],
        Some(schema::<ClearTaskInstancesBody>),
        Success::Json(schema::<TaskInstanceCollectionResponse>),
        CHANGE,
    ),
    op(
        "list_backfills",
        &[
            LIMIT,
            OFFSET,
            ORDER_BY,
            param("dag_id", Kind::Text, "Only this DAG's backfills"),
        ],
        None,
        Success::Json(schema::<BackfillCollectionResponse>),
        LIST,
    ),
    op(
        "create_backfill",
        &[],
        Some(schema::<BackfillPostBody>),
        Success::Json(schema::<BackfillResponse>),
        CHANGE,
    ),
    op(
        "create_backfill_dry_run",
        &[],
        Some(schema::<BackfillPostBody>),
        Success::Json(schema::<DryRunBackfillCollectionResponse>),
        CHANGE,
    ),
    op(
        "get_backfill",
        &[],
        None,
        Success::Json(schema::<BackfillResponse>),
        GET_ONE,
    ),
    op(
        "pause_backfill",
        &[],
        None,
        Success::Json(schema::<BackfillResponse>),
        CHANGE,
    ),
    op(
        "unpause_backfill",
        &[],
        None,
        Success::Json(schema::<BackfillResponse>),
        CHANGE,
    ),
    op(
        "cancel_backfill",
        &[],
        None,
        Success::Json(schema::<BackfillResponse>),
        CHANGE,
    ),
    op(
        "get_datasets",
        &DATASET_QUERY,
        None,
        Success::Json(schema::<DatasetCollectionResponse>),
        LIST,
    ),
    op(
        "get_dataset_events",
        &EVENT_QUERY,
        None,
        Success::Json(schema::<DatasetEventCollectionResponse>),
        LIST,
    ),
    op(
        "get_assets",
        &DATASET_QUERY,
        None,
        Success::Json(schema::<AssetCollectionResponse>),
        LIST,
    ),
    op(
        "get_asset_events",
        &EVENT_QUERY,
        None,
        Success::Json(schema::<AssetEventCollectionResponse>),
        LIST,
    ),
    op(
        "get_alerts",
        &[
            LIMIT,
            OFFSET,
            param("dag_id", Kind::Text, "Only this DAG's alerts"),
            param(
                "status",
                Kind::Choice(&["pending", "delivered", "failed"]),
                "Only deliveries in this status",
            ),
        ],
        None,
        Success::Json(schema::<AlertCollectionResponse>),
        LIST,
    ),
    op("get_alert", &[], None, Success::Json(schema::<AlertResponse>), GET_ONE),
    op(
        "get_import_errors",
        &PAGE,
        None,
        Success::Json(schema::<ImportErrorCollectionResponse>),
        LIST,
    ),
    op(
        "get_import_error",
        &[],
        None,
        Success::Json(schema::<ImportErrorResponse>),
        GET_ONE,
    ),
    op(
        "get_variables",
        &PAGE,
        None,
        Success::Json(schema::<VariableCollectionResponse>),
        LIST,
    ),
    op(
        "post_variable",
        &[],
        Some(schema::<VariableBody>),
        Success::Json(schema::<VariableResponse>),
        CHANGE,
    ),
    op(
        "get_variable",
        &[],
        None,
        Success::Json(schema::<VariableResponse>),
        GET_ONE,
    ),
    op(
        "patch_variable",
        &[UPDATE_MASK],
        Some(schema::<VariableBody>),
        Success::Json(schema::<VariableResponse>),
        CHANGE,
    ),
    op("delete_variable", &[], None, Success::NoContent, &[400, 404]),
    op(
        "get_connections",
        &PAGE,
        None,
        Success::Json(schema::<ConnectionCollectionResponse>),
        LIST,
    ),
    op(
        "post_connection",
        &[],
        Some(schema::<ConnectionBody>),
        Success::Json(schema::<ConnectionResponse>),
        CHANGE,
    ),
    op(
        "test_connection",
        &[],
        Some(schema::<ConnectionBody>),
        Success::Json(schema::<ConnectionTestResponse>),
        &[400, 403, 422],
    ),
    op(
        "get_connection",
        &[],
        None,
        Success::Json(schema::<ConnectionResponse>),
        GET_ONE,
    ),
    op(
        "patch_connection",
        &[UPDATE_MASK],
        Some(schema::<ConnectionBody>),
        Success::Json(schema::<ConnectionResponse>),
        CHANGE,
    ),
    op("delete_connection", &[], None, Success::NoContent, &[400, 404]),
    op(
        "get_pools",
        &PAGE,
        None,
        Success::Json(schema::<PoolCollectionResponse>),
        LIST,
    ),
    op("post_pool", &[], None, Success::Refused, READ_ONLY),
    op("get_pool", &[], None, Success::Json(schema::<PoolResponse>), GET_ONE),
    op("patch_pool", &[], None, Success::Refused, READ_ONLY),
    op("delete_pool", &[], None, Success::Refused, READ_ONLY),
];

const DATASET_QUERY: [QueryParam; 5] = [
    LIMIT,
    OFFSET,
    ORDER_BY,
    param("name_pattern", Kind::Text, "SQL LIKE pattern (`%`, `_`) on the name"),
    param(
        "uri_pattern",
        Kind::Text,
        "SQL LIKE pattern (`%`, `_`) on the URI (the name)",
    ),
];

const EVENT_QUERY: [QueryParam; 9] = [
    LIMIT,
    OFFSET,
    ORDER_BY,
    param("dataset", Kind::Text, "Only this dataset's events"),
    param("name", Kind::Text, "Only this dataset's events (Airflow's name)"),
    param("uri", Kind::Text, "Only this dataset's events (Airflow's name)"),
    param("source_dag_id", Kind::Text, "Only events of this DAG's tasks"),
    param("source_task_id", Kind::Text, "Only events of this task"),
    param("source_run_id", Kind::Text, "Only events of this run"),
];

fn operation_doc(operation_id: &str) -> Option<&'static OperationDoc> {
    OPERATIONS.iter().find(|doc| doc.operation_id == operation_id)
}

/// The characters of DAG, task and variable ids (`domain::ids`, `query::key`).
const ID: &str = "^[A-Za-z0-9_.-]{1,250}$";

/// A path parameter's schema, with an example naming something the example DAGs have.
fn path_parameter(name: &str) -> Value {
    let (schema, example) = match name {
        "try_number" => (json!({ "type": "integer", "minimum": 0 }), json!(1)),
        "backfill_id" | "import_error_id" | "alert_id" => (json!({ "type": "integer", "minimum": 0 }), json!(1)),
        // `~` lists every DAG's runs.
        "dag_id" => (
            json!({ "type": "string", "pattern": format!("^~$|{ID}") }),
            json!("hello_world"),
        ),
        "dag_run_id" => (
            json!({ "type": "string", "pattern": "^[A-Za-z0-9_.:+~-]{1,250}$" }),
            json!("manual__2026-01-01T00:00:00+00:00"),
        ),
        "task_id" => (json!({ "type": "string", "pattern": ID }), json!("hello")),
        "variable_key" => (json!({ "type": "string", "pattern": ID }), json!("work_dir")),
        "connection_id" => (
            json!({ "type": "string", "pattern": "^[A-Za-z0-9_.-]{1,200}$" }),
            json!("warehouse"),
        ),
        "pool_name" => (json!({ "type": "string" }), json!("default")),
        _ => (json!({ "type": "string" }), Value::Null),
    };
    let mut parameter = json!({ "name": name, "in": "path", "required": true, "schema": schema });
    if !example.is_null() {
        parameter["example"] = example;
    }
    parameter
}

/// The parameters named in a path template (`{dag_id}` …).
fn path_parameters(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{').and_then(|rest| rest.strip_suffix('}')))
        .map(path_parameter)
        .collect()
}

fn query_parameter(query: &QueryParam) -> Value {
    let mut parameter = json!({
        "name": query.name,
        "in": "query",
        "required": false,
        "description": query.description,
        "schema": query.kind.schema(),
    });
    if matches!(query.kind, Kind::List) {
        parameter["style"] = json!("form");
        parameter["explode"] = json!(true);
    }
    parameter
}

fn error_description(status: u16) -> &'static str {
    match status {
        400 => "Bad request: an invalid id, parameter or body; `detail` says which",
        403 => "Forbidden: switched off by configuration",
        404 => "Not found",
        405 => "Method not allowed: pools come from config.toml",
        409 => "Conflict with the current state",
        422 => "The body or a parameter has the wrong shape",
        _ => "Refused; `detail` says why",
    }
}

fn responses(doc: &OperationDoc, success_status: u16, schemas: &mut Schemas) -> Value {
    let mut responses = serde_json::Map::new();
    let success = match doc.success {
        Success::Refused => Value::Null,
        Success::Json(schema) => json!({
            "description": "Success",
            "content": { "application/json": { "schema": schema(schemas) } }
        }),
        Success::NoContent => json!({ "description": "Done; no content" }),
        Success::Text => json!({
            "description": "Success",
            "content": { "text/plain": { "schema": { "type": "string" } } }
        }),
        Success::JsonOrText(schema) => json!({
            "description": "Success: JSON, or the raw text with `Accept: text/plain`",
            "content": {
                "application/json": { "schema": schema(schemas) },
                "text/plain": { "schema": { "type": "string" } }
            }
        }),
    };
    if !success.is_null() {
        responses.insert(success_status.to_string(), success);
    }
    let error = |description: &str| {
        json!({
            "description": description,
            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/HTTPExceptionResponse" } } }
        })
    };
    for status in doc.errors {
        responses.insert(status.to_string(), error(error_description(*status)));
    }
    responses.insert(
        "500".to_string(),
        error("Internal error: the cause is in the server log"),
    );
    Value::Object(responses)
}

/// The whole document.
pub fn build() -> Value {
    let mut schemas = Schemas::default();
    let mut paths = serde_json::Map::new();
    for route in route_table() {
        let Some(doc) = operation_doc(route.operation_id) else {
            // The table test keeps this from happening; the route is still listed.
            continue;
        };
        let (security, role) = match route.access {
            Access::Public => (json!([]), Value::Null),
            Access::AtLeast(role) => (json!([{ "HTTPBearer": [] }]), json!(role.as_str())),
        };
        let mut responses = responses(doc, route.success, &mut schemas);
        if route.access != Access::Public {
            let refused = |description: &str| {
                json!({
                    "description": description,
                    "content": { "application/json": { "schema": { "$ref": "#/components/schemas/HTTPExceptionResponse" } } }
                })
            };
            responses["401"] = refused("No token, or a token that is invalid, expired or of a deleted user");
            responses["403"] = refused("The caller's role may not do this");
        }
        let mut parameters = path_parameters(route.path);
        parameters.extend(doc.query.iter().map(query_parameter));
        let mut operation = json!({
            "operationId": route.operation_id,
            "summary": route.summary,
            "tags": [route.tag],
            "parameters": parameters,
            "security": security,
            "x-weir-minimum-role": role,
            "responses": responses,
        });
        if let Some(body) = doc.body {
            operation["requestBody"] = json!({
                "required": true,
                "content": { "application/json": { "schema": body(&mut schemas) } }
            });
        }
        let item = paths
            .entry(route.path.to_string())
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        if let Value::Object(methods) = item {
            methods.insert(route.verb.as_str().to_string(), operation);
        }
    }
    let mut components: serde_json::Map<String, Value> = schemas.0.into_iter().collect();
    // utoipa renders the `[task_id, map_index]` tuple variant as an array of two objects.
    components.insert(
        "TaskIdEntry".to_string(),
        json!({
            "description": "A task id, or Airflow's `[task_id, map_index]` pair (map index -1: weir has no mapped tasks)",
            "oneOf": [
                { "type": "string" },
                {
                    "type": "array",
                    "prefixItems": [{ "type": "string" }, { "type": "integer" }],
                    "items": false,
                    "minItems": 2
                }
            ]
        }),
    );
    components.insert(
        "HTTPExceptionResponse".to_string(),
        json!({
            "type": "object",
            "description": "Airflow's error shape: `detail` says what is wrong and what to do",
            "required": ["detail"],
            "properties": { "detail": { "type": "string" } }
        }),
    );
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "weir REST API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Airflow 3's stable REST API for the resources weir has. Get a token from POST /auth/token and send it as `Authorization: Bearer <token>`; `x-weir-minimum-role` names the least role an operation needs (Viewer < User < Op < Admin)."
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "HTTPBearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" }
            },
            "schemas": components
        }
    })
}

/// `GET /api/v2/openapi.json`
pub async fn document() -> Json<Value> {
    Json(build())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn every_route_has_exactly_one_operation_row_and_no_row_is_stale() {
        let routes: Vec<&str> = route_table().iter().map(|route| route.operation_id).collect();
        for operation_id in &routes {
            let rows = OPERATIONS
                .iter()
                .filter(|doc| doc.operation_id == *operation_id)
                .count();
            assert_eq!(
                rows, 1,
                "`{operation_id}` needs exactly one row in OPERATIONS, has {rows}"
            );
        }
        let served: BTreeSet<&str> = routes.iter().copied().collect();
        assert_eq!(
            served.len(),
            routes.len(),
            "operation ids are unique in the route table"
        );
        let stale: Vec<&str> = OPERATIONS
            .iter()
            .map(|doc| doc.operation_id)
            .filter(|operation_id| !served.contains(operation_id))
            .collect();
        assert!(stale.is_empty(), "rows for routes that do not exist: {stale:?}");
    }

    /// Every `$ref` anywhere in `value`.
    fn references(value: &Value, found: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(reference)) = map.get("$ref") {
                    found.push(reference.clone());
                }
                map.values().for_each(|inner| references(inner, found));
            }
            Value::Array(items) => items.iter().for_each(|inner| references(inner, found)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_names_a_schema_in_the_components() {
        let document = build();
        let mut found = Vec::new();
        references(&document, &mut found);
        assert!(found.len() > 50, "{found:?}");
        for reference in found {
            let name = reference
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("`{reference}` is not a components reference"));
            assert!(
                document["components"]["schemas"][name].is_object(),
                "`{reference}` names no schema"
            );
        }
    }

    #[test]
    fn json_operations_have_a_response_schema_and_bodies_have_a_request_schema() {
        let document = build();
        let mut with_schema = 0;
        for route in route_table() {
            let operation = &document["paths"][route.path][route.verb.as_str()];
            let success = &operation["responses"][route.success.to_string()];
            if let Some(schema) = success["content"]["application/json"]["schema"].as_object() {
                assert!(
                    !schema.is_empty(),
                    "{} has an empty response schema",
                    route.operation_id
                );
                with_schema += 1;
            }
            if matches!(route.verb, super::super::Verb::Post | super::super::Verb::Patch)
                && !route.path.starts_with("/api/v2/pools")
            {
                assert!(
                    operation["requestBody"]["content"]["application/json"]["schema"].is_object(),
                    "{} takes a body but documents none",
                    route.operation_id
                );
            }
        }
        assert!(with_schema >= 45, "{with_schema}");
    }

    #[test]
    fn states_are_enums_details_extend_the_dag_and_bodies_refuse_unknown_fields() {
        let document = build();
        let schemas = &document["components"]["schemas"];
        assert_eq!(
            schemas["DagRunState"]["enum"],
            json!(["queued", "running", "success", "failed"])
        );
        let task_states = schemas["TaskInstanceState"]["enum"].as_array().unwrap();
        assert!(task_states.contains(&json!("up_for_retry")));
        assert!(!task_states.contains(&json!("none")), "`none` is shown as null");
        assert_eq!(
            schemas["DagDetailsResponse"]["allOf"][0]["$ref"], "#/components/schemas/DagResponse",
            "the details flatten the DAG"
        );
        assert_eq!(
            schemas["TaskIdEntry"]["oneOf"][1]["prefixItems"],
            json!([{ "type": "string" }, { "type": "integer" }]),
            "a `[task_id, map_index]` pair"
        );
        assert_eq!(schemas["ClearTaskInstancesBody"]["additionalProperties"], false);
    }
}
