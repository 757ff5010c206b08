//! The delivery loop: sends the outbox's due alerts off the scheduler's path. Each delivery is
//! claimed in the database before it is sent (never sent by two loops at once), runs as its own
//! task within its channel's timeout and concurrency limit (a dead channel holds only its own
//! slots), and ends `delivered`, `pending` again with its next attempt after a backoff, or
//! `failed` with its error once the channel's retries are spent.
//!
//! Guarantees: a delivered alert is never sent again. A process killed mid-send leaves its claim
//! to lapse (after the channel's timeout plus [`LEASE_MARGIN`]); the delivery is then sent again,
//! so a crash during a send means at-least-once (receivers can drop duplicates by `alert_id`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::message::Payload;
use super::send;
use crate::config::{AlertsConfig, Channel};
use crate::domain::alerts::{AfterFailure, after_failed_delivery};
use crate::runtime::health::{Backoff, Component, DatabaseLoop, Health};
use crate::storage::Db;
use crate::storage::alerts::{self as outbox, Alert, AttemptOutcome};
use crate::storage::failure::{ErrorClass, class_of_anyhow};

/// How long a claim outlives its channel's timeout before another loop may take the delivery
/// over (its sender must have died).
pub const LEASE_MARGIN: Duration = Duration::from_secs(5);
/// How often the loop looks at the outbox without being woken (alerts recorded by another
/// process, a clock that jumped).
const POLL: Duration = Duration::from_secs(1);
/// How long shutdown waits for deliveries in flight before giving them back to the outbox.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// Rows read per pass when looking for due deliveries.
const BATCH: u32 = 100;

/// Claimed deliveries not yet recorded as ended, to give back on shutdown.
type InFlight = Arc<Mutex<HashSet<(i64, u32)>>>;

pub struct AlertDelivery {
    db: Db,
    channels: Arc<BTreeMap<String, Channel>>,
    /// Per channel: its free delivery slots.
    slots: HashMap<String, Arc<Semaphore>>,
    in_flight: InFlight,
    health: Arc<Health>,
}

impl AlertDelivery {
    pub fn new(db: Db, config: &AlertsConfig) -> AlertDelivery {
        let slots = config
            .channels
            .keys()
            .map(|name| (name.clone(), Arc::new(Semaphore::new(config.concurrency.max(1)))))
            .collect();
        AlertDelivery {
            db,
            channels: Arc::new(config.channels.clone()),
            slots,
            in_flight: Arc::default(),
            health: Arc::default(),
        }
    }

    /// Reports database outages to `health` (one log line per outage for the whole process).
    pub fn with_health(mut self, health: Arc<Health>) -> AlertDelivery {
        self.health = health;
        self
    }

    /// One pass at `now`: gives lapsed claims back, then claims every due delivery its channel has
    /// a free slot for and starts it in `running`. Returns how many started.
    pub async fn start_due(&self, now: DateTime<Utc>, running: &mut JoinSet<()>) -> anyhow::Result<usize> {
        let mut connection = self.db.acquire().await?;
        let lapsed = outbox::release_lapsed(&mut connection, now).await?;
        if lapsed > 0 {
            tracing::warn!(
                lapsed,
                "alert deliveries left sending by a stopped process go out again"
            );
        }
        let due = outbox::due(&mut connection, now, BATCH).await?;
        let mut started = 0;
        for alert in due {
            let Some(channel) = self.channels.get(&alert.channel) else {
                self.fail_unknown_channel(&mut connection, &alert, now).await?;
                continue;
            };
            let Some(permit) = self
                .slots
                .get(&alert.channel)
                .and_then(|slots| Arc::clone(slots).try_acquire_owned().ok())
            else {
                continue;
            };
            let lease =
                chrono::Duration::from_std(channel.policy.timeout + LEASE_MARGIN).unwrap_or(chrono::Duration::MAX);
            let Some(attempt) =
                outbox::claim(&mut connection, alert.id, now.checked_add_signed(lease).unwrap_or(now)).await?
            else {
                continue;
            };
            if let Ok(mut in_flight) = self.in_flight.lock() {
                in_flight.insert((alert.id, attempt));
            }
            running.spawn(deliver(
                self.db.clone(),
                channel.clone(),
                alert,
                attempt,
                permit,
                Arc::clone(&self.in_flight),
            ));
            started += 1;
        }
        Ok(started)
    }

    /// One pass, waiting until every delivery it started has ended (for tests and one-shot use).
    pub async fn deliver_due(&self, now: DateTime<Utc>) -> anyhow::Result<usize> {
        let mut running = JoinSet::new();
        let started = self.start_due(now, &mut running).await?;
        while running.join_next().await.is_some() {}
        Ok(started)
    }

    /// A delivery for a channel that config.toml no longer defines cannot be sent.
    async fn fail_unknown_channel(
        &self,
        connection: &mut sqlx::AnyConnection,
        alert: &Alert,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let lease = now + chrono::Duration::seconds(60);
        if let Some(attempt) = outbox::claim(connection, alert.id, lease).await? {
            let error = format!(
                "channel `{}` is not defined in config.toml (any more): add [alerts.{}] back to deliver it",
                alert.channel, alert.channel
            );
            outbox::finish_attempt(connection, alert.id, attempt, &AttemptOutcome::Failed { error }, now).await?;
        }
        Ok(())
    }

