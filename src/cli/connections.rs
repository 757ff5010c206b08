//! `weir connections add|get|list|delete|test` (§5.8): the database's connections, shown with
//! the ones from env `WEIR_CONN_<NAME>` and `[connections.<name>]`. Passwords are never printed.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::output::{self, OutputFormat};
use super::{App, CliError, CliResult};
use crate::domain::connection::{Connection, ConnectionFields, ExtraField, REDACTED, check_conn_id};
use crate::runtime::connection_probe;
use crate::runtime::connections::{ConnectionSource, Connections};
use crate::storage::connections::{self as stored, StoredConnection};

#[derive(Debug, Subcommand)]
pub enum ConnectionsCommand {
    /// Stores a connection in the database, its password encrypted with the secrets key.
    Add(AddArgs),
    /// One connection as tasks see it (the password shown as ***).
    Get {
        /// The connection's name.
        name: String,
        /// How to print: `table` for people, `json` with the REST API's field names for scripts.
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Every connection from env, config and the database, with its source.
    List {
        /// How to print: `table` for people, `json` with the REST API's field names for scripts.
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Removes a connection from the database.
    Delete {
        /// The connection's name.
        name: String,
    },
    /// Connects once (databases: SELECT 1; HTTP: a GET of the base URL); exit 1 if it fails.
    Test {
        /// The connection's name.
        name: String,
    },
}

#[derive(Args)]
pub struct AddArgs {
    /// The connection's name, as tasks write it (`conn: warehouse`).
    name: String,
    /// The whole connection as a URL, e.g. postgres://user:password@host:5432/db (percent-encode
    /// @ / : in the password); the other options override its parts.
    #[arg(long)]
    url: Option<String>,
    /// postgres, mysql, sqlite, http, https, ... (needed without --url).
    #[arg(long)]
    conn_type: Option<String>,
    /// The server's host name or address.
    #[arg(long)]
    host: Option<String>,
    /// The server's port.
    #[arg(long)]
    port: Option<u16>,
    /// The user name.
    #[arg(long)]
    login: Option<String>,
    /// Visible in the shell history and process list: prefer --password-stdin.
    #[arg(long)]
    password: Option<String>,
    /// Reads the password from the first line of standard input.
    #[arg(long, conflicts_with = "password")]
    password_stdin: bool,
    /// The database name (postgres, mysql) or the base path (http).
    #[arg(long)]
    schema: Option<String>,
    /// Driver options as a JSON object, e.g. '{"sslmode": "require"}'.
    #[arg(long)]
    extra: Option<String>,
    /// Free text shown in lists.
    #[arg(long)]
    description: Option<String>,
}

impl std::fmt::Debug for AddArgs {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Only the name: the URL, password and extra may all hold secrets.
        formatter
            .debug_struct("AddArgs")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

pub async fn run(app: &App, command: ConnectionsCommand) -> CliResult {
    match command {
        ConnectionsCommand::Add(args) => add(app, args).await,
        ConnectionsCommand::Get { name, output } => get(app, &name, output).await,
        ConnectionsCommand::List { output } => list(app, output).await,
        ConnectionsCommand::Delete { name } => delete(app, &name).await,
        ConnectionsCommand::Test { name } => test(app, &name).await,
    }
}

async fn add(app: &App, args: AddArgs) -> CliResult {
    check_conn_id(&args.name).map_err(CliError::Usage)?;
    let password = if args.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|error| CliError::Usage(format!("cannot read the password from standard input: {error}")))?;
        Some(line.trim_end_matches(['\r', '\n']).to_string())
    } else {
        args.password
    };
    let fields = ConnectionFields {
        url: args.url,
        conn_type: args.conn_type,
        host: args.host,
        port: args.port,
        schema: args.schema,
        login: args.login,
        password,
        extra: args.extra.map(ExtraField::Text),
        description: args.description,
    };
    let connection = Connection::from_fields(&args.name, fields).map_err(|error| CliError::Usage(error.to_string()))?;
    let key = app.secrets_key()?;
    let db = app.db(false).await?;
    let mut transaction = db.begin().await?;
    stored::insert(&mut transaction, &connection, &key)
        .await
        .map_err(|error| CliError::Failed(error.to_string()))?;
    transaction.commit().await?;
    let entry = super::audit::entry("post_connection").detail("connection_id", connection.conn_id.clone());
    super::audit::record(&db, entry).await;
    println!(
        "added connection `{}`: {}",
        connection.conn_id,
        connection.redacted_url(&app.config.folder)
    );
    let outside = outside_sources(app);
    if let Some(source) = outside.source(&connection.conn_id) {
        eprintln!(
            "note: {} defines `{}` too and takes precedence over the database",
            source.describe(&connection.conn_id),
            connection.conn_id
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The connections from env and config (no database, so no key is needed to show them).
fn outside_sources(app: &App) -> Connections {
    Connections::from_sources(
        app.config.environment.vars(),
        &app.config.connections,
        Vec::new(),
        app.config.folder.clone(),
    )
}

/// One row per connection per source, the one tasks use first; passwords as `***`.
async fn rows(app: &App) -> anyhow::Result<Vec<Value>> {
    let outside = outside_sources(app);
    let db = app.db(false).await?;
    let mut database = db.acquire().await?;
    let (from_database, _) = stored::list(&mut database, false, u32::MAX, 0).await?;
    let mut by_name: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for listed in outside.list() {
        let row = match listed.resolved {
            Ok(connection) => row(connection, connection.password.is_some(), listed.source),
            Err(reason) => json!({
                "conn_id": listed.name,
                "source": listed.source.as_str(),
                "error": reason,
            }),
        };
        by_name.entry(listed.name.to_string()).or_default().push(row);
    }
    for StoredConnection {
        connection,
        has_password,
    } in &from_database
    {
        let row = row(connection, *has_password, ConnectionSource::Database);
        by_name.entry(connection.conn_id.clone()).or_default().push(row);
    }
    let mut rows = Vec::new();
    for (_, mut found) in by_name {
        for (index, row) in found.iter_mut().enumerate() {
            row["used"] = Value::Bool(index == 0);
        }
        rows.extend(found);
    }
    Ok(rows)
}

fn row(connection: &Connection, has_password: bool, source: ConnectionSource) -> Value {
    let extra = connection.redacted_extra();
    json!({
        "conn_id": connection.conn_id,
        "conn_type": connection.conn_type,
        "host": connection.host,
        "port": connection.port,
        "schema": connection.schema,
        "login": connection.login,
        "password": has_password.then_some(REDACTED),
        "extra": (!extra.is_empty()).then_some(Value::Object(extra)),
        "description": connection.description,
        "source": source.as_str(),
        "error": Value::Null,
    })
}

async fn list(app: &App, output: OutputFormat) -> CliResult {
    let rows = rows(app).await?;
    output::print_rows(
        output,
        &rows,
        &[
            "conn_id",
            "conn_type",
            "host",
            "port",
            "schema",
            "login",
            "password",
            "source",
            "used",
        ],
    );
    if output == OutputFormat::Table {
        for row in rows.iter().filter(|row| row["error"].is_string()) {
            eprintln!(
                "connection `{}` ({}) cannot be used: {}",
                row["conn_id"].as_str().unwrap_or_default(),
                row["source"].as_str().unwrap_or_default(),
                row["error"].as_str().unwrap_or_default()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn get(app: &App, name: &str, output: OutputFormat) -> CliResult {
    let rows = rows(app).await?;
    let Some(found) = rows.iter().find(|row| row["conn_id"] == name).cloned() else {
        // Only for the message: every known name, and a close one if there is.
        let known: Vec<_> = rows
            .iter()
            .filter_map(|row| {
                let conn_id = row["conn_id"].as_str()?;
                Some(Ok(Connection {
                    conn_id: conn_id.to_string(),
                    ..Connection::default()
                }))
            })
            .collect();
        let all = Connections::from_sources(Vec::new(), &BTreeMap::new(), known, app.config.folder.clone());
        let error = all
            .require(name)
            .err()
            .map_or_else(|| format!("no connection `{name}`"), |error| error.to_string());
        return Err(CliError::Failed(error).into());
    };
    output::print_object(output, &found, || {
        let mut text = String::new();
        for field in [
            "conn_id",
            "conn_type",
            "host",
            "port",
            "schema",
            "login",
            "password",
            "extra",
            "description",
            "source",
            "error",
        ] {
            match &found[field] {
                Value::Null => {}
                Value::String(value) => text.push_str(&format!("{field}: {value}\n")),
                other => text.push_str(&format!("{field}: {other}\n")),
            }
        }
        text
    });
    Ok(ExitCode::SUCCESS)
}

async fn delete(app: &App, name: &str) -> CliResult {
    let db = app.db(false).await?;
    let mut transaction = db.begin().await?;
    let outside = outside_sources(app);
    match stored::delete(&mut transaction, name).await {
        Ok(()) => {
            transaction.commit().await?;
            super::audit::record(
                &db,
                super::audit::entry("delete_connection").detail("connection_id", name),
            )
            .await;
            println!("deleted connection `{name}` from the database");
            if let Some(source) = outside.source(name) {
                eprintln!("note: {} still defines `{name}`", source.describe(name));
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(crate::storage::StorageError::NotFound(message)) => Err(CliError::Failed(match outside.source(name) {
            Some(source) => format!(
                "connection `{name}` is not in the database: it comes from {}, change it there",
                source.describe(name)
            ),
            None => message,
        })
        .into()),
        Err(error) => Err(error.into()),
    }
}

async fn test(app: &App, name: &str) -> CliResult {
    let key = app.secrets_key()?;
    let db = app.db(false).await?;
    let mut database = db.acquire().await?;
    let connections = Connections::load(&mut database, &app.config, app.config.environment.vars(), &key).await?;
    drop(database);
    let connection = connections
        .require(name)
        .map_err(|error| CliError::Failed(error.to_string()))?;
    match connection_probe::probe(connection, connections.base_dir()).await {
        Ok(message) => {
            println!("OK {message}");
            Ok(ExitCode::SUCCESS)
        }
        Err(message) => {
            println!("FAILED {message}");
            Ok(ExitCode::from(1))
        }
    }
}
