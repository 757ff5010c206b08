//! The REST API under `/api/v2`, following Airflow 3's stable REST API: paths, field names,
//! `limit`/`offset` pagination with `total_entries`, errors as `{"detail": ...}`. Every route is
//! one row of [`entries`], which builds both the router and the OpenAPI document, and declares
//! the `Access` its caller needs; one guard (`api::auth::guard`) enforces it for every row.

mod alerts;
mod backfills;
mod connections;
mod dag_runs;
mod dags;
mod datasets;
mod event_logs;
mod import_errors;
mod metrics;
mod monitor;
mod openapi;
mod pools;
pub mod query;
mod task_instance_id;
mod task_instances;
mod task_logs;
mod tasks;
mod variables;

use std::sync::LazyLock;

use axum::Router;
use axum::handler::Handler;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, any, on};

use super::ApiState;
use super::auth::{self, Surface};
use super::error::ApiError;
use crate::domain::auth::Access;

pub use dag_runs::{DagRunResponse, run_type_name, run_view};
pub use task_instances::{TaskInstanceResponse, instance_uuid, instance_view};

/// An HTTP method the API serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Verb {
    /// The lower-case name OpenAPI uses as a key.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::Post => "post",
            Verb::Put => "put",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
        }
    }

    /// The verb of an HTTP method, when the API serves it.
    pub fn of(method: &Method) -> Option<Verb> {
        match *method {
            Method::GET => Some(Verb::Get),
            Method::POST => Some(Verb::Post),
            Method::PUT => Some(Verb::Put),
            Method::PATCH => Some(Verb::Patch),
            Method::DELETE => Some(Verb::Delete),
            _ => None,
        }
    }

    fn filter(self) -> MethodFilter {
        match self {
            Verb::Get => MethodFilter::GET,
            Verb::Post => MethodFilter::POST,
            Verb::Put => MethodFilter::PUT,
            Verb::Patch => MethodFilter::PATCH,
            Verb::Delete => MethodFilter::DELETE,
        }
    }
}

/// What the OpenAPI document says about one route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteInfo {
    pub verb: Verb,
    /// Axum's and OpenAPI's shared syntax: `/api/v2/dags/{dag_id}`.
    pub path: &'static str,
    pub operation_id: &'static str,
    pub summary: &'static str,
    pub tag: &'static str,
    /// The status of a successful answer.
    pub success: u16,
    /// Who may call it.
    pub access: Access,
}

struct Entry {
    info: RouteInfo,
    handler: MethodRouter<ApiState>,
}

fn entry<H, T>(
    verb: Verb,
    path: &'static str,
    operation_id: &'static str,
    summary: &'static str,
    tag: &'static str,
    access: Access,
    handler: H,
) -> Entry
where
    H: Handler<T, ApiState>,
    T: 'static,
{
    let success = match (verb, tag) {
        (Verb::Delete, _) => 204,
        (Verb::Post, "Variable" | "Connection") if !path.ends_with("/test") => 201,
        (Verb::Post, "Login") => 201,
        _ => 200,
    };
    Entry {
        info: RouteInfo {
            verb,
            path,
            operation_id,
            summary,
            tag,
            success,
            access,
        },
        handler: on(verb.filter(), handler),
    }
}

/// No token needed. Such a route must reveal nothing secret.
const PUBLIC: Access = Access::Public;
/// Reading anything but variables, connections and users: Viewer.
const READ: Access = Access::READ;
/// Trigger, clear, mark, patch states, pause, delete runs, backfills: User.
const OPERATE: Access = Access::OPERATE;
/// Variables, connections, pool changes: Op.
const CONFIGURE: Access = Access::CONFIGURE;

