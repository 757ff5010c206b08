//! Task instances and their attempts: claims (and the race for one), starts, ends, clears, marks.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::AnyConnection;
use weir::domain::dag::{Dag, Task};
use weir::domain::ids::TaskId;
use weir::domain::state::{RunType, TaskState};
use weir::storage::runs::{self, DagRun};
use weir::storage::task_instances::{self, Attempt, AttemptEnd, AttemptStart, RecordedEnd, TaskInstance};
use weir::storage::{Db, StorageError};

use super::{PIPELINE, at, insert_run, new_run, task_id};
use crate::support::{TestDb, dag, databases};

/// A running run of [`PIPELINE`] with its task instances created, state `none`.
async fn pipeline_run(db: &Db, label: &str) -> (Dag, DagRun) {
    let pipeline = dag(PIPELINE);
    let run = insert_run(
        db,
        label,
        &new_run(
            "orders_pipeline",
            "scheduled__2026-03-01",
            RunType::Scheduled,
            "2026-03-01T05:30:00Z",
        ),
    )
    .await;
    let mut connection = db.acquire().await.expect(label);
    runs::start(&mut connection, run.pk, at("2026-03-02T05:30:00Z"))
        .await
        .expect(label);
    let tasks: Vec<&Task> = pipeline.tasks.iter().collect();
    task_instances::create(&mut connection, run.pk, &run.dag_id, &run.run_id, &tasks)
        .await
        .expect(label);
    (pipeline, run)
}

async fn instance(db: &Db, label: &str, run_pk: i64, task: &str) -> TaskInstance {
    let mut connection = db.acquire().await.expect(label);
    task_instances::get(&mut connection, run_pk, &task_id(task))
        .await
        .expect(label)
        .unwrap_or_else(|| panic!("{label}: task instance {task} is missing"))
}

/// The planner's `scheduled` transition, which makes a task instance claimable.
async fn schedule(connection: &mut AnyConnection, label: &str, run_pk: i64, task: &TaskId, now: DateTime<Utc>) {
    task_instances::set_state(connection, run_pk, task, TaskState::Scheduled, None, now)
        .await
        .expect(label);
}

fn failed_attempt() -> AttemptEnd {
    AttemptEnd {
        attempt_state: TaskState::Failed,
        instance_state: TaskState::Failed,
        next_retry_at: None,
        exit_code: Some(1),
        output: None,
        error: Some("exit code 1".to_string()),
        refund_try: false,
        reschedule: false,
        crash_ended: false,
    }
}

#[tokio::test]
async fn a_created_task_instance_is_in_state_none_with_a_budget_of_retries_plus_one() {
    for TestDb { db, label, .. } in &databases().await {
        let (_, run) = pipeline_run(db, label).await;
        let mut connection = db.acquire().await.expect(label);
        let listed = task_instances::for_run(&mut connection, run.pk).await.expect(label);
        let expected_extract = TaskInstance {
            run_pk: run.pk,
            dag_id: run.dag_id.clone(),
            run_id: run.run_id.clone(),
            task_id: task_id("extract"),
            state: TaskState::None,
            try_number: 0,
            max_tries: 3,
            pool: "default".to_string(),
            pool_slots: 1,
            priority_weight: 5,
            next_retry_at: None,
            queued_at: None,
            start_date: None,
            end_date: None,
            pid: None,
            hostname: None,
            crash_ends: 0,
        };
        let expected_load = TaskInstance {
            task_id: task_id("load"),
            max_tries: 1,
            pool_slots: 2,
            priority_weight: 1,
            ..expected_extract.clone()
        };
        assert_eq!(listed, vec![expected_extract, expected_load], "{label}");
    }
}

