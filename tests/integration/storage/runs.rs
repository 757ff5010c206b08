//! The `dag_run` table: inserting runs with their conflicts, listing, ordering and state changes.

use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::Row;
use weir::domain::state::{RunState, RunType};
use weir::storage::runs::{self, DagRun, NewRun, RunFilter};
use weir::storage::{Backend, Db, StorageError};

use super::{at, dag_id, insert_run, new_run, run_id};
use crate::support::{TestDb, databases};

#[tokio::test]
async fn an_inserted_run_is_queued_and_round_trips_every_field() {
    for TestDb { db, label, .. } in &databases().await {
        let mut connection = db.begin().await.expect(label);
        let now = at("2026-03-02T05:30:00.654321Z");
        let new = NewRun {
            dag_id: dag_id("orders_pipeline"),
            run_id: run_id("manual__2026-03-01T05:30:00.000007+00:00"),
            run_type: RunType::Manual,
            logical_date: at("2026-03-01T05:30:00.000007Z"),
            data_interval_start: at("2026-02-28T05:30:00.000001Z"),
            data_interval_end: at("2026-03-01T05:30:00.000002Z"),
            run_after: at("2026-03-01T05:30:00.000003Z"),
            conf: json!({"region": "eu", "limit": 10, "dry_run": true, "tables": ["a", "b"]}),
            owner: Some("dags-test-4242".to_string()),
        };
        let inserted = runs::insert(&mut connection, &new, now).await.expect(label);
        let expected = DagRun {
            pk: inserted.pk,
            dag_id: new.dag_id.clone(),
            run_id: new.run_id.clone(),
            run_type: RunType::Manual,
            state: RunState::Queued,
            logical_date: new.logical_date,
            data_interval_start: new.data_interval_start,
            data_interval_end: new.data_interval_end,
            run_after: new.run_after,
            queued_at: Some(now),
            start_date: None,
            end_date: None,
            conf: new.conf.clone(),
            owner: Some("dags-test-4242".to_string()),
            backfill_id: None,
        };
        assert_eq!(inserted, expected, "{label}");
        assert_eq!(
            runs::get(&mut connection, &new.dag_id, &new.run_id).await.expect(label),
            Some(expected.clone()),
            "{label}"
        );
        assert_eq!(
            runs::get_by_pk(&mut connection, inserted.pk).await.expect(label),
            Some(expected),
            "{label}"
        );
        assert_eq!(
            runs::get(&mut connection, &new.dag_id, &run_id("other"))
                .await
                .expect(label),
            None,
            "{label}"
        );
    }
}

#[tokio::test]
async fn a_second_run_with_the_same_run_id_is_a_conflict_that_names_the_run_id() {
    for TestDb { db, label, .. } in &databases().await {
        let first = new_run("etl", "nightly-fix", RunType::Manual, "2026-03-01T00:00:00Z");
        insert_run(db, label, &first).await;
        let again = new_run("etl", "nightly-fix", RunType::Manual, "2026-03-05T00:00:00Z");
        let mut connection = db.begin().await.expect(label);
        match runs::insert(&mut connection, &again, at("2026-03-06T00:00:00Z")).await {
            Err(StorageError::Conflict(message)) => {
                assert!(message.contains("`nightly-fix`"), "{label}: {message}");
            }
            other => panic!("{label}: expected Conflict, got {other:?}"),
        }
        drop(connection);
        let other_dag = new_run("other_etl", "nightly-fix", RunType::Manual, "2026-03-01T00:00:00Z");
        insert_run(db, label, &other_dag).await;
    }
}

#[tokio::test]
async fn a_second_scheduled_run_for_the_same_logical_date_is_a_conflict() {
    for TestDb { db, label, .. } in &databases().await {
        let date = "2026-03-01T00:00:00Z";
        insert_run(db, label, &new_run("etl", "scheduled__one", RunType::Scheduled, date)).await;
        let mut connection = db.begin().await.expect(label);
        for (run, run_type) in [
            ("scheduled__two", RunType::Scheduled),
            ("backfill__two", RunType::Backfill),
        ] {
            match runs::insert(&mut connection, &new_run("etl", run, run_type, date), at(date)).await {
                Err(StorageError::Conflict(message)) => {
                    assert!(message.contains("`scheduled__one`"), "{label}: {message}");
                }
                other => panic!("{label}: expected Conflict for {run}, got {other:?}"),
            }
        }
    }
}