/// Every route the API serves, in the order the OpenAPI document lists them.
fn entries() -> Vec<Entry> {
    use Verb::{Delete, Get, Patch, Post, Put};
    vec![
        entry(
            Post,
            "/auth/token",
            "create_token",
            "A token for a username and password (Airflow 3's login): 201 {\"access_token\": ...}",
            "Login",
            PUBLIC,
            auth::token_endpoint,
        ),
        entry(
            Get,
            "/api/v2/monitor/health",
            "get_health",
            "Health of the metadata database and scheduler",
            "Monitor",
            PUBLIC,
            monitor::health,
        ),
        entry(
            Get,
            "/api/v2/version",
            "get_version",
            "weir's version (open, as in Airflow 3: the official client sends no token for it)",
            "Version",
            PUBLIC,
            monitor::version,
        ),
        entry(
            Get,
            "/api/v2/openapi.json",
            "get_openapi",
            "This OpenAPI document",
            "Monitor",
            PUBLIC,
            openapi::document,
        ),
        entry(
            Get,
            "/metrics",
            "get_metrics",
            "Prometheus metrics",
            "Monitor",
            PUBLIC,
            metrics::metrics,
        ),
        entry(Get, "/api/v2/dags", "get_dags", "List DAGs", "DAG", READ, dags::list),
        entry(
            Get,
            "/api/v2/dags/{dag_id}",
            "get_dag",
            "Get a DAG",
            "DAG",
            READ,
            dags::get,
        ),
        entry(
            Patch,
            "/api/v2/dags/{dag_id}",
            "patch_dag",
            "Pause or unpause a DAG",
            "DAG",
            OPERATE,
            dags::patch,
        ),
        entry(
            Get,
            "/api/v2/dags/{dag_id}/details",
            "get_dag_details",
            "Get a DAG with its settings",
            "DAG",
            READ,
            dags::details,
        ),
        entry(
            Get,
            "/api/v2/dags/{dag_id}/tasks",
            "get_tasks",
            "List a DAG's tasks",
            "Task",
            READ,
            tasks::list,
        ),
        entry(
            Get,
            "/api/v2/dags/{dag_id}/tasks/{task_id}",
            "get_task",
            "Get a task",
            "Task",
            READ,
            tasks::get,
        ),
        entry(
            Get,
            "/api/v2/dags/{dag_id}/dagRuns",
            "get_dag_runs",
            "List runs (`~` for every DAG)",
            "DagRun",
            READ,
            dag_runs::list,
        ),
        entry(
            Post,
            "/api/v2/dags/{dag_id}/dagRuns",
            "trigger_dag_run",
            "Trigger a run",
            "DagRun",
            OPERATE,
            dag_runs::trigger,
        ),
        entry(
            Get,
            "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}",
            "get_dag_run",
            "Get a run",
            "DagRun",
            READ,
            dag_runs::get,
        ),
        entry(
            Patch,
            "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}",
            "patch_dag_run",
            "Set a run's state",
            "DagRun",
            OPERATE,
            dag_runs::patch,
        ),
        entry(
            Delete,
            "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}",
            "delete_dag_run",
            "Delete a run",
            "DagRun",
            OPERATE,
            dag_runs::delete,
        ),
        entry(
            Post,
            "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/clear",
            "clear_dag_run",
            "Clear a run's task instances",
            "DagRun",
            OPERATE,
            dag_runs::clear,
        ),
        entry(
            Get,
            "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances",
            "get_task_instances",
            "List a run's task instances",
            "TaskInstance",
            READ,
            task_instances::list,
        ),
        entry(
            Get,
            "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}",
            "get_task_instance",
            "Get a task instance",
            "TaskInstance",
            READ,
            task_instances::get,
        ),
        entry(
            Patch,
            "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}",
            "patch_task_instance",
            "Mark a task instance success or failed",
            "TaskInstance",
            OPERATE,
            task_instances::patch,
        ),
        entry(
            Patch,
            "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/dry_run",
            "patch_task_instance_dry_run",
            "What marking a task instance would change",
            "TaskInstance",
            OPERATE,
            task_instances::patch_dry_run,
        ),
        entry(
            Get,
            "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/tries",
            "get_task_instance_tries",
            "List a task instance's attempts",
            "TaskInstance",
            READ,
            task_instances::tries,
        ),
        entry(
            Get,
            "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/logs/{try_number}",
            "get_log",
            "An attempt's log (JSON, or text with Accept: text/plain)",
            "TaskInstance",
            READ,
            task_instances::logs,
        ),
        entry(
            Post,
            "/api/v2/dags/{dag_id}/clearTaskInstances",
            "post_clear_task_instances",
            "Clear task instances",
            "TaskInstance",
            OPERATE,
            task_instances::clear,
        ),
        entry(
            Get,
            "/api/v2/backfills",
            "list_backfills",
            "List backfills",
            "Backfill",
            READ,
            backfills::list,
        ),
        entry(
            Post,
            "/api/v2/backfills",
            "create_backfill",
            "Create a backfill",
            "Backfill",
            OPERATE,
            backfills::create,
        ),
        entry(
            Post,
            "/api/v2/backfills/dry_run",
            "create_backfill_dry_run",
            "The dates a backfill would run, creating nothing",
            "Backfill",
            OPERATE,
            backfills::dry_run,
        ),
        entry(
            Get,
            "/api/v2/backfills/{backfill_id}",
            "get_backfill",
            "Get a backfill with its progress",
            "Backfill",
            READ,
            backfills::get,
        ),
        entry(
            Put,
            "/api/v2/backfills/{backfill_id}/pause",
            "pause_backfill",
            "Pause a backfill",
            "Backfill",
            OPERATE,
            backfills::pause,
        ),
        entry(
            Put,
            "/api/v2/backfills/{backfill_id}/unpause",
            "unpause_backfill",
            "Resume a paused backfill",
            "Backfill",
            OPERATE,
            backfills::unpause,
        ),
        entry(
            Put,
            "/api/v2/backfills/{backfill_id}/cancel",
            "cancel_backfill",
            "Cancel a backfill",
            "Backfill",
            OPERATE,
            backfills::cancel,
        ),
        entry(
            Get,
            "/api/v2/datasets",
            "get_datasets",
            "List datasets with their producing tasks, consuming DAGs and newest event",
            "Dataset",
            READ,
            datasets::list,
        ),
        entry(
            Get,
            "/api/v2/datasets/events",
            "get_dataset_events",
            "List dataset events, newest first",
            "Dataset",
            READ,
            datasets::events,
        ),
        entry(
            Get,
            "/api/v2/assets",
            "get_assets",
            "List datasets under Airflow 3's name (assets)",
            "Asset",
            READ,
            datasets::list_assets,
        ),
        entry(
            Get,
            "/api/v2/assets/events",
            "get_asset_events",
            "List dataset events under Airflow 3's name (asset events)",
            "Asset",
            READ,
            datasets::asset_events,
        ),
        entry(
            Get,
            "/api/v2/alerts",
            "get_alerts",
            "List alert deliveries, newest first (weir extension)",
            "Alert",
            READ,
            alerts::list,
        ),
        entry(
            Get,
            "/api/v2/alerts/{alert_id}",
            "get_alert",
            "Get an alert delivery with its payload (weir extension)",
            "Alert",
            READ,
            alerts::get,
        ),
        entry(
            Get,
            "/api/v2/eventLogs",
            "get_event_logs",
            "List audit log entries: who changed what, when, from where",
            "Event Log",
            READ,
            event_logs::list,
        ),
        entry(
            Get,
            "/api/v2/eventLogs/{event_log_id}",
            "get_event_log",
            "Get an audit log entry",
            "Event Log",
            READ,
            event_logs::get,
        ),
        entry(
            Get,
            "/api/v2/importErrors",
            "get_import_errors",
            "List import errors",
            "ImportError",
            READ,
            import_errors::list,
        ),
        entry(
            Get,
            "/api/v2/importErrors/{import_error_id}",
            "get_import_error",
            "Get an import error",
            "ImportError",
            READ,
            import_errors::get,
        ),
        entry(
            Get,
            "/api/v2/variables",
            "get_variables",
            "List variables",
            "Variable",
            CONFIGURE,
            variables::list,
        ),
        entry(
            Post,
            "/api/v2/variables",
            "post_variable",
            "Create a variable",
            "Variable",
            CONFIGURE,
            variables::create,
        ),
        entry(
            Get,
            "/api/v2/variables/{variable_key}",
            "get_variable",
            "Get a variable",
            "Variable",
            CONFIGURE,
            variables::get,
        ),
        entry(
            Patch,
            "/api/v2/variables/{variable_key}",
            "patch_variable",
            "Update a variable",
            "Variable",
            CONFIGURE,
            variables::patch,
        ),
        entry(
            Delete,
            "/api/v2/variables/{variable_key}",
            "delete_variable",
            "Delete a variable",
            "Variable",
            CONFIGURE,
            variables::delete,
        ),
        entry(
            Get,
            "/api/v2/connections",
            "get_connections",
            "List connections (passwords never shown)",
            "Connection",
            CONFIGURE,
            connections::list,
        ),
        entry(
            Post,
            "/api/v2/connections",
            "post_connection",
            "Create a connection",
            "Connection",
            CONFIGURE,
            connections::create,
        ),
        entry(
            Post,
            "/api/v2/connections/test",
            "test_connection",
            "Test a connection (database: SELECT 1; HTTP: GET the base URL)",
            "Connection",
            CONFIGURE,
            connections::test,
        ),
        entry(
            Get,
            "/api/v2/connections/{connection_id}",
            "get_connection",
            "Get a connection",
            "Connection",
            CONFIGURE,
            connections::get,
        ),
        entry(
            Patch,
            "/api/v2/connections/{connection_id}",
            "patch_connection",
            "Update a connection",
            "Connection",
            CONFIGURE,
            connections::patch,
        ),
        entry(
            Delete,
            "/api/v2/connections/{connection_id}",
            "delete_connection",
            "Delete a connection",
            "Connection",
            CONFIGURE,
            connections::delete,
        ),
        entry(
            Get,
            "/api/v2/pools",
            "get_pools",
            "List pools (from config.toml)",
            "Pool",
            READ,
            pools::list,
        ),
        entry(
            Post,
            "/api/v2/pools",
            "post_pool",
            "Refused: pools come from config.toml",
            "Pool",
            CONFIGURE,
            pools::read_only,
        ),
        entry(
            Get,
            "/api/v2/pools/{pool_name}",
            "get_pool",
            "Get a pool",
            "Pool",
            READ,
            pools::get,
        ),
        entry(
            Patch,
            "/api/v2/pools/{pool_name}",
            "patch_pool",
            "Refused: pools come from config.toml",
            "Pool",
            CONFIGURE,
            pools::read_only,
        ),
        entry(
            Delete,
            "/api/v2/pools/{pool_name}",
            "delete_pool",
            "Refused: pools come from config.toml",
            "Pool",
            CONFIGURE,
            pools::read_only,
        ),
    ]
}

