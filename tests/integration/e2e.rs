//! End-to-end runs through the real scheduler, the local executor and real child processes, on
//! SQLite and PostgreSQL: retries, failure propagation, skips and timeouts.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DurationRound, Utc};
use weir::domain::dag::Dag;
use weir::domain::ids::TaskId;
use weir::domain::state::{RunState, RunType, TaskState};
use weir::storage::Db;
use weir::storage::runs::{self, DagRun};
use weir::storage::task_instances;

use crate::support;
use crate::support::test_app::TestApp;

fn states(pairs: &[(&str, TaskState)]) -> BTreeMap<String, TaskState> {
    pairs.iter().map(|(task, state)| (task.to_string(), *state)).collect()
}

#[tokio::test]
async fn a_flaky_task_is_retried_until_it_succeeds() {
    for test_db in support::databases().await {
        let mut harness = TestApp::new(
            &test_db,
            r#"
dag_id: flaky
tasks:
  flaky:
    command: 'echo "try $WEIR_TRY_NUMBER"; [ "$WEIR_TRY_NUMBER" -ge 3 ]'
    retries: 3
    retry_delay: 0s
"#,
        )
        .await;
        let run = harness.trigger().await;
        assert_eq!(harness.run_to_end(&run).await, RunState::Success, "{}", test_db.label);
        let flaky = &harness.instances(&run).await["flaky"];
        assert_eq!(
            (flaky.state, flaky.try_number),
            (TaskState::Success, 3),
            "{}",
            test_db.label
        );
        let mut connection = harness.db.acquire().await.unwrap();
        let attempts = task_instances::attempts(&mut connection, run.pk, &TaskId::parse("flaky").unwrap())
            .await
            .unwrap();
        let summary: Vec<(u32, TaskState, Option<i64>)> =
            attempts.iter().map(|a| (a.try_number, a.state, a.exit_code)).collect();
        assert_eq!(
            summary,
            [
                (1, TaskState::Failed, Some(1)),
                (2, TaskState::Failed, Some(1)),
                (3, TaskState::Success, Some(0))
            ],
            "{}",
            test_db.label
        );
        assert_eq!(
            attempts[2].output.as_deref(),
            Some("\"try 3\""),
            "the last stdout line is the output"
        );
    }
}

#[tokio::test]
async fn a_failure_propagates_upstream_failed_while_an_all_done_cleanup_still_runs() {
    for test_db in support::databases().await {
        let mut harness = TestApp::new(
            &test_db,
            r#"
dag_id: failing
tasks:
  extract: { command: "echo starting; exit 3" }
  load: { command: "true", depends_on: [extract] }
  report: { command: "true", depends_on: [load] }
  cleanup: { command: "echo cleaning", depends_on: [load], trigger_rule: all_done }
"#,
        )
        .await;
        let run = harness.trigger().await;
        assert_eq!(harness.run_to_end(&run).await, RunState::Failed, "{}", test_db.label);
        assert_eq!(
            harness.states(&run).await,
            states(&[
                ("cleanup", TaskState::Success),
                ("extract", TaskState::Failed),
                ("load", TaskState::UpstreamFailed),
                ("report", TaskState::UpstreamFailed),
            ]),
            "{}",
            test_db.label
        );
    }
}

#[tokio::test]
async fn exit_code_99_skips_a_branch_and_none_failed_joins_it() {
    for test_db in support::databases().await {
        let mut harness = TestApp::new(
            &test_db,
            r#"
dag_id: branching
tasks:
  start: { command: "true" }
  weekend_only: { command: "exit 99", depends_on: [start] }
  weekend_report: { command: "true", depends_on: [weekend_only] }
  daily_report: { command: "true", depends_on: [start] }
  publish: { command: "true", depends_on: [weekend_report, daily_report], trigger_rule: none_failed }
"#,
        )
        .await;
        let run = harness.trigger().await;
        assert_eq!(harness.run_to_end(&run).await, RunState::Success, "{}", test_db.label);
        assert_eq!(
            harness.states(&run).await,
            states(&[
                ("daily_report", TaskState::Success),
                ("publish", TaskState::Success),
                ("start", TaskState::Success),
                ("weekend_only", TaskState::Skipped),
                ("weekend_report", TaskState::Skipped),
            ]),
            "{}",
            test_db.label
        );
    }
}

