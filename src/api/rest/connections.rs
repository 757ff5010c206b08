//! `/api/v2/connections`: list, get, create, update, delete and test. Passwords are stored
//! encrypted with the secrets key and never returned: `password` is `"***"` when one is set and
//! `null` otherwise, and secret-named `extra` values are `"***"` too, as in Airflow 3. Sending
//! `"***"` back (a form that round-trips what it was shown) keeps the stored value.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::query::{self, QueryParams};
use crate::api::ApiState;
use crate::api::audit::AuditNote;
use crate::api::error::{ApiError, ApiJson, ApiPath};
use crate::domain::connection::{Connection, ConnectionFields, ExtraField, MAX_CONN_ID_LENGTH, REDACTED};
use crate::runtime::connection_probe;
use crate::storage::connections::{self, PasswordChange, StoredConnection};

/// Airflow's `ConnectionResponse`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConnectionResponse {
    pub connection_id: String,
    pub conn_type: String,
    pub description: Option<String>,
    pub host: Option<String>,
    pub login: Option<String>,
    pub schema: Option<String>,
    pub port: Option<u16>,
    /// `"***"` when a password is stored, else `null`: never the password.
    pub password: Option<String>,
    /// JSON text, secret-named values as `"***"`.
    pub extra: Option<String>,
    pub team_name: Option<String>,
}

/// Airflow's `ConnectionCollectionResponse`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConnectionCollectionResponse {
    pub connections: Vec<ConnectionResponse>,
    pub total_entries: i64,
}

/// Airflow's `ConnectionTestResponse`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConnectionTestResponse {
    pub status: bool,
    pub message: String,
}

/// Airflow's `ConnectionBody`. `password` tells absent (keep) from `null` (clear) on PATCH.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionBody {
    #[schema(pattern = "^[A-Za-z0-9_.-]{1,200}$")]
    pub connection_id: String,
    #[schema(pattern = "\\S")]
    pub conn_type: String,
    pub description: Option<String>,
    pub host: Option<String>,
    pub login: Option<String>,
    pub schema: Option<String>,
    #[schema(minimum = 0, maximum = 65535)]
    pub port: Option<i64>,
    #[serde(default, deserialize_with = "present")]
    pub password: Option<Option<String>>,
    pub extra: Option<String>,
    pub team_name: Option<String>,
}

impl std::fmt::Debug for ConnectionBody {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Only the id: the password and extra may hold secrets.
        formatter
            .debug_struct("ConnectionBody")
            .field("connection_id", &self.connection_id)
            .finish_non_exhaustive()
    }
}

fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

fn view(stored: StoredConnection) -> ConnectionResponse {
    let extra = stored.connection.redacted_extra();
    let connection = stored.connection;
    ConnectionResponse {
        connection_id: connection.conn_id,
        conn_type: connection.conn_type,
        description: connection.description,
        host: connection.host,
        login: connection.login,
        schema: connection.schema,
        port: connection.port,
        password: stored.has_password.then(|| REDACTED.to_string()),
        extra: (!extra.is_empty()).then(|| Value::Object(extra).to_string()),
        team_name: None,
    }
}

fn view_of(connection: &Connection) -> ConnectionResponse {
    let mut shown = connection.clone();
    shown.password = None;
    view(StoredConnection {
        connection: shown,
        has_password: connection.password.is_some(),
    })
}

/// Checks a body and turns it into a connection (the password as sent, `***` included).
fn connection_of(body: ConnectionBody) -> Result<Connection, ApiError> {
    let conn_id = query::key("connection id", &body.connection_id, MAX_CONN_ID_LENGTH)?;
    if body.conn_type.trim().is_empty() {
        return Err(ApiError::BadRequest(
            "conn_type must not be empty (e.g. postgres, mysql, sqlite, http, https)".to_string(),
        ));
    }
    let port = body
        .port
        .map(|port| {
            u16::try_from(port).map_err(|_| ApiError::BadRequest(format!("port must be from 0 to 65535, got {port}")))
        })
        .transpose()?;
    if body.team_name.is_some() {
        return Err(ApiError::BadRequest(
            "weir has no teams: leave out team_name".to_string(),
        ));
    }
    let fields = ConnectionFields {
        url: None,
        conn_type: Some(body.conn_type),
        host: body.host,
        port,
        schema: body.schema,
        login: body.login,
        password: body.password.flatten(),
        extra: body.extra.map(ExtraField::Text),
        description: body.description,
    };
    Connection::from_fields(&conn_id, fields).map_err(|error| ApiError::BadRequest(error.reason))
}

/// A sent extra with `"***"` under a secret-named key means "keep the stored value".
fn keep_redacted(sent: &mut Map<String, Value>, stored: &Map<String, Value>) {
    for (key, value) in sent.iter_mut() {
        match (value, stored.get(key)) {
            (value @ Value::String(_), Some(old)) if value.as_str() == Some(REDACTED) => *value = old.clone(),
            (Value::Object(inner), Some(Value::Object(old))) => keep_redacted(inner, old),
            _ => {}
        }
    }
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
    let conn_id = query::key("connection id", &conn_id, MAX_CONN_ID_LENGTH)?;
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
) -> Result<(StatusCode, AuditNote, ApiJson<ConnectionResponse>), ApiError> {
    let new = connection_of(body)?;
    let mut transaction = state.db.begin().await?;
    connections::insert(&mut transaction, &new, &state.secrets).await?;
    transaction.commit().await?;
    let note = AuditNote::new().detail("connection_id", new.conn_id.clone());
    Ok((StatusCode::CREATED, note, ApiJson(view_of(&new))))
}

