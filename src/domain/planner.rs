//! The planner: from a run's recorded state and the clock, decide what happens next. Pure: the
//! scheduler loads a [`RunSnapshot`], calls [`plan_run`], commits the decisions, then acts.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::dag::{Dag, Task};
use super::ids::TaskId;
use super::schedule::{PlannedRun, Timetable};
use super::state::{RunState, TaskState};
use super::trigger_rule::{UpstreamCounts, Verdict};

/// One task instance as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskInstanceState {
    pub state: TaskState,
    pub try_number: u32,
    pub max_tries: u32,
    /// For `up_for_retry`: when the next attempt may start.
    pub next_retry_at: Option<DateTime<Utc>>,
}

impl TaskInstanceState {
    pub fn fresh(max_tries: u32) -> Self {
        TaskInstanceState {
            state: TaskState::None,
            try_number: 0,
            max_tries,
            next_retry_at: None,
        }
    }
}

/// What the planner needs to know about one run.
#[derive(Debug, Clone, Default)]
pub struct RunSnapshot {
    /// The run's task instance rows.
    pub tasks: HashMap<TaskId, TaskInstanceState>,
    /// The same tasks' states in the DAG's previous run (by logical date), for `depends_on_past`.
    /// `None` when this is the first run.
    pub previous_run: Option<HashMap<TaskId, TaskState>>,
}

/// A state change the planner asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The DAG has a task the run has no instance of yet (new run, or the file gained a task).
    Create(TaskId),
    /// The run has an instance of a task the DAG no longer has.
    Remove(TaskId),
    /// Dependencies are met: `none`/`up_for_retry` → `scheduled`.
    Schedule(TaskId),
    Skip(TaskId),
    UpstreamFailed(TaskId),
    FinishRun(RunState),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunPlan {
    pub decisions: Vec<Decision>,
    /// The earliest time something in this run becomes due without any event (a retry delay).
    pub wake_at: Option<DateTime<Utc>>,
}

/// Decides the next state changes of one running run. Changes cascade within one call: a failure
/// marks everything downstream `upstream_failed` in the same plan.
pub fn plan_run(dag: &Dag, snapshot: &RunSnapshot, now: DateTime<Utc>) -> RunPlan {
    let mut plan = RunPlan::default();
    let mut states: HashMap<&TaskId, TaskState> = HashMap::new();
    for task in &dag.tasks {
        let state = match snapshot.tasks.get(&task.task_id) {
            Some(instance) => instance.state,
            None => {
                plan.decisions.push(Decision::Create(task.task_id.clone()));
                TaskState::None
            }
        };
        states.insert(&task.task_id, state);
    }
    let mut removed: Vec<&TaskId> = snapshot
        .tasks
        .iter()
        .filter(|(task_id, instance)| {
            dag.task(task_id.as_str()).is_none() && !instance.state.is_active() && instance.state != TaskState::Removed
        })
        .map(|(task_id, _)| task_id)
        .collect();
    removed.sort();
    plan.decisions
        .extend(removed.into_iter().map(|task_id| Decision::Remove(task_id.clone())));

    for task in &dag.tasks {
        let state = states[&task.task_id];
        let instance = snapshot.tasks.get(&task.task_id);
        let next = match state {
            TaskState::None => match readiness(task, &states, snapshot) {
                Readiness::Ready => Some(Decision::Schedule(task.task_id.clone())),
                Readiness::Skip => Some(Decision::Skip(task.task_id.clone())),
                Readiness::UpstreamFailed => Some(Decision::UpstreamFailed(task.task_id.clone())),
                Readiness::Waiting(_) => None,
            },
            TaskState::UpForRetry | TaskState::UpForReschedule => {
                let due = instance.and_then(|instance| instance.next_retry_at);
                match due {
                    Some(due) if due > now => {
                        plan.wake_at = Some(plan.wake_at.map_or(due, |wake| wake.min(due)));
                        None
                    }
                    _ => Some(Decision::Schedule(task.task_id.clone())),
                }
            }
            _ => None,
        };
        if let Some(decision) = next {
            let new_state = match &decision {
                Decision::Schedule(_) => TaskState::Scheduled,
                Decision::Skip(_) => TaskState::Skipped,
                Decision::UpstreamFailed(_) => TaskState::UpstreamFailed,
                _ => state,
            };
            states.insert(&task.task_id, new_state);
            plan.decisions.push(decision);
        }
    }

    if let Some(final_state) = run_outcome(dag, &states) {
        plan.decisions.push(Decision::FinishRun(final_state));
    }
    plan
}

