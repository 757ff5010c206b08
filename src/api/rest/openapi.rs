//! `GET /api/v2/openapi.json`: an OpenAPI 3.1 document generated from the route table, so it
//! lists exactly the routes served.

use axum::Json;
use serde_json::{Map, Value, json};

use super::route_table;
use crate::domain::auth::Access;

/// The parameters named in a path template (`{dag_id}` …), all strings in the path.
fn path_parameters(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{').and_then(|rest| rest.strip_suffix('}')))
        .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
        .collect()
}

/// The whole document.
pub fn build() -> Value {
    let mut paths = Map::new();
    for route in route_table() {
        let success = if route.success == 204 {
            json!({ "description": "Done; no content" })
        } else {
            json!({ "description": "Success", "content": { "application/json": { "schema": {} } } })
        };
        let error = json!({
            "description": "The request was refused; `detail` says why",
            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/HTTPExceptionResponse" } } }
        });
        let (security, role) = match route.access {
            Access::Public => (json!([]), Value::Null),
            Access::AtLeast(role) => (json!([{ "HTTPBearer": [] }]), json!(role.as_str())),
        };
        let operation = json!({
            "operationId": route.operation_id,
            "summary": route.summary,
            "tags": [route.tag],
            "parameters": path_parameters(route.path),
            "security": security,
            "x-weir-minimum-role": role,
            "responses": { route.success.to_string(): success, "4XX": error.clone(), "5XX": error },
        });
        let item = paths
            .entry(route.path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(methods) = item {
            methods.insert(route.verb.as_str().to_string(), operation);
        }
    }
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
            "schemas": {
                "HTTPExceptionResponse": {
                    "type": "object",
                    "required": ["detail"],
                    "properties": { "detail": { "type": "string" } }
                }
            }
        }
    })
}

/// `GET /api/v2/openapi.json`
pub async fn document() -> Json<Value> {
    Json(build())
}
