//! One row per operation of the route table ([`OPERATIONS`]): its query parameters, request
//! body, success response and error statuses, the part of the document the routes do not say.

use serde_json::{Value, json};

use super::schemas::{SchemaFn, cleared_run, json_document, schema};
use crate::api::auth::{LoginRequest, TokenResponse};
use crate::api::rest::alerts::{AlertCollectionResponse, AlertResponse};
use crate::api::rest::backfills::{
    BackfillCollectionResponse, BackfillPostBody, BackfillResponse, DryRunBackfillCollectionResponse,
};
use crate::api::rest::connections::{
    ConnectionBody, ConnectionCollectionResponse, ConnectionResponse, ConnectionTestResponse,
};
use crate::api::rest::dag_runs::{
    DagRunClearBody, DagRunCollectionResponse, DagRunPatchBody, DagRunResponse, TriggerBody,
};
use crate::api::rest::dags::{DagCollectionResponse, DagDetailsResponse, DagPatchBody, DagResponse};
use crate::api::rest::datasets::{
    AssetCollectionResponse, AssetEventCollectionResponse, DatasetCollectionResponse, DatasetEventCollectionResponse,
};
use crate::api::rest::event_logs::{EventLogCollectionResponse, EventLogResponse};
use crate::api::rest::import_errors::{ImportErrorCollectionResponse, ImportErrorResponse};
use crate::api::rest::monitor::{HealthInfoResponse, VersionInfo};
use crate::api::rest::pools::{PoolCollectionResponse, PoolResponse};
use crate::api::rest::task_instances::{
    ClearTaskInstancesBody, PatchTaskInstanceBody, TaskInstanceCollectionResponse,
    TaskInstanceHistoryCollectionResponse, TaskInstanceResponse, TaskInstancesLogResponse,
};
use crate::api::rest::tasks::{TaskCollectionResponse, TaskResponse};
use crate::api::rest::variables::{VariableBody, VariableCollectionResponse, VariableResponse};

/// The type of a query parameter, as the handlers read it (`query::QueryParams`).
#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
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
    pub(super) fn schema(self) -> Value {
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
pub(super) struct QueryParam {
    pub(super) name: &'static str,
    pub(super) kind: Kind,
    pub(super) description: &'static str,
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
pub(super) enum Success {
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
pub(super) struct OperationDoc {
    pub(super) operation_id: &'static str,
    pub(super) query: &'static [QueryParam],
    pub(super) body: Option<SchemaFn>,
    pub(super) success: Success,
    /// Error statuses it can answer, each with an `HTTPExceptionResponse` body.
    pub(super) errors: &'static [u16],
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
pub(super) const OPERATIONS: &[OperationDoc] = &[
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
    op("get_openapi", &[], None, Success::Json(json_document), &[]),
    op("get_dag_schema", &[], None, Success::Json(json_document), &[]),
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

pub(super) fn operation_doc(operation_id: &str) -> Option<&'static OperationDoc> {
    OPERATIONS.iter().find(|doc| doc.operation_id == operation_id)
}
