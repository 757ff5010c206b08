//! What an attempt's end does to its task instance: a pure function of the attempt's result, the
//! task's retry policy and what the instance has left (tries, crash-ended attempts re-run free).
//! Its result, [`AttemptEnd`], is both what storage's `finish_attempt` writes and, through
//! [`InstanceChange::apply`], what the scheduler applies to the copy of the instance it keeps.

use chrono::{DateTime, Utc};

use super::dag::RetryPolicy;
use super::planner::TaskInstanceState;
use super::state::TaskState;

/// How an attempt ended, as the executor reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptResult {
    Success {
        output: Option<String>,
    },
    Skipped,
    Failed {
        exit_code: Option<i32>,
        error: String,
    },
    /// A sensor whose condition does not hold yet: it pokes again at `at`, same try.
    Reschedule {
        at: DateTime<Utc>,
    },
    /// Stopped because weir shut down: tried again after the restart, without using up a retry.
    Interrupted,
    /// Ended by the death of the scheduler running it (a crash or a kill), not by the task: found
    /// by recovery on the next start and run again without using up a retry, a few times at most
    /// (see [`MAX_FREE_CRASH_ENDS`]). `exit_code` is the task's own status when it ended after its
    /// scheduler was gone (its output pipes were closed, so its failure may be ours).
    CrashEnded {
        exit_code: Option<i32>,
    },
}

/// How one attempt ended, as recorded: the attempt's own row, and the change to its task instance
/// (see [`AttemptEnd::instance_change`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptEnd {
    /// The attempt's own final state: success, failed or skipped.
    pub attempt_state: TaskState,
    /// The task instance's new state: the attempt's, or `up_for_retry` when budget remains.
    pub instance_state: TaskState,
    pub next_retry_at: Option<DateTime<Utc>>,
    pub exit_code: Option<i32>,
    pub output: Option<String>,
    pub error: Option<String>,
    /// The attempt does not count against the retry budget (it was interrupted by a shutdown).
    pub refund_try: bool,
    /// A sensor's poke: the try goes on at the next poke, so the next claim reuses its number.
    pub reschedule: bool,
    /// The attempt was ended by its scheduler's death: the instance's `crash_ends` grows by one.
    pub crash_ended: bool,
}

/// What an attempt's end changes on its task instance, column by column. Storage writes exactly
/// this (when the instance is still on the attempt), and the scheduler applies it to its kept
/// copy with [`InstanceChange::apply`]: one description, so the two cannot drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceChange {
    /// The new `state`.
    pub state: TaskState,
    /// The new `next_retry_at`: when an `up_for_retry` or `up_for_reschedule` instance may run.
    pub next_retry_at: Option<DateTime<Utc>>,
    /// Added to `max_tries`: the try is given back.
    pub max_tries_added: u32,
    /// Taken from `try_number`: the next claim continues this try (a sensor's next poke).
    pub try_number_taken_back: u32,
    /// Added to `crash_ends`.
    pub crash_ends_added: u32,
}

impl AttemptEnd {
    /// What this end changes on its task instance.
    pub fn instance_change(&self) -> InstanceChange {
        InstanceChange {
            state: self.instance_state,
            next_retry_at: self.next_retry_at,
            max_tries_added: u32::from(self.refund_try),
            try_number_taken_back: u32::from(self.reschedule),
            crash_ends_added: u32::from(self.crash_ended),
        }
    }
}

impl InstanceChange {
    /// The change applied to a task instance as the planner sees it (which does not count
    /// crash-ended attempts).
    pub fn apply(&self, instance: &mut TaskInstanceState) {
        instance.state = self.state;
        instance.next_retry_at = self.next_retry_at;
        instance.max_tries = instance.max_tries.saturating_add(self.max_tries_added);
        instance.try_number = instance.try_number.saturating_sub(self.try_number_taken_back);
    }
}

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
///
/// `retry` is the task's policy, `None` when its DAG no longer has it (it then fails for good).
pub fn attempt_end(
    retry: Option<RetryPolicy>,
    try_number: u32,
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
                    ..failure(retry, try_number, budget, *exit_code, error, now)
                }
            }
        }
        AttemptResult::Failed { exit_code, error } => {
            failure(retry, try_number, budget, *exit_code, error.clone(), now)
        }
    }
}

/// A failed attempt: up for retry after the policy's delay while tries remain, else failed.
fn failure(
    retry: Option<RetryPolicy>,
    try_number: u32,
    budget: TryBudget,
    exit_code: Option<i32>,
    error: String,
    now: DateTime<Utc>,
) -> AttemptEnd {
    let (instance_state, next_retry_at) = match retry {
        Some(policy) if try_number < budget.max_tries => {
            let delay = chrono::Duration::from_std(policy.delay_after(try_number)).unwrap_or(chrono::Duration::MAX);
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

/// The end of an attempt whose DAG is gone (file removed or broken): recorded without retries,
/// and neither a shutdown nor a crash nor a sensor's poke can run it again.
pub fn attempt_end_without_dag(result: &AttemptResult) -> AttemptEnd {
    let (state, error, exit_code, output) = match result {
        AttemptResult::Success { output } => (TaskState::Success, None, Some(0), output.clone()),
        AttemptResult::Skipped => (TaskState::Skipped, None, None, None),
        AttemptResult::Failed { exit_code, error } => (TaskState::Failed, Some(error.clone()), *exit_code, None),
        AttemptResult::Interrupted => (
            TaskState::Failed,
            Some("interrupted: weir shut down".to_string()),
            None,
            None,
        ),
        AttemptResult::CrashEnded { exit_code } => (
            TaskState::Failed,
            Some("crash-ended: the scheduler running this attempt stopped (crash or kill) before it ended".to_string()),
            *exit_code,
            None,
        ),
        AttemptResult::Reschedule { .. } => (
            TaskState::Failed,
            Some("the DAG of this sensor is gone: it cannot poke again".to_string()),
            None,
            None,
        ),
    };
    AttemptEnd {
        attempt_state: state,
        instance_state: state,
        next_retry_at: None,
        exit_code,
        output,
        error,
        refund_try: false,
        reschedule: false,
        crash_ended: matches!(result, AttemptResult::CrashEnded { .. }),
    }
}

#[cfg(test)]
mod tests;
