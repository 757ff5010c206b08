//! The long-lived loops: the daemon's [`Scheduler::run`] and `weir dags test`'s
//! [`Scheduler::drive_until_finished`].

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Scheduler;
use crate::domain::liveness::{HEARTBEAT_EVERY, SchedulerKind};
use crate::domain::state::RunState;
use crate::runtime::executor::ExecutorEvent;
use crate::runtime::health::{Component, DatabaseLoop};
use crate::runtime::recovery::Registration;
use crate::storage::failure::{ErrorClass, class_of_anyhow};
use crate::storage::runs::{self};
use crate::storage::{self};

impl Scheduler {
    /// Runs until cancelled: a step whenever something may have changed (an executor event, a DAG
    /// file, a change recorded by another process) or becomes due (a schedule, a retry delay).
    ///
    /// A metadata database outage is waited out: while it lasts no step runs, attempts that end
    /// are kept in memory, and a try with a growing backoff records them, then steps again. Only
    /// a fatal error (see [`ErrorClass`]) ends the loop with an error.
    pub async fn run(
        mut self,
        mut events: mpsc::UnboundedReceiver<ExecutorEvent>,
        cancel: CancellationToken,
    ) -> anyhow::Result<()> {
        let mut alive = self.health.alive(Component::Scheduler);
        let mut pending = Vec::new();
        let ran = self.run_until_cancelled(&mut events, &mut pending, &cancel).await;
        if let Err(error) = &ran {
            alive.stopped_because(format!("{error:#}"));
        }
        tracing::info!("scheduler stopping: ending running attempts");
        self.executor.shutdown().await;
        while let Ok(event) = events.try_recv() {
            pending.push(event);
        }
        // The database may be away right now: give it a moment, then leave the rest to recovery
        // (at the next start, or by a peer), which ends those attempts as after a crash.
        let mut database = DatabaseLoop::new(Arc::clone(&self.health), Component::Scheduler);
        let give_up = tokio::time::Instant::now() + SHUTDOWN_RECORD_WAIT;
        let _ = tokio::time::timeout_at(give_up, async {
            while let Err(error) = self.record_pending(&mut pending).await {
                if class_of_anyhow(&error) != ErrorClass::Transient {
                    tracing::error!("cannot record attempt events during shutdown: {error:#}");
                    return;
                }
                tokio::time::sleep(database.failed(&error)).await;
            }
        })
        .await;
        if !pending.is_empty() {
            tracing::error!(
                "{} attempt events could not be recorded before shutdown; recovery ends those attempts as a crash's",
                pending.len()
            );
        }
        let _ = tokio::time::timeout(MARK_STOPPED_WAIT, self.mark_stopped()).await;
        ran
    }