#[tokio::test]
async fn a_run_of_250_tasks_gets_every_instance_with_its_own_budget_and_slots() {
    // More rows than one INSERT statement carries: the rows are split over several.
    let mut yaml = String::from("dag_id: wide\ntasks:\n");
    for index in 0..250 {
        yaml.push_str(&format!(
            "  t{index:03}: {{ command: 'true', retries: {}, pool_slots: {} }}\n",
            index % 4,
            1 + index % 3
        ));
    }
    let wide = dag(&yaml);
    for TestDb { db, label, .. } in &databases().await {
        let run = insert_run(
            db,
            label,
            &new_run("wide", "manual__wide", RunType::Manual, "2026-03-01T00:00:00Z"),
        )
        .await;
        let mut connection = db.acquire().await.expect(label);
        let tasks: Vec<&Task> = wide.tasks.iter().collect();
        task_instances::create(&mut connection, run.pk, &run.dag_id, &run.run_id, &tasks)
            .await
            .expect(label);
        let listed = task_instances::for_run(&mut connection, run.pk).await.expect(label);
        let created: Vec<(String, TaskState, u32, u32)> = listed
            .iter()
            .map(|instance| {
                (
                    instance.task_id.to_string(),
                    instance.state,
                    instance.max_tries,
                    instance.pool_slots,
                )
            })
            .collect();
        let expected: Vec<(String, TaskState, u32, u32)> = (0..250u32)
            .map(|index| (format!("t{index:03}"), TaskState::None, index % 4 + 1, 1 + index % 3))
            .collect();
        assert_eq!(created, expected, "{label}");
    }
}

#[tokio::test]
async fn planner_transitions_are_recorded_and_finished_states_get_an_end_date() {
    for TestDb { db, label, .. } in &databases().await {
        let (pipeline, run) = pipeline_run(db, label).await;
        let mut connection = db.acquire().await.expect(label);
        let now = at("2026-03-02T06:00:00.000042Z");
        let extract = pipeline.task("extract").expect("the pipeline has extract");
        task_instances::set_state(
            &mut connection,
            run.pk,
            &extract.task_id,
            TaskState::Scheduled,
            Some(extract),
            now,
        )
        .await
        .expect(label);
        task_instances::set_state(&mut connection, run.pk, &task_id("load"), TaskState::Skipped, None, now)
            .await
            .expect(label);
        let scheduled = instance(db, label, run.pk, "extract").await;
        assert_eq!(
            (scheduled.state, scheduled.end_date),
            (TaskState::Scheduled, None),
            "{label}"
        );
        let skipped = instance(db, label, run.pk, "load").await;
        assert_eq!(
            (skipped.state, skipped.end_date),
            (TaskState::Skipped, Some(now)),
            "{label}"
        );
    }
}

