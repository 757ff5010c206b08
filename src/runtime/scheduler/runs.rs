//! Run creation: scheduled runs from timetables, backfill dates, and starting queued runs
//! within `max_active_runs`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{DagRecords, Scheduler, TickOutcome, earliest};
use crate::domain::backfill::{BackfillState, DateAction, DateProgress, backfill_step};
use crate::domain::dag::Dag;
use crate::domain::ids::RunId;
use crate::domain::planner::{self};
use crate::domain::state::{RunState, RunType};
use crate::runtime::loader::DagBag;
use crate::storage::backfills::{self, Backfill, BackfillDate};
use crate::storage::runs::{self, DagRun, NewRun};
use crate::storage::task_instances::{self};
use crate::storage::{self, StorageError, Transaction};

impl Scheduler {
    pub(super) async fn create_scheduled_runs(
        &self,
        bag: &DagBag,
        records: &DagRecords,
        now: DateTime<Utc>,
        outcome: &mut TickOutcome,
    ) -> anyhow::Result<()> {
        outcome.runs_created += crate::runtime::datasets::create_dataset_runs(&self.db, bag, records, now).await?;
        for dag in bag.dags.values() {
            if !dag.timetable.schedule.is_time_based() {
                continue;
            }
            let Some(record) = records.get(&dag.dag_id) else {
                continue;
            };
            if record.is_paused {
                continue;
            }
            if let Some(due) = self.cache.not_due_before(&dag.dag_id)
                && due > now
            {
                outcome.next_wake = earliest(outcome.next_wake, Some(due));
                continue;
            }
            let mut transaction = self.db.begin_for_scheduler().await?;
            let last = runs::latest_scheduled_logical_date(&mut transaction, &dag.dag_id).await?;
            let (queued, running) = runs::count_active(&mut transaction, &dag.dag_id).await?;
            let plan = planner::plan_scheduled_runs(
                &dag.timetable,
                dag.catchup,
                last,
                queued + running,
                dag.max_active_runs,
                now,
            );
            for planned in &plan.create {
                let new_run = NewRun {
                    dag_id: dag.dag_id.clone(),
                    run_id: runs::generated_run_id(RunType::Scheduled, planned.logical_date),
                    run_type: RunType::Scheduled,
                    logical_date: planned.logical_date,
                    data_interval_start: planned.data_interval.start,
                    data_interval_end: planned.data_interval.end,
                    run_after: planned.run_after,
                    conf: serde_json::Value::Object(dag.params.resolve(&serde_json::Value::Null).unwrap_or_default()),
                    owner: None,
                };
                let run = runs::insert(&mut transaction, &new_run, now).await?;
                tracing::info!(dag_id = %dag.dag_id, run_id = %run.run_id, "created scheduled run");
                outcome.runs_created += 1;
            }
            let (logical, run_after) = plan
                .next
                .map_or((None, None), |p| (Some(p.logical_date), Some(p.run_after)));
            let next_run_changed =
                record.next_dagrun_logical_date != logical || record.next_dagrun_run_after != run_after;
            if next_run_changed {
                storage::dags::set_next_run(&mut transaction, &dag.dag_id, logical, run_after).await?;
            }
            transaction.commit().await?;
            if next_run_changed {
                // The kept rows are stale now; the next step reads them again.
                self.cache.forget_dag_records();
            }
            // Held back by time, not by max_active_runs: nothing to do for this DAG until then,
            // unless its file, its pause flag or its runs change (which clears the memo).
            if let Some(next) = plan.next.filter(|next| next.run_after > now) {
                outcome.next_wake = earliest(outcome.next_wake, Some(next.run_after));
                self.cache.remember_not_due_before(&dag.dag_id, next.run_after);
            }
        }
        Ok(())
    }

    /// Starts the next dates of each running backfill within its own `max_active_runs`, and
    /// completes the backfills that are done.
    pub(super) async fn advance_backfills(
        &self,
        bag: &DagBag,
        now: DateTime<Utc>,
        outcome: &mut TickOutcome,
    ) -> anyhow::Result<()> {
        let mut connection = self.db.acquire().await?;
        let running = backfills::list(&mut connection, None, Some(BackfillState::Running)).await?;
        drop(connection);
        for backfill in running {
            let Some(dag) = bag.get(&backfill.dag_id) else {
                continue;
            };
            let mut transaction = self.db.begin_for_scheduler().await?;
            let dates = backfills::dates(&mut transaction, backfill.id).await?;
            let mut progress = Vec::with_capacity(dates.len());
            for date in &dates {
                let active = match date.run_pk {
                    Some(pk) => runs::get_by_pk(&mut transaction, pk)
                        .await?
                        .is_some_and(|run| !run.state.is_finished()),
                    None => false,
                };
                progress.push(DateProgress {
                    action: date.action,
                    started: date.run_pk.is_some(),
                    active,
                });
            }
            let step = backfill_step(&progress, backfill.state, backfill.max_active_runs);
            for position in step.start {
                let date = &dates[position];
                self.start_backfill_date(&mut transaction, dag, &backfill, date, now)
                    .await?;
                outcome.runs_created += 1;
            }
            if step.completed {
                backfills::set_state(&mut transaction, backfill.id, BackfillState::Completed, now).await?;
                tracing::info!(dag_id = %backfill.dag_id, backfill_id = backfill.id, "backfill completed");
            }
            transaction.commit().await?;
        }
        Ok(())
    }

