//! A connection (§5.8): where a task's database or HTTP service is and how to log in. Parsed from
//! a URL (`postgres://user:pw@host:5432/db?sslmode=require`) or from fields, turned back into the
//! URL a driver connects with, and shown without its password (templates, CLI, API).

use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::percent::{decode_strict, encode_component};
pub use super::secret::REDACTED;
use super::secret::is_secret_name;

/// Longest connection id, as in Airflow.
pub const MAX_CONN_ID_LENGTH: usize = 200;

/// One connection, password included: only code that connects should read `password`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Connection {
    pub conn_id: String,
    /// `postgres`, `mysql`, `sqlite`, `http`, `https`, or any other scheme, kept as written.
    pub conn_type: String,
    /// For `sqlite`, the database file (relative paths resolve against the config folder).
    pub host: Option<String>,
    pub port: Option<u16>,
    /// The database name (`postgres`, `mysql`), or the base path (`http`).
    pub schema: Option<String>,
    pub login: Option<String>,
    pub password: Option<String>,
    /// Driver options; scalar values become the URL's query string.
    pub extra: Map<String, Value>,
    pub description: Option<String>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Connection")
            .field("conn_id", &self.conn_id)
            .field("conn_type", &self.conn_type)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("schema", &self.schema)
            .field("login", &self.login)
            .field("password", &self.password.as_ref().map(|_| REDACTED))
            .field("extra", &redacted_extra(&self.extra))
            .field("description", &self.description)
            .finish()
    }
}

/// A connection that cannot be built from what was given; the message never repeats a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("connection `{conn_id}`: {reason}")]
pub struct InvalidConnection {
    pub conn_id: String,
    pub reason: String,
}

/// A connection as written in config (`[connections.<name>]`) or as JSON in `WEIR_CONN_<NAME>`:
/// a `url`, fields, or a URL with fields that override its parts.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionFields {
    pub url: Option<String>,
    pub conn_type: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub schema: Option<String>,
    pub login: Option<String>,
    pub password: Option<String>,
    pub extra: Option<ExtraField>,
    pub description: Option<String>,
}

impl std::fmt::Debug for ConnectionFields {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL and extra may hold secrets too: only whether they are there is shown.
        formatter
            .debug_struct("ConnectionFields")
            .field("url", &self.url.as_ref().map(|_| REDACTED))
            .field("conn_type", &self.conn_type)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("schema", &self.schema)
            .field("login", &self.login)
            .field("password", &self.password.as_ref().map(|_| REDACTED))
            .field("extra", &self.extra.as_ref().map(|_| REDACTED))
            .field("description", &self.description)
            .finish()
    }
}

/// `extra` as a table/object, or as JSON text (Airflow's form).
#[derive(Clone, Deserialize)]
#[serde(untagged)]
pub enum ExtraField {
    Object(Map<String, Value>),
    Text(String),
}

