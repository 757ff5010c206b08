//! The `connection` table: connections managed through the API (§5.8). The password is stored
//! as given (encryption with the secrets key comes with issue 5) and is never read back by the
//! listing functions: only [`password`] returns it, for the code that connects.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::StorageError;

/// A connection as shown: everything but the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub conn_id: String,
    pub conn_type: String,
    pub host: Option<String>,
    pub schema: Option<String>,
    pub login: Option<String>,
    pub port: Option<i64>,
    pub extra: Option<String>,
    pub description: Option<String>,
}

/// What a create or update writes; `password: None` on update keeps the stored one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionWrite {
    pub connection: Connection,
    pub password: Option<String>,
}

const COLUMNS: &str = "conn_id, conn_type, host, conn_schema, login, port, extra, description";

fn from_row(row: AnyRow) -> Result<Connection, StorageError> {
    Ok(Connection {
        conn_id: row.try_get("conn_id")?,
        conn_type: row.try_get("conn_type")?,
        host: row.try_get("host")?,
        schema: row.try_get("conn_schema")?,
        login: row.try_get("login")?,
        port: row.try_get("port")?,
        extra: row.try_get("extra")?,
        description: row.try_get("description")?,
    })
}

/// One page of connections ordered by id (descending when asked), and how many there are in all.
pub async fn list(
    connection: &mut AnyConnection,
    descending: bool,
    limit: u32,
    offset: u32,
) -> Result<(Vec<Connection>, i64), StorageError> {
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
        .into_iter()
        .map(from_row)
        .collect::<Result<_, _>>()?;
    Ok((connections, total))
}

pub async fn get(connection: &mut AnyConnection, conn_id: &str) -> Result<Option<Connection>, StorageError> {
    let sql = format!("SELECT {COLUMNS} FROM connection WHERE conn_id = $1");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(conn_id)
        .fetch_optional(connection)
        .await?
        .map(from_row)
        .transpose()
}

/// The stored password, for the code that connects; never for display.
pub async fn password(connection: &mut AnyConnection, conn_id: &str) -> Result<Option<String>, StorageError> {
    let row = sqlx::query("SELECT password FROM connection WHERE conn_id = $1")
        .bind(conn_id)
        .fetch_optional(connection)
        .await?;
    Ok(match row {
        Some(row) => row.try_get("password")?,
        None => None,
    })
}

/// Adds a connection; Conflict when the id exists.
pub async fn insert(connection: &mut AnyConnection, write: &ConnectionWrite) -> Result<(), StorageError> {
    let conn = &write.connection;
    if get(&mut *connection, &conn.conn_id).await?.is_some() {
        return Err(StorageError::Conflict(format!(
            "connection `{}` already exists: PATCH /api/v2/connections/{} changes it",
            conn.conn_id, conn.conn_id
        )));
    }
    sqlx::query("INSERT INTO connection (conn_id, conn_type, host, conn_schema, login, password, port, extra, description) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
        .bind(&conn.conn_id)
        .bind(&conn.conn_type)
        .bind(conn.host.as_deref())
        .bind(conn.schema.as_deref())
        .bind(conn.login.as_deref())
        .bind(write.password.as_deref())
        .bind(conn.port)
        .bind(conn.extra.as_deref())
        .bind(conn.description.as_deref())
        .execute(connection)
        .await
        .map_err(|error| match &error {
            sqlx::Error::Database(database_error) if database_error.is_unique_violation() => {
                StorageError::Conflict(format!("connection `{}` already exists", conn.conn_id))
            }
            _ => StorageError::from(error),
        })?;
    Ok(())
}

/// Replaces a connection's fields (the password only when one is given); NotFound when missing.
pub async fn update(connection: &mut AnyConnection, write: &ConnectionWrite) -> Result<(), StorageError> {
    let conn = &write.connection;
    let changed = sqlx::query("UPDATE connection SET conn_type = $2, host = $3, conn_schema = $4, login = $5, port = $6, extra = $7, description = $8, password = COALESCE($9, password) WHERE conn_id = $1")
        .bind(&conn.conn_id)
        .bind(&conn.conn_type)
        .bind(conn.host.as_deref())
        .bind(conn.schema.as_deref())
        .bind(conn.login.as_deref())
        .bind(conn.port)
        .bind(conn.extra.as_deref())
        .bind(conn.description.as_deref())
        .bind(write.password.as_deref())
        .execute(connection)
        .await?
        .rows_affected();
    if changed == 0 {
        return Err(not_found(&conn.conn_id));
    }
    Ok(())
}

pub async fn delete(connection: &mut AnyConnection, conn_id: &str) -> Result<(), StorageError> {
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

fn not_found(conn_id: &str) -> StorageError {
    StorageError::NotFound(format!("no connection `{conn_id}`"))
}
