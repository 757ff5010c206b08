//! What an attempt's end does to its task instance: a pure function of the attempt's result, the
//! task's retry policy and what the instance has left (tries, crash-ended attempts re-run free).

use chrono::{DateTime, Utc};

use super::executor::{AttemptKey, AttemptResult};
use crate::domain::dag::Dag;
use crate::domain::state::TaskState;
use crate::storage::task_instances::AttemptEnd;

/// How many attempts of one task instance the death of their scheduler may end and have re-run
/// without using a retry. A task that crashes the host (fills memory or disk until the daemon is
/// killed) would otherwise loop for ever: past this many, a crash-ended attempt counts as an
/// ordinary failure. Three covers a daemon killed by deploys or an OOM twice in a row, which is
/// not the task's fault. A clear renews it with the retries.
pub const MAX_FREE_CRASH_ENDS: u32 = 3;

/// What a task instance has left when one of its attempts ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TryBudget {
    /// The instance is retried while the ended try's number is below this.
    pub max_tries: u32,
    /// Attempts of this instance already ended by their scheduler's death (before this one).
    pub crash_ends: u32,
}

/// The recorded end of an attempt: retried while `try_number < max_tries` (§3.5); a clean
/// shutdown's interruption and the first [`MAX_FREE_CRASH_ENDS`] crash-ended attempts are run
/// again without using a retry.
pub fn attempt_end(
    dag: &Dag,
    key: &AttemptKey,
    result: &AttemptResult,
    budget: TryBudget,
    now: DateTime<Utc>,
) -> AttemptEnd {
    let end = AttemptEnd {
        attempt_state: TaskState::Failed,
        instance_state: TaskState::Failed,
        next_retry_at: None,
        exit_code: None,
        output: None,
        error: None,
        refund_try: false,
        reschedule: false,
        crash_ended: false,
    };
    match result {
        AttemptResult::Success { output } => AttemptEnd {
            attempt_state: TaskState::Success,
            instance_state: TaskState::Success,
            exit_code: Some(0),
            output: output.clone(),
            ..end
        },
        AttemptResult::Skipped => AttemptEnd {
            attempt_state: TaskState::Skipped,
            instance_state: TaskState::Skipped,
            ..end
        },
        // A sensor's poke that found nothing: same try, next poke later, no slot held meanwhile.
        AttemptResult::Reschedule { at } => AttemptEnd {
            attempt_state: TaskState::UpForReschedule,
            instance_state: TaskState::UpForReschedule,
            next_retry_at: Some(*at),
            reschedule: true,
            ..end
        },
        // A clean shutdown is nobody's failure: the task is scheduled again, budget intact.
        AttemptResult::Interrupted => AttemptEnd {
            instance_state: TaskState::Scheduled,
            error: Some("interrupted: weir shut down during the attempt; it runs again after the restart".to_string()),
            refund_try: true,
            ..end
        },
        AttemptResult::CrashEnded { exit_code } => {
            let crash_end = budget.crash_ends.saturating_add(1);
            let how = match exit_code {
                None => String::new(),
                Some(code) => format!(
                    " (it exited with code {code} after its scheduler was gone, when its output could no longer be read)"
                ),
            };
            if budget.crash_ends < MAX_FREE_CRASH_ENDS {
                // The scheduler's death is nobody's failure either, but it gets a cap of its own.
                AttemptEnd {
                    instance_state: TaskState::Scheduled,
                    exit_code: *exit_code,
                    error: Some(format!(
                        "crash-ended: the scheduler running this attempt stopped (crash or kill) before it ended{how}; it runs again without using a retry ({crash_end} of {MAX_FREE_CRASH_ENDS} such re-runs)"
                    )),
                    refund_try: true,
                    crash_ended: true,
                    ..end
                }
            } else {
                let error = format!(
                    "crash-ended: the scheduler running this attempt stopped (crash or kill) before it ended{how}, {crash_end} times now for this task; past {MAX_FREE_CRASH_ENDS} free re-runs it counts as a failure, in case the task itself brings the scheduler down"
                );
                AttemptEnd {
                    crash_ended: true,
                    ..failure(dag, key, budget, *exit_code, error, now)
                }
            }
        }
        AttemptResult::Failed { exit_code, error } => failure(dag, key, budget, *exit_code, error.clone(), now),
    }
}