#[tokio::test]
async fn a_timed_out_task_fails_and_its_whole_process_tree_is_gone() {
    for test_db in support::databases().await {
        let mut harness = TestApp::new(
            &test_db,
            r#"
dag_id: slow
tasks:
  slow:
    command: "sleep 300 & sleep 300"
    timeout: 500ms
"#,
        )
        .await;
        let run = harness.trigger().await;
        assert_eq!(harness.run_to_end(&run).await, RunState::Failed, "{}", test_db.label);
        let slow = &harness.instances(&run).await["slow"];
        assert_eq!(slow.state, TaskState::Failed);
        let group = i32::try_from(slow.pid.expect("the attempt's pid is recorded")).unwrap();
        support::wait_until("the timed-out process group is gone", Duration::from_secs(10), || {
            support::live_processes_in_group(group).is_empty()
        })
        .await;
        let mut connection = harness.db.acquire().await.unwrap();
        let attempts = task_instances::attempts(&mut connection, run.pk, &TaskId::parse("slow").unwrap())
            .await
            .unwrap();
        let error = attempts[0].error.clone().unwrap_or_default();
        assert!(error.starts_with("timed out after 500ms"), "{}: {error}", test_db.label);
    }
}

#[tokio::test]
async fn a_template_that_cannot_render_fails_the_attempt_and_names_the_field() {
    for test_db in support::databases().await {
        let mut harness = TestApp::new(
            &test_db,
            "dag_id: typo\ntasks:\n  t: { command: \"echo {{ params.regoin }}\" }\n",
        )
        .await;
        let run = harness.trigger().await;
        assert_eq!(harness.run_to_end(&run).await, RunState::Failed, "{}", test_db.label);
        let mut connection = harness.db.acquire().await.unwrap();
        let attempts = task_instances::attempts(&mut connection, run.pk, &TaskId::parse("t").unwrap())
            .await
            .unwrap();
        let error = attempts[0].error.clone().unwrap_or_default();
        assert!(
            error.starts_with("cannot render `command`: undefined value"),
            "{}: {error}",
            test_db.label
        );
    }
}

#[tokio::test]
async fn outputs_flow_downstream_and_rendered_fields_are_stored_with_secrets_masked() {
    for test_db in support::databases().await {
        let mut harness = TestApp::new(
            &test_db,
            r#"
dag_id: outputs
tasks:
  count:
    command: 'echo "{\"rows\": 42}" > "$WEIR_OUTPUT"'
  report:
    command: 'echo rows={{ tasks.count.output.rows }} "token=$API_TOKEN"'
    env: { API_TOKEN: "s3cr3t-value" }
    depends_on: [count]
"#,
        )
        .await;
        let run = harness.trigger().await;
        assert_eq!(harness.run_to_end(&run).await, RunState::Success, "{}", test_db.label);
        let mut connection = harness.db.acquire().await.unwrap();
        let attempts = task_instances::attempts(&mut connection, run.pk, &TaskId::parse("report").unwrap())
            .await
            .unwrap();
        assert_eq!(
            attempts[0].output.as_deref(),
            Some("\"rows=42 token=***\""),
            "{}",
            test_db.label
        );
        assert_eq!(attempts[0].rendered["env"]["API_TOKEN"], "***", "{}", test_db.label);
        assert_eq!(attempts[0].rendered["command"], "echo rows=42 \"token=$API_TOKEN\"");
    }
}

pub async fn all_runs(db: &Db, dag: &Dag) -> Vec<DagRun> {
    let mut connection = db.acquire().await.unwrap();
    let filter = weir::storage::runs::RunFilter {
        dag_id: Some(dag.dag_id.clone()),
        ..Default::default()
    };
    runs::list(&mut connection, &filter).await.unwrap()
}