    async fn run_until_cancelled(
        &mut self,
        events: &mut mpsc::UnboundedReceiver<ExecutorEvent>,
        pending: &mut Vec<ExecutorEvent>,
        cancel: &CancellationToken,
    ) -> anyhow::Result<()> {
        let mut database = DatabaseLoop::new(Arc::clone(&self.health), Component::Scheduler);
        if self.registration.is_none() {
            let Some(registration) = database
                .retry(cancel, || async {
                    Registration::register(&self.db, SchedulerKind::Daemon, Utc::now())
                        .await
                        .context("registering this scheduler")
                })
                .await?
            else {
                return Ok(());
            };
            tracing::info!(scheduler_id = registration.id, "registered this scheduler");
            self.registration = Some(registration);
        }
        let Some(recovered) = database
            .retry(cancel, || async {
                self.recover(Utc::now())
                    .await
                    .context("recovering attempts left by a previous scheduler")
            })
            .await?
        else {
            return Ok(());
        };
        if recovered > 0 {
            tracing::warn!(recovered, "ended attempts left running by a previous scheduler");
        }
        // After recovery: a heartbeat later than the registration says start-up recovery is done.
        let first_poll = database
            .retry(cancel, || async {
                let mut watch = Watch::default();
                self.poll(&mut watch, Beat::Now).await.map(|()| watch)
            })
            .await?;
        let Some(mut watch) = first_poll else {
            return Ok(());
        };
        // Another process (the CLI, the web server) records a trigger or a clear in the database
        // and bumps a counter; a cheap read twice a second notices it.
        let mut change_poll = tokio::time::interval(Duration::from_millis(500));
        change_poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut next_wake: Option<DateTime<Utc>> = None;
        let mut step_needed = true;
        // Set while the database is unreachable: when to try again.
        let mut retry_at: Option<tokio::time::Instant> = None;
        loop {
            if step_needed && retry_at.is_none() {
                match self.tick(Utc::now()).await {
                    Ok(outcome) => {
                        database.reached();
                        next_wake = outcome.next_wake;
                        // A finished run frees capacity (max_active_runs, a backfill's limit) and
                        // may complete a backfill: look again at once rather than at the next event.
                        if outcome.runs_finished > 0 {
                            step_needed = true;
                            continue;
                        }
                    }
                    Err(error) => match class_of_anyhow(&error) {
                        ErrorClass::Transient => {
                            retry_at = Some(tokio::time::Instant::now() + database.failed(&error));
                        }
                        ErrorClass::Fatal => return Err(error.context("scheduler step")),
                        ErrorClass::Operation => {
                            tracing::error!("scheduler step failed: {error:#}");
                            next_wake = Some(Utc::now() + chrono::Duration::seconds(1));
                        }
                    },
                }
            }
            step_needed = false;
            let sleep_for = next_wake
                .map(|wake| (wake - Utc::now()).to_std().unwrap_or(Duration::ZERO))
                .unwrap_or(Duration::from_secs(3600));
            let retry_due = retry_at.unwrap_or_else(tokio::time::Instant::now);
            // What this turn of the loop tried, when it touched the database.
            let tried: Option<anyhow::Result<()>> = tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                // The database was unreachable: record what was kept, beat, step.
                _ = tokio::time::sleep_until(retry_due), if retry_at.is_some() => {
                    let resumed = async {
                        self.record_pending(pending).await?;
                        self.poll(&mut watch, Beat::AfterOutage).await
                    }.await;
                    if resumed.is_ok() {
                        retry_at = None;
                        // Other processes' changes may have been missed meanwhile.
                        self.forget_schedule_memo();
                        step_needed = true;
                    }
                    Some(resumed)
                }
                // Before events, so a steady stream of them cannot starve the poll and the heartbeat.
                _ = change_poll.tick(), if retry_at.is_none() => {
                    let polled = self.poll(&mut watch, Beat::WhenDue).await;
                    if matches!(polled, Ok(())) && watch.changed {
                        self.forget_schedule_memo();
                        step_needed = true;
                    }
                    Some(polled)
                }
                Some(event) = events.recv() => {
                    // Kept until recorded: an attempt that ended during an outage is recorded
                    // once the database is back, never dropped.
                    pending.push(event);
                    while let Ok(more) = events.try_recv() {
                        pending.push(more);
                    }
                    if retry_at.is_some() {
                        None
                    } else {
                        let decides = pending.iter().any(ExecutorEvent::ends_attempt);
                        let recorded = self.record_pending(pending).await;
                        step_needed = recorded.is_ok() && decides;
                        Some(recorded)
                    }
                }
                Ok(()) = self.dags.changed() => {
                    self.forget_schedule_memo();
                    step_needed = true;
                    None
                }
                _ = tokio::time::sleep(sleep_for), if retry_at.is_none() => {
                    step_needed = true;
                    None
                }
            };
            match tried {
                None => {}
                Some(Ok(())) => database.reached(),
                Some(Err(error)) if class_of_anyhow(&error) == ErrorClass::Transient => {
                    retry_at = Some(tokio::time::Instant::now() + database.failed(&error));
                }
                Some(Err(error)) => return Err(error),
            }
        }
        Ok(())
    }

    /// Reads the change counter. When the heartbeat is due (every [`HEARTBEAT_EVERY`], or as
    /// `beat` says), takes over what dead peers left, beats, and checks the schema: one that
    /// another weir moved ahead (or that lost a table) stops the scheduler, it is fatal.
    async fn poll(&self, watch: &mut Watch, beat: Beat) -> anyhow::Result<()> {
        let mut connection = self.db.acquire().await?;
        let current = storage::change_sequence(&mut connection)
            .await
            .context("reading the change counter")?;
        watch.changed = watch.seen_change.is_some_and(|seen| seen != current);
        watch.seen_change = Some(current);
        let due = watch.last_heartbeat.is_none_or(|at| at.elapsed() >= HEARTBEAT_EVERY);
        if beat == Beat::WhenDue && !due {
            return Ok(());
        }
        drop(connection);
        if beat == Beat::AfterOutage {
            // Every peer's heartbeat is as old as the outage: give the live ones time to beat
            // again before anything of theirs counts as left behind.
            watch.recover_after = Some(tokio::time::Instant::now() + 2 * HEARTBEAT_EVERY);
        }
        let may_recover = watch
            .recover_after
            .is_none_or(|after| tokio::time::Instant::now() >= after);
        if beat == Beat::WhenDue && may_recover {
            // What a peer that died since (or a killed `weir dags test`) left is taken over while
            // this one runs, not only at its next start.
            match self.recover(Utc::now()).await {
                Ok(0) => {}
                Ok(recovered) => {
                    tracing::warn!(recovered, "ended attempts left running by a dead scheduler");
                    watch.changed = true;
                }
                Err(error) if class_of_anyhow(&error) != ErrorClass::Operation => return Err(error),
                Err(error) => tracing::error!("recovering a dead scheduler's attempts failed: {error:#}"),
            }
        }
        let mut connection = self.db.acquire().await?;
        self.heartbeat(&mut connection, Utc::now()).await?;
        drop(connection);
        self.db.ensure_current().await?;
        watch.last_heartbeat = Some(tokio::time::Instant::now());
        self.health.beat(Component::Scheduler, Utc::now());
        Ok(())
    }

    /// Records the kept executor events, removing each once it is committed. A transient or
    /// fatal error leaves them all kept (the batch was rolled back); a batch that fails
    /// otherwise is recorded one by one, so one event that can never be recorded (it is logged)
    /// does not hold the others back.
    ///
    /// Recording an event twice (a commit whose answer was lost in the cut) changes nothing:
    /// an attempt's end applies to its task instance only while that instance is still queued
    /// or running with the same try (`task_instances::finish_attempt`).
    async fn record_pending(&self, pending: &mut Vec<ExecutorEvent>) -> anyhow::Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        let error = match self.handle_events(pending.clone()).await {
            Ok(()) => {
                pending.clear();
                return Ok(());
            }
            Err(error) => error,
        };
        if class_of_anyhow(&error) != ErrorClass::Operation {
            return Err(error.context("recording executor events"));
        }
        tracing::warn!(
            "recording {} executor events together failed ({error:#}); recording them one by one",
            pending.len()
        );
        while let Some(event) = pending.first().cloned() {
            match self.handle_event(event).await {
                Ok(()) => {}
                Err(error) if class_of_anyhow(&error) == ErrorClass::Operation => {
                    tracing::error!("cannot record an executor event: {error:#}");
                }
                Err(error) => return Err(error.context("recording executor events")),
            }
            pending.remove(0);
        }
        Ok(())
    }

    /// Steps until the run `run_pk` has finished, recording executor events as they come; for
    /// `weir dags test`, which drives one run in its own process.
    pub async fn drive_until_finished(
        &self,
        run_pk: i64,
        events: &mut mpsc::UnboundedReceiver<ExecutorEvent>,
    ) -> anyhow::Result<RunState> {
        let mut step_needed = true;
        let mut next_wake = None;
        // The daemon adopts the run once this process stops beating (on another host) or is gone.
        let mut heartbeat = tokio::time::interval(HEARTBEAT_EVERY);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        heartbeat.tick().await;
        loop {
            if step_needed {
                next_wake = self.tick(Utc::now()).await?.next_wake;
                let mut connection = self.db.acquire().await?;
                let run = runs::get_by_pk(&mut connection, run_pk)
                    .await?
                    .context("the run being driven disappeared")?;
                drop(connection);
                if run.state.is_finished() {
                    return Ok(run.state);
                }
            }
            let sleep_for = next_wake
                .map(|wake| (wake - Utc::now()).to_std().unwrap_or(Duration::ZERO))
                .unwrap_or(Duration::from_secs(1));
            tokio::select! {
                Some(event) = events.recv() => {
                    let mut batch = vec![event];
                    while let Ok(more) = events.try_recv() {
                        batch.push(more);
                    }
                    step_needed = batch.iter().any(ExecutorEvent::ends_attempt);
                    self.handle_events(batch).await?;
                }
                _ = heartbeat.tick() => {
                    let mut connection = self.db.acquire().await?;
                    self.heartbeat(&mut connection, Utc::now()).await?;
                }
                _ = tokio::time::sleep(sleep_for) => step_needed = true,
            }
        }
    }
}

/// When [`Scheduler::poll`] beats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Beat {
    /// Every [`HEARTBEAT_EVERY`], with the periodic recovery.
    WhenDue,
    /// At once: the first poll, after start-up recovery.
    Now,
    /// At once, the database being back: recovery waits for the peers to beat again.
    AfterOutage,
}

/// How long a stopping scheduler tries to record the events of the attempts it ended.
const SHUTDOWN_RECORD_WAIT: Duration = Duration::from_secs(10);

/// How long a stopping scheduler tries to record its stop (else its peers wait for its
/// process to be gone or its heartbeat to age).
const MARK_STOPPED_WAIT: Duration = Duration::from_secs(5);

/// What the loop knows of the database between polls.
#[derive(Debug, Default)]
struct Watch {
    seen_change: Option<i64>,
    /// Whether the last poll saw the counter move (or recovery ended attempts).
    changed: bool,
    last_heartbeat: Option<tokio::time::Instant>,
    /// No periodic recovery before this (set when an outage ends).
    recover_after: Option<tokio::time::Instant>,
}
