//! The `connection` table: connections managed through the CLI and API (§5.8). Passwords and
//! secret-named `extra` values (password, secret, token, key, at any depth) are written encrypted
//! with the secrets key (`enc:v1:...`) and decrypted only by the functions that return a
//! connection for connecting. Listing never reads passwords, and leaves secret extras encrypted
//! (they are shown as `***`; written back unchanged, they stay as they are).

use serde_json::{Map, Value};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{StorageError, Transaction};
use crate::domain::connection::{Connection, parse_extra};
use crate::domain::secret::is_secret_name;
use crate::secrets::{DecryptError, SecretsKey, is_encrypted};

/// A connection as shown: `connection.password` is always `None`; `has_password` says whether
/// one is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredConnection {
    pub connection: Connection,
    pub has_password: bool,
}

/// A stored password (or secret extra value) that the key in use cannot decrypt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "connection `{conn_id}`'s {what} {error}: set [secrets] key (or WEIR__SECRETS__KEY) to the key used when it was stored, or set the {what} again"
)]
pub struct UndecryptablePassword {
    pub conn_id: String,
    /// `password`, or ``extra `api_token` ``.
    pub what: String,
    pub error: DecryptError,
}

const COLUMNS: &str =
    "conn_id, conn_type, host, conn_schema, login, port, extra, description, password IS NOT NULL AS has_password";

fn from_row(row: &AnyRow) -> Result<StoredConnection, StorageError> {
    let conn_id: String = row.try_get("conn_id")?;
    let port = row
        .try_get::<Option<i64>, _>("port")?
        .map(|port| {
            u16::try_from(port).map_err(|_| StorageError::Corrupt(format!("connection `{conn_id}` has port {port}")))
        })
        .transpose()?;
    let extra = match row.try_get::<Option<String>, _>("extra")? {
        Some(text) => {
            parse_extra(&text).map_err(|reason| StorageError::Corrupt(format!("connection `{conn_id}`: {reason}")))?
        }
        None => serde_json::Map::new(),
    };
    // PostgreSQL answers `IS NOT NULL` with a boolean, SQLite with an integer.
    let has_password = match row.try_get::<bool, _>("has_password") {
        Ok(flag) => flag,
        Err(_) => row.try_get::<i64, _>("has_password")? != 0,
    };
    Ok(StoredConnection {
        connection: Connection {
            conn_type: row.try_get("conn_type")?,
            host: row.try_get("host")?,
            port,
            schema: row.try_get("conn_schema")?,
            login: row.try_get("login")?,
            password: None,
            extra,
            description: row.try_get("description")?,
            conn_id,
        },
        has_password,
    })
}

/// The extra as stored: secret-named values encrypted.
fn extra_text(connection: &Connection, key: &SecretsKey) -> Option<String> {
    (!connection.extra.is_empty()).then(|| Value::Object(encrypt_extra(&connection.extra, key)).to_string())
}

/// Every secret-named value (at any depth; null stays null) replaced by `enc:v1:...` of its JSON
/// text. A value already encrypted is kept: it comes from a stored connection read for display.
fn encrypt_extra(extra: &Map<String, Value>, key: &SecretsKey) -> Map<String, Value> {
    extra
        .iter()
        .map(|(name, value)| {
            let stored = match value {
                Value::Null => Value::Null,
                Value::String(text) if is_secret_name(name) && is_encrypted(text) => value.clone(),
                _ if is_secret_name(name) => Value::String(key.encrypt(&value.to_string())),
                Value::Object(inner) => Value::Object(encrypt_extra(inner, key)),
                other => other.clone(),
            };
            (name.clone(), stored)
        })
        .collect()
}

