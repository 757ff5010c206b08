//! Datasets (§6) through the real scheduler, local executor and child processes, on SQLite and
//! PostgreSQL: a producer's success updates its outlets and starts one `dataset` run of each DAG
//! scheduled on them, failures and skips update nothing, a DAG on two datasets waits for both,
//! a paused DAG keeps its events for later, and two schedulers never make two runs of one update.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use weir::domain::dag::Dag;
use weir::domain::ids::DagId;
use weir::domain::state::{RunState, RunType};
use weir::runtime::datasets::create_dataset_runs;
use weir::runtime::loader::DagBag;
use weir::runtime::operations;
use weir::storage::datasets::{self, EventFilter, NewDatasetEvent};
use weir::storage::runs::{self, DagRun, RunFilter};
use weir::storage::{self, Db, dags as dag_rows};

use crate::support;
use crate::support::test_app::TestApp;

const PRODUCER: &str = "
dag_id: producer
tasks:
  extract: { command: 'true' }
  load: { command: 'true', depends_on: [extract], outlets: [warehouse.orders] }
";

const CONSUMER: &str = "
dag_id: consumer
schedule: {datasets: [warehouse.orders]}
tasks:
  report: { command: 'true' }
";

/// The stepped test app over several DAGs, with the dataset scenarios' helpers.
struct World {
    db: Db,
    bag: Arc<DagBag>,
    app: TestApp,
}

impl World {
    async fn new(test_db: &support::TestDb, yamls: &[&str]) -> World {
        let app = TestApp::builder(test_db).dags(yamls).stepped().await;
        World {
            db: app.db.clone(),
            bag: app.bag(),
            app,
        }
    }

    fn dag(&self, dag_id: &str) -> Arc<Dag> {
        Arc::clone(&self.bag.dags[&DagId::parse(dag_id).unwrap()])
    }

    async fn trigger(&self, dag_id: &str) -> DagRun {
        let dag = self.dag(dag_id);
        let new_run = operations::manual_run(&dag, &serde_json::json!({}), None, None, None).unwrap();
        operations::trigger(&self.db, &dag, &new_run).await.unwrap()
    }

    async fn step(&self) {
        self.app.scheduler.tick(Utc::now()).await.unwrap();
    }

    /// Steps the scheduler (recording executor events as they come) until `done` holds.
    async fn drive_until<F, Fut>(&mut self, what: &str, done: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        self.app.drive_until(what, done).await;
    }

    /// Drives the run to its end and returns its final state.
    async fn finish(&mut self, run: &DagRun) -> RunState {
        let db = self.db.clone();
        let pk = run.pk;
        self.drive_until(&format!("run {} finishes", run.run_id), || {
            let db = db.clone();
            async move { run_state(&db, pk).await.is_finished() }
        })
        .await;
        run_state(&self.db, run.pk).await
    }

    /// Drives until `dag_id` has `n` dataset runs, all finished, and returns them oldest first.
    async fn finished_dataset_runs(&mut self, dag_id: &str, n: usize) -> Vec<DagRun> {
        let db = self.db.clone();
        let what = format!("`{dag_id}` has {n} finished dataset runs");
        self.drive_until(&what, || {
            let db = db.clone();
            async move {
                let found = dataset_runs(&db, dag_id).await;
                found.len() == n && found.iter().all(|run| run.state.is_finished())
            }
        })
        .await;
        dataset_runs(&self.db, dag_id).await
    }
}

async fn run_state(db: &Db, pk: i64) -> RunState {
    let mut connection = db.acquire().await.unwrap();
    runs::get_by_pk(&mut connection, pk).await.unwrap().unwrap().state
}

/// Every run of the DAG, oldest first.
async fn all_runs(db: &Db, dag_id: &str) -> Vec<DagRun> {
    let mut connection = db.acquire().await.unwrap();
    let filter = RunFilter {
        dag_id: Some(DagId::parse(dag_id).unwrap()),
        ..RunFilter::default()
    };
    runs::list(&mut connection, &filter).await.unwrap()
}

async fn dataset_runs(db: &Db, dag_id: &str) -> Vec<DagRun> {
    all_runs(db, dag_id)
        .await
        .into_iter()
        .filter(|run| run.run_type == RunType::Dataset)
        .collect()
}

async fn events_of(db: &Db, dataset: &str) -> Vec<datasets::DatasetEvent> {
    let mut connection = db.acquire().await.unwrap();
    let filter = EventFilter {
        dataset: Some(dataset.to_string()),
        oldest_first: true,
        ..EventFilter::default()
    };
    datasets::events(&mut connection, &filter).await.unwrap()
}

async fn change_sequence(db: &Db) -> i64 {
    let mut connection = db.acquire().await.unwrap();
    storage::change_sequence(&mut connection).await.unwrap()
}

