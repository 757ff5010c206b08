//! Connections and variables as tasks see them (§5.8), gathered from every source. Connections:
//! env `WEIR_CONN_<NAME>` first, then `[connections.<name>]` in config, then the database
//! (passwords decrypted); variables: env `WEIR_VAR_<NAME>` over the database. Env wins, as in
//! Airflow, so a deployment can override what the UI stored without touching it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use sqlx::AnyConnection;

use super::attempt::{connection_passwords_from_env, variables_from_env};
use crate::config::{Config, Environment};
use crate::domain::connection::Connection;
use crate::domain::suggest;
use crate::secrets::SecretsKey;
use crate::storage::connections::UndecryptablePassword;
use crate::storage::{self, StorageError};

/// The environment prefix of connections given as variables.
pub const ENV_PREFIX: &str = "WEIR_CONN_";

/// Where a connection was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ConnectionSource {
    Env,
    Config,
    Database,
}

impl ConnectionSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionSource::Env => "env",
            ConnectionSource::Config => "config",
            ConnectionSource::Database => "database",
        }
    }

    /// Where a person changes it, for messages.
    pub fn describe(self, name: &str) -> String {
        match self {
            ConnectionSource::Env => format!("environment variable {ENV_PREFIX}{}", name.to_uppercase()),
            ConnectionSource::Config => format!("[connections.{name}] in the config file"),
            ConnectionSource::Database => "the metadata database".to_string(),
        }
    }
}

impl std::fmt::Display for ConnectionSource {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// Why a task cannot have the connection it names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionError {
    #[error(
        "no connection `{name}`{suggestion}: connections come from env {ENV_PREFIX}<NAME>, [connections.<name>] in config.toml, or the database (`weir connections add`, the API or the UI); {known}"
    )]
    Unknown {
        name: String,
        suggestion: String,
        known: String,
    },
    #[error("connection `{name}` (from {origin}) cannot be used: {reason}")]
    Unusable {
        name: String,
        origin: String,
        reason: String,
    },
}

/// One connection in the resolver: usable, or the reason it is not (an unreadable URL in env,
/// a password encrypted with another key).
#[derive(Debug, Clone)]
struct Entry {
    source: ConnectionSource,
    resolved: Result<Connection, String>,
}

/// A connection as `weir connections list` shows it.
#[derive(Debug, Clone, Copy)]
pub struct ListedConnection<'a> {
    pub name: &'a str,
    pub source: ConnectionSource,
    pub resolved: Result<&'a Connection, &'a str>,
}

/// Every connection a task may name, by name, after precedence.
#[derive(Debug, Clone, Default)]
pub struct Connections {
    entries: BTreeMap<String, Entry>,
    /// Values to mask: passwords and secret-named extra values of every connection of every
    /// source, shadowed ones and unreadable env values included.
    secrets: Vec<String>,
    base_dir: PathBuf,
}

impl Connections {
    /// Reads the database's connections (decrypting passwords with `key`) and puts the config's
    /// and `environment`'s in front of them. SQLite files resolve against the config folder.
    pub async fn load(
        connection: &mut AnyConnection,
        config: &Config,
        environment: impl IntoIterator<Item = (String, String)>,
        key: &SecretsKey,
    ) -> Result<Connections, StorageError> {
        let database = storage::connections::all_with_passwords(connection, key).await?;
        Ok(Connections::from_sources(
            environment,
            &config.connections,
            database,
            config.folder.clone(),
        ))
    }

    /// The same from sources already read (env and config only: pass an empty `database`).
    pub fn from_sources(
        environment: impl IntoIterator<Item = (String, String)>,
        config_connections: &BTreeMap<String, Connection>,
        database: Vec<Result<Connection, UndecryptablePassword>>,
        base_dir: PathBuf,
    ) -> Connections {
        // Strongest source first: the first to claim a name keeps it.
        let mut found: Vec<(String, Entry)> = Vec::new();
        let mut secrets = Vec::new();
        for (variable, value) in environment {
            let Some(name) = variable.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let name = name.to_lowercase();
            let resolved = Connection::from_env_value(&name, &value).map_err(|error| error.reason);
            if resolved.is_err() {
                // Unreadable as a whole, but whatever looks like a password in it is still masked.
                secrets.extend(secrets_of_raw_url(&variable, &value));
            }
            let source = ConnectionSource::Env;
            found.push((name, Entry { source, resolved }));
        }
        for (name, connection) in config_connections {
            let source = ConnectionSource::Config;
            found.push((
                name.clone(),
                Entry {
                    source,
                    resolved: Ok(connection.clone()),
                },
            ));
        }
        for row in database {
            let (name, resolved) = match row {
                Ok(connection) => (connection.conn_id.clone(), Ok(connection)),
                Err(error) => (error.conn_id.clone(), Err(error.to_string())),
            };
            let source = ConnectionSource::Database;
            found.push((name, Entry { source, resolved }));
        }
        let mut entries = BTreeMap::new();
        for (name, entry) in found {
            if let Ok(connection) = &entry.resolved {
                secrets.extend(connection.secret_values());
            }
            entries.entry(name).or_insert(entry);
        }
        secrets.retain(|secret| !secret.is_empty());
        secrets.sort();
        secrets.dedup();
        Connections {
            entries,
            secrets,
            base_dir,
        }
    }

