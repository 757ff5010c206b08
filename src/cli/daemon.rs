//! `weir serve`, `weir scheduler` and `weir webserver`: the long-running parts, wired to one
//! cancellation token that SIGINT and SIGTERM fire.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{App, CliError, CliResult};
use crate::api::auth::Authenticator;
use crate::api::{self, ApiState};
use crate::config::AuthMode;
use crate::runtime::alerts::{AlertDelivery, AlertRouting};
use crate::runtime::executor::LocalExecutor;
use crate::runtime::loader::{self, DagFolder};
use crate::runtime::metrics::SchedulerMetrics;
use crate::runtime::scheduler::{Scheduler, SchedulerSettings};
use crate::runtime::scheduler_lock::{self, SchedulerLock};
use crate::runtime::users::{self, FirstAdmin};

/// Most bytes of one attempt's output kept in its log file.
const MAX_LOG_BYTES: u64 = 256 * 1024 * 1024;

pub async fn serve(app: &App, with_scheduler: bool, with_webserver: bool) -> CliResult {
    // Installed first: a SIGTERM during start-up (while tasks may already run) is a clean stop,
    // not the default action that kills the process.
    let signals = Signals::install();
    let config = &app.config;
    // One scheduler per SQLite database, held until this process ends (a second one would wait
    // on the first one's writes; on PostgreSQL several run side by side).
    let _scheduler_lock = match scheduler_lock::sqlite_file(&config.database_url) {
        Some(database) if with_scheduler => {
            Some(SchedulerLock::acquire(&database).map_err(|error| CliError::Failed(error.to_string()))?)
        }
        _ => None,
    };
    let db = app.db(with_scheduler).await?;
    let secrets = app.secrets_key()?;
    if with_scheduler {
        super::encrypt_plain_secrets(&db, &secrets).await?;
    }
    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();

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
    if with_scheduler {
        loader::record(&db, &initial)
            .await
            .context("recording the DAG folder")?;
    }
    tracing::info!(dags = initial.dags.len(), import_errors = initial.errors.len(), folder = %config.dags_folder.display(), "loaded DAG folder");
    let (bag_tx, bag_rx) = watch::channel(Arc::new(initial));
    let recorder = with_scheduler.then(|| db.clone());
    tracker.spawn(loader::watch_folder(
        folder,
        recorder,
        config.dag_dir_poll,
        bag_tx,
        cancel.child_token(),
    ));

    let scheduler_metrics = with_scheduler.then(|| Arc::new(SchedulerMetrics::default()));
    if let Some(metrics) = &scheduler_metrics {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let executor = LocalExecutor::new(events_tx);
        let settings = SchedulerSettings {
            parallelism: config.parallelism,
            pools: config.pools.clone(),
            logs_dir: config.logs_dir(),
            kill_grace: config.task_kill_grace,
            max_log_bytes: MAX_LOG_BYTES,
            owner: None,
            variables: std::collections::BTreeMap::new(),
            connection_passwords: Vec::new(),
            secrets: crate::runtime::connections::SecretSources::from_config(config, secrets.clone()),
        };
        // §9: the scheduler records alerts in its transactions and wakes the delivery loop, which
        // sends them on its own tasks so a dead channel never slows scheduling.
        let delivery_wake = Arc::new(tokio::sync::Notify::new());
        let routing = AlertRouting {
            defaults: config.alerts.defaults.clone(),
            base_url: config.base_url.clone(),
            logs_dir: config.logs_dir(),
        };
        let scheduler = Scheduler::new(db.clone(), settings, bag_rx.clone(), executor)
            .with_metrics(Arc::clone(metrics))
            .with_alerts(routing, Arc::clone(&delivery_wake));
        let delivery = AlertDelivery::new(db.clone(), &config.alerts);
        tracker.spawn(delivery.run(delivery_wake, cancel.child_token()));
        let scheduler_cancel = cancel.child_token();
        let stop_all = cancel.clone();
        tracker.spawn(async move {
            if let Err(error) = scheduler.run(events_rx, scheduler_cancel).await {
                tracing::error!("scheduler stopped: {error:#}");
                stop_all.cancel();
            }
        });
    }

    if with_scheduler && let Some(days) = config.retention_days {
        tracker.spawn(clean_daily(db.clone(), config.logs_dir(), days, cancel.child_token()));
    }

    if with_webserver {
        let authenticator = prepare_authentication(&db, config).await?;
        let listener = listen(&config.bind).await?;
        tracing::info!(address = %listener.local_addr()?, "web server listening");
        let state = ApiState {
            db: db.clone(),
            dags: bag_rx,
            config: Arc::new(config.clone()),
            scheduler_metrics,
            secrets,
            auth: Arc::new(authenticator),
        };
        // With each connection's address: failed logins are throttled per client address, and the
        // audit log records where a change came from.
        let service = api::router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
        let server_cancel = cancel.child_token();
        tracker.spawn(async move {
            let shutdown = async move { server_cancel.cancelled().await };
            if let Err(error) = axum::serve(listener, service).with_graceful_shutdown(shutdown).await {
                tracing::error!("web server stopped: {error}");
            }
        });
    }

    signals.wait(&cancel).await;
    tracing::info!("shutting down");
    cancel.cancel();
    tracker.close();
    tracker.wait().await;
    db.close().await;
    Ok(ExitCode::SUCCESS)
}

