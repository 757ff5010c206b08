//! Backfills end to end (§3.8) on SQLite and PostgreSQL, with real processes: concurrency within
//! `max_active_runs`, order, the three reprocess behaviours, cancelling, and a daemon killed
//! mid-backfill.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use weir::domain::backfill::{BackfillState, Reprocess};
use weir::domain::state::{RunState, RunType};
use weir::runtime::operations::{self, BackfillRequest};
use weir::storage::Db;
use weir::storage::backfills::{self, Backfill};
use weir::storage::runs::DagRun;

use crate::e2e::all_runs;
use crate::support;
use crate::support::test_app::TestApp;

fn day(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(&format!("{text}T00:00:00Z"))
        .unwrap()
        .with_timezone(&Utc)
}

/// A daily DAG that starts paused: the schedule creates no runs of its own, and the backfill
/// runs anyway (backfills ignore pause).
fn daily_dag(command: &str) -> String {
    daily_dag_named("daily", command)
}

fn daily_dag_named(dag_id: &str, command: &str) -> String {
    format!(
        "dag_id: {dag_id}\nschedule: '@daily'\nstart_date: 2026-01-01\nis_paused_upon_creation: true\ntasks:\n  work: {{ command: '{command}' }}\n"
    )
}

fn request(from: &str, to: &str, reprocess: Reprocess, max_active_runs: u32, reverse: bool) -> BackfillRequest {
    BackfillRequest {
        from: day(from),
        to: day(to),
        reprocess,
        max_active_runs,
        reverse,
        conf: serde_json::Value::Null,
        max_dates: 10_000,
    }
}

async fn state_of(db: &Db, id: i64) -> BackfillState {
    let mut connection = db.acquire().await.unwrap();
    backfills::get(&mut connection, id).await.unwrap().unwrap().state
}

async fn run_to_completion(harness: &mut TestApp, backfill: &Backfill) {
    let db = harness.db.clone();
    let id = backfill.id;
    harness
        .drive_until("the backfill completes", || async {
            state_of(&db, id).await == BackfillState::Completed
        })
        .await;
}

/// The most runs whose recorded [start, end] intervals overlap at one instant.
fn most_at_once(runs: &[DagRun]) -> usize {
    let mut events: Vec<(DateTime<Utc>, i32)> = Vec::new();
    for run in runs {
        events.push((run.start_date.unwrap(), 1));
        events.push((run.end_date.unwrap(), -1));
    }
    // At the same instant an end comes before a start: a run that ended is not running.
    events.sort();
    let (mut current, mut most) = (0i32, 0i32);
    for (_, change) in events {
        current += change;
        most = most.max(current);
    }
    usize::try_from(most).unwrap()
}

#[tokio::test]
async fn a_30_day_backfill_never_runs_more_than_its_max_active_runs_and_goes_oldest_first() {
    for test_db in support::databases().await {
        for reverse in [false, true] {
            let name = if reverse {
                "daily_newest_first"
            } else {
                "daily_oldest_first"
            };
            let mut harness = TestApp::new(&test_db, &daily_dag_named(name, "sleep 0.05")).await;
            let backfill = operations::create_backfill(
                &harness.db,
                &harness.dag,
                &request("2026-03-01", "2026-03-30", Reprocess::None, 3, reverse),
            )
            .await
            .unwrap();
            run_to_completion(&mut harness, &backfill).await;
            let mut runs = all_runs(&harness.db, &harness.dag).await;
            assert_eq!(runs.len(), 30, "{}", test_db.label);
            assert!(
                runs.iter()
                    .all(|run| run.run_type == RunType::Backfill && run.state == RunState::Success)
            );
            assert!(runs.iter().all(|run| run.backfill_id == Some(backfill.id)));
            assert_eq!(
                most_at_once(&runs),
                3,
                "{}: at most (and, with 30 dates, exactly) 3 at once",
                test_db.label
            );
            runs.sort_by_key(|run| (run.start_date, run.pk));
            let order: Vec<DateTime<Utc>> = runs.iter().map(|run| run.logical_date).collect();
            let mut expected = order.clone();
            expected.sort();
            if reverse {
                expected.reverse();
            }
            assert_eq!(
                order,
                expected,
                "{}: started {} first",
                test_db.label,
                if reverse { "newest" } else { "oldest" }
            );
        }
    }
}

