//! The connections page (§5.8, §8): every connection from env `WEIR_CONN_<NAME>`, config
//! `[connections.<name>]` and the database, which one tasks use and which are shadowed; a form
//! to add a database connection by URL (its password stored encrypted), delete buttons for
//! database connections and a Test button for each. A password is never rendered: the table
//! shows `***`, a form that fails does not echo a URL holding one, test results are redacted.

use std::collections::BTreeMap;
use std::path::PathBuf;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::error::{UiForm, UiQuery};
use super::{back_to, render};
use crate::api::ApiState;
use crate::api::audit::AuditNote;
use crate::api::error::ApiError;
use crate::domain::connection::{Connection, InvalidConnection, REDACTED, check_conn_id};
use crate::runtime::connection_probe;
use crate::runtime::connections::{ConnectionError, ConnectionSource, Connections};
use crate::runtime::masking::Masker;
use crate::storage::StorageError;
use crate::storage::connections::{self as stored, UndecryptablePassword};

const PAGE_URL: &str = "/connections";

/// Every source's connections on their own, so that shadowed ones can be listed and tested
/// too, and the resolver tasks use (which decides the one in use for each name).
struct Sources {
    each: Vec<(ConnectionSource, Connections)>,
    used: Connections,
}

impl Sources {
    fn new(
        environment: Vec<(String, String)>,
        config_connections: &BTreeMap<String, Connection>,
        database: Vec<Result<Connection, UndecryptablePassword>>,
        base_dir: PathBuf,
    ) -> Sources {
        let none = BTreeMap::new();
        let used = Connections::from_sources(
            environment.iter().cloned(),
            config_connections,
            database.clone(),
            base_dir.clone(),
        );
        let each = vec![
            (
                ConnectionSource::Env,
                Connections::from_sources(environment, &none, Vec::new(), base_dir.clone()),
            ),
            (
                ConnectionSource::Config,
                Connections::from_sources(Vec::new(), config_connections, Vec::new(), base_dir.clone()),
            ),
            (
                ConnectionSource::Database,
                Connections::from_sources(Vec::new(), &none, database, base_dir),
            ),
        ];
        Sources { each, used }
    }

    /// The process environment, the config and the database (passwords decrypted, for tests).
    async fn load(state: &ApiState) -> Result<Sources, ApiError> {
        let mut connection = state.db.acquire().await?;
        let database = stored::all_with_passwords(&mut connection, &state.secrets).await?;
        drop(connection);
        Ok(Sources::new(
            state.config.environment.vars().collect(),
            &state.config.connections,
            database,
            state.config.folder.clone(),
        ))
    }

    /// One row per connection per source, by name, the one in use first.
    fn rows(&self) -> Vec<ConnectionRow> {
        // Whatever is rendered that did not come from a field (error messages) is masked with
        // every password of every source.
        let masker = &Masker::new(&self.used.passwords());
        let mut rows: Vec<ConnectionRow> = self
            .each
            .iter()
            .flat_map(|(source, connections)| {
                let source = *source;
                connections.list().map(move |listed| {
                    let used_source = self.used.source(listed.name);
                    let shadowed_by = used_source
                        .filter(|used| *used != source)
                        .map(|used| used.describe(listed.name));
                    ConnectionRow::new(listed.name, source, shadowed_by, listed.resolved, masker)
                })
            })
            .collect();
        // Stable, and sources are listed strongest first.
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        rows
    }

    /// The connection `name` as `source` defines it, or why it cannot be used; `None` when that
    /// source does not define it.
    fn find(&self, name: &str, source: ConnectionSource) -> Option<Result<&Connection, ConnectionError>> {
        let (_, connections) = self.each.iter().find(|(each, _)| *each == source)?;
        connections.source(name)?;
        Some(connections.require(name))
    }
}

/// One connection from one source, as the table shows it: everything but the password.
#[derive(Debug, Serialize)]
struct ConnectionRow {
    name: String,
    source: &'static str,
    /// Where a person changes it.
    origin: String,
    /// Where the connection tasks use instead comes from, if this one is shadowed.
    shadowed_by: Option<String>,
    conn_type: Option<String>,
    host: Option<String>,
    port: Option<u16>,
    schema: Option<String>,
    login: Option<String>,
    /// `***` when a password is set.
    password: Option<&'static str>,
    /// The extra options as JSON, secret-named values as `***`.
    extra: Option<String>,
    description: Option<String>,
    /// Why the connection cannot be used.
    error: Option<String>,
    deletable: bool,
}

