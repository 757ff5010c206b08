//! One scheduling step: what a tick does, in order.

use chrono::{DateTime, Utc};

use super::{Scheduler, TickOutcome, earliest};
use crate::runtime::loader::DagBag;
use crate::storage::{self};

impl Scheduler {
    /// One scheduling step at `now`.
    pub async fn tick(&self, now: DateTime<Utc>) -> anyhow::Result<TickOutcome> {
        let started = std::time::Instant::now();
        let outcome = self.step(now).await;
        if outcome.is_err() {
            // Kept snapshots were updated with writes that may have been rolled back.
            self.cache.forget_snapshots();
            self.cache.forget_dag_records();
        }
        self.metrics.record_step(started.elapsed());
        self.wake_alert_delivery();
        outcome
    }

    async fn step(&self, now: DateTime<Utc>) -> anyhow::Result<TickOutcome> {
        let bag = self.bag();
        let mut outcome = TickOutcome::default();
        // Moved by every change recorded outside this scheduler (CLI, API, UI, the loader).
        let change_seq = {
            let mut connection = self.db.acquire().await?;
            storage::change_sequence(&mut connection).await?
        };
        // The daemon's view of each DAG (paused, next run) for the scheduled-run creation and the
        // start of queued runs, kept between steps (`dag_records`). `dags test` needs neither.
        let records = match self.settings.owner {
            None => Some(self.dag_records(change_seq).await?),
            Some(_) => None,
        };
        if let Some(records) = &records {
            self.create_scheduled_runs(&bag, records, now, &mut outcome).await?;
            self.advance_backfills(&bag, now, &mut outcome).await?;
        }
        self.start_queued_runs(&bag, records.as_deref(), now, &mut outcome)
            .await?;
        self.check_slas(&bag, now, &mut outcome).await?;
        self.plan_running_runs(&bag, now, change_seq, &mut outcome).await?;
        self.dispatch(&bag, now, change_seq, &mut outcome).await?;
        Ok(outcome)
    }

    /// Records `sla_miss` for runs past their DAG's SLA; wakes the step at the next deadline.
    async fn check_slas(&self, bag: &DagBag, now: DateTime<Utc>, outcome: &mut TickOutcome) -> anyhow::Result<()> {
        if let Some(hooks) = &self.alerts {
            let check = crate::runtime::alerts::check_slas(&self.db, &hooks.routing, bag, now).await?;
            self.alerts_recorded(check.recorded);
            outcome.next_wake = earliest(outcome.next_wake, check.next_deadline);
        }
        Ok(())
    }
}
