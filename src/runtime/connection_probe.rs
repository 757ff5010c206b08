//! Whether weir can reach a connection (`weir connections test`, `POST /api/v2/connections/test`):
//! databases get `SELECT 1`, HTTP services a GET of the base URL; any HTTP answer counts as
//! reachable. Messages never hold the password.

use std::path::Path;
use std::time::Duration;

use sqlx::Connection as _;

use super::masking::Masker;
use crate::domain::connection::Connection;

/// What the API and UI answer while testing connections is off (`[core] test_connection`).
pub const TESTING_DISABLED: &str = "testing connections is disabled: set [core] test_connection = \"Enabled\" in config.toml (as in Airflow), or use `weir connections test NAME` on the server";

/// Longest a test waits for an answer.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Tries the connection once. `Ok` says what answered; `Err` says what went wrong, with the URL
/// redacted and the password masked.
pub async fn probe(connection: &Connection, base_dir: &Path) -> Result<String, String> {
    let target = connection.redacted_url(base_dir);
    let outcome = match connection.conn_type.as_str() {
        "postgres" | "mysql" | "sqlite" => probe_database(connection, base_dir).await,
        "http" | "https" => probe_http(connection).await,
        other => Err(format!(
            "weir cannot test `{other}` connections: it tests postgres, mysql, sqlite, http and https"
        )),
    };
    let url = connection.to_url(base_dir);
    let masker = Masker::new(&connection.secret_values());
    let clean = |text: String| masker.mask(&text.replace(&url, &target));
    outcome
        .map(|what| format!("{target}: {}", clean(what)))
        .map_err(|error| format!("{target}: {}", clean(error)))
}

async fn probe_database(connection: &Connection, base_dir: &Path) -> Result<String, String> {
    sqlx::any::install_default_drivers();
    let url = connection.to_url(base_dir);
    let attempt = async {
        let mut database = sqlx::AnyConnection::connect(&url).await?;
        sqlx::query("SELECT 1").execute(&mut database).await?;
        database.close().await
    };
    match tokio::time::timeout(PROBE_TIMEOUT, attempt).await {
        Ok(Ok(())) => Ok("connected and ran SELECT 1".to_string()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer within {} s", PROBE_TIMEOUT.as_secs())),
    }
}

async fn probe_http(connection: &Connection) -> Result<String, String> {
    let Some(base_url) = connection.http_base_url() else {
        return Err("not an HTTP connection".to_string());
    };
    if connection.host.as_deref().unwrap_or_default().is_empty() {
        return Err("the connection has no host".to_string());
    }
    // reqwest is built without a TLS provider of its own: ring is the one for the whole process
    // (installing it twice is refused harmlessly).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(PROBE_TIMEOUT)
        .build()
        .map_err(|error| format!("cannot make an HTTP client: {error}"))?;
    let mut request = client.get(&base_url);
    if let Some(login) = &connection.login {
        request = request.basic_auth(login, connection.password.as_deref());
    }
    match request.send().await {
        Ok(response) => Ok(format!("answered HTTP {}", response.status())),
        Err(error) if error.is_timeout() => Err(format!("no answer within {} s", PROBE_TIMEOUT.as_secs())),
        Err(error) => Err(describe_http_error(&error)),
    }
}

/// reqwest's top-level message is terse ("error sending request"); the causes say why.
fn describe_http_error(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