impl Connection {
    /// Parses `scheme://[login[:password]@]host[:port][/schema][?key=value&...]`. Login and
    /// password are percent-decoded (write `@` as `%40`, `/` as `%2F`, `:` as `%3A`); the query
    /// string becomes `extra`. `postgresql` is read as `postgres` and `mariadb` as `mysql` (one
    /// driver each). `sqlite://relative.db` and `sqlite:///absolute.db` name the file in `host`.
    pub fn from_url(conn_id: &str, url: &str) -> Result<Connection, InvalidConnection> {
        let invalid = |reason: String| InvalidConnection {
            conn_id: conn_id.to_string(),
            reason,
        };
        let url = url.trim();
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            invalid("the URL has no scheme: write it as postgres://user:password@host:5432/db, sqlite://file.db or https://host/path".to_string())
        })?;
        let conn_type = conn_type_of_scheme(scheme)
            .ok_or_else(|| invalid(format!("`{scheme}` is not a URL scheme (letters, digits, + - . only)")))?;
        let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
        let (location, query) = rest
            .split_once('?')
            .map_or((rest, None), |(location, query)| (location, Some(query)));
        let extra =
            parse_query(query.unwrap_or_default()).map_err(|reason| invalid(format!("its query string: {reason}")))?;
        let decode = |part: &str, what: &str| {
            decode_strict(part).ok_or_else(|| invalid(format!("the {what} has a bad %-escape or is not UTF-8")))
        };
        let mut connection = Connection {
            conn_id: conn_id.to_string(),
            conn_type,
            extra,
            ..Connection::default()
        };
        if connection.conn_type == "sqlite" {
            if location.is_empty() {
                return Err(invalid(
                    "a SQLite URL needs a file: sqlite://relative/path.db or sqlite:///absolute/path.db".to_string(),
                ));
            }
            connection.host = Some(decode(location, "file path")?);
            return Ok(connection);
        }
        let (authority, path) = location
            .find('/')
            .map_or((location, ""), |slash| (&location[..slash], &location[slash + 1..]));
        let (userinfo, host_port) = match authority.rsplit_once('@') {
            Some((userinfo, host_port)) => (Some(userinfo), host_port),
            None => (None, authority),
        };
        if let Some(userinfo) = userinfo {
            let (login, password) = userinfo
                .split_once(':')
                .map_or((userinfo, None), |(login, password)| (login, Some(password)));
            connection.login = Some(decode(login, "user name")?).filter(|login| !login.is_empty());
            connection.password = password
                .map(|password| decode(password, "password"))
                .transpose()?
                .filter(|password| !password.is_empty());
        }
        let (host, port) = split_host_port(host_port).map_err(&invalid)?;
        connection.host = Some(decode(host, "host")?).filter(|host| !host.is_empty());
        connection.port = port;
        connection.schema = Some(decode(path, "path")?).filter(|schema| !schema.is_empty());
        Ok(connection)
    }

    /// A connection from config or JSON fields: the `url` first (if any), then each field given
    /// replaces that part (so a URL without password plus `password = ...` works).
    pub fn from_fields(conn_id: &str, fields: ConnectionFields) -> Result<Connection, InvalidConnection> {
        let invalid = |reason: String| InvalidConnection {
            conn_id: conn_id.to_string(),
            reason,
        };
        let mut connection = match &fields.url {
            Some(url) => Connection::from_url(conn_id, url)?,
            None => Connection {
                conn_id: conn_id.to_string(),
                ..Connection::default()
            },
        };
        if let Some(conn_type) = fields.conn_type {
            connection.conn_type = conn_type_of_scheme(&conn_type).ok_or_else(|| {
                invalid(format!(
                    "conn_type `{conn_type}` is not a type name (letters, digits, + - . _)"
                ))
            })?;
        }
        if connection.conn_type.is_empty() {
            return Err(invalid(
                "give a `url` (postgres://user@host/db) or a `conn_type` (postgres, mysql, sqlite, http, https)"
                    .to_string(),
            ));
        }
        let replace = |field: Option<String>, current: &mut Option<String>| {
            if let Some(value) = field {
                *current = Some(value).filter(|value| !value.is_empty());
            }
        };
        replace(fields.host, &mut connection.host);
        replace(fields.schema, &mut connection.schema);
        replace(fields.login, &mut connection.login);
        replace(fields.password, &mut connection.password);
        replace(fields.description, &mut connection.description);
        if fields.port.is_some() {
            connection.port = fields.port;
        }
        match fields.extra {
            Some(ExtraField::Object(extra)) => connection.extra.extend(extra),
            Some(ExtraField::Text(text)) => connection.extra.extend(parse_extra(&text).map_err(invalid)?),
            None => {}
        }
        Ok(connection)
    }

    /// The value of `WEIR_CONN_<NAME>`: a URL, or (starting with `{`) a JSON object of fields.
    pub fn from_env_value(conn_id: &str, value: &str) -> Result<Connection, InvalidConnection> {
        if value.trim_start().starts_with('{') {
            let fields: ConnectionFields = serde_json::from_str(value).map_err(|error| InvalidConnection {
                conn_id: conn_id.to_string(),
                reason: format!("the JSON form is not valid: {error}"),
            })?;
            Connection::from_fields(conn_id, fields)
        } else {
            Connection::from_url(conn_id, value)
        }
    }

    /// The full URL a driver connects with, password included: never print it (see
    /// [`Connection::redacted_url`]). SQLite files given relative resolve against `base_dir`
    /// (the config file's folder, as for `[database] url`).
    pub fn to_url(&self, base_dir: &Path) -> String {
        self.url_with(base_dir, self.password.as_deref().map(encode_component), false)
    }

    /// The URL with the password (and secret-named extra values) shown as `***`, for messages.
    pub fn redacted_url(&self, base_dir: &Path) -> String {
        self.url_with(base_dir, self.password.as_ref().map(|_| REDACTED.to_string()), true)
    }

    /// For `http`/`https` connections: `scheme://host[:port][/schema]`, no credentials and no
    /// query string; the HTTP task joins its path to it and sends `login`/`password` as basic auth.
    pub fn http_base_url(&self) -> Option<String> {
        if !self.is_http() {
            return None;
        }
        let mut url = format!("{}://{}", self.conn_type, self.host_part());
        if let Some(schema) = &self.schema {
            url.push('/');
            url.push_str(&encode_path(schema));
        }
        Some(url)
    }

    pub fn is_http(&self) -> bool {
        matches!(self.conn_type.as_str(), "http" | "https")
    }

    /// What templates see as `{{ conn.<name> }}`: everything but the password (§2).
    pub fn template_view(&self) -> Value {
        json!({
            "conn_id": self.conn_id,
            "conn_type": self.conn_type,
            "host": self.host,
            "port": self.port,
            "schema": self.schema,
            "login": self.login,
            "extra": Value::Object(self.extra.clone()),
            "description": self.description,
        })
    }

    /// `extra` with secret-named values (password, secret, token, key) shown as `***`, as
    /// Airflow's API and UI show it.
    pub fn redacted_extra(&self) -> Map<String, Value> {
        redacted_extra(&self.extra)
    }

    /// Values to mask in task logs: the password and every secret-named extra value.
    pub fn secret_values(&self) -> Vec<String> {
        let mut secrets: Vec<String> = self.password.iter().cloned().collect();
        collect_secret_values(&self.extra, false, &mut secrets);
        secrets.retain(|secret| !secret.is_empty());
        secrets
    }

    fn host_part(&self) -> String {
        let host = self.host.as_deref().unwrap_or_default();
        let mut part = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        if let Some(port) = self.port {
            part.push_str(&format!(":{port}"));
        }
        part
    }

    fn url_with(&self, base_dir: &Path, password: Option<String>, redact_extra: bool) -> String {
        let extra = if redact_extra {
            self.redacted_extra()
        } else {
            self.extra.clone()
        };
        let query = query_string(&extra);
        let mut url = if self.conn_type == "sqlite" {
            let file = self.host.as_deref().unwrap_or_default();
            let path = if file == ":memory:" || file.starts_with("file:") {
                file.to_string()
            } else {
                base_dir.join(file).display().to_string()
            };
            format!("sqlite://{path}")
        } else {
            let mut url = format!("{}://", self.conn_type.replace('_', "-"));
            if self.login.is_some() || password.is_some() {
                url.push_str(&encode_component(self.login.as_deref().unwrap_or_default()));
                if let Some(password) = password {
                    url.push(':');
                    url.push_str(&password);
                }
                url.push('@');
            }
            url.push_str(&self.host_part());
            if let Some(schema) = &self.schema {
                url.push('/');
                url.push_str(&encode_path(schema));
            }
            url
        };
        if !query.is_empty() {
            url.push('?');
            url.push_str(&query);
        }
        url
    }
}

