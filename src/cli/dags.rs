//! `weir dags ...`: list, show, validate, next-runs, trigger, pause, unpause, test.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::Subcommand;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use super::output::{self, OutputFormat};
use super::{App, CliError, CliResult, parse_time_arg};
use crate::domain::dag::Dag;
use crate::domain::ids::DagId;
use crate::domain::liveness::SchedulerKind;
use crate::domain::state::RunState;
use crate::runtime::executor::LocalExecutor;
use crate::runtime::loader::{self, DagBag};
use crate::runtime::operations;
use crate::runtime::recovery::Registration;
use crate::runtime::scheduler::{Scheduler, SchedulerSettings};
use crate::storage::runs;
use crate::storage::{self, Db};

#[derive(Debug, Subcommand)]
pub enum DagsCommand {
    /// Every DAG in the folder, with the state the database holds.
    List {
        /// How to print: `table` for people, `json` with the REST API's field names for scripts.
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// One DAG's tasks and dependencies.
    Show {
        /// The DAG's id (its `dag_id`, which defaults to the file name without `.yaml`).
        dag_id: String,
        /// How to show it.
        #[arg(long, value_enum, default_value_t)]
        format: ShowFormat,
    },
    /// Checks DAG files (default: the whole folder); exit 1 if any is broken.
    Validate {
        /// DAG files to check; none means every file in the DAG folder.
        paths: Vec<PathBuf>,
    },
    /// The next runs the schedule will create after a time (default now).
    NextRuns {
        /// The DAG's id (its `dag_id`, which defaults to the file name without `.yaml`).
        dag_id: String,
        /// How many runs to list.
        #[arg(short = 'n', default_value_t = 5)]
        n: usize,
        /// List the runs after this date or time (default now), read in the DAG's time zone.
        #[arg(long)]
        after: Option<String>,
        /// How to print: `table` for people, `json` with the REST API's field names for scripts.
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Creates a manual run.
    Trigger {
        /// The DAG's id (its `dag_id`, which defaults to the file name without `.yaml`).
        dag_id: String,
        /// A JSON object given to the run as its `conf`, e.g. '{"region": "us"}'.
        #[arg(long)]
        conf: Option<String>,
        /// The run's logical date (default now), read in the DAG's time zone unless it has an offset.
        #[arg(long)]
        logical_date: Option<String>,
        /// The run's id (default `manual__<logical date>`).
        #[arg(long)]
        run_id: Option<String>,
        /// Waits for the run to finish; exit 1 if it fails.
        #[arg(long)]
        wait: bool,
    },
    /// Stops creating and starting the DAG's runs; running runs finish.
    Pause {
        /// The DAG's id (its `dag_id`, which defaults to the file name without `.yaml`).
        dag_id: String,
    },
    /// Lets the scheduler create and start the DAG's runs again.
    Unpause {
        /// The DAG's id (its `dag_id`, which defaults to the file name without `.yaml`).
        dag_id: String,
    },
    /// Runs one whole run in this process (recorded as a manual run); exit 0 on success.
    Test {
        /// The DAG's id (its `dag_id`, which defaults to the file name without `.yaml`).
        dag_id: String,
        /// The run's logical date (default now), read in the DAG's time zone unless it has an offset.
        logical_date: Option<String>,
    },
    /// Creates (or re-runs) the scheduled runs of a date range, as a backfill the scheduler drives.
    Backfill(super::backfills::BackfillArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum ShowFormat {
    /// Tasks and their dependencies as text.
    #[default]
    Text,
    /// The DAG as JSON.
    Json,
    /// A Graphviz graph.
    Dot,
    /// The graph as the UI draws it (laid out on the server).
    Svg,
}

pub async fn run(app: &App, command: DagsCommand) -> CliResult {
    match command {
        DagsCommand::List { output } => list(app, output).await,
        DagsCommand::Show { dag_id, format } => show(app, &dag_id, format),
        DagsCommand::Validate { paths } => validate(app, &paths),
        DagsCommand::NextRuns {
            dag_id,
            n,
            after,
            output,
        } => next_runs(app, &dag_id, n, after.as_deref(), output),
        DagsCommand::Trigger {
            dag_id,
            conf,
            logical_date,
            run_id,
            wait,
        } => {
            trigger(
                app,
                &dag_id,
                conf.as_deref(),
                logical_date.as_deref(),
                run_id.as_deref(),
                wait,
            )
            .await
        }
        DagsCommand::Pause { dag_id } => set_paused(app, &dag_id, true).await,
        DagsCommand::Unpause { dag_id } => set_paused(app, &dag_id, false).await,
        DagsCommand::Test { dag_id, logical_date } => test(app, &dag_id, logical_date.as_deref()).await,
        DagsCommand::Backfill(args) => super::backfills::create(app, args).await,
    }
}

async fn list(app: &App, output: OutputFormat) -> CliResult {
    let bag = app.load_dags();
    let db = app.db(false).await?;
    let mut connection = db.acquire().await?;
    let records: BTreeMap<DagId, storage::dags::DagRecord> = storage::dags::list(&mut connection)
        .await?
        .into_iter()
        .map(|record| (record.dag_id.clone(), record))
        .collect();
    let mut rows = Vec::new();
    for dag in bag.dags.values() {
        let record = records.get(&dag.dag_id);
        let next = record.and_then(|record| record.next_dagrun_logical_date).or_else(|| {
            dag.timetable
                .next_to_create(None, dag.catchup, Utc::now())
                .map(|run| run.logical_date)
        });
        rows.push(json!({
            "dag_id": dag.dag_id.as_str(),
            "is_paused": record.map_or(dag.is_paused_upon_creation, |record| record.is_paused),
            "is_active": true,
            "schedule": dag.timetable.schedule.describe(),
            "timezone": dag.timetable.timezone.name(),
            "tags": dag.tags,
            "owners": [dag.owner],
            "fileloc": dag.fileloc.display().to_string(),
            "next_dagrun_logical_date": output::opt_time(next),
        }));
    }
    for record in records.values().filter(|record| !bag.dags.contains_key(&record.dag_id)) {
        rows.push(json!({
            "dag_id": record.dag_id.as_str(),
            "is_paused": record.is_paused,
            "is_active": false,
            "schedule": record.schedule,
            "timezone": record.timezone,
            "tags": record.tags,
            "owners": [record.owner],
            "fileloc": record.fileloc,
            "next_dagrun_logical_date": Value::Null,
        }));
    }
    output::print_rows(
        output,
        &rows,
        &[
            "dag_id",
            "is_paused",
            "is_active",
            "schedule",
            "timezone",
            "tags",
            "next_dagrun_logical_date",
        ],
    );
    if !bag.errors.is_empty() && output == OutputFormat::Table {
        eprintln!("{} file(s) failed to load: see `weir dags validate`", bag.errors.len());
    }
    Ok(ExitCode::SUCCESS)
}

fn show(app: &App, dag_id: &str, format: ShowFormat) -> CliResult {
    let dag = app.dag(dag_id)?;
    match format {
        ShowFormat::Json => println!("{}", serde_json::to_string_pretty(&dag_view(&dag)).unwrap_or_default()),
        ShowFormat::Dot => print!("{}", dot(&dag)),
        ShowFormat::Svg => println!("{}", crate::api::ui::graph::GraphCache::default().svg(&dag)),
        ShowFormat::Text => {
            println!("{}  ({})", dag.dag_id, dag.fileloc.display());
            if let Some(description) = &dag.description {
                println!("  {description}");
            }
            println!(
                "  schedule: {}  timezone: {}  catchup: {}",
                dag.timetable.schedule.describe(),
                dag.timetable.timezone.name(),
                dag.catchup
            );
            for task in &dag.tasks {
                let upstream: Vec<&str> = task.upstream.iter().map(|id| id.as_str()).collect();
                let after = if upstream.is_empty() {
                    String::new()
                } else {
                    format!("  after {}", upstream.join(", "))
                };
                println!(
                    "  - {} [{}] trigger_rule={} retries={}{after}",
                    task.task_id,
                    task.operator.type_name(),
                    task.trigger_rule,
                    task.retry.retries
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn dag_view(dag: &Dag) -> Value {
    let tasks: Vec<Value> = dag
        .tasks
        .iter()
        .map(|task| {
            json!({
                "task_id": task.task_id.as_str(),
                "operator": task.operator.type_name(),
                "upstream_task_ids": task.upstream.iter().map(|id| id.as_str()).collect::<Vec<_>>(),
                "downstream_task_ids": task.downstream.iter().map(|id| id.as_str()).collect::<Vec<_>>(),
                "trigger_rule": task.trigger_rule.as_str(),
                "retries": task.retry.retries,
                "pool": task.pool,
                "priority_weight": task.priority_weight,
            })
        })
        .collect();
    json!({
        "dag_id": dag.dag_id.as_str(),
        "description": dag.description,
        "fileloc": dag.fileloc.display().to_string(),
        "schedule": dag.timetable.schedule.describe(),
        "timezone": dag.timetable.timezone.name(),
        "catchup": dag.catchup,
        "max_active_runs": dag.max_active_runs,
        "max_active_tasks": dag.max_active_tasks,
        "tags": dag.tags,
        "tasks": tasks,
    })
}

fn dot(dag: &Dag) -> String {
    let mut out = format!("digraph \"{}\" {{\n  rankdir=LR;\n", dag.dag_id);
    for task in &dag.tasks {
        out.push_str(&format!("  \"{}\";\n", task.task_id));
        for upstream in &task.upstream {
            out.push_str(&format!("  \"{upstream}\" -> \"{}\";\n", task.task_id));
        }
    }
    out.push_str("}\n");
    out
}

fn validate(app: &App, paths: &[PathBuf]) -> CliResult {
    let context = app.config.validation_context();
    let files: Vec<PathBuf> = if paths.is_empty() {
        loader::dag_files(&app.config.dags_folder)
    } else {
        paths
            .iter()
            .flat_map(|path| {
                if path.is_dir() {
                    loader::dag_files(path)
                } else {
                    vec![path.clone()]
                }
            })
            .collect()
    };
    let mut valid = 0;
    let mut broken = 0;
    for file in &files {
        match loader::parse_file(file, &context) {
            Ok(_) => valid += 1,
            Err(error) => {
                broken += 1;
                eprintln!("{error}");
            }
        }
    }
    println!("{valid} valid, {broken} broken ({} file(s) checked)", files.len());
    Ok(if broken == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn next_runs(app: &App, dag_id: &str, n: usize, after: Option<&str>, output: OutputFormat) -> CliResult {
    let dag = app.dag(dag_id)?;
    let timezone = dag.timetable.timezone;
    let after = match after {
        Some(text) => parse_time_arg(text, timezone)?,
        None => Utc::now(),
    };
    let local = |time: DateTime<Utc>| time.with_timezone(&timezone).format("%Y-%m-%d %H:%M:%S %Z").to_string();
    let rows: Vec<Value> = dag
        .timetable
        .upcoming(after, n)
        .into_iter()
        .map(|run| {
            json!({
                "logical_date": output::time(run.logical_date),
                "logical_date_local": local(run.logical_date),
                "data_interval_start": output::time(run.data_interval.start),
                "data_interval_end": output::time(run.data_interval.end),
                "run_after": output::time(run.run_after),
                "run_after_local": local(run.run_after),
            })
        })
        .collect();
    if rows.is_empty() && output == OutputFormat::Table {
        println!(
            "schedule `{}` creates no runs after {}",
            dag.timetable.schedule.describe(),
            output::time(after)
        );
        return Ok(ExitCode::SUCCESS);
    }
    output::print_rows(
        output,
        &rows,
        &[
            "logical_date_local",
            "logical_date",
            "data_interval_start",
            "data_interval_end",
            "run_after_local",
            "run_after",
        ],
    );
    Ok(ExitCode::SUCCESS)
}

/// Reads `--conf` (usage error when it is not JSON).
fn parse_conf(conf: Option<&str>) -> anyhow::Result<Value> {
    match conf {
        Some(text) => Ok(serde_json::from_str(text)
            .map_err(|error| CliError::Usage(format!("--conf is not valid JSON: {error}")))?),
        None => Ok(Value::Null),
    }
}

async fn trigger(
    app: &App,
    dag_id: &str,
    conf: Option<&str>,
    logical_date: Option<&str>,
    run_id: Option<&str>,
    wait: bool,
) -> CliResult {
    let dag = app.dag(dag_id)?;
    let logical_date = logical_date
        .map(|text| parse_time_arg(text, dag.timetable.timezone))
        .transpose()?;
    let new_run = operations::manual_run(&dag, &parse_conf(conf)?, logical_date, run_id, None)?;
    let db = app.db(false).await?;
    let run = operations::trigger(&db, &dag, &new_run).await?;
    let entry = super::audit::entry("trigger_dag_run")
        .dag(run.dag_id.as_str())
        .run(run.run_id.as_str())
        .logical_date(run.logical_date);
    super::audit::record(&db, entry).await;
    println!(
        "created run {} of {} (logical date {})",
        run.run_id,
        run.dag_id,
        output::time(run.logical_date)
    );
    if !wait {
        return Ok(ExitCode::SUCCESS);
    }
    // Waiting on another process's progress: the database is the only channel, so poll it.
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut connection = db.acquire().await?;
        let current = runs::get_by_pk(&mut connection, run.pk)
            .await?
            .ok_or_else(|| CliError::Failed("the run was deleted".to_string()))?;
        if current.state.is_finished() {
            println!("run {} {}", current.run_id, current.state);
            return Ok(if current.state == RunState::Success {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            });
        }
    }
}

async fn set_paused(app: &App, dag_id: &str, paused: bool) -> CliResult {
    let dag = app.dag(dag_id)?;
    let db = app.db(false).await?;
    operations::set_paused(&db, &dag, paused).await?;
    let entry = super::audit::entry("patch_dag")
        .dag(dag.dag_id.as_str())
        .detail("is_paused", paused);
    super::audit::record(&db, entry).await;
    println!("{} is {}", dag.dag_id, if paused { "paused" } else { "unpaused" });
    Ok(ExitCode::SUCCESS)
}

async fn test(app: &App, dag_id: &str, logical_date: Option<&str>) -> CliResult {
    let bag = app.load_dags();
    let dag = super::find_dag(&bag, dag_id, &app.config.dags_folder)?;
    let logical_date = logical_date
        .map(|text| parse_time_arg(text, dag.timetable.timezone))
        .transpose()?;
    let db = app.db(false).await?;
    // Registered before the run exists, so the run is never without a live owner: a daemon
    // leaves it alone while this process lives and adopts it once it is gone.
    let registration = Registration::register(&db, SchedulerKind::Test, Utc::now()).await?;
    let new_run = operations::manual_run(&dag, &Value::Null, logical_date, None, Some(registration.run_owner()))?;
    let run = operations::trigger(&db, &dag, &new_run).await?;
    let entry = super::audit::entry("trigger_dag_run")
        .dag(run.dag_id.as_str())
        .run(run.run_id.as_str())
        .logical_date(run.logical_date)
        .detail("test", true);
    super::audit::record(&db, entry).await;
    println!("testing {} run {}", dag.dag_id, run.run_id);
    let state = drive_run(app, &db, single_dag_bag(&dag), registration, run.pk).await?;
    super::tasks::print_states(&db, &run, OutputFormat::Table).await?;
    println!("run {} {state}", run.run_id);
    Ok(if state == RunState::Success {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn single_dag_bag(dag: &Arc<Dag>) -> DagBag {
    let mut bag = DagBag::default();
    bag.dags.insert(dag.dag_id.clone(), Arc::clone(dag));
    bag
}

/// Drives one run owned by `registration` to its end in this process with a local executor.
pub async fn drive_run(
    app: &App,
    db: &Db,
    bag: DagBag,
    registration: Registration,
    run_pk: i64,
) -> anyhow::Result<RunState> {
    let (events_tx, mut events_rx) = mpsc::unbounded_channel();
    let executor = LocalExecutor::new(events_tx);
    let settings = SchedulerSettings {
        parallelism: app.config.parallelism,
        pools: app.config.pools.clone(),
        logs_dir: app.config.logs_dir(),
        kill_grace: app.config.task_kill_grace,
        max_log_bytes: 256 * 1024 * 1024,
        owner: Some(registration.run_owner()),
        variables: BTreeMap::new(),
        connection_passwords: Vec::new(),
        secrets: crate::runtime::connections::SecretSources::from_config(&app.config, app.secrets_key()?),
    };
    let (_bag_tx, bag_rx) = watch::channel(Arc::new(bag));
    let scheduler = Scheduler::new(db.clone(), settings, bag_rx, executor).with_registration(registration);
    let state = scheduler.drive_until_finished(run_pk, &mut events_rx).await;
    scheduler.mark_stopped().await;
    state
}
