//! A running weir built from a [`Config`]: the DAG folder loader, the scheduler with its alert
//! delivery and retention, and the web server, stopped by a cancellation token. `weir serve`,
//! `weir scheduler` and `weir webserver` are thin wrappers around it; tests build one in-process
//! on port 0.
//!
//! It sits beside `cli`, above `api` and `runtime`: it wires the web server, so it cannot live in
//! `runtime` (which `api` depends on).
//!
//! The failure policy lives here: each loop waits out a database outage itself (the one helper
//! `runtime::health::DatabaseLoop` retries transient errors), and a component that ends with an
//! error (a fatal database error, the listener failing) stops the whole daemon through
//! [`Supervisor::spawn_critical`], so that [`Daemon::run`] returns [`DaemonError::Fatal`] and the
//! process exits with status 1 for a supervisor to start it again.

mod retention;
mod start;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::{self, ApiState};
use crate::config::Config;
use crate::runtime::alerts::{AlertDelivery, AlertRouting};
use crate::runtime::connections::SecretSources;
use crate::runtime::executor::{ExecutorEvent, LocalExecutor};
use crate::runtime::health::Health;
use crate::runtime::loader::{self, DagBag, DagFolder};
use crate::runtime::metrics::SchedulerMetrics;
use crate::runtime::scheduler::{Scheduler, SchedulerSettings};
use crate::runtime::scheduler_lock::{self, SchedulerLock};
use crate::storage::Db;

pub use start::{EncryptedCounts, encrypt_plain_secrets, open_database, secrets_key};

/// Most bytes of one attempt's output kept in its log file.
const MAX_LOG_BYTES: u64 = 256 * 1024 * 1024;

/// Which parts a daemon runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `weir serve`: scheduler, local workers and web server in one process.
    All,
    /// `weir scheduler`: the scheduler and local workers only.
    Scheduler,
    /// `weir webserver`: the web server only, against the same database.
    Webserver,
}

impl Role {
    fn runs_scheduler(self) -> bool {
        matches!(self, Role::All | Role::Scheduler)
    }

    fn runs_webserver(self) -> bool {
        matches!(self, Role::All | Role::Webserver)
    }
}

/// Why a daemon did not start or stopped on its own.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The configuration cannot be used as it is (the secrets key): the person must change it.
    #[error("{0}")]
    Config(String),
    /// Starting failed (the database, the scheduler lock, the DAG folder, the listener).
    #[error(transparent)]
    Start(#[from] anyhow::Error),
    /// A component stopped with an error the daemon cannot go on after.
    #[error("{0}")]
    Fatal(String),
}

/// A daemon built and ready to run: every start-up step that can fail is done.
pub struct Daemon {
    config: Arc<Config>,
    db: Db,
    health: Arc<Health>,
    folder: DagFolder,
    bag: watch::Sender<Arc<DagBag>>,
    scheduler: Option<SchedulerPart>,
    web: Option<WebPart>,
    /// One scheduler per SQLite database, held until the daemon ends (a second one would wait on
    /// the first one's writes; on PostgreSQL several run side by side).
    _scheduler_lock: Option<SchedulerLock>,
}

struct SchedulerPart {
    scheduler: Scheduler,
    events: mpsc::UnboundedReceiver<ExecutorEvent>,
    delivery: AlertDelivery,
    delivery_wake: Arc<Notify>,
}

struct WebPart {
    listener: TcpListener,
    state: ApiState,
}

