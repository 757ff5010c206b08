//! What this process's long-running parts are doing, for `/api/v2/monitor/health`, and how they
//! live through a metadata database outage: [`DatabaseLoop`] retries transient errors with a
//! backoff and the process logs one line when the database goes away and one when it is back.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::storage::failure::{ErrorClass, class_of_anyhow};
use crate::storage::{self, Db};

/// The parts of a daemon that report their state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Component {
    Scheduler,
    /// The DAG folder loader (Airflow's DAG processor).
    DagProcessor,
    AlertDelivery,
    Retention,
}

impl Component {
    fn name(self) -> &'static str {
        match self {
            Component::Scheduler => "scheduler",
            Component::DagProcessor => "DAG folder loader",
            Component::AlertDelivery => "alert delivery",
            Component::Retention => "retention",
        }
    }
}

/// One component as last reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ComponentState {
    /// Why it stopped; `None` while it runs.
    pub stopped: Option<String>,
    /// Since when it cannot reach the metadata database.
    pub outage_since: Option<DateTime<Utc>>,
    /// Its last sign of work: the scheduler's last heartbeat written, the loader's last scan.
    pub last_beat: Option<DateTime<Utc>>,
}

impl ComponentState {
    /// Running and reaching the database.
    pub fn is_working(&self) -> bool {
        self.stopped.is_none() && self.outage_since.is_none()
    }
}

/// The shared state: components update it, the API reads it. A process without a component
/// (`weir webserver` runs no scheduler) has no entry for it.
#[derive(Debug, Default)]
pub struct Health {
    components: Mutex<BTreeMap<Component, ComponentState>>,
    outage: Mutex<Option<Outage>>,
    /// The last answer of [`Health::check_database`]: requests share one check at a time.
    database_check: tokio::sync::Mutex<Option<(std::time::Instant, Result<(), String>)>>,
}

/// The database outage in progress, as the first loop to fail saw it.
#[derive(Debug)]
struct Outage {
    since: std::time::Instant,
}

/// How long [`Health::check_database`] waits for an answer: the health endpoint must answer
/// while the database does not.
const DATABASE_CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one answer serves the requests that follow it.
const DATABASE_CHECK_REUSE: Duration = Duration::from_millis(500);

impl Health {
    /// The component starts; it counts as stopped once the returned guard is dropped (a return,
    /// an error or a panic all end the task that holds it).
    pub fn alive(self: &Arc<Self>, component: Component) -> Alive {
        self.update(component, |state| *state = ComponentState::default());
        Alive {
            health: Arc::clone(self),
            component,
            reason: None,
        }
    }

    /// The component showed it works at `at` (a heartbeat written, a folder scan done).
    pub fn beat(&self, component: Component, at: DateTime<Utc>) {
        self.update(component, |state| state.last_beat = Some(at));
    }

    /// The component's state, `None` when it does not run in this process.
    pub fn component(&self, component: Component) -> Option<ComponentState> {
        self.components
            .lock()
            .ok()
            .and_then(|components| components.get(&component).cloned())
    }

    fn update(&self, component: Component, change: impl FnOnce(&mut ComponentState)) {
        if let Ok(mut components) = self.components.lock() {
            change(components.entry(component).or_default());
        }
    }

    /// A loop of `component` could not reach the database: the first failure of an outage is
    /// logged, the others are not.
    fn database_failed(&self, component: Component, error: &anyhow::Error) {
        self.update(component, |state| {
            state.outage_since.get_or_insert_with(Utc::now);
        });
        if let Ok(mut outage) = self.outage.lock()
            && outage.is_none()
        {
            *outage = Some(Outage {
                since: std::time::Instant::now(),
            });
            tracing::warn!(
                "metadata database unreachable: {}; retrying (noticed by the {})",
                root_cause(error),
                component.name()
            );
        }
    }

    /// A loop of `component` reached the database: ends the outage in progress, if any.
    fn database_reached(&self, component: Component) {
        self.update(component, |state| state.outage_since = None);
        if let Ok(mut outage) = self.outage.lock()
            && let Some(ended) = outage.take()
        {
            tracing::info!(
                "metadata database reachable again after {:.1} s",
                ended.since.elapsed().as_secs_f64()
            );
        }
    }

    /// Whether a loop of this process is waiting out a database outage now.
    pub fn database_outage(&self) -> bool {
        self.outage.lock().is_ok_and(|outage| outage.is_some())
    }

    /// Whether the database answers a read now (within [`DATABASE_CHECK_TIMEOUT`]); concurrent
    /// callers share one check, so a dead database is not asked by every request.
    pub async fn check_database(&self, db: &Db) -> Result<(), String> {
        let mut last = self.database_check.lock().await;
        if let Some((at, answer)) = last.as_ref()
            && at.elapsed() < DATABASE_CHECK_REUSE
        {
            return answer.clone();
        }
        // A read of a table, not a bare ping: a SQLite file locked by another process answers a
        // ping and refuses every read.
        let read = async {
            let mut connection = db.acquire().await?;
            storage::change_sequence(&mut connection).await
        };
        let answer = match tokio::time::timeout(DATABASE_CHECK_TIMEOUT, read).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(format!("no answer within {} s", DATABASE_CHECK_TIMEOUT.as_secs())),
        };
        *last = Some((std::time::Instant::now(), answer.clone()));
        answer
    }
}

