//! `GET /api/v2/openapi.json`: an OpenAPI 3.1 document generated from the route table (paths,
//! methods, ids) and from [`OPERATIONS`], one row per operation with its query parameters, request
//! body, success response and error statuses. Body schemas are derived from the DTOs with
//! utoipa's `ToSchema`, so the document changes with the types the handlers really use.

use axum::Json;
use serde_json::{Value, json};

use super::route_table;
use crate::domain::auth::Access;

mod operations;
mod schemas;

use operations::{Kind, OperationDoc, QueryParam, Success, operation_doc};
use schemas::Schemas;

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

    use super::operations::OPERATIONS;
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