impl Daemon {
    /// Opens (and for a scheduler migrates) the database, loads the DAG folder, prepares the
    /// scheduler and the web server of `role`. The web server serves on `listener` when given
    /// (tests bind port 0), else on `[webserver] bind`.
    pub async fn build(config: Config, role: Role, listener: Option<TcpListener>) -> Result<Daemon, DaemonError> {
        let scheduler_lock = match scheduler_lock::sqlite_file(&config.database_url) {
            Some(database) if role.runs_scheduler() => {
                Some(SchedulerLock::acquire(&database).map_err(|error| anyhow::anyhow!("{error}"))?)
            }
            _ => None,
        };
        let db = open_database(&config, role.runs_scheduler()).await?;
        let secrets = secrets_key(&config).map_err(|error| DaemonError::Config(error.to_string()))?;
        if role.runs_scheduler() {
            encrypt_plain_secrets(&db, &secrets).await?;
        }
        let health = Arc::new(Health::default());
        let config = Arc::new(config);

        let (folder, initial) = load_folder(&config).await?;
        if role.runs_scheduler() {
            loader::record(&db, &initial)
                .await
                .context("recording the DAG folder")?;
        }
        let (bag, bag_rx) = watch::channel(Arc::new(initial));

        let scheduler_metrics = role.runs_scheduler().then(|| Arc::new(SchedulerMetrics::default()));
        let scheduler = scheduler_metrics.as_ref().map(|metrics| {
            let (events_tx, events) = mpsc::unbounded_channel();
            let settings = SchedulerSettings {
                parallelism: config.parallelism,
                pools: config.pools.clone(),
                logs_dir: config.logs_dir(),
                kill_grace: config.task_kill_grace,
                max_log_bytes: MAX_LOG_BYTES,
                owner: None,
                variables: std::collections::BTreeMap::new(),
                connection_passwords: Vec::new(),
                secrets: SecretSources::from_config(&config, secrets.clone()),
            };
            // The scheduler records alerts in its transactions and wakes the delivery loop, which
            // sends them on its own tasks so a dead channel never slows scheduling.
            let delivery_wake = Arc::new(Notify::new());
            let routing = AlertRouting {
                defaults: config.alerts.defaults.clone(),
                base_url: config.base_url.clone(),
                logs_dir: config.logs_dir(),
            };
            let scheduler = Scheduler::new(db.clone(), settings, bag_rx.clone(), LocalExecutor::new(events_tx))
                .with_metrics(Arc::clone(metrics))
                .with_alerts(routing, Arc::clone(&delivery_wake))
                .with_health(Arc::clone(&health));
            let delivery = AlertDelivery::new(db.clone(), &config.alerts).with_health(Arc::clone(&health));
            SchedulerPart {
                scheduler,
                events,
                delivery,
                delivery_wake,
            }
        });

        let web = match role.runs_webserver() {
            false => None,
            true => {
                let authenticator = start::prepare_authentication(&db, &config).await?;
                let listener = match listener {
                    Some(listener) => listener,
                    None => start::listen(&config.bind).await?,
                };
                let state = ApiState {
                    db: db.clone(),
                    dags: bag_rx,
                    config: Arc::clone(&config),
                    scheduler_metrics,
                    secrets,
                    auth: Arc::new(authenticator),
                    health: Arc::clone(&health),
                };
                Some(WebPart { listener, state })
            }
        };
        Ok(Daemon {
            config,
            db,
            health,
            folder,
            bag,
            scheduler,
            web,
            _scheduler_lock: scheduler_lock,
        })
    }