/// The extra with its secret-named values decrypted back to the JSON they were.
/// On failure, the name of the value that could not be decrypted.
fn decrypt_extra(extra: &Map<String, Value>, key: &SecretsKey) -> Result<Map<String, Value>, (String, DecryptError)> {
    extra
        .iter()
        .map(|(name, value)| {
            let clear = match value {
                Value::String(text) if is_secret_name(name) && is_encrypted(text) => key
                    .decrypt(text)
                    .and_then(|json| {
                        serde_json::from_str(&json)
                            .map_err(|_| DecryptError::Malformed("not JSON once decrypted".to_string()))
                    })
                    .map_err(|error| (name.clone(), error))?,
                Value::Object(inner) => Value::Object(decrypt_extra(inner, key)?),
                other => other.clone(),
            };
            Ok((name.clone(), clear))
        })
        .collect()
}

/// Whether a secret-named value (at any depth) is stored in plain text.
fn has_plain_secret(extra: &Map<String, Value>) -> bool {
    extra.iter().any(|(name, value)| match value {
        Value::Null => false,
        Value::String(text) if is_secret_name(name) => !is_encrypted(text),
        _ if is_secret_name(name) => true,
        Value::Object(inner) => has_plain_secret(inner),
        _ => false,
    })
}

/// One page of connections ordered by id (descending when asked), and how many there are in all.
pub async fn list(
    connection: &mut AnyConnection,
    descending: bool,
    limit: u32,
    offset: u32,
) -> Result<(Vec<StoredConnection>, i64), StorageError> {
    let total: i64 = sqlx::query("SELECT COUNT(*) FROM connection")
        .fetch_one(&mut *connection)
        .await?
        .try_get(0)?;
    let direction = if descending { "DESC" } else { "ASC" };
    let sql = format!("SELECT {COLUMNS} FROM connection ORDER BY conn_id {direction} LIMIT $1 OFFSET $2");
    let connections = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(i64::from(limit))
        .bind(i64::from(offset))
        .fetch_all(connection)
        .await?
        .iter()
        .map(from_row)
        .collect::<Result<_, _>>()?;
    Ok((connections, total))
}