#[tokio::test]
async fn each_successful_producer_run_starts_one_dataset_run_of_the_consumer() {
    for test_db in support::databases().await {
        let label = test_db.label;
        let mut world = World::new(&test_db, &[PRODUCER, CONSUMER]).await;
        world.step().await;

        let before = change_sequence(&world.db).await;
        let first = world.trigger("producer").await;
        assert_eq!(world.finish(&first).await, RunState::Success, "{label}");
        let recorded = events_of(&world.db, "warehouse.orders").await;
        assert_eq!(recorded.len(), 1, "{label}: one event per outlet of the succeeded task");
        let event = &recorded[0];
        assert_eq!(
            (
                event.source_dag_id.as_str(),
                event.source_run_id.as_str(),
                event.source_task_id.as_str(),
                event.source_try_number
            ),
            ("producer", first.run_id.as_str(), "load", 1),
            "{label}"
        );
        assert!(
            change_sequence(&world.db).await > before,
            "{label}: an event bumps the change counter another process's scheduler polls"
        );

        let consumed = world.finished_dataset_runs("consumer", 1).await;
        let run = &consumed[0];
        assert_eq!(run.state, RunState::Success, "{label}");
        assert!(
            run.run_id.as_str().starts_with("dataset_triggered__"),
            "{label}: {}",
            run.run_id
        );
        assert_eq!(
            (run.data_interval_start, run.data_interval_end),
            (event.created_at, event.created_at),
            "{label}: the interval spans the consumed events"
        );
        assert_eq!(run.logical_date, run.run_after, "{label}");
        assert_eq!(run.conf, serde_json::json!({}), "{label}");
        world.step().await;
        assert_eq!(
            all_runs(&world.db, "consumer").await.len(),
            1,
            "{label}: one update, one run"
        );

        let second = world.trigger("producer").await;
        assert_eq!(world.finish(&second).await, RunState::Success, "{label}");
        let consumed = world.finished_dataset_runs("consumer", 2).await;
        assert!(consumed.iter().all(|run| run.state == RunState::Success), "{label}");
        world.step().await;
        assert_eq!(all_runs(&world.db, "consumer").await.len(), 2, "{label}");
    }
}

#[tokio::test]
async fn a_failed_or_skipped_producer_task_updates_nothing() {
    const FAILING: &str = "
dag_id: failing_producer
tasks:
  load: { command: 'exit 1', outlets: [warehouse.orders] }
";
    const SKIPPING: &str = "
dag_id: skipping_producer
tasks:
  load: { command: 'exit 99', outlets: [warehouse.orders] }
  after: { command: 'true', depends_on: [load], outlets: [warehouse.orders] }
";
    for test_db in support::databases().await {
        let label = test_db.label;
        let mut world = World::new(&test_db, &[FAILING, SKIPPING, CONSUMER]).await;
        world.step().await;
        let failing = world.trigger("failing_producer").await;
        assert_eq!(world.finish(&failing).await, RunState::Failed, "{label}");
        let skipping = world.trigger("skipping_producer").await;
        assert_eq!(world.finish(&skipping).await, RunState::Success, "{label}");
        world.step().await;
        world.step().await;
        assert!(events_of(&world.db, "warehouse.orders").await.is_empty(), "{label}");
        assert!(all_runs(&world.db, "consumer").await.is_empty(), "{label}");
    }
}

#[tokio::test]
async fn a_dag_on_two_datasets_runs_once_both_are_updated() {
    const ORDERS: &str = "
dag_id: orders
tasks:
  load: { command: 'true', outlets: [warehouse.orders] }
";
    const ITEMS: &str = "
dag_id: items
tasks:
  load: { command: 'true', outlets: [warehouse.items] }
";
    const REPORT: &str = "
dag_id: report
schedule: {datasets: [warehouse.orders, warehouse.items]}
tasks:
  build: { command: 'true' }
";
    for test_db in support::databases().await {
        let label = test_db.label;
        let mut world = World::new(&test_db, &[ORDERS, ITEMS, REPORT]).await;
        world.step().await;
        let orders = world.trigger("orders").await;
        assert_eq!(world.finish(&orders).await, RunState::Success, "{label}");
        let again = world.trigger("orders").await;
        assert_eq!(world.finish(&again).await, RunState::Success, "{label}");
        world.step().await;
        assert!(
            all_runs(&world.db, "report").await.is_empty(),
            "{label}: orders alone is not enough"
        );

        let items = world.trigger("items").await;
        assert_eq!(world.finish(&items).await, RunState::Success, "{label}");
        let consumed = world.finished_dataset_runs("report", 1).await;
        let run = &consumed[0];
        assert_eq!(run.state, RunState::Success, "{label}");
        let first_orders = events_of(&world.db, "warehouse.orders").await[0].created_at;
        let items_event = events_of(&world.db, "warehouse.items").await[0].created_at;
        assert_eq!(
            (run.data_interval_start, run.data_interval_end),
            (first_orders, items_event),
            "{label}: from the earliest to the latest consumed event"
        );

        let orders = world.trigger("orders").await;
        assert_eq!(world.finish(&orders).await, RunState::Success, "{label}");
        world.step().await;
        assert_eq!(
            all_runs(&world.db, "report").await.len(),
            1,
            "{label}: both need news again after a run"
        );
    }
}