impl ConnectionRow {
    fn new(
        name: &str,
        source: ConnectionSource,
        shadowed_by: Option<String>,
        resolved: Result<&Connection, &str>,
        masker: &Masker,
    ) -> ConnectionRow {
        let mut row = ConnectionRow {
            name: name.to_string(),
            source: source.as_str(),
            origin: source.describe(name),
            shadowed_by,
            conn_type: None,
            host: None,
            port: None,
            schema: None,
            login: None,
            password: None,
            extra: None,
            description: None,
            error: None,
            deletable: source == ConnectionSource::Database,
        };
        match resolved {
            Ok(connection) => {
                let extra = connection.redacted_extra();
                row.conn_type = Some(connection.conn_type.clone());
                row.host = connection.host.clone();
                row.port = connection.port;
                row.schema = connection.schema.clone();
                row.login = connection.login.clone();
                row.password = connection.password.as_ref().map(|_| REDACTED);
                row.extra = (!extra.is_empty()).then(|| serde_json::Value::Object(extra).to_string());
                row.description = connection.description.clone();
            }
            Err(reason) => row.error = Some(masker.mask(reason)),
        }
        row
    }
}

/// What the add form shows again after a problem: never a URL that holds a password.
#[derive(Debug, Default, Serialize)]
struct FormEcho {
    conn_id: String,
    url: String,
    description: String,
    /// The URL was not shown again because it held (or may hold) a secret.
    url_withheld: bool,
}

/// The outcome of a Test button, redacted.
#[derive(Debug, Serialize)]
struct TestResult {
    name: String,
    source: &'static str,
    ok: bool,
    message: String,
}

/// What a page shows besides the table.
#[derive(Debug, Default)]
struct Extras {
    notice: Option<String>,
    problems: Vec<String>,
    form: FormEcho,
    test: Option<TestResult>,
}

async fn render_page(state: &ApiState, extras: Extras, status: StatusCode) -> Result<Response, ApiError> {
    let sources = Sources::load(state).await?;
    render_with(&sources, extras, status)
}

fn render_with(sources: &Sources, extras: Extras, status: StatusCode) -> Result<Response, ApiError> {
    let rows = sources.rows();
    let html = render::page(
        "connections.html",
        context! {
            rows,
            notice => extras.notice,
            problems => extras.problems,
            form => extras.form,
            test => extras.test,
        },
    )?;
    Ok((status, html).into_response())
}

#[derive(Debug, Deserialize)]
pub struct PageQuery {
    notice: Option<String>,
}

/// `GET /connections`.
pub async fn list(State(state): State<ApiState>, UiQuery(query): UiQuery<PageQuery>) -> Result<Response, ApiError> {
    let extras = Extras {
        notice: query.notice,
        ..Extras::default()
    };
    render_page(&state, extras, StatusCode::OK).await
}

#[derive(Deserialize)]
pub struct AddForm {
    #[serde(default)]
    conn_id: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    description: String,
    next: Option<String>,
}

/// The URL to put back in the form: as typed when it cannot hold a secret, else nothing.
fn url_echo(raw: &str, parsed: &Result<Connection, InvalidConnection>) -> (String, bool) {
    let may_hold_secret = match parsed {
        Ok(connection) => !connection.secret_values().is_empty(),
        // Unreadable: credentials come before an `@`, secret options after a `?`.
        Err(_) => raw.contains('@') || raw.contains('?'),
    };
    if may_hold_secret {
        (String::new(), true)
    } else {
        (raw.trim().to_string(), false)
    }
}

/// Every problem with the add form at once, or the connection it describes.
fn connection_of(form: &AddForm) -> Result<Connection, (Vec<String>, FormEcho)> {
    let conn_id = form.conn_id.trim();
    let url = form.url.trim();
    let mut problems = Vec::new();
    if let Err(problem) = check_conn_id(conn_id) {
        problems.push(format!("Name: {problem}"));
    }
    let parsed = if url.is_empty() {
        Err(InvalidConnection {
            conn_id: conn_id.to_string(),
            reason: "give the connection's URL, e.g. postgres://user:password@host:5432/db, sqlite:///path/file.db or https://host/path".to_string(),
        })
    } else {
        Connection::from_url(conn_id, url)
    };
    if let Err(error) = &parsed {
        problems.push(format!("URL: {}", error.reason));
    }
    match parsed {
        Ok(mut connection) if problems.is_empty() => {
            connection.description =
                Some(form.description.trim().to_string()).filter(|description| !description.is_empty());
            Ok(connection)
        }
        parsed => {
            let (url, url_withheld) = url_echo(url, &parsed);
            let echo = FormEcho {
                conn_id: conn_id.to_string(),
                url,
                description: form.description.clone(),
                url_withheld,
            };
            Err((problems, echo))
        }
    }
}