/// Every route served, for the OpenAPI document and for tests that check it is complete.
pub fn route_table() -> Vec<RouteInfo> {
    entries().into_iter().map(|entry| entry.info).collect()
}

/// The operation id of the route served for `method` at `path` (the route table's syntax, as
/// axum's `MatchedPath` gives it): the audit log's event for an API request.
pub fn operation_id(method: &Method, path: &str) -> Option<&'static str> {
    static ROUTES: LazyLock<Vec<RouteInfo>> = LazyLock::new(route_table);
    let verb = Verb::of(method)?;
    ROUTES
        .iter()
        .find(|route| route.verb == verb && route.path == path)
        .map(|route| route.operation_id)
}

/// Every row's route behind the guard of its `access`.
pub fn router(state: &ApiState) -> Router<ApiState> {
    let mut router = Router::new();
    for entry in entries() {
        let guard_state = (state.clone(), entry.info.access, Surface::Api);
        let handler = entry
            .handler
            .route_layer(axum::middleware::from_fn_with_state(guard_state, auth::guard));
        router = router.route(entry.info.path, handler);
    }
    router
        .route("/api/v2/{*rest}", any(unknown_path))
        .layer(axum::middleware::map_response(json_method_not_allowed))
}

async fn unknown_path(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!(
        "no such API path `{}`: see /api/v2/openapi.json for the paths weir serves",
        uri.path()
    ))
}

/// axum answers a known path with an unserved method with an empty 405: give it our shape.
async fn json_method_not_allowed(response: Response) -> Response {
    if response.status() == StatusCode::METHOD_NOT_ALLOWED && !response.headers().contains_key(header::CONTENT_TYPE) {
        let allow = response.headers().get(header::ALLOW).cloned();
        let mut replaced = ApiError::MethodNotAllowed(match allow.as_ref().and_then(|value| value.to_str().ok()) {
            Some(allowed) => format!("method not allowed here; this path accepts {allowed}"),
            None => "method not allowed here".to_string(),
        })
        .into_response();
        if let Some(allow) = allow {
            replaced.headers_mut().insert(header::ALLOW, allow);
        }
        return replaced;
    }
    response
}

/// FNV-1a, 128 bits: a stable, dependency-free hash for derived ids and tokens (not for secrets).
pub(crate) fn fnv1a_128(bytes: &[u8]) -> u128 {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    bytes
        .iter()
        .fold(OFFSET, |hash, &byte| (hash ^ u128::from(byte)).wrapping_mul(PRIME))
}
