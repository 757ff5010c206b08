//! Connection URLs: which database one points at, how to show it without its password, and how
//! to open a connection from it.

use std::str::FromStr;
use std::time::Duration;

use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection};

use super::SqlTaskError;
use super::lock::{LockWait, take_busy_timeout};

/// How long opening a connection may take before the task gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Which database a connection URL points at: `sqlite:`, `postgres:`/`postgresql:`, `mysql:`/`mariadb:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    Sqlite,
    Postgres,
    /// MySQL and MariaDB, one protocol.
    MySql,
}

impl Backend {
    /// The short name used in log lines and messages.
    pub fn label(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
            Backend::MySql => "mysql",
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.label())
    }
}

/// The backend named by the URL's scheme.
pub fn backend_of(url: &str) -> Result<Backend, SqlTaskError> {
    let scheme = url.split_once(':').map(|(scheme, _)| scheme.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("sqlite") => Ok(Backend::Sqlite),
        Some("postgres" | "postgresql") => Ok(Backend::Postgres),
        Some("mysql" | "mariadb") => Ok(Backend::MySql),
        _ => Err(SqlTaskError::UnsupportedUrl { url: redact_url(url) }),
    }
}

/// The URL with its password (in the user part or a `password=` parameter) replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut redacted = match (base.find("://"), base.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &base[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &base[..scheme_end + 3], &base[at..]),
                None => base.to_string(),
            }
        }
        _ => base.to_string(),
    };
    if let Some(query) = query {
        let parameters: Vec<String> = query
            .split('&')
            .map(|parameter| match parameter.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => parameter.to_string(),
            })
            .collect();
        redacted.push('?');
        redacted.push_str(&parameters.join("&"));
    }
    redacted
}

