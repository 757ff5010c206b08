//! The REST API under `/api/v2`, following Airflow 3's stable REST API: paths, field names,
//! `limit`/`offset` pagination with `total_entries`, errors as `{"detail": ...}`. Every route is
//! one row of the table in `routes.rs`, which builds both the router and the OpenAPI document,
//! and declares the `Access` its caller needs; one guard (`api::auth::guard`) enforces it for
//! every row.

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
mod routes;
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
use routes::entries;

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
