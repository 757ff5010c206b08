//! `weir tasks ...`: test, render, states, logs, why, clear (`task_clear.rs`), mark.

use std::collections::HashMap;
use std::process::ExitCode;

use chrono::Utc;
use clap::Subcommand;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::output::{self, OutputFormat};
use super::runs::{find_run, parse_ids};
use super::{App, CliError, CliResult, parse_time_arg};
use crate::domain::dag::{Dag, Operator};
use crate::domain::ids::TaskId;
use crate::domain::planner::{self, Candidate};
use crate::domain::state::{RunState, RunType, TaskState};
use crate::runtime::attempt::{self, attempt_env, render_fields, template_context};
use crate::runtime::builtin::{BuiltinAttempt, run_builtin};
use crate::runtime::connections::{Resolved, SecretSources};
use crate::runtime::executor::{AttemptKey, AttemptResult, run_shell_attempt};
use crate::runtime::operations;
use crate::runtime::process::ShellAttempt;
use crate::runtime::scheduler::connection_urls;
use crate::runtime::scheduler::{capacity, run_snapshot};
use crate::runtime::task_log::{LogPath, LogReader};
use crate::storage::runs::{self, DagRun};
use crate::storage::task_instances;
use crate::storage::{self, Db};

#[derive(Debug, Subcommand)]
pub enum TasksCommand {
    /// Runs one task now, without recording anything; prints its log.
    Test {
        /// The DAG's id (its `dag_id`, which defaults to the file name without `.yaml`).
        dag_id: String,
        /// The task's id within the DAG.
        task_id: String,
        /// The logical date (default now), read in the DAG's time zone unless it has an offset.
        logical_date: Option<String>,
    },
    /// The task's templated fields, rendered for a logical date.
    Render {
        /// The DAG's id (its `dag_id`, which defaults to the file name without `.yaml`).
        dag_id: String,
        /// The task's id within the DAG.
        task_id: String,
        /// The logical date (default now), read in the DAG's time zone unless it has an offset.
        logical_date: Option<String>,
    },
    /// The task instances of a run.
    States {
        /// The DAG's id (its `dag_id`, which defaults to the file name without `.yaml`).
        dag_id: String,
        /// The run's id, e.g. manual__2026-03-01T00:00:00+00:00 (see `weir runs list DAG_ID`).
        run_id: String,
        /// How to print: `table` for people, `json` with the REST API's field names for scripts.
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// An attempt's log (the latest unless --try).
    Logs {
        /// The DAG's id (its `dag_id`, which defaults to the file name without `.yaml`).
        dag_id: String,
        /// The run's id, e.g. manual__2026-03-01T00:00:00+00:00 (see `weir runs list DAG_ID`).
        run_id: String,
        /// The task's id within the DAG.
        task_id: String,
        /// The try to show (1 is the first attempt).
        #[arg(long = "try")]
        try_number: Option<u32>,
        /// Keeps printing while the attempt runs.
        #[arg(long)]
        follow: bool,
    },
    /// Why a task is not running yet: each unmet condition.
    Why {
        /// The DAG's id (its `dag_id`, which defaults to the file name without `.yaml`).
        dag_id: String,
        /// The run's id, e.g. manual__2026-03-01T00:00:00+00:00 (see `weir runs list DAG_ID`).
        run_id: String,
        /// The task's id within the DAG.
        task_id: String,
    },
    /// Sets task instances back to `none` so they run again (history kept, retries renewed).
    ///
    /// Without --run every run of the DAG is matched (or those within --from/--to); when more than
    /// one run is matched, the count is shown and --yes (or a yes at the terminal) is needed.
    Clear {
        /// The DAG's id (its `dag_id`, which defaults to the file name without `.yaml`).
        dag_id: String,
        /// Only tasks whose id matches this regular expression.
        #[arg(long)]
        task: Option<String>,
        /// Only this run (its run id); without it, every run of the DAG in the date range.
        #[arg(long, conflicts_with_all = ["from", "to"])]
        run: Option<String>,
        /// Runs with logical date on or after this one (a date alone: from the start of that day,
        /// in the DAG's time zone).
        #[arg(long)]
        from: Option<String>,
        /// Runs with logical date on or before this one (a date alone: through the end of that
        /// day, in the DAG's time zone).
        #[arg(long)]
        to: Option<String>,
        /// Also everything downstream of the matched tasks.
        #[arg(long)]
        downstream: bool,
        /// Only failed and upstream_failed task instances.
        #[arg(long)]
        only_failed: bool,
        /// Lists what would be cleared, changes nothing.
        #[arg(long)]
        dry_run: bool,
        /// Clears without asking when more than one run is matched (otherwise a terminal asks
        /// and anything else refuses, naming the count).
        #[arg(long)]
        yes: bool,
    },
    /// Marks a task instance success or failed by hand.
    Mark {
        /// The DAG's id (its `dag_id`, which defaults to the file name without `.yaml`).
        dag_id: String,
        /// The run's id, e.g. manual__2026-03-01T00:00:00+00:00 (see `weir runs list DAG_ID`).
        run_id: String,
        /// The task's id within the DAG.
        task_id: String,
        /// The state to set.
        state: MarkState,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MarkState {
    /// Succeeded, as if it had run.
    Success,
    /// Failed, as if it had run.
    Failed,
}

pub async fn run(app: &App, command: TasksCommand) -> CliResult {
    match command {
        TasksCommand::Test {
            dag_id,
            task_id,
            logical_date,
        } => test(app, &dag_id, &task_id, logical_date.as_deref()).await,
        TasksCommand::Render {
            dag_id,
            task_id,
            logical_date,
        } => render(app, &dag_id, &task_id, logical_date.as_deref()).await,
        TasksCommand::States { dag_id, run_id, output } => {
            let (dag_id, run_id) = parse_ids(&dag_id, &run_id)?;
            let db = app.db(false).await?;
            let mut connection = db.acquire().await?;
            let run = find_run(&mut connection, &dag_id, &run_id).await?;
            drop(connection);
            print_states(&db, &run, output).await?;
            Ok(ExitCode::SUCCESS)
        }
        TasksCommand::Logs {
            dag_id,
            run_id,
            task_id,
            try_number,
            follow,
        } => super::task_logs::logs(app, &dag_id, &run_id, &task_id, try_number, follow).await,
        TasksCommand::Why {
            dag_id,
            run_id,
            task_id,
        } => why(app, &dag_id, &run_id, &task_id).await,
        TasksCommand::Clear {
            dag_id,
            task,
            run,
            from,
            to,
            downstream,
            only_failed,
            dry_run,
            yes,
        } => {
            let selection = super::task_clear::ClearSelection {
                task,
                run,
                from,
                to,
                downstream,
                only_failed,
            };
            super::task_clear::clear(app, &dag_id, &selection, dry_run, yes).await
        }
        TasksCommand::Mark {
            dag_id,
            run_id,
            task_id,
            state,
        } => mark(app, &dag_id, &run_id, &task_id, state).await,
    }
}

fn task_of<'a>(dag: &'a Dag, task_id: &str) -> anyhow::Result<&'a crate::domain::dag::Task> {
    dag.task(task_id).ok_or_else(|| {
        let known: Vec<&str> = dag.tasks.iter().map(|task| task.task_id.as_str()).collect();
        CliError::Failed(format!(
            "DAG `{}` has no task `{task_id}`; its tasks are {}",
            dag.dag_id,
            known.join(", ")
        ))
        .into()
    })
}

/// A run that exists only in memory, for `tasks test` and `tasks render`: the scheduled interval
/// when the date is a scheduled logical date, else a manual one.
fn pretend_run(dag: &Dag, logical_date: Option<&str>) -> anyhow::Result<DagRun> {
    let logical_date = match logical_date {
        Some(text) => parse_time_arg(text, dag.timetable.timezone)?,
        None => Utc::now(),
    };
    let scheduled = dag
        .timetable
        .runs_between(logical_date, logical_date)
        .into_iter()
        .next();
    let (run_type, interval) = match scheduled {
        Some(planned) => (RunType::Scheduled, planned.data_interval),
        None => (RunType::Manual, dag.timetable.manual_interval(logical_date)),
    };
    let conf = dag
        .params
        .resolve(&Value::Null)
        .map_err(|error| CliError::Failed(error.to_string()))?;
    Ok(DagRun {
        pk: 0,
        dag_id: dag.dag_id.clone(),
        run_id: runs::generated_run_id(run_type, logical_date),
        run_type,
        state: RunState::Running,
        logical_date,
        data_interval_start: interval.start,
        data_interval_end: interval.end,
        run_after: logical_date,
        queued_at: None,
        start_date: None,
        end_date: None,
        conf: Value::Object(conf),
        owner: None,
        backfill_id: None,
    })
}

async fn render(app: &App, dag_id: &str, task_id: &str, logical_date: Option<&str>) -> CliResult {
    let dag = app.dag(dag_id)?;
    let task = task_of(&dag, task_id)?;
    let run = pretend_run(&dag, logical_date)?;
    let (resolved, fields) = render_for_cli(app, &dag, task, &run).await?;
    let secrets = attempt::secrets(&resolved.variables, &task.env, &resolved.passwords);
    let mask = |text: &str| crate::runtime::masking::mask_secrets(text, &secrets);
    println!(
        "# {}.{} ({}) for logical date {}",
        dag.dag_id,
        task_id,
        task.operator.type_name(),
        output::time(run.logical_date)
    );
    for (name, value) in fields.operator.templated_fields() {
        println!("{name}: {}", mask(&value));
    }
    for (name, value) in &fields.env {
        println!("env.{name}: {}", mask(value));
    }
    Ok(ExitCode::SUCCESS)
}

/// The most a `weir tasks test` attempt logs: the log is printed, so it needs no daemon's cap.
const TEST_MAX_LOG_BYTES: u64 = 64 * 1024 * 1024;

async fn test(app: &App, dag_id: &str, task_id: &str, logical_date: Option<&str>) -> CliResult {
    let dag = app.dag(dag_id)?;
    let task = task_of(&dag, task_id)?;
    let run = pretend_run(&dag, logical_date)?;
    let (resolved, fields) = render_for_cli(app, &dag, task, &run).await?;
    let scratch = tempfile::tempdir()?;
    let log = LogPath::new(scratch.path(), &dag.dag_id, &run.run_id, &task.task_id, 1);
    let output_file = log.output();
    let secrets = attempt::secrets(&resolved.variables, &task.env, &resolved.passwords);
    let key = AttemptKey {
        run_pk: 0,
        task_id: task.task_id.clone(),
        try_number: 1,
    };
    let (events, _ignored) = tokio::sync::mpsc::unbounded_channel();
    let result = match &fields.operator {
        Operator::Shell {
            command,
            cwd,
            skip_exit_code,
        } => {
            let cwd = cwd.as_ref().map_or_else(|| dag.folder(), |cwd| dag.folder().join(cwd));
            let attempt = ShellAttempt {
                command: command.clone(),
                cwd,
                env: attempt_env(&run, &dag, task_id, 1, &fields.env, &output_file),
                timeout: task.timeout,
                kill_grace: app.config.task_kill_grace,
                log_path: log.clone(),
                secrets,
                max_log_bytes: TEST_MAX_LOG_BYTES,
                exit_record_path: None,
            };
            run_shell_attempt(
                &key,
                &attempt,
                *skip_exit_code,
                &output_file,
                &events,
                CancellationToken::new(),
            )
            .await
        }
        operator => {
            let bag = app.load_dags();
            let target_dag = match operator {
                Operator::TriggerDag(trigger) => crate::domain::ids::DagId::parse(trigger.dag_id.clone())
                    .ok()
                    .and_then(|target| bag.get(&target).cloned()),
                _ => None,
            };
            let attempt = BuiltinAttempt {
                operator: operator.clone(),
                connections: connection_urls(operator, &resolved.connections).map_err(CliError::Failed)?,
                log_path: log.clone(),
                secrets,
                max_log_bytes: TEST_MAX_LOG_BYTES,
                timeout: task.timeout,
                folder: dag.folder(),
                db: app.db(false).await?,
                dag_id: dag.dag_id.clone(),
                run_id: run.run_id.clone(),
                task_id: task.task_id.clone(),
                logical_date: run.logical_date,
                first_poke: Utc::now(),
                target_dag,
            };
            // A sensor is poked until it is done, as the scheduler would.
            loop {
                match run_builtin(&attempt, CancellationToken::new()).await {
                    AttemptResult::Reschedule { at } => {
                        tokio::time::sleep((at - Utc::now()).to_std().unwrap_or_default()).await;
                    }
                    result => break result,
                }
            }
        }
    };
    super::task_logs::print_log(&LogReader::file(&log)).await?;
    let ok = match result {
        AttemptResult::Success { output } => {
            if let Some(output) = output {
                println!("output: {output}");
            }
            true
        }
        AttemptResult::Skipped => {
            println!("task would be skipped");
            true
        }
        AttemptResult::Failed { error, .. } => {
            println!("task failed: {error}");
            false
        }
        AttemptResult::Reschedule { .. } | AttemptResult::Interrupted | AttemptResult::CrashEnded { .. } => false,
    };
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Connections and variables from every source, and the task's fields rendered with them for a
/// first try, as the scheduler would render them.
async fn render_for_cli(
    app: &App,
    dag: &Dag,
    task: &crate::domain::dag::Task,
    run: &DagRun,
) -> anyhow::Result<(Resolved, attempt::RenderedFields)> {
    let resolved = resolve_secrets(app).await?;
    let context = template_context(
        dag,
        run,
        task.task_id.as_str(),
        1,
        &HashMap::new(),
        &resolved.variables,
        &resolved.connections.template_context(),
    );
    let fields = render_fields(task, &dag.folder(), &context).map_err(|error| CliError::Failed(error.to_string()))?;
    Ok((resolved, fields))
}

/// Connections and variables from every source, as the scheduler would resolve them.
async fn resolve_secrets(app: &App) -> anyhow::Result<Resolved> {
    let db = app.db(false).await?;
    let mut connection = db.acquire().await?;
    let sources = SecretSources::from_config(&app.config, app.secrets_key()?);
    Ok(sources.resolve(&mut connection).await?)
}

fn seconds_between(start: Option<chrono::DateTime<Utc>>, end: Option<chrono::DateTime<Utc>>) -> Value {
    match (start, end) {
        (Some(start), Some(end)) => json!(((end - start).num_microseconds().unwrap_or(0) as f64) / 1_000_000.0),
        _ => Value::Null,
    }
}

/// Prints a run's task instances (§7 `tasks states` fields).
pub async fn print_states(db: &Db, run: &DagRun, format: OutputFormat) -> anyhow::Result<()> {
    let mut connection = db.acquire().await?;
    let instances = task_instances::for_run(&mut connection, run.pk).await?;
    let rows: Vec<Value> = instances
        .iter()
        .map(|ti| {
            json!({
                "dag_id": ti.dag_id.as_str(),
                "dag_run_id": ti.run_id.as_str(),
                "task_id": ti.task_id.as_str(),
                "state": ti.state.as_str(),
                "try_number": ti.try_number,
                "max_tries": ti.max_tries,
                "start_date": output::opt_time(ti.start_date),
                "end_date": output::opt_time(ti.end_date),
                "duration": seconds_between(ti.start_date, ti.end_date),
                "pool": ti.pool,
                "hostname": ti.hostname,
                "pid": ti.pid,
            })
        })
        .collect();
    output::print_rows(
        format,
        &rows,
        &["task_id", "state", "try_number", "start_date", "end_date", "duration"],
    );
    Ok(())
}

async fn why(app: &App, dag_id: &str, run_id: &str, task_id: &str) -> CliResult {
    let dag = app.dag(dag_id)?;
    let task = task_of(&dag, task_id)?;
    let (dag_id, run_id) = parse_ids(dag_id, run_id)?;
    let db = app.db(false).await?;
    let mut connection = db.acquire().await?;
    let run = find_run(&mut connection, &dag_id, &run_id).await?;
    let mut reasons = Vec::new();
    match run.state {
        RunState::Queued => {
            let record = storage::dags::get(&mut connection, &dag_id).await?;
            if record.is_some_and(|record| record.is_paused) {
                reasons.push(format!(
                    "the DAG is paused: `weir dags unpause {dag_id}` lets its queued runs start"
                ));
            }
            let (_, running) = runs::count_active(&mut connection, &dag_id).await?;
            if running >= dag.max_active_runs {
                reasons.push(format!(
                    "max_active_runs reached: {running} of {} runs running",
                    dag.max_active_runs
                ));
            }
            reasons.push("the run is queued, not started yet".to_string());
        }
        state if state.is_finished() => reasons.push(format!("the run is {state}: clear the task to run it again")),
        _ => {}
    }
    let snapshot = run_snapshot(&mut connection, &dag, &run).await?;
    reasons.extend(planner::explain(&dag, &snapshot, &task.task_id, Utc::now()));
    let state = snapshot.tasks.get(&task.task_id).map(|ti| ti.state);
    if state == Some(TaskState::Scheduled) {
        let holders = task_instances::slot_holders(&mut connection).await?;
        let capacity = capacity(&holders, app.config.parallelism, &app.config.pools);
        let candidate = Candidate {
            key: (),
            run_key: run.pk,
            priority_weight: task.priority_weight,
            logical_date: run.logical_date,
            pool: task.pool.clone(),
            pool_slots: task.pool_slots,
            max_active_tasks: dag.max_active_tasks,
        };
        let blockers = planner::capacity_blockers(&candidate, &capacity);
        if blockers.is_empty() {
            reasons.push("a slot is free: is the scheduler (`weir serve`) running?".to_string());
        }
        reasons.extend(blockers);
    }
    for reason in &reasons {
        println!("- {reason}");
    }
    Ok(ExitCode::SUCCESS)
}

async fn mark(app: &App, dag_id: &str, run_id: &str, task_id: &str, state: MarkState) -> CliResult {
    let (dag_id, run_id) = parse_ids(dag_id, run_id)?;
    let task_id = TaskId::parse(task_id).map_err(|error| CliError::Usage(error.to_string()))?;
    let db = app.db(false).await?;
    let state = match state {
        MarkState::Success => TaskState::Success,
        MarkState::Failed => TaskState::Failed,
    };
    operations::mark_task(&db, &dag_id, &run_id, &task_id, state).await?;
    let entry = super::audit::entry("patch_task_instance")
        .dag(dag_id.as_str())
        .run(run_id.as_str())
        .task(task_id.as_str())
        .detail("new_state", state.as_str());
    super::audit::record(&db, entry).await;
    println!("{dag_id} {run_id} {task_id} marked {state}");
    Ok(ExitCode::SUCCESS)
}
