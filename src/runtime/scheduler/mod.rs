//! The scheduler: one writer of state transitions. Each step ([`Scheduler::tick`]) creates due
//! runs, starts queued runs, plans every running run with the pure planner, commits the
//! decisions, then claims and hands scheduled tasks to the executor. Executor events are
//! recorded by [`Scheduler::handle_event`], and the loop re-plans at once, so a finished task's
//! downstream starts without waiting for a polling tick.
//!
//! The folder is split by job: this module holds the type, its settings and what the other
//! parts share; `step` is one tick in order, `runs` creates and starts runs,
//! `plan` plans running runs, `dispatch` hands claimed attempts to the executor, `events`
//! records what the executor reports, `recover` takes over dead owners' work, `run_loop` holds
//! the long-lived loops, and `cache` everything kept between steps ([`SchedulerCache`]).

mod cache;
mod dispatch;
mod events;
mod plan;
mod recover;
mod run_loop;
mod runs;
mod step;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use super::alerts::AlertRouting;
use super::connections::{Resolved, SecretSources};
use super::executor::Executor;
use super::health::Health;
use super::loader::DagBag;
use super::metrics::SchedulerMetrics;
use super::recovery::{self, Registration};
use crate::domain::ids::DagId;
use crate::domain::state::RunState;
use crate::storage::runs::RunFilter;
use crate::storage::{self, Db};

use cache::SchedulerCache;
pub use dispatch::{capacity, connection_urls};
pub use plan::run_snapshot;

/// How a scheduler is set up.
#[derive(Debug, Clone)]
pub struct SchedulerSettings {
    pub parallelism: u32,
    pub pools: BTreeMap<String, u32>,
    pub logs_dir: PathBuf,
    pub kill_grace: Duration,
    /// Most bytes of task output kept in one attempt's log.
    pub max_log_bytes: u64,
    /// `None`: the daemon, which creates scheduled runs and drives every run without an owner.
    /// `Some(owner)`: `weir dags test`, which drives only the runs it owns.
    pub owner: Option<String>,
    /// Variables on top of the database's and `WEIR_VAR_*` (tests set them here).
    pub variables: BTreeMap<String, String>,
    /// Values to mask besides every connection's password (tests set them here).
    pub connection_passwords: Vec<String>,
    /// Connections (config, env, database) and database variables, read at each dispatch.
    pub secrets: SecretSources,
}

/// The DAG rows of the metadata database, by id.
type DagRecords = HashMap<DagId, storage::dags::DagRecord>;

/// What one step did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickOutcome {
    pub runs_created: usize,
    pub runs_started: usize,
    pub runs_finished: usize,
    pub tasks_queued: usize,
    /// When the next step is due even if nothing else happens (a run's interval ends, a retry
    /// delay passes).
    pub next_wake: Option<DateTime<Utc>>,
}

pub struct Scheduler {
    db: Db,
    settings: SchedulerSettings,
    dags: watch::Receiver<Arc<DagBag>>,
    executor: Arc<dyn Executor>,
    hostname: String,
    /// What is kept between steps (DAG rows, run snapshots, wake-ups, the schedule memo,
    /// resolved connections and variables), with its one invalidation rule.
    cache: SchedulerCache,
    metrics: Arc<SchedulerMetrics>,
    /// Alerts (§9): `None` raises none (`weir dags test`).
    alerts: Option<AlertHooks>,
    /// This scheduler's row: its claims are recorded as its own, and recovery leaves them alone
    /// while it beats. [`Scheduler::run`] registers one when none was given.
    registration: Option<Registration>,
    /// Where [`Scheduler::run`] reports its state and database outages.
    health: Arc<Health>,
}

/// How the scheduler raises alerts: where to route them, and whom to wake once they are committed.
struct AlertHooks {
    routing: AlertRouting,
    delivery: Arc<tokio::sync::Notify>,
    /// Set when a step or an event recorded alerts; the delivery loop is woken after the commit.
    recorded: std::sync::atomic::AtomicBool,
}

