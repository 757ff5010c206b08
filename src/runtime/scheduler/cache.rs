//! What the scheduler keeps between steps so that a step with nothing to do reads (almost)
//! nothing: the DAG rows, the task instances of running runs, each run's next wake-up, when each
//! DAG's timetable is next due, and the resolved connections and variables.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::DagRecords;
use crate::domain::attempt_end::InstanceChange;
use crate::domain::dag::Dag;
use crate::domain::ids::{DagId, TaskId};
use crate::domain::planner::{self, RunPlan, RunSnapshot, TaskInstanceState};
use crate::domain::state::TaskState;
use crate::runtime::connections::Resolved;

/// How often every running run is planned, and connections and variables are read, even when
/// nothing says they changed: a safety net for writes that reach the database without moving the
/// change counter (every write through weir that schedulers keep moves it).
pub const FULL_PLAN_EVERY: Duration = Duration::from_secs(10);

/// Everything the scheduler keeps between steps. Each entry is a copy of database state or a
/// promise that nothing is due, so each may only make a step skip work that has nothing to do,
/// never make a wrong decision: a plan with decisions is always made again from a fresh read.
///
/// The invalidation rule:
/// - **The change counter moved** (the CLI, API, UI, the loader or another process committed a
///   `storage::Transaction` that wrote what schedulers keep): the DAG rows and the resolved
///   connections and variables are read again (they are kept with the counter they were read
///   at), and the next plan is a full one.
/// - **The DAGs changed, or the loop saw the counter move, an outage end, or recovery take over
///   attempts** ([`forget_schedule_memo`](Self::forget_schedule_memo)): the schedule memo is
///   emptied and the next plan is a full one.
/// - **A full plan** (the above, and at least every [`FULL_PLAN_EVERY`], a safety net for writes
///   that do not move the counter) drops every kept run snapshot: each run is planned from a
///   fresh read.
/// - **The scheduler's own writes** keep the rest true: a next-run write drops the DAG rows; a
///   claim, a start and an attempt's end are applied to the kept snapshot of their run (an end
///   through [`InstanceChange::apply`], the same change storage's `finish_attempt` writes), and
///   an end also marks its run to be planned at the next step; a plan with decisions drops its
///   run's snapshot; a run no longer running is dropped. A step or a batch of events that fails
///   may have rolled back what was applied: all snapshots (and, for a step, the DAG rows) are
///   dropped.
/// - **Time**: resolved connections and variables are kept for at most [`FULL_PLAN_EVERY`]; a run's wake-up
///   (a retry delay, a sensor's poke) and a DAG's next due time make it looked at again.
#[derive(Debug, Default)]
pub struct SchedulerCache {
    kept: Mutex<Kept>,
}

#[derive(Debug, Default)]
struct Kept {
    /// Per DAG, the time before which its timetable has nothing to create: lets a step skip the
    /// database for DAGs that are not due.
    not_due: HashMap<DagId, DateTime<Utc>>,
    /// The DAG rows (paused, next run) as last read, with the change counter at that read. With
    /// 1,000 DAGs, reading them at every step tripled a hand-off (2 -> 7 ms).
    dag_records: Option<(i64, Arc<DagRecords>)>,
    /// Connections and variables as last read, when, and the change counter at that read: busy
    /// steps reuse them instead of reading and decrypting them at every dispatch.
    resolved: Option<(Instant, i64, Resolved)>,
    scope: PlanScope,
}

/// The runs a step must plan. Planning reads every task instance of a run, so planning all of
/// them at every step costs O(running runs × tasks) per finished task; this keeps a step to the
/// runs an event touched, the runs whose wake-up is due and the runs not seen before.
#[derive(Debug, Default)]
struct PlanScope {
    plan_all: bool,
    last_full: Option<Instant>,
    last_change_seq: Option<i64>,
    /// Runs with a finished attempt since they were last planned.
    dirty: HashSet<i64>,
    /// Runs planned at least once, with the time their plan asked to be looked at again.
    known: HashMap<i64, Option<DateTime<Utc>>>,
    /// The task instances of running runs as last read, kept current with this scheduler's own
    /// writes (claims, starts, ends). A run planned from here with nothing to decide needs no
    /// read at all, which is most of them: in a fan-out, each of hundreds of ends changes nothing
    /// until the last one. Runs of DAGs with `depends_on_past` are not kept (their plans read the
    /// previous run too).
    snapshots: HashMap<i64, RunSnapshot>,
}