/// `POST /connections` with `conn_id`, `url` and `description`: stores a database connection,
/// its password encrypted with the secrets key.
pub async fn add(State(state): State<ApiState>, UiForm(form): UiForm<AddForm>) -> Result<Response, ApiError> {
    let connection = match connection_of(&form) {
        Ok(connection) => connection,
        Err((problems, echo)) => {
            let extras = Extras {
                problems,
                form: echo,
                ..Extras::default()
            };
            return render_page(&state, extras, StatusCode::BAD_REQUEST).await;
        }
    };
    let mut transaction = state.db.begin().await?;
    match stored::insert(&mut transaction, &connection, &state.secrets).await {
        Ok(()) => transaction.commit().await?,
        Err(StorageError::Conflict(_)) => {
            drop(transaction);
            let parsed = Ok(connection.clone());
            let (url, url_withheld) = url_echo(&form.url, &parsed);
            let extras = Extras {
                problems: vec![format!(
                    "Connection `{}` is already in the database: delete it first to replace it.",
                    connection.conn_id
                )],
                form: FormEcho {
                    conn_id: connection.conn_id.clone(),
                    url,
                    description: form.description,
                    url_withheld,
                },
                ..Extras::default()
            };
            return render_page(&state, extras, StatusCode::CONFLICT).await;
        }
        Err(error) => return Err(error.into()),
    }
    let mut notice = format!(
        "Added connection `{}`: {}.",
        connection.conn_id,
        connection.redacted_url(&state.config.folder)
    );
    let outside = Connections::from_sources(
        state.config.environment.vars(),
        &state.config.connections,
        Vec::new(),
        state.config.folder.clone(),
    );
    if let Some(source) = outside.source(&connection.conn_id) {
        notice.push_str(&format!(
            " {} defines it too and takes precedence over the database.",
            capitalized(&source.describe(&connection.conn_id))
        ));
    }
    let note = AuditNote::new().detail("connection_id", connection.conn_id.clone());
    Ok((note, back_to(form.next.as_deref(), PAGE_URL, &notice)).into_response())
}

fn capitalized(text: &str) -> String {
    let mut characters = text.chars();
    characters
        .next()
        .map_or_else(String::new, |first| first.to_uppercase().chain(characters).collect())
}

#[derive(Debug, Deserialize)]
pub struct NameForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    source: String,
    next: Option<String>,
}

/// `POST /connections/delete` with `name`: removes a database connection.
pub async fn delete(State(state): State<ApiState>, UiForm(form): UiForm<NameForm>) -> Result<Response, ApiError> {
    let name = form.name.trim();
    let mut transaction = state.db.begin().await?;
    let deleted = stored::delete(&mut transaction, name).await;
    if deleted.is_ok() {
        transaction.commit().await?;
    } else {
        drop(transaction);
    }
    let outside = Connections::from_sources(
        state.config.environment.vars(),
        &state.config.connections,
        Vec::new(),
        state.config.folder.clone(),
    );
    let elsewhere = outside.source(name);
    match deleted {
        Ok(()) => {
            let mut notice = format!("Deleted connection `{name}` from the database.");
            if let Some(source) = elsewhere {
                notice.push_str(&format!(" {} still defines it.", capitalized(&source.describe(name))));
            }
            let note = AuditNote::new().detail("connection_id", name.to_string());
            Ok((note, back_to(form.next.as_deref(), PAGE_URL, &notice)).into_response())
        }
        Err(StorageError::NotFound(_)) => Err(ApiError::NotFound(match elsewhere {
            Some(source) => format!(
                "Connection `{name}` is not in the database: it comes from {}, change it there.",
                source.describe(name)
            ),
            None => format!("There is no connection `{name}` in the database."),
        })),
        Err(error) => Err(error.into()),
    }
}

fn parse_source(text: &str) -> Result<ConnectionSource, ApiError> {
    match text {
        "env" => Ok(ConnectionSource::Env),
        "config" => Ok(ConnectionSource::Config),
        "database" => Ok(ConnectionSource::Database),
        other => Err(ApiError::BadRequest(format!(
            "unknown connection source `{other}`: use env, config or database"
        ))),
    }
}

