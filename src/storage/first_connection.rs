//! One direct connection to PostgreSQL before the pool is built, so that start-up says at once
//! why the database cannot be reached. sqlx's pool retries a refused connection until its
//! acquire timeout (30 s) and then reports only "pool timed out"; a single attempt reports
//! "connection refused", an unknown host, or the server's own refusal (password, database).

use std::time::Duration;

use sqlx::any::AnyConnectOptions;
use sqlx::{ConnectOptions, Connection};

/// How long the first connection may take (name lookup, TCP, TLS, authentication) before
/// start-up gives up on a server that does not answer.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects once to the server of `url` and closes the connection; the reason it failed, for
/// a person, otherwise.
pub async fn try_connect(options: &AnyConnectOptions, url: &str) -> Result<(), String> {
    match tokio::time::timeout(CONNECT_TIMEOUT, options.connect()).await {
        Ok(Ok(connection)) => {
            // Closing politely is a courtesy to the server; a failure here changes nothing.
            let _ = connection.close().await;
            Ok(())
        }
        Ok(Err(error)) => Err(reason(&server_address(url), &error)),
        Err(_) => Err(format!(
            "cannot connect to {}: no answer within {} s (is the address right, and does a firewall let it through?)",
            server_address(url),
            CONNECT_TIMEOUT.as_secs()
        )),
    }
}

/// Why connecting failed: the network error in plain words, or the server's own message.
fn reason(address: &str, error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Io(io) => {
            let what = match io.kind() {
                std::io::ErrorKind::ConnectionRefused => {
                    "connection refused (is PostgreSQL running and listening on that address?)".to_string()
                }
                std::io::ErrorKind::TimedOut => "timed out".to_string(),
                _ => io.to_string(),
            };
            format!("cannot connect to {address}: {what}")
        }
        sqlx::Error::Tls(tls) => format!("cannot connect to {address}: TLS failed: {tls}"),
        // The server's own words (`password authentication failed for user "weir"`, `database
        // "weir" does not exist`), without sqlx's "error returned from database" wrapping.
        sqlx::Error::Database(refusal) => format!("{address} refused the connection: {}", refusal.message()),
        other => format!("{address}: {other}"),
    }
}

/// `host:port` of a PostgreSQL URL, for messages (the port defaults to 5432).
fn server_address(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(parsed) => match parsed.host_str() {
            Some(host) if !host.is_empty() => format!("{host}:{}", parsed.port().unwrap_or(5432)),
            _ => "the PostgreSQL server".to_string(),
        },
        Err(_) => "the PostgreSQL server".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    #[test]
    fn the_server_address_comes_from_the_url_with_the_default_port() {
        assert_eq!(
            server_address("postgres://weir:secret@db.internal/weir"),
            "db.internal:5432"
        );
        assert_eq!(server_address("postgresql://127.0.0.1:1/test"), "127.0.0.1:1");
        assert_eq!(
            server_address("postgres:///weir?host=/run/postgresql"),
            "the PostgreSQL server"
        );
    }

    #[tokio::test]
    async fn a_refused_connection_is_reported_at_once_with_the_address() {
        sqlx::any::install_default_drivers();
        // Port 1 (tcpmux) is closed on any machine that runs these tests.
        let url = "postgres://postgres@127.0.0.1:1/test";
        let options = AnyConnectOptions::from_str(url).unwrap();
        let reason = try_connect(&options, url).await.unwrap_err();
        assert_eq!(
            reason,
            "cannot connect to 127.0.0.1:1: connection refused (is PostgreSQL running and listening on that address?)"
        );
    }
}