/// A run is over when every task has finished: `success` if every leaf succeeded or was
/// skipped, `failed` otherwise (§3.6).
fn run_outcome(dag: &Dag, states: &HashMap<&TaskId, TaskState>) -> Option<RunState> {
    if !states.values().all(|state| state.is_finished()) {
        return None;
    }
    let leaves_ok = dag
        .leaves()
        .all(|leaf| matches!(states[&leaf.task_id], TaskState::Success | TaskState::Skipped));
    Some(if leaves_ok { RunState::Success } else { RunState::Failed })
}

/// Whether a `none` task may be scheduled, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    Skip,
    UpstreamFailed,
    Waiting(Vec<String>),
}

fn readiness(task: &Task, states: &HashMap<&TaskId, TaskState>, snapshot: &RunSnapshot) -> Readiness {
    let upstream_states = task
        .upstream
        .iter()
        .map(|upstream| states.get(upstream).copied().unwrap_or(TaskState::None));
    let counts = UpstreamCounts::from_states(upstream_states);
    match task.trigger_rule.evaluate(counts) {
        Verdict::Skip => Readiness::Skip,
        Verdict::UpstreamFailed => Readiness::UpstreamFailed,
        Verdict::Wait => {
            let pending: Vec<String> = task
                .upstream
                .iter()
                .filter(|upstream| !states.get(upstream).is_some_and(|state| state.is_finished()))
                .map(|upstream| {
                    format!(
                        "{upstream} ({})",
                        states.get(upstream).copied().unwrap_or(TaskState::None)
                    )
                })
                .collect();
            Readiness::Waiting(vec![format!(
                "trigger rule {} is not met yet: waiting for upstream {}",
                task.trigger_rule,
                pending.join(", ")
            )])
        }
        Verdict::Ready => match past_blocker(task, snapshot) {
            Some(reason) => Readiness::Waiting(vec![reason]),
            None => Readiness::Ready,
        },
    }
}

/// `depends_on_past`: the same task in the previous run must have succeeded or been skipped.
fn past_blocker(task: &Task, snapshot: &RunSnapshot) -> Option<String> {
    if !task.depends_on_past {
        return None;
    }
    let previous = snapshot.previous_run.as_ref()?;
    match previous.get(&task.task_id) {
        None | Some(TaskState::Success | TaskState::Skipped) => None,
        Some(state) => Some(format!(
            "depends_on_past: `{}` in the previous run is {state}, not success or skipped",
            task.task_id
        )),
    }
}