    /// Runs until cancelled: a pass whenever alerts are recorded (`wake`), a delivery ends, the
    /// next retry is due, or every [`POLL`].
    pub async fn run(self, wake: Arc<Notify>, cancel: CancellationToken) {
        let _alive = self.health.alive(Component::AlertDelivery);
        let mut database = DatabaseLoop::new(Arc::clone(&self.health), Component::AlertDelivery);
        let mut running = JoinSet::new();
        loop {
            let now = Utc::now();
            let pass = async {
                self.start_due(now, &mut running).await?;
                let mut connection = self.db.acquire().await?;
                Ok::<_, anyhow::Error>(outbox::next_wake(&mut connection).await?)
            }
            .await;
            let sleep_for = match pass {
                Ok(next) => {
                    database.reached();
                    // Something due that found no free slot waits for a delivery to end (or the poll).
                    next.and_then(|next| (next - Utc::now()).to_std().ok())
                        .filter(|wait| !wait.is_zero())
                        .map_or(POLL, |wait| wait.min(POLL))
                }
                // The outbox keeps every alert: they go out once the database is back.
                Err(error) if class_of_anyhow(&error) == ErrorClass::Transient => database.failed(&error),
                Err(error) => {
                    tracing::error!("alert delivery pass failed: {error:#}");
                    POLL
                }
            };
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                _ = wake.notified() => {}
                Some(_) = running.join_next() => {}
                _ = tokio::time::sleep(sleep_for) => {}
            }
        }
        self.shut_down(running).await;
    }

    /// Lets deliveries in flight end for a moment, then stops the rest and gives them back to the
    /// outbox (pending, the attempt not counted) for the next start.
    async fn shut_down(&self, mut running: JoinSet<()>) {
        let waited = tokio::time::timeout(SHUTDOWN_GRACE, async { while running.join_next().await.is_some() {} }).await;
        if waited.is_ok() {
            return;
        }
        running.shutdown().await;
        let left: Vec<(i64, u32)> = match self.in_flight.lock() {
            Ok(mut in_flight) => in_flight.drain().collect(),
            Err(_) => Vec::new(),
        };
        let Ok(mut connection) = self.db.acquire().await else {
            return;
        };
        for (id, attempt) in left {
            match outbox::release(&mut connection, id, attempt).await {
                Ok(_) => tracing::info!(
                    alert_id = id,
                    "alert delivery interrupted by shutdown; it goes out after the restart"
                ),
                Err(error) => tracing::error!(alert_id = id, "cannot give an interrupted alert delivery back: {error}"),
            }
        }
    }
}

/// Records a delivery's outcome, waiting out a database outage while the claim's lease lasts
/// (after it, the outcome could not be recorded anyway: the delivery goes out again).
async fn record_outcome(
    db: &Db,
    alert_id: i64,
    attempt: u32,
    outcome: &AttemptOutcome,
    now: DateTime<Utc>,
) -> anyhow::Result<bool> {
    let mut backoff = Backoff::default();
    let give_up = tokio::time::Instant::now() + LEASE_MARGIN;
    loop {
        let recorded = async {
            let mut connection = db.acquire().await?;
            Ok::<_, anyhow::Error>(outbox::finish_attempt(&mut connection, alert_id, attempt, outcome, now).await?)
        }
        .await;
        match recorded {
            Err(error) if class_of_anyhow(&error) == ErrorClass::Transient && tokio::time::Instant::now() < give_up => {
                tokio::time::sleep(backoff.next_delay()).await;
            }
            recorded => return recorded,
        }
    }
}

/// One attempt of one delivery, then its outcome recorded (if the claim still holds).
async fn deliver(
    db: Db,
    channel: Channel,
    alert: Alert,
    attempt: u32,
    _slot: OwnedSemaphorePermit,
    in_flight: InFlight,
) {
    let result = match serde_json::from_value::<Payload>(alert.payload.clone()) {
        Ok(payload) => send::send(&channel, alert.id, &payload).await,
        Err(error) => Err(format!("the stored alert cannot be read: {error}")),
    };
    let now = Utc::now();
    let outcome = match result {
        Ok(()) => AttemptOutcome::Delivered,
        Err(error) => match after_failed_delivery(&channel.policy, attempt, now) {
            AfterFailure::RetryAt(at) => AttemptOutcome::Retry { error, at },
            AfterFailure::GiveUp => AttemptOutcome::Failed { error },
        },
    };
    match &outcome {
        AttemptOutcome::Delivered => {
            tracing::info!(alert_id = alert.id, channel = %alert.channel, event = %alert.event, dag_id = %alert.dag_id, attempt, "alert delivered");
        }
        AttemptOutcome::Retry { error, at } => {
            tracing::warn!(alert_id = alert.id, channel = %alert.channel, attempt, next_attempt = %at, "alert delivery failed, will retry: {error}");
        }
        AttemptOutcome::Failed { error } => {
            tracing::error!(alert_id = alert.id, channel = %alert.channel, attempt, "alert delivery failed for good: {error}");
        }
    }
    let recorded = record_outcome(&db, alert.id, attempt, &outcome, now).await;
    match recorded {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(
                alert_id = alert.id,
                "an alert delivery's claim lapsed before its outcome was recorded"
            )
        }
        // The claim lapses and the delivery goes out again: at-least-once.
        Err(error) => tracing::error!(
            alert_id = alert.id,
            "cannot record an alert delivery's outcome: {error}"
        ),
    }
    if let Ok(mut in_flight) = in_flight.lock() {
        in_flight.remove(&(alert.id, attempt));
    }
}