#[tokio::test]
async fn scheduled_instances_wait_only_in_running_runs_and_per_owner() {
    let pipeline = dag(PIPELINE);
    let extract = &pipeline.tasks[0];
    for TestDb { db, label, .. } in &databases().await {
        let now = at("2026-03-05T06:00:00Z");
        let mut owned = new_run("orders_pipeline", "tested", RunType::Manual, "2026-03-02T05:30:00Z");
        owned.owner = Some("dags-test-1".to_string());
        let cases = [
            (
                new_run("orders_pipeline", "daemon", RunType::Manual, "2026-03-01T05:30:00Z"),
                true,
            ),
            (owned, true),
            (
                new_run(
                    "orders_pipeline",
                    "not_started",
                    RunType::Manual,
                    "2026-03-03T05:30:00Z",
                ),
                false,
            ),
        ];
        for (new, start) in &cases {
            let run = insert_run(db, label, new).await;
            let mut connection = db.acquire().await.expect(label);
            if *start {
                runs::start(&mut connection, run.pk, now).await.expect(label);
            }
            task_instances::create(&mut connection, run.pk, &run.dag_id, &run.run_id, &[extract])
                .await
                .expect(label);
            schedule(&mut connection, label, run.pk, &extract.task_id, now).await;
        }
        let mut connection = db.acquire().await.expect(label);
        let waiting_for = async |connection: &mut AnyConnection, owner: Option<&str>| {
            task_instances::scheduled(connection, owner, 100, 0)
                .await
                .expect(label)
                .into_iter()
                .map(|waiting| {
                    (
                        waiting.task_id.to_string(),
                        waiting.logical_date,
                        waiting.priority_weight,
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            waiting_for(&mut connection, None).await,
            [("extract".to_string(), at("2026-03-01T05:30:00Z"), 5)],
            "{label}: the daemon's"
        );
        assert_eq!(
            waiting_for(&mut connection, Some("dags-test-1")).await,
            [("extract".to_string(), at("2026-03-02T05:30:00Z"), 5)],
            "{label}: the owner's"
        );
    }
}

#[tokio::test]
async fn scheduled_instances_come_in_admission_order_a_page_at_a_time() {
    let pipeline = dag(PIPELINE);
    for TestDb { db, label, .. } in &databases().await {
        let now = at("2026-03-05T06:00:00Z");
        let older = insert_run(
            db,
            label,
            &new_run("orders_pipeline", "older", RunType::Manual, "2026-03-01T05:30:00Z"),
        )
        .await;
        let newer = insert_run(
            db,
            label,
            &new_run("orders_pipeline", "newer", RunType::Manual, "2026-03-02T05:30:00Z"),
        )
        .await;
        let mut connection = db.acquire().await.expect(label);
        for run in [&newer, &older] {
            runs::start(&mut connection, run.pk, now).await.expect(label);
            for task in &pipeline.tasks {
                task_instances::create(&mut connection, run.pk, &run.dag_id, &run.run_id, &[task])
                    .await
                    .expect(label);
                schedule(&mut connection, label, run.pk, &task.task_id, now).await;
            }
        }
        let order = |waiting: Vec<task_instances::Waiting>| {
            waiting
                .into_iter()
                .map(|waiting| (waiting.priority_weight, waiting.run_pk, waiting.task_id.to_string()))
                .collect::<Vec<_>>()
        };
        let everything = order(
            task_instances::scheduled(&mut connection, None, 1000, 0)
                .await
                .expect(label),
        );
        assert_eq!(everything.len(), 2 * pipeline.tasks.len(), "{label}");
        // Highest priority first; among equals the older run first, then by task.
        let mut expected = everything.clone();
        let logical = |run_pk: i64| if run_pk == older.pk { 0 } else { 1 };
        expected.sort_by(|a, b| b.0.cmp(&a.0).then(logical(a.1).cmp(&logical(b.1))).then(a.2.cmp(&b.2)));
        assert_eq!(everything, expected, "{label}");
        let mut paged = Vec::new();
        for offset in (0..everything.len()).step_by(2) {
            paged.extend(order(
                task_instances::scheduled(&mut connection, None, 2, offset)
                    .await
                    .expect(label),
            ));
        }
        assert_eq!(paged, everything, "{label}: pages of two add up to the whole list");
    }
}

#[tokio::test]
async fn a_claim_queues_the_first_try_and_a_second_claim_gets_nothing() {
    for TestDb { db, label, .. } in &databases().await {
        let (_, run) = pipeline_run(db, label).await;
        let extract = task_id("extract");
        let mut connection = db.acquire().await.expect(label);
        let now = at("2026-03-02T06:00:00.000001Z");
        assert_eq!(
            task_instances::claim(&mut connection, run.pk, &extract, &json!({}), now)
                .await
                .expect(label),
            None,
            "{label}: a task instance in state none is not claimable"
        );
        schedule(&mut connection, label, run.pk, &extract, now).await;
        let rendered = json!({"command": "echo extract", "env": {"DAY": "2026-03-01"}});
        assert_eq!(
            task_instances::claim(&mut connection, run.pk, &extract, &rendered, now)
                .await
                .expect(label),
            Some(1),
            "{label}"
        );
        assert_eq!(
            task_instances::claim(&mut connection, run.pk, &extract, &rendered, now)
                .await
                .expect(label),
            None,
            "{label}: already queued"
        );
        let queued = instance(db, label, run.pk, "extract").await;
        assert_eq!(
            (queued.state, queued.try_number, queued.queued_at),
            (TaskState::Queued, 1, Some(now)),
            "{label}"
        );
        let active = task_instances::active(&mut connection).await.expect(label);
        assert_eq!(active, vec![queued], "{label}");
        let attempts = task_instances::attempts(&mut connection, run.pk, &extract)
            .await
            .expect(label);
        assert_eq!(attempts.len(), 1, "{label}");
        assert_eq!(
            (
                attempts[0].try_number,
                attempts[0].state,
                attempts[0].queued_at,
                &attempts[0].rendered
            ),
            (1, TaskState::Queued, now, &rendered),
            "{label}"
        );
    }
}

#[tokio::test]
async fn an_attempt_that_starts_and_succeeds_is_recorded_in_full_with_its_output() {
    for TestDb { db, label, .. } in &databases().await {
        let (_, run) = pipeline_run(db, label).await;
        let extract = task_id("extract");
        let mut connection = db.acquire().await.expect(label);
        let queued_at = at("2026-03-02T06:00:00.000001Z");
        let started_at = at("2026-03-02T06:00:00.250002Z");
        let ended_at = at("2026-03-02T06:00:07.000003Z");
        schedule(&mut connection, label, run.pk, &extract, queued_at).await;
        let rendered = json!({"command": "echo extract"});
        let try_number = task_instances::claim(&mut connection, run.pk, &extract, &rendered, queued_at)
            .await
            .expect(label)
            .expect(label);
        task_instances::mark_started(
            &mut connection,
            run.pk,
            &extract,
            try_number,
            Some(4242),
            "worker-1",
            started_at,
        )
        .await
        .expect(label);
        let running = instance(db, label, run.pk, "extract").await;
        assert_eq!(
            (
                running.state,
                running.start_date,
                running.pid,
                running.hostname.as_deref()
            ),
            (TaskState::Running, Some(started_at), Some(4242), Some("worker-1")),
            "{label}"
        );

        let end = AttemptEnd {
            attempt_state: TaskState::Success,
            instance_state: TaskState::Success,
            next_retry_at: None,
            exit_code: Some(0),
            output: Some("42 rows".to_string()),
            error: None,
            refund_try: false,
            reschedule: false,
            crash_ended: false,
        };
        assert_eq!(
            task_instances::finish_attempt(&mut connection, run.pk, &extract, try_number, &end, None, ended_at)
                .await
                .expect(label),
            Some(RecordedEnd {
                start_date: Some(started_at)
            }),
            "{label}"
        );
        let finished = instance(db, label, run.pk, "extract").await;
        assert_eq!(
            (finished.state, finished.start_date, finished.end_date),
            (TaskState::Success, Some(started_at), Some(ended_at)),
            "{label}"
        );
        assert_eq!(
            task_instances::attempts(&mut connection, run.pk, &extract)
                .await
                .expect(label),
            vec![Attempt {
                try_number: 1,
                state: TaskState::Success,
                queued_at,
                start_date: Some(started_at),
                end_date: Some(ended_at),
                exit_code: Some(0),
                pid: Some(4242),
                hostname: Some("worker-1".to_string()),
                rendered,
                output: Some("42 rows".to_string()),
                error: None,
            }],
            "{label}"
        );
        assert_eq!(
            task_instances::outputs(&mut connection, run.pk).await.expect(label),
            HashMap::from([("extract".to_string(), "42 rows".to_string())]),
            "{label}"
        );
    }
}

#[tokio::test]
async fn an_attempt_that_started_and_ended_between_two_steps_is_recorded_in_one_write_with_its_start() {
    for test_db in databases().await {
        let TestDb { label, db, .. } = &test_db;
        let (_dag, run) = pipeline_run(db, label).await;
        let mut connection = db.acquire().await.expect(label);
        let extract = task_id("extract");
        let queued_at = at("2026-03-02T06:00:00.000001Z");
        let started_at = at("2026-03-02T06:00:00.004000Z");
        let ended_at = at("2026-03-02T06:00:00.009000Z");
        schedule(&mut connection, label, run.pk, &extract, queued_at).await;
        let try_number = task_instances::claim(&mut connection, run.pk, &extract, &json!({}), queued_at)
            .await
            .expect(label)
            .expect(label);
        let end = AttemptEnd {
            attempt_state: TaskState::Success,
            instance_state: TaskState::Success,
            next_retry_at: None,
            exit_code: Some(0),
            output: None,
            error: None,
            refund_try: false,
            reschedule: false,
            crash_ended: false,
        };
        let start = AttemptStart {
            at: started_at,
            pid: Some(99),
            hostname: "worker-2",
        };
        assert_eq!(
            task_instances::finish_attempt(
                &mut connection,
                run.pk,
                &extract,
                try_number,
                &end,
                Some(&start),
                ended_at
            )
            .await
            .expect(label),
            Some(RecordedEnd {
                start_date: Some(started_at)
            }),
            "{label}"
        );
        let finished = instance(db, label, run.pk, "extract").await;
        assert_eq!(
            (
                finished.state,
                finished.start_date,
                finished.end_date,
                finished.pid,
                finished.hostname.as_deref()
            ),
            (
                TaskState::Success,
                Some(started_at),
                Some(ended_at),
                Some(99),
                Some("worker-2")
            ),
            "{label}"
        );
        let attempts = task_instances::attempts(&mut connection, run.pk, &extract)
            .await
            .expect(label);
        assert_eq!(
            attempts
                .iter()
                .map(|attempt| (
                    attempt.state,
                    attempt.start_date,
                    attempt.end_date,
                    attempt.pid,
                    attempt.hostname.as_deref()
                ))
                .collect::<Vec<_>>(),
            vec![(
                TaskState::Success,
                Some(started_at),
                Some(ended_at),
                Some(99),
                Some("worker-2")
            )],
            "{label}"
        );
    }
}

#[tokio::test]
async fn a_failed_try_with_budget_left_goes_up_for_retry_and_the_next_claim_is_try_two() {
    for TestDb { db, label, .. } in &databases().await {
        let (_, run) = pipeline_run(db, label).await;
        let extract = task_id("extract");
        let mut connection = db.acquire().await.expect(label);
        let now = at("2026-03-02T06:00:00Z");
        let retry_at = at("2026-03-02T06:05:00.000009Z");
        schedule(&mut connection, label, run.pk, &extract, now).await;
        task_instances::claim(&mut connection, run.pk, &extract, &json!({}), now)
            .await
            .expect(label);
        let retry = AttemptEnd {
            instance_state: TaskState::UpForRetry,
            next_retry_at: Some(retry_at),
            output: Some("partial".to_string()),
            ..failed_attempt()
        };
        assert!(
            task_instances::finish_attempt(&mut connection, run.pk, &extract, 1, &retry, None, now)
                .await
                .expect(label)
                .is_some(),
            "{label}"
        );
        let waiting = instance(db, label, run.pk, "extract").await;
        assert_eq!(
            (
                waiting.state,
                waiting.next_retry_at,
                waiting.try_number,
                waiting.max_tries
            ),
            (TaskState::UpForRetry, Some(retry_at), 1, 3),
            "{label}"
        );

        schedule(&mut connection, label, run.pk, &extract, retry_at).await;
        assert_eq!(
            task_instances::claim(&mut connection, run.pk, &extract, &json!({}), retry_at)
                .await
                .expect(label),
            Some(2),
            "{label}"
        );
        let attempts = task_instances::attempts(&mut connection, run.pk, &extract)
            .await
            .expect(label);
        assert_eq!(
            attempts
                .iter()
                .map(|attempt| (attempt.try_number, attempt.state, attempt.exit_code))
                .collect::<Vec<_>>(),
            [(1, TaskState::Failed, Some(1)), (2, TaskState::Queued, None)],
            "{label}"
        );
        assert!(
            task_instances::outputs(&mut connection, run.pk)
                .await
                .expect(label)
                .is_empty(),
            "{label}: a failed attempt's output is not a task output"
        );
    }
}

#[tokio::test]
async fn finishing_an_attempt_after_a_clear_keeps_the_history_but_leaves_the_instance_alone() {
    for TestDb { db, label, .. } in &databases().await {
        let (_, run) = pipeline_run(db, label).await;
        let extract = task_id("extract");
        let mut connection = db.acquire().await.expect(label);
        let now = at("2026-03-02T06:00:00Z");
        schedule(&mut connection, label, run.pk, &extract, now).await;
        task_instances::claim(&mut connection, run.pk, &extract, &json!({}), now)
            .await
            .expect(label);
        task_instances::mark_started(&mut connection, run.pk, &extract, 1, Some(7), "worker-1", now)
            .await
            .expect(label);
        let mut transaction = db.begin().await.expect(label);
        task_instances::clear(&mut transaction, run.pk, &extract, 2)
            .await
            .expect(label);
        transaction.commit().await.expect(label);

        assert!(
            task_instances::finish_attempt(&mut connection, run.pk, &extract, 1, &failed_attempt(), None, now)
                .await
                .expect(label)
                .is_none(),
            "{label}: the clear wins"
        );
        let cleared = instance(db, label, run.pk, "extract").await;
        assert_eq!(
            (cleared.state, cleared.end_date, cleared.try_number),
            (TaskState::None, None, 1),
            "{label}"
        );
        let attempts = task_instances::attempts(&mut connection, run.pk, &extract)
            .await
            .expect(label);
        assert_eq!(
            attempts[0].state,
            TaskState::Failed,
            "{label}: the attempt's end is history"
        );
    }
}

#[tokio::test]
async fn clearing_renews_the_retry_budget_from_the_current_try() {
    for TestDb { db, label, .. } in &databases().await {
        let (_, run) = pipeline_run(db, label).await;
        let extract = task_id("extract");
        let mut connection = db.acquire().await.expect(label);
        let now = at("2026-03-02T06:00:00Z");
        for try_number in 1..=3 {
            schedule(&mut connection, label, run.pk, &extract, now).await;
            assert_eq!(
                task_instances::claim(&mut connection, run.pk, &extract, &json!({}), now)
                    .await
                    .expect(label),
                Some(try_number),
                "{label}"
            );
            task_instances::finish_attempt(
                &mut connection,
                run.pk,
                &extract,
                try_number,
                &failed_attempt(),
                None,
                now,
            )
            .await
            .expect(label);
        }
        let exhausted = instance(db, label, run.pk, "extract").await;
        assert_eq!(
            (exhausted.state, exhausted.try_number, exhausted.max_tries),
            (TaskState::Failed, 3, 3),
            "{label}"
        );

        let mut transaction = db.begin().await.expect(label);
        task_instances::clear(&mut transaction, run.pk, &extract, 2)
            .await
            .expect(label);
        transaction.commit().await.expect(label);
        let cleared = instance(db, label, run.pk, "extract").await;
        assert_eq!(
            (
                cleared.state,
                cleared.try_number,
                cleared.max_tries,
                cleared.end_date,
                cleared.next_retry_at
            ),
            (TaskState::None, 3, 3 + 2 + 1, None, None),
            "{label}: max_tries = try_number + retries + 1"
        );
        assert_eq!(
            task_instances::attempts(&mut connection, run.pk, &extract)
                .await
                .expect(label)
                .len(),
            3,
            "{label}: history stays"
        );
    }
}

#[tokio::test]
async fn marking_sets_a_final_state_by_hand_and_reports_whether_the_instance_exists() {
    for TestDb { db, label, .. } in &databases().await {
        let (_, run) = pipeline_run(db, label).await;
        let mut connection = db.begin().await.expect(label);
        let now = at("2026-03-02T07:00:00.000777Z");
        assert!(
            task_instances::mark(&mut connection, run.pk, &task_id("load"), TaskState::Success, now)
                .await
                .expect(label),
            "{label}"
        );
        connection.commit().await.expect(label);
        let mut connection = db.begin().await.expect(label);
        let marked = instance(db, label, run.pk, "load").await;
        assert_eq!(
            (marked.state, marked.end_date),
            (TaskState::Success, Some(now)),
            "{label}"
        );
        assert!(
            !task_instances::mark(&mut connection, run.pk, &task_id("missing"), TaskState::Failed, now)
                .await
                .expect(label),
            "{label}"
        );
    }
}

/// Many schedulers racing for one scheduled task instance: exactly one wins try 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_of_one_task_instance_succeed_exactly_once() {
    const CLAIMANTS: usize = 8;
    for TestDb { db, label, .. } in &databases().await {
        let (_, run) = pipeline_run(db, label).await;
        let extract = task_id("extract");
        let now = at("2026-03-02T06:00:00Z");
        {
            let mut connection = db.acquire().await.expect(label);
            schedule(&mut connection, label, run.pk, &extract, now).await;
        }
        let run_pk = run.pk;
        let start_together = Arc::new(tokio::sync::Barrier::new(CLAIMANTS));
        let claimants: Vec<_> = (0..CLAIMANTS)
            .map(|_| {
                let db = db.clone();
                let extract = extract.clone();
                let start_together = Arc::clone(&start_together);
                tokio::spawn(async move {
                    start_together.wait().await;
                    let mut transaction = db.begin().await?;
                    let claimed = task_instances::claim(&mut transaction, run_pk, &extract, &json!({}), now).await?;
                    transaction.commit().await?;
                    Ok::<_, StorageError>(claimed)
                })
            })
            .collect();
        let mut claims = Vec::new();
        for claimant in claimants {
            claims.push(claimant.await.expect("a claimant does not panic").expect(label));
        }
        claims.sort();
        let mut expected = vec![None; CLAIMANTS - 1];
        expected.push(Some(1));
        assert_eq!(claims, expected, "{label}");

        let mut connection = db.acquire().await.expect(label);
        let attempts = task_instances::attempts(&mut connection, run.pk, &extract)
            .await
            .expect(label);
        assert_eq!(attempts.len(), 1, "{label}: one attempt recorded");
        let claimed = instance(db, label, run.pk, "extract").await;
        assert_eq!((claimed.state, claimed.try_number), (TaskState::Queued, 1), "{label}");
    }
}