/// A connection as shown (no password).
pub async fn get(connection: &mut AnyConnection, conn_id: &str) -> Result<Option<StoredConnection>, StorageError> {
    let sql = format!("SELECT {COLUMNS} FROM connection WHERE conn_id = $1");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(conn_id)
        .fetch_optional(connection)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// A connection with its decrypted password, for the code that connects; never for display.
pub async fn get_with_password(
    connection: &mut AnyConnection,
    conn_id: &str,
    key: &SecretsKey,
) -> Result<Option<Connection>, StorageError> {
    let sql = format!("SELECT {COLUMNS}, password FROM connection WHERE conn_id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(conn_id)
        .fetch_optional(connection)
        .await?;
    match row {
        Some(row) => Ok(Some(with_password(&row, key)?.map_err(StorageError::from)?)),
        None => Ok(None),
    }
}

/// Every connection with its decrypted password, for the resolver; a password the key cannot
/// decrypt spoils only its own connection.
pub async fn all_with_passwords(
    connection: &mut AnyConnection,
    key: &SecretsKey,
) -> Result<Vec<Result<Connection, UndecryptablePassword>>, StorageError> {
    let sql = format!("SELECT {COLUMNS}, password FROM connection ORDER BY conn_id");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(connection)
        .await?
        .iter()
        .map(|row| with_password(row, key))
        .collect()
}

fn with_password(row: &AnyRow, key: &SecretsKey) -> Result<Result<Connection, UndecryptablePassword>, StorageError> {
    let mut connection = from_row(row)?.connection;
    let stored: Option<String> = row.try_get("password")?;
    let decrypted = stored
        .map(|stored| key.decrypt(&stored))
        .transpose()
        .map_err(|error| ("password".to_string(), error))
        .and_then(|password| {
            let extra =
                decrypt_extra(&connection.extra, key).map_err(|(name, error)| (format!("extra `{name}`"), error))?;
            Ok((password, extra))
        });
    Ok(match decrypted {
        Ok((password, extra)) => {
            connection.password = password;
            connection.extra = extra;
            Ok(connection)
        }
        Err((what, error)) => Err(UndecryptablePassword {
            conn_id: connection.conn_id,
            what,
            error,
        }),
    })
}

/// The decrypted password, for the code that connects; never for display.
pub async fn password(
    connection: &mut AnyConnection,
    conn_id: &str,
    key: &SecretsKey,
) -> Result<Option<String>, StorageError> {
    let row = sqlx::query("SELECT password FROM connection WHERE conn_id = $1")
        .bind(conn_id)
        .fetch_optional(connection)
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let stored: Option<String> = row.try_get("password")?;
    stored
        .map(|stored| {
            key.decrypt(&stored).map_err(|error| {
                StorageError::from(UndecryptablePassword {
                    conn_id: conn_id.to_string(),
                    what: "password".to_string(),
                    error,
                })
            })
        })
        .transpose()
}

/// Adds a connection, its password encrypted; Conflict when the id exists.
pub async fn insert(transaction: &mut Transaction, new: &Connection, key: &SecretsKey) -> Result<(), StorageError> {
    let connection = transaction.changes();
    if get(&mut *connection, &new.conn_id).await?.is_some() {
        return Err(conflict(&new.conn_id));
    }
    sqlx::query("INSERT INTO connection (conn_id, conn_type, host, conn_schema, login, password, port, extra, description) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
        .bind(&new.conn_id)
        .bind(&new.conn_type)
        .bind(new.host.as_deref())
        .bind(new.schema.as_deref())
        .bind(new.login.as_deref())
        .bind(new.password.as_deref().map(|password| key.encrypt(password)))
        .bind(new.port.map(i64::from))
        .bind(extra_text(new, key))
        .bind(new.description.as_deref())
        .execute(connection)
        .await
        .map_err(|error| match &error {
            sqlx::Error::Database(database_error) if database_error.is_unique_violation() => conflict(&new.conn_id),
            _ => StorageError::from(error),
        })?;
    Ok(())
}

/// What an update does to the stored password.
#[derive(Clone, PartialEq, Eq)]
pub enum PasswordChange {
    Keep,
    Set(String),
    Clear,
}

impl std::fmt::Debug for PasswordChange {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            PasswordChange::Keep => "Keep",
            PasswordChange::Set(_) => "Set(***)",
            PasswordChange::Clear => "Clear",
        })
    }
}

/// Replaces a connection's fields (`changed.password` is ignored: `password` says what happens
/// to it; a new one is encrypted). NotFound when missing.
pub async fn update(
    transaction: &mut Transaction,
    changed: &Connection,
    password: &PasswordChange,
    key: &SecretsKey,
) -> Result<(), StorageError> {
    let connection = transaction.changes();
    let (replace_password, new_password) = match password {
        PasswordChange::Keep => (0_i64, None),
        PasswordChange::Set(password) => (1, Some(key.encrypt(password))),
        PasswordChange::Clear => (1, None),
    };
    let rows = sqlx::query("UPDATE connection SET conn_type = $2, host = $3, conn_schema = $4, login = $5, port = $6, extra = $7, description = $8, password = CASE WHEN $9 = 1 THEN $10 ELSE password END WHERE conn_id = $1")
        .bind(&changed.conn_id)
        .bind(&changed.conn_type)
        .bind(changed.host.as_deref())
        .bind(changed.schema.as_deref())
        .bind(changed.login.as_deref())
        .bind(changed.port.map(i64::from))
        .bind(extra_text(changed, key))
        .bind(changed.description.as_deref())
        .bind(replace_password)
        .bind(new_password)
        .execute(connection)
        .await?
        .rows_affected();
    if rows == 0 {
        return Err(not_found(&changed.conn_id));
    }
    Ok(())
}

pub async fn delete(transaction: &mut Transaction, conn_id: &str) -> Result<(), StorageError> {
    let connection = transaction.changes();
    let changed = sqlx::query("DELETE FROM connection WHERE conn_id = $1")
        .bind(conn_id)
        .execute(connection)
        .await?
        .rows_affected();
    if changed == 0 {
        return Err(not_found(conn_id));
    }
    Ok(())
}