#[tokio::test]
async fn catchup_creates_missed_runs_oldest_first_within_max_active_runs_and_a_restart_repeats_none() {
    for test_db in support::databases().await {
        let now = Utc::now();
        let start = now.duration_trunc(chrono::TimeDelta::hours(1)).unwrap() - chrono::TimeDelta::hours(5);
        let yaml = format!(
            "dag_id: hourly\nschedule: '@hourly'\nstart_date: '{}'\ncatchup: true\nmax_active_runs: 2\ntasks:\n  t: {{ command: 'true' }}\n",
            start.to_rfc3339()
        );
        let mut harness = TestApp::new(&test_db, &yaml).await;
        let first = harness.scheduler.tick(now).await.unwrap();
        assert_eq!(first.runs_created, 2, "{}: held back by max_active_runs", test_db.label);
        let created: Vec<_> = all_runs(&harness.db, &harness.dag)
            .await
            .iter()
            .map(|run| run.logical_date)
            .collect();
        assert_eq!(
            created,
            [start, start + chrono::TimeDelta::hours(1)],
            "{}: oldest first",
            test_db.label
        );

        // Drive until every due interval has a finished run.
        for _ in 0..20 {
            let runs = all_runs(&harness.db, &harness.dag).await;
            if runs.len() == 5 && runs.iter().all(|run| run.state.is_finished()) {
                break;
            }
            let unfinished = runs.iter().find(|run| !run.state.is_finished()).cloned();
            match unfinished {
                Some(run) if run.state == RunState::Running => {
                    harness.run_to_end(&run).await;
                }
                _ => {
                    harness.scheduler.tick(Utc::now()).await.unwrap();
                }
            }
        }
        let runs = all_runs(&harness.db, &harness.dag).await;
        let dates: Vec<_> = runs.iter().map(|run| run.logical_date).collect();
        let expected: Vec<_> = (0..5).map(|hour| start + chrono::TimeDelta::hours(hour)).collect();
        assert_eq!(dates, expected, "{}: every missed interval once", test_db.label);
        assert!(
            runs.iter()
                .all(|run| run.state == RunState::Success && run.run_type == RunType::Scheduled)
        );

        // A scheduler that comes back three hours later catches up on exactly those hours.
        let later = now + chrono::TimeDelta::hours(3);
        let mut created_later = 0;
        for _ in 0..3 {
            created_later += harness.scheduler.tick(later).await.unwrap().runs_created;
            for run in all_runs(&harness.db, &harness.dag)
                .await
                .into_iter()
                .filter(|run| !run.state.is_finished())
            {
                harness.run_to_end(&run).await;
            }
        }
        let runs = all_runs(&harness.db, &harness.dag).await;
        assert_eq!(
            (created_later, runs.len()),
            (3, 8),
            "{}: nothing repeated, nothing skipped",
            test_db.label
        );
    }
}

#[tokio::test]
async fn a_paused_dag_gets_no_new_runs_and_its_queued_runs_wait() {
    for test_db in support::databases().await {
        let start = Utc::now() - chrono::TimeDelta::hours(3);
        let yaml = format!(
            "dag_id: paused\nschedule: '@hourly'\nstart_date: '{}'\ntasks:\n  t: {{ command: 'true' }}\n",
            start.to_rfc3339()
        );
        let harness = TestApp::new(&test_db, &yaml).await;
        weir::runtime::operations::set_paused(&harness.db, &harness.dag, true)
            .await
            .unwrap();
        let manual = harness.trigger().await;
        let outcome = harness.scheduler.tick(Utc::now()).await.unwrap();
        assert_eq!(
            (outcome.runs_created, outcome.runs_started),
            (0, 0),
            "{}",
            test_db.label
        );
        weir::runtime::operations::set_paused(&harness.db, &harness.dag, false)
            .await
            .unwrap();
        harness.scheduler.forget_schedule_memo();
        let outcome = harness.scheduler.tick(Utc::now()).await.unwrap();
        assert_eq!(
            outcome.runs_created, 1,
            "{}: unpaused, the newest interval gets its run",
            test_db.label
        );
        assert!(
            outcome.runs_started >= 1,
            "{}: the waiting manual run {} starts",
            test_db.label,
            manual.run_id
        );
    }
}