impl PlanScope {
    fn needs_full_plan(&self, at: Instant) -> bool {
        self.plan_all
            || self
                .last_full
                .is_none_or(|last| at.duration_since(last) >= FULL_PLAN_EVERY)
    }

    /// Whether `run_pk` must be planned at `now`.
    fn wants(&self, run_pk: i64, now: DateTime<Utc>) -> bool {
        self.dirty.contains(&run_pk)
            || match self.known.get(&run_pk) {
                None => true,
                Some(wake) => wake.is_some_and(|wake| wake <= now),
            }
    }
}

impl SchedulerCache {
    /// The kept state. A panic while it was held may have left it half updated: start afresh.
    fn kept(&self) -> MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(|poisoned| {
            let mut kept = poisoned.into_inner();
            *kept = Kept::default();
            kept
        })
    }

    /// When `dag_id`'s timetable is next due, if a step found it not due yet.
    pub fn not_due_before(&self, dag_id: &DagId) -> Option<DateTime<Utc>> {
        self.kept().not_due.get(dag_id).copied()
    }

    /// `dag_id`'s timetable has nothing to create before `due`.
    pub fn remember_not_due_before(&self, dag_id: &DagId, due: DateTime<Utc>) {
        self.kept().not_due.insert(dag_id.clone(), due);
    }

    /// Forgets what is known about schedules; the next step looks at every DAG again and plans
    /// every running run from a fresh read.
    pub fn forget_schedule_memo(&self) {
        let mut kept = self.kept();
        kept.not_due.clear();
        kept.scope.plan_all = true;
    }

    /// The DAG rows as last read, if the change counter is still `change_seq`.
    pub fn dag_records(&self, change_seq: i64) -> Option<Arc<DagRecords>> {
        self.kept()
            .dag_records
            .as_ref()
            .filter(|(seq, _)| *seq == change_seq)
            .map(|(_, records)| Arc::clone(records))
    }

    /// Keeps the DAG rows read while the change counter was `change_seq`.
    pub fn keep_dag_records(&self, change_seq: i64, records: Arc<DagRecords>) {
        self.kept().dag_records = Some((change_seq, records));
    }

    /// This scheduler wrote a DAG row (its next run): the next step reads them again.
    pub fn forget_dag_records(&self) {
        self.kept().dag_records = None;
    }

    /// Connections and variables, if read less than [`FULL_PLAN_EVERY`] before `at` while the
    /// change counter was already `change_seq`.
    pub fn resolved(&self, at: Instant, change_seq: i64) -> Option<Resolved> {
        self.kept()
            .resolved
            .as_ref()
            .filter(|(read_at, seq, _)| *seq == change_seq && at.saturating_duration_since(*read_at) < FULL_PLAN_EVERY)
            .map(|(_, _, resolved)| resolved.clone())
    }

    /// Keeps connections and variables read at `at`, with the change counter read before them.
    pub fn keep_resolved(&self, at: Instant, change_seq: i64, resolved: Resolved) {
        self.kept().resolved = Some((at, change_seq, resolved));
    }

    /// Which of the `running` runs (primary key, DAG) a step at `now` (`at` on the monotonic
    /// clock) plans, with the change counter at `change_seq`; starts the next scope afresh.
    /// `depends_on_past` says which DAGs link a run to their other runs: those are planned
    /// together.
    pub fn runs_to_plan(
        &self,
        running: &[(i64, DagId)],
        change_seq: i64,
        now: DateTime<Utc>,
        at: Instant,
        depends_on_past: impl Fn(&DagId) -> bool,
    ) -> HashSet<i64> {
        let mut kept = self.kept();
        let scope = &mut kept.scope;
        if scope.last_change_seq != Some(change_seq) {
            scope.last_change_seq = Some(change_seq);
            scope.plan_all = true;
        }
        let plan_all = scope.needs_full_plan(at);
        let mut wanted: HashSet<i64> = running
            .iter()
            .filter(|(pk, _)| plan_all || scope.wants(*pk, now))
            .map(|(pk, _)| *pk)
            .collect();
        let linked: HashSet<&DagId> = running
            .iter()
            .filter(|(pk, dag_id)| wanted.contains(pk) && depends_on_past(dag_id))
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
            scope.last_full = Some(at);
            // Someone else may have written: every run is planned from a fresh read.
            scope.snapshots.clear();
        }
        wanted
    }

    /// A run was planned: it is looked at again at `wake` (or when an event touches it).
    pub fn remember_wake(&self, run_pk: i64, wake: Option<DateTime<Utc>>) {
        self.kept().scope.known.insert(run_pk, wake);
    }

    /// The earliest wake-up any running run asked for.
    pub fn next_wake(&self) -> Option<DateTime<Utc>> {
        self.kept().scope.known.values().flatten().min().copied()
    }

    /// Something happened to a run (an attempt ended): the next step plans it.
    pub fn touch_run(&self, run_pk: i64) {
        self.kept().scope.dirty.insert(run_pk);
    }

    /// The plan of a run from its kept snapshot, if there is one.
    pub fn plan_from_kept_snapshot(&self, dag: &Dag, run_pk: i64, now: DateTime<Utc>) -> Option<RunPlan> {
        let kept = self.kept();
        let snapshot = kept.scope.snapshots.get(&run_pk)?;
        Some(planner::plan_run(dag, snapshot, now))
    }

    /// Keeps a run's freshly read snapshot for later plans (not for DAGs with `depends_on_past`).
    pub fn keep_snapshot(&self, dag: &Dag, run_pk: i64, snapshot: RunSnapshot) {
        if dag.tasks.iter().any(|task| task.depends_on_past) {
            return;
        }
        self.kept().scope.snapshots.insert(run_pk, snapshot);
    }

    /// The run's plan had decisions: it is read again before it is next planned.
    pub fn forget_snapshot(&self, run_pk: i64) {
        self.kept().scope.snapshots.remove(&run_pk);
    }

    /// Writes applied to the snapshots may have been rolled back.
    pub fn forget_snapshots(&self) {
        self.kept().scope.snapshots.clear();
    }

    /// This scheduler claimed try `try_number` of a task instance (`scheduled → queued`).
    pub fn claimed(&self, run_pk: i64, task_id: &TaskId, try_number: u32) {
        self.update_kept_instance(run_pk, task_id, |instance| {
            instance.state = TaskState::Queued;
            instance.try_number = try_number;
            instance.next_retry_at = None;
        });
    }

    /// Try `try_number` of a task instance started: running, unless it has moved on.
    pub fn started(&self, run_pk: i64, task_id: &TaskId, try_number: u32) {
        self.update_kept_instance(run_pk, task_id, |instance| {
            if instance.state == TaskState::Queued && instance.try_number == try_number {
                instance.state = TaskState::Running;
            }
        });
    }

    /// An attempt's end was recorded on its task instance: the same change, applied here.
    pub fn ended(&self, run_pk: i64, task_id: &TaskId, change: &InstanceChange) {
        self.update_kept_instance(run_pk, task_id, |instance| change.apply(instance));
    }

    fn update_kept_instance(&self, run_pk: i64, task_id: &TaskId, update: impl FnOnce(&mut TaskInstanceState)) {
        if let Some(instance) = self
            .kept()
            .scope
            .snapshots
            .get_mut(&run_pk)
            .and_then(|snapshot| snapshot.tasks.get_mut(task_id))
        {
            update(instance);
        }
    }

    /// The kept task instance, for tests.
    #[cfg(test)]
    fn kept_instance(&self, run_pk: i64, task_id: &TaskId) -> Option<TaskInstanceState> {
        self.kept()
            .scope
            .snapshots
            .get(&run_pk)
            .and_then(|snapshot| snapshot.tasks.get(task_id))
            .cloned()
    }
}

#[cfg(test)]
mod tests;
