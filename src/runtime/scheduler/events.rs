//! Recording executor events: starts, and ends with what they do to their task instance.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tracing::Instrument;

use super::Scheduler;
use crate::domain::attempt_end::{TryBudget, attempt_end, attempt_end_without_dag};
use crate::domain::dag::Dag;
use crate::domain::ids::{DagId, RunId};
use crate::domain::state::TaskState;
use crate::runtime::executor::{AttemptKey, AttemptResult, ExecutorEvent, attempt_span};
use crate::storage::Transaction;
use crate::storage::runs::{self};
use crate::storage::task_instances::{self, AttemptStart};

impl Scheduler {
    /// Records what the executor reports.
    pub async fn handle_event(&self, event: ExecutorEvent) -> anyhow::Result<()> {
        self.handle_events(vec![event]).await
    }

    /// Records a batch of executor events in one transaction: a busy pool reports many attempts
    /// at once, and one commit for all of them is what keeps hand-offs in milliseconds. An
    /// attempt that started and ended within the batch is written once, its end carrying its start.
    pub async fn handle_events(&self, events: Vec<ExecutorEvent>) -> anyhow::Result<()> {
        let recorded = self.record_events(events).await;
        if recorded.is_err() {
            // Kept snapshots were updated with writes that were rolled back.
            self.cache.forget_snapshots();
        }
        recorded
    }

    async fn record_events(&self, events: Vec<ExecutorEvent>) -> anyhow::Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let bag = self.bag();
        let ended: HashSet<&AttemptKey> = events
            .iter()
            .filter_map(|event| match event {
                ExecutorEvent::Finished { key, .. } => Some(key),
                ExecutorEvent::Started { .. } => None,
            })
            .collect();
        let mut starts: HashMap<&AttemptKey, AttemptStart<'_>> = HashMap::new();
        let mut transaction = self.db.begin().await?;
        // Per run of the batch, read once (`None`: the run is gone).
        let mut runs_of_events: HashMap<i64, Option<EndedRun>> = HashMap::new();
        for event in &events {
            match event {
                ExecutorEvent::Started { key, pid, at } if ended.contains(key) => {
                    starts.insert(
                        key,
                        AttemptStart {
                            at: *at,
                            pid: *pid,
                            hostname: &self.hostname,
                        },
                    );
                }
                ExecutorEvent::Started { key, pid, at } => {
                    task_instances::mark_started(
                        &mut transaction,
                        key.run_pk,
                        &key.task_id,
                        key.try_number,
                        *pid,
                        &self.hostname,
                        *at,
                    )
                    .await?;
                    self.cache.started(key.run_pk, &key.task_id, key.try_number);
                }
                ExecutorEvent::Finished { key, result, at } => {
                    let run = match runs_of_events.get(&key.run_pk) {
                        Some(run) => run.clone(),
                        None => {
                            let run = runs::get_by_pk(&mut transaction, key.run_pk)
                                .await?
                                .map(|run| EndedRun {
                                    dag: bag.get(&run.dag_id).cloned(),
                                    dag_id: run.dag_id,
                                    run_id: run.run_id,
                                });
                            runs_of_events.insert(key.run_pk, run.clone());
                            run
                        }
                    };
                    let start = starts.remove(key);
                    let span = match &run {
                        Some(run) => attempt_span(&run.dag_id, &run.run_id, &key.task_id, key.try_number),
                        None => tracing::Span::none(),
                    };
                    match run.and_then(|run| run.dag) {
                        Some(dag) => {
                            self.record_result(&mut transaction, &dag, key, result, start.as_ref(), *at)
                                .instrument(span)
                                .await?
                        }
                        None => {
                            record_result_without_dag(&mut transaction, key, result, start.as_ref(), *at)
                                .instrument(span)
                                .await?
                        }
                    }
                }
            }
        }
        transaction.commit().await?;
        self.wake_alert_delivery();
        Ok(())
    }

    pub(super) async fn record_result(
        &self,
        transaction: &mut Transaction,
        dag: &Dag,
        key: &AttemptKey,
        result: &AttemptResult,
        start: Option<&AttemptStart<'_>>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        self.cache.touch_run(key.run_pk);
        // Only a failure (or a crash-ended attempt, which may count as one) asks what remains.
        let budget = match result {
            AttemptResult::Failed { .. } | AttemptResult::CrashEnded { .. } => {
                task_instances::get(transaction, key.run_pk, &key.task_id)
                    .await?
                    .map_or(
                        TryBudget {
                            max_tries: key.try_number,
                            crash_ends: 0,
                        },
                        |instance| TryBudget {
                            max_tries: instance.max_tries,
                            crash_ends: instance.crash_ends,
                        },
                    )
            }
            _ => TryBudget {
                max_tries: key.try_number,
                crash_ends: 0,
            },
        };
        let retry = dag.task(key.task_id.as_str()).map(|task| task.retry);
        let end = attempt_end(retry, key.try_number, result, budget, now);
        if matches!(end.instance_state, TaskState::UpForRetry | TaskState::Failed) {
            // The attempt's span (its caller's) names it.
            tracing::warn!(error = end.error.as_deref().unwrap_or(""), state = %end.instance_state, "attempt failed");
        }
        let Some(recorded) =
            task_instances::finish_attempt(transaction, key.run_pk, &key.task_id, key.try_number, &end, start, now)
                .await?
        else {
            return Ok(());
        };
        // The same change as finish_attempt's on the task instance row.
        self.cache.ended(key.run_pk, &key.task_id, &end.instance_change());
        if let Some(started) = recorded.start_date {
            self.metrics
                .record_attempt((now - started).to_std().unwrap_or_default());
        }
        // §6: a real success (not a skip, not one a clear or mark overtook) updates the outlets.
        if end.instance_state == TaskState::Success {
            crate::runtime::datasets::record_outlet_events(transaction, dag, key, now).await?;
        }
        // §9: a failure for good or a retry raises its alerts in the same transaction.
        if let Some(hooks) = &self.alerts {
            let raised = crate::runtime::alerts::record_task_alerts(
                transaction,
                &hooks.routing,
                dag,
                key.run_pk,
                &key.task_id,
                key.try_number,
                end.instance_state,
                end.error.as_deref(),
                now,
            )
            .await?;
            self.alerts_recorded(raised);
        }
        Ok(())
    }
}

/// The run of an attempt that ended: its ids name the attempt's span, its DAG (`None` when no
/// longer loaded) decides what the end does.
#[derive(Clone)]
struct EndedRun {
    dag: Option<Arc<Dag>>,
    dag_id: DagId,
    run_id: RunId,
}

/// The DAG of a finished attempt is gone (file removed or broken): record it without retries.
async fn record_result_without_dag(
    connection: &mut sqlx::AnyConnection,
    key: &AttemptKey,
    result: &AttemptResult,
    start: Option<&AttemptStart<'_>>,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let end = attempt_end_without_dag(result);
    task_instances::finish_attempt(connection, key.run_pk, &key.task_id, key.try_number, &end, start, now).await?;
    Ok(())
}
