//! The Users page (Admins only): every user with their role, and forms to create a user, delete
//! one and reset a password. A generated password is shown once, on the page that answers the
//! form, never in an address.

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::error::{UiForm, UiQuery};
use super::{back_to, render, views};
use crate::api::ApiState;
use crate::api::error::ApiError;
use crate::domain::auth::{Principal, Role};
use crate::runtime::operations::OperationError;
use crate::runtime::users::{self, NewUser};
use crate::storage::users as user_rows;

const PAGE_URL: &str = "/users";

#[derive(Debug, Serialize)]
struct UserRow {
    username: String,
    role: &'static str,
    email: Option<String>,
    name: String,
    created_at: String,
    is_me: bool,
}

/// What the page says after a form: a problem, or a password generated for someone.
#[derive(Debug, Default, Serialize)]
struct Outcome {
    problem: Option<String>,
    generated_for: Option<String>,
    generated_password: Option<String>,
}

async fn render_page(
    state: &ApiState,
    principal: &Principal,
    notice: Option<String>,
    outcome: Outcome,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let mut connection = state.db.acquire().await?;
    let rows: Vec<UserRow> = user_rows::list(&mut connection)
        .await?
        .into_iter()
        .map(|user| UserRow {
            is_me: user.username == principal.username,
            name: [user.first_name.as_deref(), user.last_name.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" "),
            username: user.username,
            role: user.role.as_str(),
            email: user.email,
            created_at: views::time(user.created_at),
        })
        .collect();
    drop(connection);
    let roles: Vec<&str> = Role::ALL.iter().map(|role| role.as_str()).collect();
    let html = render::page("users.html", context! { rows, roles, notice, outcome })?;
    Ok((status, html).into_response())
}

#[derive(Debug, Deserialize)]
pub struct PageQuery {
    notice: Option<String>,
}

/// `GET /users`.
pub async fn list(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    UiQuery(query): UiQuery<PageQuery>,
) -> Result<Response, ApiError> {
    render_page(&state, &principal, query.notice, Outcome::default(), StatusCode::OK).await
}

/// A refused form: the page again with why, or the error page for what is not the form's fault.
async fn refused(state: &ApiState, principal: &Principal, error: OperationError) -> Result<Response, ApiError> {
    let (status, problem) = match error {
        OperationError::Invalid(message) => (StatusCode::BAD_REQUEST, message),
        OperationError::NotFound(message) => (StatusCode::NOT_FOUND, message),
        OperationError::Conflict(message) => (StatusCode::CONFLICT, message),
        OperationError::Storage(error) => return Err(error.into()),
    };
    let outcome = Outcome {
        problem: Some(problem),
        ..Outcome::default()
    };
    render_page(state, principal, None, outcome, status).await
}

#[derive(Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    role: String,
    /// Empty: a password is generated and shown once.
    #[serde(default)]
    password: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: String,
}

/// `POST /users`: creates a user.
pub async fn create(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    UiForm(form): UiForm<CreateForm>,
) -> Result<Response, ApiError> {
    let role: Role = match form.role.parse() {
        Ok(role) => role,
        Err(error) => return refused(&state, &principal, OperationError::Invalid(format!("{error}"))).await,
    };
    let generated = form.password.is_empty();
    let password = if generated {
        users::random_password()?
    } else {
        form.password
    };
    let new_user = NewUser {
        username: form.username.trim().to_string(),
        password: password.clone(),
        role,
        email: Some(form.email),
        first_name: Some(form.first_name),
        last_name: Some(form.last_name),
    };
    match users::create_user(&state.db, new_user).await {
        Ok(user) if generated => {
            let outcome = Outcome {
                generated_for: Some(user.username.clone()),
                generated_password: Some(password),
                problem: None,
            };
            let notice = format!("Created user {} ({}).", user.username, user.role);
            render_page(&state, &principal, Some(notice), outcome, StatusCode::OK).await
        }
        Ok(user) => Ok(back_to(
            None,
            PAGE_URL,
            &format!("Created user {} ({}).", user.username, user.role),
        )
        .into_response()),
        Err(error) => refused(&state, &principal, error).await,
    }
}

#[derive(Debug, Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    username: String,
}

/// `POST /users/delete`: removes a user (not oneself: that would end the session mid-page and
/// could leave no Admin).
pub async fn delete(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    UiForm(form): UiForm<DeleteForm>,
) -> Result<Response, ApiError> {
    if form.username == principal.username {
        let error = OperationError::Invalid(
            "You cannot delete yourself: ask another Admin, or use `weir users delete`.".to_string(),
        );
        return refused(&state, &principal, error).await;
    }
    match users::delete_user(&state.db, &form.username).await {
        Ok(()) => Ok(back_to(None, PAGE_URL, &format!("Deleted user {}.", form.username)).into_response()),
        Err(error) => refused(&state, &principal, error).await,
    }
}

#[derive(Deserialize)]
pub struct ResetForm {
    #[serde(default)]
    username: String,
    /// Empty: a password is generated and shown once.
    #[serde(default)]
    password: String,
}

/// `POST /users/reset-password`: a new password; the user's tokens and sessions end.
pub async fn reset_password(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    UiForm(form): UiForm<ResetForm>,
) -> Result<Response, ApiError> {
    let generated = form.password.is_empty();
    let password = if generated {
        users::random_password()?
    } else {
        form.password
    };
    match users::reset_password(&state.db, &form.username, password.clone()).await {
        Ok(()) => {
            let notice = format!(
                "Reset the password of {}; their sessions and tokens have ended.",
                form.username
            );
            if generated {
                let outcome = Outcome {
                    generated_for: Some(form.username),
                    generated_password: Some(password),
                    problem: None,
                };
                render_page(&state, &principal, Some(notice), outcome, StatusCode::OK).await
            } else {
                Ok(back_to(None, PAGE_URL, &notice).into_response())
            }
        }
        Err(error) => refused(&state, &principal, error).await,
    }
}
