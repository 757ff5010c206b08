//! The scheduler: one writer of state transitions. Each step ([`Scheduler::tick`]) creates due
//! runs, starts queued runs, plans every running run with the pure planner, commits the
//! decisions, then claims and hands scheduled tasks to the executor. Executor events are
//! recorded by [`Scheduler::handle_event`], and the loop re-plans at once, so a finished task's
//! downstream starts without waiting for a polling tick.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::alerts::AlertRouting;
use super::attempt::{self, attempt_env, needs_context, read_output, render_fields, template_context};
use super::attempt_end::{TryBudget, attempt_end};
use super::builtin::BuiltinAttempt;
use super::connections::{Connections, Resolved, SecretSources};
use super::executor::{AttemptKey, AttemptRequest, AttemptResult, AttemptWork, Executor, ExecutorEvent};
use super::exit_record::{ExitRecord, read_exit_record};
use super::health::{Component, DatabaseLoop, Health};
use super::loader::DagBag;
use super::metrics::SchedulerMetrics;
use super::process::{ShellAttempt, kill_processes_with_env};
use super::recovery::{self, OrphanAttempt, Registration, recovered_result};
use super::task_log::{self, LogPath};
use crate::domain::backfill::{BackfillState, DateAction, DateProgress, backfill_step};
use crate::domain::dag::{Dag, Operator, Task};
use crate::domain::ids::{DagId, RunId, TaskId};
use crate::domain::liveness::{HEARTBEAT_EVERY, SchedulerKind};
use crate::domain::planner::{self, Candidate, Capacity, Decision, RunSnapshot, TaskInstanceState};
use crate::domain::state::{RunState, RunType, TaskState};
use crate::storage::backfills::{self, Backfill, BackfillDate};
use crate::storage::failure::{ErrorClass, class_of_anyhow};
use crate::storage::runs::{self, DagRun, NewRun, RunFilter};
use crate::storage::task_instances::{self, AttemptEnd, AttemptStart, SlotHolder, TaskSlots};
use crate::storage::{self, Db, StorageError};

/// How a scheduler is set up.
#[derive(Debug, Clone)]
pub struct SchedulerSettings {
    pub parallelism: u32,
    pub pools: BTreeMap<String, u32>,
    pub logs_dir: PathBuf,
    pub kill_grace: Duration,
    /// Most bytes of task output kept in one attempt's log.
    pub max_log_bytes: u64,
    /// `None`: the daemon, which creates scheduled runs and drives every run without an owner.
    /// `Some(owner)`: `weir dags test`, which drives only the runs it owns.
    pub owner: Option<String>,
    /// Variables on top of the database's and `WEIR_VAR_*` (tests set them here).
    pub variables: BTreeMap<String, String>,
    /// Values to mask besides every connection's password (tests set them here).
    pub connection_passwords: Vec<String>,
    /// Connections (config, env, database) and database variables, read at each dispatch.
    pub secrets: SecretSources,
}

/// The DAG rows of the metadata database, by id.
type DagRecords = HashMap<DagId, storage::dags::DagRecord>;

/// What one step did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickOutcome {
    pub runs_created: usize,
    pub runs_started: usize,
    pub runs_finished: usize,
    pub tasks_queued: usize,
    /// When the next step is due even if nothing else happens (a run's interval ends, a retry
    /// delay passes).
    pub next_wake: Option<DateTime<Utc>>,
}

pub struct Scheduler {
    db: Db,
    settings: SchedulerSettings,
    dags: watch::Receiver<Arc<DagBag>>,
    executor: Arc<dyn Executor>,
    hostname: String,
    /// Per DAG, the time before which its timetable has nothing to create: lets a step skip the
    /// database for DAGs that are not due. Cleared whenever DAGs or recorded state change.
    not_due: std::sync::Mutex<HashMap<DagId, DateTime<Utc>>>,
    /// The DAG rows (paused, next run) as last read, with the change counter at that read. Only the
    /// loader, a pause, a trigger and this scheduler's own next-run writes change what a step
    /// reads of them: the first three move the counter, the last forgets them here. With 1,000
    /// DAGs, reading them at every step tripled a hand-off (2 -> 7 ms).
    dag_records: std::sync::Mutex<Option<(i64, Arc<DagRecords>)>>,
    /// Connections and variables as last read, and when: busy steps reuse them for
    /// [`SECRETS_TTL`] instead of reading and decrypting them at every dispatch.
    resolved: std::sync::Mutex<Option<(std::time::Instant, Resolved)>>,
    /// Which running runs the next step plans: only those something happened to, unless the
    /// whole picture may have changed.
    scope: std::sync::Mutex<PlanScope>,
    metrics: Arc<SchedulerMetrics>,
    /// Alerts (§9): `None` raises none (`weir dags test`).
    alerts: Option<AlertHooks>,
    /// This scheduler's row: its claims are recorded as its own, and recovery leaves them alone
    /// while it beats. [`Scheduler::run`] registers one when none was given.
    registration: Option<Registration>,
    /// Where [`Scheduler::run`] reports its state and database outages.
    health: Arc<Health>,
}

/// How the scheduler raises alerts: where to route them, and whom to wake once they are committed.
struct AlertHooks {
    routing: AlertRouting,
    delivery: Arc<tokio::sync::Notify>,
    /// Set when a step or an event recorded alerts; the delivery loop is woken after the commit.
    recorded: std::sync::atomic::AtomicBool,
}

/// How long resolved connections and variables are reused: a change made through the CLI, API or
/// UI applies to attempts that start at most this much later.
const SECRETS_TTL: Duration = Duration::from_secs(1);

/// How often every running run is planned even when nothing says it changed: a safety net for
/// writes that reach the database without bumping the change counter.
const FULL_PLAN_EVERY: Duration = Duration::from_secs(10);

/// The fewest waiting task instances a dispatch reads at a time (it reads four per free slot when
/// that is more): enough that a page rarely ends before the free slots are taken.
const DISPATCH_PAGE_MIN: usize = 256;

/// The runs a step must plan. Planning reads every task instance of a run, so planning all of
/// them at every step costs O(running runs × tasks) per finished task; this keeps a step to the
/// runs an event touched, the runs whose wake-up is due and the runs not seen before. Everything
/// is planned again when the change counter moves (CLI, API, UI, other processes), when the DAGs
/// change, and every [`FULL_PLAN_EVERY`].
#[derive(Debug, Default)]
struct PlanScope {
    plan_all: bool,
    last_full: Option<std::time::Instant>,
    last_change_seq: Option<i64>,
    /// Runs with a finished attempt since they were last planned.
    dirty: HashSet<i64>,
    /// Runs planned at least once, with the time their plan asked to be looked at again.
    known: HashMap<i64, Option<DateTime<Utc>>>,
    /// The task instances of running runs as last read, kept current with this scheduler's own
    /// writes (claims, starts, ends). A run planned from here with nothing to decide needs no
    /// read at all, which is most of them: in a fan-out, each of hundreds of ends changes nothing
    /// until the last one. A plan with decisions is always made again from a fresh read, so a
    /// stale entry can delay a decision (until the next full plan, which empties this) but never
    /// make a wrong one. Runs of DAGs with `depends_on_past` are not kept (their plans read the
    /// previous run too).
    snapshots: HashMap<i64, RunSnapshot>,
}

