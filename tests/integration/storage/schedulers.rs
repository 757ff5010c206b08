//! Scheduler rows and what they own: registration, heartbeats and stops, the attempts a claim
//! records as its scheduler's, taking one over (once), and adopting a `weir dags test` run.

use serde_json::json;
use weir::domain::dag::Task;
use weir::domain::liveness::{SchedulerKind, test_run_owner};
use weir::domain::state::RunType;
use weir::storage::Db;
use weir::storage::runs::{self, DagRun};
use weir::storage::schedulers::{self, NewScheduler};
use weir::storage::task_instances;

use super::{PIPELINE, at, insert_run, new_run, task_id};
use crate::support::{TestDb, dag, databases};

async fn register(db: &Db, label: &str, kind: SchedulerKind, pid: u32, now: &str) -> i64 {
    let mut connection = db.acquire().await.expect(label);
    let scheduler = NewScheduler {
        kind,
        hostname: "etl-1",
        pid,
        pid_start: Some(98_765),
    };
    schedulers::register(&mut connection, &scheduler, at(now))
        .await
        .expect(label)
}

/// A running run of the pipeline owned by `owner`, its `extract` task claimed by `scheduler_id`.
async fn run_with_claim(db: &Db, label: &str, owner: Option<String>, scheduler_id: Option<i64>) -> DagRun {
    let pipeline = dag(PIPELINE);
    let mut new = new_run(
        "orders_pipeline",
        "manual__2026-03-01",
        RunType::Manual,
        "2026-03-01T05:30:00Z",
    );
    new.owner = owner;
    let run = insert_run(db, label, &new).await;
    let mut connection = db.acquire().await.expect(label);
    runs::start(&mut connection, run.pk, at("2026-03-02T05:30:00Z"))
        .await
        .expect(label);
    let tasks: Vec<&Task> = pipeline.tasks.iter().collect();
    task_instances::create(&mut connection, run.pk, &run.dag_id, &run.run_id, &tasks)
        .await
        .expect(label);
    let extract = task_id("extract");
    task_instances::set_state(
        &mut connection,
        run.pk,
        &extract,
        weir::domain::state::TaskState::Scheduled,
        None,
        at("2026-03-02T05:30:00Z"),
    )
    .await
    .expect(label);
    let rendered = json!({});
    let claimed = task_instances::claim_many(
        &mut connection,
        run.pk,
        &[(&extract, &rendered)],
        scheduler_id,
        at("2026-03-02T05:30:01Z"),
    )
    .await
    .expect(label);
    assert_eq!(claimed, vec![(extract, 1)], "{label}");
    run
}

#[tokio::test]
async fn a_registered_scheduler_beats_stops_and_is_forgotten_a_week_later() {
    for TestDb { db, label, .. } in &databases().await {
        let old = register(db, label, SchedulerKind::Test, 11, "2026-03-01T00:00:00Z").await;
        let live = register(db, label, SchedulerKind::Daemon, 22, "2026-03-01T00:00:00Z").await;
        assert!(live > old, "{label}: ids grow");
        let mut connection = db.acquire().await.expect(label);
        schedulers::heartbeat(&mut connection, live, at("2026-03-09T00:00:00Z"))
            .await
            .expect(label);
        schedulers::mark_stopped(&mut connection, old, at("2026-03-01T00:10:00Z"))
            .await
            .expect(label);

        let rows = schedulers::get_many(&mut connection, &[old, live, live + 100])
            .await
            .expect(label);
        assert_eq!(rows.len(), 2, "{label}: unknown ids are left out");
        let live_row = rows.iter().find(|row| row.id == live).expect(label);
        assert_eq!(
            (
                live_row.kind,
                live_row.hostname.as_str(),
                live_row.pid,
                live_row.pid_start
            ),
            (SchedulerKind::Daemon, "etl-1", 22, Some(98_765)),
            "{label}"
        );
        assert_eq!(
            (live_row.started_at, live_row.heartbeat_at, live_row.stopped_at),
            (at("2026-03-01T00:00:00Z"), at("2026-03-09T00:00:00Z"), None),
            "{label}"
        );
        let not_stopped: Vec<i64> = schedulers::not_stopped(&mut connection)
            .await
            .expect(label)
            .iter()
            .map(|row| row.id)
            .collect();
        assert_eq!(not_stopped, vec![live], "{label}");

        let forgotten = schedulers::forget_before(&mut connection, at("2026-03-02T00:00:00Z"))
            .await
            .expect(label);
        assert_eq!(forgotten, 1, "{label}: only the row stopped before the cutoff");
        let left = schedulers::get_many(&mut connection, &[old, live]).await.expect(label);
        assert_eq!(left.iter().map(|row| row.id).collect::<Vec<_>>(), vec![live], "{label}");
    }
}

