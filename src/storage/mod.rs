//! The metadata database: the only module that knows SQL. One code path for SQLite (embedded
//! default, WAL) and PostgreSQL through sqlx's `Any` driver; rows become domain types here.

pub mod alerts;
pub mod backfills;
pub mod connections;
pub mod dags;
pub mod datasets;
pub mod event_log;
pub mod failure;
mod first_connection;
pub mod import_errors;
pub mod runs;
pub mod schedulers;
pub mod task_instances;
mod transaction;
pub mod users;
pub mod variables;

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyConnection, AnyPool, ConnectOptions, Connection, Row};

pub use transaction::Transaction;

/// Why a storage call failed, for callers that branch on it.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("metadata database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    #[error("the metadata database holds a value weir cannot read: {0}")]
    Corrupt(String),
    #[error(
        "the metadata database schema is at version {current} but this weir needs {required}: run `weir db migrate`"
    )]
    SchemaBehind { current: i64, required: i64 },
    #[error("the metadata database schema is at version {current}, newer than this weir ({supported}): upgrade weir")]
    SchemaAhead { current: i64, supported: i64 },
    #[error("cannot open the metadata database {url}: {reason}")]
    Open { url: String, reason: String },
    #[error(transparent)]
    Undecryptable(#[from] connections::UndecryptablePassword),
    #[error(transparent)]
    UndecryptableVariable(#[from] variables::UndecryptableVariable),
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

struct Migration {
    version: i64,
    description: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

/// Embedded with `include_str!` rather than `sqlx::migrate!`, which would pull sqlx's macro stack
/// into the build.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "initial schema",
        sqlite: include_str!("../../migrations/sqlite/0001_init.sql"),
        postgres: include_str!("../../migrations/postgres/0001_init.sql"),
    },
    Migration {
        version: 2,
        description: "variables and connections",
        sqlite: include_str!("../../migrations/sqlite/0002_variables_connections.sql"),
        postgres: include_str!("../../migrations/postgres/0002_variables_connections.sql"),
    },
    Migration {
        version: 3,
        description: "backfills",
        sqlite: include_str!("../../migrations/sqlite/0003_backfill.sql"),
        postgres: include_str!("../../migrations/postgres/0003_backfill.sql"),
    },
    Migration {
        version: 4,
        description: "datasets",
        sqlite: include_str!("../../migrations/sqlite/0004_datasets.sql"),
        postgres: include_str!("../../migrations/postgres/0004_datasets.sql"),
    },
    Migration {
        version: 5,
        description: "alerts",
        sqlite: include_str!("../../migrations/sqlite/0005_alerts.sql"),
        postgres: include_str!("../../migrations/postgres/0005_alerts.sql"),
    },
    Migration {
        version: 6,
        description: "users",
        sqlite: include_str!("../../migrations/sqlite/0006_users.sql"),
        postgres: include_str!("../../migrations/postgres/0006_users.sql"),
    },
    Migration {
        version: 7,
        description: "audit log",
        sqlite: include_str!("../../migrations/sqlite/0007_event_log.sql"),
        postgres: include_str!("../../migrations/postgres/0007_event_log.sql"),
    },
    Migration {
        version: 8,
        description: "scheduler owners",
        sqlite: include_str!("../../migrations/sqlite/0008_scheduler_owners.sql"),
        postgres: include_str!("../../migrations/postgres/0008_scheduler_owners.sql"),
    },
    Migration {
        version: 9,
        description: "crash-ended attempts per task instance",
        sqlite: include_str!("../../migrations/sqlite/0009_crash_ends.sql"),
        postgres: include_str!("../../migrations/postgres/0009_crash_ends.sql"),
    },
];

/// A handle on the metadata database.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
}

/// What `weir db check` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaStatus {
    pub current: i64,
    pub required: i64,
}

