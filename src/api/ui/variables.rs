//! The variables page (§5.8, §8): every variable templates see, from the database and from env
//! `WEIR_VAR_<NAME>` (which wins), secret-named values shown as `***`; a form to set a database
//! variable and a button to delete one. Env variables are read-only here.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::error::{UiForm, UiQuery};
use super::{back_to, render};
use crate::api::ApiState;
use crate::api::audit::AuditNote;
use crate::api::error::ApiError;
use crate::api::rest::query;
use crate::domain::secret::{REDACTED, is_secret_name};
use crate::runtime::attempt::variables_from_env;
use crate::storage::StorageError;
use crate::storage::variables::{self, Variable};

/// Longest variable key, as the REST API and the CLI accept.
const MAX_KEY_LENGTH: usize = 250;

const PAGE_URL: &str = "/variables";

/// One variable from one source.
#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct VariableRow {
    key: String,
    /// `***` for secret-named keys.
    value: String,
    description: Option<String>,
    /// `env` or `database`.
    source: &'static str,
    /// Where an env variable is set: `WEIR_VAR_<KEY>`.
    env_name: Option<String>,
    /// Whether templates see this one (an env variable hides the database's of the same key).
    used: bool,
}

fn shown_value(key: &str, value: String) -> String {
    if is_secret_name(key) {
        REDACTED.to_string()
    } else {
        value
    }
}

fn env_name(key: &str) -> String {
    format!("WEIR_VAR_{}", key.to_uppercase())
}

/// Every variable of both sources by key, the env one (the one templates use) first.
fn rows(database: Vec<Variable>, from_env: &BTreeMap<String, String>) -> Vec<VariableRow> {
    let mut rows: Vec<VariableRow> = from_env
        .iter()
        .map(|(key, value)| VariableRow {
            value: shown_value(key, value.clone()),
            description: None,
            source: "env",
            env_name: Some(env_name(key)),
            used: true,
            key: key.clone(),
        })
        .collect();
    rows.extend(database.into_iter().map(|variable| VariableRow {
        used: !from_env.contains_key(&variable.key),
        value: shown_value(&variable.key, variable.value),
        description: variable.description,
        source: "database",
        env_name: None,
        key: variable.key,
    }));
    // Stable: env stays before the database for the same key.
    rows.sort_by(|a, b| a.key.cmp(&b.key));
    rows
}

/// What the set form shows again after a problem: never the value of a secret-named key.
#[derive(Debug, Default, Serialize)]
struct FormEcho {
    key: String,
    value: String,
    description: String,
    value_withheld: bool,
}

async fn render_page(
    state: &ApiState,
    notice: Option<String>,
    problems: &[String],
    form: FormEcho,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let mut connection = state.db.acquire().await?;
    let (database, _) = variables::list(&mut connection, &state.secrets, false, u32::MAX, 0).await?;
    drop(connection);
    let rows = rows(database, &variables_from_env(state.config.environment.vars()));
    let html = render::page("variables.html", context! { rows, notice, problems, form })?;
    Ok((status, html).into_response())
}

#[derive(Debug, Deserialize)]
pub struct PageQuery {
    notice: Option<String>,
}

/// `GET /variables`.
pub async fn list(State(state): State<ApiState>, UiQuery(query): UiQuery<PageQuery>) -> Result<Response, ApiError> {
    render_page(&state, query.notice, &[], FormEcho::default(), StatusCode::OK).await
}

#[derive(Deserialize)]
pub struct SetForm {
    #[serde(default)]
    key: String,
    #[serde(default)]
    value: String,
    #[serde(default)]
    description: String,
    next: Option<String>,
}

/// `POST /variables` with `key`, `value` and `description`: creates or replaces a database
/// variable; an empty description keeps the stored one.
pub async fn set(State(state): State<ApiState>, UiForm(form): UiForm<SetForm>) -> Result<Response, ApiError> {
    let key = form.key.trim().to_string();
    if let Err(error) = query::key("variable key", &key, MAX_KEY_LENGTH) {
        let withheld = is_secret_name(&key);
        let echo = FormEcho {
            value_withheld: withheld && !form.value.is_empty(),
            value: if withheld { String::new() } else { form.value },
            key,
            description: form.description,
        };
        return render_page(&state, None, &[error.to_string()], echo, StatusCode::BAD_REQUEST).await;
    }
    let description = Some(form.description.trim().to_string()).filter(|description| !description.is_empty());
    let variable = Variable {
        key,
        value: form.value,
        description,
    };
    let mut transaction = state.db.begin().await?;
    variables::set(&mut transaction, &variable, &state.secrets).await?;
    transaction.commit().await?;
    let mut notice = format!("Set variable `{}`.", variable.key);
    if variables_from_env(state.config.environment.vars()).contains_key(&variable.key) {
        notice.push_str(&format!(
            " Env {} is set too and takes precedence over the database.",
            env_name(&variable.key)
        ));
    }
    let note = AuditNote::new().detail("variable_key", variable.key.clone());
    Ok((note, back_to(form.next.as_deref(), PAGE_URL, &notice)).into_response())
}

#[derive(Debug, Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    key: String,
    next: Option<String>,
}

/// `POST /variables/delete` with `key`: removes a database variable.
pub async fn delete(State(state): State<ApiState>, UiForm(form): UiForm<DeleteForm>) -> Result<Response, ApiError> {
    let mut transaction = state.db.begin().await?;
    match variables::delete(&mut transaction, &form.key).await {
        Ok(()) => transaction.commit().await?,
        Err(StorageError::NotFound(_)) => {
            let message = if variables_from_env(state.config.environment.vars()).contains_key(&form.key) {
                format!(
                    "Variable `{}` is not in the database: it comes from env {}, change it there.",
                    form.key,
                    env_name(&form.key)
                )
            } else {
                format!("There is no variable `{}` in the database.", form.key)
            };
            return Err(ApiError::NotFound(message));
        }
        Err(error) => return Err(error.into()),
    }
    let notice = format!("Deleted variable `{}`.", form.key);
    let note = AuditNote::new().detail("variable_key", form.key.clone());
    Ok((note, back_to(form.next.as_deref(), PAGE_URL, &notice)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variable(key: &str, value: &str) -> Variable {
        Variable {
            key: key.to_string(),
            value: value.to_string(),
            description: None,
        }
    }

    #[test]
    fn env_variables_come_first_and_hide_the_database_ones_and_secrets_are_masked() {
        let from_env = BTreeMap::from([
            ("region".to_string(), "us".to_string()),
            ("api_token".to_string(), "tok-123".to_string()),
        ]);
        let database = vec![
            variable("region", "kr"),
            variable("db_password", "pw-456"),
            variable("rows", "10"),
        ];
        let rows = rows(database, &from_env);
        let summary: Vec<(&str, &str, &str, bool)> = rows
            .iter()
            .map(|row| (row.key.as_str(), row.value.as_str(), row.source, row.used))
            .collect();
        assert_eq!(
            summary,
            [
                ("api_token", "***", "env", true),
                ("db_password", "***", "database", true),
                ("region", "us", "env", true),
                ("region", "kr", "database", false),
                ("rows", "10", "database", true),
            ]
        );
        assert_eq!(rows[0].env_name.as_deref(), Some("WEIR_VAR_API_TOKEN"));
    }
}
