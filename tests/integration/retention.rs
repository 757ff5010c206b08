//! `weir db clean` and `[core] retention_days` (issue 4): old finished runs go with their task
//! instances, attempts and log folders; nothing newer and nothing running is touched.

use chrono::{DateTime, Utc};
use weir::domain::state::RunState;
use weir::runtime::operations::{self, CleanReport};
use weir::storage::runs::{self, DagRun};

use crate::e2e::all_runs;
use crate::support;
use crate::support::test_app::TestApp;

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
}

async fn finished_run_at(harness: &mut TestApp, logical: &str) -> DagRun {
    let new_run =
        operations::manual_run(&harness.dag, &serde_json::Value::Null, Some(at(logical)), None, None).unwrap();
    let run = operations::trigger(&harness.db, &harness.dag, &new_run).await.unwrap();
    assert_eq!(harness.run_to_end(&run).await, RunState::Success);
    run
}

#[tokio::test]
async fn db_clean_removes_old_runs_their_history_and_logs_and_nothing_newer() {
    for test_db in support::databases().await {
        let mut harness = TestApp::new(
            &test_db,
            "dag_id: kept_tidy\ntasks:\n  a: { command: 'echo a' }\n  b: { command: 'echo b', depends_on: [a], outlets: [kept.data] }\n",
        )
        .await;
        let old = finished_run_at(&mut harness, "2026-01-01T00:00:00Z").await;
        let recent = finished_run_at(&mut harness, "2026-06-01T00:00:00Z").await;
        let old_logs = harness.logs_dir().join("kept_tidy").join(old.run_id.as_str());
        let recent_logs = harness.logs_dir().join("kept_tidy").join(recent.run_id.as_str());
        assert!(
            old_logs.is_dir() && recent_logs.is_dir(),
            "{}: both runs wrote logs",
            test_db.label
        );

        // Two alerts of the old run: the delivered one goes, the pending one is still delivered.
        let delivered = old_alert(&harness, &old).await;
        let pending = old_alert(&harness, &old).await;
        let mut connection = harness.db.acquire().await.unwrap();
        sqlx::query("UPDATE alert SET status = 'delivered' WHERE id = $1")
            .bind(delivered)
            .execute(&mut *connection)
            .await
            .unwrap();
        drop(connection);

        let cutoff = at("2026-03-01T00:00:00Z");
        let expected = CleanReport {
            runs: 1,
            task_instances: 2,
            attempts: 2,
            log_folders: 1,
            alerts: 1,
            // The old run's event on kept.data (nobody consumes it, and the recent run's is newer).
            dataset_events: 1,
            event_logs: 0,
        };
        let dry = operations::clean_history(&harness.db, &harness.logs_dir(), cutoff, None, true)
            .await
            .unwrap();
        assert_eq!(dry, expected, "{}", test_db.label);
        assert_eq!(
            all_runs(&harness.db, &harness.dag).await.len(),
            2,
            "{}: a dry run removes nothing",
            test_db.label
        );
        assert!(old_logs.is_dir());

        let done = operations::clean_history(&harness.db, &harness.logs_dir(), cutoff, None, false)
            .await
            .unwrap();
        assert_eq!(done, expected, "{}", test_db.label);
        let left = all_runs(&harness.db, &harness.dag).await;
        assert_eq!(
            left.iter().map(|run| run.run_id.to_string()).collect::<Vec<_>>(),
            [recent.run_id.to_string()],
            "{}",
            test_db.label
        );
        assert!(
            !old_logs.exists() && recent_logs.is_dir(),
            "{}: only the old logs go",
            test_db.label
        );
        let mut connection = harness.db.acquire().await.unwrap();
        assert_eq!(
            runs::history_size(&mut connection, old.pk).await.unwrap(),
            (0, 0),
            "{}: no orphaned rows",
            test_db.label
        );
        assert_eq!(
            runs::history_size(&mut connection, recent.pk).await.unwrap(),
            (2, 2),
            "{}",
            test_db.label
        );
        let alerts_left: Vec<i64> = sqlx::query("SELECT id FROM alert ORDER BY id")
            .fetch_all(&mut *connection)
            .await
            .unwrap()
            .iter()
            .map(|row| sqlx::Row::get(row, 0))
            .collect();
        assert_eq!(alerts_left, [pending], "{}: pending alerts stay", test_db.label);
        let events_left: Vec<String> = sqlx::query("SELECT source_run_id FROM dataset_event")
            .fetch_all(&mut *connection)
            .await
            .unwrap()
            .iter()
            .map(|row| sqlx::Row::get(row, 0))
            .collect();
        assert_eq!(
            events_left,
            [recent.run_id.to_string()],
            "{}: the newest event stays",
            test_db.label
        );
    }
}

async fn old_alert(harness: &TestApp, run: &DagRun) -> i64 {
    let payload = serde_json::json!({"event": "on_failure"});
    let mut connection = harness.db.acquire().await.unwrap();
    weir::storage::alerts::insert(
        &mut connection,
        &weir::storage::alerts::NewAlert {
            channel: "ops",
            event: weir::domain::alerts::AlertEvent::OnFailure,
            dag_id: run.dag_id.as_str(),
            run_id: run.run_id.as_str(),
            task_id: None,
            payload: &payload,
        },
        Utc::now(),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn db_clean_never_removes_a_run_that_is_still_active() {
    for test_db in support::databases().await {
        let harness = TestApp::new(&test_db, "dag_id: busy\ntasks:\n  a: { command: 'true' }\n").await;
        let new_run = operations::manual_run(
            &harness.dag,
            &serde_json::Value::Null,
            Some(at("2026-01-01T00:00:00Z")),
            None,
            None,
        )
        .unwrap();
        operations::trigger(&harness.db, &harness.dag, &new_run).await.unwrap();
        let report = operations::clean_history(
            &harness.db,
            &harness.logs_dir(),
            at("2026-12-01T00:00:00Z"),
            None,
            false,
        )
        .await
        .unwrap();
        assert_eq!(report, CleanReport::default(), "{}: a queued run stays", test_db.label);
        assert_eq!(all_runs(&harness.db, &harness.dag).await.len(), 1);
    }
}

#[tokio::test]
async fn db_clean_keeps_dataset_events_a_consumer_has_not_used_yet() {
    for test_db in support::databases().await {
        let mut harness = TestApp::new(
            &test_db,
            "dag_id: producer\ntasks:\n  a: { command: 'echo a', outlets: [kept.data] }\n",
        )
        .await;
        // A (paused) DAG scheduled on the dataset starts tracking it before any event exists.
        let consumer = weir::domain::ids::DagId::parse("waiting_consumer").unwrap();
        let mut connection = harness.db.acquire().await.unwrap();
        weir::storage::datasets::track(&mut connection, &consumer, "kept.data")
            .await
            .unwrap();
        drop(connection);
        finished_run_at(&mut harness, "2026-01-01T00:00:00Z").await;
        finished_run_at(&mut harness, "2026-06-01T00:00:00Z").await;
        let report = operations::clean_history(
            &harness.db,
            &harness.logs_dir(),
            at("2026-03-01T00:00:00Z"),
            None,
            false,
        )
        .await
        .unwrap();
        assert_eq!(
            (report.runs, report.dataset_events),
            (1, 0),
            "{}: the old run goes, its event stays until the consumer has used it",
            test_db.label
        );
    }
}