impl Db {
    /// Opens the database at `url`, creating a SQLite file (and its folder) when missing.
    pub async fn connect(url: &str) -> Result<Db> {
        sqlx::any::install_default_drivers();
        let open_error = |reason: String| StorageError::Open {
            url: redact(url),
            reason,
        };
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(open_error("use a sqlite:// or postgres:// URL".to_string()));
        };
        let url = match backend {
            Backend::Sqlite => {
                let path = url
                    .trim_start_matches("sqlite://")
                    .split('?')
                    .next()
                    .unwrap_or_default();
                if let Some(parent) = std::path::Path::new(path).parent()
                    && !parent.as_os_str().is_empty()
                {
                    std::fs::create_dir_all(parent)
                        .map_err(|error| open_error(format!("cannot create {}: {error}", parent.display())))?;
                }
                if url.contains('?') {
                    url.to_string()
                } else {
                    format!("{url}?mode=rwc")
                }
            }
            Backend::Postgres => url.to_string(),
        };
        let options = AnyConnectOptions::from_str(&url)
            .map_err(|error| open_error(error.to_string()))?
            .disable_statement_logging();
        if backend == Backend::Postgres {
            first_connection::try_connect(&options, &url)
                .await
                .map_err(open_error)?;
        }
        let pool = AnyPoolOptions::new()
            .max_connections(match backend {
                Backend::Sqlite => 4,
                Backend::Postgres => 8,
            })
            .acquire_timeout(Duration::from_secs(30))
            // A SQLite connection is an open file: nothing can break it between two uses, so the
            // ping sqlx sends on every acquire (a round trip to the connection's thread) is waste.
            // A PostgreSQL connection can die with the server or the network: keep the check.
            .test_before_acquire(backend == Backend::Postgres)
            .after_connect(move |connection, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers (CLI, web) work while the scheduler writes; the busy
                        // timeout makes a second writer wait instead of failing at once.
                        sqlx::raw_sql("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;")
                            .execute(&mut *connection)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(|error| open_error(error.to_string()))?;
        Ok(Db { pool, backend })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// A write transaction; its commit moves the change counter when a write through it asks
    /// (see [`Transaction`]).
    pub async fn begin(&self) -> Result<Transaction> {
        Ok(Transaction::new(self.begin_sqlx().await?))
    }

    /// A write transaction for the scheduler's own run creation (scheduled, backfill and dataset
    /// runs), whose commit never moves the change counter: the scheduler follows its own writes,
    /// and other schedulers meet them through the unique indexes and compare-and-sets. Moving the
    /// counter there would make every scheduler forget its schedule memo at each created run.
    pub async fn begin_for_scheduler(&self) -> Result<Transaction> {
        Ok(Transaction::quiet(self.begin_sqlx().await?))
    }

    /// On SQLite a write transaction takes the write lock up front (`BEGIN IMMEDIATE`), so two
    /// processes never deadlock upgrading read locks.
    async fn begin_sqlx(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    pub async fn acquire(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Any>> {
        Ok(self.pool.acquire().await?)
    }

    /// Applies every migration not yet applied, each in its own transaction.
    pub async fn migrate(&self) -> Result<()> {
        let mut connection = self.acquire().await?;
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS weir_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, applied_at BIGINT NOT NULL)",
        )
        .execute(&mut *connection)
        .await?;
        drop(connection);
        for migration in MIGRATIONS {
            let mut transaction = self.begin().await?;
            let applied: Option<i64> = sqlx::query("SELECT version FROM weir_migrations WHERE version = $1")
                .bind(migration.version)
                .fetch_optional(&mut *transaction)
                .await?
                .map(|row| row.try_get(0))
                .transpose()?;
            if applied.is_some() {
                continue;
            }
            let script = match self.backend {
                Backend::Sqlite => migration.sqlite,
                Backend::Postgres => migration.postgres,
            };
            sqlx::raw_sql(script).execute(&mut *transaction).await?;
            sqlx::query("INSERT INTO weir_migrations (version, description, applied_at) VALUES ($1, $2, $3)")
                .bind(migration.version)
                .bind(migration.description)
                .bind(micros(Utc::now()))
                .execute(&mut *transaction)
                .await?;
            transaction.commit().await?;
        }
        Ok(())
    }

    /// The schema version present and the one this build needs.
    pub async fn schema_status(&self) -> Result<SchemaStatus> {
        let required = MIGRATIONS.last().map_or(0, |migration| migration.version);
        let mut connection = self.acquire().await?;
        let exists = match self.backend {
            Backend::Sqlite => {
                sqlx::query("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'weir_migrations'")
                    .fetch_one(&mut *connection)
                    .await?
                    .try_get::<i64, _>(0)?
            }
            Backend::Postgres => {
                sqlx::query("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'weir_migrations'")
                    .fetch_one(&mut *connection)
                    .await?
                    .try_get::<i64, _>(0)?
            }
        };
        let applied: Vec<i64> = if exists == 0 {
            Vec::new()
        } else {
            sqlx::query("SELECT version FROM weir_migrations")
                .fetch_all(&mut *connection)
                .await?
                .into_iter()
                .map(|row| row.try_get::<i64, _>(0))
                .collect::<Result<_, _>>()?
        };
        // The schema is at version N when every migration up to N is applied (a gap means an
        // older migration is still missing, whatever the newest applied one is).
        let mut current = 0;
        for migration in MIGRATIONS {
            if !applied.contains(&migration.version) {
                break;
            }
            current = migration.version;
        }
        if let Some(newest) = applied.iter().copied().max()
            && newest > required
        {
            current = newest;
        }
        Ok(SchemaStatus { current, required })
    }

    /// Refuses to work on a schema that is behind or ahead (§1: only `serve`/`scheduler` and
    /// SQLite migrate on their own).
    pub async fn ensure_current(&self) -> Result<()> {
        let status = self.schema_status().await?;
        if status.current < status.required {
            return Err(StorageError::SchemaBehind {
                current: status.current,
                required: status.required,
            });
        }
        if status.current > status.required {
            return Err(StorageError::SchemaAhead {
                current: status.current,
                supported: status.required,
            });
        }
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Hides the password in a database URL before it is printed.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// The `LIMIT … OFFSET …` of a page (nothing for "all rows"); every list query pages the same way.
pub(crate) fn page_clause<L: std::fmt::Display>(limit: Option<L>, offset: impl Into<i64>) -> String {
    let offset = offset.into();
    match limit {
        Some(limit) => format!(" LIMIT {limit} OFFSET {offset}"),
        None if offset > 0 => format!(" LIMIT {} OFFSET {offset}", i64::MAX),
        None => String::new(),
    }
}

/// Rows of `table` matching `filter` (SQL with `$1` = dag id, `$2` = run id), deleted, or only
/// counted with `dry_run`: what `db clean` does to the rows a run leaves in other tables.
pub(crate) async fn delete_or_count_run_rows(
    connection: &mut AnyConnection,
    table: &str,
    filter: &str,
    dag_id: &str,
    run_id: &str,
    dry_run: bool,
) -> Result<u64> {
    if dry_run {
        let sql = format!("SELECT COUNT(*) FROM {table} WHERE {filter}");
        let count: i64 = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(dag_id)
            .bind(run_id)
            .fetch_one(connection)
            .await?
            .try_get(0)?;
        return Ok(u64::try_from(count).unwrap_or(0));
    }
    let sql = format!("DELETE FROM {table} WHERE {filter}");
    Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(dag_id)
        .bind(run_id)
        .execute(connection)
        .await?
        .rows_affected())
}

/// The change counter: moved by the commit of every [`Transaction`] that wrote something a running
/// scheduler keeps or waits for; schedulers poll it.
pub async fn change_sequence(connection: &mut AnyConnection) -> Result<i64> {
    Ok(sqlx::query("SELECT value FROM weir_meta WHERE key = 'change_seq'")
        .fetch_one(connection)
        .await?
        .try_get(0)?)
}

pub async fn record_heartbeat(connection: &mut AnyConnection, now: DateTime<Utc>) -> Result<()> {
    sqlx::query("UPDATE weir_meta SET value = $1 WHERE key = 'scheduler_heartbeat'")
        .bind(micros(now))
        .execute(connection)
        .await?;
    Ok(())
}

pub async fn last_heartbeat(connection: &mut AnyConnection) -> Result<Option<DateTime<Utc>>> {
    let value: i64 = sqlx::query("SELECT value FROM weir_meta WHERE key = 'scheduler_heartbeat'")
        .fetch_one(connection)
        .await?
        .try_get(0)?;
    Ok((value > 0).then(|| from_micros(value)))
}

/// Stored time: microseconds since the epoch, UTC.
pub fn micros(time: DateTime<Utc>) -> i64 {
    time.timestamp_micros()
}

pub fn from_micros(value: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(value).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

pub(crate) fn opt_time(value: Option<i64>) -> Option<DateTime<Utc>> {
    value.map(from_micros)
}

pub(crate) fn parse_column<T: FromStr>(value: String, column: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    value
        .parse()
        .map_err(|error: T::Err| StorageError::Corrupt(format!("{column} `{value}`: {error}")))
}

/// Makes sure a connection is still usable; used by health checks.
pub async fn ping(db: &Db) -> Result<()> {
    let mut connection = db.acquire().await?;
    connection.ping().await?;
    Ok(())
}
