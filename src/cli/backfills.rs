//! `weir dags backfill` and `weir backfills list|show|pause|resume|cancel` (§3.8, §7).

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::output::{self, OutputFormat};
use super::{App, CliError, CliResult, parse_range_arg};
use crate::domain::backfill::{BackfillState, Reprocess, check_something_to_do};
use crate::domain::dates::RangeEnd;
use crate::domain::ids::DagId;
use crate::runtime::operations::{self, BackfillRequest, OperationError};
use crate::storage::backfills::{self, Backfill};
use crate::storage::{self, Db};

#[derive(Debug, Args)]
pub struct BackfillArgs {
    /// The DAG whose scheduled runs are created or re-run.
    dag_id: String,
    /// First logical date, included: a date alone (2026-03-01) starts at that day's midnight in
    /// the DAG's time zone; a time (2026-03-01T03:00, or with an offset) is taken as given.
    #[arg(long)]
    from: String,
    /// Last logical date, included: a date alone (2026-03-31) runs through the end of that day in
    /// the DAG's time zone; a time is taken as given.
    #[arg(long)]
    to: String,
    /// Dates that already have a run: `none` skips them, `failed` re-runs the failed ones,
    /// `completed` re-runs every finished one.
    #[arg(long, default_value = "none", value_parser = clap::builder::PossibleValuesParser::new(Reprocess::NAMES))]
    reprocess: String,
    /// At most this many of the backfill's runs at once (they do not count against the DAG's own).
    #[arg(long, default_value_t = 10)]
    max_active_runs: u32,
    /// Newest dates first.
    #[arg(long)]
    reverse: bool,
    /// A JSON object given to every run as its `conf`, e.g. '{"region": "us"}'.
    #[arg(long)]
    conf: Option<String>,
    /// Lists every date and what would happen to it; creates nothing.
    #[arg(long)]
    dry_run: bool,
    /// Waits until the backfill ends, showing progress; exit 1 if any of its runs failed.
    #[arg(long)]
    wait: bool,
}

