//! Taking over what dead owners left: their attempts ended, their `weir dags test` runs adopted.

use anyhow::Context;
use chrono::{DateTime, Utc};

use super::Scheduler;
use crate::domain::dag::Operator;
use crate::runtime::attempt::{self, read_output};
use crate::runtime::executor::{AttemptKey, AttemptResult, ExecutorEvent};
use crate::runtime::exit_record::{ExitRecord, read_exit_record};
use crate::runtime::process::kill_processes_with_env;
use crate::runtime::recovery::{self, OrphanAttempt, recovered_result};
use crate::runtime::task_log::{self, LogPath};
use crate::storage::runs::{self};
use crate::storage::task_instances::{self};

impl Scheduler {
    /// Takes over what dead owners left (§3.9): the attempts a crashed or killed scheduler or
    /// `weir dags test` left queued or running are ended, and the runs of a dead `weir dags test`
    /// are adopted (driven by the daemon from now on). A live owner's work (another scheduler on
    /// PostgreSQL, a `weir dags test` in progress) is left alone. Returns how many attempts were
    /// ended.
    pub async fn recover(&self, now: DateTime<Utc>) -> anyhow::Result<usize> {
        let me = self
            .registration
            .as_ref()
            .context("recovery needs a registered scheduler")?;
        let mut connection = self.db.acquire().await?;
        let orphans = recovery::find_orphans(&mut connection, me, now).await?;
        drop(connection);
        if orphans.runs.is_empty() && orphans.attempts.is_empty() {
            return Ok(0);
        }
        // Its commit moves the change counter: other schedulers plan again too.
        let mut transaction = self.db.begin().await?;
        let mut adopted = 0;
        for orphan in &orphans.runs {
            if let Some(owner) = orphan.run.owner.as_deref()
                && runs::adopt(&mut transaction, orphan.run.pk, owner).await?
            {
                adopted += 1;
                tracing::warn!(dag_id = %orphan.run.dag_id, run_id = %orphan.run.run_id, owner, "adopted a run whose `weir dags test` is gone: {}", orphan.death);
            }
        }
        // Taken over one by one, each only if still held by the dead owner: of two schedulers
        // recovering the same attempt, one ends it.
        let mut taken = Vec::new();
        for orphan in orphans.attempts {
            let instance = &orphan.instance;
            if task_instances::take_over(
                &mut transaction,
                instance.run_pk,
                &instance.task_id,
                instance.try_number,
                orphan.holder,
                me.id,
            )
            .await?
            {
                taken.push(orphan);
            }
        }
        transaction.commit().await?;
        if adopted > 0 || !taken.is_empty() {
            // This one plans every run at its next step.
            self.forget_schedule_memo();
        }
        let count = taken.len();
        for orphan in taken {
            self.end_orphan(orphan, now).await?;
        }
        Ok(count)
    }

    /// Ends one attempt whose owner is dead. Its processes on this host are killed first (so
    /// nothing writes its exit record any more); then an attempt whose wrapper recorded its exit
    /// status is recorded as finished with it and not run again, and any other is crash-ended:
    /// run again without using a retry, up to `MAX_FREE_CRASH_ENDS` times.
    async fn end_orphan(&self, orphan: OrphanAttempt, now: DateTime<Utc>) -> anyhow::Result<()> {
        let OrphanAttempt {
            instance, run, death, ..
        } = orphan;
        let (dag_id, run_id, task_id) = (run.dag_id.as_str(), run.run_id.as_str(), instance.task_id.as_str());
        let markers = attempt::attempt_markers(dag_id, run_id, task_id, instance.try_number);
        let killed = tokio::task::spawn_blocking(move || {
            let pairs: Vec<(&str, &str)> = markers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            kill_processes_with_env(&pairs)
        })
        .await
        .unwrap_or_default();
        let logs_dir = &self.settings.logs_dir;
        let log = LogPath::new(
            logs_dir,
            &run.dag_id,
            &run.run_id,
            &instance.task_id,
            instance.try_number,
        );
        let record = read_exit_record(&log.exit_record());
        let dag = self.bag().get(&run.dag_id).cloned();
        let task = dag.as_ref().and_then(|dag| dag.task(task_id));
        let skip_exit_code = task.and_then(|task| match &task.operator {
            Operator::Shell { skip_exit_code, .. } => Some(*skip_exit_code),
            _ => None,
        });
        let mut secrets = Vec::new();
        if let (Some(task), Some(ExitRecord { status: 0, .. })) = (task, &record) {
            let mut connection = self.db.acquire().await?;
            let change_seq = crate::storage::change_sequence(&mut connection).await?;
            let resolved = self.resolve_secrets(&mut connection, change_seq).await?;
            secrets = attempt::secrets(&resolved.variables, &task.env, &resolved.passwords);
        }
        let result = recovered_result(record.as_ref(), skip_exit_code, || {
            read_output(&log.output(), None).map(|output| crate::runtime::masking::mask_secrets(&output, &secrets))
        });
        let leftovers = if killed.is_empty() {
            String::new()
        } else {
            format!(" and killed leftover processes {killed:?}")
        };
        let how = match (&result, &record) {
            (AttemptResult::CrashEnded { .. }, None) => "recorded it as crash-ended".to_string(),
            (AttemptResult::CrashEnded { .. }, Some(record)) => format!(
                "recorded it as crash-ended: it exited with status {} after its scheduler was gone",
                record.status
            ),
            (_, record) => format!(
                "recorded the end its exit record gives: exit status {}",
                record.map_or(-1, |record| record.status)
            ),
        };
        let note = format!(
            "the scheduler running this attempt stopped (crash or kill: {death}); recovery at {}{leftovers} {how}",
            now.to_rfc3339(),
        );
        task_log::append_note(&log, &note);
        tracing::warn!(
            dag_id,
            run_id,
            task_id,
            try_number = instance.try_number,
            killed = killed.len(),
            finished = record.is_some(),
            "recovered orphaned attempt: {death}"
        );
        let key = AttemptKey {
            run_pk: run.pk,
            task_id: instance.task_id.clone(),
            try_number: instance.try_number,
        };
        // A finished attempt ended when its record was written, not at recovery.
        let at = match (&result, &record) {
            (AttemptResult::CrashEnded { .. }, _) => now,
            (_, record) => record
                .and_then(|record| record.written_at)
                .map_or(now, |written| written.min(now)),
        };
        self.handle_event(ExecutorEvent::Finished { key, result, at }).await
    }
}