    /// The web server's address, when this daemon runs one.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.web.as_ref().and_then(|web| web.listener.local_addr().ok())
    }

    /// Runs every component until `cancel` fires or one of them fails fatally; then stops them
    /// all, waits for them, and returns the fatal failure, if any.
    pub async fn run(self, cancel: CancellationToken) -> Result<(), DaemonError> {
        let Daemon {
            config,
            db,
            health,
            folder,
            bag,
            scheduler,
            web,
            _scheduler_lock,
        } = self;
        let supervisor = Supervisor::new(&cancel);
        let recorder = scheduler.is_some().then(|| db.clone());
        supervisor.tracker.spawn(loader::watch_folder(
            folder,
            recorder,
            config.dag_dir_poll,
            bag,
            supervisor.root.child_token(),
            Arc::clone(&health),
        ));

        if let Some(part) = scheduler {
            supervisor
                .tracker
                .spawn(part.delivery.run(part.delivery_wake, supervisor.root.child_token()));
            let scheduler_cancel = supervisor.root.child_token();
            // A database outage is waited out inside; an error here is fatal.
            supervisor.spawn_critical("scheduler", async move {
                part.scheduler.run(part.events, scheduler_cancel).await
            });
            if let Some(days) = config.retention_days {
                supervisor.tracker.spawn(retention::clean_daily(
                    db.clone(),
                    config.logs_dir(),
                    days,
                    supervisor.root.child_token(),
                    Arc::clone(&health),
                ));
            }
        }

        if let Some(web) = web {
            tracing::info!(address = %web.listener.local_addr().context("the web server's address")?, "web server listening");
            // With each connection's address: failed logins are throttled per client address, and
            // the audit log records where a change came from.
            let service = api::router(web.state).into_make_service_with_connect_info::<SocketAddr>();
            let server_cancel = supervisor.root.child_token();
            supervisor.spawn_critical("web server", async move {
                let shutdown = async move { server_cancel.cancelled().await };
                axum::serve(web.listener, service)
                    .with_graceful_shutdown(shutdown)
                    .await
                    // The I/O error as it is, without a context chain.
                    .map_err(|error| anyhow::anyhow!("{error}"))
            });
        }

        supervisor.root.cancelled().await;
        tracing::info!("shutting down");
        let fatal = supervisor.stop().await;
        db.close().await;
        match fatal {
            Some(reason) => Err(DaemonError::Fatal(reason)),
            None => Ok(()),
        }
    }
}

/// Reads the DAG folder once, off the runtime (a missing folder is read when it appears).
async fn load_folder(config: &Config) -> anyhow::Result<(DagFolder, DagBag)> {
    let mut folder = DagFolder::new(config.dags_folder.clone(), config.validation_context());
    if !config.dags_folder.is_dir() {
        tracing::warn!(folder = %config.dags_folder.display(), "the DAG folder does not exist; it will be read when it appears");
    }
    let (folder, initial) = tokio::task::spawn_blocking(move || {
        let bag = folder.refresh().unwrap_or_default();
        (folder, bag)
    })
    .await?;
    for error in &initial.errors {
        tracing::warn!("import error: {error}");
    }
    tracing::info!(dags = initial.dags.len(), import_errors = initial.errors.len(), folder = %config.dags_folder.display(), "loaded DAG folder");
    Ok((folder, initial))
}

/// The daemon's tasks and the one rule for a component's failure: the first fatal failure stops
/// everything, and is what [`Daemon::run`] returns.
struct Supervisor {
    /// Fired by the caller's token or by a fatal failure; every component gets a child of it.
    root: CancellationToken,
    tracker: TaskTracker,
    fatal: Arc<OnceLock<String>>,
}

impl Supervisor {
    fn new(cancel: &CancellationToken) -> Supervisor {
        Supervisor {
            root: cancel.child_token(),
            tracker: TaskTracker::new(),
            fatal: Arc::default(),
        }
    }

    /// Spawns a component whose error stops the daemon (its own outages it waits out inside).
    fn spawn_critical<F>(&self, name: &'static str, component: F)
    where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let stop_all = self.root.clone();
        let fatal = Arc::clone(&self.fatal);
        self.tracker.spawn(async move {
            if let Err(error) = component.await {
                let reason = format!("the {name} stopped: {error:#}");
                tracing::error!("{reason}; shutting down");
                let _ = fatal.set(reason);
                stop_all.cancel();
            }
        });
    }

    /// Stops every component, waits for them, and returns the first fatal failure.
    async fn stop(self) -> Option<String> {
        self.root.cancel();
        self.tracker.close();
        self.tracker.wait().await;
        self.fatal.get().cloned()
    }
}
