//! The `weir_user` table: people who sign in, with their role and the argon2id hash of their
//! password (never the password). Hashing and checking passwords is `runtime::users`' job.

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{StorageError, from_micros, micros, parse_column};
use crate::domain::auth::Role;

/// A user as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    pub username: String,
    /// argon2id in PHC format (`$argon2id$v=19$...`).
    pub password_hash: String,
    pub role: Role,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// Grows when the password is reset; tokens issued in an older epoch are refused.
    pub token_epoch: i64,
    pub created_at: DateTime<Utc>,
}

impl std::fmt::Debug for User {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("User")
            .field("username", &self.username)
            .field("password_hash", &"***")
            .field("role", &self.role)
            .field("email", &self.email)
            .field("token_epoch", &self.token_epoch)
            .finish_non_exhaustive()
    }
}

const COLUMNS: &str = "username, password_hash, role, email, first_name, last_name, token_epoch, created_at";

fn from_row(row: &AnyRow) -> Result<User, StorageError> {
    Ok(User {
        username: row.try_get("username")?,
        password_hash: row.try_get("password_hash")?,
        role: parse_column(row.try_get("role")?, "weir_user.role")?,
        email: row.try_get("email")?,
        first_name: row.try_get("first_name")?,
        last_name: row.try_get("last_name")?,
        token_epoch: row.try_get("token_epoch")?,
        created_at: from_micros(row.try_get("created_at")?),
    })
}

/// Adds a user; Conflict when the username is taken.
pub async fn insert(connection: &mut AnyConnection, user: &User) -> Result<(), StorageError> {
    let taken = || StorageError::Conflict(format!("user `{}` already exists", user.username));
    if get(&mut *connection, &user.username).await?.is_some() {
        return Err(taken());
    }
    sqlx::query(
        "INSERT INTO weir_user (username, password_hash, role, email, first_name, last_name, token_epoch, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&user.username)
    .bind(&user.password_hash)
    .bind(user.role.as_str())
    .bind(user.email.as_deref())
    .bind(user.first_name.as_deref())
    .bind(user.last_name.as_deref())
    .bind(user.token_epoch)
    .bind(micros(user.created_at))
    .execute(connection)
    .await
    .map_err(|error| match &error {
        sqlx::Error::Database(database_error) if database_error.is_unique_violation() => taken(),
        _ => StorageError::from(error),
    })?;
    Ok(())
}

pub async fn get(connection: &mut AnyConnection, username: &str) -> Result<Option<User>, StorageError> {
    let sql = format!("SELECT {COLUMNS} FROM weir_user WHERE username = $1");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(username)
        .fetch_optional(connection)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// Every user, by username.
pub async fn list(connection: &mut AnyConnection) -> Result<Vec<User>, StorageError> {
    let sql = format!("SELECT {COLUMNS} FROM weir_user ORDER BY username");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(connection)
        .await?
        .iter()
        .map(from_row)
        .collect()
}

pub async fn count(connection: &mut AnyConnection) -> Result<i64, StorageError> {
    Ok(sqlx::query("SELECT COUNT(*) FROM weir_user")
        .fetch_one(connection)
        .await?
        .try_get(0)?)
}

fn no_such_user(username: &str) -> StorageError {
    StorageError::NotFound(format!("no user `{username}`: `weir users list` shows who exists"))
}

/// Removes a user; NotFound when there is none of that name.
pub async fn delete(connection: &mut AnyConnection, username: &str) -> Result<(), StorageError> {
    let deleted = sqlx::query("DELETE FROM weir_user WHERE username = $1")
        .bind(username)
        .execute(connection)
        .await?
        .rows_affected();
    if deleted == 0 {
        return Err(no_such_user(username));
    }
    Ok(())
}

/// Replaces the password hash and moves the token epoch on, so tokens issued before stop working.
pub async fn set_password(
    connection: &mut AnyConnection,
    username: &str,
    password_hash: &str,
) -> Result<(), StorageError> {
    let updated =
        sqlx::query("UPDATE weir_user SET password_hash = $1, token_epoch = token_epoch + 1 WHERE username = $2")
            .bind(password_hash)
            .bind(username)
            .execute(connection)
            .await?
            .rows_affected();
    if updated == 0 {
        return Err(no_such_user(username));
    }
    Ok(())
}

/// Changes a user's role; tokens already issued get the new role at their next request.
pub async fn set_role(connection: &mut AnyConnection, username: &str, role: Role) -> Result<(), StorageError> {
    let updated = sqlx::query("UPDATE weir_user SET role = $1 WHERE username = $2")
        .bind(role.as_str())
        .bind(username)
        .execute(connection)
        .await?
        .rows_affected();
    if updated == 0 {
        return Err(no_such_user(username));
    }
    Ok(())
}