/// Checks a connection id: `[A-Za-z0-9_.-]`, 1 to 200 characters (Airflow's rule).
pub fn check_conn_id(conn_id: &str) -> Result<(), String> {
    if conn_id.is_empty() || conn_id.chars().count() > MAX_CONN_ID_LENGTH {
        return Err(format!(
            "a connection id has 1 to {MAX_CONN_ID_LENGTH} characters, got {}",
            conn_id.chars().count()
        ));
    }
    if let Some(bad) = conn_id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(format!(
            "connection id `{conn_id}` contains `{bad}`: use letters, digits, `_`, `.` and `-`"
        ));
    }
    Ok(())
}

/// Parses `extra` given as JSON text: an object, or empty for none.
pub fn parse_extra(text: &str) -> Result<Map<String, Value>, String> {
    if text.trim().is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_str(text) {
        Ok(Value::Object(extra)) => Ok(extra),
        Ok(_) => Err("extra must be a JSON object, e.g. {\"sslmode\": \"require\"}".to_string()),
        Err(error) => Err(format!("extra must be a JSON object: {error}")),
    }
}

fn redacted_extra(extra: &Map<String, Value>) -> Map<String, Value> {
    extra
        .iter()
        .map(|(key, value)| {
            let shown = if is_secret_name(key) && !value.is_null() {
                Value::String(REDACTED.to_string())
            } else if let Value::Object(inner) = value {
                Value::Object(redacted_extra(inner))
            } else {
                value.clone()
            };
            (key.clone(), shown)
        })
        .collect()
}

