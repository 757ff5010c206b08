//! Configuration (§1): `config.toml` with `WEIR__SECTION__KEY` environment overrides, checked
//! once at start-up into typed values; relative paths resolve against the config file's folder.

mod alerts;
mod api_auth;
mod bind;
mod environment;
mod overrides;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;
use serde::Deserialize;

use crate::domain::connection::{Connection, ConnectionFields, check_conn_id};
use crate::domain::duration::parse_duration;
use crate::domain::validate::{MAX_DURATION, MAX_RETRIES, ValidationContext};
use crate::secrets::Passphrase;

pub use self::alerts::{AlertsConfig, Channel, ChannelKind, SmtpSecurity, SmtpSettings};
pub use self::api_auth::{ApiAuthConfig, AuthMode, ConfiguredUser};
pub use self::bind::BindAddress;
pub use self::environment::Environment;
pub use self::overrides::IgnoredOverride;
use self::overrides::apply_overrides;

/// The longest `[core] retention_days`: a cut-off further back than the dates weir handles
/// would overflow the clock arithmetic of the daily clean-up.
const MAX_RETENTION_DAYS: u32 = 36_500;

/// A configuration problem: which file, which key, and why. Exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("{path}: [{section}] {key} = {value:?}: {reason}")]
    BadValue {
        path: PathBuf,
        section: String,
        key: String,
        value: String,
        reason: String,
    },
    #[error("environment variable {name}: {reason}")]
    BadOverride { name: String, reason: String },
    #[error("{path}: [connections.{name}]: {reason}")]
    BadConnection {
        path: PathBuf,
        name: String,
        reason: String,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    core: RawCore,
    #[serde(default)]
    database: RawDatabase,
    #[serde(default)]
    webserver: RawWebserver,
    #[serde(default)]
    logging: RawLogging,
    /// Who may use the API and the UI: see `config/api_auth.rs`.
    #[serde(default)]
    api_auth: api_auth::RawApiAuth,
    #[serde(default)]
    pools: BTreeMap<String, u32>,
    /// Channels (`[alerts.<name>]` tables) and settings for all of them: see `config/alerts.rs`.
    #[serde(default)]
    alerts: toml::Table,
    #[serde(default)]
    smtp: Option<toml::Table>,
    // Read by features still to come (secrets, connections); accepted now so a complete config
    // file loads today.
    #[serde(default)]
    secrets: RawSecrets,
    #[serde(default)]
    connections: BTreeMap<String, toml::Table>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecrets {
    /// Any TOML scalar: `WEIR__SECRETS__KEY=12345` arrives as an integer.
    key: Option<toml::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawCore {
    dags_folder: String,
    state_dir: String,
    timezone: String,
    parallelism: u32,
    catchup_by_default: bool,
    dags_are_paused_at_creation: bool,
    dag_dir_poll: String,
    default_task_retries: u32,
    default_task_retry_delay: String,
    task_kill_grace: String,
    retention_days: u32,
    /// Airflow's `[core] test_connection`: "Disabled" (default) or "Enabled".
    test_connection: String,
    max_backfill_dates: u32,
}

impl Default for RawCore {
    fn default() -> Self {
        RawCore {
            dags_folder: "dags".into(),
            state_dir: ".weir".into(),
            timezone: "UTC".into(),
            parallelism: 32,
            catchup_by_default: false,
            dags_are_paused_at_creation: false,
            dag_dir_poll: "2s".into(),
            default_task_retries: 0,
            default_task_retry_delay: "5m".into(),
            task_kill_grace: "5s".into(),
            retention_days: 0,
            test_connection: "Disabled".into(),
            max_backfill_dates: crate::domain::backfill::DEFAULT_MAX_DATES,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawDatabase {
    url: String,
}

impl Default for RawDatabase {
    fn default() -> Self {
        RawDatabase {
            url: "sqlite://.weir/weir.db".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawWebserver {
    bind: String,
    /// The address people reach the UI at, for links in alerts; default `http://<bind>`.
    base_url: Option<String>,
}

impl Default for RawWebserver {
    fn default() -> Self {
        RawWebserver {
            bind: "127.0.0.1:8080".into(),
            base_url: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLogging {
    level: String,
    format: String,
}

impl Default for RawLogging {
    fn default() -> Self {
        RawLogging {
            level: "info".into(),
            format: "text".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from (may not exist: then every key has its default).
    pub path: PathBuf,
    pub dags_folder: PathBuf,
    pub state_dir: PathBuf,
    pub timezone: Tz,
    pub parallelism: u32,
    pub catchup_by_default: bool,
    pub dags_are_paused_at_creation: bool,
    pub dag_dir_poll: Duration,
    pub default_task_retries: u32,
    pub default_task_retry_delay: Duration,
    pub task_kill_grace: Duration,
    /// Finished runs older than this many days are removed daily by the daemon; `None` keeps all.
    pub retention_days: Option<u32>,
    /// Whether the API and UI may test a connection (`[core] test_connection`, off by default as
    /// in Airflow: without authentication it would let any caller make the server connect
    /// anywhere). `weir connections test` on the command line always works.
    pub test_connection: bool,
    /// The most logical dates one backfill (or its dry run) may cover; a longer range is refused
    /// before any date is listed.
    pub max_backfill_dates: u32,
    pub database_url: String,
    pub bind: BindAddress,
    /// The UI's address as people reach it, without a trailing `/` (links in alerts; the origin
    /// the UI's CSRF check accepts form posts from).
    pub base_url: String,
    pub log_level: String,
    pub log_format: LogFormat,
    /// Pool name → slots; always has `default`.
    pub pools: BTreeMap<String, u32>,
    /// Alert channels, the default channels per event, and the delivery policy (§9).
    pub alerts: AlertsConfig,
    /// The folder relative paths resolve against: the config file's (absolute).
    pub folder: PathBuf,
    /// `[secrets] key`: encrypts connection passwords in the database. `None` uses (and on first
    /// use creates) `<state_dir>/secret.key`.
    pub secrets_key: Option<Passphrase>,
    /// `[connections.<name>]` tables, checked (§5.8).
    pub connections: BTreeMap<String, Connection>,
    /// `[api_auth]`: the authentication mode, token secret and lifetime, configured users.
    pub api_auth: ApiAuthConfig,
    /// `WEIR__...` variables naming no key weir knows, ignored (the caller warns about each).
    pub ignored_overrides: Vec<IgnoredOverride>,
    /// The environment `load` was given: where `WEIR_CONN_*` and `WEIR_VAR_*` are read from.
    pub environment: Environment,
}

impl Config {
    /// Reads `path` (a missing default file is fine; a missing explicit one is not), applies
    /// `WEIR__SECTION__KEY` overrides from `environment`, and checks every value.
    pub fn load(
        path: &Path,
        must_exist: bool,
        environment: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound && !must_exist => String::new(),
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let table: toml::Table = text.parse().map_err(|error: toml::de::Error| ConfigError::Invalid {
            path: path.to_path_buf(),
            message: error.to_string(),
        })?;
        let invalid = |error: toml::de::Error| ConfigError::Invalid {
            path: path.to_path_buf(),
            message: format!("{}; see the commented config.toml for every key", error.message()),
        };
        // The file alone first, so that its own mistakes are blamed on it, not on a variable.
        RawConfig::deserialize(toml::Value::Table(table.clone())).map_err(invalid)?;
        let environment = Environment::from_pairs(environment);
        let overrides = apply_overrides(table, environment.vars())?;
        let raw = RawConfig::deserialize(toml::Value::Table(overrides.table.clone())).map_err(invalid)?;
        let base = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let base = std::path::absolute(&base).unwrap_or(base);
        let mut config = Self::check(path, &base, raw).map_err(|error| overrides.blame(error))?;
        config.ignored_overrides = overrides.ignored;
        config.environment = environment;
        Ok(config)
    }

    fn check(path: &Path, base: &Path, raw: RawConfig) -> Result<Config, ConfigError> {
        let bad = |section: &str, key: &str, value: &str, reason: &str| ConfigError::BadValue {
            path: path.to_path_buf(),
            section: section.to_string(),
            key: key.to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
        };
        let core = &raw.core;
        let timezone: Tz = core.timezone.parse().map_err(|_| {
            bad(
                "core",
                "timezone",
                &core.timezone,
                "not an IANA time zone name (e.g. UTC, Europe/Berlin)",
            )
        })?;
        let duration =
            |key: &str, value: &str| parse_duration(value).map_err(|error| bad("core", key, value, &error.to_string()));
        let dag_dir_poll = duration("dag_dir_poll", &core.dag_dir_poll)?;
        if dag_dir_poll.is_zero() {
            return Err(bad("core", "dag_dir_poll", &core.dag_dir_poll, "must be positive"));
        }
        if core.parallelism == 0 {
            return Err(bad("core", "parallelism", "0", "must be at least 1"));
        }
        if core.default_task_retries > MAX_RETRIES {
            return Err(bad(
                "core",
                "default_task_retries",
                &core.default_task_retries.to_string(),
                &format!("must be at most {MAX_RETRIES}, as a task's own retries"),
            ));
        }
        if core.retention_days > MAX_RETENTION_DAYS {
            return Err(bad(
                "core",
                "retention_days",
                &core.retention_days.to_string(),
                &format!("must be at most {MAX_RETENTION_DAYS} (100 years); 0 keeps everything"),
            ));
        }
        let default_task_retry_delay = duration("default_task_retry_delay", &core.default_task_retry_delay)?;
        if default_task_retry_delay > MAX_DURATION {
            return Err(bad(
                "core",
                "default_task_retry_delay",
                &core.default_task_retry_delay,
                "must be at most 365d, as a task's own retry_delay",
            ));
        }
        if core.max_backfill_dates == 0 {
            return Err(bad("core", "max_backfill_dates", "0", "must be at least 1"));
        }
        let log_format = match raw.logging.format.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => return Err(bad("logging", "format", other, "use \"text\" or \"json\"")),
        };
        if tracing_subscriber::EnvFilter::try_new(&raw.logging.level).is_err() {
            return Err(bad(
                "logging",
                "level",
                &raw.logging.level,
                "use error, warn, info, debug or trace",
            ));
        }
        let bind: BindAddress =
            raw.webserver.bind.parse().map_err(|error: bind::InvalidBind| {
                bad("webserver", "bind", &raw.webserver.bind, &error.to_string())
            })?;
        let database_url = resolve_database_url(base, &raw.database.url).ok_or_else(|| {
            bad(
                "database",
                "url",
                &raw.database.url,
                "use sqlite://path/to/file.db or postgres://user@host/db",
            )
        })?;
        let base_url = match &raw.webserver.base_url {
            Some(url) => match reqwest::Url::parse(url) {
                Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => url.trim_end_matches('/').to_string(),
                _ => {
                    return Err(bad(
                        "webserver",
                        "base_url",
                        url,
                        "not an http:// or https:// URL such as https://weir.example.com",
                    ));
                }
            },
            None => format!("http://{bind}"),
        };
        let mut pools = raw.pools.clone();
        pools
            .entry("default".to_string())
            .or_insert(crate::domain::validate::DEFAULT_POOL_SLOTS);
        let alerts = alerts::parse(path, base, &raw.alerts, raw.smtp.as_ref())?;
        let secrets_key = match &raw.secrets.key {
            None => None,
            Some(value) => match scalar_text(value) {
                Some(text) if !text.trim().is_empty() => Some(Passphrase::new(text)),
                _ => {
                    return Err(bad(
                        "secrets",
                        "key",
                        "***",
                        "use a long random text (e.g. the output of `openssl rand -hex 32`)",
                    ));
                }
            },
        };
        let api_auth = api_auth::parse(path, &raw.api_auth, &bind, &base_url)?;
        let mut connections = BTreeMap::new();
        for (name, table) in &raw.connections {
            let connection = config_connection(name, table).map_err(|reason| ConfigError::BadConnection {
                path: path.to_path_buf(),
                name: name.clone(),
                reason,
            })?;
            connections.insert(name.clone(), connection);
        }
        Ok(Config {
            path: path.to_path_buf(),
            dags_folder: base.join(&core.dags_folder),
            state_dir: base.join(&core.state_dir),
            timezone,
            parallelism: core.parallelism,
            catchup_by_default: core.catchup_by_default,
            dags_are_paused_at_creation: core.dags_are_paused_at_creation,
            dag_dir_poll,
            default_task_retries: core.default_task_retries,
            default_task_retry_delay,
            task_kill_grace: duration("task_kill_grace", &core.task_kill_grace)?,
            retention_days: (core.retention_days > 0).then_some(core.retention_days),
            test_connection: match core.test_connection.to_ascii_lowercase().as_str() {
                "enabled" => true,
                "disabled" => false,
                _ => {
                    return Err(bad(
                        "core",
                        "test_connection",
                        &core.test_connection,
                        "use \"Enabled\" or \"Disabled\"",
                    ));
                }
            },
            max_backfill_dates: core.max_backfill_dates,
            database_url,
            bind,
            base_url,
            log_level: raw.logging.level.clone(),
            log_format,
            pools,
            alerts,
            folder: base.to_path_buf(),
            secrets_key,
            connections,
            api_auth,
            ignored_overrides: Vec::new(),
            environment: Environment::default(),
        })
    }

    /// What DAG validation needs from the configuration.
    pub fn validation_context(&self) -> ValidationContext {
        ValidationContext {
            default_timezone: self.timezone,
            catchup_by_default: self.catchup_by_default,
            dags_are_paused_at_creation: self.dags_are_paused_at_creation,
            default_task_retries: self.default_task_retries,
            default_task_retry_delay: self.default_task_retry_delay,
            pools: self.pools.clone(),
            alert_channels: self.alerts.channels.keys().cloned().collect(),
        }
    }

    pub fn logs_dir(&self) -> PathBuf {
        self.state_dir.join("logs")
    }
}

/// A TOML scalar as text (overrides turn `WEIR__...=1234` into an integer).
fn scalar_text(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(text) => Some(text.clone()),
        toml::Value::Integer(number) => Some(number.to_string()),
        toml::Value::Float(number) => Some(number.to_string()),
        toml::Value::Boolean(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// One `[connections.<name>]` table: `url`, fields, or both (fields override the URL's parts).
fn config_connection(name: &str, table: &toml::Table) -> Result<Connection, String> {
    check_conn_id(name)?;
    let mut table = table.clone();
    for (key, value) in table.iter_mut() {
        if key != "port"
            && key != "extra"
            && let Some(text) = scalar_text(value)
        {
            *value = toml::Value::String(text);
        }
    }
    let fields =
        ConnectionFields::deserialize(toml::Value::Table(table)).map_err(|error| error.message().to_string())?;
    let connection = Connection::from_fields(name, fields).map_err(|error| error.reason)?;
    Ok(connection)
}

/// `sqlite://relative.db` resolves against the config folder; other URLs pass through.
fn resolve_database_url(base: &Path, url: &str) -> Option<String> {
    if let Some(rest) = url.strip_prefix("sqlite://") {
        let (file, query) = rest
            .split_once('?')
            .map_or((rest, None), |(file, query)| (file, Some(query)));
        if file.is_empty() {
            return None;
        }
        let absolute = if file == ":memory:" {
            PathBuf::from(file)
        } else {
            base.join(file)
        };
        let mut resolved = format!("sqlite://{}", absolute.display());
        if let Some(query) = query {
            resolved.push('?');
            resolved.push_str(query);
        }
        Some(resolved)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Some(url.to_string())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, environment: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("config.toml");
        std::fs::write(&path, text).unwrap();
        let environment = environment.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Config::load(&path, true, environment)
    }

    #[test]
    fn defaults_apply_and_relative_paths_resolve_against_the_config_folder() {
        let config = load("", &[]).unwrap();
        let folder = config.path.parent().unwrap().to_path_buf();
        assert_eq!(config.dags_folder, folder.join("dags"));
        assert_eq!(
            config.database_url,
            format!("sqlite://{}", folder.join(".weir/weir.db").display())
        );
        assert_eq!(config.parallelism, 32);
        assert_eq!(config.pools["default"], 128);
        assert_eq!(config.bind.to_string(), "127.0.0.1:8080");
    }

    #[test]
    fn environment_overrides_win_over_the_file() {
        let config = load(
            "[core]\nparallelism = 4\n",
            &[
                ("WEIR__CORE__PARALLELISM", "8"),
                ("WEIR__DATABASE__URL", "postgres://postgres@127.0.0.1/test"),
                ("WEIR__POOLS__WAREHOUSE", "3"),
            ],
        )
        .unwrap();
        assert_eq!(config.parallelism, 8);
        assert_eq!(config.database_url, "postgres://postgres@127.0.0.1/test");
        assert_eq!(config.pools["warehouse"], 3);
    }

    #[test]
    fn bad_values_name_the_file_key_and_reason() {
        let error = load("[core]\ntimezone = \"Mars/Olympus\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            error.ends_with(
                "config.toml: [core] timezone = \"Mars/Olympus\": not an IANA time zone name (e.g. UTC, Europe/Berlin)"
            ),
            "{error}"
        );
        let error = load("[core]\nparalelism = 4\n", &[]).unwrap_err().to_string();
        assert!(error.contains("unknown field `paralelism`"), "{error}");
        let error = load("[core]\nparallelism = \"many\"\n", &[]).unwrap_err().to_string();
        assert!(error.contains("invalid type"), "{error}");
        let error = load("", &[("WEIR__CORE__DAG_DIR_POLL", "soon")])
            .unwrap_err()
            .to_string();
        assert!(error.contains("[core] dag_dir_poll = \"soon\""), "{error}");
        let error = load("[core]\ntest_connection = \"maybe\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("test_connection") && error.contains("Enabled"),
            "{error}"
        );
        assert!(
            load("[core]\ntest_connection = \"enabled\"\n", &[])
                .unwrap()
                .test_connection
        );
        assert!(!load("", &[]).unwrap().test_connection, "off by default, as in Airflow");
        let error = load("[alerts.ops]\nkind = \"pager\"\n", &[]).unwrap_err().to_string();
        assert!(error.contains("[alerts.ops] kind"), "{error}");
    }

    #[test]
    fn a_bad_override_is_blamed_on_its_variable_and_an_unknown_one_is_ignored_by_name() {
        let error = load("", &[("WEIR__CORE__PARALLELISM", "abc")]).unwrap_err().to_string();
        assert_eq!(
            error,
            "environment variable WEIR__CORE__PARALLELISM: [core] parallelism: invalid type: string \"abc\", expected u32"
        );
        let error = load("", &[("WEIR__CORE__DAG_DIR_POLL", "soon")])
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("environment variable WEIR__CORE__DAG_DIR_POLL: [core] dag_dir_poll = \"soon\": "),
            "{error}"
        );
        // The file's own mistake is the file's, whatever the environment holds.
        let error = load("[core]\nparallelism = \"many\"\n", &[("WEIR__CORE__PARALLELISM", "8")])
            .unwrap_err()
            .to_string();
        assert!(error.contains("config.toml: invalid type"), "{error}");

        let config = load(
            "[core]\nparallelism = 4\n",
            &[
                ("WEIR__CORE__NOPE", "1"),
                ("WEIR__CORE__PARALLELISM", "6"),
                ("WEIR__WEBSERVERS__BIND", "x"),
            ],
        )
        .unwrap();
        assert_eq!(config.parallelism, 6);
        let ignored: Vec<String> = config.ignored_overrides.iter().map(ToString::to_string).collect();
        assert_eq!(ignored.len(), 2, "{ignored:?}");
        assert!(
            ignored[0].starts_with("ignored environment variable WEIR__CORE__NOPE: unknown field `nope`"),
            "{ignored:?}"
        );
        assert!(
            ignored[1].starts_with("ignored environment variable WEIR__WEBSERVERS__BIND: unknown field `webservers`"),
            "{ignored:?}"
        );
        let error = load("[core]\nnope = 1\n", &[]).unwrap_err().to_string();
        assert!(error.contains("config.toml: unknown field `nope`"), "{error}");
        // A user's role and password make sense only together: neither is refused alone.
        let config = load(
            "",
            &[
                ("WEIR__API_AUTH__USERS__ANA__PASSWORD", "ana's long password"),
                ("WEIR__API_AUTH__USERS__ANA__ROLE", "Op"),
            ],
        )
        .unwrap();
        assert_eq!(config.api_auth.users["ana"].role, crate::domain::auth::Role::Op);
        let error = load("", &[("WEIR__API_AUTH__USERS__ANA__PASSWORD", "ana's long password")])
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "environment variable WEIR__API_AUTH__USERS__ANA__PASSWORD: [api_auth.users.ana] password: missing field `role`"
        );
    }

    #[test]
    fn bind_takes_a_host_name_and_only_loopback_names_allow_no_authentication() {
        let config = load(
            "[webserver]\nbind = \"localhost:9000\"\n[api_auth]\nmode = \"none\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(config.bind.to_string(), "localhost:9000");
        assert_eq!(config.base_url, "http://localhost:9000");
        assert_eq!(config.api_auth.mode, AuthMode::None);
        let error = load(
            "[webserver]\nbind = \"weir.internal:9000\"\n[api_auth]\nmode = \"none\"\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("loopback") && error.contains("weir.internal:9000"),
            "{error}"
        );
        let error = load("[webserver]\nbind = \"localhost\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            error.ends_with(
                "[webserver] bind = \"localhost\": not a host:port address such as 127.0.0.1:8080, [::1]:8080 or localhost:8080"
            ),
            "{error}"
        );
    }

    #[test]
    fn retention_days_and_the_default_retry_delay_are_bounded() {
        assert_eq!(
            load("[core]\nretention_days = 36500\n", &[]).unwrap().retention_days,
            Some(36_500)
        );
        let error = load("[core]\nretention_days = 4294967295\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            error.ends_with(
                "[core] retention_days = \"4294967295\": must be at most 36500 (100 years); 0 keeps everything"
            ),
            "{error}"
        );
        let error = load("[core]\ndefault_task_retry_delay = \"400d\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            error.ends_with(
                "[core] default_task_retry_delay = \"400d\": must be at most 365d, as a task's own retry_delay"
            ),
            "{error}"
        );
    }

    #[test]
    fn default_task_retries_has_the_bound_of_a_tasks_retries() {
        assert_eq!(
            load("[core]\ndefault_task_retries = 1000\n", &[])
                .unwrap()
                .default_task_retries,
            1000
        );
        let error = load("", &[("WEIR__CORE__DEFAULT_TASK_RETRIES", "4294967295")])
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "environment variable WEIR__CORE__DEFAULT_TASK_RETRIES: [core] default_task_retries = \"4294967295\": must be at most 1000, as a task's own retries"
        );
    }

    #[test]
    fn max_backfill_dates_defaults_to_ten_thousand_and_must_be_positive() {
        assert_eq!(load("", &[]).unwrap().max_backfill_dates, 10_000);
        let config = load("", &[("WEIR__CORE__MAX_BACKFILL_DATES", "500")]).unwrap();
        assert_eq!(config.max_backfill_dates, 500);
        let error = load("[core]\nmax_backfill_dates = 0\n", &[]).unwrap_err().to_string();
        assert!(
            error.contains("[core] max_backfill_dates") && error.contains("at least 1"),
            "{error}"
        );
    }

    #[test]
    fn api_auth_defaults_to_passwords_and_refuses_no_auth_off_loopback() {
        let config = load("", &[]).unwrap();
        assert_eq!(config.api_auth.mode, AuthMode::Password);
        assert_eq!(config.api_auth.token_lifetime, Duration::from_secs(24 * 3600));
        assert!(!config.api_auth.cookie_secure);
        let config = load(
            "[webserver]\nbind = \"127.0.0.1:9000\"\n",
            &[("WEIR__API_AUTH__MODE", "none")],
        )
        .unwrap();
        assert_eq!(config.api_auth.mode, AuthMode::None);
        let config = load("[webserver]\nbind = \"[::1]:9000\"\n[api_auth]\nmode = \"none\"\n", &[]).unwrap();
        assert_eq!(config.api_auth.mode, AuthMode::None);
        let error = load(
            "[webserver]\nbind = \"0.0.0.0:8080\"\n",
            &[("WEIR__API_AUTH__MODE", "none")],
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("[api_auth] mode = \"none\"")
                && error.contains("loopback")
                && error.contains("0.0.0.0:8080"),
            "{error}"
        );
        let error = load("[api_auth]\nmode = \"open\"\n", &[]).unwrap_err().to_string();
        assert!(error.contains("use \"password\" or \"none\""), "{error}");
        let config = load("[webserver]\nbase_url = \"https://weir.example.com\"\n", &[]).unwrap();
        assert!(config.api_auth.cookie_secure, "https base_url marks the cookie Secure");
    }

    #[test]
    fn api_auth_secret_lifetime_and_users_are_checked_and_hidden() {
        let config = load(
            "[api_auth]\ntoken_lifetime = \"2h\"\n[api_auth.users.ana]\nrole = \"op\"\n",
            &[
                ("WEIR__API_AUTH__JWT_SECRET", "0123456789abcdef0123"),
                ("WEIR__API_AUTH__USERS__ANA__PASSWORD", "ana's long password"),
            ],
        )
        .unwrap();
        assert_eq!(config.api_auth.token_lifetime, Duration::from_secs(7200));
        assert_eq!(config.api_auth.users["ana"].role, crate::domain::auth::Role::Op);
        assert_eq!(config.api_auth.users["ana"].password.expose(), "ana's long password");
        let debug = format!("{config:?}");
        assert!(
            !debug.contains("0123456789abcdef0123") && !debug.contains("long password"),
            "{debug}"
        );
        let error = load("[api_auth]\njwt_secret = \"short\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("[api_auth] jwt_secret = \"***\"") && error.contains("16"),
            "{error}"
        );
        let error = load("[api_auth.users.ana]\nrole = \"Op\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(error.contains("WEIR__API_AUTH__USERS__ANA__PASSWORD"), "{error}");
        let error = load(
            "[api_auth.users.ana]\nrole = \"Boss\"\npassword = \"long enough\"\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("[api_auth.users.ana]") && error.contains("not a role"),
            "{error}"
        );
        let error = load("[api_auth]\ntoken_lifetime = \"5s\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(error.contains("token_lifetime"), "{error}");
    }

    #[test]
    fn connections_and_the_secrets_key_are_read_and_checked() {
        let config = load(
            "[connections.warehouse]\nurl = \"postgres://loader@db.internal:5432/dw\"\n\n[connections.api]\nconn_type = \"https\"\nhost = \"api.example.com\"\nextra = { timeout = 5 }\n",
            &[
                ("WEIR__CONNECTIONS__WAREHOUSE__PASSWORD", "12345"),
                ("WEIR__SECRETS__KEY", "987654321"),
            ],
        )
        .unwrap();
        let warehouse = &config.connections["warehouse"];
        assert_eq!(warehouse.password.as_deref(), Some("12345"));
        assert_eq!(warehouse.schema.as_deref(), Some("dw"));
        assert_eq!(config.connections["api"].extra["timeout"], 5);
        assert_eq!(config.secrets_key.as_ref().map(|key| key.expose()), Some("987654321"));
        assert!(!format!("{config:?}").contains("987654321"), "Debug hides the key");
        assert!(!format!("{config:?}").contains("12345"), "Debug hides passwords");

        let error = load("[connections.w]\nurl = \"db.internal\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(error.contains("[connections.w]: the URL has no scheme"), "{error}");
        let error = load("[connections.w]\nhots = \"x\"\n", &[]).unwrap_err().to_string();
        assert!(error.contains("[connections.w]: unknown field `hots`"), "{error}");
        let error = load("[secrets]\nkey = \"\"\n", &[]).unwrap_err().to_string();
        assert!(error.contains("[secrets] key"), "{error}");
    }
}
