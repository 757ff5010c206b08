//! The `variable` table: key/value variables managed through the API (§5.8). Values of
//! secret-named keys (password, secret, token, key) are written encrypted with the secrets key
//! (`enc:v1:...`, as connection passwords) and come back decrypted; whoever shows them masks them.

use std::collections::BTreeMap;

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{StorageError, Transaction};
use crate::domain::secret::is_secret_name;
use crate::secrets::{DecryptError, SecretsKey, is_encrypted};

/// A secret-named variable whose stored value the key in use cannot decrypt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "variable `{key}`'s value {error}: set [secrets] key (or WEIR__SECRETS__KEY) to the key used when it was stored, or set the variable again"
)]
pub struct UndecryptableVariable {
    pub key: String,
    pub error: DecryptError,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    pub key: String,
    pub value: String,
    pub description: Option<String>,
}

fn from_row(row: AnyRow, secrets: &SecretsKey) -> Result<Variable, StorageError> {
    let key: String = row.try_get("key")?;
    let stored: String = row.try_get("val")?;
    Ok(Variable {
        value: clear_value(&key, stored, secrets)?,
        key,
        description: row.try_get("description")?,
    })
}

/// The value as stored: encrypted when the key's name marks it secret.
fn stored_value(variable: &Variable, secrets: &SecretsKey) -> String {
    if is_secret_name(&variable.key) {
        secrets.encrypt(&variable.value)
    } else {
        variable.value.clone()
    }
}

/// The value as read: a secret-named one decrypted. One still in plain text (from before this
/// encryption) is returned as it is until `encrypt_plain_values` runs; other values are never
/// touched, whatever they look like.
fn clear_value(key: &str, stored: String, secrets: &SecretsKey) -> Result<String, StorageError> {
    if !is_secret_name(key) || !is_encrypted(&stored) {
        return Ok(stored);
    }
    secrets.decrypt(&stored).map_err(|error| {
        StorageError::from(UndecryptableVariable {
            key: key.to_string(),
            error,
        })
    })
}

/// One page of variables ordered by key (descending when asked), and how many there are in all.
pub async fn list(
    connection: &mut AnyConnection,
    secrets: &SecretsKey,
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
        .map(|row| from_row(row, secrets))
        .collect::<Result<_, _>>()?;
    Ok((variables, total))
}

pub async fn get(
    connection: &mut AnyConnection,
    key: &str,
    secrets: &SecretsKey,
) -> Result<Option<Variable>, StorageError> {
    sqlx::query("SELECT key, val, description FROM variable WHERE key = $1")
        .bind(key)
        .fetch_optional(connection)
        .await?
        .map(|row| from_row(row, secrets))
        .transpose()
}

/// Whether the variable exists, without reading (or decrypting) its value.
async fn exists(connection: &mut AnyConnection, key: &str) -> Result<bool, StorageError> {
    Ok(sqlx::query("SELECT 1 FROM variable WHERE key = $1")
        .bind(key)
        .fetch_optional(connection)
        .await?
        .is_some())
}

/// Adds a variable; Conflict when the key exists.
pub async fn insert(
    transaction: &mut Transaction,
    variable: &Variable,
    secrets: &SecretsKey,
) -> Result<(), StorageError> {
    let connection = transaction.changes();
    if exists(&mut *connection, &variable.key).await? {
        return Err(StorageError::Conflict(format!(
            "variable `{}` already exists: PATCH /api/v2/variables/{} changes it",
            variable.key, variable.key
        )));
    }
    sqlx::query("INSERT INTO variable (key, val, description) VALUES ($1, $2, $3)")
        .bind(&variable.key)
        .bind(stored_value(variable, secrets))
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
pub async fn all(
    connection: &mut AnyConnection,
    secrets: &SecretsKey,
) -> Result<BTreeMap<String, String>, StorageError> {
    sqlx::query("SELECT key, val FROM variable")
        .fetch_all(connection)
        .await?
        .into_iter()
        .map(|row| {
            let key: String = row.try_get("key")?;
            let value = clear_value(&key, row.try_get("val")?, secrets)?;
            Ok((key, value))
        })
        .collect()
}

/// Creates or replaces a variable (`weir variables set`); a `None` description keeps the stored one.
pub async fn set(transaction: &mut Transaction, variable: &Variable, secrets: &SecretsKey) -> Result<(), StorageError> {
    let connection = transaction.changes();
    sqlx::query("INSERT INTO variable (key, val, description) VALUES ($1, $2, $3) ON CONFLICT (key) DO UPDATE SET val = excluded.val, description = COALESCE(excluded.description, variable.description)")
        .bind(&variable.key)
        .bind(stored_value(variable, secrets))
        .bind(variable.description.as_deref())
        .execute(connection)
        .await?;
    Ok(())
}

/// Replaces a variable's value and description; NotFound when the key does not exist.
pub async fn update(
    transaction: &mut Transaction,
    variable: &Variable,
    secrets: &SecretsKey,
) -> Result<(), StorageError> {
    let connection = transaction.changes();
    let changed = sqlx::query("UPDATE variable SET val = $2, description = $3 WHERE key = $1")
        .bind(&variable.key)
        .bind(stored_value(variable, secrets))
        .bind(variable.description.as_deref())
        .execute(connection)
        .await?
        .rows_affected();
    if changed == 0 {
        return Err(not_found(&variable.key));
    }
    Ok(())
}

pub async fn delete(transaction: &mut Transaction, key: &str) -> Result<(), StorageError> {
    let connection = transaction.changes();
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

/// Secret-named variables whose value is stored in plain text (from before this encryption).
async fn plain_secret_values(connection: &mut AnyConnection) -> Result<Vec<(String, String)>, StorageError> {
    let rows = sqlx::query("SELECT key, val FROM variable WHERE val NOT LIKE 'enc:v1:%'")
        .fetch_all(connection)
        .await?;
    let mut plain = Vec::new();
    for row in rows {
        let key: String = row.try_get("key")?;
        if is_secret_name(&key) {
            plain.push((key, row.try_get("val")?));
        }
    }
    Ok(plain)
}

/// Whether any secret-named variable is stored in plain text.
pub async fn has_plain_values(connection: &mut AnyConnection) -> Result<bool, StorageError> {
    Ok(!plain_secret_values(connection).await?.is_empty())
}

/// Encrypts secret-named variables stored in plain text before this encryption existed; returns
/// how many. Run when the scheduler starts and by `weir db migrate`.
pub async fn encrypt_plain_values(connection: &mut AnyConnection, secrets: &SecretsKey) -> Result<usize, StorageError> {
    let mut encrypted = 0;
    for (key, stored) in plain_secret_values(&mut *connection).await? {
        // Only if it is still the same plain text: a value set meanwhile is already encrypted.
        encrypted += sqlx::query("UPDATE variable SET val = $1 WHERE key = $2 AND val = $3")
            .bind(secrets.encrypt(&stored))
            .bind(&key)
            .bind(&stored)
            .execute(&mut *connection)
            .await?
            .rows_affected() as usize;
    }
    Ok(encrypted)
}

fn not_found(key: &str) -> StorageError {
    StorageError::NotFound(format!("no variable `{key}`"))
}