fn collect_secret_values(extra: &Map<String, Value>, inside_secret: bool, secrets: &mut Vec<String>) {
    for (key, value) in extra {
        let secret = inside_secret || is_secret_name(key);
        match value {
            Value::Object(inner) => collect_secret_values(inner, secret, secrets),
            Value::String(text) if secret => secrets.push(text.clone()),
            Value::Number(number) if secret => secrets.push(number.to_string()),
            _ => {}
        }
    }
}

/// `postgresql` → `postgres`, `mariadb` → `mysql`, `-` → `_` (Airflow's conn_type spelling).
fn conn_type_of_scheme(scheme: &str) -> Option<String> {
    let valid = !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.' | '_'));
    if !valid {
        return None;
    }
    let lower = scheme.to_ascii_lowercase();
    Some(match lower.as_str() {
        "postgresql" => "postgres".to_string(),
        "mariadb" => "mysql".to_string(),
        _ => lower.replace('-', "_"),
    })
}

fn split_host_port(host_port: &str) -> Result<(&str, Option<u16>), String> {
    // The text is not repeated: with an unencoded `/` or `@` in a password, it is a piece of it.
    let port_error = |_: &str| {
        "the port is not a number from 0 to 65535 (if the password has @ / : ? or # in it, percent-encode them: %40 %2F %3A %3F %23)"
            .to_string()
    };
    let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| "an IPv6 host needs its closing `]`".to_string())?;
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(format!("unexpected `{after}` after the IPv6 host")),
            },
        }
    } else {
        match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    let port = match port {
        None | Some("") => None,
        Some(port) => Some(port.parse::<u16>().map_err(|_| port_error(port))?),
    };
    Ok((host, port))
}

/// `a=1&b=x%20y` → `{"a": "1", "b": "x y"}`; Airflow's `__extra__=<json>` is merged in.
fn parse_query(query: &str) -> Result<Map<String, Value>, String> {
    let mut extra = Map::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode =
            |text: &str| decode_strict(&text.replace('+', " ")).ok_or_else(|| format!("`{text}` has a bad %-escape"));
        let key = decode(key)?;
        let value = decode(value)?;
        if key == "__extra__" {
            extra.extend(parse_extra(&value)?);
        } else {
            extra.insert(key, Value::String(value));
        }
    }
    Ok(extra)
}