fn earliest(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl Scheduler {
    pub fn new(
        db: Db,
        settings: SchedulerSettings,
        dags: watch::Receiver<Arc<DagBag>>,
        executor: Arc<dyn Executor>,
    ) -> Self {
        let hostname = recovery::this_host();
        Scheduler {
            db,
            settings,
            dags,
            executor,
            hostname,
            cache: SchedulerCache::default(),
            metrics: Arc::new(SchedulerMetrics::default()),
            alerts: None,
            registration: None,
            health: Arc::default(),
        }
    }

    /// Claims attempts as the registered scheduler `registration` (`weir dags test` registers
    /// before it creates the run it owns).
    pub fn with_registration(mut self, registration: Registration) -> Self {
        self.registration = Some(registration);
        self
    }

    fn scheduler_id(&self) -> Option<i64> {
        self.registration.as_ref().map(|registration| registration.id)
    }

    /// Records that this scheduler is alive at `now`; a daemon also updates the heartbeat
    /// `/monitor/health` reports.
    async fn heartbeat(&self, connection: &mut sqlx::AnyConnection, now: DateTime<Utc>) -> anyhow::Result<()> {
        if let Some(registration) = &self.registration {
            storage::schedulers::heartbeat(connection, registration.id, now).await?;
        }
        if self.owner().is_none() {
            storage::record_heartbeat(connection, now).await?;
        }
        Ok(())
    }

    /// Records this scheduler's clean stop: what it still holds is anyone's to recover at once.
    pub async fn mark_stopped(&self) {
        let Some(registration) = &self.registration else {
            return;
        };
        let stopped = async {
            let mut connection = self.db.acquire().await?;
            storage::schedulers::mark_stopped(&mut connection, registration.id, Utc::now()).await
        };
        if let Err(error) = stopped.await {
            tracing::warn!(
                "cannot record this scheduler's stop (its attempts are recovered once its process is gone): {error:#}"
            );
        }
    }

    /// Reports the loop's state (alive, in a database outage, last heartbeat) to `health`.
    pub fn with_health(mut self, health: Arc<Health>) -> Self {
        self.health = health;
        self
    }

    /// Raises alerts (§9) with `routing`, waking `delivery` whenever new ones are committed.
    pub fn with_alerts(mut self, routing: AlertRouting, delivery: Arc<tokio::sync::Notify>) -> Self {
        self.alerts = Some(AlertHooks {
            routing,
            delivery,
            recorded: std::sync::atomic::AtomicBool::new(false),
        });
        self
    }

    /// Notes that alerts were recorded (in a transaction the caller commits).
    fn alerts_recorded(&self, count: usize) {
        if count > 0
            && let Some(hooks) = &self.alerts
        {
            hooks.recorded.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Wakes the delivery loop if alerts were recorded since the last call (after their commit).
    fn wake_alert_delivery(&self) {
        if let Some(hooks) = &self.alerts
            && hooks.recorded.swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            hooks.delivery.notify_one();
        }
    }

    /// Forgets what is known about schedules; the next step looks at every DAG again and plans
    /// every running run from a fresh read.
    pub fn forget_schedule_memo(&self) {
        self.cache.forget_schedule_memo();
    }

    /// Shares this scheduler's measurements (with the web server's `/metrics`).
    pub fn with_metrics(mut self, metrics: Arc<SchedulerMetrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The DAG rows, from the cache unless the change counter moved or this scheduler wrote
    /// them since.
    async fn dag_records(&self, change_seq: i64) -> anyhow::Result<Arc<DagRecords>> {
        if let Some(records) = self.cache.dag_records(change_seq) {
            return Ok(records);
        }
        let mut connection = self.db.acquire().await?;
        let records: Arc<DagRecords> = Arc::new(
            storage::dags::list(&mut connection)
                .await?
                .into_iter()
                .map(|record| (record.dag_id.clone(), record))
                .collect(),
        );
        self.cache.keep_dag_records(change_seq, Arc::clone(&records));
        Ok(records)
    }

    /// Connections and variables from every source, from the cache while they are fresh: read
    /// again when the change counter (`change_seq`, read before this) moved.
    async fn resolve_secrets(&self, connection: &mut sqlx::AnyConnection, change_seq: i64) -> anyhow::Result<Resolved> {
        if let Some(resolved) = self.cache.resolved(std::time::Instant::now(), change_seq) {
            return Ok(resolved);
        }
        let resolved = self.settings.secrets.resolve(connection).await?;
        self.cache
            .keep_resolved(std::time::Instant::now(), change_seq, resolved.clone());
        Ok(resolved)
    }

    fn bag(&self) -> Arc<DagBag> {
        Arc::clone(&self.dags.borrow())
    }

    fn owner(&self) -> Option<&str> {
        self.settings.owner.as_deref()
    }

    fn run_filter(&self, state: RunState) -> RunFilter {
        RunFilter {
            states: vec![state],
            owner: Some(self.settings.owner.clone()),
            ..RunFilter::default()
        }
    }
}