    /// The usable connection called `name`.
    pub fn get(&self, name: &str) -> Option<&Connection> {
        self.entries.get(name).and_then(|entry| entry.resolved.as_ref().ok())
    }

    /// The connection called `name`, or an error that says why not: unknown (with the names
    /// that are known, and a close one if there is) or unusable (and where to fix it).
    pub fn require(&self, name: &str) -> Result<&Connection, ConnectionError> {
        match self.entries.get(name) {
            Some(Entry {
                resolved: Ok(connection),
                ..
            }) => Ok(connection),
            Some(Entry {
                source,
                resolved: Err(reason),
            }) => Err(ConnectionError::Unusable {
                name: name.to_string(),
                origin: source.describe(name),
                reason: reason.clone(),
            }),
            None => Err(self.unknown(name)),
        }
    }

    /// The URL to connect to `name` with, password included (never print it).
    pub fn url(&self, name: &str) -> Result<String, ConnectionError> {
        Ok(self.require(name)?.to_url(&self.base_dir))
    }

    /// Where relative SQLite paths resolve: the config file's folder.
    pub fn base_dir(&self) -> &Path {
        &self.base_dir
    }

    /// Where the connection called `name` comes from.
    pub fn source(&self, name: &str) -> Option<ConnectionSource> {
        self.entries.get(name).map(|entry| entry.source)
    }

    /// Every connection by name, usable or not, with its source.
    pub fn list(&self) -> impl Iterator<Item = ListedConnection<'_>> {
        self.entries.iter().map(|(name, entry)| ListedConnection {
            name,
            source: entry.source,
            resolved: entry.resolved.as_ref().map_err(String::as_str),
        })
    }

    /// Every password (and secret-named extra value) of every source, for masking logs.
    pub fn passwords(&self) -> Vec<String> {
        self.secrets.clone()
    }

    /// `{{ conn.<name>.host }}` and friends: name → everything but the password.
    pub fn template_context(&self) -> Value {
        let views: Map<String, Value> = self
            .entries
            .iter()
            .filter_map(|(name, entry)| Some((name.clone(), entry.resolved.as_ref().ok()?.template_view())))
            .collect();
        Value::Object(views)
    }

    fn unknown(&self, name: &str) -> ConnectionError {
        // The one "did you mean" rule, ignoring case: `WAREHOUSE` suggests `warehouse`.
        let lowered: Vec<(String, &String)> = self.entries.keys().map(|known| (known.to_lowercase(), known)).collect();
        let closest = suggest::closest(&name.to_lowercase(), lowered.iter().map(|(lower, _)| lower.as_str()))
            .and_then(|hit| lowered.iter().find(|(lower, _)| lower == hit))
            .map(|(_, known)| *known);
        let suggestion = closest.map_or(String::new(), |known| format!(" (did you mean `{known}`?)"));
        let known = if self.entries.is_empty() {
            "none are defined".to_string()
        } else {
            let names: Vec<&str> = self.entries.keys().map(String::as_str).collect();
            format!("known: {}", names.join(", "))
        };
        ConnectionError::Unknown {
            name: name.to_string(),
            suggestion,
            known,
        }
    }
}

/// Where a scheduler finds connections and variables besides the environment: the config's
/// `[connections.*]`, the folder relative SQLite paths start from, and the key that decrypts the
/// database's passwords. Read again at each dispatch, so a change applies to the next attempt.
#[derive(Debug, Clone)]
pub struct SecretSources {
    /// Where `WEIR_CONN_*` and `WEIR_VAR_*` come from: the environment read at start-up.
    pub environment: Environment,
    pub config_connections: BTreeMap<String, Connection>,
    pub base_dir: PathBuf,
    pub key: SecretsKey,
}

/// What one dispatch resolved: the connections, the variables, and every value to mask.
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    pub connections: Connections,
    pub variables: BTreeMap<String, String>,
    pub passwords: Vec<String>,
}

impl SecretSources {
    pub fn from_config(config: &Config, key: SecretsKey) -> SecretSources {
        SecretSources {
            environment: config.environment.clone(),
            config_connections: config.connections.clone(),
            base_dir: config.folder.clone(),
            key,
        }
    }

    /// Connections from `environment` and the database only (tests, and tools without config).
    pub fn env_and_database(environment: Environment, key: SecretsKey) -> SecretSources {
        SecretSources {
            environment,
            config_connections: BTreeMap::new(),
            base_dir: PathBuf::from("."),
            key,
        }
    }