/// Scalar extra values as `key=value&...` (nested objects and arrays are for the task to read
/// from `extra`, not for the driver).
fn query_string(extra: &Map<String, Value>) -> String {
    extra
        .iter()
        .filter_map(|(key, value)| {
            let text = match value {
                Value::String(text) => text.clone(),
                Value::Number(number) => number.to_string(),
                Value::Bool(flag) => flag.to_string(),
                _ => return None,
            };
            Some(format!("{}={}", encode_component(key), encode_component(&text)))
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn encode_path(path: &str) -> String {
    path.split('/').map(encode_component).collect::<Vec<_>>().join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Connection {
        Connection::from_url("c", url).unwrap()
    }

    #[test]
    fn a_postgres_url_gives_every_part_with_a_decoded_password() {
        let connection =
            parse("postgresql://loader:p%40ss%2Fw%3Ard@db.internal:5432/dw?sslmode=require&application_name=weir+etl");
        assert_eq!(connection.conn_type, "postgres");
        assert_eq!(connection.host.as_deref(), Some("db.internal"));
        assert_eq!(connection.port, Some(5432));
        assert_eq!(connection.schema.as_deref(), Some("dw"));
        assert_eq!(connection.login.as_deref(), Some("loader"));
        assert_eq!(connection.password.as_deref(), Some("p@ss/w:rd"));
        assert_eq!(connection.extra["sslmode"], "require");
        assert_eq!(connection.extra["application_name"], "weir etl");
    }

    #[test]
    fn to_url_round_trips_and_encodes_the_password() {
        let url = "postgres://loader:p%40ss%2Fw%3Ard@db.internal:5432/dw?sslmode=require";
        let connection = parse(url);
        assert_eq!(connection.to_url(Path::new("/base")), url);
        assert_eq!(
            connection.redacted_url(Path::new("/base")),
            "postgres://loader:***@db.internal:5432/dw?sslmode=require"
        );
        assert_eq!(parse(&connection.to_url(Path::new("/"))), connection);
    }

    #[test]
    fn mysql_and_mariadb_are_one_type() {
        let connection = parse("mariadb://root@127.0.0.1:3306/test");
        assert_eq!(connection.conn_type, "mysql");
        assert_eq!(connection.login.as_deref(), Some("root"));
        assert_eq!(connection.password, None);
        assert_eq!(connection.to_url(Path::new("/")), "mysql://root@127.0.0.1:3306/test");
    }

    #[test]
    fn sqlite_files_resolve_against_the_base_folder_unless_absolute() {
        let relative = parse("sqlite://data/warehouse.db?mode=ro");
        assert_eq!(relative.host.as_deref(), Some("data/warehouse.db"));
        assert_eq!(
            relative.to_url(Path::new("/srv/weir")),
            "sqlite:///srv/weir/data/warehouse.db?mode=ro"
        );
        let absolute = parse("sqlite:///var/lib/w.db");
        assert_eq!(absolute.host.as_deref(), Some("/var/lib/w.db"));
        assert_eq!(absolute.to_url(Path::new("/srv/weir")), "sqlite:///var/lib/w.db");
        assert_eq!(parse("sqlite://:memory:").to_url(Path::new("/x")), "sqlite://:memory:");
        assert!(Connection::from_url("c", "sqlite://").is_err());
    }

    #[test]
    fn an_https_url_is_a_base_url_with_basic_auth() {
        let connection = parse("https://api%20user:t0k%3Den@api.example.com:8443/v1/data?timeout=5");
        assert_eq!(connection.conn_type, "https");
        assert_eq!(connection.login.as_deref(), Some("api user"));
        assert_eq!(connection.password.as_deref(), Some("t0k=en"));
        assert_eq!(connection.schema.as_deref(), Some("v1/data"));
        assert_eq!(
            connection.http_base_url().as_deref(),
            Some("https://api.example.com:8443/v1/data")
        );
        assert_eq!(
            connection.redacted_url(Path::new("/")),
            "https://api%20user:***@api.example.com:8443/v1/data?timeout=5"
        );
        assert_eq!(
            parse("http://localhost").http_base_url().as_deref(),
            Some("http://localhost")
        );
        assert_eq!(parse("postgres://h/db").http_base_url(), None);
    }

    #[test]
    fn other_schemes_are_kept_generically_and_ipv6_hosts_work() {
        let connection = parse("google-cloud-platform://[::1]:9000/bucket?__extra__=%7B%22project%22%3A%20%22p%22%7D");
        assert_eq!(connection.conn_type, "google_cloud_platform");
        assert_eq!(connection.host.as_deref(), Some("::1"));
        assert_eq!(connection.port, Some(9000));
        assert_eq!(connection.extra["project"], "p");
        assert_eq!(
            connection.to_url(Path::new("/")),
            "google-cloud-platform://[::1]:9000/bucket?project=p"
        );
    }

    #[test]
    fn bad_urls_say_what_is_wrong_without_echoing_the_password() {
        let error = Connection::from_url("w", "postgres://u:pa/ss@host/db").unwrap_err();
        assert!(error.to_string().contains("percent-encode"), "{error}");
        assert!(!error.to_string().contains("pa/ss"), "{error}");
        let error = Connection::from_url("w", "db.internal:5432").unwrap_err();
        assert!(
            error.to_string().starts_with("connection `w`: the URL has no scheme"),
            "{error}"
        );
        assert!(Connection::from_url("w", "post gres://h").is_err());
        assert!(Connection::from_url("w", "postgres://u:%zz@h").is_err());
    }

    #[test]
    fn fields_override_the_url_and_extra_may_be_json_text() {
        let fields = ConnectionFields {
            url: Some("postgres://loader@db/dw".to_string()),
            password: Some("from-config".to_string()),
            extra: Some(ExtraField::Text("{\"sslmode\": \"disable\"}".to_string())),
            ..ConnectionFields::default()
        };
        let connection = Connection::from_fields("w", fields).unwrap();
        assert_eq!(connection.password.as_deref(), Some("from-config"));
        assert_eq!(connection.extra["sslmode"], "disable");
        let error = Connection::from_fields("w", ConnectionFields::default()).unwrap_err();
        assert!(error.to_string().contains("conn_type"), "{error}");
        let json = Connection::from_env_value(
            "api",
            r#"{"conn_type": "https", "host": "api.example.com", "password": "tok"}"#,
        )
        .unwrap();
        assert_eq!(json.http_base_url().as_deref(), Some("https://api.example.com"));
        assert!(Connection::from_env_value("api", r#"{"hots": "x"}"#).is_err());
    }

    #[test]
    fn the_template_view_and_debug_output_never_hold_the_password() {
        let mut connection = parse("postgres://loader:hunter2@db:5432/dw");
        connection.extra.insert("api_token".to_string(), json!("tok-9"));
        let view = connection.template_view();
        assert_eq!(view["host"], "db");
        assert_eq!(view["port"], 5432);
        assert_eq!(view["login"], "loader");
        assert!(view.get("password").is_none());
        let debug = format!("{connection:?}");
        assert!(!debug.contains("hunter2") && !debug.contains("tok-9"), "{debug}");
        let fields = ConnectionFields {
            url: Some("postgres://u:hunter2@h/db".to_string()),
            password: Some("hunter2".to_string()),
            ..ConnectionFields::default()
        };
        assert!(!format!("{fields:?}").contains("hunter2"));
        assert_eq!(connection.redacted_extra()["api_token"], "***");
        assert_eq!(connection.secret_values(), ["hunter2", "tok-9"]);
    }

    #[test]
    fn connection_ids_follow_airflow_rules() {
        assert!(check_conn_id("my_db.prod-1").is_ok());
        assert!(check_conn_id("").is_err());
        assert!(check_conn_id("a b").unwrap_err().contains("` `"));
        assert!(check_conn_id(&"x".repeat(201)).is_err());
    }
}
