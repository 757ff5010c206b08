//! The `weir` command line (§7): argument parsing and dispatch to the same library functions the
//! daemon uses. Exit codes: 0 success, 1 the thing asked for failed, 2 usage or configuration.

mod alerts;
mod audit;
mod backfills;
mod connections;
mod daemon;
mod dags;
pub mod output;
mod runs;
mod task_clear;
mod task_logs;
mod tasks;
mod users;
mod variables;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::daemon::Role;
use crate::daemon::encrypt_plain_secrets;
use crate::domain::dag::Dag;
use crate::domain::ids::DagId;
use crate::runtime::loader::{self, DagBag};
use crate::secrets::SecretsKey;
use crate::storage::Db;
use output::OutputFormat;

#[derive(Debug, Parser)]
#[command(
    name = "weir",
    version,
    about = "A workflow scheduler for ETL/ELT pipelines written as YAML DAG files"
)]
pub struct Cli {
    /// Config file (default ./config.toml; env WEIR_CONFIG).
    #[arg(long, global = true, env = "WEIR_CONFIG")]
    config: Option<PathBuf>,
    /// Colour in log lines: `auto` only on a terminal and without `NO_COLOR`.
    #[arg(long, global = true, value_enum, default_value_t)]
    color: crate::telemetry::ColorChoice,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Everything in one process: scheduler, local workers and web server.
    Serve,
    /// The scheduler and local workers only.
    Scheduler,
    /// The web server only, against the same database.
    Webserver,
    /// The metadata database.
    #[command(subcommand)]
    Db(DbCommand),
    /// DAG definitions and their runs.
    #[command(subcommand)]
    Dags(dags::DagsCommand),
    /// Recorded runs.
    #[command(subcommand)]
    Runs(runs::RunsCommand),
    /// Backfills: re-processing a range of logical dates.
    #[command(subcommand)]
    Backfills(backfills::BackfillsCommand),
    /// Task instances.
    #[command(subcommand)]
    Tasks(tasks::TasksCommand),
    /// Connections to databases and services, from env, config and the database.
    #[command(subcommand)]
    Connections(connections::ConnectionsCommand),
    /// Variables for templates (`{{ var.name }}`), from env and the database.
    #[command(subcommand)]
    Variables(variables::VariablesCommand),
    /// People who sign in to the API and the UI, and their roles.
    #[command(subcommand)]
    Users(users::UsersCommand),
    /// Alert deliveries, and checking a channel.
    #[command(subcommand)]
    Alerts(alerts::AlertsCommand),
    /// DAG files that failed to load, with line and column.
    ImportErrors {
        /// How to print: `table` for people, `json` with the REST API's field names for scripts.
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
}

#[derive(Debug, Subcommand)]
enum DbCommand {
    /// Creates or upgrades the schema.
    Migrate,
    /// Says whether the schema is current.
    Check,
    /// Deletes finished runs older than a date, with their task instances, attempts and logs.
    Clean {
        /// Runs whose logical date is before this date or time are removed.
        #[arg(long)]
        before: String,
        /// Only this DAG's runs.
        #[arg(long)]
        dag: Option<String>,
        /// Says what would be removed; removes nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// A failure with the exit code it deserves.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad usage or configuration: exit 2.
    #[error("{0}")]
    Usage(String),
    /// The thing asked for failed: exit 1.
    #[error("{0}")]
    Failed(String),
}

pub type CliResult = anyhow::Result<ExitCode>;

/// What every command can reach: the configuration, and the database on demand.
pub struct App {
    pub config: Config,
}

impl App {
    /// Opens the metadata database (see [`crate::daemon::open_database`]).
    pub async fn db(&self, migrate: bool) -> anyhow::Result<Db> {
        crate::daemon::open_database(&self.config, migrate).await
    }

    /// The secrets key: `[secrets] key`, else `<state_dir>/secret.key`, created on first use.
    pub fn secrets_key(&self) -> anyhow::Result<SecretsKey> {
        crate::daemon::secrets_key(&self.config).map_err(|error| CliError::Usage(error.to_string()).into())
    }

    /// Reads the DAG folder, as Airflow's CLI does, so DAG commands work without a daemon.
    pub fn load_dags(&self) -> DagBag {
        loader::load_folder(&self.config.dags_folder, &self.config.validation_context())
    }

