//! Who may recover what. Every scheduler process registers a row (host, pid, the pid's start
//! time) and beats; recovery picks the attempts in flight and the `weir dags test` runs whose
//! owner is dead ([`crate::domain::liveness`] decides) and leaves a live owner's alone. Ending an
//! orphan is the scheduler's job (`Scheduler::recover`); the end it records is decided here
//! ([`recovered_result`]): finished, if its wrapper recorded an exit status, else crash-ended.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::executor::AttemptResult;
use super::exit_record::ExitRecord;
use super::process::process_state;
use crate::domain::liveness::{self, Death, Liveness, SchedulerKind, SchedulerRecord};
use crate::storage::runs::{self, DagRun};
use crate::storage::schedulers::{self, NewScheduler};
use crate::storage::task_instances::{self, TaskInstance};
use crate::storage::{Db, StorageError};

/// Rows of schedulers stopped or silent for this long are removed when another registers: long
/// enough to read who ran what in recent history, short enough that `weir dags test` runs do not
/// pile up.
const FORGET_AFTER: chrono::Duration = chrono::Duration::days(7);

/// This process's scheduler row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub id: i64,
    pub kind: SchedulerKind,
    pub hostname: String,
}

impl Registration {
    /// Records this process as a scheduler of `kind` starting at `now`.
    pub async fn register(db: &Db, kind: SchedulerKind, now: DateTime<Utc>) -> Result<Registration, StorageError> {
        let hostname = this_host();
        let pid = std::process::id();
        let pid_start = match process_state(pid) {
            liveness::ProcessState::Running { start_time } => start_time,
            liveness::ProcessState::Gone => None,
        };
        let mut connection = db.acquire().await?;
        schedulers::forget_before(&mut connection, now - FORGET_AFTER).await?;
        let scheduler = NewScheduler {
            kind,
            hostname: &hostname,
            pid,
            pid_start,
        };
        let id = schedulers::register(&mut connection, &scheduler, now).await?;
        Ok(Registration { id, kind, hostname })
    }

    /// The `owner` of the run a `weir dags test` registered this way drives.
    pub fn run_owner(&self) -> String {
        liveness::test_run_owner(self.id)
    }
}

/// This host's name, as recorded with attempts and scheduler rows.
pub fn this_host() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .unwrap_or_else(|| "localhost".to_string())
}

/// An attempt in flight whose owner is dead.
#[derive(Debug, Clone)]
pub struct OrphanAttempt {
    pub instance: TaskInstance,
    pub run: DagRun,
    /// The scheduler row that claimed it, to take it over from.
    pub holder: Option<i64>,
    pub death: Death,
}

/// A run driven by a `weir dags test` that is dead: the daemon adopts it.
#[derive(Debug, Clone)]
pub struct OrphanRun {
    pub run: DagRun,
    pub death: Death,
}

/// What a dead owner left.
#[derive(Debug, Clone, Default)]
pub struct Orphans {
    pub runs: Vec<OrphanRun>,
    pub attempts: Vec<OrphanAttempt>,
}