#[tokio::test]
async fn an_attempt_is_held_by_its_claimer_and_taken_over_from_it_once() {
    for TestDb { db, label, .. } in &databases().await {
        let dead = register(db, label, SchedulerKind::Daemon, 11, "2026-03-02T00:00:00Z").await;
        let first_taker = register(db, label, SchedulerKind::Daemon, 22, "2026-03-02T00:00:00Z").await;
        let second_taker = register(db, label, SchedulerKind::Daemon, 33, "2026-03-02T00:00:00Z").await;
        let run = run_with_claim(db, label, None, Some(dead)).await;
        let extract = task_id("extract");
        let mut connection = db.acquire().await.expect(label);

        let held = task_instances::held_by_others(&mut connection, dead)
            .await
            .expect(label);
        assert!(held.is_empty(), "{label}: its own claims are not another's");
        let held = task_instances::held_by_others(&mut connection, first_taker)
            .await
            .expect(label);
        assert_eq!(held.len(), 1, "{label}");
        assert_eq!(
            (&held[0].0.task_id, held[0].0.try_number, held[0].1),
            (&extract, 1, Some(dead)),
            "{label}"
        );

        let took = |taker| {
            let db = db.clone();
            let extract = extract.clone();
            async move {
                let mut transaction = db.begin().await.expect("a transaction");
                let took = task_instances::take_over(&mut transaction, run.pk, &extract, 1, Some(dead), taker)
                    .await
                    .expect("take over");
                transaction.commit().await.expect("a commit");
                took
            }
        };
        let (first, second) = tokio::join!(took(first_taker), took(second_taker));
        assert!(first ^ second, "{label}: exactly one taker wins ({first}, {second})");
        let winner = if first { first_taker } else { second_taker };
        let held = task_instances::held_by_others(&mut connection, winner)
            .await
            .expect(label);
        assert!(held.is_empty(), "{label}: the attempt is the winner's now");
        let mut transaction = db.begin().await.expect(label);
        assert!(
            !task_instances::take_over(&mut transaction, run.pk, &extract, 2, Some(winner), dead)
                .await
                .expect(label),
            "{label}: another try number is not taken"
        );
    }
}

#[tokio::test]
async fn attempts_claimed_before_schedulers_were_recorded_are_held_by_none() {
    for TestDb { db, label, .. } in &databases().await {
        let me = register(db, label, SchedulerKind::Daemon, 22, "2026-03-02T00:00:00Z").await;
        let run = run_with_claim(db, label, None, None).await;
        let mut connection = db.begin().await.expect(label);
        let held = task_instances::held_by_others(&mut connection, me).await.expect(label);
        assert_eq!(
            held.iter().map(|(_, holder)| *holder).collect::<Vec<_>>(),
            vec![None],
            "{label}"
        );
        assert!(
            task_instances::take_over(&mut connection, run.pk, &task_id("extract"), 1, None, me)
                .await
                .expect(label),
            "{label}"
        );
        assert!(
            task_instances::held_by_others(&mut connection, me)
                .await
                .expect(label)
                .is_empty(),
            "{label}"
        );
    }
}

#[tokio::test]
async fn a_dags_test_run_is_listed_as_owned_until_the_daemon_adopts_it_once() {
    for TestDb { db, label, .. } in &databases().await {
        let test = register(db, label, SchedulerKind::Test, 11, "2026-03-02T00:00:00Z").await;
        let owner = test_run_owner(test);
        let run = run_with_claim(db, label, Some(owner.clone()), Some(test)).await;
        let mut connection = db.begin().await.expect(label);
        let owned = runs::owned_active(&mut connection).await.expect(label);
        assert_eq!(
            owned.iter().map(|run| (run.pk, run.owner.clone())).collect::<Vec<_>>(),
            vec![(run.pk, Some(owner.clone()))],
            "{label}"
        );
        assert!(
            runs::adopt(&mut connection, run.pk, &owner).await.expect(label),
            "{label}"
        );
        assert!(
            !runs::adopt(&mut connection, run.pk, &owner).await.expect(label),
            "{label}: adopted once"
        );
        assert!(
            runs::owned_active(&mut connection).await.expect(label).is_empty(),
            "{label}"
        );
        let adopted = runs::get_by_pk(&mut connection, run.pk)
            .await
            .expect(label)
            .expect(label);
        assert_eq!(adopted.owner, None, "{label}");
    }
}