#[tokio::test]
async fn reprocess_none_failed_and_completed_touch_exactly_the_runs_they_should() {
    for test_db in support::databases().await {
        // The run for March 2nd fails; the others succeed.
        let mut harness = TestApp::new(&test_db, &daily_dag("[ \"$WEIR_DS\" != 2026-03-02 ]")).await;
        let first = operations::create_backfill(
            &harness.db,
            &harness.dag,
            &request("2026-03-01", "2026-03-04", Reprocess::None, 4, false),
        )
        .await
        .unwrap();
        run_to_completion(&mut harness, &first).await;
        let before: BTreeMap<DateTime<Utc>, DagRun> = all_runs(&harness.db, &harness.dag)
            .await
            .into_iter()
            .map(|run| (run.logical_date, run))
            .collect();
        assert_eq!(before[&day("2026-03-02")].state, RunState::Failed);

        type RunRecord = (i64, RunState, Option<DateTime<Utc>>);
        let snapshot = |runs: Vec<DagRun>| -> BTreeMap<DateTime<Utc>, RunRecord> {
            runs.into_iter()
                .map(|run| (run.logical_date, (run.pk, run.state, run.end_date)))
                .collect()
        };
        let expectations = [
            (Reprocess::None, vec![]),
            (Reprocess::Failed, vec![day("2026-03-02")]),
            (
                Reprocess::Completed,
                vec![
                    day("2026-03-01"),
                    day("2026-03-02"),
                    day("2026-03-03"),
                    day("2026-03-04"),
                    day("2026-03-05"),
                ],
            ),
        ];
        for (reprocess, rerun) in expectations {
            let before = snapshot(all_runs(&harness.db, &harness.dag).await);
            let backfill = operations::create_backfill(
                &harness.db,
                &harness.dag,
                &request("2026-03-01", "2026-03-05", reprocess, 4, false),
            )
            .await
            .unwrap();
            run_to_completion(&mut harness, &backfill).await;
            let after = snapshot(all_runs(&harness.db, &harness.dag).await);
            assert_eq!(
                after.len(),
                5,
                "{} {reprocess}: one run per date, never a second",
                test_db.label
            );
            for (date, (pk, state, end)) in &before {
                let (pk_after, _, end_after) = after[date];
                assert_eq!(
                    pk_after, *pk,
                    "{} {reprocess}: a re-run clears the run in place",
                    test_db.label
                );
                if rerun.contains(date) {
                    assert_ne!(end_after, *end, "{} {reprocess}: {date} was re-run", test_db.label);
                } else {
                    assert_eq!(
                        (after[date].1, end_after),
                        (*state, *end),
                        "{} {reprocess}: {date} untouched",
                        test_db.label
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn a_cancelled_backfill_starts_nothing_more_keeps_finished_runs_and_leaves_none_queued() {
    for test_db in support::databases().await {
        let mut harness = TestApp::new(&test_db, &daily_dag("sleep 0.2")).await;
        let backfill = operations::create_backfill(
            &harness.db,
            &harness.dag,
            &request("2026-03-01", "2026-03-10", Reprocess::None, 2, false),
        )
        .await
        .unwrap();
        harness.scheduler.tick(Utc::now()).await.unwrap();
        assert_eq!(all_runs(&harness.db, &harness.dag).await.len(), 2, "{}", test_db.label);
        let cancelled = operations::change_backfill(&harness.db, backfill.id, BackfillState::Cancelled)
            .await
            .unwrap();
        assert_eq!(cancelled.state, BackfillState::Cancelled);
        let db = harness.db.clone();
        let dag = harness.dag.clone();
        harness
            .drive_until("the runs that were running finish", || async {
                all_runs(&db, &dag).await.iter().all(|run| run.state.is_finished())
            })
            .await;
        harness.scheduler.tick(Utc::now()).await.unwrap();
        let runs = all_runs(&harness.db, &harness.dag).await;
        assert_eq!(runs.len(), 2, "{}: no further runs", test_db.label);
        assert!(
            runs.iter().all(|run| run.state == RunState::Success),
            "{}: running ones finished",
            test_db.label
        );
        assert_eq!(state_of(&harness.db, backfill.id).await, BackfillState::Cancelled);
        let error = operations::change_backfill(&harness.db, backfill.id, BackfillState::Running)
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("backfill {} is cancelled: it cannot become running", backfill.id)
        );
    }
}

#[tokio::test]
async fn one_active_backfill_per_dag_and_dry_runs_create_nothing() {
    for test_db in support::databases().await {
        let harness = TestApp::new(&test_db, &daily_dag("true")).await;
        let plan = operations::plan_backfill(
            &harness.db,
            &harness.dag,
            &request("2026-03-01", "2026-03-03", Reprocess::None, 2, false),
        )
        .await
        .unwrap();
        assert_eq!(plan.len(), 3);
        assert!(
            all_runs(&harness.db, &harness.dag).await.is_empty(),
            "{}: a plan creates nothing",
            test_db.label
        );
        let first = operations::create_backfill(
            &harness.db,
            &harness.dag,
            &request("2026-03-01", "2026-03-03", Reprocess::None, 2, false),
        )
        .await
        .unwrap();
        let second = operations::create_backfill(
            &harness.db,
            &harness.dag,
            &request("2026-04-01", "2026-04-03", Reprocess::None, 2, false),
        )
        .await
        .unwrap_err();
        assert!(
            second.to_string().starts_with(&format!(
                "DAG `daily` already has an active backfill (id {}, running",
                first.id
            )),
            "{}: {second}",
            test_db.label
        );
        let empty = operations::plan_backfill(
            &harness.db,
            &harness.dag,
            &request("2026-03-03", "2026-03-01", Reprocess::None, 2, false),
        )
        .await
        .unwrap_err();
        assert!(empty.to_string().starts_with("the range is empty"), "{empty}");
    }
}

#[tokio::test]
async fn a_daemon_killed_during_a_backfill_resumes_it_without_duplicating_or_losing_runs() {
    for test_db in support::databases().await {
        let project = crate::daemon::Project::new(&test_db.url);
        // One retry: the attempt the SIGKILL interrupts is failed on restart and tried again.
        let yaml = daily_dag("sleep 0.3").replace(
            "  work: { command: 'sleep 0.3' }",
            "  work: { command: 'sleep 0.3', retries: 1, retry_delay: 0s }",
        );
        project.write_dag("daily.yaml", &yaml);
        assert!(project.weir(&["db", "migrate"]).status.success());
        let mut first = project.serve();
        let created = project.weir(&[
            "dags",
            "backfill",
            "daily",
            "--from",
            "2026-03-01",
            "--to",
            "2026-03-12",
            "--max-active-runs",
            "2",
        ]);
        assert!(
            created.status.success(),
            "{}: {}",
            test_db.label,
            String::from_utf8_lossy(&created.stderr)
        );
        let db = &test_db.db;
        let dag = support::dag(&daily_dag("true"));
        support::wait_until_async("a few backfill runs have finished", Duration::from_secs(60), || async {
            all_runs(db, &dag)
                .await
                .iter()
                .filter(|run| run.state == RunState::Success)
                .count()
                >= 3
        })
        .await;
        first.sigkill();
        let _second = project.serve();
        support::wait_until_async(
            "the backfill completes after the restart",
            Duration::from_secs(90),
            || async {
                let mut connection = db.acquire().await.unwrap();
                let all = backfills::list(&mut connection, None, None).await.unwrap();
                all.first()
                    .is_some_and(|backfill| backfill.state == BackfillState::Completed)
            },
        )
        .await;
        let runs = all_runs(db, &dag).await;
        let mut dates: Vec<DateTime<Utc>> = runs.iter().map(|run| run.logical_date).collect();
        dates.dedup();
        assert_eq!(
            (runs.len(), dates.len()),
            (12, 12),
            "{}: every date once",
            test_db.label
        );
        assert!(
            runs.iter().all(|run| run.state == RunState::Success),
            "{}",
            test_db.label
        );
        let listed = project.weir(&["backfills", "list", "--output", "json"]);
        let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
        assert_eq!(
            (listed[0]["runs_total"].as_u64(), listed[0]["runs_done"].as_u64()),
            (Some(12), Some(12))
        );
        assert_eq!(listed[0]["state"], "completed");
    }
}
