//! `/api/v2/connections`: list, get, create, update, delete. A password can be written but is
//! never returned.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::query::{self, QueryParams};
use crate::api::ApiState;
use crate::api::error::{ApiError, ApiJson, ApiPath};
use crate::storage::connections::{self, Connection, ConnectionWrite};

const MAX_ID_LENGTH: usize = 200;

/// Airflow's `ConnectionResponse`, without `password` (never returned).
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionResponse {
    pub connection_id: String,
    pub conn_type: String,
    pub description: Option<String>,
    pub host: Option<String>,
    pub login: Option<String>,
    pub schema: Option<String>,
    pub port: Option<i64>,
    pub extra: Option<String>,
    pub team_name: Option<String>,
}

/// Airflow's `ConnectionCollectionResponse`.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionCollectionResponse {
    pub connections: Vec<ConnectionResponse>,
    pub total_entries: i64,
}

/// Airflow's `ConnectionBody`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionBody {
    pub connection_id: String,
    pub conn_type: String,
    pub description: Option<String>,
    pub host: Option<String>,
    pub login: Option<String>,
    pub schema: Option<String>,
    pub port: Option<i64>,
    pub password: Option<String>,
    pub extra: Option<String>,
    pub team_name: Option<String>,
}

fn view(connection: Connection) -> ConnectionResponse {
    ConnectionResponse {
        connection_id: connection.conn_id,
        conn_type: connection.conn_type,
        description: connection.description,
        host: connection.host,
        login: connection.login,
        schema: connection.schema,
        port: connection.port,
        extra: connection.extra,
        team_name: None,
    }
}

/// Checks a body and turns it into what storage writes.
fn write_of(body: ConnectionBody) -> Result<ConnectionWrite, ApiError> {
    let conn_id = query::key("connection id", &body.connection_id, MAX_ID_LENGTH)?;
    if body.conn_type.trim().is_empty() {
        return Err(ApiError::BadRequest(
            "conn_type must not be empty (e.g. postgres, http)".to_string(),
        ));
    }
    if let Some(port) = body.port
        && !(0..=65_535).contains(&port)
    {
        return Err(ApiError::BadRequest(format!(
            "port must be from 0 to 65535, got {port}"
        )));
    }
    if let Some(extra) = body.extra.as_deref()
        && !extra.trim().is_empty()
    {
        let parsed: serde_json::Value = serde_json::from_str(extra)
            .map_err(|error| ApiError::BadRequest(format!("extra must be a JSON object: {error}")))?;
        if !parsed.is_object() {
            return Err(ApiError::BadRequest("extra must be a JSON object".to_string()));
        }
    }
    if body.team_name.is_some() {
        return Err(ApiError::BadRequest(
            "weir has no teams: leave out team_name".to_string(),
        ));
    }
    Ok(ConnectionWrite {
        connection: Connection {
            conn_id,
            conn_type: body.conn_type,
            host: body.host,
            schema: body.schema,
            login: body.login,
            port: body.port,
            extra: body.extra,
            description: body.description,
        },
        password: body.password,
    })
}

/// `GET /api/v2/connections`
pub async fn list(
    State(state): State<ApiState>,
    params: QueryParams,
) -> Result<ApiJson<ConnectionCollectionResponse>, ApiError> {
    let page = params.page()?;
    let order = params.order_by(&["connection_id", "conn_id"], "connection_id")?;
    let mut connection = state.db.acquire().await?;
    let (found, total_entries) = connections::list(&mut connection, order.descending, page.limit, page.offset).await?;
    Ok(ApiJson(ConnectionCollectionResponse {
        connections: found.into_iter().map(view).collect(),
        total_entries,
    }))
}

/// `GET /api/v2/connections/{connection_id}`
pub async fn get(
    State(state): State<ApiState>,
    ApiPath(conn_id): ApiPath<String>,
) -> Result<ApiJson<ConnectionResponse>, ApiError> {
    let conn_id = query::key("connection id", &conn_id, MAX_ID_LENGTH)?;
    let mut connection = state.db.acquire().await?;
    let found = connections::get(&mut connection, &conn_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no connection `{conn_id}`")))?;
    Ok(ApiJson(view(found)))
}

/// `POST /api/v2/connections`: 201 with the new connection, 409 when the id exists.
pub async fn create(
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<ConnectionBody>,
) -> Result<(StatusCode, ApiJson<ConnectionResponse>), ApiError> {
    let write = write_of(body)?;
    let mut connection = state.db.acquire().await?;
    connections::insert(&mut connection, &write).await?;
    Ok((StatusCode::CREATED, ApiJson(view(write.connection))))
}

/// `PATCH /api/v2/connections/{connection_id}`: changes the fields in `update_mask` (default
/// all; the password only when one is sent).
pub async fn patch(
    State(state): State<ApiState>,
    ApiPath(conn_id): ApiPath<String>,
    params: QueryParams,
    ApiJson(body): ApiJson<ConnectionBody>,
) -> Result<ApiJson<ConnectionResponse>, ApiError> {
    let conn_id = query::key("connection id", &conn_id, MAX_ID_LENGTH)?;
    if body.connection_id != conn_id {
        return Err(ApiError::BadRequest(format!(
            "the body's connection_id `{}` differs from the path's `{conn_id}`: renaming is not supported",
            body.connection_id
        )));
    }
    const FIELDS: &[&str] = &[
        "conn_type",
        "description",
        "host",
        "login",
        "schema",
        "port",
        "password",
        "extra",
    ];
    let mask = params.list("update_mask");
    for field in &mask {
        if !FIELDS.contains(&field.as_str()) {
            return Err(ApiError::BadRequest(format!(
                "update_mask names `{field}`: the fields that can change are {}",
                FIELDS.join(", ")
            )));
        }
    }
    let wanted = write_of(body)?;
    let mut connection = state.db.acquire().await?;
    let current = connections::get(&mut connection, &conn_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no connection `{conn_id}`")))?;
    let changes = |field: &str| mask.is_empty() || mask.iter().any(|named| named == field);
    let pick = |field: &str, new: Option<String>, old: Option<String>| if changes(field) { new } else { old };
    let new = wanted.connection;
    let write = ConnectionWrite {
        connection: Connection {
            conn_type: if changes("conn_type") {
                new.conn_type
            } else {
                current.conn_type
            },
            host: pick("host", new.host, current.host),
            schema: pick("schema", new.schema, current.schema),
            login: pick("login", new.login, current.login),
            port: if changes("port") { new.port } else { current.port },
            extra: pick("extra", new.extra, current.extra),
            description: pick("description", new.description, current.description),
            conn_id,
        },
        password: if changes("password") { wanted.password } else { None },
    };
    connections::update(&mut connection, &write).await?;
    Ok(ApiJson(view(write.connection)))
}

/// `DELETE /api/v2/connections/{connection_id}`
pub async fn delete(State(state): State<ApiState>, ApiPath(conn_id): ApiPath<String>) -> Result<StatusCode, ApiError> {
    let conn_id = query::key("connection id", &conn_id, MAX_ID_LENGTH)?;
    let mut connection = state.db.acquire().await?;
    connections::delete(&mut connection, &conn_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