/// `POST /connections/test` with `name` and `source`: connects once (databases: `SELECT 1`;
/// HTTP: a GET of the base URL) and shows the page with the outcome, redacted.
pub async fn test(State(state): State<ApiState>, UiForm(form): UiForm<NameForm>) -> Result<Response, ApiError> {
    if !state.config.test_connection {
        return Err(ApiError::Forbidden(
            crate::runtime::connection_probe::TESTING_DISABLED.to_string(),
        ));
    }
    let source = parse_source(&form.source)?;
    let name = form.name.trim();
    let sources = Sources::load(&state).await?;
    let outcome = match sources.find(name, source) {
        None => {
            return Err(ApiError::NotFound(format!(
                "There is no connection `{name}` in {}.",
                source.describe(name)
            )));
        }
        Some(Ok(connection)) => connection_probe::probe(connection, &state.config.folder).await,
        Some(Err(error)) => Err(error.to_string()),
    };
    let masker = Masker::new(&sources.used.passwords());
    let (ok, message) = match outcome {
        Ok(message) => (true, message),
        Err(message) => (false, message),
    };
    let extras = Extras {
        test: Some(TestResult {
            name: name.to_string(),
            source: source.as_str(),
            ok,
            message: masker.mask(&message),
        }),
        ..Extras::default()
    };
    render_with(&sources, extras, StatusCode::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn every_source_is_listed_the_strongest_used_and_no_password_is_shown() {
        let config = BTreeMap::from([(
            "warehouse".to_string(),
            Connection::from_url("warehouse", "postgres://cfg:cfg-pw@cfg-host/dw").unwrap(),
        )]);
        let database = vec![
            Ok(Connection::from_url("warehouse", "postgres://db:db-pw@db-host/dw?api_key=k-123").unwrap()),
            Err(UndecryptablePassword {
                conn_id: "old".to_string(),
                what: "password".to_string(),
                error: crate::secrets::DecryptError::WrongKey,
            }),
        ];
        let sources = Sources::new(
            env(&[
                ("WEIR_CONN_WAREHOUSE", "postgres://env:env-pw@env-host/dw"),
                ("WEIR_CONN_BROKEN", "postgres://u:raw-pw@host:notaport/db"),
            ]),
            &config,
            database,
            PathBuf::from("/srv"),
        );
        let rows = sources.rows();
        let summary: Vec<(&str, &str, bool, bool)> = rows
            .iter()
            .map(|row| {
                (
                    row.name.as_str(),
                    row.source,
                    row.shadowed_by.is_none(),
                    row.error.is_none(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("broken", "env", true, false),
                ("old", "database", true, false),
                ("warehouse", "env", true, true),
                ("warehouse", "config", false, true),
                ("warehouse", "database", false, true),
            ]
        );
        assert_eq!(
            rows[3].shadowed_by.as_deref(),
            Some("environment variable WEIR_CONN_WAREHOUSE")
        );
        assert_eq!(rows[4].password, Some("***"));
        assert_eq!(rows[4].extra.as_deref(), Some(r#"{"api_key":"***"}"#));
        assert!(rows[4].deletable && !rows[2].deletable);
        let shown = format!("{rows:?}");
        for secret in ["cfg-pw", "db-pw", "env-pw", "raw-pw", "k-123"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(
            sources
                .find("warehouse", ConnectionSource::Database)
                .is_some_and(|found| found.is_ok_and(|connection| connection.host.as_deref() == Some("db-host")))
        );
        assert!(sources.find("old", ConnectionSource::Env).is_none());
    }

    #[test]
    fn a_failed_form_gives_back_a_url_only_when_it_cannot_hold_a_secret() {
        let form = |conn_id: &str, url: &str| AddForm {
            conn_id: conn_id.to_string(),
            url: url.to_string(),
            description: String::new(),
            next: None,
        };
        let (problems, echo) = connection_of(&form("bad id", "postgres://u:pw-1@h/db")).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("Name: connection id `bad id` contains ` `"),
            "{problems:?}"
        );
        assert!(echo.url.is_empty() && echo.url_withheld);
        let (problems, echo) = connection_of(&form("", "db.internal")).unwrap_err();
        assert_eq!(problems.len(), 2, "every problem at once: {problems:?}");
        assert!(problems[1].starts_with("URL: the URL has no scheme"), "{problems:?}");
        assert_eq!(echo.url, "db.internal");
        let (_, echo) = connection_of(&form("x", "postgres://u:pw-2@h:port/db")).unwrap_err();
        assert!(echo.url.is_empty() && echo.url_withheld);
        let (_, echo) = connection_of(&form("bad id", "https://api.example.com/v1")).unwrap_err();
        assert_eq!(echo.url, "https://api.example.com/v1");
        assert!(!echo.url_withheld);
        let connection = connection_of(&form("ok", " postgres://u:pw@h/db ")).unwrap();
        assert_eq!(connection.password.as_deref(), Some("pw"));
        assert_eq!(connection.description, None);
    }
}