/// `PATCH /api/v2/connections/{connection_id}`: changes the fields in `update_mask` (default
/// all). The password changes only when `password` is sent: a text sets it, `null` clears it,
/// `"***"` keeps it.
pub async fn patch(
    State(state): State<ApiState>,
    ApiPath(conn_id): ApiPath<String>,
    params: QueryParams,
    ApiJson(body): ApiJson<ConnectionBody>,
) -> Result<ApiJson<ConnectionResponse>, ApiError> {
    let conn_id = query::key("connection id", &conn_id, MAX_CONN_ID_LENGTH)?;
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
    let password_sent = body.password.clone();
    let wanted = connection_of(body)?;
    let mut transaction = state.db.begin().await?;
    let current = connections::get(&mut transaction, &conn_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no connection `{conn_id}`")))?;
    let changes = |field: &str| mask.is_empty() || mask.iter().any(|named| named == field);
    let pick = |field: &str, new: Option<String>, old: Option<String>| if changes(field) { new } else { old };
    let old = current.connection;
    let mut extra = wanted.extra;
    keep_redacted(&mut extra, &old.extra);
    let changed = Connection {
        conn_type: if changes("conn_type") {
            wanted.conn_type
        } else {
            old.conn_type
        },
        host: pick("host", wanted.host, old.host),
        schema: pick("schema", wanted.schema, old.schema),
        login: pick("login", wanted.login, old.login),
        port: if changes("port") { wanted.port } else { old.port },
        extra: if changes("extra") { extra } else { old.extra },
        description: pick("description", wanted.description, old.description),
        password: None,
        conn_id,
    };
    let password = match password_sent {
        Some(_) if !changes("password") => PasswordChange::Keep,
        None => PasswordChange::Keep,
        Some(None) => PasswordChange::Clear,
        Some(Some(text)) if text == REDACTED => PasswordChange::Keep,
        Some(Some(text)) if text.is_empty() => PasswordChange::Clear,
        Some(Some(text)) => PasswordChange::Set(text),
    };
    connections::update(&mut transaction, &changed, &password, &state.secrets).await?;
    transaction.commit().await?;
    let has_password = match password {
        PasswordChange::Keep => current.has_password,
        PasswordChange::Set(_) => true,
        PasswordChange::Clear => false,
    };
    Ok(ApiJson(view(StoredConnection {
        connection: changed,
        has_password,
    })))
}

/// `DELETE /api/v2/connections/{connection_id}`
pub async fn delete(State(state): State<ApiState>, ApiPath(conn_id): ApiPath<String>) -> Result<StatusCode, ApiError> {
    let conn_id = query::key("connection id", &conn_id, MAX_CONN_ID_LENGTH)?;
    let mut transaction = state.db.begin().await?;
    connections::delete(&mut transaction, &conn_id).await?;
    transaction.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v2/connections/test`: tries the connection in the body (a database: `SELECT 1`;
/// HTTP: a GET of the base URL) and answers 200 with `{status, message}` either way. A password
/// left out or sent as `"***"` is taken from the stored connection of that id, so a form can
/// test what it shows. The API is trusted (no authentication yet), and this reaches only what a
/// DAG task could reach too.
pub async fn test(
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<ConnectionBody>,
) -> Result<(AuditNote, ApiJson<ConnectionTestResponse>), ApiError> {
    if !state.config.test_connection {
        return Err(ApiError::Forbidden(
            crate::runtime::connection_probe::TESTING_DISABLED.to_string(),
        ));
    }
    let mut candidate = connection_of(body)?;
    let uses_stored_password = candidate
        .password
        .as_deref()
        .is_none_or(|password| password == REDACTED);
    let mut connection = state.db.acquire().await?;
    match connections::get_with_password(&mut connection, &candidate.conn_id, &state.secrets).await {
        Ok(Some(stored)) => {
            if uses_stored_password {
                candidate.password = stored.password;
            }
            keep_redacted(&mut candidate.extra, &stored.extra);
        }
        Ok(None) => {
            if uses_stored_password {
                candidate.password = None;
            }
        }
        Err(crate::storage::StorageError::Undecryptable(error)) if uses_stored_password => {
            let response = ApiJson(ConnectionTestResponse {
                status: false,
                message: error.to_string(),
            });
            return Ok((AuditNote::not_recorded(), response));
        }
        Err(crate::storage::StorageError::Undecryptable(_)) => {}
        Err(error) => return Err(error.into()),
    }
    drop(connection);
    let outcome = connection_probe::probe(&candidate, &state.config.folder).await;
    let response = ApiJson(match outcome {
        Ok(message) => ConnectionTestResponse { status: true, message },
        Err(message) => ConnectionTestResponse { status: false, message },
    });
    // A test changes nothing: it is not an audited change.
    Ok((AuditNote::not_recorded(), response))
}