/// Listens on `[webserver] bind`, resolving a host name now (the first of its addresses that
/// accepts).
async fn listen(bind: &crate::config::BindAddress) -> anyhow::Result<tokio::net::TcpListener> {
    let addresses = bind
        .resolve()
        .await
        .with_context(|| format!("cannot resolve {bind} ([webserver] bind)"))?;
    tokio::net::TcpListener::bind(addresses.as_slice())
        .await
        .with_context(|| format!("cannot listen on {bind} ([webserver] bind)"))
}

/// The token signer, the configured users, and on a first start the `admin` user, whose
/// generated password is printed this once and kept in a private file in the state folder.
async fn prepare_authentication(
    db: &crate::storage::Db,
    config: &crate::config::Config,
) -> anyhow::Result<Authenticator> {
    let (authenticator, created) = Authenticator::from_config(&config.api_auth, &config.state_dir)?;
    if let Some(path) = created {
        tracing::warn!(
            "generated the token secret in {}: tokens and sessions are signed with it. When several API servers serve one installation, set [api_auth] jwt_secret to the same value on every one",
            path.display()
        );
    }
    if config.api_auth.mode == AuthMode::None {
        tracing::warn!(
            "[api_auth] mode = \"none\": everyone who reaches {} is an Admin; allowed because it is a loopback address",
            config.bind
        );
        return Ok(authenticator);
    }
    let changed = users::sync_configured(db, &config.api_auth.users).await?;
    if !changed.is_empty() {
        tracing::info!(users = ?changed, "users from [api_auth.users] created or updated");
    }
    match users::ensure_first_admin(db, &config.state_dir).await? {
        FirstAdmin::Created { password, path } => {
            // Printed, not logged: the one time a person sees it, kept out of log collectors.
            println!(
                "\nweir created the user `{}` (role Admin) with the password:\n\n    {password}\n\nIt is also in {} (readable only by you). Log in at {}/login; change it with `weir users reset-password --username {} --password ...`.\n",
                users::FIRST_ADMIN,
                path.display(),
                config.base_url,
                users::FIRST_ADMIN,
            );
        }
        FirstAdmin::Exists { path: Some(path) } => tracing::info!(
            "the first Admin's generated password is in {} (delete the file once you have changed or noted it)",
            path.display()
        ),
        FirstAdmin::Exists { path: None } => {}
    }
    Ok(authenticator)
}

/// SIGINT and SIGTERM, listened for from the moment they are installed.
struct Signals {
    interrupt: Option<tokio::signal::unix::Signal>,
    terminate: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn install() -> Signals {
        use tokio::signal::unix::{SignalKind, signal};
        Signals {
            interrupt: signal(SignalKind::interrupt()).ok(),
            terminate: signal(SignalKind::terminate()).ok(),
        }
    }

    /// Until a signal arrives or `cancel` fires.
    async fn wait(mut self, cancel: &CancellationToken) {
        async fn next(signal: Option<&mut tokio::signal::unix::Signal>) {
            match signal {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
        tokio::select! {
            _ = next(self.interrupt.as_mut()) => {}
            _ = next(self.terminate.as_mut()) => {}
            _ = cancel.cancelled() => {}
        }
    }
}

/// `[core] retention_days`: once at start and then every day, removes finished runs (and their
/// task instances, attempts and logs) and audit log entries older than that many days.
async fn clean_daily(db: crate::storage::Db, logs_dir: std::path::PathBuf, days: u32, cancel: CancellationToken) {
    let mut daily = tokio::time::interval(std::time::Duration::from_secs(24 * 3600));
    loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            _ = daily.tick() => {}
        }
        let cutoff = chrono::Utc::now() - chrono::Duration::days(i64::from(days));
        match crate::runtime::operations::clean_history(&db, &logs_dir, cutoff, None, false).await {
            Ok(report) => tracing::info!(
                runs = report.runs,
                task_instances = report.task_instances,
                log_folders = report.log_folders,
                alerts = report.alerts,
                dataset_events = report.dataset_events,
                event_logs = report.event_logs,
                days,
                "retention: removed old history"
            ),
            Err(error) => tracing::error!(%error, "retention: cannot remove old history"),
        }
    }
}