#[tokio::test]
async fn clearing_a_failed_task_with_downstream_reruns_it_in_place_with_a_fresh_retry_budget() {
    let check_only = regex::Regex::new("^check$").unwrap();
    for test_db in support::databases().await {
        let marker = tempfile::NamedTempFile::new().unwrap().into_temp_path();
        let marker_path = marker.to_path_buf();
        drop(marker);
        let yaml = format!(
            "dag_id: fixable\ntasks:\n  check: {{ command: 'test -f {}' }}\n  publish: {{ command: 'true', depends_on: [check] }}\n",
            marker_path.display()
        );
        let mut harness = TestApp::new(&test_db, &yaml).await;
        let run = harness.trigger().await;
        assert_eq!(harness.run_to_end(&run).await, RunState::Failed, "{}", test_db.label);
        assert_eq!(harness.states(&run).await["publish"], TaskState::UpstreamFailed);

        std::fs::write(&marker_path, "fixed").unwrap();
        let request = weir::runtime::operations::ClearRequest {
            run_id: Some(run.run_id.clone()),
            task_pattern: Some(check_only.clone()),
            include_downstream: true,
            only_failed: true,
            ..Default::default()
        };
        let plan = weir::runtime::operations::plan_clear(&harness.db, &harness.dag, &request)
            .await
            .unwrap();
        let planned: Vec<String> = plan
            .values()
            .flat_map(|(_, tasks)| tasks.iter().map(ToString::to_string))
            .collect();
        assert_eq!(planned, ["check", "publish"], "{}", test_db.label);
        weir::runtime::operations::apply_clear(&harness.db, &harness.dag, &plan)
            .await
            .unwrap();

        assert_eq!(harness.run_to_end(&run).await, RunState::Success, "{}", test_db.label);
        let instances = harness.instances(&run).await;
        assert_eq!(
            (instances["check"].try_number, instances["check"].max_tries),
            (2, 2),
            "{}",
            test_db.label
        );
        assert_eq!(
            all_runs(&harness.db, &harness.dag).await.len(),
            1,
            "{}: re-run in place",
            test_db.label
        );
        let _ = std::fs::remove_file(&marker_path);
    }
}

#[tokio::test]
async fn a_task_marked_success_by_hand_lets_its_downstream_run() {
    let after_only = regex::Regex::new("^after$").unwrap();
    for test_db in support::databases().await {
        let mut harness = TestApp::new(
            &test_db,
            "dag_id: manual_fix\ntasks:\n  broken: { command: 'exit 1' }\n  after: { command: 'true', depends_on: [broken], trigger_rule: all_success }\n",
        )
        .await;
        let run = harness.trigger().await;
        assert_eq!(harness.run_to_end(&run).await, RunState::Failed, "{}", test_db.label);
        let broken = TaskId::parse("broken").unwrap();
        let after = TaskId::parse("after").unwrap();
        weir::runtime::operations::mark_task(&harness.db, &run.dag_id, &run.run_id, &broken, TaskState::Success)
            .await
            .unwrap();
        let request = weir::runtime::operations::ClearRequest {
            run_id: Some(run.run_id.clone()),
            task_pattern: Some(after_only.clone()),
            ..Default::default()
        };
        let plan = weir::runtime::operations::plan_clear(&harness.db, &harness.dag, &request)
            .await
            .unwrap();
        weir::runtime::operations::apply_clear(&harness.db, &harness.dag, &plan)
            .await
            .unwrap();
        assert_eq!(harness.run_to_end(&run).await, RunState::Success, "{}", test_db.label);
        let states = harness.states(&run).await;
        assert_eq!(
            (states[broken.as_str()], states[after.as_str()]),
            (TaskState::Success, TaskState::Success)
        );
        let error =
            weir::runtime::operations::mark_task(&harness.db, &run.dag_id, &run.run_id, &after, TaskState::Running)
                .await
                .unwrap_err();
        assert_eq!(error.to_string(), "a task can be marked success or failed, not running");
    }
}

#[tokio::test]
async fn a_free_slot_is_found_behind_hundreds_of_higher_priority_tasks_waiting_for_a_full_pool() {
    // The dispatcher reads waiting tasks a page at a time (256 here): the only task it can start
    // besides the first of the pool sits on the second page.
    let mut yaml = String::from("dag_id: crowded\ntasks:\n  free: { command: 'true', priority_weight: 1 }\n");
    for i in 0..300 {
        yaml.push_str(&format!(
            "  tiny{i:03}: {{ command: 'true', pool: tiny, priority_weight: 10 }}\n"
        ));
    }
    for test_db in support::databases().await {
        let harness = TestApp::builder(&test_db)
            .dag(&yaml)
            .core("parallelism = 4")
            .config("[pools]\ntiny = 1")
            .stepped()
            .await;
        let run = harness.trigger().await;
        harness.scheduler.tick(Utc::now()).await.unwrap();
        let holding: Vec<String> = harness
            .instances(&run)
            .await
            .into_iter()
            .filter(|(_, ti)| matches!(ti.state, TaskState::Queued | TaskState::Running))
            .map(|(task, _)| task)
            .collect();
        assert_eq!(holding, ["free", "tiny000"], "{}", test_db.label);
    }
}