    /// Reads the database's connections and variables and lays the config's and the
    /// environment's over them.
    pub async fn resolve(&self, connection: &mut AnyConnection) -> Result<Resolved, StorageError> {
        let database = storage::connections::all_with_passwords(connection, &self.key).await?;
        let connections = Connections::from_sources(
            self.environment.vars(),
            &self.config_connections,
            database,
            self.base_dir.clone(),
        );
        let variables = load_variables(connection, self.environment.vars(), &self.key).await?;
        let passwords = connections.passwords();
        Ok(Resolved {
            connections,
            variables,
            passwords,
        })
    }
}

/// Variables for templates: the database's (secret-named ones decrypted with `key`), overlaid by
/// `WEIR_VAR_<NAME>` (env wins, as in Airflow).
pub async fn load_variables(
    connection: &mut AnyConnection,
    environment: impl IntoIterator<Item = (String, String)>,
    key: &SecretsKey,
) -> Result<BTreeMap<String, String>, StorageError> {
    let mut variables = storage::variables::all(connection, key).await?;
    variables.extend(variables_from_env(environment));
    Ok(variables)
}

/// Whatever looks like a password in a `WEIR_CONN_` value that does not parse.
fn secrets_of_raw_url(variable: &str, value: &str) -> Vec<String> {
    connection_passwords_from_env([(variable.to_string(), value.to_string())])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::DecryptError;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn connection(url: &str, name: &str) -> Connection {
        Connection::from_url(name, url).unwrap()
    }

    #[test]
    fn env_wins_over_config_which_wins_over_the_database() {
        let config = BTreeMap::from([
            (
                "warehouse".to_string(),
                connection("postgres://cfg:cfg-pw@cfg-host/dw", "warehouse"),
            ),
            ("api".to_string(), connection("https://api.example.com", "api")),
        ]);
        let database = vec![
            Ok(connection("postgres://db:db-pw@db-host/dw", "warehouse")),
            Ok(connection("https://db-api", "api")),
            Ok(connection("sqlite://local.db", "local")),
        ];
        let connections = Connections::from_sources(
            env(&[
                ("WEIR_CONN_WAREHOUSE", "postgres://env:env-pw@env-host/dw"),
                ("HOME", "/root"),
            ]),
            &config,
            database,
            PathBuf::from("/srv/weir"),
        );
        assert_eq!(connections.get("warehouse").unwrap().host.as_deref(), Some("env-host"));
        assert_eq!(connections.source("warehouse"), Some(ConnectionSource::Env));
        assert_eq!(connections.get("api").unwrap().host.as_deref(), Some("api.example.com"));
        assert_eq!(connections.source("api"), Some(ConnectionSource::Config));
        assert_eq!(connections.source("local"), Some(ConnectionSource::Database));
        assert_eq!(connections.url("local").unwrap(), "sqlite:///srv/weir/local.db");
        assert_eq!(
            connections.passwords(),
            ["cfg-pw", "db-pw", "env-pw"],
            "shadowed ones too"
        );
        let context = connections.template_context();
        assert_eq!(context["warehouse"]["host"], "env-host");
        assert!(!context.to_string().contains("pw"), "{context}");
    }

    #[test]
    fn an_unknown_name_lists_the_sources_and_suggests_a_close_one() {
        let connections = Connections::from_sources(
            env(&[("WEIR_CONN_WAREHOUSE", "postgres://h/dw")]),
            &BTreeMap::new(),
            Vec::new(),
            PathBuf::from("/"),
        );
        let error = connections.require("warehose").unwrap_err().to_string();
        assert!(
            error.starts_with("no connection `warehose` (did you mean `warehouse`?)"),
            "{error}"
        );
        assert!(
            error.contains("WEIR_CONN_<NAME>") && error.contains("known: warehouse"),
            "{error}"
        );
        let empty = Connections::default().require("x").unwrap_err().to_string();
        assert!(empty.contains("none are defined"), "{empty}");
    }

    #[test]
    fn a_broken_source_spoils_only_its_own_connection_and_its_password_is_still_masked() {
        let database = vec![Err(UndecryptablePassword {
            conn_id: "old".to_string(),
            what: "password".to_string(),
            error: DecryptError::WrongKey,
        })];
        let connections = Connections::from_sources(
            env(&[
                ("WEIR_CONN_BAD", "postgres://u:raw-pw@host:notaport/db"),
                ("WEIR_CONN_OK", "http://h"),
            ]),
            &BTreeMap::new(),
            database,
            PathBuf::from("/"),
        );
        assert!(connections.get("ok").is_some());
        let error = connections.require("bad").unwrap_err().to_string();
        assert!(
            error.starts_with("connection `bad` (from environment variable WEIR_CONN_BAD) cannot be used: the port"),
            "{error}"
        );
        let error = connections.require("old").unwrap_err().to_string();
        assert!(
            error.contains("connection `old`'s password was encrypted with a different secrets key: set [secrets] key"),
            "{error}"
        );
        assert_eq!(connections.passwords(), ["raw-pw"]);
    }
}
