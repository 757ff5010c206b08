//! `weir runs list|show`.

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::{Value, json};

use super::output::{self, OutputFormat};
use super::{App, CliError, CliResult};
use crate::domain::ids::{DagId, RunId};
use crate::domain::state::RunState;
use crate::storage::runs::{self, DagRun, RunFilter};

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// Runs, newest first.
    List {
        /// Only this DAG's runs (default every DAG's).
        dag_id: Option<String>,
        /// Only runs in this state: queued, running, success or failed.
        #[arg(long)]
        state: Option<String>,
        /// At most this many runs.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// How to print: `table` for people, `json` with the REST API's field names for scripts.
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Marks a whole run success or failed by hand (its unfinished tasks follow, as in Airflow).
    Mark {
        /// The DAG's id (its `dag_id`, which defaults to the file name without `.yaml`).
        dag_id: String,
        /// The run's id, e.g. manual__2026-03-01T00:00:00+00:00 (see `weir runs list DAG_ID`).
        run_id: String,
        /// The state to set.
        state: super::tasks::MarkState,
    },
    /// One run and its task states.
    Show {
        /// The DAG's id (its `dag_id`, which defaults to the file name without `.yaml`).
        dag_id: String,
        /// The run's id, e.g. manual__2026-03-01T00:00:00+00:00 (see `weir runs list DAG_ID`).
        run_id: String,
        /// How to print: `table` for people, `json` with the REST API's field names for scripts.
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
}

/// A run in the REST API's field names (§7).
pub fn run_view(run: &DagRun) -> Value {
    json!({
        "dag_id": run.dag_id.as_str(),
        "dag_run_id": run.run_id.as_str(),
        "run_type": run.run_type.as_str(),
        "state": run.state.as_str(),
        "logical_date": output::time(run.logical_date),
        "data_interval_start": output::time(run.data_interval_start),
        "data_interval_end": output::time(run.data_interval_end),
        "run_after": output::time(run.run_after),
        "queued_at": output::opt_time(run.queued_at),
        "start_date": output::opt_time(run.start_date),
        "end_date": output::opt_time(run.end_date),
        "conf": run.conf,
        "backfill_id": run.backfill_id,
    })
}

pub fn parse_ids(dag_id: &str, run_id: &str) -> anyhow::Result<(DagId, RunId)> {
    let dag_id = DagId::parse(dag_id).map_err(|error| CliError::Usage(error.to_string()))?;
    let run_id = RunId::parse(run_id).map_err(|error| CliError::Usage(error.to_string()))?;
    Ok((dag_id, run_id))
}

pub async fn find_run(connection: &mut sqlx::AnyConnection, dag_id: &DagId, run_id: &RunId) -> anyhow::Result<DagRun> {
    runs::get(connection, dag_id, run_id).await?.ok_or_else(|| {
        CliError::Failed(format!(
            "DAG `{dag_id}` has no run `{run_id}`: see `weir runs list {dag_id}`"
        ))
        .into()
    })
}

pub async fn run(app: &App, command: RunsCommand) -> CliResult {
    match command {
        RunsCommand::List {
            dag_id,
            state,
            limit,
            output,
        } => {
            let dag_id = dag_id
                .map(DagId::parse)
                .transpose()
                .map_err(|error| CliError::Usage(error.to_string()))?;
            let states = state
                .map(|state| state.parse::<RunState>())
                .transpose()
                .map_err(|error| CliError::Usage(error.to_string()))?
                .into_iter()
                .collect();
            let db = app.db(false).await?;
            let mut connection = db.acquire().await?;
            let filter = RunFilter {
                dag_id,
                states,
                owner: None,
                limit: Some(limit),
                newest_first: true,
                ..RunFilter::default()
            };
            let rows: Vec<Value> = runs::list(&mut connection, &filter)
                .await?
                .iter()
                .map(run_view)
                .collect();
            output::print_rows(
                output,
                &rows,
                &[
                    "dag_id",
                    "dag_run_id",
                    "run_type",
                    "state",
                    "logical_date",
                    "start_date",
                    "end_date",
                ],
            );
            Ok(ExitCode::SUCCESS)
        }
        RunsCommand::Mark { dag_id, run_id, state } => {
            let (dag_id, run_id) = parse_ids(&dag_id, &run_id)?;
            let state = match state {
                super::tasks::MarkState::Success => RunState::Success,
                super::tasks::MarkState::Failed => RunState::Failed,
            };
            let db = app.db(false).await?;
            let run = crate::runtime::operations::set_run_state(&db, &dag_id, &run_id, state).await?;
            let entry = super::audit::entry("patch_dag_run")
                .dag(run.dag_id.as_str())
                .run(run.run_id.as_str())
                .detail("state", state.as_str());
            super::audit::record(&db, entry).await;
            println!("{} {} marked {}", run.dag_id, run.run_id, run.state);
            Ok(ExitCode::SUCCESS)
        }
        RunsCommand::Show { dag_id, run_id, output } => {
            let (dag_id, run_id) = parse_ids(&dag_id, &run_id)?;
            let db = app.db(false).await?;
            let mut connection = db.acquire().await?;
            let run = find_run(&mut connection, &dag_id, &run_id).await?;
            drop(connection);
            let view = run_view(&run);
            if output == OutputFormat::Json {
                output::print_object(output, &view, String::new);
            } else {
                for key in [
                    "dag_id",
                    "dag_run_id",
                    "run_type",
                    "state",
                    "logical_date",
                    "data_interval_start",
                    "data_interval_end",
                    "start_date",
                    "end_date",
                    "conf",
                ] {
                    println!(
                        "{key:<20} {}",
                        view.get(key)
                            .map(|value| value.as_str().map_or_else(|| value.to_string(), str::to_string))
                            .unwrap_or_default()
                    );
                }
                println!();
                super::tasks::print_states(&db, &run, OutputFormat::Table).await?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
