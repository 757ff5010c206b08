//! `TestApp`: the one way a test builds a weir in-process. One builder over a fresh database
//! ([`super::databases`]) writes a project folder (config.toml with the test's values, the DAG
//! folder) and gives either
//! - [`TestApp`]: the scheduler wired as the daemon wires it, stepped by the test
//!   (`tick(now)` with an injected clock, `drive_until`), or
//! - [`RunningApp`]: a whole daemon built with `Daemon::build` and running on port 0, stopped
//!   through its cancellation token; its `drive_until` only waits, the daemon drives itself.
//!
//! Tests that must prove crash safety spawn the real binary instead (`daemon.rs`, `crash.rs`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;
use weir::config::Config;
use weir::daemon::{Daemon, DaemonError, Role};
use weir::domain::dag::Dag;
use weir::domain::state::{RunState, RunType, TaskState};
use weir::runtime::alerts::{AlertDelivery, AlertRouting};
use weir::runtime::connections::SecretSources;
use weir::runtime::executor::{ExecutorEvent, LocalExecutor};
use weir::runtime::loader::{self, DagBag};
use weir::runtime::scheduler::{Scheduler, SchedulerSettings};
use weir::storage::Db;
use weir::storage::runs::{self, DagRun, NewRun};
use weir::storage::task_instances::{self, TaskInstance};

use super::TestDb;

/// The passphrase of the secrets key every test scheduler and daemon uses.
pub const TEST_SECRETS_PASSPHRASE: &str = "weir-tests";
/// How long `drive_until` drives before it fails the test.
const DRIVE_DEADLINE: Duration = Duration::from_secs(120);

/// A change to the stepped scheduler's settings.
type Tune = Box<dyn FnOnce(&mut SchedulerSettings)>;

/// What a test wants of its weir; `stepped()` or `start()` builds it.
pub struct TestAppBuilder {
    database_url: String,
    db: Db,
    dags: Vec<String>,
    core: Vec<String>,
    config: String,
    environment: Vec<(String, String)>,
    tune: Option<Tune>,
}

impl TestAppBuilder {
    /// A DAG file (`dags/dag<n>.yaml`); the first one is [`TestApp::dag`].
    pub fn dag(mut self, yaml: &str) -> Self {
        self.dags.push(yaml.to_string());
        self
    }

    pub fn dags(mut self, yamls: &[&str]) -> Self {
        self.dags.extend(yamls.iter().map(|yaml| yaml.to_string()));
        self
    }

    /// A `[core]` line of config.toml (`parallelism = 4`), replacing the test default of its key.
    pub fn core(mut self, line: &str) -> Self {
        self.core.push(line.to_string());
        self
    }

    /// Sections added to config.toml (`[pools]`, `[alerts.<name>]`, `[webserver]` ...).
    pub fn config(mut self, toml: &str) -> Self {
        self.config.push_str(toml);
        self.config.push('\n');
        self
    }