    /// One DAG from the folder, or a clear error when it is missing or broken.
    pub fn dag(&self, dag_id: &str) -> anyhow::Result<std::sync::Arc<Dag>> {
        let bag = self.load_dags();
        find_dag(&bag, dag_id, &self.config.dags_folder)
    }
}

pub fn find_dag(bag: &DagBag, dag_id: &str, folder: &std::path::Path) -> anyhow::Result<std::sync::Arc<Dag>> {
    let parsed = DagId::parse(dag_id).map_err(|error| CliError::Usage(error.to_string()))?;
    if let Some(dag) = bag.get(&parsed) {
        return Ok(std::sync::Arc::clone(dag));
    }
    let broken: Vec<String> = bag
        .errors
        .iter()
        .filter(|error| error.path.file_stem().and_then(|stem| stem.to_str()) == Some(dag_id))
        .map(ToString::to_string)
        .collect();
    if broken.is_empty() {
        let known = bag.dags.keys().map(DagId::as_str);
        let hint = match crate::domain::suggest::closest(dag_id, known) {
            Some(nearest) => format!("did you mean `{nearest}`?"),
            None => "check the id with `weir dags list`".to_string(),
        };
        Err(CliError::Failed(format!("no DAG `{dag_id}` in {}: {hint}", folder.display())).into())
    } else {
        Err(CliError::Failed(format!("DAG `{dag_id}` does not load:\n{}", broken.join("\n"))).into())
    }
}

/// Parses the command line and runs the command; returns the process exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let config_path = cli.config.clone().unwrap_or_else(|| PathBuf::from("config.toml"));
    let config = match Config::load(&config_path, cli.config.is_some(), std::env::vars()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    let daemon = matches!(cli.command, Command::Serve | Command::Scheduler | Command::Webserver);
    crate::telemetry::init(&config, daemon, cli.color);
    for ignored in &config.ignored_overrides {
        tracing::warn!("{ignored}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    let app = App { config };
    match runtime.block_on(run(app, cli.command)) {
        Ok(code) => code,
        Err(error) => {
            let code = match error.downcast_ref::<CliError>() {
                Some(CliError::Usage(_)) => 2,
                _ => 1,
            };
            eprintln!("error: {error:#}");
            ExitCode::from(code)
        }
    }
}

async fn run(app: App, command: Command) -> CliResult {
    match command {
        Command::Serve => daemon::serve(&app, Role::All).await,
        Command::Scheduler => daemon::serve(&app, Role::Scheduler).await,
        Command::Webserver => daemon::serve(&app, Role::Webserver).await,
        Command::Db(DbCommand::Migrate) => {
            let db = Db::connect(&app.config.database_url).await?;
            db.migrate().await?;
            let status = db.schema_status().await?;
            println!("schema is at version {}", status.current);
            let mut connection = db.acquire().await?;
            let plain = crate::storage::connections::has_plain_passwords(&mut connection).await?
                || crate::storage::connections::has_plain_extras(&mut connection).await?
                || crate::storage::variables::has_plain_values(&mut connection).await?;
            drop(connection);
            // Only then is the key needed: migrating must not create a key file on its own.
            if plain {
                let encrypted = encrypt_plain_secrets(&db, &app.secrets_key()?).await?;
                println!(
                    "encrypted secrets stored in plain text: {} connection password(s), {} connection extra(s), {} variable(s)",
                    encrypted.passwords, encrypted.extras, encrypted.variables
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Db(DbCommand::Check) => {
            let db = Db::connect(&app.config.database_url).await?;
            let status = db.schema_status().await?;
            if status.current == status.required {
                println!("schema is current (version {})", status.current);
                Ok(ExitCode::SUCCESS)
            } else {
                println!(
                    "schema is at version {} but this weir needs {}: run `weir db migrate`",
                    status.current, status.required
                );
                Ok(ExitCode::from(1))
            }
        }
        Command::Db(DbCommand::Clean { before, dag, dry_run }) => {
            let cutoff = parse_time_arg(&before, app.config.timezone)?;
            let dag_id = dag
                .map(DagId::parse)
                .transpose()
                .map_err(|error| CliError::Usage(error.to_string()))?;
            let db = app.db(false).await?;
            let report = crate::runtime::operations::clean_history(
                &db,
                &app.config.logs_dir(),
                cutoff,
                dag_id.as_ref(),
                dry_run,
            )
            .await?;
            if !dry_run {
                let mut entry = audit::entry("db_clean")
                    .detail("before", output::time(cutoff))
                    .detail("runs", report.runs)
                    .detail("event_logs", report.event_logs);
                if let Some(dag_id) = &dag_id {
                    entry = entry.dag(dag_id.as_str());
                }
                audit::record(&db, entry).await;
            }
            let verb = if dry_run { "would remove" } else { "removed" };
            println!(
                "{verb} {} run(s), {} task instance(s), {} attempt(s), {} log folder(s), {} alert(s), {} dataset event(s) and {} audit log record(s) older than {}",
                report.runs,
                report.task_instances,
                report.attempts,
                report.log_folders,
                report.alerts,
                report.dataset_events,
                report.event_logs,
                output::time(cutoff)
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Dags(command) => dags::run(&app, command).await,
        Command::Runs(command) => runs::run(&app, command).await,
        Command::Backfills(command) => backfills::run(&app, command).await,
        Command::Tasks(command) => tasks::run(&app, command).await,
        Command::Connections(command) => connections::run(&app, command).await,
        Command::Variables(command) => variables::run(&app, command).await,
        Command::Alerts(command) => alerts::run(&app, command).await,
        Command::Users(command) => users::run(&app, command).await,
        Command::ImportErrors { output } => {
            let db = app.db(false).await?;
            let mut connection = db.acquire().await?;
            let errors = crate::storage::import_errors::list(&mut connection).await?;
            let rows: Vec<serde_json::Value> = errors
                .iter()
                .map(|error| {
                    serde_json::json!({
                        "filename": error.filename,
                        "line": error.line,
                        "column": error.column,
                        "message": error.message,
                        "timestamp": output::time(error.timestamp),
                    })
                })
                .collect();
            output::print_rows(output, &rows, &["filename", "line", "column", "message"]);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Parses a date or time given on the command line, in `timezone` when it has no offset.
pub fn parse_time_arg(text: &str, timezone: chrono_tz::Tz) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    crate::domain::dates::parse_date_in(text, timezone).map_err(|error| CliError::Usage(error.to_string()).into())
}

/// Parses one end of a date range given on the command line: a date alone covers that whole day
/// in `timezone` (see [`crate::domain::dates::parse_range_bound`]).
pub fn parse_range_arg(
    text: &str,
    timezone: chrono_tz::Tz,
    end: crate::domain::dates::RangeEnd,
) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    crate::domain::dates::parse_range_bound(text, timezone, end)
        .map_err(|error| CliError::Usage(error.to_string()).into())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// Every subcommand and argument under `command` that `--help` would show without a line.
    fn without_help(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for argument in command.get_arguments() {
            let id = argument.get_id().as_str();
            if argument.is_hide_set() || id == "help" || id == "version" {
                continue;
            }
            if argument.get_help().is_none() && argument.get_long_help().is_none() {
                missing.push(format!("{path} <{id}>"));
            }
        }
        for subcommand in command.get_subcommands() {
            let subpath = format!("{path} {}", subcommand.get_name());
            if subcommand.get_about().is_none() && subcommand.get_long_about().is_none() {
                missing.push(subpath.clone());
            }
            without_help(subcommand, &subpath, missing);
        }
    }

    #[test]
    fn every_command_and_argument_has_a_line_of_help() {
        let mut missing = Vec::new();
        without_help(&Cli::command(), "weir", &mut missing);
        assert!(missing.is_empty(), "without help text:\n{}", missing.join("\n"));
    }

    /// The long help of `weir <path>`, as `--help` prints it.
    fn help_of(path: &[&str]) -> String {
        let mut command = Cli::command();
        command.build();
        let mut found = &mut command;
        for name in path {
            found = found
                .find_subcommand_mut(name)
                .unwrap_or_else(|| panic!("no subcommand {name}"));
        }
        found.render_long_help().to_string()
    }

    #[test]
    fn arguments_with_a_fixed_set_of_values_list_them() {
        let backfill = help_of(&["dags", "backfill"]);
        assert!(backfill.contains("none, failed, completed"), "{backfill}");
        let runs = help_of(&["runs", "list"]);
        assert!(runs.contains("table") && runs.contains("json"), "{runs}");
        let serve = help_of(&["serve"]);
        assert!(
            serve.contains("auto") && serve.contains("always") && serve.contains("never"),
            "{serve}"
        );
    }

    #[test]
    fn help_names_no_internal_documents() {
        let mut command = Cli::command();
        command.build();
        let mut pending = vec![command];
        while let Some(mut command) = pending.pop() {
            let help = command.render_long_help().to_string();
            assert!(!help.contains('§') && !help.contains("SPEC"), "{help}");
            pending.extend(command.get_subcommands().cloned());
        }
    }
}