/// A failed attempt: up for retry after the policy's delay while tries remain, else failed.
fn failure(
    dag: &Dag,
    key: &AttemptKey,
    budget: TryBudget,
    exit_code: Option<i32>,
    error: String,
    now: DateTime<Utc>,
) -> AttemptEnd {
    let retry = dag.task(key.task_id.as_str()).map(|task| task.retry);
    let (instance_state, next_retry_at) = match retry {
        Some(policy) if key.try_number < budget.max_tries => {
            let delay = chrono::Duration::from_std(policy.delay_after(key.try_number)).unwrap_or(chrono::Duration::MAX);
            (
                TaskState::UpForRetry,
                Some(now.checked_add_signed(delay).unwrap_or(DateTime::<Utc>::MAX_UTC)),
            )
        }
        _ => (TaskState::Failed, None),
    };
    AttemptEnd {
        attempt_state: TaskState::Failed,
        instance_state,
        next_retry_at,
        exit_code,
        output: None,
        error: Some(error),
        refund_try: false,
        reschedule: false,
        crash_ended: false,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use chrono::TimeZone;

    use super::*;
    use crate::domain::ids::TaskId;
    use crate::domain::validate::ValidationContext;

    fn dag() -> Dag {
        Dag::from_yaml(
            Path::new("/dags/test.yaml"),
            "dag_id: deploy\ntasks:\n  work:\n    command: 'true'\n    retries: 1\n    retry_delay: 30s\n",
            &ValidationContext::default(),
        )
        .expect("the test DAG is valid")
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0)
            .single()
            .expect("a valid date")
    }

    /// Try `try_number` of `work` (one retry: `max_tries` 2) ended with `result` after
    /// `crash_ends` earlier crash-ended attempts: the instance's state, whether the try is given
    /// back, whether it counts as crash-ended, and the error's start.
    fn end_of(try_number: u32, crash_ends: u32, result: AttemptResult) -> (TaskState, bool, bool, String) {
        let key = AttemptKey {
            run_pk: 1,
            task_id: TaskId::parse("work").expect("a valid id"),
            try_number,
        };
        let budget = TryBudget {
            max_tries: 2 + crash_ends,
            crash_ends,
        };
        let end = attempt_end(&dag(), &key, &result, budget, now());
        let error = end.error.unwrap_or_default();
        let error = error.split(';').next().unwrap_or_default().to_string();
        (end.instance_state, end.refund_try, end.crash_ended, error)
    }

    const STOPPED: &str = "crash-ended: the scheduler running this attempt stopped (crash or kill) before it ended";

    #[test]
    fn an_attempt_ended_by_its_schedulers_death_runs_again_without_using_a_retry() {
        let crash_ended = AttemptResult::CrashEnded { exit_code: None };
        assert_eq!(
            end_of(1, 0, crash_ended.clone()),
            (TaskState::Scheduled, true, true, STOPPED.to_string())
        );
        // Tries 2 and 3 cut by kills, as in the report: still no retry used.
        assert_eq!(
            end_of(2, 1, crash_ended.clone()),
            (TaskState::Scheduled, true, true, STOPPED.to_string())
        );
        assert_eq!(
            end_of(3, 2, crash_ended),
            (TaskState::Scheduled, true, true, STOPPED.to_string())
        );
    }

    #[test]
    fn past_the_cap_a_crash_ended_attempt_counts_as_a_failure_and_says_why() {
        let key = AttemptKey {
            run_pk: 1,
            task_id: TaskId::parse("work").expect("a valid id"),
            try_number: 4,
        };
        let crash_ended = AttemptResult::CrashEnded { exit_code: None };
        // Three free re-runs given back their tries: max_tries 2 + 3; try 4 may still retry.
        let end = attempt_end(
            &dag(),
            &key,
            &crash_ended,
            TryBudget {
                max_tries: 5,
                crash_ends: MAX_FREE_CRASH_ENDS,
            },
            now(),
        );
        assert_eq!(
            (end.instance_state, end.refund_try, end.crash_ended, end.next_retry_at),
            (
                TaskState::UpForRetry,
                false,
                true,
                Some(now() + chrono::Duration::seconds(30))
            )
        );
        let error = end.error.unwrap_or_default();
        assert!(error.contains("4 times now for this task"), "{error}");
        assert!(error.contains("counts as a failure"), "{error}");
        // The last try: failed for good.
        let last = AttemptKey { try_number: 5, ..key };
        let end = attempt_end(
            &dag(),
            &last,
            &crash_ended,
            TryBudget {
                max_tries: 5,
                crash_ends: MAX_FREE_CRASH_ENDS + 1,
            },
            now(),
        );
        assert_eq!((end.instance_state, end.refund_try), (TaskState::Failed, false));
    }

    #[test]
    fn a_task_that_ended_after_its_scheduler_was_gone_is_crash_ended_with_its_exit_code() {
        let key = AttemptKey {
            run_pk: 1,
            task_id: TaskId::parse("work").expect("a valid id"),
            try_number: 1,
        };
        let end = attempt_end(
            &dag(),
            &key,
            &AttemptResult::CrashEnded { exit_code: Some(141) },
            TryBudget {
                max_tries: 2,
                crash_ends: 0,
            },
            now(),
        );
        assert_eq!((end.instance_state, end.exit_code), (TaskState::Scheduled, Some(141)));
        let error = end.error.unwrap_or_default();
        assert!(
            error.contains("it exited with code 141 after its scheduler was gone"),
            "{error}"
        );
        assert!(error.contains("1 of 3 such re-runs"), "{error}");
    }

    #[test]
    fn failures_spend_retries_and_shutdowns_do_not() {
        let failed = || AttemptResult::Failed {
            exit_code: Some(3),
            error: "exited with code 3".to_string(),
        };
        assert_eq!(
            end_of(1, 0, failed()),
            (TaskState::UpForRetry, false, false, "exited with code 3".to_string())
        );
        assert_eq!(
            end_of(2, 0, failed()),
            (TaskState::Failed, false, false, "exited with code 3".to_string())
        );
        assert_eq!(
            end_of(1, 0, AttemptResult::Interrupted),
            (
                TaskState::Scheduled,
                true,
                false,
                "interrupted: weir shut down during the attempt".to_string()
            )
        );
        assert_eq!(
            end_of(1, 0, AttemptResult::Success { output: None }),
            (TaskState::Success, false, false, String::new())
        );
    }
}