/// Why a task has not started, as far as its own run decides (`weir tasks why`). Capacity
/// reasons (pools, parallelism) are added by the caller, which knows the occupancy.
pub fn explain(dag: &Dag, snapshot: &RunSnapshot, task_id: &TaskId, now: DateTime<Utc>) -> Vec<String> {
    let Some(task) = dag.task(task_id.as_str()) else {
        return vec![format!("the DAG has no task `{task_id}`")];
    };
    let states: HashMap<&TaskId, TaskState> = dag
        .tasks
        .iter()
        .map(|task| {
            (
                &task.task_id,
                snapshot.tasks.get(&task.task_id).map_or(TaskState::None, |i| i.state),
            )
        })
        .collect();
    let instance = snapshot
        .tasks
        .get(task_id)
        .copied()
        .unwrap_or(TaskInstanceState::fresh(1));
    match instance.state {
        TaskState::None => match readiness(task, &states, snapshot) {
            Readiness::Waiting(reasons) => reasons,
            Readiness::Ready => {
                vec!["dependencies are met: it will be scheduled at the next scheduler step".to_string()]
            }
            Readiness::Skip => {
                vec!["its trigger rule can no longer be met (a skip upstream): it will be skipped".to_string()]
            }
            Readiness::UpstreamFailed => {
                vec![
                    "its trigger rule can no longer be met (a failure upstream): it will be upstream_failed"
                        .to_string(),
                ]
            }
        },
        TaskState::UpForRetry => match instance.next_retry_at {
            Some(due) if due > now => vec![format!(
                "up for retry: attempt {} of {} may start at {}",
                instance.try_number + 1,
                instance.max_tries,
                due.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )],
            _ => vec!["up for retry: the retry delay has passed; it will be scheduled at the next step".to_string()],
        },
        TaskState::UpForReschedule => match instance.next_retry_at {
            Some(due) if due > now => vec![format!(
                "a sensor waiting for its condition: it pokes again at {}",
                due.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )],
            _ => vec!["a sensor due to poke again at the next step".to_string()],
        },
        TaskState::Scheduled => {
            vec!["scheduled: waiting for a free slot (see capacity below)".to_string()]
        }
        state => vec![format!("it is {state}, not waiting to run")],
    }
}

/// A scheduled task instance competing for a slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate<K> {
    pub key: K,
    pub run_key: i64,
    pub priority_weight: i64,
    pub logical_date: DateTime<Utc>,
    pub pool: String,
    pub pool_slots: u32,
    /// The run's DAG's `max_active_tasks`.
    pub max_active_tasks: u32,
}

/// What is already running, and the limits.
#[derive(Debug, Clone, Default)]
pub struct Capacity {
    pub parallelism: usize,
    pub running_total: usize,
    pub pool_size: HashMap<String, u32>,
    pub pool_used: HashMap<String, u32>,
    pub run_active: HashMap<i64, u32>,
}

/// Chooses which scheduled task instances start now: highest `priority_weight` first, then oldest
/// logical date, within `parallelism`, each run's `max_active_tasks` and pool slots (§3.6).
/// Returns the admitted candidates in start order.
pub fn admit<K: Clone>(candidates: &[Candidate<K>], capacity: &Capacity) -> Vec<Candidate<K>> {
    let mut order: Vec<&Candidate<K>> = candidates.iter().collect();
    order.sort_by(|a, b| {
        b.priority_weight
            .cmp(&a.priority_weight)
            .then(a.logical_date.cmp(&b.logical_date))
            .then(a.run_key.cmp(&b.run_key))
    });
    let mut running_total = capacity.running_total;
    let mut pool_used = capacity.pool_used.clone();
    let mut run_active = capacity.run_active.clone();
    let mut admitted = Vec::new();
    for candidate in order {
        if running_total >= capacity.parallelism {
            break;
        }
        let active = run_active.entry(candidate.run_key).or_insert(0);
        if *active >= candidate.max_active_tasks {
            continue;
        }
        let size = capacity.pool_size.get(&candidate.pool).copied().unwrap_or(0);
        let used = pool_used.entry(candidate.pool.clone()).or_insert(0);
        if *used + candidate.pool_slots > size {
            continue;
        }
        *used += candidate.pool_slots;
        *active += 1;
        running_total += 1;
        admitted.push(candidate.clone());
    }
    admitted
}

/// Why a scheduled candidate is not admitted, for `weir tasks why`.
pub fn capacity_blockers<K>(candidate: &Candidate<K>, capacity: &Capacity) -> Vec<String> {
    let mut reasons = Vec::new();
    if capacity.running_total >= capacity.parallelism {
        reasons.push(format!(
            "core.parallelism is full: {} of {} running",
            capacity.running_total, capacity.parallelism
        ));
    }
    let active = capacity.run_active.get(&candidate.run_key).copied().unwrap_or(0);
    if active >= candidate.max_active_tasks {
        reasons.push(format!(
            "max_active_tasks reached in this run: {active} of {}",
            candidate.max_active_tasks
        ));
    }
    match capacity.pool_size.get(&candidate.pool) {
        None => reasons.push(format!(
            "pool `{}` does not exist: add it under [pools] in config.toml",
            candidate.pool
        )),
        Some(&size) => {
            let used = capacity.pool_used.get(&candidate.pool).copied().unwrap_or(0);
            if used + candidate.pool_slots > size {
                reasons.push(format!(
                    "pool `{}` has {} of {size} slots free; this task needs {}",
                    candidate.pool,
                    size.saturating_sub(used),
                    candidate.pool_slots
                ));
            }
        }
    }
    reasons
}