/// Every form of the URL's password that could show up in a message: as written and
/// percent-decoded. Empty when the URL has none.
fn passwords_in(url: &str) -> Vec<String> {
    let mut found = Vec::new();
    let base = url.split_once('?').map_or(url, |(base, _)| base);
    if let (Some(scheme_end), Some(at)) = (base.find("://"), base.rfind('@'))
        && at > scheme_end
        && let Some((_, password)) = base[scheme_end + 3..at].split_once(':')
    {
        found.push(password.to_string());
    }
    if let Some((_, query)) = url.split_once('?') {
        for parameter in query.split('&') {
            if let Some((key, value)) = parameter.split_once('=')
                && key.eq_ignore_ascii_case("password")
            {
                found.push(value.to_string());
            }
        }
    }
    let decoded: Vec<String> = found
        .iter()
        .map(|password| {
            percent_encoding::percent_decode_str(password)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    found.extend(decoded);
    found.retain(|password| !password.is_empty());
    found.sort();
    found.dedup();
    found
}

/// `message` with every occurrence of the URL's password replaced by `***`.
pub(super) fn scrub(message: &str, url: &str) -> String {
    let mut scrubbed = message.to_string();
    for password in passwords_in(url) {
        scrubbed = scrubbed.replace(&password, "***");
    }
    scrubbed
}

/// `postgres at host:5432/db`, `sqlite at path/to.db`: where a connection goes, for log lines,
/// never with credentials.
pub fn describe_target(url: &str) -> String {
    let Ok(backend) = backend_of(url) else {
        return redact_url(url);
    };
    let without_query = url.split_once('?').map_or(url, |(base, _)| base);
    let after_scheme = match without_query.find("://") {
        Some(position) => &without_query[position + 3..],
        None => without_query.split_once(':').map_or(without_query, |(_, rest)| rest),
    };
    let place = match backend {
        Backend::Sqlite => after_scheme.to_string(),
        Backend::Postgres | Backend::MySql => {
            let (authority, path) = after_scheme.split_once('/').unwrap_or((after_scheme, ""));
            let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
            if path.is_empty() {
                host.to_string()
            } else {
                format!("{host}/{path}")
            }
        }
    };
    format!("{} at {place}", backend.label())
}

fn connect_error(url: &str, error: impl std::fmt::Display) -> SqlTaskError {
    SqlTaskError::Connect {
        target: describe_target(url),
        message: scrub(&error.to_string(), url),
    }
}

async fn with_timeout<T>(
    url: &str,
    connecting: impl Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, SqlTaskError> {
    match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(error)) => Err(connect_error(url, error)),
        Err(_) => Err(connect_error(url, format!("no answer within {CONNECT_TIMEOUT:?}"))),
    }
}

/// Opens a SQLite database, creating the file when it does not exist (`mode=rwc`), waiting up to
/// the URL's `busy_timeout` for other connections' locks, in WAL where the file allows it (see
/// [`LockWait`]). Returns how it waits, for transactions that write and for messages.
pub(super) async fn connect_sqlite(url: &str) -> Result<(SqliteConnection, LockWait), SqlTaskError> {
    let (sqlx_url, busy_timeout) = take_busy_timeout(url).map_err(|problem| connect_error(url, problem))?;
    let options = SqliteConnectOptions::from_str(&sqlx_url)
        .map_err(|error| connect_error(url, error))?
        .create_if_missing(true)
        .busy_timeout(busy_timeout);
    let file = options.get_filename().display().to_string();
    let mut connection = with_timeout(url, options.connect()).await?;
    let journal_mode = LockWait::prefer_wal(&mut connection, busy_timeout).await;
    Ok((
        connection,
        LockWait {
            file,
            busy_timeout,
            journal_mode,
        },
    ))
}

pub(super) async fn connect_postgres(url: &str) -> Result<PgConnection, SqlTaskError> {
    let options = PgConnectOptions::from_str(url).map_err(|error| connect_error(url, error))?;
    with_timeout(url, PgConnection::connect_with(&options)).await
}

/// Opens a MySQL or MariaDB connection; `mariadb://` is read as `mysql://`.
pub(super) async fn connect_mysql(url: &str) -> Result<MySqlConnection, SqlTaskError> {
    let mysql_url = match url.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("mariadb") => format!("mysql://{rest}"),
        _ => url.to_string(),
    };
    let options = MySqlConnectOptions::from_str(&mysql_url).map_err(|error| connect_error(url, error))?;
    with_timeout(url, MySqlConnection::connect_with(&options)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_names_the_backend() {
        assert_eq!(backend_of("sqlite:///tmp/a.db").unwrap(), Backend::Sqlite);
        assert_eq!(backend_of("sqlite://data/a.db?mode=rwc").unwrap(), Backend::Sqlite);
        assert_eq!(backend_of("postgres://u@h/db").unwrap(), Backend::Postgres);
        assert_eq!(backend_of("postgresql://u@h/db").unwrap(), Backend::Postgres);
        assert_eq!(backend_of("mysql://root@h/db").unwrap(), Backend::MySql);
        assert_eq!(backend_of("MariaDB://root@h/db").unwrap(), Backend::MySql);
    }

    #[test]
    fn an_unknown_scheme_is_refused_without_showing_the_password() {
        let error = backend_of("oracle://scott:tiger@h/db").unwrap_err().to_string();
        assert!(error.contains("oracle://scott:***@h/db"), "{error}");
        assert!(!error.contains("tiger"), "{error}");
    }

    #[test]
    fn passwords_are_redacted_in_the_user_part_and_in_parameters() {
        assert_eq!(
            redact_url("postgres://u:p%40ss@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(
            redact_url("postgres://h/db?user=u&password=secret&sslmode=disable"),
            "postgres://h/db?user=u&password=***&sslmode=disable"
        );
        assert_eq!(redact_url("mysql://root@h/db"), "mysql://root@h/db");
        assert_eq!(redact_url("sqlite:///tmp/a.db"), "sqlite:///tmp/a.db");
    }

    #[test]
    fn scrubbing_removes_the_password_as_written_and_decoded() {
        let url = "postgres://u:p%40ss@h/db";
        assert_eq!(scrub("failed for p%40ss and p@ss", url), "failed for *** and ***");
        assert_eq!(scrub("nothing to hide", "mysql://root@h/db"), "nothing to hide");
    }

    #[test]
    fn targets_are_described_without_credentials() {
        assert_eq!(
            describe_target("postgres://u:secret@db.example:5432/warehouse?sslmode=require"),
            "postgres at db.example:5432/warehouse"
        );
        assert_eq!(
            describe_target("mariadb://root@127.0.0.1:3306/shop"),
            "mysql at 127.0.0.1:3306/shop"
        );
        assert_eq!(
            describe_target("sqlite:///var/data/a.db?mode=rwc"),
            "sqlite at /var/data/a.db"
        );
        assert_eq!(describe_target("sqlite://data/a.db"), "sqlite at data/a.db");
    }
}