/// The attempts in flight and the owned runs, seen from the scheduler `me` at `now`, whose
/// owner is dead. An attempt's owner is the scheduler that claimed it (for attempts claimed
/// before schedulers were recorded: its run's `weir dags test`, else a daemon from before, which
/// cannot be alive since the schema changed under it).
pub async fn find_orphans(
    connection: &mut sqlx::AnyConnection,
    me: &Registration,
    now: DateTime<Utc>,
) -> Result<Orphans, StorageError> {
    let held = task_instances::held_by_others(connection, me.id).await?;
    let owned_runs = runs::owned_active(connection).await?;
    if held.is_empty() && owned_runs.is_empty() {
        return Ok(Orphans::default());
    }
    let mut attempts = Vec::with_capacity(held.len());
    for (instance, holder) in held {
        let Some(run) = runs::get_by_pk(connection, instance.run_pk).await? else {
            continue;
        };
        attempts.push((instance, run, holder));
    }
    let owner_of = |holder: Option<i64>, run: &DagRun| {
        holder.or_else(|| run.owner.as_deref().and_then(liveness::run_owner_scheduler))
    };
    let mut ids: Vec<i64> = attempts
        .iter()
        .filter_map(|(_, run, holder)| owner_of(*holder, run))
        .chain(owned_runs.iter().filter_map(|run| owner_of(None, run)))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let rows: HashMap<i64, SchedulerRecord> = schedulers::get_many(connection, &ids)
        .await?
        .into_iter()
        .map(|row| (row.id, row))
        .collect();
    let death_of = |owner: Option<i64>| -> Option<Death> {
        let row = owner.and_then(|id| rows.get(&id));
        let process = row
            .filter(|row| row.hostname == me.hostname)
            .map(|row| process_state(row.pid));
        match liveness::liveness(row, &me.hostname, process, now) {
            Liveness::Alive => None,
            Liveness::Dead(death) => Some(death),
        }
    };
    let mut orphans = Orphans::default();
    for run in owned_runs {
        if let Some(death) = death_of(owner_of(None, &run)) {
            orphans.runs.push(OrphanRun { run, death });
        }
    }
    for (instance, run, holder) in attempts {
        if let Some(death) = death_of(owner_of(holder, &run)) {
            orphans.attempts.push(OrphanAttempt {
                instance,
                run,
                holder,
                death,
            });
        }
    }
    Ok(orphans)
}

/// The end recorded for an orphaned attempt, from its exit record (`None`: no record, e.g. a
/// builtin attempt, one never started, or one cut by the crash). `output` reads what a
/// successful attempt left in `$WEIR_OUTPUT`; its last stdout line died with the scheduler.
pub fn recovered_result(
    record: Option<&ExitRecord>,
    skip_exit_code: Option<i32>,
    output: impl FnOnce() -> Option<String>,
) -> AttemptResult {
    let Some(record) = record else {
        return AttemptResult::CrashEnded { exit_code: None };
    };
    match record.status {
        0 => AttemptResult::Success { output: output() },
        code if Some(code) == skip_exit_code => AttemptResult::Skipped,
        // It ended after its scheduler had gone: its output pipes were closed under it, and a
        // write then fails or kills it with SIGPIPE, so its failure may be the crash's doing.
        code if record.scheduler_gone => AttemptResult::CrashEnded { exit_code: Some(code) },
        code => AttemptResult::Failed {
            exit_code: Some(code),
            error: format!(
                "exited with code {code} (found in its exit record: its scheduler stopped before recording the end)"
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: i32, scheduler_gone: bool) -> ExitRecord {
        ExitRecord {
            status,
            scheduler_gone,
            written_at: None,
        }
    }

    fn output() -> Option<String> {
        Some("\"done\"".to_string())
    }

    #[test]
    fn an_attempt_that_recorded_its_end_is_recorded_finished_and_not_run_again() {
        let cases = [
            (Some(record(0, false)), AttemptResult::Success { output: output() }),
            (Some(record(0, true)), AttemptResult::Success { output: output() }),
            (Some(record(99, false)), AttemptResult::Skipped),
            (
                Some(record(3, false)),
                AttemptResult::Failed {
                    exit_code: Some(3),
                    error:
                        "exited with code 3 (found in its exit record: its scheduler stopped before recording the end)"
                            .to_string(),
                },
            ),
        ];
        for (record, expected) in cases {
            assert_eq!(
                recovered_result(record.as_ref(), Some(99), output),
                expected,
                "{record:?}"
            );
        }
    }

    #[test]
    fn an_attempt_without_a_record_or_that_failed_after_the_crash_is_crash_ended() {
        assert_eq!(
            recovered_result(None, Some(99), output),
            AttemptResult::CrashEnded { exit_code: None }
        );
        assert_eq!(
            recovered_result(Some(&record(141, true)), Some(99), output),
            AttemptResult::CrashEnded { exit_code: Some(141) }
        );
    }
}