#[tokio::test]
async fn a_paused_consumer_keeps_its_updates_and_runs_once_when_unpaused() {
    const PAUSED_CONSUMER: &str = "
dag_id: consumer
schedule: {datasets: [warehouse.orders]}
is_paused_upon_creation: true
tasks:
  report: { command: 'true' }
";
    for test_db in support::databases().await {
        let label = test_db.label;
        let mut world = World::new(&test_db, &[PRODUCER, PAUSED_CONSUMER]).await;
        world.step().await;
        for _ in 0..2 {
            let run = world.trigger("producer").await;
            assert_eq!(world.finish(&run).await, RunState::Success, "{label}");
        }
        world.step().await;
        assert_eq!(events_of(&world.db, "warehouse.orders").await.len(), 2, "{label}");
        assert!(
            all_runs(&world.db, "consumer").await.is_empty(),
            "{label}: paused, no run"
        );

        operations::set_paused(&world.db, &world.dag("consumer"), false)
            .await
            .unwrap();
        let consumed = world.finished_dataset_runs("consumer", 1).await;
        assert_eq!(consumed[0].state, RunState::Success, "{label}");
        world.step().await;
        assert_eq!(
            all_runs(&world.db, "consumer").await.len(),
            1,
            "{label}: updates queued while paused make one run"
        );
    }
}

#[tokio::test]
async fn a_consumer_at_max_active_runs_consumes_the_waiting_updates_in_one_later_run() {
    for test_db in support::databases().await {
        let label = test_db.label;
        let folder = tempfile::tempdir().unwrap();
        let release = folder.path().join("release");
        let slow_consumer = format!(
            "
dag_id: consumer
schedule: {{datasets: [warehouse.orders]}}
max_active_runs: 1
tasks:
  report: {{ command: 'while [ ! -e {} ]; do sleep 0.05; done' }}
",
            release.display()
        );
        let mut world = World::new(&test_db, &[PRODUCER, &slow_consumer]).await;
        world.step().await;
        let first = world.trigger("producer").await;
        assert_eq!(world.finish(&first).await, RunState::Success, "{label}");
        let db = world.db.clone();
        world
            .drive_until("the first dataset run is running", || {
                let db = db.clone();
                async move {
                    dataset_runs(&db, "consumer")
                        .await
                        .iter()
                        .any(|run| run.state == RunState::Running)
                }
            })
            .await;
        for _ in 0..2 {
            let run = world.trigger("producer").await;
            assert_eq!(world.finish(&run).await, RunState::Success, "{label}");
        }
        world.step().await;
        assert_eq!(
            dataset_runs(&world.db, "consumer").await.len(),
            1,
            "{label}: at max_active_runs the updates wait"
        );

        std::fs::write(&release, "").unwrap();
        let consumed = world.finished_dataset_runs("consumer", 2).await;
        assert!(consumed.iter().all(|run| run.state == RunState::Success), "{label}");
        world.step().await;
        assert_eq!(
            dataset_runs(&world.db, "consumer").await.len(),
            2,
            "{label}: the two waiting updates made one run"
        );
    }
}

#[tokio::test]
async fn two_schedulers_racing_never_make_two_runs_of_one_update() {
    for test_db in support::databases().await {
        let label = test_db.label;
        let world = World::new(&test_db, &[PRODUCER, CONSUMER]).await;
        let records: HashMap<DagId, dag_rows::DagRecord> = {
            let mut connection = world.db.acquire().await.unwrap();
            dag_rows::list(&mut connection)
                .await
                .unwrap()
                .into_iter()
                .map(|record| (record.dag_id.clone(), record))
                .collect()
        };
        create_dataset_runs(&world.db, &world.bag, &records, Utc::now())
            .await
            .unwrap();
        const ROUNDS: usize = 8;
        for round in 0..ROUNDS {
            let mut connection = world.db.begin().await.unwrap();
            let event = NewDatasetEvent {
                dataset: "warehouse.orders",
                source_dag_id: "producer",
                source_run_id: "manual__somewhen",
                source_task_id: "load",
                source_try_number: 1,
            };
            datasets::record_event(&mut connection, &event, Utc::now())
                .await
                .unwrap();
            connection.commit().await.unwrap();
            let (one, other) = tokio::join!(
                create_dataset_runs(&world.db, &world.bag, &records, Utc::now()),
                create_dataset_runs(&world.db, &world.bag, &records, Utc::now()),
            );
            assert_eq!(
                one.unwrap() + other.unwrap(),
                1,
                "{label}: round {round}: exactly one of the two schedulers creates the run"
            );
        }
        assert_eq!(dataset_runs(&world.db, "consumer").await.len(), ROUNDS, "{label}");
    }
}
