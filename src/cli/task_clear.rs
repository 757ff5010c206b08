//! `weir tasks clear`: the task instances a selection matches, set back to `none`, with a
//! confirmation when more than one run is touched (without `--run` every run of the DAG is).

use std::io::IsTerminal;
use std::process::ExitCode;

use super::{App, CliError, CliResult, parse_range_arg};
use crate::domain::dates::RangeEnd;
use crate::domain::ids::RunId;
use crate::runtime::operations::{self, ClearRequest};

/// Which task instances `weir tasks clear` touches, as given on the command line.
pub(super) struct ClearSelection {
    pub(super) task: Option<String>,
    pub(super) run: Option<String>,
    pub(super) from: Option<String>,
    pub(super) to: Option<String>,
    pub(super) downstream: bool,
    pub(super) only_failed: bool,
}

/// Clears the selection; when it spans more than one run, only with `--yes` or a yes at the
/// terminal, and otherwise refuses naming the count.
pub(super) async fn clear(app: &App, dag_id: &str, selection: &ClearSelection, dry_run: bool, yes: bool) -> CliResult {
    let dag = app.dag(dag_id)?;
    let timezone = dag.timetable.timezone;
    let request = ClearRequest {
        run_id: selection
            .run
            .as_deref()
            .map(RunId::parse)
            .transpose()
            .map_err(|error| CliError::Usage(error.to_string()))?,
        from: selection
            .from
            .as_deref()
            .map(|text| parse_range_arg(text, timezone, RangeEnd::Start))
            .transpose()?,
        to: selection
            .to
            .as_deref()
            .map(|text| parse_range_arg(text, timezone, RangeEnd::End))
            .transpose()?,
        task_pattern: selection
            .task
            .as_deref()
            .map(regex::Regex::new)
            .transpose()
            .map_err(|error| CliError::Usage(format!("--task is not a valid regular expression: {error}")))?,
        task_ids: Vec::new(),
        include_downstream: selection.downstream,
        only_failed: selection.only_failed,
    };
    let db = app.db(false).await?;
    let plan = operations::plan_clear(&db, &dag, &request).await?;
    let total: usize = plan.values().map(|(_, tasks)| tasks.len()).sum();
    for (run, tasks) in plan.values() {
        let names: Vec<&str> = tasks.iter().map(|task| task.as_str()).collect();
        println!("{} {}: {}", run.dag_id, run.run_id, names.join(", "));
    }
    if total == 0 {
        println!("nothing to clear");
        return Ok(ExitCode::SUCCESS);
    }
    if dry_run {
        println!("{total} task instance(s) would be cleared (dry run)");
        return Ok(ExitCode::SUCCESS);
    }
    let n_runs = plan.len();
    if n_runs > 1 && !yes {
        let scope = if selection.run.is_none() && selection.from.is_none() && selection.to.is_none() {
            " (without --run, --from or --to every run of the DAG is matched)"
        } else {
            ""
        };
        if !std::io::stdin().is_terminal() {
            return Err(CliError::Failed(format!(
                "this would clear {total} task instance(s) in {n_runs} runs of {}{scope}; nothing was cleared. Pass --yes to clear them all, or choose one run with --run RUN_ID",
                dag.dag_id
            ))
            .into());
        }
        eprint!("clear these {total} task instance(s) in {n_runs} runs{scope}? [y/N] ");
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            println!("nothing cleared");
            return Ok(ExitCode::from(1));
        }
    }
    let cleared = operations::apply_clear(&db, &dag, &plan).await?;
    let mut entry = super::audit::entry("post_clear_task_instances")
        .dag(dag.dag_id.as_str())
        .detail("cleared", cleared);
    if let Some(run_id) = &selection.run {
        entry = entry.run(run_id);
    }
    super::audit::record(&db, entry).await;
    println!("cleared {cleared} task instance(s)");
    Ok(ExitCode::SUCCESS)
}
