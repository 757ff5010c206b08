//! Scenarios of the scheduler's cache: what a step may skip, and what makes it look again.

use std::path::Path;

use chrono::TimeZone;

use super::*;
use crate::domain::attempt_end::{AttemptResult, TryBudget, attempt_end};
use crate::domain::validate::ValidationContext;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0)
        .single()
        .expect("a valid date")
}

fn dag(yaml: &str) -> Dag {
    Dag::from_yaml(Path::new("/dags/test.yaml"), yaml, &ValidationContext::default()).expect("the test DAG is valid")
}

/// `extract >> load`, one retry each.
fn pipeline() -> Dag {
    dag(
        "dag_id: pipeline\ntasks:\n  extract:\n    command: 'true'\n    retries: 1\n  load:\n    command: 'true'\n    depends_on: [extract]\n",
    )
}

fn task(id: &str) -> TaskId {
    TaskId::parse(id.to_string()).expect("a valid task id")
}

fn dag_id(id: &str) -> DagId {
    DagId::parse(id.to_string()).expect("a valid DAG id")
}

/// The pipeline's run right after `extract` was scheduled.
fn extract_scheduled() -> RunSnapshot {
    let mut tasks = HashMap::new();
    tasks.insert(
        task("extract"),
        TaskInstanceState {
            state: TaskState::Scheduled,
            ..TaskInstanceState::fresh(2)
        },
    );
    tasks.insert(task("load"), TaskInstanceState::fresh(1));
    RunSnapshot {
        tasks,
        previous_run: None,
    }
}

/// A cache that planned run 1 of `pipeline` once (a full plan at `at`), kept its snapshot and
/// asked for no wake-up.
fn planned_once(at: Instant) -> SchedulerCache {
    let cache = SchedulerCache::default();
    let wanted = cache.runs_to_plan(&[(1, dag_id("pipeline"))], 7, now(), at, |_| false);
    assert_eq!(wanted, HashSet::from([1]), "a run never seen is planned");
    cache.keep_snapshot(&pipeline(), 1, extract_scheduled());
    cache.remember_wake(1, None);
    cache
}

#[test]
fn a_run_nothing_happened_to_is_not_planned_again() {
    let at = Instant::now();
    let cache = planned_once(at);
    let wanted = cache.runs_to_plan(&[(1, dag_id("pipeline"))], 7, now(), at, |_| false);
    assert!(wanted.is_empty(), "{wanted:?}");
}

#[test]
fn an_attempts_end_plans_its_run_at_the_next_step() {
    let at = Instant::now();
    let cache = planned_once(at);
    cache.touch_run(1);
    let wanted = cache.runs_to_plan(&[(1, dag_id("pipeline"))], 7, now(), at, |_| false);
    assert_eq!(wanted, HashSet::from([1]));
    // Planned once for it: the next step leaves it alone again.
    let wanted = cache.runs_to_plan(&[(1, dag_id("pipeline"))], 7, now(), at, |_| false);
    assert!(wanted.is_empty(), "{wanted:?}");
}

#[test]
fn a_run_is_planned_when_its_wake_up_comes_and_not_before() {
    let at = Instant::now();
    let cache = planned_once(at);
    let retry_at = now() + chrono::Duration::seconds(30);
    cache.remember_wake(1, Some(retry_at));
    assert_eq!(cache.next_wake(), Some(retry_at));
    let early = cache.runs_to_plan(&[(1, dag_id("pipeline"))], 7, now(), at, |_| false);
    assert!(early.is_empty(), "{early:?}");
    let due = cache.runs_to_plan(&[(1, dag_id("pipeline"))], 7, retry_at, at, |_| false);
    assert_eq!(due, HashSet::from([1]));
}

#[test]
fn a_moved_change_counter_plans_every_run_from_a_fresh_read() {
    let at = Instant::now();
    let cache = planned_once(at);
    let wanted = cache.runs_to_plan(&[(1, dag_id("pipeline"))], 8, now(), at, |_| false);
    assert_eq!(wanted, HashSet::from([1]));
    assert!(cache.plan_from_kept_snapshot(&pipeline(), 1, now()).is_none());
}

#[test]
fn every_run_is_planned_from_a_fresh_read_once_the_full_plan_is_due() {
    let at = Instant::now();
    let cache = planned_once(at);
    let before = cache.runs_to_plan(&[(1, dag_id("pipeline"))], 7, now(), at + FULL_PLAN_EVERY / 2, |_| {
        false
    });
    assert!(before.is_empty(), "{before:?}");
    let due = cache.runs_to_plan(&[(1, dag_id("pipeline"))], 7, now(), at + FULL_PLAN_EVERY, |_| false);
    assert_eq!(due, HashSet::from([1]));
    assert!(cache.plan_from_kept_snapshot(&pipeline(), 1, now()).is_none());
}