/// Which queued runs start now: oldest logical date first, up to `max_active_runs` running.
pub fn runs_to_start(queued_oldest_first: &[i64], running: u32, max_active_runs: u32) -> Vec<i64> {
    let free = max_active_runs.saturating_sub(running) as usize;
    queued_oldest_first.iter().copied().take(free).collect()
}

/// The scheduled runs a DAG's timetable asks for at `now` (§3.1, §3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledRunsPlan {
    /// Runs to create now, oldest first.
    pub create: Vec<PlannedRun>,
    /// The next run after those, created later: when its `run_after` comes (if `run_after > now`)
    /// or when an active run finishes (if `max_active_runs` holds it back).
    pub next: Option<PlannedRun>,
}

/// Decides which scheduled runs to create: every due interval after `last` (the newest scheduled
/// logical date) with catchup, only the newest due one without, and never more than
/// `max_active_runs` active at once.
pub fn plan_scheduled_runs(
    timetable: &Timetable,
    catchup: bool,
    last: Option<DateTime<Utc>>,
    active_runs: u32,
    max_active_runs: u32,
    now: DateTime<Utc>,
) -> ScheduledRunsPlan {
    let mut create = Vec::new();
    let mut last = last;
    while let Some(planned) = timetable.next_to_create(last, catchup, now) {
        let active = active_runs.saturating_add(u32::try_from(create.len()).unwrap_or(u32::MAX));
        if planned.run_after > now || active >= max_active_runs {
            return ScheduledRunsPlan {
                create,
                next: Some(planned),
            };
        }
        last = Some(planned.logical_date);
        create.push(planned);
    }
    ScheduledRunsPlan { create, next: None }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::domain::validate::ValidationContext;
    use TaskState::{Failed, Running, Skipped, Success, UpForRetry, UpstreamFailed};
    const NONE: TaskState = TaskState::None;

    fn dag(yaml: &str) -> Dag {
        Dag::from_yaml(Path::new("/dags/test.yaml"), yaml, &ValidationContext::default())
            .unwrap_or_else(|error| panic!("{error}"))
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn snapshot(states: &[(&str, TaskState)]) -> RunSnapshot {
        RunSnapshot {
            tasks: states
                .iter()
                .map(|(task_id, state)| {
                    let instance = TaskInstanceState {
                        state: *state,
                        try_number: 1,
                        max_tries: 1,
                        next_retry_at: None,
                    };
                    (TaskId::parse(*task_id).unwrap(), instance)
                })
                .collect(),
            previous_run: None,
        }
    }

    /// The decisions as short sentences, in the order the planner made them.
    fn plan(dag: &Dag, snapshot: &RunSnapshot) -> Vec<String> {
        plan_run(dag, snapshot, at("2026-03-02T00:00:00Z"))
            .decisions
            .iter()
            .map(|decision| match decision {
                Decision::Create(task) => format!("create {task}"),
                Decision::Remove(task) => format!("remove {task}"),
                Decision::Schedule(task) => format!("schedule {task}"),
                Decision::Skip(task) => format!("skip {task}"),
                Decision::UpstreamFailed(task) => format!("upstream_failed {task}"),
                Decision::FinishRun(state) => format!("finish {state}"),
            })
            .collect()
    }

    const ETL: &str = "
tasks:
  extract: { command: 'true' }
  transform: { command: 'true', depends_on: [extract] }
  load: { command: 'true', depends_on: [transform] }
  cleanup: { command: 'true', depends_on: [extract, transform, load], trigger_rule: all_done }
";

    #[test]
    fn a_new_run_creates_every_task_and_schedules_the_roots() {
        let dag = dag(ETL);
        assert_eq!(
            plan(&dag, &RunSnapshot::default()),
            [
                "create extract",
                "create transform",
                "create load",
                "create cleanup",
                "schedule extract"
            ]
        );
    }

    #[test]
    fn a_finished_task_hands_off_to_its_downstream_in_the_same_plan() {
        let dag = dag(ETL);
        let snapshot = snapshot(&[
            ("extract", Success),
            ("transform", NONE),
            ("load", NONE),
            ("cleanup", NONE),
        ]);
        assert_eq!(plan(&dag, &snapshot), ["schedule transform"]);
    }

    #[test]
    fn a_failure_marks_downstream_upstream_failed_and_the_all_done_cleanup_still_runs() {
        let dag = dag(ETL);
        let snapshot = snapshot(&[
            ("extract", Failed),
            ("transform", NONE),
            ("load", NONE),
            ("cleanup", NONE),
        ]);
        assert_eq!(
            plan(&dag, &snapshot),
            ["upstream_failed transform", "upstream_failed load", "schedule cleanup"]
        );
        let after_cleanup = self::snapshot(&[
            ("extract", Failed),
            ("transform", UpstreamFailed),
            ("load", UpstreamFailed),
            ("cleanup", Success),
        ]);
        // The only leaf succeeded, so the run succeeds although a task failed: Airflow's leaf rule.
        assert_eq!(plan(&dag, &after_cleanup), ["finish success"]);
    }

    #[test]
    fn a_run_fails_when_a_leaf_is_upstream_failed() {
        let dag = dag("
tasks:
  a: { command: 'true' }
  b: { command: 'true', depends_on: [a] }
");
        assert_eq!(
            plan(&dag, &snapshot(&[("a", Failed), ("b", NONE)])),
            ["upstream_failed b", "finish failed"]
        );
    }

    #[test]
    fn a_skip_propagates_down_a_branch_and_a_join_with_none_failed_min_one_success_runs() {
        let dag = dag("
tasks:
  branch_a: { command: 'true' }
  branch_b: { command: 'true' }
  after_a: { command: 'true', depends_on: [branch_a] }
  after_b: { command: 'true', depends_on: [branch_b] }
  join: { command: 'true', depends_on: [after_a, after_b], trigger_rule: none_failed_min_one_success }
");
        let snapshot = snapshot(&[
            ("branch_a", Skipped),
            ("branch_b", Success),
            ("after_a", NONE),
            ("after_b", Success),
            ("join", NONE),
        ]);
        assert_eq!(plan(&dag, &snapshot), ["skip after_a", "schedule join"]);
    }

    #[test]
    fn a_skipped_leaf_still_counts_as_a_successful_run() {
        let dag = dag("
tasks:
  a: { command: 'true' }
  b: { command: 'true', depends_on: [a] }
");
        assert_eq!(
            plan(&dag, &snapshot(&[("a", Skipped), ("b", NONE)])),
            ["skip b", "finish success"]
        );
    }

    #[test]
    fn a_task_up_for_retry_waits_for_its_delay_then_is_scheduled() {
        let dag = dag("tasks:\n  flaky: { command: 'false', retries: 2 }\n");
        let mut snapshot = snapshot(&[("flaky", UpForRetry)]);
        let instance = snapshot.tasks.get_mut("flaky").unwrap();
        instance.next_retry_at = Some(at("2026-03-02T00:05:00Z"));
        let before = plan_run(&dag, &snapshot, at("2026-03-02T00:04:59Z"));
        assert_eq!(before.decisions, []);
        assert_eq!(before.wake_at, Some(at("2026-03-02T00:05:00Z")));
        let after = plan_run(&dag, &snapshot, at("2026-03-02T00:05:00Z"));
        assert_eq!(after.decisions, [Decision::Schedule(TaskId::parse("flaky").unwrap())]);
    }

    #[test]
    fn depends_on_past_waits_for_the_previous_run_of_the_same_task() {
        let dag = dag("tasks:\n  load: { command: 'true', depends_on_past: true }\n");
        let mut first_run = snapshot(&[("load", NONE)]);
        assert_eq!(
            plan(&dag, &first_run),
            ["schedule load"],
            "the first run has no past to wait for"
        );
        for (previous, expected) in [
            (Failed, vec![]),
            (Running, vec![]),
            (Success, vec!["schedule load"]),
            (Skipped, vec!["schedule load"]),
        ] {
            first_run.previous_run = Some(HashMap::from([(TaskId::parse("load").unwrap(), previous)]));
            assert_eq!(plan(&dag, &first_run), expected, "previous run's load is {previous}");
        }
        let reasons = explain(
            &dag,
            &first_run,
            &TaskId::parse("load").unwrap(),
            at("2026-03-02T00:00:00Z"),
        );
        assert_eq!(
            reasons,
            ["dependencies are met: it will be scheduled at the next scheduler step"]
        );
        first_run.previous_run = Some(HashMap::from([(TaskId::parse("load").unwrap(), Failed)]));
        let reasons = explain(
            &dag,
            &first_run,
            &TaskId::parse("load").unwrap(),
            at("2026-03-02T00:00:00Z"),
        );
        assert_eq!(
            reasons,
            ["depends_on_past: `load` in the previous run is failed, not success or skipped"]
        );
    }

    #[test]
    fn a_task_removed_from_the_file_is_marked_removed() {
        let dag = dag("tasks:\n  kept: { command: 'true' }\n");
        assert_eq!(
            plan(&dag, &snapshot(&[("kept", Success), ("gone", NONE)])),
            ["remove gone", "finish success"]
        );
    }

    fn candidate(key: &str, run_key: i64, priority_weight: i64, pool: &str, pool_slots: u32) -> Candidate<String> {
        Candidate {
            key: key.to_string(),
            run_key,
            priority_weight,
            logical_date: at("2026-03-01T00:00:00Z") + chrono::Duration::days(run_key),
            pool: pool.to_string(),
            pool_slots,
            max_active_tasks: 2,
        }
    }

    fn admitted(candidates: &[Candidate<String>], capacity: &Capacity) -> Vec<String> {
        admit(candidates, capacity)
            .into_iter()
            .map(|candidate| candidate.key)
            .collect()
    }

    #[test]
    fn admission_orders_by_priority_then_logical_date_within_parallelism() {
        let capacity = Capacity {
            parallelism: 3,
            pool_size: HashMap::from([("default".to_string(), 128)]),
            ..Capacity::default()
        };
        let candidates = [
            candidate("late_low", 3, 1, "default", 1),
            candidate("early_low", 1, 1, "default", 1),
            candidate("late_high", 4, 10, "default", 1),
            candidate("middle_low", 2, 1, "default", 1),
        ];
        assert_eq!(
            admitted(&candidates, &capacity),
            ["late_high", "early_low", "middle_low"]
        );
    }

    #[test]
    fn admission_honours_pool_slots_and_max_active_tasks_per_run() {
        let capacity = Capacity {
            parallelism: 32,
            running_total: 1,
            pool_size: HashMap::from([("default".to_string(), 128), ("warehouse".to_string(), 3)]),
            pool_used: HashMap::from([("warehouse".to_string(), 1)]),
            run_active: HashMap::from([(7, 1)]),
        };
        let candidates = [
            candidate("heavy", 1, 5, "warehouse", 2),
            candidate("light", 2, 4, "warehouse", 1),
            candidate("run7_first", 7, 3, "default", 1),
            candidate("run7_second", 7, 2, "default", 1),
            candidate("unknown_pool", 3, 1, "nowhere", 1),
        ];
        assert_eq!(admitted(&candidates, &capacity), ["heavy", "run7_first"]);
        let reasons = capacity_blockers(&candidates[1], &capacity);
        assert_eq!(
            reasons,
            Vec::<String>::new(),
            "light alone would fit: 2 of 3 slots free"
        );
        let busy = Capacity {
            pool_used: HashMap::from([("warehouse".to_string(), 3)]),
            ..capacity.clone()
        };
        assert_eq!(
            capacity_blockers(&candidates[1], &busy),
            ["pool `warehouse` has 0 of 3 slots free; this task needs 1"]
        );
        assert_eq!(
            capacity_blockers(&candidates[4], &capacity),
            ["pool `nowhere` does not exist: add it under [pools] in config.toml"]
        );
    }

    #[test]
    fn runs_start_oldest_first_up_to_max_active_runs() {
        assert_eq!(runs_to_start(&[11, 12, 13], 0, 2), [11, 12]);
        assert_eq!(runs_to_start(&[11, 12, 13], 1, 2), [11]);
        assert_eq!(runs_to_start(&[11, 12, 13], 2, 2), Vec::<i64>::new());
        assert_eq!(runs_to_start(&[11], 5, 2), Vec::<i64>::new());
    }

    fn hourly(start: &str, end: Option<&str>) -> Timetable {
        Timetable {
            schedule: crate::domain::schedule::Schedule::parse("@hourly", true).unwrap(),
            timezone: chrono_tz::Tz::UTC,
            start_date: Some(at(start)),
            end_date: end.map(at),
        }
    }

    fn logical_dates(plan: &ScheduledRunsPlan) -> Vec<String> {
        plan.create
            .iter()
            .map(|run| run.logical_date.format("%H:%M").to_string())
            .collect()
    }

    #[test]
    fn scheduled_run_creation_follows_catchup_max_active_runs_and_end_date() {
        let now = at("2026-03-01T05:30:00Z");
        let timetable = hourly("2026-03-01T00:00:00Z", None);
        // (catchup, last created, active runs, max_active_runs) -> runs created, next logical date
        type Case = (
            bool,
            Option<&'static str>,
            u32,
            u32,
            &'static [&'static str],
            Option<&'static str>,
        );
        let table: &[Case] = &[
            (
                true,
                None,
                0,
                16,
                &["00:00", "01:00", "02:00", "03:00", "04:00"],
                Some("05:00"),
            ),
            (true, None, 0, 2, &["00:00", "01:00"], Some("02:00")),
            (true, None, 1, 2, &["00:00"], Some("01:00")),
            (true, None, 2, 2, &[], Some("00:00")),
            (false, None, 0, 16, &["04:00"], Some("05:00")),
            // A daemon back after being down since the 01:00 run: with catchup every missed
            // interval gets its run, oldest first, and nothing is repeated.
            (
                true,
                Some("2026-03-01T01:00:00Z"),
                0,
                16,
                &["02:00", "03:00", "04:00"],
                Some("05:00"),
            ),
            (false, Some("2026-03-01T01:00:00Z"), 0, 16, &["04:00"], Some("05:00")),
            (false, Some("2026-03-01T04:00:00Z"), 0, 16, &[], Some("05:00")),
        ];
        for (catchup, last, active, max, expected, next) in table {
            let plan = plan_scheduled_runs(&timetable, *catchup, last.map(at), *active, *max, now);
            assert_eq!(
                logical_dates(&plan),
                *expected,
                "catchup {catchup}, last {last:?}, {active} of {max} active"
            );
            let next_logical = plan.next.map(|run| run.logical_date.format("%H:%M").to_string());
            assert_eq!(next_logical.as_deref(), *next, "catchup {catchup}, last {last:?}");
        }
        let ended = hourly("2026-03-01T00:00:00Z", Some("2026-03-01T02:00:00Z"));
        let plan = plan_scheduled_runs(&ended, true, None, 0, 16, now);
        assert_eq!(
            logical_dates(&plan),
            ["00:00", "01:00", "02:00"],
            "the interval starting at end_date is the last"
        );
        assert_eq!(plan.next, None);
    }
}