/// The innermost cause of an error: the part that says what happened to the connection.
fn root_cause(error: &anyhow::Error) -> String {
    error.root_cause().to_string()
}

/// Held by a running component; dropping it marks the component stopped.
#[derive(Debug)]
pub struct Alive {
    health: Arc<Health>,
    component: Component,
    reason: Option<String>,
}

impl Alive {
    /// Records why the component stops (kept when the guard is dropped).
    pub fn stopped_because(&mut self, reason: String) {
        self.reason = Some(reason);
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        let reason = self.reason.take().unwrap_or_else(|| "stopped".to_string());
        self.health.update(self.component, |state| state.stopped = Some(reason));
    }
}

/// The wait before the next try while the database is unreachable: 0.5 s, doubling up to 10 s.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(500);
    const MAX: Duration = Duration::from_secs(10);

    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        delay
    }

    pub fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: Self::FIRST }
    }
}

/// One loop's view of the database: its backoff, and its part in the process's outage log.
#[derive(Debug)]
pub struct DatabaseLoop {
    health: Arc<Health>,
    component: Component,
    backoff: Backoff,
}

impl DatabaseLoop {
    pub fn new(health: Arc<Health>, component: Component) -> DatabaseLoop {
        DatabaseLoop {
            health,
            component,
            backoff: Backoff::default(),
        }
    }

    /// A database call failed with a transient error: returns how long to wait before the next
    /// try.
    pub fn failed(&mut self, error: &anyhow::Error) -> Duration {
        self.health.database_failed(self.component, error);
        self.backoff.next_delay()
    }

    /// A database call worked.
    pub fn reached(&mut self) {
        self.backoff.reset();
        self.health.database_reached(self.component);
    }

    /// Calls `attempt` until it works, waiting out transient errors. `Ok(None)` when cancelled
    /// first; a fatal or operation error is returned as it is.
    pub async fn retry<T, F, Fut>(&mut self, cancel: &CancellationToken, mut attempt: F) -> anyhow::Result<Option<T>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = anyhow::Result<T>>,
    {
        loop {
            let result = tokio::select! {
                biased;
                _ = cancel.cancelled() => return Ok(None),
                result = attempt() => result,
            };
            match result {
                Ok(value) => {
                    self.reached();
                    return Ok(Some(value));
                }
                Err(error) if class_of_anyhow(&error) == ErrorClass::Transient => {
                    let delay = self.failed(&error);
                    tokio::select! {
                        biased;
                        _ = cancel.cancelled() => return Ok(None),
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
                Err(error) => return Err(error),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_from_half_a_second_to_ten_seconds_and_starts_again_after_a_success() {
        let mut backoff = Backoff::default();
        let delays: Vec<f64> = (0..7).map(|_| backoff.next_delay().as_secs_f64()).collect();
        assert_eq!(delays, [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), Duration::from_millis(500));
    }

    #[test]
    fn an_outage_marks_the_component_until_it_reaches_the_database_again() {
        let health = Arc::new(Health::default());
        let _alive = health.alive(Component::Scheduler);
        let mut database = DatabaseLoop::new(Arc::clone(&health), Component::Scheduler);
        let cut = anyhow::Error::from(crate::storage::StorageError::from(sqlx::Error::PoolTimedOut));
        database.failed(&cut);
        let state = health.component(Component::Scheduler).unwrap();
        assert!(state.outage_since.is_some() && !state.is_working());
        database.reached();
        assert!(health.component(Component::Scheduler).unwrap().is_working());
    }

    #[test]
    fn a_component_whose_task_ended_is_stopped_with_its_reason() {
        let health = Arc::new(Health::default());
        assert_eq!(health.component(Component::DagProcessor), None, "not running here");
        let mut alive = health.alive(Component::DagProcessor);
        assert!(health.component(Component::DagProcessor).unwrap().is_working());
        alive.stopped_because("the folder watcher panicked".to_string());
        drop(alive);
        let state = health.component(Component::DagProcessor).unwrap();
        assert_eq!(state.stopped.as_deref(), Some("the folder watcher panicked"));
    }

    #[tokio::test]
    async fn retry_returns_a_fatal_error_at_once_and_stops_when_cancelled() {
        let health = Arc::new(Health::default());
        let mut database = DatabaseLoop::new(health, Component::Retention);
        let cancel = CancellationToken::new();
        let mut calls = 0;
        let fatal = database
            .retry(&cancel, || {
                calls += 1;
                async {
                    Err::<(), _>(anyhow::Error::from(crate::storage::StorageError::SchemaAhead {
                        current: 9,
                        supported: 7,
                    }))
                }
            })
            .await;
        assert!(fatal.is_err());
        assert_eq!(calls, 1, "a fatal error is not retried");
        cancel.cancel();
        let cancelled = database
            .retry(&cancel, || async {
                Err::<(), _>(anyhow::Error::from(crate::storage::StorageError::from(
                    sqlx::Error::PoolTimedOut,
                )))
            })
            .await;
        assert!(matches!(cancelled, Ok(None)));
    }
}