#[derive(Debug, Subcommand)]
pub enum BackfillsCommand {
    /// Backfills, newest first.
    List {
        /// Only this DAG's backfills.
        #[arg(long)]
        dag: Option<String>,
        /// How to print: `table` for people, `json` with the REST API's field names for scripts.
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// One backfill and its dates.
    Show {
        /// The backfill's id (see `weir backfills list`).
        id: i64,
        /// How to print: `table` for people, `json` with the REST API's field names for scripts.
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Starts no further runs until resumed; running ones finish.
    Pause {
        /// The backfill's id (see `weir backfills list`).
        id: i64,
    },
    /// Starts the dates of a paused backfill again.
    Resume {
        /// The backfill's id (see `weir backfills list`).
        id: i64,
    },
    /// Starts no further runs; running ones finish; unstarted ones are failed.
    Cancel {
        /// The backfill's id (see `weir backfills list`).
        id: i64,
    },
}

/// A backfill in the REST API's field names (§7 `backfills list`).
pub async fn backfill_view(db: &Db, backfill: &Backfill) -> anyhow::Result<Value> {
    let mut connection = db.acquire().await?;
    let (total, done) = backfills::progress(&mut connection, backfill.id).await?;
    Ok(json!({
        "id": backfill.id,
        "dag_id": backfill.dag_id.as_str(),
        "from_date": output::time(backfill.from_date),
        "to_date": output::time(backfill.to_date),
        "reprocess_behavior": backfill.reprocess.as_str(),
        "max_active_runs": backfill.max_active_runs,
        "run_backwards": backfill.run_backwards,
        "dag_run_conf": backfill.conf,
        "state": backfill.state.as_str(),
        "is_paused": backfill.state == BackfillState::Paused,
        "runs_total": total,
        "runs_done": done,
        "created_at": output::time(backfill.created_at),
        "updated_at": output::time(backfill.updated_at),
        "completed_at": output::opt_time(backfill.completed_at),
    }))
}

pub async fn create(app: &App, args: BackfillArgs) -> CliResult {
    let dag = app.dag(&args.dag_id)?;
    let timezone = dag.timetable.timezone;
    let conf = match &args.conf {
        Some(text) => {
            serde_json::from_str(text).map_err(|error| CliError::Usage(format!("--conf is not valid JSON: {error}")))?
        }
        None => Value::Null,
    };
    let request = BackfillRequest {
        from: parse_range_arg(&args.from, timezone, RangeEnd::Start)?,
        to: parse_range_arg(&args.to, timezone, RangeEnd::End)?,
        reprocess: args
            .reprocess
            .parse::<Reprocess>()
            .map_err(|error| CliError::Usage(error.to_string()))?,
        max_active_runs: args.max_active_runs,
        reverse: args.reverse,
        conf,
        max_dates: app.config.max_backfill_dates,
    };
    let db = app.db(false).await?;
    if args.dry_run {
        let dates = operations::plan_backfill(&db, &dag, &request).await.map_err(refused)?;
        for date in &dates {
            let what = match (date.action, &date.reason) {
                (crate::domain::backfill::DateAction::Create, _) => "new run".to_string(),
                (crate::domain::backfill::DateAction::Rerun, _) => {
                    format!("re-run {}", date.existing_run_id.as_deref().unwrap_or_default())
                }
                (crate::domain::backfill::DateAction::Skip, reason) => {
                    format!("skipped: {}", reason.as_deref().unwrap_or("a run exists"))
                }
            };
            println!("{}  {what}", output::time(date.run.logical_date));
        }
        println!("{} date(s); nothing created (dry run)", dates.len());
        if let Err(refusal) = check_something_to_do(&dates, request.reprocess) {
            println!("{refusal}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let backfill = operations::create_backfill(&db, &dag, &request)
        .await
        .map_err(refused)?;
    let entry = super::audit::entry("create_backfill")
        .dag(backfill.dag_id.as_str())
        .detail("backfill_id", backfill.id);
    super::audit::record(&db, entry).await;
    let (total, _) = {
        let mut connection = db.acquire().await?;
        backfills::progress(&mut connection, backfill.id).await?
    };
    println!(
        "created backfill {} of {}: {total} run(s) to go",
        backfill.id, backfill.dag_id
    );
    if !args.wait {
        return Ok(ExitCode::SUCCESS);
    }
    wait(&db, backfill.id).await
}

/// A request the operation refuses (a range too long, dates out of range, bad conf) is a usage
/// error: exit 2.
fn refused(error: OperationError) -> anyhow::Error {
    match error {
        OperationError::Invalid(message) => CliError::Usage(message).into(),
        other => other.into(),
    }
}

/// Follows a backfill to its end: a progress bar on a terminal, a line per change otherwise.
async fn wait(db: &Db, id: i64) -> CliResult {
    let terminal = std::io::stdout().is_terminal();
    let mut last_shown = None;
    loop {
        let mut connection = db.acquire().await?;
        let backfill = backfills::get(&mut connection, id)
            .await?
            .ok_or_else(|| CliError::Failed(format!("backfill {id} vanished")))?;
        let (total, done) = backfills::progress(&mut connection, id).await?;
        drop(connection);
        if last_shown != Some((done, backfill.state)) {
            if terminal {
                let width = 30usize;
                let filled = if total == 0 {
                    width
                } else {
                    width * done as usize / total as usize
                };
                print!(
                    "\r[{}{}] {done}/{total} runs done ({})",
                    "#".repeat(filled),
                    " ".repeat(width - filled),
                    backfill.state
                );
                let _ = std::io::stdout().flush();
            } else {
                println!("{done}/{total} runs done ({})", backfill.state);
            }
            last_shown = Some((done, backfill.state));
        }
        if !backfill.state.is_active() {
            if terminal {
                println!();
            }
            let mut connection = db.acquire().await?;
            let failed = failed_runs(&mut connection, id).await?;
            println!("backfill {id} {}; {failed} run(s) failed", backfill.state);
            return Ok(if failed == 0 && backfill.state == BackfillState::Completed {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            });
        }
        // Another process (the scheduler) makes the progress; the database is the channel.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn failed_runs(connection: &mut sqlx::AnyConnection, id: i64) -> anyhow::Result<usize> {
    let dates = backfills::dates(connection, id).await?;
    let mut failed = 0;
    for date in dates {
        if let Some(pk) = date.run_pk
            && storage::runs::get_by_pk(connection, pk)
                .await?
                .is_some_and(|run| run.state == crate::domain::state::RunState::Failed)
        {
            failed += 1;
        }
    }
    Ok(failed)
}

pub async fn run(app: &App, command: BackfillsCommand) -> CliResult {
    let db = app.db(false).await?;
    match command {
        BackfillsCommand::List { dag, output } => {
            let dag_id = dag
                .map(DagId::parse)
                .transpose()
                .map_err(|error| CliError::Usage(error.to_string()))?;
            let mut connection = db.acquire().await?;
            let all = backfills::list(&mut connection, dag_id.as_ref(), None).await?;
            drop(connection);
            let mut rows = Vec::new();
            for backfill in &all {
                rows.push(backfill_view(&db, backfill).await?);
            }
            output::print_rows(
                output,
                &rows,
                &[
                    "id",
                    "dag_id",
                    "from_date",
                    "to_date",
                    "reprocess_behavior",
                    "state",
                    "runs_total",
                    "runs_done",
                ],
            );
        }
        BackfillsCommand::Show { id, output } => {
            let mut connection = db.acquire().await?;
            let backfill = backfills::get(&mut connection, id)
                .await?
                .ok_or_else(|| CliError::Failed(format!("there is no backfill with id {id}")))?;
            let dates = backfills::dates(&mut connection, id).await?;
            let mut date_rows = Vec::new();
            for date in &dates {
                let run = match date.run_pk {
                    Some(pk) => storage::runs::get_by_pk(&mut connection, pk).await?,
                    None => None,
                };
                date_rows.push(json!({
                    "logical_date": output::time(date.logical_date),
                    "action": date.action.as_str(),
                    "dag_run_id": run.as_ref().map(|run| run.run_id.to_string()),
                    "state": run.as_ref().map(|run| run.state.as_str()),
                    "reason": date.reason,
                }));
            }
            drop(connection);
            let mut view = backfill_view(&db, &backfill).await?;
            view["dates"] = Value::Array(date_rows.clone());
            output::print_object(output, &view, || {
                let mut text = format!(
                    "backfill {} of {}: {} to {}, reprocess {}, {} ({}/{} runs done)\n\n",
                    backfill.id,
                    backfill.dag_id,
                    view["from_date"].as_str().unwrap_or_default(),
                    view["to_date"].as_str().unwrap_or_default(),
                    backfill.reprocess,
                    backfill.state,
                    view["runs_done"],
                    view["runs_total"]
                );
                text.push_str(&output::table(
                    &date_rows,
                    &["logical_date", "action", "dag_run_id", "state", "reason"],
                ));
                text
            });
        }
        BackfillsCommand::Pause { id } => change(&db, id, BackfillState::Paused).await?,
        BackfillsCommand::Resume { id } => change(&db, id, BackfillState::Running).await?,
        BackfillsCommand::Cancel { id } => change(&db, id, BackfillState::Cancelled).await?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn change(db: &Db, id: i64, to: BackfillState) -> anyhow::Result<()> {
    let backfill = operations::change_backfill(db, id, to).await?;
    let event = match to {
        BackfillState::Paused => "pause_backfill",
        BackfillState::Running => "unpause_backfill",
        _ => "cancel_backfill",
    };
    let entry = super::audit::entry(event)
        .dag(backfill.dag_id.as_str())
        .detail("backfill_id", backfill.id);
    super::audit::record(db, entry).await;
    println!("backfill {} is {}", backfill.id, backfill.state);
    Ok(())
}