    /// An environment variable as weir would read it at start-up (`WEIR_CONN_*`, `WEIR_VAR_*`,
    /// `WEIR__SECTION__KEY`), without touching the test process's environment.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.environment.push((name.to_string(), value.to_string()));
        self
    }

    /// Adjusts the stepped scheduler's settings beyond what config.toml says (the masked
    /// passwords of a dispatch).
    pub fn tune(mut self, tune: impl FnOnce(&mut SchedulerSettings) + 'static) -> Self {
        self.tune = Some(Box::new(tune));
        self
    }

    /// Writes the project folder and loads its config.toml.
    fn project(&self) -> (tempfile::TempDir, Config) {
        let folder = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(folder.path().join("dags")).unwrap();
        // The tests' defaults: 8 slots and a fast kill grace; a `core` line replaces its key's.
        let mut core = vec![
            "dags_folder = \"dags\"".to_string(),
            "state_dir = \"state\"".to_string(),
            "parallelism = 8".to_string(),
            "task_kill_grace = \"200ms\"".to_string(),
        ];
        let key = |line: &str| line.split('=').next().unwrap_or_default().trim().to_string();
        for line in &self.core {
            core.retain(|default| key(default) != key(line));
            core.push(line.clone());
        }
        let core = core.join("\n");
        let text = format!(
            "[core]\n{core}\n\n[database]\nurl = \"{}\"\n\n[secrets]\nkey = \"{TEST_SECRETS_PASSPHRASE}\"\n\n{}",
            self.database_url, self.config
        );
        let path = folder.path().join("config.toml");
        std::fs::write(&path, text).unwrap();
        let config = Config::load(&path, true, self.environment.clone()).unwrap_or_else(|error| panic!("{error}"));
        for (position, yaml) in self.dags.iter().enumerate() {
            std::fs::write(config.dags_folder.join(format!("dag{position}.yaml")), yaml).unwrap();
        }
        (folder, config)
    }

    /// The scheduler as `weir serve` wires it (settings from config.toml, alerts routed to a
    /// delivery loop the test starts with [`TestApp::start_delivery`]), stepped by the test.
    pub async fn stepped(self) -> TestApp {
        let (folder, config) = self.project();
        let mut bag = DagBag::default();
        let mut dags = BTreeMap::new();
        let mut first = None;
        for (position, yaml) in self.dags.iter().enumerate() {
            let path = config.dags_folder.join(format!("dag{position}.yaml"));
            let dag = Arc::new(
                Dag::from_yaml(&path, yaml, &config.validation_context()).unwrap_or_else(|error| panic!("{error}")),
            );
            first.get_or_insert_with(|| Arc::clone(&dag));
            dags.insert(dag.dag_id.to_string(), Arc::clone(&dag));
            bag.dags.insert(dag.dag_id.clone(), dag);
        }
        loader::record(&self.db, &bag).await.unwrap();
        let mut settings = SchedulerSettings {
            parallelism: config.parallelism,
            pools: config.pools.clone(),
            logs_dir: config.logs_dir(),
            kill_grace: config.task_kill_grace,
            max_log_bytes: 1024 * 1024,
            owner: None,
            variables: BTreeMap::new(),
            connection_passwords: Vec::new(),
            secrets: SecretSources::from_config(
                &config,
                weir::secrets::SecretsKey::from_passphrase(TEST_SECRETS_PASSPHRASE),
            ),
        };
        if let Some(tune) = self.tune {
            tune(&mut settings);
        }
        let (events_tx, events) = mpsc::unbounded_channel();
        let (bag_tx, bag_rx) = watch::channel(Arc::new(bag));
        let wake = Arc::new(Notify::new());
        let routing = AlertRouting {
            defaults: config.alerts.defaults.clone(),
            base_url: config.base_url.clone(),
            logs_dir: config.logs_dir(),
        };
        let scheduler = Scheduler::new(self.db.clone(), settings, bag_rx, LocalExecutor::new(events_tx))
            .with_alerts(routing, Arc::clone(&wake));
        TestApp {
            db: self.db,
            scheduler,
            events,
            dag: first.expect("a stepped test app is built with at least one DAG"),
            dags,
            config,
            wake,
            bag: bag_tx,
            folder,
        }
    }

    /// `weir serve` in-process: built with `Daemon::build` on a port-0 listener and running until
    /// [`RunningApp::stop`] (or the app is dropped).
    pub async fn start(self) -> RunningApp {
        let (folder, config) = self.project();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let daemon = Daemon::build(config.clone(), Role::All, Some(listener))
            .await
            .unwrap_or_else(|error| panic!("the daemon does not start: {error:#}"));
        let address = daemon.local_addr().expect("`Role::All` runs the web server");
        let cancel = CancellationToken::new();
        let running = tokio::spawn(daemon.run(cancel.clone()));
        RunningApp {
            db: self.db,
            address,
            config,
            cancel,
            running: Some(running),
            _folder: folder,
        }
    }
}

/// A scheduler over a project folder, stepped by the test.
pub struct TestApp {
    /// The test's own pool on the database (the scheduler has another).
    pub db: Db,
    pub scheduler: Scheduler,
    pub events: mpsc::UnboundedReceiver<ExecutorEvent>,
    /// The first DAG given.
    pub dag: Arc<Dag>,
    /// Every DAG by id.
    pub dags: BTreeMap<String, Arc<Dag>>,
    pub config: Config,
    /// Woken by the scheduler when it records alerts.
    pub wake: Arc<Notify>,
    bag: watch::Sender<Arc<DagBag>>,
    folder: tempfile::TempDir,
}

impl TestApp {
    pub fn builder(test_db: &TestDb) -> TestAppBuilder {
        TestAppBuilder {
            database_url: test_db.url.clone(),
            db: test_db.db.clone(),
            dags: Vec::new(),
            core: Vec::new(),
            config: String::new(),
            environment: Vec::new(),
            tune: None,
        }
    }

    /// A stepped scheduler over one DAG.
    pub async fn new(test_db: &TestDb, yaml: &str) -> TestApp {
        TestApp::builder(test_db).dag(yaml).stepped().await
    }

    /// The DAG `dag_id`.
    pub fn dag_named(&self, dag_id: &str) -> &Arc<Dag> {
        &self.dags[dag_id]
    }

    /// The DAGs the scheduler sees.
    pub fn bag(&self) -> Arc<DagBag> {
        Arc::clone(&self.bag.borrow())
    }

    /// The project folder (config.toml, `dags/`, `state/`).
    pub fn folder(&self) -> &std::path::Path {
        self.folder.path()
    }

    pub fn logs_dir(&self) -> std::path::PathBuf {
        self.config.logs_dir()
    }

    /// The alert delivery loop of `weir serve`, running until the returned token is cancelled.
    pub fn start_delivery(&self) -> (CancellationToken, tokio::task::JoinHandle<()>) {
        let cancel = CancellationToken::new();
        let delivery = AlertDelivery::new(self.db.clone(), &self.config.alerts);
        let handle = tokio::spawn(delivery.run(Arc::clone(&self.wake), cancel.clone()));
        (cancel, handle)
    }

    pub async fn trigger(&self) -> DagRun {
        self.trigger_with_conf(serde_json::json!({})).await
    }