    /// Creates a date's run, or clears its existing run in place (§3.8: a re-run never creates a
    /// second run for a date).
    async fn start_backfill_date(
        &self,
        transaction: &mut Transaction,
        dag: &Dag,
        backfill: &Backfill,
        date: &BackfillDate,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let existing = match &date.existing_run_id {
            Some(run_id) => runs::get(transaction, &dag.dag_id, &RunId::parse(run_id.clone())?).await?,
            None => None,
        };
        let run_pk = match (date.action, existing) {
            (DateAction::Rerun, Some(run)) => {
                for instance in task_instances::for_run(transaction, run.pk).await? {
                    let retries = dag.task(instance.task_id.as_str()).map_or(0, |task| task.retry.retries);
                    task_instances::clear(transaction, run.pk, &instance.task_id, retries).await?;
                }
                runs::set_state(transaction, run.pk, RunState::Queued, now).await?;
                run.pk
            }
            _ => {
                let conf = dag.params.resolve(&backfill.conf).unwrap_or_default();
                let new_run = NewRun {
                    dag_id: dag.dag_id.clone(),
                    run_id: runs::generated_run_id(RunType::Backfill, date.logical_date),
                    run_type: RunType::Backfill,
                    logical_date: date.logical_date,
                    data_interval_start: date.data_interval_start,
                    data_interval_end: date.data_interval_end,
                    run_after: date.run_after,
                    conf: serde_json::Value::Object(conf),
                    owner: None,
                };
                match runs::insert(transaction, &new_run, now).await {
                    Ok(run) => run.pk,
                    // The schedule created a run for this date after the backfill was planned.
                    Err(StorageError::Conflict(reason)) => {
                        backfills::set_date_run(transaction, backfill.id, date.ordinal, None, Some(&reason)).await?;
                        return Ok(());
                    }
                    Err(error) => return Err(error.into()),
                }
            }
        };
        runs::set_backfill(transaction, run_pk, backfill.id).await?;
        backfills::set_date_run(transaction, backfill.id, date.ordinal, Some(run_pk), None).await?;
        tracing::info!(dag_id = %dag.dag_id, backfill_id = backfill.id, logical_date = %date.logical_date, action = %date.action, "backfill date started");
        Ok(())
    }

    /// `records` is `None` for `dags test`, which starts its run whether the DAG is paused or not.
    pub(super) async fn start_queued_runs(
        &self,
        bag: &DagBag,
        records: Option<&DagRecords>,
        now: DateTime<Utc>,
        outcome: &mut TickOutcome,
    ) -> anyhow::Result<()> {
        let mut connection = self.db.acquire().await?;
        let queued = runs::list(&mut connection, &self.run_filter(RunState::Queued)).await?;
        drop(connection);
        if queued.is_empty() {
            return Ok(());
        }
        let mut by_dag: BTreeMap<_, Vec<&DagRun>> = BTreeMap::new();
        for run in &queued {
            by_dag.entry(run.dag_id.clone()).or_default().push(run);
        }
        for (dag_id, waiting) in by_dag {
            let Some(dag) = bag.get(&dag_id) else {
                continue;
            };
            let mut transaction = self.db.begin().await?;
            // A backfill's runs ignore pause and the DAG's max_active_runs: the backfill created
            // them within its own limit.
            let (backfill_runs, waiting): (Vec<&DagRun>, Vec<&DagRun>) =
                waiting.into_iter().partition(|run| run.backfill_id.is_some());
            for run in backfill_runs {
                runs::start(&mut transaction, run.pk, now).await?;
                outcome.runs_started += 1;
            }
            // A paused DAG keeps its queued runs waiting (the daemon's rule); `dags test` runs anyway.
            if records
                .and_then(|records| records.get(&dag_id))
                .is_some_and(|record| record.is_paused)
            {
                transaction.commit().await?;
                continue;
            }
            let (_, running) = runs::count_active(&mut transaction, &dag_id).await?;
            let keys: Vec<i64> = waiting.iter().map(|run| run.pk).collect();
            for pk in planner::runs_to_start(&keys, running, dag.max_active_runs) {
                runs::start(&mut transaction, pk, now).await?;
                outcome.runs_started += 1;
            }
            transaction.commit().await?;
        }
        Ok(())
    }
}