/// Two writers creating the same run, or two scheduled runs for one logical date, at once: the
/// loser gets the same Conflict as when the run was already there, not a raw database error. On
/// PostgreSQL the loser reaches its INSERT before the winner commits, so the unique index (not the
/// pre-check) decides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_inserted_concurrently_twice_is_created_once_and_the_loser_gets_a_conflict() {
    let date = "2026-03-01T00:00:00Z";
    let cases = [
        (
            new_run("etl", "scheduled__one", RunType::Scheduled, date),
            new_run("etl", "scheduled__one", RunType::Scheduled, date),
            "DAG `etl` already has a run",
        ),
        (
            new_run("elt", "scheduled__one", RunType::Scheduled, date),
            new_run("elt", "backfill__one", RunType::Backfill, date),
            "for logical date 2026-03-01T00:00:00+00:00",
        ),
    ];
    for TestDb { db, label, .. } in &databases().await {
        for (first, second, conflict) in &cases {
            let now = at("2026-03-02T00:00:00Z");
            let mut winner = db.begin().await.expect(label);
            runs::insert(&mut winner, first, now).await.expect(label);
            let loser = tokio::spawn({
                let db = db.clone();
                let second = second.clone();
                async move {
                    let mut transaction = db.begin().await?;
                    let inserted = runs::insert(&mut transaction, &second, now).await;
                    transaction.rollback().await?;
                    inserted
                }
            });
            if db.backend() == Backend::Postgres {
                wait_for_a_lock_waiter(db, label).await;
            }
            winner.commit().await.expect(label);
            match loser.await.expect("the loser does not panic") {
                Err(StorageError::Conflict(message)) => {
                    assert!(message.contains(conflict), "{label}: {message}");
                }
                other => panic!("{label}: expected Conflict, got {other:?}"),
            }
            let mut connection = db.acquire().await.expect(label);
            let filter = RunFilter {
                dag_id: Some(first.dag_id.clone()),
                ..RunFilter::default()
            };
            let listed = runs::list(&mut connection, &filter).await.expect(label);
            assert_eq!(listed.len(), 1, "{label}: {listed:?}");
        }
    }
}

