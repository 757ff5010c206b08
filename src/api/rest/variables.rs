//! `/api/v2/variables`: list, get, create, update, delete. Values of keys whose names mark them
//! secret (password, secret, token, key) come back as `***`.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::query::{self, QueryParams};
use crate::api::ApiState;
use crate::api::audit::AuditNote;
use crate::api::error::{ApiError, ApiJson, ApiPath};
use crate::runtime::attempt::is_secret_name;
use crate::storage::variables::{self, Variable};

const MAX_KEY_LENGTH: usize = 250;

/// Airflow's `VariableResponse`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VariableResponse {
    pub key: String,
    pub value: Option<String>,
    pub description: Option<String>,
    pub is_encrypted: bool,
    pub team_name: Option<String>,
}

/// Airflow's `VariableCollectionResponse`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VariableCollectionResponse {
    pub variables: Vec<VariableResponse>,
    pub total_entries: i64,
}

/// Airflow's `VariableBody`: `value` may be any JSON; anything but a string is stored as JSON text.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VariableBody {
    #[schema(pattern = "^[A-Za-z0-9_.-]{1,250}$")]
    pub key: String,
    pub value: Value,
    pub description: Option<String>,
    pub team_name: Option<String>,
}

fn view(variable: Variable) -> VariableResponse {
    let secret = is_secret_name(&variable.key);
    let value = if secret { "***".to_string() } else { variable.value };
    VariableResponse {
        key: variable.key,
        value: Some(value),
        description: variable.description,
        // Secret-named values are stored encrypted with the secrets key.
        is_encrypted: secret,
        team_name: None,
    }
}

fn stored_value(value: Value) -> String {
    match value {
        Value::String(text) => text,
        other => other.to_string(),
    }
}

fn check_body(body: &VariableBody) -> Result<(), ApiError> {
    if body.team_name.is_some() {
        return Err(ApiError::BadRequest(
            "weir has no teams: leave out team_name".to_string(),
        ));
    }
    if body.value.is_null() {
        return Err(ApiError::BadRequest(
            "a variable needs a value (null is not one)".to_string(),
        ));
    }
    Ok(())
}

/// `GET /api/v2/variables`
pub async fn list(
    State(state): State<ApiState>,
    params: QueryParams,
) -> Result<ApiJson<VariableCollectionResponse>, ApiError> {
    let page = params.page()?;
    let order = params.order_by(&["key"], "key")?;
    let mut connection = state.db.acquire().await?;
    let (found, total_entries) = variables::list(
        &mut connection,
        &state.secrets,
        order.descending,
        page.limit,
        page.offset,
    )
    .await?;
    Ok(ApiJson(VariableCollectionResponse {
        variables: found.into_iter().map(view).collect(),
        total_entries,
    }))
}

/// `GET /api/v2/variables/{variable_key}`
pub async fn get(
    State(state): State<ApiState>,
    ApiPath(key): ApiPath<String>,
) -> Result<ApiJson<VariableResponse>, ApiError> {
    let key = query::key("variable key", &key, MAX_KEY_LENGTH)?;
    let mut connection = state.db.acquire().await?;
    let variable = variables::get(&mut connection, &key, &state.secrets)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no variable `{key}`")))?;
    Ok(ApiJson(view(variable)))
}

/// `POST /api/v2/variables`: 201 with the new variable, 409 when the key exists.
pub async fn create(
    State(state): State<ApiState>,
    ApiJson(body): ApiJson<VariableBody>,
) -> Result<(StatusCode, AuditNote, ApiJson<VariableResponse>), ApiError> {
    check_body(&body)?;
    let variable = Variable {
        key: query::key("variable key", &body.key, MAX_KEY_LENGTH)?,
        value: stored_value(body.value),
        description: body.description,
    };
    let mut transaction = state.db.begin().await?;
    variables::insert(&mut transaction, &variable, &state.secrets).await?;
    transaction.commit().await?;
    let note = AuditNote::new().detail("variable_key", variable.key.clone());
    Ok((StatusCode::CREATED, note, ApiJson(view(variable))))
}

/// `PATCH /api/v2/variables/{variable_key}`: changes the fields in `update_mask` (default all).
pub async fn patch(
    State(state): State<ApiState>,
    ApiPath(key): ApiPath<String>,
    params: QueryParams,
    ApiJson(body): ApiJson<VariableBody>,
) -> Result<ApiJson<VariableResponse>, ApiError> {
    let key = query::key("variable key", &key, MAX_KEY_LENGTH)?;
    check_body(&body)?;
    if body.key != key {
        return Err(ApiError::BadRequest(format!(
            "the body's key `{}` differs from the path's `{key}`: renaming is not supported",
            body.key
        )));
    }
    let mask = params.list("update_mask");
    for field in &mask {
        if field != "value" && field != "description" {
            return Err(ApiError::BadRequest(format!(
                "update_mask names `{field}`: only `value` and `description` can be changed"
            )));
        }
    }
    let changes = |field: &str| mask.is_empty() || mask.iter().any(|named| named == field);
    let mut transaction = state.db.begin().await?;
    let mut variable = variables::get(&mut transaction, &key, &state.secrets)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no variable `{key}`")))?;
    if changes("value") {
        variable.value = stored_value(body.value);
    }
    if changes("description") {
        variable.description = body.description;
    }
    variables::update(&mut transaction, &variable, &state.secrets).await?;
    transaction.commit().await?;
    Ok(ApiJson(view(variable)))
}

/// `DELETE /api/v2/variables/{variable_key}`
pub async fn delete(State(state): State<ApiState>, ApiPath(key): ApiPath<String>) -> Result<StatusCode, ApiError> {
    let key = query::key("variable key", &key, MAX_KEY_LENGTH)?;
    let mut transaction = state.db.begin().await?;
    variables::delete(&mut transaction, &key).await?;
    transaction.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