    /// A manual run of the first DAG with `conf`, as `weir dags trigger --conf` or the API make one.
    pub async fn trigger_with_conf(&self, conf: serde_json::Value) -> DagRun {
        trigger(&self.db, &self.dag, conf).await
    }

    /// A manual run of the DAG `dag_id`.
    pub async fn trigger_dag(&self, dag_id: &str) -> DagRun {
        trigger(&self.db, self.dag_named(dag_id), serde_json::json!({})).await
    }

    pub async fn run_to_end(&mut self, run: &DagRun) -> RunState {
        let driving = self.scheduler.drive_until_finished(run.pk, &mut self.events);
        tokio::time::timeout(Duration::from_secs(60), driving)
            .await
            .expect("the run finishes within a minute")
            .unwrap()
    }

    /// Steps the scheduler at the wall clock (recording executor events as they come) until
    /// `done` holds.
    pub async fn drive_until<F, Fut>(&mut self, what: &str, done: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        self.drive_until_at(what, Utc::now, done).await;
    }

    /// Steps the scheduler at `now()` (an injected clock) until `done` holds.
    pub async fn drive_until_at<F, Fut>(&mut self, what: &str, now: impl Fn() -> chrono::DateTime<Utc>, mut done: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let give_up = tokio::time::Instant::now() + DRIVE_DEADLINE;
        loop {
            let outcome = self.scheduler.tick(now()).await.unwrap();
            if done().await {
                return;
            }
            assert!(
                tokio::time::Instant::now() < give_up,
                "timed out driving the scheduler until {what}"
            );
            let wait = outcome
                .next_wake
                .map(|wake| (wake - Utc::now()).to_std().unwrap_or(Duration::ZERO))
                .unwrap_or(Duration::from_millis(200))
                .min(Duration::from_millis(200));
            tokio::select! {
                Some(event) = self.events.recv() => {
                    self.scheduler.handle_event(event).await.unwrap();
                    while let Ok(more) = self.events.try_recv() {
                        self.scheduler.handle_event(more).await.unwrap();
                    }
                }
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    pub async fn instances(&self, run: &DagRun) -> BTreeMap<String, TaskInstance> {
        let mut connection = self.db.acquire().await.unwrap();
        task_instances::for_run(&mut connection, run.pk)
            .await
            .unwrap()
            .into_iter()
            .map(|ti| (ti.task_id.to_string(), ti))
            .collect()
    }

    pub async fn states(&self, run: &DagRun) -> BTreeMap<String, TaskState> {
        self.instances(run)
            .await
            .into_iter()
            .map(|(task, ti)| (task, ti.state))
            .collect()
    }
}

/// A daemon running in-process on port 0.
pub struct RunningApp {
    /// The test's own pool on the database (the daemon has another).
    pub db: Db,
    pub address: SocketAddr,
    pub config: Config,
    cancel: CancellationToken,
    running: Option<tokio::task::JoinHandle<Result<(), DaemonError>>>,
    _folder: tempfile::TempDir,
}

impl RunningApp {
    /// The status line of a plain `GET path` over HTTP/1.1 (`HTTP/1.1 200 OK`).
    pub async fn get_status(&self, path: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(self.address).await.unwrap();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.address
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        let response = String::from_utf8_lossy(&response);
        response.lines().next().unwrap_or_default().to_string()
    }

    /// Waits (the daemon drives itself) until `done` holds.
    pub async fn drive_until<F, Fut>(&self, what: &str, done: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        super::wait_until_async(what, DRIVE_DEADLINE, done).await;
    }

    /// A manual run of `dag`, as the CLI makes one while the daemon runs.
    pub async fn trigger(&self, dag: &Dag) -> DagRun {
        trigger(&self.db, dag, serde_json::json!({})).await
    }

    pub async fn run_state(&self, run: &DagRun) -> RunState {
        run_state(&self.db, run.pk).await
    }

    /// Cancels the daemon and returns how it ended.
    pub async fn stop(mut self) -> Result<(), DaemonError> {
        self.cancel.cancel();
        self.wait().await
    }

    /// Waits for the daemon to stop by itself (a fatal failure).
    pub async fn wait(&mut self) -> Result<(), DaemonError> {
        let running = self.running.take().expect("the daemon is waited for once");
        tokio::time::timeout(Duration::from_secs(60), running)
            .await
            .expect("the daemon stops within a minute")
            .expect("the daemon's task does not panic")
    }
}

impl Drop for RunningApp {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn trigger(db: &Db, dag: &Dag, conf: serde_json::Value) -> DagRun {
    let now = Utc::now();
    let run = NewRun {
        dag_id: dag.dag_id.clone(),
        run_id: runs::generated_run_id(RunType::Manual, now),
        run_type: RunType::Manual,
        logical_date: now,
        data_interval_start: now,
        data_interval_end: now,
        run_after: now,
        conf,
        owner: None,
    };
    weir::runtime::operations::trigger(db, dag, &run).await.unwrap()
}

async fn run_state(db: &Db, pk: i64) -> RunState {
    let mut connection = db.acquire().await.unwrap();
    runs::get_by_pk(&mut connection, pk).await.unwrap().unwrap().state
}