/// Polls PostgreSQL until a session of this database waits on a lock.
async fn wait_for_a_lock_waiter(db: &Db, label: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let waiting: i64 = sqlx::query(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(db.pool())
        .await
        .expect(label)
        .get(0);
        if waiting > 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{label}: the second insert never waited on the first"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn two_manual_runs_may_share_a_logical_date_with_each_other_and_a_scheduled_run() {
    for TestDb { db, label, .. } in &databases().await {
        let date = "2026-03-01T00:00:00Z";
        insert_run(db, label, &new_run("etl", "scheduled__one", RunType::Scheduled, date)).await;
        insert_run(db, label, &new_run("etl", "manual__a", RunType::Manual, date)).await;
        insert_run(db, label, &new_run("etl", "manual__b", RunType::Manual, date)).await;
        let mut connection = db.acquire().await.expect(label);
        let filter = RunFilter {
            dag_id: Some(dag_id("etl")),
            ..RunFilter::default()
        };
        assert_eq!(
            runs::list(&mut connection, &filter).await.expect(label).len(),
            3,
            "{label}"
        );
    }
}

#[tokio::test]
async fn the_latest_scheduled_logical_date_ignores_manual_runs_and_other_dags() {
    for TestDb { db, label, .. } in &databases().await {
        let mut connection = db.acquire().await.expect(label);
        assert_eq!(
            runs::latest_scheduled_logical_date(&mut connection, &dag_id("etl"))
                .await
                .expect(label),
            None,
            "{label}: no runs yet"
        );
        for (dag, run, run_type, date) in [
            ("etl", "s1", RunType::Scheduled, "2026-03-01T00:00:00Z"),
            ("etl", "s2", RunType::Scheduled, "2026-03-02T00:00:00.000001Z"),
            ("etl", "m1", RunType::Manual, "2026-03-09T00:00:00Z"),
            ("other", "s9", RunType::Scheduled, "2026-03-20T00:00:00Z"),
        ] {
            insert_run(db, label, &new_run(dag, run, run_type, date)).await;
        }
        assert_eq!(
            runs::latest_scheduled_logical_date(&mut connection, &dag_id("etl"))
                .await
                .expect(label),
            Some(at("2026-03-02T00:00:00.000001Z")),
            "{label}"
        );
    }
}

#[tokio::test]
async fn runs_are_listed_by_dag_state_and_owner_in_logical_date_order() {
    for TestDb { db, label, .. } in &databases().await {
        let mut owned = new_run("etl", "tested", RunType::Manual, "2026-03-02T00:00:00Z");
        owned.owner = Some("dags-test-1".to_string());
        let inserted = [
            insert_run(
                db,
                label,
                &new_run("etl", "s3", RunType::Scheduled, "2026-03-03T00:00:00Z"),
            )
            .await,
            insert_run(
                db,
                label,
                &new_run("etl", "s1", RunType::Scheduled, "2026-03-01T00:00:00Z"),
            )
            .await,
            insert_run(db, label, &owned).await,
            insert_run(
                db,
                label,
                &new_run("other", "s1", RunType::Scheduled, "2026-03-01T00:00:00Z"),
            )
            .await,
        ];
        let mut connection = db.acquire().await.expect(label);
        runs::start(&mut connection, inserted[0].pk, at("2026-03-04T00:00:00Z"))
            .await
            .expect(label);
        let ids = |listed: Vec<DagRun>| -> Vec<String> {
            listed
                .into_iter()
                .map(|run| format!("{}/{}", run.dag_id, run.run_id))
                .collect()
        };
        let list = async |connection: &mut sqlx::AnyConnection, filter: RunFilter| {
            ids(runs::list(connection, &filter).await.expect(label))
        };

        assert_eq!(
            list(&mut connection, RunFilter::default()).await,
            ["etl/s1", "other/s1", "etl/tested", "etl/s3"],
            "{label}: everything, oldest first"
        );
        let etl = RunFilter {
            dag_id: Some(dag_id("etl")),
            ..RunFilter::default()
        };
        assert_eq!(
            list(&mut connection, etl.clone()).await,
            ["etl/s1", "etl/tested", "etl/s3"],
            "{label}"
        );
        assert_eq!(
            list(
                &mut connection,
                RunFilter {
                    newest_first: true,
                    limit: Some(2),
                    ..etl.clone()
                }
            )
            .await,
            ["etl/s3", "etl/tested"],
            "{label}: newest first, limited"
        );
        assert_eq!(
            list(
                &mut connection,
                RunFilter {
                    states: vec![RunState::Running, RunState::Success],
                    ..etl.clone()
                }
            )
            .await,
            ["etl/s3"],
            "{label}: by state"
        );
        assert_eq!(
            list(
                &mut connection,
                RunFilter {
                    owner: Some(None),
                    ..etl.clone()
                }
            )
            .await,
            ["etl/s1", "etl/s3"],
            "{label}: daemon-driven only"
        );
        assert_eq!(
            list(
                &mut connection,
                RunFilter {
                    owner: Some(Some("dags-test-1".to_string())),
                    ..RunFilter::default()
                }
            )
            .await,
            ["etl/tested"],
            "{label}: one owner's"
        );
    }
}

#[tokio::test]
async fn the_previous_run_is_the_one_just_before_by_logical_date_then_by_insertion() {
    for TestDb { db, label, .. } in &databases().await {
        let first = insert_run(
            db,
            label,
            &new_run("etl", "s1", RunType::Scheduled, "2026-03-01T00:00:00Z"),
        )
        .await;
        let manual = insert_run(
            db,
            label,
            &new_run("etl", "m1", RunType::Manual, "2026-03-02T00:00:00Z"),
        )
        .await;
        let second = insert_run(
            db,
            label,
            &new_run("etl", "s2", RunType::Scheduled, "2026-03-02T00:00:00Z"),
        )
        .await;
        insert_run(
            db,
            label,
            &new_run("other", "s0", RunType::Scheduled, "2026-03-01T12:00:00Z"),
        )
        .await;
        let mut connection = db.acquire().await.expect(label);
        let previous_id = async |connection: &mut sqlx::AnyConnection, run: &DagRun| {
            runs::previous(connection, run)
                .await
                .expect(label)
                .map(|previous| previous.run_id.to_string())
        };
        assert_eq!(
            previous_id(&mut connection, &second).await.as_deref(),
            Some("m1"),
            "{label}"
        );
        assert_eq!(
            previous_id(&mut connection, &manual).await.as_deref(),
            Some("s1"),
            "{label}"
        );
        assert_eq!(previous_id(&mut connection, &first).await, None, "{label}");
    }
}

#[tokio::test]
async fn a_run_starts_once_and_its_state_changes_carry_their_dates() {
    for TestDb { db, label, .. } in &databases().await {
        let run = insert_run(
            db,
            label,
            &new_run("etl", "s1", RunType::Scheduled, "2026-03-01T00:00:00Z"),
        )
        .await;
        let mut connection = db.begin().await.expect(label);
        let reread = async |connection: &mut sqlx::AnyConnection| {
            runs::get_by_pk(connection, run.pk).await.expect(label).expect(label)
        };
        let started = at("2026-03-02T00:00:01.000001Z");
        runs::start(&mut connection, run.pk, started).await.expect(label);
        runs::start(&mut connection, run.pk, at("2026-03-02T09:00:00Z"))
            .await
            .expect(label);
        let running = reread(&mut connection).await;
        assert_eq!(running.state, RunState::Running, "{label}");
        assert_eq!(
            running.start_date,
            Some(started),
            "{label}: only the first start counts"
        );

        let ended = at("2026-03-02T00:10:00.5Z");
        runs::set_state(&mut connection, run.pk, RunState::Success, ended)
            .await
            .expect(label);
        let succeeded = reread(&mut connection).await;
        assert_eq!(
            (succeeded.state, succeeded.start_date, succeeded.end_date),
            (RunState::Success, Some(started), Some(ended)),
            "{label}"
        );

        let requeued = at("2026-03-03T00:00:00Z");
        runs::set_state(&mut connection, run.pk, RunState::Queued, requeued)
            .await
            .expect(label);
        let queued = reread(&mut connection).await;
        assert_eq!(
            (queued.state, queued.queued_at, queued.end_date),
            (RunState::Queued, Some(requeued), None),
            "{label}: a cleared run is queued again"
        );
        runs::set_state(&mut connection, run.pk, RunState::Running, at("2026-03-03T00:00:01Z"))
            .await
            .expect(label);
        let running_again = reread(&mut connection).await;
        assert_eq!(
            (running_again.state, running_again.start_date),
            (RunState::Running, Some(started)),
            "{label}: the first start date stays"
        );
    }
}

#[tokio::test]
async fn count_active_counts_the_queued_and_running_runs_of_one_dag() {
    for TestDb { db, label, .. } in &databases().await {
        let mut pks = Vec::new();
        for (run, date) in [
            ("s1", "2026-03-01T00:00:00Z"),
            ("s2", "2026-03-02T00:00:00Z"),
            ("s3", "2026-03-03T00:00:00Z"),
            ("s4", "2026-03-04T00:00:00Z"),
        ] {
            pks.push(
                insert_run(db, label, &new_run("etl", run, RunType::Scheduled, date))
                    .await
                    .pk,
            );
        }
        insert_run(
            db,
            label,
            &new_run("other", "s1", RunType::Scheduled, "2026-03-01T00:00:00Z"),
        )
        .await;
        let mut connection = db.begin().await.expect(label);
        let now = at("2026-03-05T00:00:00Z");
        assert_eq!(
            runs::count_active(&mut connection, &dag_id("etl")).await.expect(label),
            (4, 0),
            "{label}"
        );
        runs::start(&mut connection, pks[0], now).await.expect(label);
        runs::start(&mut connection, pks[1], now).await.expect(label);
        runs::set_state(&mut connection, pks[2], RunState::Failed, now)
            .await
            .expect(label);
        assert_eq!(
            runs::count_active(&mut connection, &dag_id("etl")).await.expect(label),
            (1, 2),
            "{label}: (queued, running)"
        );
        assert_eq!(
            runs::count_active(&mut connection, &dag_id("nothing"))
                .await
                .expect(label),
            (0, 0),
            "{label}"
        );
    }
}