#[test]
fn changed_dags_empty_the_schedule_memo_and_plan_every_run() {
    let at = Instant::now();
    let cache = planned_once(at);
    let due = now() + chrono::Duration::hours(1);
    cache.remember_not_due_before(&dag_id("pipeline"), due);
    assert_eq!(cache.not_due_before(&dag_id("pipeline")), Some(due));
    cache.forget_schedule_memo();
    assert_eq!(cache.not_due_before(&dag_id("pipeline")), None);
    let wanted = cache.runs_to_plan(&[(1, dag_id("pipeline"))], 7, now(), at, |_| false);
    assert_eq!(wanted, HashSet::from([1]));
}

#[test]
fn the_runs_of_a_dag_that_depends_on_the_past_are_planned_together() {
    let at = Instant::now();
    let cache = SchedulerCache::default();
    let running = [(1, dag_id("daily")), (2, dag_id("daily")), (3, dag_id("other"))];
    cache.runs_to_plan(&running, 7, now(), at, |_| false);
    for run_pk in [1, 2, 3] {
        cache.remember_wake(run_pk, None);
    }
    cache.touch_run(2);
    let wanted = cache.runs_to_plan(&running, 7, now(), at, |dag| *dag == dag_id("daily"));
    assert_eq!(wanted, HashSet::from([1, 2]));
}

#[test]
fn a_finished_run_is_forgotten() {
    let at = Instant::now();
    let cache = planned_once(at);
    cache.remember_wake(1, Some(now()));
    cache.runs_to_plan(&[], 7, now(), at, |_| false);
    assert_eq!(cache.next_wake(), None);
    assert!(cache.plan_from_kept_snapshot(&pipeline(), 1, now()).is_none());
}

#[test]
fn the_schedulers_own_claim_start_and_end_keep_the_snapshot_true() {
    let cache = planned_once(Instant::now());
    let extract = task("extract");
    cache.claimed(1, &extract, 1);
    cache.started(1, &extract, 1);
    assert_eq!(
        cache
            .kept_instance(1, &extract)
            .map(|instance| (instance.state, instance.try_number)),
        Some((TaskState::Running, 1))
    );
    // A late start of an older try changes nothing.
    cache.claimed(1, &extract, 2);
    cache.started(1, &extract, 1);
    assert_eq!(
        cache.kept_instance(1, &extract).map(|instance| instance.state),
        Some(TaskState::Queued)
    );
    let end = attempt_end(
        pipeline().task("extract").map(|task| task.retry),
        2,
        &AttemptResult::Success { output: None },
        TryBudget {
            max_tries: 2,
            crash_ends: 0,
        },
        now(),
    );
    cache.ended(1, &extract, &end.instance_change());
    // From the kept snapshot alone, the planner schedules `load`.
    let plan = cache
        .plan_from_kept_snapshot(&pipeline(), 1, now())
        .expect("the snapshot is kept");
    assert_eq!(plan.decisions, vec![planner::Decision::Schedule(task("load"))]);
}

#[test]
fn a_failed_write_drops_every_kept_snapshot() {
    let cache = planned_once(Instant::now());
    cache.forget_snapshots();
    assert!(cache.plan_from_kept_snapshot(&pipeline(), 1, now()).is_none());
}

#[test]
fn runs_of_dags_that_depend_on_the_past_are_never_kept() {
    let cache = SchedulerCache::default();
    let daily = dag("dag_id: daily\ntasks:\n  work:\n    command: 'true'\n    depends_on_past: true\n");
    let mut tasks = HashMap::new();
    tasks.insert(task("work"), TaskInstanceState::fresh(1));
    cache.keep_snapshot(
        &daily,
        1,
        RunSnapshot {
            tasks,
            previous_run: None,
        },
    );
    assert!(cache.plan_from_kept_snapshot(&daily, 1, now()).is_none());
}

#[test]
fn dag_rows_are_kept_only_while_the_change_counter_stays_and_the_scheduler_does_not_write_them() {
    let cache = SchedulerCache::default();
    assert!(cache.dag_records(7).is_none());
    cache.keep_dag_records(7, Arc::new(DagRecords::new()));
    assert!(cache.dag_records(7).is_some());
    assert!(cache.dag_records(8).is_none(), "the counter moved");
    cache.forget_dag_records();
    assert!(cache.dag_records(7).is_none(), "the scheduler wrote a next run");
}

#[test]
fn resolved_connections_and_variables_are_reused_until_the_safety_net_interval_then_read_again() {
    let cache = SchedulerCache::default();
    let at = Instant::now();
    let mut resolved = Resolved::default();
    resolved.variables.insert("env".to_string(), "prod".to_string());
    cache.keep_resolved(at, 7, resolved);
    let reused = cache
        .resolved(at + FULL_PLAN_EVERY / 2, 7)
        .map(|resolved| resolved.variables);
    assert_eq!(
        reused,
        Some(std::collections::BTreeMap::from([(
            "env".to_string(),
            "prod".to_string()
        )]))
    );
    assert!(cache.resolved(at + FULL_PLAN_EVERY, 7).is_none());
}

#[test]
fn resolved_connections_and_variables_are_read_again_once_the_change_counter_moves() {
    let cache = SchedulerCache::default();
    let at = Instant::now();
    cache.keep_resolved(at, 7, Resolved::default());
    assert!(cache.resolved(at, 7).is_some());
    assert!(cache.resolved(at, 8).is_none(), "a variable or connection was changed");
}
