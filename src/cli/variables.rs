//! `weir variables get|set|list|delete` (§5.8): the database's variables, shown with the ones
//! from env `WEIR_VAR_<NAME>`, which win as they do in templates.

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::{Value, json};

use super::output::{self, OutputFormat};
use super::{App, CliError, CliResult};
use crate::domain::secret::{REDACTED, is_secret_name};
use crate::runtime::attempt::variables_from_env;
use crate::storage::StorageError;
use crate::storage::variables::{self, Variable};

/// Longest variable key, as in the REST API.
const MAX_KEY_LENGTH: usize = 250;

#[derive(Debug, Subcommand)]
pub enum VariablesCommand {
    /// Prints a variable's value as templates see it (env WEIR_VAR_<KEY> first); exit 1 if missing.
    Get {
        /// The variable's name.
        key: String,
    },
    /// Creates or replaces a variable in the database.
    Set {
        /// The variable's name.
        key: String,
        /// Its value (text; templates read JSON with `var.json.<key>`).
        value: String,
        /// Free text shown in lists.
        #[arg(long)]
        description: Option<String>,
    },
    /// Every variable from env and the database; values of secret-named keys shown as ***.
    List {
        /// How to print: `table` for people, `json` with the REST API's field names for scripts.
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Removes a variable from the database.
    Delete {
        /// The variable's name.
        key: String,
    },
}

pub async fn run(app: &App, command: VariablesCommand) -> CliResult {
    match command {
        VariablesCommand::Get { key } => get(app, &key).await,
        VariablesCommand::Set {
            key,
            value,
            description,
        } => set(app, key, value, description).await,
        VariablesCommand::List { output } => list(app, output).await,
        VariablesCommand::Delete { key } => delete(app, &key).await,
    }
}

fn check_key(key: &str) -> Result<(), CliError> {
    let valid = !key.is_empty()
        && key.len() <= MAX_KEY_LENGTH
        && key
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(CliError::Usage(format!(
            "`{key}` is not a valid variable key: use 1 to {MAX_KEY_LENGTH} characters from A-Z a-z 0-9 _ . -"
        )))
    }
}

async fn get(app: &App, key: &str) -> CliResult {
    check_key(key)?;
    if let Some(value) = variables_from_env(app.config.environment.vars()).remove(key) {
        println!("{value}");
        return Ok(ExitCode::SUCCESS);
    }
    let db = app.db(false).await?;
    let mut connection = db.acquire().await?;
    match variables::get(&mut connection, key, &app.secrets_key()?).await? {
        Some(variable) => {
            println!("{}", variable.value);
            Ok(ExitCode::SUCCESS)
        }
        None => Err(CliError::Failed(format!(
            "no variable `{key}`: set it with `weir variables set {key} VALUE` or env WEIR_VAR_{}",
            key.to_uppercase()
        ))
        .into()),
    }
}

async fn set(app: &App, key: String, value: String, description: Option<String>) -> CliResult {
    check_key(&key)?;
    let db = app.db(false).await?;
    let variable = Variable {
        key,
        value,
        description,
    };
    let mut transaction = db.begin().await?;
    variables::set(&mut transaction, &variable, &app.secrets_key()?).await?;
    transaction.commit().await?;
    super::audit::record(
        &db,
        super::audit::entry("post_variable").detail("variable_key", variable.key.clone()),
    )
    .await;
    println!("set variable `{}`", variable.key);
    if variables_from_env(app.config.environment.vars()).contains_key(&variable.key) {
        eprintln!(
            "note: env WEIR_VAR_{} is set and takes precedence over the database",
            variable.key.to_uppercase()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn shown(key: &str, value: &str) -> String {
    if is_secret_name(key) {
        REDACTED.to_string()
    } else {
        value.to_string()
    }
}

async fn list(app: &App, output: OutputFormat) -> CliResult {
    let from_env = variables_from_env(app.config.environment.vars());
    let db = app.db(false).await?;
    let mut connection = db.acquire().await?;
    let (from_database, _) = variables::list(&mut connection, &app.secrets_key()?, false, u32::MAX, 0).await?;
    let mut rows: Vec<(String, Value)> = from_env
        .iter()
        .map(|(key, value)| {
            let row = json!({
                "key": key,
                "value": shown(key, value),
                "description": Value::Null,
                "source": "env",
                "used": true,
            });
            (key.clone(), row)
        })
        .collect();
    for variable in &from_database {
        let row = json!({
            "key": variable.key,
            "value": shown(&variable.key, &variable.value),
            "description": variable.description,
            "source": "database",
            "used": !from_env.contains_key(&variable.key),
        });
        rows.push((variable.key.clone(), row));
    }
    // By key, the one templates use first (a stable sort keeps env before the database).
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let rows: Vec<Value> = rows.into_iter().map(|(_, row)| row).collect();
    output::print_rows(output, &rows, &["key", "value", "description", "source", "used"]);
    Ok(ExitCode::SUCCESS)
}

async fn delete(app: &App, key: &str) -> CliResult {
    check_key(key)?;
    let db = app.db(false).await?;
    let mut transaction = db.begin().await?;
    match variables::delete(&mut transaction, key).await {
        Ok(()) => {
            transaction.commit().await?;
            super::audit::record(&db, super::audit::entry("delete_variable").detail("variable_key", key)).await;
            println!("deleted variable `{key}` from the database");
            Ok(ExitCode::SUCCESS)
        }
        Err(StorageError::NotFound(message)) => Err(CliError::Failed(message).into()),
        Err(error) => Err(error.into()),
    }
}
