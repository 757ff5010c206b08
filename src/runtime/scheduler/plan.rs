//! Planning running runs with the pure planner and committing its decisions.

use std::collections::HashMap;

use anyhow::Context;
use chrono::{DateTime, Utc};

use super::{Scheduler, TickOutcome, earliest};
use crate::domain::dag::{Dag, Task};
use crate::domain::ids::TaskId;
use crate::domain::planner::{self, Decision, RunSnapshot};
use crate::domain::state::{RunState, TaskState};
use crate::runtime::loader::DagBag;
use crate::storage::runs::{self, DagRun};
use crate::storage::task_instances::{self, TaskSlots};
use crate::storage::{self};

impl Scheduler {
    pub(super) async fn plan_running_runs(
        &self,
        bag: &DagBag,
        now: DateTime<Utc>,
        change_seq: i64,
        outcome: &mut TickOutcome,
    ) -> anyhow::Result<()> {
        let mut connection = self.db.acquire().await?;
        let running = runs::keys(&mut connection, &self.run_filter(RunState::Running)).await?;
        // Decide which runs to plan, and start the next scope afresh.
        let wanted = self
            .cache
            .runs_to_plan(&running, change_seq, now, std::time::Instant::now(), |dag_id| {
                bag.get(dag_id)
                    .is_some_and(|dag| dag.tasks.iter().any(|task| task.depends_on_past))
            });
        // Whole rows only for the runs planned.
        let wanted: Vec<i64> = wanted.into_iter().collect();
        let planned = runs::get_many(&mut connection, &wanted).await?;
        drop(connection);
        for run in planned {
            let Some(dag) = bag.get(&run.dag_id) else {
                continue;
            };
            // Most runs have nothing to do at a given step: decide that from the kept snapshot
            // when there is one, else from a plain read, and take the write lock only when there
            // is something to write.
            if let Some(plan) = self.cache.plan_from_kept_snapshot(dag, run.pk, now)
                && plan.decisions.is_empty()
            {
                self.cache.remember_wake(run.pk, plan.wake_at);
                continue;
            }
            let mut connection = self.db.acquire().await?;
            let snapshot = run_snapshot(&mut connection, dag, &run).await?;
            drop(connection);
            let plan = planner::plan_run(dag, &snapshot, now);
            self.cache.keep_snapshot(dag, run.pk, snapshot);
            // The planner applies its own decisions as it goes (a task it schedules or skips is
            // seen by its downstream in the same pass), so a planned run needs nothing more until
            // an event touches it or its wake-up comes.
            self.cache.remember_wake(run.pk, plan.wake_at);
            if plan.decisions.is_empty() {
                continue;
            }
            // The decisions change the run: it is read again before it is next planned.
            self.cache.forget_snapshot(run.pk);
            let mut transaction = self.db.begin().await?;
            // A clear or a mark from the CLI may have landed since the read; every such change
            // moves the change counter, so plan again from a fresh read only when it moved.
            let plan = if storage::change_sequence(&mut transaction).await? == change_seq {
                plan
            } else {
                let snapshot = run_snapshot(&mut transaction, dag, &run).await?;
                let plan = planner::plan_run(dag, &snapshot, now);
                self.cache.remember_wake(run.pk, plan.wake_at);
                plan
            };
            // Tasks to schedule, grouped by their slots: one statement per group, not per task.
            let mut to_schedule: HashMap<TaskSlots, Vec<&TaskId>> = HashMap::new();
            // Rows to create, in a few multi-row statements; written before any decision that
            // updates a row at once (it may be one of them) and before the schedule groups.
            let mut to_create: Vec<&Task> = Vec::new();
            for decision in &plan.decisions {
                let writes_now = !matches!(decision, Decision::Create(_) | Decision::Schedule(_));
                if writes_now && !to_create.is_empty() {
                    task_instances::create(&mut transaction, run.pk, &run.dag_id, &run.run_id, &to_create).await?;
                    to_create.clear();
                }
                match decision {
                    Decision::Create(task_id) => {
                        let task = dag
                            .task(task_id.as_str())
                            .context("planner created a task the DAG lacks")?;
                        to_create.push(task);
                    }
                    Decision::Remove(task_id) => {
                        task_instances::set_state(&mut transaction, run.pk, task_id, TaskState::Removed, None, now)
                            .await?;
                    }
                    Decision::Schedule(task_id) => {
                        let task = dag
                            .task(task_id.as_str())
                            .context("planner scheduled a task the DAG lacks")?;
                        to_schedule.entry(TaskSlots::of(task)).or_default().push(task_id);
                    }
                    Decision::Skip(task_id) => {
                        task_instances::set_state(&mut transaction, run.pk, task_id, TaskState::Skipped, None, now)
                            .await?;
                    }
                    Decision::UpstreamFailed(task_id) => {
                        task_instances::set_state(
                            &mut transaction,
                            run.pk,
                            task_id,
                            TaskState::UpstreamFailed,
                            None,
                            now,
                        )
                        .await?;
                    }
                    Decision::FinishRun(state) => {
                        schedule_groups(&mut transaction, run.pk, std::mem::take(&mut to_schedule), now).await?;
                        if runs::finish(&mut transaction, run.pk, *state, now).await?
                            && let Some(hooks) = &self.alerts
                        {
                            let recorded = crate::runtime::alerts::record_run_alerts(
                                &mut transaction,
                                &hooks.routing,
                                dag,
                                &run,
                                *state,
                                now,
                            )
                            .await?;
                            self.alerts_recorded(recorded);
                        }
                        tracing::info!(dag_id = %run.dag_id, run_id = %run.run_id, state = %state, "run finished");
                        outcome.runs_finished += 1;
                    }
                }
            }
            task_instances::create(&mut transaction, run.pk, &run.dag_id, &run.run_id, &to_create).await?;
            schedule_groups(&mut transaction, run.pk, to_schedule, now).await?;
            transaction.commit().await?;
        }
        outcome.next_wake = earliest(outcome.next_wake, self.cache.next_wake());
        Ok(())
    }
}

/// What the planner needs about one run: its task instances, and the previous run's states when
/// a task depends on the past.
pub async fn run_snapshot(
    connection: &mut sqlx::AnyConnection,
    dag: &Dag,
    run: &DagRun,
) -> anyhow::Result<RunSnapshot> {
    let mut snapshot = RunSnapshot {
        tasks: task_instances::planner_states(connection, run.pk)
            .await?
            .into_iter()
            .collect(),
        previous_run: None,
    };
    if dag.tasks.iter().any(|task| task.depends_on_past)
        && let Some(previous) = runs::previous(connection, run).await?
    {
        let previous_states = task_instances::planner_states(connection, previous.pk).await?;
        snapshot.previous_run = Some(
            previous_states
                .into_iter()
                .map(|(task_id, view)| (task_id, view.state))
                .collect(),
        );
    }
    Ok(snapshot)
}

/// Writes a plan's `Schedule` decisions, one statement per group of tasks with the same slots.
async fn schedule_groups(
    connection: &mut sqlx::AnyConnection,
    run_pk: i64,
    groups: HashMap<TaskSlots, Vec<&TaskId>>,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    for (slots, task_ids) in groups {
        task_instances::set_states(connection, run_pk, &task_ids, TaskState::Scheduled, Some(&slots), now).await?;
    }
    Ok(())
}
