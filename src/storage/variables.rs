//! The `variable` table: key/value variables managed through the API (§5.8); the values of
//! secret-named keys are stored as given and masked by whoever shows them.

use std::collections::BTreeMap;

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::StorageError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    pub key: String,
    pub value: String,
    pub description: Option<String>,
}

fn from_row(row: AnyRow) -> Result<Variable, StorageError> {
    Ok(Variable {
        key: row.try_get("key")?,
        value: row.try_get("val")?,
        description: row.try_get("description")?,
    })
}

/// One page of variables ordered by key (descending when asked), and how many there are in all.
pub async fn list(
    connection: &mut AnyConnection,
    descending: bool,
    limit: u32,
    offset: u32,
) -> Result<(Vec<Variable>, i64), StorageError> {
    let total: i64 = sqlx::query("SELECT COUNT(*) FROM variable")
        .fetch_one(&mut *connection)
        .await?
        .try_get(0)?;
    let direction = if descending { "DESC" } else { "ASC" };
    let sql = format!("SELECT key, val, description FROM variable ORDER BY key {direction} LIMIT $1 OFFSET $2");
    let variables = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(i64::from(limit))
        .bind(i64::from(offset))
        .fetch_all(connection)
        .await?
        .into_iter()
        .map(from_row)
        .collect::<Result<_, _>>()?;
    Ok((variables, total))
}

pub async fn get(connection: &mut AnyConnection, key: &str) -> Result<Option<Variable>, StorageError> {
    sqlx::query("SELECT key, val, description FROM variable WHERE key = $1")
        .bind(key)
        .fetch_optional(connection)
        .await?
        .map(from_row)
        .transpose()
}

/// Adds a variable; Conflict when the key exists.
pub async fn insert(connection: &mut AnyConnection, variable: &Variable) -> Result<(), StorageError> {
    if get(&mut *connection, &variable.key).await?.is_some() {
        return Err(StorageError::Conflict(format!(
            "variable `{}` already exists: PATCH /api/v2/variables/{} changes it",
            variable.key, variable.key
        )));
    }
    sqlx::query("INSERT INTO variable (key, val, description) VALUES ($1, $2, $3)")
        .bind(&variable.key)
        .bind(&variable.value)
        .bind(variable.description.as_deref())
        .execute(connection)
        .await
        .map_err(|error| match &error {
            sqlx::Error::Database(database_error) if database_error.is_unique_violation() => {
                StorageError::Conflict(format!("variable `{}` already exists", variable.key))
            }
            _ => StorageError::from(error),
        })?;
    Ok(())
}

/// Every variable, key → value, for templates (`{{ var.<key> }}`).
pub async fn all(connection: &mut AnyConnection) -> Result<BTreeMap<String, String>, StorageError> {
    sqlx::query("SELECT key, val FROM variable")
        .fetch_all(connection)
        .await?
        .into_iter()
        .map(|row| Ok((row.try_get("key")?, row.try_get("val")?)))
        .collect()
}

/// Creates or replaces a variable (`weir variables set`); a `None` description keeps the stored one.
pub async fn set(connection: &mut AnyConnection, variable: &Variable) -> Result<(), StorageError> {
    sqlx::query("INSERT INTO variable (key, val, description) VALUES ($1, $2, $3) ON CONFLICT (key) DO UPDATE SET val = excluded.val, description = COALESCE(excluded.description, variable.description)")
        .bind(&variable.key)
        .bind(&variable.value)
        .bind(variable.description.as_deref())
        .execute(connection)
        .await?;
    Ok(())
}

/// Replaces a variable's value and description; NotFound when the key does not exist.
pub async fn update(connection: &mut AnyConnection, variable: &Variable) -> Result<(), StorageError> {
    let changed = sqlx::query("UPDATE variable SET val = $2, description = $3 WHERE key = $1")
        .bind(&variable.key)
        .bind(&variable.value)
        .bind(variable.description.as_deref())
        .execute(connection)
        .await?
        .rows_affected();
    if changed == 0 {
        return Err(not_found(&variable.key));
    }
    Ok(())
}

pub async fn delete(connection: &mut AnyConnection, key: &str) -> Result<(), StorageError> {
    let changed = sqlx::query("DELETE FROM variable WHERE key = $1")
        .bind(key)
        .execute(connection)
        .await?
        .rows_affected();
    if changed == 0 {
        return Err(not_found(key));
    }
    Ok(())
}

fn not_found(key: &str) -> StorageError {
    StorageError::NotFound(format!("no variable `{key}`"))
}