/// Whether any password is stored in plain text (from before encryption existed).
pub async fn has_plain_passwords(connection: &mut AnyConnection) -> Result<bool, StorageError> {
    let count: i64 =
        sqlx::query("SELECT COUNT(*) FROM connection WHERE password IS NOT NULL AND password NOT LIKE 'enc:v1:%'")
            .fetch_one(connection)
            .await?
            .try_get(0)?;
    Ok(count > 0)
}

/// Encrypts passwords stored in plain text before encryption existed; returns how many. Run when
/// the scheduler starts and by `weir db migrate`.
pub async fn encrypt_plain_passwords(connection: &mut AnyConnection, key: &SecretsKey) -> Result<usize, StorageError> {
    let rows = sqlx::query("SELECT conn_id, password FROM connection WHERE password IS NOT NULL")
        .fetch_all(&mut *connection)
        .await?;
    let mut encrypted = 0;
    for row in rows {
        let conn_id: String = row.try_get("conn_id")?;
        let stored: String = row.try_get("password")?;
        if is_encrypted(&stored) {
            continue;
        }
        // Only if it is still the same plain text: a password set meanwhile is already encrypted.
        encrypted += sqlx::query("UPDATE connection SET password = $1 WHERE conn_id = $2 AND password = $3")
            .bind(key.encrypt(&stored))
            .bind(&conn_id)
            .bind(&stored)
            .execute(&mut *connection)
            .await?
            .rows_affected() as usize;
    }
    Ok(encrypted)
}

/// Connections whose extra holds a secret-named value in plain text: (id, extra as stored).
async fn plain_secret_extras(connection: &mut AnyConnection) -> Result<Vec<(String, String)>, StorageError> {
    let rows = sqlx::query("SELECT conn_id, extra FROM connection WHERE extra IS NOT NULL")
        .fetch_all(connection)
        .await?;
    let mut plain = Vec::new();
    for row in rows {
        let conn_id: String = row.try_get("conn_id")?;
        let text: String = row.try_get("extra")?;
        let extra =
            parse_extra(&text).map_err(|reason| StorageError::Corrupt(format!("connection `{conn_id}`: {reason}")))?;
        if has_plain_secret(&extra) {
            plain.push((conn_id, text));
        }
    }
    Ok(plain)
}

/// Whether any secret-named extra value is stored in plain text.
pub async fn has_plain_extras(connection: &mut AnyConnection) -> Result<bool, StorageError> {
    Ok(!plain_secret_extras(connection).await?.is_empty())
}

/// Encrypts secret-named extra values stored in plain text before this encryption existed;
/// returns how many connections changed. Run when the scheduler starts and by `weir db migrate`.
pub async fn encrypt_plain_extras(connection: &mut AnyConnection, key: &SecretsKey) -> Result<usize, StorageError> {
    let mut encrypted = 0;
    for (conn_id, text) in plain_secret_extras(&mut *connection).await? {
        let extra =
            parse_extra(&text).map_err(|reason| StorageError::Corrupt(format!("connection `{conn_id}`: {reason}")))?;
        // Only if it is still the same text: an extra set meanwhile is already encrypted.
        encrypted += sqlx::query("UPDATE connection SET extra = $1 WHERE conn_id = $2 AND extra = $3")
            .bind(Value::Object(encrypt_extra(&extra, key)).to_string())
            .bind(&conn_id)
            .bind(&text)
            .execute(&mut *connection)
            .await?
            .rows_affected() as usize;
    }
    Ok(encrypted)
}

fn conflict(conn_id: &str) -> StorageError {
    StorageError::Conflict(format!(
        "connection `{conn_id}` already exists: PATCH /api/v2/connections/{conn_id} changes it, or `weir connections delete {conn_id}` first"
    ))
}

fn not_found(conn_id: &str) -> StorageError {
    StorageError::NotFound(format!("no connection `{conn_id}`"))
}