impl PlanScope {
    fn needs_full_plan(&self) -> bool {
        self.plan_all || self.last_full.is_none_or(|at| at.elapsed() >= FULL_PLAN_EVERY)
    }

    /// Whether `run_pk` must be planned at `now`.
    fn wants(&self, run_pk: i64, now: DateTime<Utc>) -> bool {
        self.dirty.contains(&run_pk)
            || match self.known.get(&run_pk) {
                None => true,
                Some(wake) => wake.is_some_and(|wake| wake <= now),
            }
    }

    /// The earliest wake-up any running run asked for.
    fn next_wake(&self) -> Option<DateTime<Utc>> {
        self.known.values().flatten().min().copied()
    }
}

fn earliest(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl Scheduler {
    pub fn new(
        db: Db,
        settings: SchedulerSettings,
        dags: watch::Receiver<Arc<DagBag>>,
        executor: Arc<dyn Executor>,
    ) -> Self {
        let hostname = recovery::this_host();
        Scheduler {
            db,
            settings,
            dags,
            executor,
            hostname,
            not_due: std::sync::Mutex::new(HashMap::new()),
            dag_records: std::sync::Mutex::new(None),
            resolved: std::sync::Mutex::new(None),
            scope: std::sync::Mutex::new(PlanScope::default()),
            metrics: Arc::new(SchedulerMetrics::default()),
            alerts: None,
            registration: None,
            health: Arc::default(),
        }
    }

    /// Claims attempts as the registered scheduler `registration` (`weir dags test` registers
    /// before it creates the run it owns).
    pub fn with_registration(mut self, registration: Registration) -> Self {
        self.registration = Some(registration);
        self
    }

    fn scheduler_id(&self) -> Option<i64> {
        self.registration.as_ref().map(|registration| registration.id)
    }

    /// Records that this scheduler is alive at `now`; a daemon also updates the heartbeat
    /// `/monitor/health` reports.
    async fn heartbeat(&self, connection: &mut sqlx::AnyConnection, now: DateTime<Utc>) -> anyhow::Result<()> {
        if let Some(registration) = &self.registration {
            storage::schedulers::heartbeat(connection, registration.id, now).await?;
        }
        if self.owner().is_none() {
            storage::record_heartbeat(connection, now).await?;
        }
        Ok(())
    }

    /// Records this scheduler's clean stop: what it still holds is anyone's to recover at once.
    pub async fn mark_stopped(&self) {
        let Some(registration) = &self.registration else {
            return;
        };
        let stopped = async {
            let mut connection = self.db.acquire().await?;
            storage::schedulers::mark_stopped(&mut connection, registration.id, Utc::now()).await
        };
        if let Err(error) = stopped.await {
            tracing::warn!(
                "cannot record this scheduler's stop (its attempts are recovered once its process is gone): {error:#}"
            );
        }
    }

    /// Reports the loop's state (alive, in a database outage, last heartbeat) to `health`.
    pub fn with_health(mut self, health: Arc<Health>) -> Self {
        self.health = health;
        self
    }

    /// Raises alerts (§9) with `routing`, waking `delivery` whenever new ones are committed.
    pub fn with_alerts(mut self, routing: AlertRouting, delivery: Arc<tokio::sync::Notify>) -> Self {
        self.alerts = Some(AlertHooks {
            routing,
            delivery,
            recorded: std::sync::atomic::AtomicBool::new(false),
        });
        self
    }

    /// Notes that alerts were recorded (in a transaction the caller commits).
    fn alerts_recorded(&self, count: usize) {
        if count > 0
            && let Some(hooks) = &self.alerts
        {
            hooks.recorded.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Wakes the delivery loop if alerts were recorded since the last call (after their commit).
    fn wake_alert_delivery(&self) {
        if let Some(hooks) = &self.alerts
            && hooks.recorded.swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            hooks.delivery.notify_one();
        }
    }

    /// Records `sla_miss` for runs past their DAG's SLA; wakes the step at the next deadline.
    async fn check_slas(&self, bag: &DagBag, now: DateTime<Utc>, outcome: &mut TickOutcome) -> anyhow::Result<()> {
        if let Some(hooks) = &self.alerts {
            let check = super::alerts::check_slas(&self.db, &hooks.routing, bag, now).await?;
            self.alerts_recorded(check.recorded);
            outcome.next_wake = earliest(outcome.next_wake, check.next_deadline);
        }
        Ok(())
    }

    fn not_due_before(&self, dag_id: &DagId) -> Option<DateTime<Utc>> {
        self.not_due.lock().ok().and_then(|memo| memo.get(dag_id).copied())
    }

    fn remember_not_due_before(&self, dag_id: &DagId, due: DateTime<Utc>) {
        if let Ok(mut memo) = self.not_due.lock() {
            memo.insert(dag_id.clone(), due);
        }
    }

    /// Forgets what is known about schedules; the next step looks at every DAG again.
    pub fn forget_schedule_memo(&self) {
        if let Ok(mut memo) = self.not_due.lock() {
            memo.clear();
        }
        if let Ok(mut scope) = self.scope.lock() {
            scope.plan_all = true;
        }
    }

    /// A run was planned: it is looked at again at `wake` (or when an event touches it).
    fn remember_wake(&self, run_pk: i64, wake: Option<DateTime<Utc>>) {
        if let Ok(mut scope) = self.scope.lock() {
            scope.known.insert(run_pk, wake);
        }
    }

    /// The plan of a run from its kept snapshot, if there is one.
    fn plan_from_kept_snapshot(&self, dag: &Dag, run_pk: i64, now: DateTime<Utc>) -> Option<planner::RunPlan> {
        let scope = self.scope.lock().ok()?;
        let snapshot = scope.snapshots.get(&run_pk)?;
        Some(planner::plan_run(dag, snapshot, now))
    }

    /// Keeps a run's freshly read snapshot for later plans (see [`PlanScope::snapshots`]).
    fn keep_snapshot(&self, dag: &Dag, run_pk: i64, snapshot: RunSnapshot) {
        if dag.tasks.iter().any(|task| task.depends_on_past) {
            return;
        }
        if let Ok(mut scope) = self.scope.lock() {
            scope.snapshots.insert(run_pk, snapshot);
        }
    }

    fn forget_dag_records(&self) {
        if let Ok(mut records) = self.dag_records.lock() {
            *records = None;
        }
    }

    /// The DAG rows, from the last read unless the change counter moved or this scheduler wrote
    /// them since.
    async fn dag_records(&self, change_seq: i64) -> anyhow::Result<Arc<DagRecords>> {
        if let Some((_, records)) = self
            .dag_records
            .lock()
            .ok()
            .and_then(|kept| kept.clone())
            .filter(|(seq, _)| *seq == change_seq)
        {
            return Ok(records);
        }
        let mut connection = self.db.acquire().await?;
        let records: Arc<DagRecords> = Arc::new(
            storage::dags::list(&mut connection)
                .await?
                .into_iter()
                .map(|record| (record.dag_id.clone(), record))
                .collect(),
        );
        if let Ok(mut kept) = self.dag_records.lock() {
            *kept = Some((change_seq, Arc::clone(&records)));
        }
        Ok(records)
    }

    fn forget_snapshots(&self) {
        if let Ok(mut scope) = self.scope.lock() {
            scope.snapshots.clear();
        }
    }

    fn forget_snapshot(&self, run_pk: i64) {
        if let Ok(mut scope) = self.scope.lock() {
            scope.snapshots.remove(&run_pk);
        }
    }

    /// Applies one of this scheduler's own writes to a task instance to the kept snapshot of its
    /// run, if there is one.
    fn update_kept_instance(&self, run_pk: i64, task_id: &TaskId, update: impl FnOnce(&mut TaskInstanceState)) {
        if let Ok(mut scope) = self.scope.lock()
            && let Some(instance) = scope
                .snapshots
                .get_mut(&run_pk)
                .and_then(|snapshot| snapshot.tasks.get_mut(task_id))
        {
            update(instance);
        }
    }

    /// Something happened to a run (an attempt ended): the next step plans it.
    fn touch_run(&self, run_pk: i64) {
        if let Ok(mut scope) = self.scope.lock() {
            scope.dirty.insert(run_pk);
        }
    }

    /// Shares this scheduler's measurements (with the web server's `/metrics`).
    pub fn with_metrics(mut self, metrics: Arc<SchedulerMetrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Connections and variables from every source, read again once [`SECRETS_TTL`] has passed.
    async fn resolve_secrets(&self, connection: &mut sqlx::AnyConnection) -> anyhow::Result<Resolved> {
        let cached = self.resolved.lock().ok().and_then(|cache| {
            cache
                .as_ref()
                .filter(|(at, _)| at.elapsed() < SECRETS_TTL)
                .map(|(_, resolved)| resolved.clone())
        });
        if let Some(resolved) = cached {
            return Ok(resolved);
        }
        let resolved = self.settings.secrets.resolve(connection).await?;
        if let Ok(mut cache) = self.resolved.lock() {
            *cache = Some((std::time::Instant::now(), resolved.clone()));
        }
        Ok(resolved)
    }

    fn bag(&self) -> Arc<DagBag> {
        Arc::clone(&self.dags.borrow())
    }

    fn owner(&self) -> Option<&str> {
        self.settings.owner.as_deref()
    }

    fn run_filter(&self, state: RunState) -> RunFilter {
        RunFilter {
            states: vec![state],
            owner: Some(self.settings.owner.clone()),
            ..RunFilter::default()
        }
    }

    /// One scheduling step at `now`.
    pub async fn tick(&self, now: DateTime<Utc>) -> anyhow::Result<TickOutcome> {
        let started = std::time::Instant::now();
        let outcome = self.step(now).await;
        if outcome.is_err() {
            // Kept snapshots were updated with writes that may have been rolled back.
            self.forget_snapshots();
            self.forget_dag_records();
        }
        self.metrics.record_step(started.elapsed());
        self.wake_alert_delivery();
        outcome
    }

    async fn step(&self, now: DateTime<Utc>) -> anyhow::Result<TickOutcome> {
        let bag = self.bag();
        let mut outcome = TickOutcome::default();
        // Moved by every change recorded outside this scheduler (CLI, API, UI, the loader).
        let change_seq = {
            let mut connection = self.db.acquire().await?;
            storage::change_sequence(&mut connection).await?
        };
        // The daemon's view of each DAG (paused, next run) for the scheduled-run creation and the
        // start of queued runs, kept between steps (`dag_records`). `dags test` needs neither.
        let records = match self.settings.owner {
            None => Some(self.dag_records(change_seq).await?),
            Some(_) => None,
        };
        if let Some(records) = &records {
            self.create_scheduled_runs(&bag, records, now, &mut outcome).await?;
            self.advance_backfills(&bag, now, &mut outcome).await?;
        }
        self.start_queued_runs(&bag, records.as_deref(), now, &mut outcome)
            .await?;
        self.check_slas(&bag, now, &mut outcome).await?;
        self.plan_running_runs(&bag, now, change_seq, &mut outcome).await?;
        self.dispatch(&bag, now, &mut outcome).await?;
        Ok(outcome)
    }

    async fn create_scheduled_runs(
        &self,
        bag: &DagBag,
        records: &DagRecords,
        now: DateTime<Utc>,
        outcome: &mut TickOutcome,
    ) -> anyhow::Result<()> {
        outcome.runs_created += super::datasets::create_dataset_runs(&self.db, bag, records, now).await?;
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
            if let Some(due) = self.not_due_before(&dag.dag_id)
                && due > now
            {
                outcome.next_wake = earliest(outcome.next_wake, Some(due));
                continue;
            }
            let mut transaction = self.db.begin().await?;
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
                self.forget_dag_records();
            }
            // Held back by time, not by max_active_runs: nothing to do for this DAG until then,
            // unless its file, its pause flag or its runs change (which clears the memo).
            if let Some(next) = plan.next.filter(|next| next.run_after > now) {
                outcome.next_wake = earliest(outcome.next_wake, Some(next.run_after));
                self.remember_not_due_before(&dag.dag_id, next.run_after);
            }
        }
        Ok(())
    }

    /// Starts the next dates of each running backfill within its own `max_active_runs`, and
    /// completes the backfills that are done.
    async fn advance_backfills(
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
            let mut transaction = self.db.begin().await?;
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
        connection: &mut sqlx::AnyConnection,
        dag: &Dag,
        backfill: &Backfill,
        date: &BackfillDate,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let existing = match &date.existing_run_id {
            Some(run_id) => runs::get(connection, &dag.dag_id, &RunId::parse(run_id.clone())?).await?,
            None => None,
        };
        let run_pk = match (date.action, existing) {
            (DateAction::Rerun, Some(run)) => {
                for instance in task_instances::for_run(connection, run.pk).await? {
                    let retries = dag.task(instance.task_id.as_str()).map_or(0, |task| task.retry.retries);
                    task_instances::clear(connection, run.pk, &instance.task_id, retries).await?;
                }
                runs::set_state(connection, run.pk, RunState::Queued, now).await?;
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
                match runs::insert(connection, &new_run, now).await {
                    Ok(run) => run.pk,
                    // The schedule created a run for this date after the backfill was planned.
                    Err(StorageError::Conflict(reason)) => {
                        backfills::set_date_run(connection, backfill.id, date.ordinal, None, Some(&reason)).await?;
                        return Ok(());
                    }
                    Err(error) => return Err(error.into()),
                }
            }
        };
        runs::set_backfill(connection, run_pk, backfill.id).await?;
        backfills::set_date_run(connection, backfill.id, date.ordinal, Some(run_pk), None).await?;
        tracing::info!(dag_id = %dag.dag_id, backfill_id = backfill.id, logical_date = %date.logical_date, action = %date.action, "backfill date started");
        Ok(())
    }

    /// `records` is `None` for `dags test`, which starts its run whether the DAG is paused or not.
    async fn start_queued_runs(
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

    async fn plan_running_runs(
        &self,
        bag: &DagBag,
        now: DateTime<Utc>,
        change_seq: i64,
        outcome: &mut TickOutcome,
    ) -> anyhow::Result<()> {
        let mut connection = self.db.acquire().await?;
        let running = runs::keys(&mut connection, &self.run_filter(RunState::Running)).await?;
        // Decide which runs to plan, and start the next scope afresh.
        let wanted = {
            let mut scope = self
                .scope
                .lock()
                .map_err(|_| anyhow::anyhow!("plan scope lock poisoned"))?;
            if scope.last_change_seq != Some(change_seq) {
                scope.last_change_seq = Some(change_seq);
                scope.plan_all = true;
            }
            let plan_all = scope.needs_full_plan();
            let mut wanted: HashSet<i64> = running
                .iter()
                .filter(|(pk, _)| plan_all || scope.wants(*pk, now))
                .map(|(pk, _)| *pk)
                .collect();
            // depends_on_past links a run to the DAG's other runs: plan them together.
            let linked: HashSet<&DagId> = running
                .iter()
                .filter(|(pk, _)| wanted.contains(pk))
                .filter(|(_, dag_id)| {
                    bag.get(dag_id)
                        .is_some_and(|dag| dag.tasks.iter().any(|task| task.depends_on_past))
                })
                .map(|(_, dag_id)| dag_id)
                .collect();
            wanted.extend(
                running
                    .iter()
                    .filter(|(_, dag_id)| linked.contains(dag_id))
                    .map(|(pk, _)| *pk),
            );
            let still_running: HashSet<i64> = running.iter().map(|(pk, _)| *pk).collect();
            scope.known.retain(|pk, _| still_running.contains(pk));
            scope.snapshots.retain(|pk, _| still_running.contains(pk));
            scope.dirty.clear();
            if plan_all {
                scope.plan_all = false;
                scope.last_full = Some(std::time::Instant::now());
                // Someone else may have written: every run is planned from a fresh read.
                scope.snapshots.clear();
            }
            wanted
        };
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
            if let Some(plan) = self.plan_from_kept_snapshot(dag, run.pk, now)
                && plan.decisions.is_empty()
            {
                self.remember_wake(run.pk, plan.wake_at);
                continue;
            }
            let mut connection = self.db.acquire().await?;
            let snapshot = run_snapshot(&mut connection, dag, &run).await?;
            drop(connection);
            let plan = planner::plan_run(dag, &snapshot, now);
            self.keep_snapshot(dag, run.pk, snapshot);
            // The planner applies its own decisions as it goes (a task it schedules or skips is
            // seen by its downstream in the same pass), so a planned run needs nothing more until
            // an event touches it or its wake-up comes.
            self.remember_wake(run.pk, plan.wake_at);
            if plan.decisions.is_empty() {
                continue;
            }
            // The decisions change the run: it is read again before it is next planned.
            self.forget_snapshot(run.pk);
            let mut transaction = self.db.begin().await?;
            // A clear or a mark from the CLI may have landed since the read; every such change
            // moves the change counter, so plan again from a fresh read only when it moved.
            let plan = if storage::change_sequence(&mut transaction).await? == change_seq {
                plan
            } else {
                let snapshot = run_snapshot(&mut transaction, dag, &run).await?;
                let plan = planner::plan_run(dag, &snapshot, now);
                self.remember_wake(run.pk, plan.wake_at);
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
                            let recorded = super::alerts::record_run_alerts(
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
        if let Ok(scope) = self.scope.lock() {
            outcome.next_wake = earliest(outcome.next_wake, scope.next_wake());
        }
        Ok(())
    }

    async fn dispatch(&self, bag: &DagBag, now: DateTime<Utc>, outcome: &mut TickOutcome) -> anyhow::Result<()> {
        let mut connection = self.db.acquire().await?;
        let holders = task_instances::slot_holders(&mut connection).await?;
        let capacity = capacity(&holders, self.settings.parallelism, &self.settings.pools);
        let free = capacity.parallelism.saturating_sub(capacity.running_total);
        if free == 0 {
            return Ok(());
        }
        // Read the waiting task instances in admission order, a page at a time, until the free
        // slots are taken or none are left: admission is greedy in that order, so what it admits
        // from the pages read is what it would admit from all of them.
        let page = (free * 4).max(DISPATCH_PAGE_MIN);
        let mut waiting = Vec::new();
        let mut candidates: Vec<Candidate<usize>> = Vec::new();
        let admitted = loop {
            let read = task_instances::scheduled(&mut connection, self.owner(), page, waiting.len()).await?;
            let last_page = read.len() < page;
            for entry in read {
                if let Some(dag) = bag.get(&entry.dag_id) {
                    candidates.push(Candidate {
                        key: waiting.len(),
                        run_key: entry.run_pk,
                        priority_weight: entry.priority_weight,
                        logical_date: entry.logical_date,
                        pool: entry.pool.clone(),
                        pool_slots: entry.pool_slots,
                        max_active_tasks: dag.max_active_tasks,
                    });
                }
                waiting.push(entry);
            }
            let admitted = planner::admit(&candidates, &capacity);
            if last_page || admitted.len() >= free {
                break admitted;
            }
        };
        if admitted.is_empty() {
            return Ok(());
        }
        let mut resolved = self.resolve_secrets(&mut connection).await?;
        drop(connection);
        resolved.variables.extend(self.settings.variables.clone());
        resolved
            .passwords
            .extend(self.settings.connection_passwords.iter().cloned());
        let connections_view = resolved.connections.template_context();
        // Every claim of this step in one transaction; attempts start once it is committed.
        let mut transaction = self.db.begin().await?;
        let mut run_pks: Vec<i64> = admitted.iter().map(|admitted| admitted.run_key).collect();
        run_pks.sort_unstable();
        run_pks.dedup();
        let runs_of_step: HashMap<i64, DagRun> = runs::get_many(&mut transaction, &run_pks)
            .await?
            .into_iter()
            .map(|run| (run.pk, run))
            .collect();
        let mut outputs_cache: HashMap<i64, HashMap<String, String>> = HashMap::new();
        // First each attempt's rendered fields, then the claims, a few statements per run.
        let mut prepared = Vec::new();
        for admitted in &admitted {
            let waiting = &waiting[admitted.key];
            let Some(dag) = bag.get(&waiting.dag_id) else {
                continue;
            };
            let Some(run) = runs_of_step.get(&waiting.run_pk) else {
                continue;
            };
            let Some(task) = dag.task(waiting.task_id.as_str()) else {
                continue;
            };
            let try_number = waiting.try_number + 1;
            let context = if needs_context(task) {
                // Outputs change only when attempts end, never during a dispatch: read once per run.
                let outputs = match outputs_cache.entry(run.pk) {
                    std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
                    std::collections::hash_map::Entry::Vacant(entry) => {
                        entry.insert(task_instances::outputs(&mut transaction, run.pk).await?)
                    }
                };
                template_context(
                    dag,
                    run,
                    task.task_id.as_str(),
                    try_number,
                    outputs,
                    &resolved.variables,
                    &connections_view,
                )
            } else {
                serde_json::Value::Null
            };
            let rendered = render_fields(task, &dag.folder(), &context);
            let secrets = attempt::secrets(&resolved.variables, &task.env, &resolved.passwords);
            let rendered_json = match &rendered {
                Ok(fields) => mask_json(fields.to_json(), &secrets),
                Err(error) => serde_json::json!({ "error": error.to_string() }),
            };
            // A sensor's later pokes continue its try: its timeout counts from the first poke.
            let first_poke = if matches!(task.operator, Operator::Sensor(_)) {
                task_instances::attempts(&mut transaction, run.pk, &task.task_id)
                    .await?
                    .into_iter()
                    .find(|attempt| attempt.try_number == try_number)
                    .and_then(|attempt| attempt.start_date)
            } else {
                None
            };
            prepared.push(PreparedAttempt {
                dag,
                run,
                task,
                rendered,
                rendered_json,
                secrets,
                first_poke,
            });
        }
        let mut claimed: HashMap<i64, HashMap<TaskId, u32>> = HashMap::new();
        for run_pk in &run_pks {
            let claims: Vec<(&TaskId, &serde_json::Value)> = prepared
                .iter()
                .filter(|attempt| attempt.run.pk == *run_pk)
                .map(|attempt| (&attempt.task.task_id, &attempt.rendered_json))
                .collect();
            let tries =
                task_instances::claim_many(&mut transaction, *run_pk, &claims, self.scheduler_id(), now).await?;
            claimed.insert(*run_pk, tries.into_iter().collect());
        }
        let mut requests = Vec::new();
        for PreparedAttempt {
            dag,
            run,
            task,
            rendered,
            secrets,
            first_poke,
            ..
        } in prepared
        {
            // Another scheduler, or a clear or mark, got there first.
            let Some(&try_number) = claimed.get(&run.pk).and_then(|tries| tries.get(&task.task_id)) else {
                continue;
            };
            self.update_kept_instance(run.pk, &task.task_id, |instance| {
                instance.state = TaskState::Queued;
                instance.try_number = try_number;
                instance.next_retry_at = None;
            });
            let key = AttemptKey {
                run_pk: run.pk,
                task_id: task.task_id.clone(),
                try_number,
            };
            let prepared = rendered.map_err(|error| error.to_string()).and_then(|fields| {
                let urls = connection_urls(&fields.operator, &resolved.connections)?;
                Ok((fields, urls))
            });
            let (fields, connection_urls) = match prepared {
                Ok(prepared) => prepared,
                Err(error) => {
                    // A template that cannot render, or an unknown connection, fails the attempt
                    // before anything runs.
                    let result = AttemptResult::Failed { exit_code: None, error };
                    self.record_result(&mut transaction, dag, &key, &result, None, now)
                        .await?;
                    continue;
                }
            };
            let log = LogPath::new(
                &self.settings.logs_dir,
                &dag.dag_id,
                &run.run_id,
                &task.task_id,
                try_number,
            );
            let work = match &fields.operator {
                Operator::Shell {
                    command,
                    cwd,
                    skip_exit_code,
                } => {
                    let output = log.output();
                    let cwd = match cwd {
                        Some(cwd) => dag.folder().join(cwd),
                        None => dag.folder(),
                    };
                    let env = attempt_env(run, dag, task.task_id.as_str(), try_number, &fields.env, &output);
                    AttemptWork::Shell {
                        shell: Box::new(ShellAttempt {
                            command: command.clone(),
                            cwd,
                            env,
                            timeout: task.timeout,
                            kill_grace: self.settings.kill_grace,
                            exit_record_path: Some(log.exit_record()),
                            log_path: log,
                            secrets,
                            max_log_bytes: self.settings.max_log_bytes,
                        }),
                        skip_exit_code: *skip_exit_code,
                        output_path: output,
                    }
                }
                operator => {
                    let target_dag = match operator {
                        Operator::TriggerDag(trigger) => DagId::parse(trigger.dag_id.clone())
                            .ok()
                            .and_then(|target| bag.get(&target).cloned()),
                        _ => None,
                    };
                    AttemptWork::Builtin(Box::new(BuiltinAttempt {
                        operator: operator.clone(),
                        connections: connection_urls.clone(),
                        log_path: log,
                        secrets,
                        max_log_bytes: self.settings.max_log_bytes,
                        timeout: task.timeout,
                        folder: dag.folder(),
                        db: self.db.clone(),
                        dag_id: dag.dag_id.clone(),
                        run_id: run.run_id.clone(),
                        task_id: task.task_id.clone(),
                        logical_date: run.logical_date,
                        first_poke: first_poke.unwrap_or(now),
                        target_dag,
                    }))
                }
            };
            tracing::debug!(dag_id = %dag.dag_id, run_id = %run.run_id, task_id = %task.task_id, try_number, "queued attempt");
            requests.push(AttemptRequest { key, work });
        }
        transaction.commit().await?;
        for request in requests {
            self.executor.submit(request);
            outcome.tasks_queued += 1;
        }
        Ok(())
    }

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
            self.forget_snapshots();
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
        let mut dags_of_runs: HashMap<i64, Option<Arc<Dag>>> = HashMap::new();
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
                    self.update_kept_instance(key.run_pk, &key.task_id, |instance| {
                        if instance.state == TaskState::Queued && instance.try_number == key.try_number {
                            instance.state = TaskState::Running;
                        }
                    });
                }
                ExecutorEvent::Finished { key, result, at } => {
                    let dag = match dags_of_runs.get(&key.run_pk) {
                        Some(dag) => dag.clone(),
                        None => {
                            let run = runs::get_by_pk(&mut transaction, key.run_pk).await?;
                            let dag = run.as_ref().and_then(|run| bag.get(&run.dag_id)).cloned();
                            dags_of_runs.insert(key.run_pk, dag.clone());
                            dag
                        }
                    };
                    let start = starts.remove(key);
                    match dag {
                        Some(dag) => {
                            self.record_result(&mut transaction, &dag, key, result, start.as_ref(), *at)
                                .await?
                        }
                        None => record_result_without_dag(&mut transaction, key, result, start.as_ref(), *at).await?,
                    }
                }
            }
        }
        transaction.commit().await?;
        self.wake_alert_delivery();
        Ok(())
    }

    async fn record_result(
        &self,
        connection: &mut sqlx::AnyConnection,
        dag: &Dag,
        key: &AttemptKey,
        result: &AttemptResult,
        start: Option<&AttemptStart<'_>>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        self.touch_run(key.run_pk);
        // Only a failure (or a crash-ended attempt, which may count as one) asks what remains.
        let budget = match result {
            AttemptResult::Failed { .. } | AttemptResult::CrashEnded { .. } => {
                task_instances::get(connection, key.run_pk, &key.task_id).await?.map_or(
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
        let end = attempt_end(dag, key, result, budget, now);
        if matches!(end.instance_state, TaskState::UpForRetry | TaskState::Failed) {
            tracing::warn!(task_id = %key.task_id, try_number = key.try_number, error = end.error.as_deref().unwrap_or(""), state = %end.instance_state, "attempt failed");
        }
        let Some(recorded) =
            task_instances::finish_attempt(connection, key.run_pk, &key.task_id, key.try_number, &end, start, now)
                .await?
        else {
            return Ok(());
        };
        // The same change as finish_attempt's on the task instance row.
        self.update_kept_instance(key.run_pk, &key.task_id, |instance| {
            instance.state = end.instance_state;
            instance.next_retry_at = end.next_retry_at;
            instance.max_tries += u32::from(end.refund_try);
            instance.try_number = instance.try_number.saturating_sub(u32::from(end.reschedule));
        });
        if let Some(started) = recorded.start_date {
            self.metrics
                .record_attempt((now - started).to_std().unwrap_or_default());
        }
        // §6: a real success (not a skip, not one a clear or mark overtook) updates the outlets.
        if end.instance_state == TaskState::Success {
            super::datasets::record_outlet_events(connection, dag, key, now).await?;
        }
        // §9: a failure for good or a retry raises its alerts in the same transaction.
        if let Some(hooks) = &self.alerts {
            let raised = super::alerts::record_task_alerts(
                connection,
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

    /// Takes over what dead owners left (§3.9): the attempts a crashed or killed scheduler or
    /// `weir dags test` left queued or running are ended, and the runs of a dead `weir dags test`
    /// are adopted (driven by the daemon from now on). A live owner's work (another scheduler on
    /// PostgreSQL, a `weir dags test` in progress) is left alone. Returns how many attempts were
    /// ended.
    pub async fn recover(&self, now: DateTime<Utc>) -> anyhow::Result<usize> {
        let me = self
            .registration
            .as_ref()
            .context("recovery needs a registered scheduler")?;
        let mut connection = self.db.acquire().await?;
        let orphans = recovery::find_orphans(&mut connection, me, now).await?;
        let mut adopted = 0;
        for orphan in &orphans.runs {
            if let Some(owner) = orphan.run.owner.as_deref()
                && runs::adopt(&mut connection, orphan.run.pk, owner).await?
            {
                adopted += 1;
                tracing::warn!(dag_id = %orphan.run.dag_id, run_id = %orphan.run.run_id, owner, "adopted a run whose `weir dags test` is gone: {}", orphan.death);
            }
        }
        // Taken over one by one, each only if still held by the dead owner: of two schedulers
        // recovering the same attempt, one ends it.
        let mut taken = Vec::new();
        for orphan in orphans.attempts {
            let instance = &orphan.instance;
            if task_instances::take_over(
                &mut connection,
                instance.run_pk,
                &instance.task_id,
                instance.try_number,
                orphan.holder,
                me.id,
            )
            .await?
            {
                taken.push(orphan);
            }
        }
        if adopted > 0 || !taken.is_empty() {
            // Other schedulers plan again too; this one plans every run at its next step.
            storage::signal_change(&mut connection).await?;
            self.forget_schedule_memo();
        }
        drop(connection);
        let count = taken.len();
        for orphan in taken {
            self.end_orphan(orphan, now).await?;
        }
        Ok(count)
    }

    /// Ends one attempt whose owner is dead. Its processes on this host are killed first (so
    /// nothing writes its exit record any more); then an attempt whose wrapper recorded its exit
    /// status is recorded as finished with it and not run again, and any other is crash-ended:
    /// run again without using a retry, up to `MAX_FREE_CRASH_ENDS` times.
    async fn end_orphan(&self, orphan: OrphanAttempt, now: DateTime<Utc>) -> anyhow::Result<()> {
        let OrphanAttempt {
            instance, run, death, ..
        } = orphan;
        let (dag_id, run_id, task_id) = (run.dag_id.as_str(), run.run_id.as_str(), instance.task_id.as_str());
        let markers = attempt::attempt_markers(dag_id, run_id, task_id, instance.try_number);
        let killed = tokio::task::spawn_blocking(move || {
            let pairs: Vec<(&str, &str)> = markers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            kill_processes_with_env(&pairs)
        })
        .await
        .unwrap_or_default();
        let logs_dir = &self.settings.logs_dir;
        let log = LogPath::new(
            logs_dir,
            &run.dag_id,
            &run.run_id,
            &instance.task_id,
            instance.try_number,
        );
        let record = read_exit_record(&log.exit_record());
        let dag = self.bag().get(&run.dag_id).cloned();
        let task = dag.as_ref().and_then(|dag| dag.task(task_id));
        let skip_exit_code = task.and_then(|task| match &task.operator {
            Operator::Shell { skip_exit_code, .. } => Some(*skip_exit_code),
            _ => None,
        });
        let mut secrets = Vec::new();
        if let (Some(task), Some(ExitRecord { status: 0, .. })) = (task, &record) {
            let mut connection = self.db.acquire().await?;
            let resolved = self.resolve_secrets(&mut connection).await?;
            secrets = attempt::secrets(&resolved.variables, &task.env, &resolved.passwords);
        }
        let result = recovered_result(record.as_ref(), skip_exit_code, || {
            read_output(&log.output(), None).map(|output| super::masking::mask_secrets(&output, &secrets))
        });
        let leftovers = if killed.is_empty() {
            String::new()
        } else {
            format!(" and killed leftover processes {killed:?}")
        };
        let how = match (&result, &record) {
            (AttemptResult::CrashEnded { .. }, None) => "recorded it as crash-ended".to_string(),
            (AttemptResult::CrashEnded { .. }, Some(record)) => format!(
                "recorded it as crash-ended: it exited with status {} after its scheduler was gone",
                record.status
            ),
            (_, record) => format!(
                "recorded the end its exit record gives: exit status {}",
                record.map_or(-1, |record| record.status)
            ),
        };
        let note = format!(
            "the scheduler running this attempt stopped (crash or kill: {death}); recovery at {}{leftovers} {how}",
            now.to_rfc3339(),
        );
        task_log::append_note(&log, &note);
        tracing::warn!(
            dag_id,
            run_id,
            task_id,
            try_number = instance.try_number,
            killed = killed.len(),
            finished = record.is_some(),
            "recovered orphaned attempt: {death}"
        );
        let key = AttemptKey {
            run_pk: run.pk,
            task_id: instance.task_id.clone(),
            try_number: instance.try_number,
        };
        // A finished attempt ended when its record was written, not at recovery.
        let at = match (&result, &record) {
            (AttemptResult::CrashEnded { .. }, _) => now,
            (_, record) => record
                .and_then(|record| record.written_at)
                .map_or(now, |written| written.min(now)),
        };
        self.handle_event(ExecutorEvent::Finished { key, result, at }).await
    }

    /// Runs until cancelled: a step whenever something may have changed (an executor event, a DAG
    /// file, a change recorded by another process) or becomes due (a schedule, a retry delay).
    ///
    /// A metadata database outage is waited out: while it lasts no step runs, attempts that end
    /// are kept in memory, and a try with a growing backoff records them, then steps again. Only
    /// a fatal error (see [`ErrorClass`]) ends the loop with an error.
    pub async fn run(
        mut self,
        mut events: mpsc::UnboundedReceiver<ExecutorEvent>,
        cancel: CancellationToken,
    ) -> anyhow::Result<()> {
        let mut alive = self.health.alive(Component::Scheduler);
        let mut pending = Vec::new();
        let ran = self.run_until_cancelled(&mut events, &mut pending, &cancel).await;
        if let Err(error) = &ran {
            alive.stopped_because(format!("{error:#}"));
        }
        tracing::info!("scheduler stopping: ending running attempts");
        self.executor.shutdown().await;
        while let Ok(event) = events.try_recv() {
            pending.push(event);
        }
        // The database may be away right now: give it a moment, then leave the rest to recovery
        // (at the next start, or by a peer), which ends those attempts as after a crash.
        let mut database = DatabaseLoop::new(Arc::clone(&self.health), Component::Scheduler);
        let give_up = tokio::time::Instant::now() + SHUTDOWN_RECORD_WAIT;
        let _ = tokio::time::timeout_at(give_up, async {
            while let Err(error) = self.record_pending(&mut pending).await {
                if class_of_anyhow(&error) != ErrorClass::Transient {
                    tracing::error!("cannot record attempt events during shutdown: {error:#}");
                    return;
                }
                tokio::time::sleep(database.failed(&error)).await;
            }
        })
        .await;
        if !pending.is_empty() {
            tracing::error!(
                "{} attempt events could not be recorded before shutdown; recovery ends those attempts as a crash's",
                pending.len()
            );
        }
        let _ = tokio::time::timeout(MARK_STOPPED_WAIT, self.mark_stopped()).await;
        ran
    }

    async fn run_until_cancelled(
        &mut self,
        events: &mut mpsc::UnboundedReceiver<ExecutorEvent>,
        pending: &mut Vec<ExecutorEvent>,
        cancel: &CancellationToken,
    ) -> anyhow::Result<()> {
        let mut database = DatabaseLoop::new(Arc::clone(&self.health), Component::Scheduler);
        if self.registration.is_none() {
            let Some(registration) = database
                .retry(cancel, || async {
                    Registration::register(&self.db, SchedulerKind::Daemon, Utc::now())
                        .await
                        .context("registering this scheduler")
                })
                .await?
            else {
                return Ok(());
            };
            tracing::info!(scheduler_id = registration.id, "registered this scheduler");
            self.registration = Some(registration);
        }
        let Some(recovered) = database
            .retry(cancel, || async {
                self.recover(Utc::now())
                    .await
                    .context("recovering attempts left by a previous scheduler")
            })
            .await?
        else {
            return Ok(());
        };
        if recovered > 0 {
            tracing::warn!(recovered, "ended attempts left running by a previous scheduler");
        }
        // After recovery: a heartbeat later than the registration says start-up recovery is done.
        let first_poll = database
            .retry(cancel, || async {
                let mut watch = Watch::default();
                self.poll(&mut watch, Beat::Now).await.map(|()| watch)
            })
            .await?;
        let Some(mut watch) = first_poll else {
            return Ok(());
        };
        // Another process (the CLI, the web server) records a trigger or a clear in the database
        // and bumps a counter; a cheap read twice a second notices it.
        let mut change_poll = tokio::time::interval(Duration::from_millis(500));
        change_poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut next_wake: Option<DateTime<Utc>> = None;
        let mut step_needed = true;
        // Set while the database is unreachable: when to try again.
        let mut retry_at: Option<tokio::time::Instant> = None;
        loop {
            if step_needed && retry_at.is_none() {
                match self.tick(Utc::now()).await {
                    Ok(outcome) => {
                        database.reached();
                        next_wake = outcome.next_wake;
                        // A finished run frees capacity (max_active_runs, a backfill's limit) and
                        // may complete a backfill: look again at once rather than at the next event.
                        if outcome.runs_finished > 0 {
                            step_needed = true;
                            continue;
                        }
                    }
                    Err(error) => match class_of_anyhow(&error) {
                        ErrorClass::Transient => {
                            retry_at = Some(tokio::time::Instant::now() + database.failed(&error));
                        }
                        ErrorClass::Fatal => return Err(error.context("scheduler step")),
                        ErrorClass::Operation => {
                            tracing::error!("scheduler step failed: {error:#}");
                            next_wake = Some(Utc::now() + chrono::Duration::seconds(1));
                        }
                    },
                }
            }
            step_needed = false;
            let sleep_for = next_wake
                .map(|wake| (wake - Utc::now()).to_std().unwrap_or(Duration::ZERO))
                .unwrap_or(Duration::from_secs(3600));
            let retry_due = retry_at.unwrap_or_else(tokio::time::Instant::now);
            // What this turn of the loop tried, when it touched the database.
            let tried: Option<anyhow::Result<()>> = tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                // The database was unreachable: record what was kept, beat, step.
                _ = tokio::time::sleep_until(retry_due), if retry_at.is_some() => {
                    let resumed = async {
                        self.record_pending(pending).await?;
                        self.poll(&mut watch, Beat::AfterOutage).await
                    }.await;
                    if resumed.is_ok() {
                        retry_at = None;
                        // Other processes' changes may have been missed meanwhile.
                        self.forget_schedule_memo();
                        step_needed = true;
                    }
                    Some(resumed)
                }
                // Before events, so a steady stream of them cannot starve the poll and the heartbeat.
                _ = change_poll.tick(), if retry_at.is_none() => {
                    let polled = self.poll(&mut watch, Beat::WhenDue).await;
                    if matches!(polled, Ok(())) && watch.changed {
                        self.forget_schedule_memo();
                        step_needed = true;
                    }
                    Some(polled)
                }
                Some(event) = events.recv() => {
                    // Kept until recorded: an attempt that ended during an outage is recorded
                    // once the database is back, never dropped.
                    pending.push(event);
                    while let Ok(more) = events.try_recv() {
                        pending.push(more);
                    }
                    if retry_at.is_some() {
                        None
                    } else {
                        let decides = pending.iter().any(ExecutorEvent::ends_attempt);
                        let recorded = self.record_pending(pending).await;
                        step_needed = recorded.is_ok() && decides;
                        Some(recorded)
                    }
                }
                Ok(()) = self.dags.changed() => {
                    self.forget_schedule_memo();
                    step_needed = true;
                    None
                }
                _ = tokio::time::sleep(sleep_for), if retry_at.is_none() => {
                    step_needed = true;
                    None
                }
            };
            match tried {
                None => {}
                Some(Ok(())) => database.reached(),
                Some(Err(error)) if class_of_anyhow(&error) == ErrorClass::Transient => {
                    retry_at = Some(tokio::time::Instant::now() + database.failed(&error));
                }
                Some(Err(error)) => return Err(error),
            }
        }
        Ok(())
    }

    /// Reads the change counter. When the heartbeat is due (every [`HEARTBEAT_EVERY`], or as
    /// `beat` says), takes over what dead peers left, beats, and checks the schema: one that
    /// another weir moved ahead (or that lost a table) stops the scheduler, it is fatal.
    async fn poll(&self, watch: &mut Watch, beat: Beat) -> anyhow::Result<()> {
        let mut connection = self.db.acquire().await?;
        let current = storage::change_sequence(&mut connection)
            .await
            .context("reading the change counter")?;
        watch.changed = watch.seen_change.is_some_and(|seen| seen != current);
        watch.seen_change = Some(current);
        let due = watch.last_heartbeat.is_none_or(|at| at.elapsed() >= HEARTBEAT_EVERY);
        if beat == Beat::WhenDue && !due {
            return Ok(());
        }
        drop(connection);
        if beat == Beat::AfterOutage {
            // Every peer's heartbeat is as old as the outage: give the live ones time to beat
            // again before anything of theirs counts as left behind.
            watch.recover_after = Some(tokio::time::Instant::now() + 2 * HEARTBEAT_EVERY);
        }
        let may_recover = watch
            .recover_after
            .is_none_or(|after| tokio::time::Instant::now() >= after);
        if beat == Beat::WhenDue && may_recover {
            // What a peer that died since (or a killed `weir dags test`) left is taken over while
            // this one runs, not only at its next start.
            match self.recover(Utc::now()).await {
                Ok(0) => {}
                Ok(recovered) => {
                    tracing::warn!(recovered, "ended attempts left running by a dead scheduler");
                    watch.changed = true;
                }
                Err(error) if class_of_anyhow(&error) != ErrorClass::Operation => return Err(error),
                Err(error) => tracing::error!("recovering a dead scheduler's attempts failed: {error:#}"),
            }
        }
        let mut connection = self.db.acquire().await?;
        self.heartbeat(&mut connection, Utc::now()).await?;
        drop(connection);
        self.db.ensure_current().await?;
        watch.last_heartbeat = Some(tokio::time::Instant::now());
        self.health.beat(Component::Scheduler, Utc::now());
        Ok(())
    }

    /// Records the kept executor events, removing each once it is committed. A transient or
    /// fatal error leaves them all kept (the batch was rolled back); a batch that fails
    /// otherwise is recorded one by one, so one event that can never be recorded (it is logged)
    /// does not hold the others back.
    ///
    /// Recording an event twice (a commit whose answer was lost in the cut) changes nothing:
    /// an attempt's end applies to its task instance only while that instance is still queued
    /// or running with the same try (`task_instances::finish_attempt`).
    async fn record_pending(&self, pending: &mut Vec<ExecutorEvent>) -> anyhow::Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        let error = match self.handle_events(pending.clone()).await {
            Ok(()) => {
                pending.clear();
                return Ok(());
            }
            Err(error) => error,
        };
        if class_of_anyhow(&error) != ErrorClass::Operation {
            return Err(error.context("recording executor events"));
        }
        tracing::warn!(
            "recording {} executor events together failed ({error:#}); recording them one by one",
            pending.len()
        );
        while let Some(event) = pending.first().cloned() {
            match self.handle_event(event).await {
                Ok(()) => {}
                Err(error) if class_of_anyhow(&error) == ErrorClass::Operation => {
                    tracing::error!("cannot record an executor event: {error:#}");
                }
                Err(error) => return Err(error.context("recording executor events")),
            }
            pending.remove(0);
        }
        Ok(())
    }
}

/// When [`Scheduler::poll`] beats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Beat {
    /// Every [`HEARTBEAT_EVERY`], with the periodic recovery.
    WhenDue,
    /// At once: the first poll, after start-up recovery.
    Now,
    /// At once, the database being back: recovery waits for the peers to beat again.
    AfterOutage,
}

/// How long a stopping scheduler tries to record the events of the attempts it ended.
const SHUTDOWN_RECORD_WAIT: Duration = Duration::from_secs(10);

/// How long a stopping scheduler tries to record its stop (else its peers wait for its
/// process to be gone or its heartbeat to age).
const MARK_STOPPED_WAIT: Duration = Duration::from_secs(5);

/// What the loop knows of the database between polls.
#[derive(Debug, Default)]
struct Watch {
    seen_change: Option<i64>,
    /// Whether the last poll saw the counter move (or recovery ended attempts).
    changed: bool,
    last_heartbeat: Option<tokio::time::Instant>,
    /// No periodic recovery before this (set when an outage ends).
    recover_after: Option<tokio::time::Instant>,
}

/// How many slots the task instances holding one (queued or running) take, against the limits.
pub fn capacity(active: &[SlotHolder], parallelism: u32, pools: &BTreeMap<String, u32>) -> Capacity {
    let mut capacity = Capacity {
        parallelism: parallelism as usize,
        running_total: active.len(),
        pool_size: pools.iter().map(|(name, slots)| (name.clone(), *slots)).collect(),
        ..Capacity::default()
    };
    for instance in active {
        *capacity.pool_used.entry(instance.pool.clone()).or_insert(0) += instance.pool_slots;
        *capacity.run_active.entry(instance.run_pk).or_insert(0) += 1;
    }
    capacity
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

/// One admitted task of a dispatch, rendered and ready to claim.
struct PreparedAttempt<'a> {
    dag: &'a Arc<Dag>,
    run: &'a DagRun,
    task: &'a crate::domain::dag::Task,
    rendered: Result<attempt::RenderedFields, crate::domain::template::RenderError>,
    /// As stored with the attempt: rendered fields with secrets masked.
    rendered_json: serde_json::Value,
    secrets: Vec<String>,
    first_poke: Option<DateTime<Utc>>,
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

/// The URLs (with credentials) of the connections `operator` names, or why one cannot be used.
pub fn connection_urls(operator: &Operator, connections: &Connections) -> Result<HashMap<String, String>, String> {
    operator
        .connections()
        .into_iter()
        .map(|name| {
            let url = connections.url(name).map_err(|error| error.to_string())?;
            Ok((name.to_string(), url))
        })
        .collect()
}

/// The DAG of a finished attempt is gone (file removed or broken): record it without retries.
async fn record_result_without_dag(
    connection: &mut sqlx::AnyConnection,
    key: &AttemptKey,
    result: &AttemptResult,
    start: Option<&AttemptStart<'_>>,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let (state, error, exit_code, output) = match result {
        AttemptResult::Success { output } => (TaskState::Success, None, Some(0), output.clone()),
        AttemptResult::Skipped => (TaskState::Skipped, None, None, None),
        AttemptResult::Failed { exit_code, error } => (TaskState::Failed, Some(error.clone()), *exit_code, None),
        AttemptResult::Interrupted => (
            TaskState::Failed,
            Some("interrupted: weir shut down".to_string()),
            None,
            None,
        ),
        AttemptResult::CrashEnded { exit_code } => (
            TaskState::Failed,
            Some("crash-ended: the scheduler running this attempt stopped (crash or kill) before it ended".to_string()),
            *exit_code,
            None,
        ),
        AttemptResult::Reschedule { .. } => (
            TaskState::Failed,
            Some("the DAG of this sensor is gone: it cannot poke again".to_string()),
            None,
            None,
        ),
    };
    let end = AttemptEnd {
        attempt_state: state,
        instance_state: state,
        next_retry_at: None,
        exit_code,
        output,
        error,
        refund_try: false,
        reschedule: false,
        crash_ended: matches!(result, AttemptResult::CrashEnded { .. }),
    };
    task_instances::finish_attempt(connection, key.run_pk, &key.task_id, key.try_number, &end, start, now).await?;
    Ok(())
}

fn mask_json(value: serde_json::Value, secrets: &[String]) -> serde_json::Value {
    if secrets.is_empty() {
        return value;
    }
    match value {
        serde_json::Value::String(text) => serde_json::Value::String(super::masking::mask_secrets(&text, secrets)),
        serde_json::Value::Object(map) => {
            serde_json::Value::Object(map.into_iter().map(|(k, v)| (k, mask_json(v, secrets))).collect())
        }
        other => other,
    }
}

impl Scheduler {
    /// Steps until the run `run_pk` has finished, recording executor events as they come; for
    /// `weir dags test`, which drives one run in its own process.
    pub async fn drive_until_finished(
        &self,
        run_pk: i64,
        events: &mut mpsc::UnboundedReceiver<ExecutorEvent>,
    ) -> anyhow::Result<RunState> {
        let mut step_needed = true;
        let mut next_wake = None;
        // The daemon adopts the run once this process stops beating (on another host) or is gone.
        let mut heartbeat = tokio::time::interval(HEARTBEAT_EVERY);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        heartbeat.tick().await;
        loop {
            if step_needed {
                next_wake = self.tick(Utc::now()).await?.next_wake;
                let mut connection = self.db.acquire().await?;
                let run = runs::get_by_pk(&mut connection, run_pk)
                    .await?
                    .context("the run being driven disappeared")?;
                drop(connection);
                if run.state.is_finished() {
                    return Ok(run.state);
                }
            }
            let sleep_for = next_wake
                .map(|wake| (wake - Utc::now()).to_std().unwrap_or(Duration::ZERO))
                .unwrap_or(Duration::from_secs(1));
            tokio::select! {
                Some(event) = events.recv() => {
                    let mut batch = vec![event];
                    while let Ok(more) = events.try_recv() {
                        batch.push(more);
                    }
                    step_needed = batch.iter().any(ExecutorEvent::ends_attempt);
                    self.handle_events(batch).await?;
                }
                _ = heartbeat.tick() => {
                    let mut connection = self.db.acquire().await?;
                    self.heartbeat(&mut connection, Utc::now()).await?;
                }
                _ = tokio::time::sleep(sleep_for) => step_needed = true,
            }
        }
    }
}
